// Tasks on top of Disque jobs: priorities, results, chains, map, revoke,
// reschedule and kick, each against one real node and against a real
// three-node cluster (caller on one node, worker on another where the
// feature allows), plus a worker killed -9 in the middle of a chain and a
// result waited for while the caller's node is killed -9.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { FETCH, clusterWithProcesses, gate, trackWorkers, unique } from '../helpers/tasks.js';
import {
  Disque,
  task,
  parseDeadLetter,
  TaskFailedError,
  TaskRevokedError,
  TaskTimeoutError,
  AlreadyDeliveredError,
  type TaskFailure,
} from '../../src/client/index.js';

interface Setup {
  /** The caller's client. */
  producer: Disque;
  /** Client workers start from (another node in the cluster). */
  consumer: Disque;
  /** A client on the producer's node, for features that read one node's queues in order. */
  sameNode: Disque;
  close(): Promise<void>;
}

async function oneNode(): Promise<Setup> {
  const server: ServerHandle = await startServer();
  const producer = new Disque({ nodes: server.port });
  const consumer = new Disque({ nodes: server.port });
  return {
    producer,
    consumer,
    sameNode: consumer,
    async close() {
      producer.disconnect();
      consumer.disconnect();
      await server.destroy();
    },
  };
}

async function threeNodes(): Promise<Setup> {
  const c: TestCluster = await startCluster(3);
  const at = (i: number) => new Disque({ nodes: c.nodes[i]!.server.port, preferBestNode: false, failoverTimeout: 8000 });
  const producer = at(0);
  const consumer = at(1);
  const sameNode = at(0);
  return {
    producer,
    consumer,
    sameNode,
    async close() {
      for (const d of [producer, consumer, sameNode]) d.disconnect();
      await c.destroy();
    },
  };
}

const track = trackWorkers();

