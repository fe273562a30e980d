// The Worker against a real server: acknowledging, NACKing, WORKING while a
// job outlives its retry time, dead letters, backoff, graceful close, tasks.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { FETCH, gate, trackWorkers } from '../helpers/tasks.js';
import {
  Disque,
  Worker,
  jsonCodec,
  parseDeadLetter,
  task,
  type JobContext,
  type Job,
} from '../../src/client/index.js';

let server: ServerHandle;
let client: Disque;
const track = trackWorkers();

let qn = 0;
const queue = () => `wq-${++qn}`;

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
});

describe('processing', () => {
  it('runs the handler and acknowledges the job', async () => {
    const q = queue();
    const id = await client.addJob(q, 'payload');
    const seen: Job[] = [];
    const completed: unknown[] = [];
    const w = track(
      new Worker(client, q, async (job) => {
        seen.push(job);
        return job.body.toString().toUpperCase();
      }, FETCH),
    );
    w.on('completed', (job, result, info) => completed.push([job.id, result, info.attempt]));
    await waitFor(() => completed.length === 1, 'the job completes', 5000);
    expect(completed[0]).toEqual([id, 'PAYLOAD', 1]);
    expect(seen[0]).toMatchObject({ id, queue: q, nacks: 0, additionalDeliveries: 0 });
    expect(seen[0]!.body).toEqual(Buffer.from('payload'));
    await waitFor(async () => (await client.show(id)) === null, 'the acknowledged job is gone', 5000);
    expect(w.stats()).toMatchObject({ fetched: 1, completed: 1, failed: 0, inFlight: 0 });
  });

  it('NACKs a job whose handler throws; the next attempt sees the NACK', async () => {
    const q = queue();
    const id = await client.addJob(q, 'flaky');
    const attempts: [number, number | undefined][] = [];
    const failed: unknown[] = [];
    const w = track(
      new Worker(client, q, async (job, ctx) => {
        attempts.push([ctx.attempt, job.nacks]);
        if (ctx.attempt === 1) throw new Error('first time fails');
      }, FETCH),
    );
    w.on('failed', (job, error, info) => failed.push([job.id, (error as Error).message, info.willRetry]));
    await waitFor(() => w.stats().completed === 1, 'the second attempt completes', 5000);
    expect(attempts).toEqual([
      [1, 0],
      [2, 1],
    ]);
    expect(failed).toEqual([[id, 'first time fails', true]]);
    expect(w.stats()).toMatchObject({ fetched: 2, completed: 1, failed: 1, retried: 1, deadLettered: 0 });
  });

  it('runs at most `concurrency` handlers at once', async () => {
    const q = queue();
    for (let i = 0; i < 6; i++) await client.addJob(q, String(i));
    let now = 0;
    let max = 0;
    const w = track(
      new Worker(
        client,
        q,
        async () => {
          max = Math.max(max, ++now);
          await new Promise((r) => setTimeout(r, 80));
          now--;
        },
        { ...FETCH, concurrency: 2 },
      ),
    );
    await waitFor(() => w.stats().completed === 6, 'six jobs complete', 10000);
    expect(max).toBe(2);
  });

  it('decodes bodies with the client codec', async () => {
    const q = queue();
    const json = client.withCodec(jsonCodec<{ user: string }>());
    await json.addJob(q, { user: 'ada' });
    const users: string[] = [];
    const w = track(new Worker(json, q, (job) => void users.push(job.body.user), FETCH));
    await waitFor(() => w.stats().completed === 1, 'the job completes', 5000);
    expect(users).toEqual(['ada']);
  });

  it('backoff: the failed job is NACKed at once with a DELAY (no slot, no WORKING held), same ID, delivered again after it', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x', { retry: 60 });
    const times: number[] = [];
    const ids: string[] = [];
    const w = track(
      new Worker(
        client,
        q,
        (job) => {
          times.push(Date.now());
          ids.push(job.id);
          if (times.length === 1) throw new Error('again later');
        },
        { ...FETCH, backoff: (attempt) => attempt * 600 },
      ),
    );
    await waitFor(() => w.stats().retried === 1, 'the failed job is NACKed', 5000);
    // The server holds it back: NACKed already, not queued, the worker keeps nothing.
    const shown = await client.show(id);
    expect(shown).toMatchObject({ state: 'active', nacks: 1 });
    expect(await client.qlen(q)).toBe(0);
    expect(w.stats()).toMatchObject({ waitingRetry: 0, inFlight: 0 });
    await waitFor(() => w.stats().completed === 1, 'the retry completes', 5000);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(580);
    expect(ids).toEqual([id, id]);
  });

  // A server without NACK DELAY (the reference Disque): set DISQUE_REFERENCE_BIN to its binary.
  it.skipIf(!process.env.DISQUE_REFERENCE_BIN)('backoff against a server without NACK DELAY keeps the job with WORKING, then NACKs it', async () => {
    const saved = process.env.DISQUE_SERVER_BIN;
    process.env.DISQUE_SERVER_BIN = process.env.DISQUE_REFERENCE_BIN;
    const ref = await startServer().finally(() => {
      if (saved === undefined) delete process.env.DISQUE_SERVER_BIN;
      else process.env.DISQUE_SERVER_BIN = saved;
    });
    const rc = new Disque({ nodes: ref.port });
    try {
      const q = queue();
      await rc.addJob(q, 'x');
      const times: number[] = [];
      const w = track(new Worker(rc, q, () => {
        times.push(Date.now());
        if (times.length === 1) throw new Error('again later');
      }, { ...FETCH, backoff: 500 }));
      await waitFor(() => w.stats().waitingRetry === 1, 'the failed job waits in the worker', 5000);
      expect(await rc.qlen(q)).toBe(0);
      await waitFor(() => w.stats().completed === 1, 'the retry completes', 5000);
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(480);
      await w.close(1000);
    } finally {
      rc.disconnect();
      await ref.destroy();
    }
  });
});

