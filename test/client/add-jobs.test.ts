// Adding many jobs at once: client.addJobs() and a task's enqueueMany() and
// map(), pipelined in one round trip per batch, with per-job errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, getFreePort, waitFor, type ServerHandle } from '../helpers/server.js';
import { startCountingProxy, type CountingProxy } from '../helpers/proxy.js';
import {
  Disque,
  jsonCodec,
  task,
  CodecError,
  ConnectionError,
  MaxLenError,
  PausedError,
  InvalidArgumentsError,
  type Worker,
} from '../../src/client/index.js';

let server: ServerHandle;
let proxy: CountingProxy;
let client: Disque;
/** Straight to the server, for workers: their round trips are not counted. */
let direct: Disque;
const workers: Worker<any>[] = [];

let qn = 0;
const queue = () => `bulk-${++qn}`;

beforeAll(async () => {
  server = await startServer();
  proxy = await startCountingProxy(server.port);
  // Through the proxy, which counts round trips; discover: false keeps it there.
  client = new Disque({ nodes: proxy.port, discover: false, preferBestNode: false });
  await client.connect();
  direct = new Disque({ nodes: server.port });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close(1000)));
  client?.disconnect();
  direct?.disconnect();
  await proxy?.close();
  await server?.destroy();
});

describe('client.addJobs', () => {
  it('adds every body and returns the IDs in order; the queue holds them in that order', async () => {
    const q = queue();
    const bodies = Array.from({ length: 25 }, (_, i) => `job-${i}`);
    const { ids, failed } = await client.addJobs(q, bodies, { retry: 30 });
    expect(failed).toEqual([]);
    expect(ids).toHaveLength(25);
    expect(new Set(ids).size).toBe(25);
    const peeked = await client.qpeek(q, 100);
    expect(peeked.map((j) => j.id)).toEqual(ids);
    expect(peeked.map((j) => j.body.toString())).toEqual(bodies);
    expect((await client.show(ids[3]!))?.retry).toBe(30);
  });

  it('sends one round trip per batch', async () => {
    const q = queue();
    // The yardstick: addJob awaited one after the other is a round trip each.
    proxy.reset();
    for (let i = 0; i < 3; i++) await client.addJob(q, 'one');
    expect(proxy.roundTrips).toBe(3);
    proxy.reset();
    const { ids, failed } = await client.addJobs(q, Array.from({ length: 250 }, (_, i) => String(i)), { batchSize: 100 });
    expect(proxy.roundTrips).toBe(3);
    expect(failed).toEqual([]);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(await client.qlen(q)).toBe(253);
  });

  it('reports a job the server refuses with its error and adds the others (MAXLEN)', async () => {
    const q = queue();
    const { ids, failed } = await client.addJobs(q, ['a', 'b', 'c', 'd', 'e'], { maxlen: 3 });
    expect(ids.slice(0, 3).every((id) => typeof id === 'string')).toBe(true);
    expect(ids.slice(3)).toEqual([undefined, undefined]);
    expect(failed.map((f) => f.index)).toEqual([3, 4]);
    for (const f of failed) expect(f.error).toBeInstanceOf(MaxLenError);
    expect((await client.qpeek(q, 10)).map((j) => j.body.toString())).toEqual(['a', 'b', 'c']);
  });

  it('reports a body the codec cannot encode and adds the others', async () => {
    const q = queue();
    const json = client.withCodec(jsonCodec<unknown>());
    const { ids, failed } = await json.addJobs(q, [{ n: 1 }, { n: 10n }, { n: 3 }]);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.index).toBe(1);
    expect(failed[0]!.error).toBeInstanceOf(CodecError);
    expect(ids[1]).toBeUndefined();
    expect((await json.qpeek(q, 10)).map((j) => j.body)).toEqual([{ n: 1 }, { n: 3 }]);
  });

  it('a paused queue refuses each job (PausedError); nothing is thrown', async () => {
    const q = queue();
    await client.addJob(q, 'first');
    await client.pause(q, 'in');
    const { ids, failed } = await client.addJobs(q, ['x', 'y']);
    expect(ids).toEqual([undefined, undefined]);
    expect(failed.map((f) => [f.index, f.error instanceof PausedError])).toEqual([
      [0, true],
      [1, true],
    ]);
    await client.pause(q, 'none');
  });

  it('an empty list adds nothing and sends nothing', async () => {
    proxy.reset();
    expect(await client.addJobs(queue(), [])).toEqual({ ids: [], failed: [] });
    expect(proxy.roundTrips).toBe(0);
  });

  it('with no node reachable every job is reported failed (ConnectionError), after one failoverTimeout', async () => {
    const nowhere = new Disque({ nodes: await getFreePort(), failoverTimeout: 300 });
    const t0 = Date.now();
    const { ids, failed } = await nowhere.addJobs(queue(), ['a', 'b', 'c'], { batchSize: 1 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(ids).toEqual([undefined, undefined, undefined]);
    expect(failed.map((f) => [f.index, f.error instanceof ConnectionError])).toEqual([
      [0, true],
      [1, true],
      [2, true],
    ]);
    nowhere.disconnect();
  });

  it('invalid options throw before anything is sent', async () => {
    const q = queue();
    proxy.reset();
    await expect(client.addJobs(q, ['x'], { batchSize: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(client.addJobs(q, ['x'], { ttl: -1 })).rejects.toBeInstanceOf(RangeError);
    expect(proxy.roundTrips).toBe(0);
  });
});

describe('task bulk enqueue', () => {
  it('enqueueMany adds the calls in one round trip and a worker runs each', async () => {
    const t = task<{ n: number }, number>(client, `bulk-task-${++qn}`);
    proxy.reset();
    const { ids, failed } = await t.enqueueMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(proxy.roundTrips).toBe(1);
    expect(failed).toEqual([]);
    expect(ids).toHaveLength(3);
    const seen: number[] = [];
    const w = task<{ n: number }, number>(direct, t.name).process(({ n }) => void seen.push(n), { fetchTimeout: 200 });
    workers.push(w);
    await waitFor(() => seen.length === 3, 'the three calls run', 5000);
    expect(seen.sort()).toEqual([1, 2, 3]);
  });

  it('enqueueMany checks every argument before sending any', async () => {
    const t = task<unknown>(client, `bulk-task-${++qn}`);
    proxy.reset();
    await expect(t.enqueueMany([{ ok: 1 }, { bad: () => 1 }])).rejects.toBeInstanceOf(InvalidArgumentsError);
    expect(proxy.roundTrips).toBe(0);
    expect(await client.qlen(t.queue)).toBe(0);
  });

  it('map() is pipelined too and its group gives the results in order', async () => {
    const square = task<number, number>(client, `bulk-square-${++qn}`);
    workers.push(task<number, number>(direct, square.name).process((x) => x * x, { fetchTimeout: 200, concurrency: 4 }));
    proxy.reset();
    const group = await square.map([1, 2, 3, 4, 5]);
    // ADDJOB x5 in one round trip (the worker does not go through the proxy).
    expect(proxy.roundTrips).toBe(1);
    expect(await group.result({ timeout: 10000 })).toEqual([1, 4, 9, 16, 25]);
  });
});
