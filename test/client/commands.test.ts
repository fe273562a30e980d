// Every Disque client method against a real server process: the values and
// errors a user of the library sees.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import {
  Disque,
  jsonCodec,
  msgpackCodec,
  stringCodec,
  BadIdError,
  ClientClosedError,
  CodecError,
  InterruptedError,
  CommandError,
  MaxLenError,
  NoJobError,
  NoReplError,
  PausedError,
  ReplyError,
  TooLateError,
  isJobId,
  parseJobId,
} from '../../src/client/index.js';

let server: ServerHandle;
let client: Disque;
const others: Disque<unknown>[] = [];

let qn = 0;
const queue = () => `cmd-${++qn}`;

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the command to fail');
}

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterAll(async () => {
  client?.disconnect();
  for (const c of others) c.disconnect();
  await server?.destroy();
});

describe('connection and node information', () => {
  it('connect() returns the node, with the ID HELLO reports', async () => {
    const node = await client.connect();
    const hello = await client.hello();
    expect(hello.version).toBe(1);
    expect(node.id).toBe(hello.id);
    expect(node.id).toMatch(/^[0-9a-f]{40}$/);
    expect(node).toMatchObject({ host: '127.0.0.1', port: server.port, priority: 1 });
    expect(hello.nodes).toHaveLength(1);
    expect(hello.nodes[0]).toMatchObject({ id: hello.id, port: server.port, priority: 1 });
    expect(client.node?.id).toBe(hello.id);
    expect(client.knownNodes().map((n) => n.id)).toEqual([hello.id]);
  });

  it('info() parses sections and numeric fields; a section can be asked for', async () => {
    await client.addJob(queue(), 'x');
    const info = await client.info();
    expect(info.server?.disque_version).toBeTypeOf('string');
    expect(info.server?.tcp_port).toBe(server.port);
    expect(info.jobs?.registered_jobs).toBeGreaterThanOrEqual(1);
    const jobs = await client.info('jobs');
    expect(Object.keys(jobs)).toEqual(['jobs']);
  });

  it('ping() answers PONG', async () => {
    expect(await client.ping()).toBe('PONG');
  });

  it('call() sends any command', async () => {
    expect(await client.call('CLUSTER', 'MYID')).toBe(client.node?.id);
  });
});