describe('WORKING', () => {
  // RETRY 1: without WORKING the server queues the job again within ~1.25 s.
  async function runLongJob(workingInterval: 'auto' | 0): Promise<{ calls: number; delivered: string[] }> {
    const q = queue();
    const id = await client.addJob(q, 'long', { retry: 1 });
    const delivered: string[] = [];
    const w = track(
      new Worker(
        client,
        q,
        async (job) => {
          delivered.push(job.id);
          await new Promise((r) => setTimeout(r, 2600));
        },
        { ...FETCH, concurrency: 2, workingInterval },
      ),
    );
    await waitFor(() => w.stats().completed >= 1, 'the long job completes', 10000);
    await w.close();
    return { calls: delivered.filter((d) => d === id).length, delivered };
  }

  it('a job running longer than its retry time is delivered once', async () => {
    const [withHeartbeat, without] = await Promise.all([runLongJob('auto'), runLongJob(0)]);
    expect(withHeartbeat.calls).toBe(1);
    // The same job without WORKING is delivered again while the first run goes on.
    expect(without.calls).toBeGreaterThanOrEqual(2);
  });

  it('ctx.working() sends WORKING and returns the retry time', async () => {
    const q = queue();
    await client.addJob(q, 'x', { retry: 9 });
    let retry = -1;
    const w = track(
      new Worker(client, q, async (_job, ctx: JobContext) => {
        retry = await ctx.working();
      }, FETCH),
    );
    await waitFor(() => w.stats().completed === 1, 'the job completes', 5000);
    expect(retry).toBe(9);
  });
});

