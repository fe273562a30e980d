// Progress, the default of no retries for tasks, and revoking a pending call
// from another client, against one real node (with its HTTP port for the
// dashboard's progress endpoint).
import { describe, it, expect } from 'vitest';
import { getFreeHttpPort, waitFor } from '../helpers/server.js';
import { FETCH, gate, oneNodeClients, trackWorkers, unique } from '../helpers/tasks.js';
import { Disque, Worker, task, TaskFailedError, TaskRevokedError } from '../../src/client/index.js';

const httpPort = await getFreeHttpPort();
const s = oneNodeClients({ config: { 'http-port': String(httpPort) } });
const track = trackWorkers();

describe('progress', () => {
  it('streams ctx.progress() to r.on("progress"); r.progress(), t.progress(id) and HTTP give the newest', async () => {
    const name = unique('progress');
    const t = task<number, string>(s.producer, name);
    const step = gate();
    const finish = gate();
    track(
      task<number, string>(s.consumer, name).process(async (steps, ctx) => {
        for (let i = 1; i <= steps; i++) await ctx.progress({ done: i, of: steps });
        step.open();
        await finish.promise;
        await ctx.progress({ done: steps, of: steps, note: 'last' });
        return 'ok';
      }, FETCH),
    );
    const r = await t.enqueue(3, { result: { ttl: 60 } });
    const seen: unknown[] = [];
    r.on('progress', (v) => seen.push(v));
    await step.promise;
    await waitFor(() => seen.length > 0 && (seen.at(-1) as { done: number }).done === 3, 'the third report is streamed', 10_000);
    expect(await r.progress()).toEqual({ done: 3, of: 3 });
    expect(await t.progress(r.id)).toEqual({ done: 3, of: 3 });
    // Reports arrive in order (the newest wins if any were coalesced).
    const dones = seen.map((v) => (v as { done: number }).done);
    expect([...dones].sort((a, b) => a - b)).toEqual(dones);
    // The dashboard's endpoint reads the same record.
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/job/${encodeURIComponent(r.id)}/progress`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ progress: { value: { done: 3, of: 3 } } });
    // Only the newest record is kept.
    await waitFor(async () => (await s.producer.qlen(`disque-ts-progress:${r.id}`)) === 1, 'older records are acknowledged', 5000);
    finish.open();
    expect(await r.result({ timeout: 10_000 })).toBe('ok');
    expect(await r.progress()).toEqual({ done: 3, of: 3, note: 'last' });
  });

  it('refuses a progress value JSON cannot carry, and a job without progress has none', async () => {
    const name = unique('progress-bad');
    const t = task<null, string>(s.producer, name);
    track(
      task<null, string>(s.consumer, name).process(async (_a, ctx) => {
        try {
          await ctx.progress(new Map());
          return 'accepted';
        } catch (e) {
          return (e as Error).name;
        }
      }, FETCH),
    );
    const r = await t.enqueue(null, { result: true });
    expect(await r.result({ timeout: 10_000 })).toBe('InvalidArgumentsError');
    expect(await r.progress()).toBeUndefined();
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/job/${encodeURIComponent(r.id)}/progress`);
    expect(await res.json()).toMatchObject({ progress: null });
  });
});

describe('retries', () => {
  it('a task call whose handler throws fails at once by default: TaskFailedError after one attempt', async () => {
    const name = unique('fails-once');
    const t = task<number, number>(s.producer, name);
    let runs = 0;
    const w = track(
      task<number, number>(s.consumer, name).process(() => {
        runs++;
        throw new Error('nope');
      }, FETCH),
    );
    const r = await t.enqueue(1, { result: true });
    const e = await r.result({ timeout: 10_000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TaskFailedError);
    expect(e).toMatchObject({ attempts: 1, remote: { message: 'nope' } });
    expect(runs).toBe(1);
    await waitFor(() => w.stats().deadLettered === 1, 'the call is given up', 5000);
    expect(w.stats()).toMatchObject({ failed: 1, retried: 0 });
  });

  it('the task option retries: 2 runs the handler three times before TaskFailedError', async () => {
    const name = unique('fails-thrice');
    const t = task<number, number>(s.producer, name, { retries: 2 });
    let runs = 0;
    track(
      task<number, number>(s.consumer, name, { retries: 2 }).process(() => {
        runs++;
        throw new Error(`run ${runs}`);
      }, FETCH),
    );
    const r = await t.enqueue(1, { result: true });
    await expect(r.result({ timeout: 15_000 })).rejects.toMatchObject({ attempts: 3, remote: { message: 'run 3' } });
    expect(runs).toBe(3);
  });

  it('a plain Worker keeps retrying a failing job (Disque retries until the TTL)', async () => {
    const queue = unique('plain');
    let runs = 0;
    const w = track(
      new Worker(s.consumer, queue, () => {
        runs++;
        throw new Error('again');
      }, FETCH),
    );
    await s.producer.addJob(queue, 'x');
    await waitFor(() => runs >= 3, 'the job is tried a third time', 10_000);
    expect(w.stats().deadLettered).toBe(0);
  });
});

describe('revoke', () => {
  it('revoking a pending call by ID from another client: the caller\'s handle throws TaskRevokedError', async () => {
    const name = unique('revoke-pending');
    const t = task<string, string>(s.producer, name);
    const elsewhere = new Disque({ nodes: s.server.port });
    try {
      const r = await t.enqueue('never runs', { delay: 30, result: { ttl: 60 } });
      const waiting = r.result({ timeout: 10_000 }).catch((e: unknown) => e);
      expect(await task(elsewhere, name).revoke(r.id)).toBe(1);
      expect(await waiting).toBeInstanceOf(TaskRevokedError);
      // Acknowledged: gone at once from a single node, or kept as acked until every copy is.
      expect((await s.producer.show(r.id))?.state ?? 'gone').toMatch(/^(acked|gone)$/);
    } finally {
      elsewhere.disconnect();
    }
  });
});