describe('addJob and show', () => {
  it('returns a job ID carrying the node prefix, and SHOW describes the job', async () => {
    const q = queue();
    const id = await client.addJob(q, 'hello', { retry: 7, ttl: 3600 });
    expect(isJobId(id)).toBe(true);
    expect(parseJobId(id)).toMatchObject({ nodePrefix: client.node!.id.slice(0, 8), atMostOnce: false });
    const job = await client.show(id);
    expect(job).not.toBeNull();
    expect(job).toMatchObject({
      id,
      queue: q,
      state: 'queued',
      replicate: 1,
      retry: 7,
      delay: 0,
      nacks: 0,
      additionalDeliveries: 0,
      nodesDelivered: [client.node!.id],
      nodesConfirmed: [],
    });
    expect(job!.ttl).toBeGreaterThan(3590);
    expect(job!.ttl).toBeLessThanOrEqual(3600);
    expect(Math.abs(job!.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect(job!.nextRequeueWithin).toBeGreaterThan(0);
    expect(job!.nextRequeueWithin).toBeLessThanOrEqual(7_500);
    expect(job!.body).toEqual(Buffer.from('hello'));
  });

  it('RETRY 0 makes an at most once job', async () => {
    const id = await client.addJob(queue(), 'once', { retry: 0 });
    expect(parseJobId(id)?.atMostOnce).toBe(true);
    expect((await client.show(id))?.retry).toBe(0);
  });

  it('DELAY keeps the job out of the queue until it elapses', async () => {
    const q = queue();
    const id = await client.addJob(q, 'later', { delay: 1, replicate: 1, async: true, timeout: 1000 });
    expect((await client.show(id))?.delay).toBe(1);
    expect(await client.qlen(q)).toBe(0);
    await waitFor(async () => (await client.qlen(q)) === 1, 'the delayed job is queued', 5000);
  });

  it('bodies are binary safe', async () => {
    const q = queue();
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const id = await client.addJob(q, bytes);
    expect((await client.show(id))?.body).toEqual(bytes);
    const [job] = await client.getJob(q, { noHang: true });
    expect(job?.body).toEqual(bytes);
  });

  it('show() is null for an unknown job and BadIdError for a malformed ID', async () => {
    const unknown = (await client.addJob(queue(), 'x')).replace(/-[A-Za-z0-9+/]{24}-/, '-AAAAAAAAAAAAAAAAAAAAAAAA-');
    expect(await client.show(unknown)).toBeNull();
    const e = await rejection(client.show('not-a-job-id'));
    expect(e).toBeInstanceOf(BadIdError);
    expect(e).toBeInstanceOf(ReplyError);
    expect((e as BadIdError).code).toBe('BADID');
    expect((e as BadIdError).command).toBe('SHOW');
  });

  it('MAXLEN refuses a job once the queue is that long (MaxLenError)', async () => {
    const q = queue();
    await client.addJob(q, 'a', { maxlen: 1 });
    const e = await rejection(client.addJob(q, 'b', { maxlen: 1 }));
    expect(e).toBeInstanceOf(MaxLenError);
    expect(await client.qlen(q)).toBe(1);
  });

  it('more replicas than nodes is a NoReplError', async () => {
    const e = await rejection(client.addJob(queue(), 'x', { replicate: 3, timeout: 500 }));
    expect(e).toBeInstanceOf(NoReplError);
    expect((e as NoReplError).code).toBe('NOREPL');
  });

  it('rejects option values that are not non-negative integers before sending', async () => {
    await expect(client.addJob(queue(), 'x', { ttl: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(client.addJob(queue(), 'x', { retry: 1.5 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('getJob', () => {
  it('returns [] with noHang or after its timeout when nothing is queued', async () => {
    const q = queue();
    expect(await client.getJob(q, { noHang: true })).toEqual([]);
    const t0 = Date.now();
    expect(await client.getJob(q, { timeout: 150 })).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });

  it('takes up to count jobs in order, queues left to right', async () => {
    const [q1, q2] = [queue(), queue()];
    const a = await client.addJob(q2, 'a');
    const b = await client.addJob(q2, 'b');
    const c = await client.addJob(q2, 'c');
    const jobs = await client.getJob([q1, q2], { count: 2, noHang: true });
    expect(jobs.map((j) => [j.queue, j.id, j.body.toString()])).toEqual([
      [q2, a, 'a'],
      [q2, b, 'b'],
    ]);
    expect(jobs[0]).not.toHaveProperty('nacks');
    const d = await client.addJob(q1, 'd');
    // COUNT goes on to the next queue when the first runs out.
    expect((await client.getJob([q1, q2], { count: 5, noHang: true })).map((j) => j.id)).toEqual([d, c]);
  });

  it('withCounters reports NACKs and additional deliveries', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    const [first] = await client.getJob(q, { withCounters: true, noHang: true });
    expect(first).toMatchObject({ id, nacks: 0, additionalDeliveries: 0 });
    expect(await client.nack(id)).toBe(1);
    const [second] = await client.getJob(q, { withCounters: true, noHang: true });
    expect(second).toMatchObject({ id, nacks: 1, additionalDeliveries: 0 });
    expect(await client.enqueue(id)).toBe(1);
    const [third] = await client.getJob(q, { withCounters: true, noHang: true });
    expect(third).toMatchObject({ id, nacks: 1, additionalDeliveries: 1 });
  });

  it('a blocking getJob on a duplicate returns when a job is added', async () => {
    const q = queue();
    const consumer = client.duplicate();
    others.push(consumer as Disque<unknown>);
    const pending = consumer.getJob(q);
    await waitFor(async () => (await client.qstat(q))?.blocked === 1, 'the consumer blocks on the queue', 5000);
    const id = await client.addJob(q, 'wake up');
    const [job] = await pending;
    expect(job?.id).toBe(id);
    expect(consumer.node?.id).toBe(client.node?.id);
  });

  it('COUNT 0 is refused by the server as a CommandError', async () => {
    const e = await rejection(client.getJob(queue(), { count: 0, noHang: true }));
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).code).toBe('ERR');
  });
});

describe('acknowledging and moving jobs', () => {
  it('ackJob acknowledges: the job is gone and a second ACK counts nothing', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    await client.getJob(q, { noHang: true });
    expect(await client.ackJob(id)).toBe(1);
    await waitFor(async () => (await client.show(id)) === null, 'the acked job is collected', 5000);
    expect(await client.ackJob([id])).toBe(0);
    expect(await client.ackJob([])).toBe(0);
  });

  it('fastAck deletes jobs and counts them', async () => {
    const q = queue();
    const ids = [await client.addJob(q, 'a'), await client.addJob(q, 'b')];
    expect(await client.fastAck(ids)).toBe(2);
    expect(await client.qlen(q)).toBe(0);
    expect(await client.show(ids[0]!)).toBeNull();
  });

  it('nack puts a delivered job back in its queue at once', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    await client.getJob(q, { noHang: true });
    expect(await client.qlen(q)).toBe(0);
    expect(await client.nack([id])).toBe(1);
    expect(await client.qlen(q)).toBe(1);
    expect((await client.show(id))?.nacks).toBe(1);
    expect(await client.nack(id)).toBe(0); // already queued
  });

  it('working returns the retry time and postpones the next delivery', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x', { retry: 2 });
    await client.getJob(q, { noHang: true });
    expect(await client.working(id)).toBe(2);
    const job = await client.show(id);
    expect(job?.state).toBe('active');
    expect(job!.nextRequeueWithin).toBeGreaterThan(1_000);
  });

  it('working on an unknown job is a NoJobError', async () => {
    const id = await client.addJob(queue(), 'x');
    await client.delJob(id);
    expect(await rejection(client.working(id))).toBeInstanceOf(NoJobError);
  });

  it('working after half the TTL is a TooLateError', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x', { ttl: 2, retry: 1 });
    await client.getJob(q, { noHang: true });
    await waitFor(
      async () => (await rejection(client.working(id))) instanceof TooLateError,
      'WORKING is refused after half the TTL',
      5000,
    );
  });

  it('enqueue, dequeue and delJob count the jobs they changed', async () => {
    const q = queue();
    const id = await client.addJob(q, 'x');
    expect(await client.enqueue(id)).toBe(0); // already queued
    expect(await client.dequeue(id)).toBe(1);
    expect(await client.qlen(q)).toBe(0);
    expect((await client.show(id))?.state).toBe('active');
    expect(await client.dequeue(id)).toBe(0);
    expect(await client.enqueue([id])).toBe(1);
    expect(await client.qlen(q)).toBe(1);
    expect(await client.delJob(id)).toBe(1);
    expect(await client.show(id)).toBeNull();
    expect(await client.delJob(id)).toBe(0);
  });
});

describe('queues', () => {
  it('qlen and qpeek (oldest first, or newest first with a negative count) leave jobs queued', async () => {
    const q = queue();
    const ids = [await client.addJob(q, '1'), await client.addJob(q, '2'), await client.addJob(q, '3')];
    expect(await client.qlen(q)).toBe(3);
    expect((await client.qpeek(q, 2)).map((j) => j.id)).toEqual(ids.slice(0, 2));
    const newest = await client.qpeek(q, -2);
    expect(newest.map((j) => [j.queue, j.id, j.body.toString()])).toEqual([
      [q, ids[2], '3'],
      [q, ids[1], '2'],
    ]);
    expect(await client.qlen(q)).toBe(3);
    expect(await client.qpeek(queue(), 5)).toEqual([]);
  });

  it('qstat describes a queue and is null for an unknown one', async () => {
    const q = queue();
    await client.addJob(q, 'a');
    await client.addJob(q, 'b');
    await client.getJob(q, { noHang: true });
    expect(await client.qstat(q)).toMatchObject({
      name: q,
      len: 1,
      blocked: 0,
      importFrom: [],
      importRate: 0,
      jobsIn: 2,
      jobsOut: 1,
      pause: 'none',
    });
    expect(await client.qstat('no-such-queue-' + Date.now())).toBeNull();
  });

  it('pause sets, reads and clears the paused state; PAUSED refuses new jobs', async () => {
    const q = queue();
    await client.addJob(q, 'x');
    expect(await client.pause(q, 'state')).toBe('none');
    expect(await client.pause(q, 'in')).toBe('in');
    expect(await rejection(client.addJob(q, 'y'))).toBeInstanceOf(PausedError);
    expect(await client.pause(q, ['in', 'out'])).toBe('all');
    expect((await client.qstat(q))?.pause).toBe('all');
    expect(await client.getJob(q, { timeout: 100 })).toEqual([]);
    expect(await client.pause(q, 'none', { bcast: true })).toBe('none');
    expect(await client.getJob(q, { noHang: true })).toHaveLength(1);
    expect(await client.pause(q, 'out')).toBe('out');
    expect(await client.pause(q, 'all')).toBe('all');
    expect(await client.pause(q, 'none')).toBe('none');
  });

  it('qscan iterates over all pages and filters by length', async () => {
    const prefix = `scan-${Date.now()}-`;
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}${i}`);
    for (const [i, n] of names.entries()) {
      await client.addJob(n, 'a');
      if (i < 5) await client.addJob(n, 'b');
    }
    const seen = new Set<string>();
    for await (const name of client.qscan({ count: 3 })) seen.add(name);
    for (const n of names) expect(seen).toContain(n);
    const long = new Set<string>();
    for await (const name of client.qscan({ minLen: 2, count: 3 })) if (name.startsWith(prefix)) long.add(name);
    expect([...long].sort()).toEqual(names.slice(0, 5).sort());
    const busy = new Set<string>();
    for await (const name of client.qscan({ busyLoop: true, maxLen: 1 })) if (name.startsWith(prefix)) busy.add(name);
    expect(busy.size).toBe(20);
  });

  it('jscan iterates job IDs, filters by queue and state, and gives SHOW details with reply all', async () => {
    const q = queue();
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push(await client.addJob(q, `job ${i}`));
    const [taken] = await client.getJob(q, { noHang: true });
    const all = new Set<string>();
    for await (const id of client.jscan({ queue: q, count: 4 })) all.add(id);
    expect([...all].sort()).toEqual([...ids].sort());
    const queued = new Set<string>();
    for await (const id of client.jscan({ queue: q, state: 'queued' })) queued.add(id);
    expect(queued.size).toBe(11);
    expect(queued.has(taken!.id)).toBe(false);
    const either = new Set<string>();
    for await (const id of client.jscan({ queue: q, state: ['queued', 'active'], busyLoop: true })) either.add(id);
    expect(either.size).toBe(12);
    const details = [];
    for await (const job of client.withCodec(stringCodec).jscan({ queue: q, state: 'active', reply: 'all' })) details.push(job);
    expect(details).toHaveLength(1);
    expect(details[0]).toMatchObject({ id: taken!.id, queue: q, state: 'active', body: taken!.body.toString() });
  });
});

describe('codecs', () => {
  it('a client codec encodes and decodes every body', async () => {
    const json = new Disque({ nodes: server.port, codec: jsonCodec<{ n: number; tags: string[] }>() });
    others.push(json as Disque<unknown>);
    const q = queue();
    const id = await json.addJob(q, { n: 1, tags: ['a'] });
    expect((await json.show(id))?.body).toEqual({ n: 1, tags: ['a'] });
    expect((await json.qpeek(q, 1))[0]?.body).toEqual({ n: 1, tags: ['a'] });
    expect((await json.getJob(q, { noHang: true }))[0]?.body).toEqual({ n: 1, tags: ['a'] });
    // The bytes on the wire are plain JSON.
    expect((await client.show(id))?.body.toString()).toBe('{"n":1,"tags":["a"]}');
  });

  it('a codec can be given per call, and withCodec() shares the connection', async () => {
    const q = queue();
    const msgpack = msgpackCodec<{ when: Date; data: Buffer }>();
    const value = { when: new Date(1_700_000_000_000), data: Buffer.from([0, 1, 2, 255]) };
    await client.addJob(q, value, { codec: msgpack });
    const [job] = await client.getJob(q, { noHang: true, codec: msgpack });
    expect(job?.body.when).toEqual(value.when);
    expect(Buffer.from(job!.body.data)).toEqual(value.data);
    const strings = client.withCodec(stringCodec);
    await strings.addJob(q, 'text ü');
    expect((await strings.getJob(q, { noHang: true }))[0]?.body).toBe('text ü');
  });

  it('a body the codec cannot decode is a CodecError', async () => {
    const q = queue();
    await client.addJob(q, 'not json {');
    expect(await rejection(client.getJob(q, { noHang: true, codec: jsonCodec() }))).toBeInstanceOf(CodecError);
  });
});

describe('closing', () => {
  it('commands after quit() fail with ClientClosedError', async () => {
    const c = new Disque({ nodes: server.port });
    await c.ping();
    await c.quit();
    expect(await rejection(c.ping())).toBeInstanceOf(ClientClosedError);
  });

  it('disconnect() fails a blocked getJob with ClientClosedError', async () => {
    const c = new Disque({ nodes: server.port });
    await c.connect();
    const pending = rejection(c.getJob(queue()));
    await waitFor(async () => Number((await client.info('clients')).clients?.blocked_clients) >= 1, 'the client blocks', 5000);
    c.disconnect();
    expect(await pending).toBeInstanceOf(ClientClosedError);
  });

  it('interrupt() ends a blocked getJob with InterruptedError; the server unblocks it and the client goes on', async () => {
    const q = queue();
    const c = new Disque({ nodes: server.port });
    others.push(c as Disque<unknown>);
    await c.connect();
    const pending = rejection(c.getJob(q));
    await waitFor(async () => (await client.qstat(q))?.blocked === 1, 'the client blocks on the queue', 5000);
    c.interrupt();
    expect(await pending).toBeInstanceOf(InterruptedError);
    await waitFor(async () => (await client.qstat(q))?.blocked === 0, 'the server no longer blocks it', 5000);
    // A job added now is not sent to the interrupted connection: the next GETJOB gets it.
    const id = await client.addJob(q, 'after');
    expect((await c.getJob(q, { timeout: 1000 })).map((j) => j.id)).toEqual([id]);
  });

  it('a first connection to an address where nothing listens fails with ConnectionError after failoverTimeout', async () => {
    const c = new Disque({ nodes: '127.0.0.1:1', failoverTimeout: 300 });
    const t0 = Date.now();
    const e = await rejection(c.ping());
    expect(e.name).toBe('ConnectionError');
    expect(e.message).toContain('127.0.0.1:1');
    expect(Date.now() - t0).toBeLessThan(5000);
    c.disconnect();
  });
});
