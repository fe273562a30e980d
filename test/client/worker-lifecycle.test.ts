// The Worker's lifecycle as a BullMQ user expects it: waitUntilReady and
// the ready, active, completed, failed, drained and closed events, pause and
// resume, an idle worker that closes at once without losing a job, and the
// times delivered jobs and results carry.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, getFreePort, waitFor, type ServerHandle } from '../helpers/server.js';
import { gate, trackWorkers } from '../helpers/tasks.js';
import { Disque, Worker, ConnectionError, ClientClosedError, task, type Job, type JobContext } from '../../src/client/index.js';

let server: ServerHandle;
let client: Disque;
const track = trackWorkers();

let qn = 0;
const queue = () => `life-${++qn}`;

/** GETJOBs the server has run so far (INFO commandstats). */
async function getjobCalls(): Promise<number> {
  const stats = await client.info('commandstats');
  const line = String(stats.commandstats?.cmdstat_getjob ?? '');
  return Number(/calls=(\d+)/.exec(line)?.[1] ?? 0);
}

const blockedOn = async (q: string) => (await client.qstat(q))?.blocked ?? 0;

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
});

describe('ready', () => {
  it('waitUntilReady resolves once the worker is connected; ready is emitted once', async () => {
    const q = queue();
    const w = track(new Worker(client, q, () => {}, { fetchTimeout: 100 }));
    let readies = 0;
    w.on('ready', () => readies++);
    await w.waitUntilReady();
    expect(w.node?.id).toBe((await client.hello()).id);
    await w.waitUntilReady();
    await waitFor(async () => (await getjobCalls()) > 0 && (await blockedOn(q)) === 1, 'the worker blocks in GETJOB', 5000);
    expect(readies).toBe(1);
  });

  it('with autostart false, waitUntilReady connects without fetching; start() then fetches', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const done: string[] = [];
    const w = track(new Worker(client, q, (job) => void done.push(job.id), { fetchTimeout: 100, autostart: false }));
    await w.waitUntilReady();
    expect(w.isRunning()).toBe(false);
    expect(await client.qlen(q)).toBe(1);
    w.start();
    await waitFor(() => done.length === 1, 'the job runs after start()', 5000);
    expect(done).toEqual([id]);
  });

  it('rejects when no node can be reached, and on a closed worker', async () => {
    const nowhere = new Disque({ nodes: await getFreePort(), failoverTimeout: 300 });
    const w = track(new Worker(nowhere, queue(), () => {}, { autostart: false }));
    await expect(w.waitUntilReady()).rejects.toBeInstanceOf(ConnectionError);
    await w.close();
    await expect(w.waitUntilReady()).rejects.toBeInstanceOf(ClientClosedError);
    nowhere.disconnect();
  });
});

describe('events', () => {
  it('ready, active, completed and drained, in that order, with the handler times', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const events: string[] = [];
    let ctxStartedAt: Date | undefined;
    const w = new Worker(
      client,
      q,
      (_job, ctx: JobContext) => {
        ctxStartedAt = ctx.startedAt;
        return 'ok';
      },
      { fetchTimeout: 100, autostart: false },
    );
    track(w);
    let active: { attempt: number; startedAt: Date } | undefined;
    let completed: { attempt: number; durationMs: number; startedAt: Date; finishedAt: Date } | undefined;
    w.on('ready', () => events.push('ready'));
    w.on('active', (job, info) => {
      events.push(`active ${job.id === id}`);
      active = info;
    });
    w.on('completed', (job, result, info) => {
      events.push(`completed ${result}`);
      completed = info;
    });
    w.on('drained', () => events.push('drained'));
    w.on('closed', () => events.push('closed'));
    const before = Date.now();
    w.start();
    await waitFor(() => events.includes('drained'), 'the queue is drained', 5000);
    await w.close();
    expect(events).toEqual(['ready', 'active true', 'completed ok', 'drained', 'closed']);
    expect(active?.startedAt).toBe(ctxStartedAt);
    expect(active?.startedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(completed?.startedAt).toBe(ctxStartedAt);
    expect(completed!.finishedAt.getTime()).toBeGreaterThanOrEqual(completed!.startedAt.getTime());
    expect(completed!.durationMs).toBe(completed!.finishedAt.getTime() - completed!.startedAt.getTime());
  });

  it('failed carries finishedAt; drained comes once each time the queues run empty, not at every idle fetch', async () => {
    const q = queue();
    let drained = 0;
    const failures: Date[] = [];
    const w = track(
      new Worker(
        client,
        q,
        (job) => {
          if (job.body.toString() === 'bad') throw new Error('bad job');
        },
        { fetchTimeout: 100, maxAttempts: 1 },
      ),
    );
    w.on('drained', () => drained++);
    w.on('failed', (_job, _e, info) => failures.push(info.finishedAt));
    await waitFor(() => drained === 1, 'drained on the empty queue', 5000);
    // Several blocking GETJOBs time out on the empty queue: no new drained.
    const calls = await getjobCalls();
    await waitFor(async () => (await getjobCalls()) >= calls + 3, 'three more fetches', 5000);
    expect(drained).toBe(1);
    await client.addJobs(q, ['good', 'bad']);
    await waitFor(() => w.stats().completed + w.stats().deadLettered === 2, 'both jobs are done', 5000);
    await waitFor(() => drained === 2, 'drained again', 5000);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(Date);
  });
});

