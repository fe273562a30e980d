// What makes the Worker fast, seen from outside: ACKs batched per
// event-loop turn (fewer ACKJOB calls than jobs, yet a killed worker's
// unacknowledged jobs come back), jobs fetched ahead for quick handlers
// (run by pause(), handed back by close() when a stuck handler kept them
// from starting), no WORKING for handlers that return
// quickly; and revocation: a job acknowledged elsewhere (another node)
// aborts the handler's signal.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { waitFor } from '../helpers/server.js';
import { startCluster, infoField, type TestCluster } from '../helpers/cluster.js';
import { postWithCsrf, startHttpServer } from '../helpers/http.js';
import { FETCH, oneNodeClients, trackWorkers } from '../helpers/tasks.js';
import { Disque, JobRevokedError, Worker, revokeJob, type Job } from '../../src/client/index.js';

const one = oneNodeClients();
const track = trackWorkers();
const procs: ChildProcess[] = [];
let qn = 0;
const queue = () => `tq-${process.pid}-${++qn}`;

/** Calls of a command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function calls(c: Disque, command: string): Promise<number> {
  const text = (await c.call('INFO', 'commandstats')) as string;
  const line = infoField(text, `cmdstat_${command}`);
  return line ? Number(/calls=(\d+)/.exec(line)![1]) : 0;
}

afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

describe('ACK batching', () => {
  it('jobs finishing in the same turn share an ACKJOB; every job is acknowledged once, after its handler', async () => {
    const q = queue();
    const n = 400;
    await one.producer.addJobs(q, Array.from({ length: n }, (_, i) => `job ${i}`));
    await one.producer.call('CONFIG', 'RESETSTAT');
    const seen = new Map<string, number>();
    const w = track(new Worker(one.producer, q, (job) => void seen.set(job.id, (seen.get(job.id) ?? 0) + 1), { ...FETCH, concurrency: 50 }));
    await waitFor(() => w.stats().completed === n, 'every job completes', 20_000);
    expect(seen.size).toBe(n);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(await one.producer.qlen(q)).toBe(0);
    const acks = await calls(one.producer, 'ackjob');
    expect(acks).toBeGreaterThan(0);
    expect(acks).toBeLessThan(n / 4);
  });

  it('a worker process killed -9: the jobs it acknowledged stay done, the ones it held come back, none is lost', async () => {
    const q = queue();
    const quick = (await one.producer.addJobs(q, Array.from({ length: 30 }, (_, i) => `quick ${i}`), { retry: 2 })).ids as string[];
    const held = (await one.producer.addJobs(q, ['hold 1', 'hold 2', 'hold 3'], { retry: 2 })).ids as string[];
    const fixture = path.join(import.meta.dirname, '../fixtures/ack-worker.mjs');
    const proc = spawn(process.execPath, [fixture, String(one.server.port), q], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(proc);
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    const ids = (word: string) => new Set([...out.matchAll(new RegExp(`^${word} (\\S+)`, 'gm'))].map((m) => m[1]));
    await waitFor(() => ids('held').size === 3 && ids('done').size === 30, 'the process finishes the quick jobs and holds three', 30_000);
    proc.kill('SIGKILL');
    await new Promise((resolve) => proc.once('exit', resolve));

    const again: string[] = [];
    const w = track(new Worker(one.producer, q, (job: Job) => void again.push(job.id), FETCH));
    await waitFor(() => again.length >= 3, 'the held jobs are delivered again', 15_000);
    // Long enough for a quick job wrongly left unacknowledged to come back too (retry 2 s).
    await new Promise((r) => setTimeout(r, 2500));
    await w.close();
    expect(again.sort()).toEqual([...held].sort());
    for (const id of quick) expect(await one.producer.show(id)).toBeNull();
  });
});

describe('prefetch', () => {
  it('quick handlers take jobs several per GETJOB, even at concurrency 1', async () => {
    const q = queue();
    const n = 600;
    await one.producer.addJobs(q, Array.from({ length: n }, (_, i) => `job ${i}`));
    await one.producer.call('CONFIG', 'RESETSTAT');
    const w = track(new Worker(one.producer, q, () => {}, FETCH));
    await waitFor(() => w.stats().completed === n, 'every job completes', 20_000);
    expect(await calls(one.producer, 'getjob')).toBeLessThan(n / 4);
    expect(await one.producer.qlen(q)).toBe(0);
  });

  it('pause() runs the jobs held ahead before it resolves; nothing is left active', async () => {
    const q = queue();
    const n = 50;
    await one.producer.addJobs(q, Array.from({ length: n }, (_, i) => `job ${i}`), { retry: 300 });
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const w = track(new Worker(one.producer, q, () => hold, { ...FETCH, prefetch: 20 }));
    await waitFor(() => w.stats().prefetched > 0, 'jobs are held ahead', 5000);
    const paused = w.pause();
    release();
    await paused;
    const s = w.stats();
    expect(s).toMatchObject({ prefetched: 0, inFlight: 0, completed: s.fetched });
    expect(s.fetched).toBeGreaterThan(1);
    expect(await one.producer.qlen(q)).toBe(n - s.completed);
  });

  it('close(): held jobs a stuck handler keeps from starting go back to the queue at once, not after their retry time', async () => {
    const q = queue();
    const n = 30;
    await one.producer.addJobs(q, Array.from({ length: n }, (_, i) => `job ${i}`), { retry: 300 });
    const w = track(new Worker(one.producer, q, () => new Promise<void>(() => {}), { ...FETCH, prefetch: 10, closeTimeout: 300 }));
    await waitFor(() => w.stats().prefetched > 0, 'jobs are held ahead', 5000);
    await w.close();
    expect(w.stats()).toMatchObject({ abandoned: 1, completed: 0 });
    // Only the abandoned job waits for its retry time; another worker takes every other one now.
    expect(await one.producer.qlen(q)).toBe(n - 1);
    let got = 0;
    const w2 = track(new Worker(one.producer, q, () => void got++, FETCH));
    await waitFor(() => got === n - 1, 'the rest is processed', 10_000);
  });
});

describe('WORKING', () => {
  it('jobs held ahead behind a long handler keep their delivery (WORKING while held): each runs once', async () => {
    const q = queue();
    const ids = (await one.producer.addJobs(q, ['slow', 'a', 'b', 'c'], { retry: 1 })).ids as string[];
    const runs: string[] = [];
    const w = track(
      new Worker(one.producer, q, async (job) => {
        runs.push(job.id);
        if (job.body.toString() === 'slow') await new Promise((r) => setTimeout(r, 2500));
      }, { ...FETCH, prefetch: 3 }),
    );
    await waitFor(() => w.stats().completed === 4, 'every job completes', 10_000);
    // A job queued again while held would come back within ~1.25 s.
    await new Promise((r) => setTimeout(r, 1500));
    expect([...runs].sort()).toEqual([...ids].sort());
  });


  it('quick handlers cost no WORKING', async () => {
    const q = queue();
    await one.producer.addJobs(q, Array.from({ length: 100 }, (_, i) => `job ${i}`), { retry: 1 });
    await one.producer.call('CONFIG', 'RESETSTAT');
    const w = track(new Worker(one.producer, q, () => {}, { ...FETCH, concurrency: 10 }));
    await waitFor(() => w.stats().completed === 100, 'every job completes', 10_000);
    expect(await calls(one.producer, 'working')).toBe(0);
  });

  it('a handler running past its retry time keeps its job: WORKING starts before the server would queue it again', async () => {
    const q = queue();
    const id = await one.producer.addJob(q, 'long', { retry: 1 });
    const delivered: string[] = [];
    const w = track(
      new Worker(one.producer, q, async (job) => {
        delivered.push(job.id);
        await new Promise((r) => setTimeout(r, 3000));
      }, { ...FETCH, concurrency: 2 }),
    );
    await waitFor(() => w.stats().completed === 1, 'the long job completes', 10_000);
    expect(delivered).toEqual([id]);
    expect(await calls(one.producer, 'working')).toBeGreaterThanOrEqual(3);
  });
});

describe('revoke', () => {
  it('revokeJob (ACKJOB) while the handler runs aborts its signal with JobRevokedError; no ACK or NACK follows', async () => {
    const q = queue();
    const id = await one.producer.addJob(q, 'x', { retry: 2 });
    let reason: unknown;
    const revoked: string[] = [];
    const w = track(
      new Worker(one.producer, q, (_job, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((reason = ctx.signal.reason), resolve()))), {
        ...FETCH,
        revocationCheck: 300,
      }),
    );
    w.on('revoked', (job) => revoked.push(job.id));
    await waitFor(() => w.stats().inFlight === 1, 'the handler runs', 5000);
    const t0 = Date.now();
    expect(await revokeJob(one.producer, id)).toBe(true);
    await waitFor(() => reason !== undefined, 'the handler is told', 5000);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(reason).toBeInstanceOf(JobRevokedError);
    expect((reason as JobRevokedError).jobId).toBe(id);
    expect(revoked).toEqual([id]);
    await waitFor(() => w.stats().inFlight === 0, 'the slot frees', 5000);
    expect(w.stats()).toMatchObject({ revoked: 1, completed: 0, failed: 0, retried: 0 });
  });
});

describe("revoke from the dashboard", () => {
  it("the dashboard's ACK of a running job aborts its handler", async () => {
    const h = await startHttpServer();
    const c = new Disque({ nodes: h.port });
    try {
      const q = queue();
      const id = await c.addJob(q, 'x', { retry: 5 });
      let reason: unknown;
      const w = track(
        new Worker(c, q, (_job, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((reason = ctx.signal.reason), resolve()))), {
          ...FETCH,
          revocationCheck: 300,
        }),
      );
      await waitFor(() => w.stats().inFlight === 1, 'the handler runs', 5000);
      const res = await postWithCsrf(h.http, `/api/job/${encodeURIComponent(id)}/ack`);
      expect(res.json).toEqual({ ok: true, result: 1 });
      await waitFor(() => reason !== undefined, 'the handler is told', 5000);
      expect(reason).toBeInstanceOf(JobRevokedError);
      await w.close();
    } finally {
      c.disconnect();
      await h.destroy();
    }
  });
});

describe('revoke across nodes', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await startCluster(2);
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
  });

  it.each([
    [2, 'a copy on both nodes', 1],
    [1, 'node B has no copy: its dummy ack reaches A', 0],
  ])('ACKJOB on node B aborts the handler running on a worker connected to node A within one WORKING interval (REPLICATE %i: %s)', async (replicate, _what, knownAtB) => {
    const a = new Disque({ nodes: c.nodes[0]!.server.port, preferBestNode: false });
    const b = new Disque({ nodes: c.nodes[1]!.server.port, preferBestNode: false });
    try {
      const q = queue();
      // RETRY 2: WORKING every 750 ms; the revocation checks are left to WORKING.
      const id = await a.addJob(q, 'long', { retry: 2, replicate });
      let reason: unknown;
      let nodeId: string | undefined;
      const w = track(
        new Worker(a, q, (_job, ctx) => {
          nodeId = ctx.nodeId;
          return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((reason = ctx.signal.reason), resolve())));
        }, { ...FETCH, revocationCheck: 0 }),
      );
      await waitFor(() => w.stats().inFlight === 1, 'the handler runs on node A', 5000);
      expect(nodeId).toBe(c.nodes[0]!.id);
      // Past the first WORKING: the next comes 750 ms after it.
      await new Promise((r) => setTimeout(r, 400));
      const t0 = Date.now();
      expect(await b.ackJob(id)).toBe(knownAtB);
      await waitFor(() => reason !== undefined, 'the handler on node A is told', 5000);
      // One WORKING interval, plus room for a loaded machine.
      expect(Date.now() - t0).toBeLessThan(750 + 1000);
      expect(reason).toBeInstanceOf(JobRevokedError);
      await waitFor(() => w.stats().inFlight === 0, 'the slot frees', 5000);
      expect(w.stats()).toMatchObject({ revoked: 1, completed: 0, retried: 0 });
      await w.close();
      // Nobody gets the job again.
      await waitFor(async () => (await a.show(id)) === null, 'the job is collected on node A', 10_000);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  }, 30_000);
});
