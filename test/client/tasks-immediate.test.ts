// Immediate mode with no server running (the client points at a closed
// port), argument checks, and the compile-time types of tasks.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  Disque,
  task,
  setImmediateMode,
  immediateMode,
  isJobId,
  InvalidArgumentsError,
  TaskFailedError,
  DisqueError,
  type TaskFailure,
} from '../../src/client/index.js';
import { getFreePort } from '../helpers/server.js';

let client: Disque;
let n = 0;
const unique = (what: string) => `${what}-${++n}`;

beforeAll(async () => {
  // Nothing listens there: any command would fail with ConnectionError.
  client = new Disque({ nodes: await getFreePort(), failoverTimeout: 200 });
  setImmediateMode(true);
});
afterAll(() => {
  setImmediateMode(false);
  client.disconnect();
});

describe('immediate mode, no server', () => {
  it('runs the handler at once; the handle has the result', async () => {
    expect(immediateMode()).toBe(true);
    const add = task<{ a: number; b: number }, number>(client, unique('add'));
    const w = add.process(({ a, b }) => a + b);
    const completed: unknown[] = [];
    w.on('completed', (job, result, info) => completed.push([isJobId(job.id), result, info.attempt]));
    const r = await add.enqueue({ a: 2, b: 3 }, { result: { ttl: 60 } });
    await r.started();
    expect(await r.result()).toBe(5);
    expect(completed).toEqual([[true, 5, 1]]);
    expect(isJobId(await add.enqueue({ a: 1, b: 1 }))).toBe(true);
    expect(client.node).toBeUndefined(); // never connected
    await w.close();
  });

  it('progress reaches the handle; a batch runs its calls, then its callbacks', async () => {
    const steps = task<number, string>(client, unique('steps'));
    steps.process(async (k, ctx) => {
      for (let i = 1; i <= k; i++) await ctx.progress(i);
      if (k > 2) throw new Error('too many');
      return `did ${k}`;
    });
    const r = await steps.enqueue(2, { result: true });
    expect(await r.progress()).toBe(2);
    expect(await r.result()).toBe('did 2');

    const callbacks: string[] = [];
    const onSuccess = task<string, void>(client, unique('on-success'));
    const onComplete = task<string, void>(client, unique('on-complete'));
    onSuccess.process((tag) => void callbacks.push(`success ${tag}`));
    onComplete.process((tag) => void callbacks.push(`complete ${tag}`));
    const ok = await steps.batch([1, 2], { onSuccess: { task: onSuccess, args: 'a' }, onComplete: { task: onComplete, args: 'a' } });
    expect(await ok.result()).toEqual(['did 1', 'did 2']);
    const bad = await steps.batch([1, 3], { onSuccess: { task: onSuccess, args: 'b' }, onComplete: { task: onComplete, args: 'b' } });
    expect((await bad.settled()).map((x) => x.status)).toEqual(['fulfilled', 'rejected']);
    expect(callbacks).toEqual(['success a', 'complete a', 'complete b']);
  });

  it('arguments and results go through JSON, as they would over the wire', async () => {
    const echo = task<{ when: string; skip?: number }, { when: string; nothing: null }>(client, unique('echo'));
    let seen: unknown;
    echo.process((args, ctx) => {
      seen = ctx.job.body;
      return { when: args.when, nothing: undefined as unknown as null };
    });
    const r = await echo.enqueue({ when: 'now', skip: undefined }, { result: true });
    expect(seen).toEqual({ task: echo.name, args: { when: 'now' }, reply: expect.any(Object) });
    expect(await r.result()).toEqual({ when: 'now' });
  });

  it('retries up to maxAttempts, then the result throws TaskFailedError and the catch task runs', async () => {
    const flaky = task<number, number>(client, unique('flaky'));
    let calls = 0;
    const w = flaky.process(
      (x, ctx) => {
        calls++;
        if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt}`);
        return x;
      },
      { maxAttempts: 3 },
    );
    const failed: boolean[] = [];
    w.on('failed', (_job, _e, info) => failed.push(info.willRetry));
    expect(await (await flaky.enqueue(7, { result: true })).result()).toBe(7);
    expect(calls).toBe(3);
    expect(failed).toEqual([true, true]);

    const broken = task<number, number>(client, unique('broken'));
    broken.process(() => {
      throw new TypeError('never works');
    }, { maxAttempts: 2 });
    const onError = task<TaskFailure, void>(client, unique('on-error'));
    const failures: TaskFailure[] = [];
    onError.process((f) => void failures.push(f));
    const r = await broken.catch(onError).enqueue(1, { result: true });
    const e = await r.result().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TaskFailedError);
    expect(e).toMatchObject({ remote: { name: 'TypeError', message: 'never works' }, attempts: 2 });
    expect(failures).toMatchObject([{ task: broken.name, args: 1, attempts: 2, error: { message: 'never works' } }]);
  });

  it('chains and map', async () => {
    const inc = task<number, number>(client, unique('inc'));
    const double = task<number, number>(client, unique('double'));
    inc.process((x) => x + 1);
    double.process((x) => x * 2);
    expect(await (await inc.then(double).enqueue(1, { result: true })).result()).toBe(4);
    expect(await (await inc.map([1, 2, 3])).result()).toEqual([2, 3, 4]);
    expect(await (await inc.then(double).map([0, 10])).result()).toEqual([2, 22]);
  });

  it('a task without a handler in this process is an error; immediate: false on a task overrides the switch', async () => {
    await expect(task<number>(client, unique('nobody')).enqueue(1)).rejects.toThrow(/has no handler in this process/);
    const remote = task<number>(client, unique('remote'), { immediate: false });
    await expect(remote.enqueue(1)).rejects.toThrow(/no Disque node reachable/);
  });

  it('a handler closed with its worker no longer runs calls', async () => {
    const t = task<number>(client, unique('closed'));
    const w = t.process(() => 1);
    await w.close();
    await expect(t.enqueue(1)).rejects.toBeInstanceOf(DisqueError);
  });
});

describe('argument checks', () => {
  const t = task<any, unknown>(new Disque({ nodes: 1, failoverTimeout: 100 }), 'checked', {
    immediate: false,
    validate: (args: any) => typeof args?.to === 'string',
  });

  it.each([
    ['a function', { to: 'x', f: () => 1 }, 'args.f'],
    ['a BigInt', { to: 'x', n: 1n }, 'args.n'],
    ['NaN', { to: 'x', list: [1, NaN] }, 'args.list[1]'],
    ['a Date', { to: 'x', at: new Date() }, 'args.at'],
    ['a Map', { to: 'x', m: new Map() }, 'args.m'],
    ['undefined in an array', { to: 'x', list: [undefined] }, 'args.list[0]'],
  ])('refuses %s before sending anything, naming where it is', async (_what, args, where) => {
    const e = await t.enqueue(args).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidArgumentsError);
    expect((e as InvalidArgumentsError).path).toBe(where);
    expect((e as Error).message).toContain(`task checked: ${where}`);
  });

  it('refuses a cycle', async () => {
    const args: any = { to: 'x' };
    args.self = args;
    await expect(t.enqueue(args)).rejects.toThrow(/args.self refers to itself/);
  });

  it('runs validate: false or a throw refuses the call', async () => {
    await expect(t.enqueue({ too: 'x' })).rejects.toThrow(/invalid arguments \(refused by validate\)/);
    const strict = task<unknown>(client, 'strict', {
      validate: () => {
        throw new Error('to is required');
      },
    });
    await expect(strict.enqueue({})).rejects.toThrow(/task strict: invalid arguments: to is required/);
  });
});

describe('types', () => {
  it('a wrong argument or result shape is a compile error (test/fixtures/task-types.ts)', () => {
    const root = path.resolve(import.meta.dirname, '../..');
    const r = spawnSync(
      path.join(root, 'node_modules/.bin/tsc'),
      ['--noEmit', '--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', '--skipLibCheck', 'test/fixtures/task-types.ts'],
      { cwd: root, encoding: 'utf8' },
    );
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);
});
