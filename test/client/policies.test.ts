// The bundled client's issue 26 API against a real node: nack(ids, { delay }),
// qpolicy(queue, ...), addJob(..., { unique }), qstat's delayed count and
// policy use, show's unique key; task options rateLimit, globalConcurrency
// and unique.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { trackWorkers } from '../helpers/tasks.js';
import { Disque, task } from '../../src/client/index.js';

let server: ServerHandle;
let client: Disque;
const track = trackWorkers();
let qn = 0;
const queue = () => `cp-${++qn}`;

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
});

describe('client', () => {
  it('qpolicy reads, sets (keeping the limit not given), removes one limit and clears', async () => {
    const q = queue();
    expect(await client.qpolicy(q)).toBeNull();
    await client.qpolicy(q, { rate: { jobs: 20, seconds: 5 } });
    await client.qpolicy(q, { concurrency: 3 });
    expect(await client.qpolicy(q)).toEqual({ rate: { jobs: 20, seconds: 5 }, concurrency: 3 });
    await client.qpolicy(q, { rate: null });
    expect(await client.qpolicy(q)).toEqual({ rate: null, concurrency: 3 });
    await client.qpolicy(q, null);
    expect(await client.qpolicy(q)).toBeNull();
    await expect(client.qpolicy(q, {})).rejects.toThrow(RangeError);
    await expect(client.qpolicy(q, { concurrency: 0 })).rejects.toThrow(/CONCURRENCY must be between/);
  });

  it('nack with a delay: the job comes back after it, same ID; qstat counts it as delayed meanwhile', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x', { retry: 60 });
    await client.getJob(q);
    const t0 = Date.now();
    expect(await client.nack(id, { delay: 0.8 })).toBe(1);
    expect((await client.qstat(q))?.delayed).toBe(1);
    const [job] = await client.getJob(q, { timeout: 5000, withCounters: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    expect(job).toMatchObject({ id, nacks: 1, additionalDeliveries: 0 });
    await expect(client.nack(id, { delay: -1 })).rejects.toThrow(RangeError);
  });

  it('addJob unique returns the pending job; show has the key; qstat the policy use', async () => {
    const q = queue();
    const id = await client.addJob(q, 'first', { unique: 'user-42' });
    expect(await client.addJob(q, 'second', { unique: 'user-42' })).toBe(id);
    expect((await client.show(id))?.unique).toBe('user-42');
    expect((await client.show(await client.addJob(q, 'plain')))?.unique).toBeNull();
    await client.qpolicy(q, { concurrency: 1 });
    await client.getJob(q, { count: 5, noHang: true });
    expect((await client.qstat(q))?.policy).toMatchObject({ concurrencyShare: 1, inFlight: 1, heldByConcurrency: 1 });
  });
});

describe('tasks', () => {
  it('unique: the same arguments while pending give the same job; a key function too; not with result', async () => {
    const name = queue();
    const t = task<{ user: number; lang?: string }>(client, name, { unique: true });
    const a = await t.enqueue({ user: 1, lang: 'fr' });
    expect(await t.enqueue({ lang: 'fr', user: 1 })).toBe(a); // key order does not matter
    expect(await t.enqueue({ user: 2 })).not.toBe(a);
    expect(await t.enqueue({ user: 1, lang: 'fr' }, { unique: 'explicit' })).not.toBe(a);
    await expect(t.enqueue({ user: 1 }, { result: true })).rejects.toThrow(/unique call cannot ask for its result/);
    const byUser = task<{ user: number; at: number }>(client, queue(), { unique: (args) => `user:${args.user}` });
    expect(await byUser.enqueue({ user: 5, at: 1 })).toBe(await byUser.enqueue({ user: 5, at: 2 }));
  });

  it('rateLimit and globalConcurrency are set on the server by process() and bound the calls', async () => {
    const name = queue();
    const t = task<number>(client, name, { rateLimit: { jobs: 3, seconds: 2 }, globalConcurrency: 2 });
    for (let i = 0; i < 6; i++) await t.enqueue(i);
    const started: number[] = [];
    let running = 0;
    let most = 0;
    const w = t.process(async () => {
      started.push(Date.now());
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 150));
      running--;
    }, { concurrency: 6, fetchTimeout: 200 });
    track(w);
    await waitFor(async () => JSON.stringify(await client.qpolicy(name)) === JSON.stringify({ rate: { jobs: 3, seconds: 2 }, concurrency: 2 }), 'the policy is set');
    await waitFor(() => started.length === 6, 'every call ran', 15_000);
    expect(most).toBeLessThanOrEqual(2);
    // Six calls at three per 2 s: the fourth started at least one window after the first.
    expect(started[3]! - started[0]!).toBeGreaterThanOrEqual(1750);
  }, 30_000);
});