describe.each([
  ['one node', oneNode],
  ['a 3-node cluster', threeNodes],
] as const)('tasks on %s', (_name, make) => {
  let s: Setup;
  beforeAll(async () => {
    s = await make();
  }, 60_000);
  afterAll(async () => {
    await s?.close();
  });

  it('priorities: a worker takes the higher level first; each level is a queue', async () => {
    const name = unique('prio');
    const levels = ['high', 'normal', 'low'] as const;
    const producerSide = task<string, void>(s.producer, name, { priorities: levels, defaultPriority: 'normal' });
    const workerSide = task<string, void>(s.sameNode, name, { priorities: levels, defaultPriority: 'normal' });
    expect(producerSide.queues).toEqual([`${name}:high`, `${name}:normal`, `${name}:low`]);
    await producerSide.enqueue('low 1', { priority: 'low' });
    await producerSide.enqueue('normal 1');
    await producerSide.enqueue('low 2', { priority: 'low' });
    await producerSide.enqueue('high 1', { priority: 'high' });
    expect(await s.producer.qlen(`${name}:low`)).toBe(2);
    await expect(producerSide.enqueue('x', { priority: 'urgent' })).rejects.toThrow(/priority must be one of high, normal, low/);
    const order: string[] = [];
    const w = track(workerSide.process((args) => void order.push(args), { ...FETCH, autostart: false }));
    w.start();
    await waitFor(() => order.length === 4, 'four calls run', 10_000);
    expect(order).toEqual(['high 1', 'normal 1', 'low 1', 'low 2']);
  });

  it('results: result() returns the value, started() resolves when a worker begins', async () => {
    const name = unique('add');
    const add = task<{ a: number; b: number }, number>(s.producer, name);
    const hold = gate();
    track(
      task<{ a: number; b: number }, number>(s.consumer, name).process(async ({ a, b }) => {
        await hold.promise;
        return a + b;
      }, FETCH),
    );
    const r = await add.enqueue({ a: 2, b: 3 }, { result: { ttl: 60 } });
    expect(r.id).toMatch(/^D-/);
    await r.started({ timeout: 15_000 });
    await expect(r.result({ timeout: 100 })).rejects.toBeInstanceOf(TaskTimeoutError);
    hold.open();
    expect(await r.result({ timeout: 15_000 })).toBe(5);
    expect(await r.result()).toBe(5); // asking again is fine
  });

  it('results: a handler that fails for good throws TaskFailedError carrying the remote error', async () => {
    const name = unique('fails');
    const t = task<number, number>(s.producer, name);
    track(
      task<number, number>(s.consumer, name).process(() => {
        throw new RangeError('too big');
      }, { ...FETCH, maxAttempts: 2 }),
    );
    const r = await t.enqueue(7, { result: true });
    const e = await r.result({ timeout: 15_000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TaskFailedError);
    expect(e).toMatchObject({ task: name, attempts: 2, remote: { name: 'RangeError', message: 'too big' } });
    expect((e as TaskFailedError).remote.stack).toContain('RangeError: too big');
  });

  it('chains: a.then(b).then(c) runs each step on the previous result; the result is the last one', async () => {
    const inc = task<number, number>(s.producer, unique('inc'));
    const double = task<number, number>(s.producer, unique('double'));
    const show = task<number, string>(s.producer, unique('show'));
    const side = (t: { name: string }) => task<any, any>(s.consumer, t.name);
    track(side(inc).process((x: number) => x + 1, FETCH));
    track(side(double).process((x: number) => x * 2, FETCH));
    track(side(show).process((x: number) => `=${x}`, FETCH));
    const r = await inc.then(double).then(show).enqueue(4, { result: { ttl: 60 } });
    expect(await r.result({ timeout: 20_000 })).toBe('=10');
  });

  it('chains: catch(handler) gets the failure of a step given up; the caller gets the error', async () => {
    const first = task<number, number>(s.producer, unique('ok'));
    const broken = task<number, number>(s.producer, unique('broken'));
    const onError = task<TaskFailure, void>(s.producer, unique('on-error'));
    const failures: TaskFailure[] = [];
    track(task<number, number>(s.consumer, first.name).process((x) => x + 1, FETCH));
    track(
      task<number, number>(s.consumer, broken.name).process((x) => {
        throw new Error(`cannot handle ${x}`);
      }, { ...FETCH, maxAttempts: 1 }),
    );
    track(task<TaskFailure, void>(s.consumer, onError.name).process((f) => void failures.push(f), FETCH));
    const r = await first.then(broken).catch(onError).enqueue(1, { result: true });
    await expect(r.result({ timeout: 20_000 })).rejects.toMatchObject({ remote: { message: 'cannot handle 2' }, task: broken.name });
    await waitFor(() => failures.length === 1, 'the catch task runs', 15_000);
    expect(failures[0]).toMatchObject({ task: broken.name, args: 2, attempts: 1, error: { name: 'Error', message: 'cannot handle 2' } });
  });

  it('map: one call per argument, the results in order', async () => {
    const square = task<number, number>(s.producer, unique('square'));
    const plusOne = task<number, number>(s.producer, unique('plus-one'));
    track(task<number, number>(s.consumer, square.name).process((x) => x * x, { ...FETCH, concurrency: 3 }));
    track(task<number, number>(s.consumer, plusOne.name).process((x) => x + 1, FETCH));
    const g = await square.map([1, 2, 3, 4]);
    expect(g.ids).toHaveLength(4);
    expect(await g.result({ timeout: 20_000 })).toEqual([1, 4, 9, 16]);
    const chained = await square.then(plusOne).map([5, 6]);
    expect(await chained.result({ timeout: 20_000 })).toEqual([26, 37]);
  });

  it('revoke by handle and by job ID: an ACKJOB, honoured by every node; the revoked calls never run', async () => {
    const name = unique('revoke');
    const t = task<string, string>(s.producer, name);
    const ran: string[] = [];
    track(task<string, string>(s.consumer, name).process((x) => (ran.push(x), x), FETCH));
    const h = await t.enqueue('revoked by handle', { delay: 1, result: true });
    const id = await t.enqueue('revoked by id', { delay: 1 });
    expect(await h.revoke()).toBe(true);
    expect(await t.revoke(id)).toBe(1);
    await expect(h.result()).rejects.toBeInstanceOf(TaskRevokedError);
    // A call enqueued after them with a longer delay: once it ran, the revoked ones would have too.
    const sentinel = await t.enqueue('sentinel', { delay: 2, result: true });
    expect(await sentinel.result({ timeout: 20_000 })).toBe('sentinel');
    expect(ran).toEqual(['sentinel']);
  });

  it('reschedule: a delayed or queued call runs at its new time under a new ID; its handle still gets the result', async () => {
    const name = unique('resched');
    const t = task<string, string>(s.producer, name);
    const h = await t.enqueue('later', { delay: 3600, result: true });
    const oldId = h.id;
    const queuedId = await t.enqueue('queued');
    const newQueuedId = await t.reschedule(queuedId, { delay: 0 });
    expect(newQueuedId).not.toBe(queuedId);
    expect(await h.reschedule({ delay: 0 })).not.toBe(oldId);
    expect(h.id).not.toBe(oldId);
    const ran: string[] = [];
    track(task<string, string>(s.consumer, name).process((x) => (ran.push(x), x.toUpperCase()), FETCH));
    expect(await h.result({ timeout: 20_000 })).toBe('LATER');
    await waitFor(() => ran.length === 2, 'both rescheduled calls run', 10_000);
    expect(ran.sort()).toEqual(['later', 'queued']);
    expect(await s.producer.show(oldId)).toBeNull();
  });

  it('reschedule refuses a call a worker already has', async () => {
    const name = unique('busy');
    const t = task<number, void>(s.producer, name);
    const hold = gate();
    const w = track(task<number, void>(s.sameNode, name).process(() => hold.promise, FETCH));
    const id = await t.enqueue(1);
    await waitFor(() => w.stats().inFlight === 1, 'the call runs', 10_000);
    await expect(t.reschedule(id, { delay: 10 })).rejects.toBeInstanceOf(AlreadyDeliveredError);
    hold.open();
  });

  it('kick: dead letters go back to their queue and run again', async () => {
    const name = unique('kick');
    const dlq = `${name}-dead`;
    const t = task<string, string>(s.producer, name);
    let fail = true;
    const done: string[] = [];
    const w = track(
      task<string, string>(s.consumer, name).process(
        (x) => {
          if (fail) throw new Error('not now');
          done.push(x);
          return x;
        },
        { ...FETCH, maxAttempts: 1, deadLetterQueue: dlq },
      ),
    );
    await t.enqueue('a');
    await t.enqueue('b');
    await waitFor(() => w.stats().deadLettered === 2, 'both calls are dead-lettered', 15_000);
    fail = false;
    let moved = 0;
    await waitFor(async () => (moved += await t.kick(dlq)) === 2, 'both dead letters are kicked', 15_000);
    await waitFor(() => done.length === 2, 'the kicked calls run', 15_000);
    expect(done.sort()).toEqual(['a', 'b']);
    expect(await t.kick(dlq, { timeout: 50 })).toBe(0);
  });

  it('a result nobody waits for is not read: it stays in the reply queue and expires with its TTL', async () => {
    const name = unique('unwaited');
    const t = task<number, number>(s.producer, name);
    track(task<number, number>(s.sameNode, name).process((x) => x, FETCH));
    const h = await t.enqueue(1, { result: { ttl: 2 } });
    // The worker on the producer's node queues the replies there: started, then the result.
    await waitFor(async () => (await s.producer.qlen(h.replyQueue)) === 2, 'the replies are queued', 10_000);
    await waitFor(async () => (await s.producer.qlen(h.replyQueue)) === 0, 'the reply expires', 10_000);
    await expect(h.result({ timeout: 5000 })).rejects.toBeInstanceOf(TaskTimeoutError);
  });
});

describe('failures in a 3-node cluster', () => {
  const cl = clusterWithProcesses(3);
  const at = cl.at;

  it('a worker process killed -9 in the middle of a chain: the chain still completes', async () => {
    const suffix = unique('kill');
    const fixture = cl.spawnFixture('chain-worker.mjs', [String(cl.cluster().nodes[1]!.server.port), suffix]);
    await fixture.waitFor(/ready/, 1, 'the worker process starts', 15_000);

    const caller = at(0);
    const inc = task<number, number>(caller, `inc-${suffix}`, { defaults: { retry: 2 } });
    const slowDouble = task<number, number>(caller, `slow-double-${suffix}`, { defaults: { retry: 2 } });
    const r = await inc.then(slowDouble).enqueue(20, { result: { ttl: 120 } });
    await fixture.waitFor(/started /, 1, 'the worker process starts the second step', 20_000);
    const secondStep = /started (\S+)/.exec(fixture.output())![1]!;
    await fixture.kill9();

    // Another worker, on another node, takes over the second step when the server queues it again.
    const rescuer = at(2);
    const seen: string[] = [];
    track(task<number, number>(rescuer, slowDouble.name, { defaults: { retry: 2 } }).process((x, ctx) => (seen.push(ctx.job.id), x * 2), FETCH));
    track(task<number, number>(rescuer, inc.name, { defaults: { retry: 2 } }).process((x) => x + 1, FETCH));
    expect(await r.result({ timeout: 30_000 })).toBe(42);
    expect(seen).toEqual([secondStep]);
  });

  it("a result waited for while the caller's node is killed -9 arrives through another node", async () => {
    const name = unique('survives');
    const caller = at(0);
    const t = task<string, string>(caller, name);
    const hold = gate();
    track(
      task<string, string>(at(1), name).process(async (x) => {
        await hold.promise;
        return `${x} done`;
      }, FETCH),
    );
    const r = await t.enqueue('work', { result: { ttl: 120 } });
    await r.started({ timeout: 15_000 });
    const waiting = r.result({ timeout: 40_000 });
    await cl.cluster().kill9(0);
    hold.open();
    expect(await waiting).toBe('work done');
  });
});