describe('dead letters', () => {
  it('after maxAttempts failures the job goes to the dead-letter queue with its error, and is acknowledged', async () => {
    const q = queue();
    const dlq = `${q}-dead`;
    const id = await client.addJob(q, Buffer.from([0xff, 0x00, 0x01]));
    let calls = 0;
    const dead: unknown[] = [];
    const w = track(
      new Worker(
        client,
        q,
        () => {
          calls++;
          throw new TypeError(`boom ${calls}`);
        },
        { ...FETCH, maxAttempts: 3, deadLetterQueue: dlq },
      ),
    );
    w.on('deadLettered', (job, error, info) => dead.push([job.id, (error as Error).message, info]));
    await waitFor(() => dead.length === 1, 'the job is dead-lettered', 5000);
    expect(calls).toBe(3);
    const [deadJob] = await client.getJob(dlq, { noHang: true });
    expect(dead[0]).toEqual([id, 'boom 3', { attempt: 3, deadLetterQueue: dlq, deadLetterId: deadJob!.id }]);
    const letter = parseDeadLetter(deadJob!.body);
    expect(letter).toMatchObject({
      id,
      queue: q,
      attempts: 3,
      nacks: 2,
      additionalDeliveries: 0,
      nodeId: client.node?.id,
      error: { name: 'TypeError', message: 'boom 3' },
    });
    expect(letter.body).toEqual(Buffer.from([0xff, 0x00, 0x01]));
    expect(letter.failedAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
    await waitFor(async () => (await client.show(id)) === null, 'the original job is acknowledged', 5000);
    expect(w.stats()).toMatchObject({ failed: 3, retried: 2, deadLettered: 1, completed: 0 });
  });

  it('a job already delivered maxAttempts times is dead-lettered without running', async () => {
    const q = queue();
    const dlq = `${q}-dead`;
    const id = await client.addJob(q, 'poison');
    for (let i = 0; i < 2; i++) {
      await client.getJob(q, { noHang: true });
      await client.nack(id);
    }
    let calls = 0;
    const w = track(new Worker(client, q, () => void calls++, { ...FETCH, maxAttempts: 2, deadLetterQueue: dlq }));
    await waitFor(() => w.stats().deadLettered === 1, 'the job is dead-lettered', 5000);
    expect(calls).toBe(0);
    const [deadJob] = await client.getJob(dlq, { noHang: true });
    expect(parseDeadLetter(deadJob!.body)).toMatchObject({ id, nacks: 2, attempts: 3, error: { name: 'MaxAttemptsError' } });
  });

  it('a body the codec cannot decode counts as a failed attempt', async () => {
    const q = queue();
    const dlq = `${q}-dead`;
    await client.addJob(q, '{not json');
    const w = track(
      new Worker(client.withCodec(jsonCodec()), q, () => {}, { ...FETCH, maxAttempts: 1, deadLetterQueue: dlq }),
    );
    await waitFor(() => w.stats().deadLettered === 1, 'the job is dead-lettered', 5000);
    const [deadJob] = await client.getJob(dlq, { noHang: true });
    const letter = parseDeadLetter(deadJob!.body);
    expect(letter.error.name).toBe('CodecError');
    expect(letter.body.toString()).toBe('{not json');
  });
});

describe('close', () => {
  it('stops fetching and waits for jobs in flight, which are then acknowledged', async () => {
    const q = queue();
    const ids = [await client.addJob(q, 'a'), await client.addJob(q, 'b')];
    const hold = gate();
    let started = 0;
    const w = track(
      new Worker(
        client,
        q,
        async () => {
          started++;
          await hold.promise;
        },
        { ...FETCH, concurrency: 3 },
      ),
    );
    await waitFor(() => started === 2, 'both jobs start', 5000);
    let closed = false;
    const closing = w.close().then(() => (closed = true));
    const later = await client.addJob(q, 'after close');
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(false);
    hold.open();
    await closing;
    expect(w.stats()).toMatchObject({ completed: 2, inFlight: 0, abandoned: 0 });
    for (const id of ids) await waitFor(async () => (await client.show(id)) === null, `job ${id} acknowledged`, 5000);
    expect((await client.show(later))?.state).toBe('queued');
    expect(started).toBe(2);
  });

  it('after its timeout, close() abandons running handlers: signal aborted, no ACK, the server queues the job again', async () => {
    const q = queue();
    const id = await client.addJob(q, 'stuck', { retry: 1 });
    let aborted = false;
    const w = track(
      new Worker(client, q, (_job, ctx) => {
        return new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          });
        });
      }, FETCH),
    );
    await waitFor(() => w.stats().inFlight === 1, 'the job starts', 5000);
    const t0 = Date.now();
    await w.close(200);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(aborted).toBe(true);
    expect(w.stats()).toMatchObject({ abandoned: 1, completed: 0 });
    await waitFor(async () => (await client.show(id))?.state === 'queued', 'the server queues the job again', 5000);
    expect((await client.show(id))?.additionalDeliveries).toBe(1);
  });

  it('close() leaves a job in its backoff to the server: NACKed with a DELAY, it comes back after it to any worker', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const w = track(
      new Worker(
        client,
        q,
        () => {
          throw new Error('no');
        },
        { ...FETCH, backoff: 60_000 },
      ),
    );
    await waitFor(() => w.stats().retried === 1, 'the job is NACKed with its backoff', 5000);
    const t0 = Date.now();
    await w.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await client.show(id)).toMatchObject({ state: 'active', nacks: 1 });
    expect((await client.qstat(q))?.delayed).toBe(1);
  });

  it('handleSignals closes the worker on the signal', async () => {
    const q = queue();
    const keep = () => {}; // another listener: the worker must not re-raise the signal and end the test process
    process.on('SIGUSR2', keep);
    try {
      const w = track(new Worker(client, q, () => {}, { ...FETCH, handleSignals: ['SIGUSR2'] }));
      let closed = false;
      w.on('closed', () => (closed = true));
      process.emit('SIGUSR2');
      await waitFor(() => closed, 'the worker closes', 5000);
      expect(w.closed).toBe(true);
    } finally {
      process.off('SIGUSR2', keep);
    }
  });
});

describe('task()', () => {
  it('enqueues JSON arguments and processes them by name', async () => {
    const add = task<{ a: number; b: number }, number>(client, `add-${Date.now()}`);
    const id = await add.enqueue({ a: 2, b: 3 }, { retry: 5 });
    expect((await client.show(id))?.body.toString()).toBe(JSON.stringify({ task: add.name, args: { a: 2, b: 3 } }));
    expect((await client.show(id))?.retry).toBe(5);
    const results: unknown[] = [];
    const w = track(add.process(({ a, b }) => a + b, FETCH));
    w.on('completed', (_job, result) => results.push(result));
    await waitFor(() => results.length === 1, 'the task runs', 5000);
    expect(results).toEqual([5]);
  });

  it('a task on a shared queue refuses calls of another task', async () => {
    const q = queue();
    const a = task<number>(client, 'task-a', { queue: q });
    const b = task<number>(client, 'task-b', { queue: q });
    await b.enqueue(1);
    const errors: string[] = [];
    const w = track(a.process(() => 1, { ...FETCH, maxAttempts: 1 }));
    w.on('failed', (_job, e) => errors.push((e as Error).message));
    await waitFor(() => errors.length === 1, 'the foreign call fails', 5000);
    expect(errors[0]).toContain('not a call of task task-a');
  });
});