describe('pause and resume', () => {
  it('pause() stops fetching at once and resolves when the running handlers have finished; resume() fetches again', async () => {
    const q = queue();
    const hold = gate();
    const started: string[] = [];
    const w = track(
      new Worker(
        client,
        q,
        async (job) => {
          started.push(job.id);
          await hold.promise;
        },
        { concurrency: 3, fetchTimeout: 30_000 },
      ),
    );
    const events: string[] = [];
    w.on('paused', () => events.push('paused'));
    w.on('resumed', () => events.push('resumed'));
    const [a, b] = (await client.addJobs(q, ['a', 'b'])).ids as string[];
    await waitFor(() => started.length === 2, 'both jobs start', 5000);
    // The third slot is free: the worker waits in a blocking GETJOB.
    await waitFor(async () => (await blockedOn(q)) === 1, 'the worker blocks in GETJOB', 5000);
    let paused = false;
    const pausing = w.pause().then(() => (paused = true));
    // The blocking GETJOB (30 s) is interrupted well before its timeout.
    await waitFor(async () => (await blockedOn(q)) === 0, 'the GETJOB is interrupted', 2000);
    expect(w.isPaused()).toBe(true);
    expect(w.isRunning()).toBe(false);
    expect(paused).toBe(false); // handlers still run
    const c = await client.addJob(q, 'c');
    hold.open();
    await pausing;
    expect(w.stats()).toMatchObject({ completed: 2, inFlight: 0 });
    for (const id of [a, b]) expect(await client.show(id)).toBeNull();
    // Paused: nothing fetches, the new job stays queued.
    expect(await blockedOn(q)).toBe(0);
    expect((await client.show(c))?.state).toBe('queued');
    w.resume();
    await waitFor(() => started.includes(c), 'the job added while paused runs after resume()', 5000);
    expect(events).toEqual(['paused', 'resumed']);
    expect(w.isPaused()).toBe(false);
  });
});

describe('close', () => {
  it('an idle worker closes within 50 ms, not after its fetch timeout', async () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const q = queue();
      const w = track(new Worker(client, q, () => {}, { fetchTimeout: 30_000 }));
      await waitFor(async () => (await blockedOn(q)) === 1, 'the worker blocks in GETJOB', 5000);
      const t0 = performance.now();
      await w.close();
      times.push(performance.now() - t0);
      expect(await blockedOn(q)).toBe(0);
    }
    // Best of three: a loaded machine may stall one of them; none waits for the 30 s fetch.
    expect(Math.min(...times)).toBeLessThan(50);
    expect(Math.max(...times)).toBeLessThan(5000);
  });

  it('a job added as close() interrupts the fetch is processed or queued again at once, never left to its retry time', async () => {
    for (let i = 0; i < 10; i++) {
      const q = queue();
      const done: string[] = [];
      const w = track(new Worker(client, q, (job) => void done.push(job.id), { fetchTimeout: 30_000 }));
      await waitFor(async () => (await blockedOn(q)) === 1, 'the worker blocks in GETJOB', 5000);
      // RETRY 300: a job lost with the connection would stay active for five minutes.
      // The ADDJOB usually reaches the server first: the interrupted GETJOB
      // delivers the job, and the worker hands it back (ENQUEUE).
      const [id] = await Promise.all([client.addJob(q, 'race', { retry: 300 }), w.close()]);
      if (done.includes(id)) {
        expect(await client.show(id)).toBeNull();
      } else {
        await waitFor(async () => (await client.show(id))?.state === 'queued', `job ${id} is queued again`, 2000);
        await client.ackJob(id);
      }
    }
  });
});

describe('times', () => {
  it('withCreatedAt: delivered jobs carry their creation time (from SHOW); without it they carry none', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const created = (await client.show(id))!.createdAt;
    expect(Math.abs(created.getTime() - Date.now())).toBeLessThan(60_000);
    const seen: Job[] = [];
    const w = track(new Worker(client, q, (job) => void seen.push(job), { fetchTimeout: 100, withCreatedAt: true }));
    await waitFor(() => seen.length === 1, 'the job runs', 5000);
    expect(seen[0]!.createdAt).toEqual(created);
    await w.close();

    const plain: Job[] = [];
    const q2 = queue();
    await client.addJob(q2, 'y');
    track(new Worker(client, q2, (job) => void plain.push(job), { fetchTimeout: 100 }));
    await waitFor(() => plain.length === 1, 'the job runs', 5000);
    expect(plain[0]!.createdAt).toBeUndefined();
  });

  it('getJob and qpeek fill createdAt when asked', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const created = (await client.show(id))!.createdAt;
    expect((await client.qpeek(q, 1, { withCreatedAt: true }))[0]!.createdAt).toEqual(created);
    expect((await client.qpeek(q, 1))[0]!.createdAt).toBeUndefined();
    const [job] = await client.getJob(q, { noHang: true, withCreatedAt: true });
    expect(job!.createdAt).toEqual(created);
    await client.ackJob(id);
  });

  it('a task result carries when the call started and finished', async () => {
    const t = task<number, number>(client, `times-${++qn}`);
    track(t.process(async (x) => x + 1, { fetchTimeout: 100 }));
    const before = Date.now();
    const r = await t.enqueue(1, { result: true });
    expect(r.finishedAt).toBeUndefined();
    expect(await r.result({ timeout: 5000 })).toBe(2);
    await r.started();
    expect(r.startedAt).toBeInstanceOf(Date);
    expect(r.finishedAt).toBeInstanceOf(Date);
    expect(r.startedAt!.getTime()).toBeGreaterThanOrEqual(before);
    expect(r.finishedAt!.getTime()).toBeGreaterThanOrEqual(r.startedAt!.getTime());
    expect(r.finishedAt!.getTime()).toBeLessThanOrEqual(Date.now());
  });
});
