// client.counts() and client.drain() on one node: queued, active, delayed
// and dead-lettered jobs as a user sees them, and emptying a queue without
// touching jobs a consumer holds.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, type ServerHandle } from '../helpers/server.js';
import { Disque } from '../../src/client/index.js';

let server: ServerHandle;
let client: Disque;

let qn = 0;
const queue = () => `counts-${++qn}`;

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
});

describe('counts', () => {
  it('tells queued, active (delivered, not acknowledged) and delayed jobs apart', async () => {
    const q = queue();
    const [a, b, c] = [await client.addJob(q, 'a'), await client.addJob(q, 'b'), await client.addJob(q, 'c')];
    await client.addJob(q, 'later', { delay: 600 });
    expect(await client.counts(q)).toEqual({ queued: 3, active: 0, delayed: 1, unreachable: [] });
    const taken = await client.getJob(q, { count: 2, noHang: true });
    expect(taken.map((j) => j.id)).toEqual([a, b]);
    expect(await client.counts(q)).toEqual({ queued: 1, active: 2, delayed: 1, unreachable: [] });
    await client.ackJob(a);
    await client.nack(b);
    const after = await client.counts(q);
    expect(after).toMatchObject({ queued: 2, active: 0, delayed: 1 });
    expect((await client.qpeek(q, 10)).map((j) => j.id)).toEqual([b, c]);
  });

  it('counts the dead-letter queue when given, and an unknown queue as empty', async () => {
    const q = queue();
    const dlq = `${q}-dead`;
    await client.addJob(q, 'x');
    await client.addJobs(dlq, ['d1', 'd2']);
    expect(await client.counts(q, { deadLetterQueue: dlq })).toEqual({ queued: 1, active: 0, delayed: 0, deadLettered: 2, unreachable: [] });
    expect(await client.counts(`nothing-${Date.now()}`)).toEqual({ queued: 0, active: 0, delayed: 0, unreachable: [] });
  });

  it('pages through a queue longer than one JSCAN page', async () => {
    const q = queue();
    const { failed } = await client.addJobs(q, Array.from({ length: 2500 }, (_, i) => String(i)));
    expect(failed).toEqual([]);
    expect((await client.counts(q)).queued).toBe(2500);
  });
});

describe('drain', () => {
  it('deletes every queued job and returns how many; delivered and delayed jobs stay', async () => {
    const q = queue();
    const ids = (await client.addJobs(q, ['a', 'b', 'c', 'd'])).ids as string[];
    const delayedId = await client.addJob(q, 'later', { delay: 600 });
    const [delivered] = await client.getJob(q, { noHang: true });
    expect(delivered?.id).toBe(ids[0]);
    expect(await client.drain(q)).toBe(3);
    expect(await client.qlen(q)).toBe(0);
    for (const id of ids.slice(1)) expect((await client.show(id))?.state ?? 'gone').not.toBe('queued');
    expect((await client.show(ids[0]!))?.state).toBe('active');
    expect((await client.show(delayedId))?.state).not.toBe('queued');
    expect(await client.counts(q)).toEqual({ queued: 0, active: 1, delayed: 1, unreachable: [] });
    // Acknowledged, not just dequeued: a NACK of the delivered job brings back only that one.
    await client.nack(ids[0]!);
    expect((await client.qpeek(q, 10)).map((j) => j.id)).toEqual([ids[0]]);
    expect(await client.drain(q)).toBe(1);
    expect(await client.drain(q)).toBe(0);
  });

  it('drains a queue longer than one page', async () => {
    const q = queue();
    await client.addJobs(q, Array.from({ length: 2300 }, (_, i) => String(i)));
    expect(await client.drain(q)).toBe(2300);
    expect(await client.qlen(q)).toBe(0);
  });
});
