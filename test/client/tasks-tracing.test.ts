// OpenTelemetry spans of task calls, recorded with the SDK's in-memory
// exporter against one real node; and the client loading and running
// without @opentelemetry/api installed.
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { context, trace, SpanKind, SpanStatusCode, ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { FETCH, oneNodeClients, trackWorkers, unique } from '../helpers/tasks.js';
import { task } from '../../src/client/index.js';

/** The smallest context manager (the SDK's own lives in another package): AsyncLocalStorage. */
class AlsContextManager implements ContextManager {
  private readonly als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.als.disable();
    return this;
  }
}

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  context.setGlobalContextManager(new AlsContextManager());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
afterAll(() => {
  trace.disable();
  context.disable();
});
const s = oneNodeClients();
const track = trackWorkers();
afterEach(() => exporter.reset());

const spansNamed = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

describe('tracing', () => {
  it('enqueue and process spans: the processing span is a child of the enqueue span, with task, job ID, queue and attempt', async () => {
    const name = unique('traced');
    const t = task<number, number>(s.producer, name);
    let activeInHandler: string | undefined;
    track(
      task<number, number>(s.consumer, name).process((x) => {
        activeInHandler = trace.getActiveSpan()?.spanContext().spanId;
        return x * 2;
      }, FETCH),
    );
    // The enqueue span is a child of the caller's active span.
    const outer = trace.getTracer('test').startSpan('request');
    const r = await context.with(trace.setSpan(context.active(), outer), () => t.enqueue(21, { result: true }));
    outer.end();
    expect(await r.result({ timeout: 10_000 })).toBe(42);

    const [enqueue] = spansNamed(`enqueue ${name}`);
    expect(enqueue).toBeDefined();
    expect(enqueue!.kind).toBe(SpanKind.PRODUCER);
    expect(enqueue!.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
    expect(enqueue!.attributes).toMatchObject({ 'disque.task': name, 'messaging.destination.name': name, 'messaging.message.id': r.id });
    // The processing span ends before the worker ACKs: wait for it.
    await expect.poll(() => spansNamed(`process ${name}`).length, { timeout: 5000 }).toBe(1);
    const [processing] = spansNamed(`process ${name}`);
    expect(processing!.kind).toBe(SpanKind.CONSUMER);
    expect(processing!.spanContext().traceId).toBe(enqueue!.spanContext().traceId);
    expect(processing!.parentSpanContext?.spanId).toBe(enqueue!.spanContext().spanId);
    expect(processing!.attributes).toMatchObject({
      'disque.task': name,
      'messaging.message.id': r.id,
      'messaging.destination.name': name,
      'disque.attempt': 1,
    });
    expect(processing!.status.code).not.toBe(SpanStatusCode.ERROR);
    // The handler runs inside the processing span.
    expect(activeInHandler).toBe(processing!.spanContext().spanId);
  });

  it('a failed handler records its error on the processing span', async () => {
    const name = unique('traced-fail');
    const t = task<number, number>(s.producer, name);
    track(
      task<number, number>(s.consumer, name).process(() => {
        throw new RangeError('out of range');
      }, FETCH),
    );
    const r = await t.enqueue(1, { result: true });
    await expect(r.result({ timeout: 10_000 })).rejects.toThrow(/out of range/);
    await expect.poll(() => spansNamed(`process ${name}`).length, { timeout: 5000 }).toBe(1);
    const [processing] = spansNamed(`process ${name}`);
    expect(processing!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'out of range' });
    expect(processing!.events.find((e) => e.name === 'exception')?.attributes).toMatchObject({ 'exception.type': 'RangeError', 'exception.message': 'out of range' });
  });

  it('a chain step enqueued by a handler continues the trace', async () => {
    const first = task<number, number>(s.producer, unique('first'));
    const second = task<number, number>(s.producer, unique('second'));
    track(task<number, number>(s.consumer, first.name).process((x) => x + 1, FETCH));
    track(task<number, number>(s.consumer, second.name).process((x) => x * 10, FETCH));
    const r = await first.then(second).enqueue(1, { result: true });
    expect(await r.result({ timeout: 10_000 })).toBe(20);
    await expect.poll(() => spansNamed(`process ${second.name}`).length, { timeout: 5000 }).toBe(1);
    const [p1] = spansNamed(`process ${first.name}`);
    const [e2] = spansNamed(`enqueue ${second.name}`);
    const [p2] = spansNamed(`process ${second.name}`);
    expect(e2!.parentSpanContext?.spanId).toBe(p1!.spanContext().spanId);
    expect(p2!.parentSpanContext?.spanId).toBe(e2!.spanContext().spanId);
    expect(new Set([p1, e2, p2].map((s) => s!.spanContext().traceId)).size).toBe(1);
  });
});

describe('without @opentelemetry/api', () => {
  it('the client loads and runs task calls when the package is not installed', () => {
    // The built client, seen through a node_modules without @opentelemetry (symlinks kept as they are).
    const root = path.resolve(import.meta.dirname, '../..');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'disque-ts-nootel-'));
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'));
      for (const entry of fs.readdirSync(path.join(root, 'node_modules'))) {
        if (entry === '@opentelemetry' || entry.startsWith('.')) continue;
        fs.symlinkSync(path.join(root, 'node_modules', entry), path.join(dir, 'node_modules', entry));
      }
      fs.symlinkSync(path.join(root, 'dist'), path.join(dir, 'dist'));
      const script = `
        const { Disque, task, setImmediateMode } = await import(${JSON.stringify(path.join(dir, 'dist/src/client/index.js'))});
        let found = true;
        try { await import('@opentelemetry/api'); } catch { found = false; }
        setImmediateMode(true);
        const t = task(new Disque({ lazyConnect: true }), 'double');
        t.process((x) => x * 2);
        const r = await t.enqueue(21, { result: true });
        console.log(JSON.stringify({ found, result: await r.result() }));
        process.exit(0);
      `;
      const out = spawnSync(process.execPath, ['--preserve-symlinks', '--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
      expect(out.stderr).not.toMatch(/Error/);
      expect(JSON.parse(out.stdout.trim())).toEqual({ found: false, result: 42 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
