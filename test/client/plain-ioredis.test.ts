// The commands the bundled client covers (commands.test.ts), sent with a
// plain ioredis connection and `call()`/`callBuffer()`: a generic Redis
// client with its default options needs nothing from disque-ts. Replies and
// error texts are the reference's.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Redis, ReplyError } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { pairs } from '../helpers/replies.js';

let server: ServerHandle;
let redis: Redis;
const connectionErrors: Error[] = [];
const extra: Redis[] = [];

let qn = 0;
const queue = () => `plain-${++qn}`;

const JOB_ID = /^D-[0-9a-f]{8}-[A-Za-z0-9+/]{24}-[0-9a-f]{4}$/;

/** The error a command must fail with (the test fails if it succeeds). */
async function replyError(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error reply');
}

/** ADDJOB with a 0 ms timeout and the given options; returns the job ID. */
async function addJob(q: string, body: string | Buffer, ...options: (string | number)[]): Promise<string> {
  const id = await redis.call('ADDJOB', q, body, 0, ...options);
  expect(id).toMatch(JOB_ID);
  return id as string;
}

async function show(id: string): Promise<Record<string, unknown> | null> {
  const reply = await redis.call('SHOW', id);
  return reply === null ? null : pairs(reply);
}

/** Every item of a QSCAN/JSCAN, following the cursor until it is 0 again. */
async function scanAll(command: 'QSCAN' | 'JSCAN', ...args: (string | number)[]): Promise<unknown[]> {
  const items: unknown[] = [];
  let cursor = '0';
  let calls = 0;
  do {
    const [next, page] = (await redis.call(command, cursor, ...args)) as [string, unknown[]];
    expect(typeof next).toBe('string');
    expect(Array.isArray(page)).toBe(true);
    items.push(...page);
    cursor = next;
    if (++calls > 10_000) throw new Error(`${command} did not finish`);
  } while (cursor !== '0');
  return items;
}

beforeAll(async () => {
  server = await startServer();
  // Default options only: ioredis tries RESP3 (HELLO 3) and CLIENT SETINFO,
  // gets errors it tolerates, and runs its INFO ready check.
  redis = new Redis({ host: server.host, port: server.port });
  redis.on('error', (e: Error) => connectionErrors.push(e));
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', () => resolve());
    redis.once('end', () => reject(new Error('connection ended before ready')));
  });
});
afterAll(async () => {
  redis?.disconnect();
  for (const r of extra) r.disconnect();
  await server?.destroy();
});

describe('connecting with default options', () => {
  it('becomes ready without connection errors and answers PING', async () => {
    expect(redis.status).toBe('ready');
    expect(await redis.ping()).toBe('PONG');
    expect(await redis.call('PING', 'hi')).toBe('hi');
    expect(connectionErrors).toEqual([]);
  });

  it('HELLO lists this node with its port and priority', async () => {
    const hello = (await redis.call('HELLO')) as unknown[];
    expect(hello[0]).toBe(1);
    const myid = hello[1] as string;
    expect(myid).toMatch(/^[0-9a-f]{40}$/);
    expect(await redis.call('CLUSTER', 'MYID')).toBe(myid);
    const nodes = hello.slice(2) as unknown[][];
    expect(nodes).toHaveLength(1);
    const [id, , port, priority] = nodes[0]!;
    expect(id).toBe(myid);
    // The reference sends port and priority as bulk strings.
    expect(Number(port)).toBe(server.port);
    expect(Number(priority)).toBe(1);
  });

  it('INFO is text with sections; one section can be asked for', async () => {
    await addJob(queue(), 'x');
    const info = (await redis.call('INFO')) as string;
    expect(info).toContain('# Server\r\n');
    expect(info).toContain(`tcp_port:${server.port}\r\n`);
    expect(Number(/registered_jobs:(\d+)/.exec(info)?.[1])).toBeGreaterThanOrEqual(1);
    const jobs = (await redis.call('INFO', 'jobs')) as string;
    expect(jobs.startsWith('# Jobs\r\n')).toBe(true);
    expect(jobs).not.toContain('# Server');
  });
});

describe('ADDJOB and SHOW', () => {
  it('ADDJOB with RETRY, TTL and REPLICATE; SHOW reports them', async () => {
    const q = queue();
    const id = await addJob(q, 'hello', 'RETRY', 7, 'TTL', 3600, 'REPLICATE', 1);
    const myid = (await redis.call('CLUSTER', 'MYID')) as string;
    expect(id.slice(2, 10)).toBe(myid.slice(0, 8));
    expect(parseInt(id.slice(-4), 16) & 1).toBe(1); // at least once
    const job = (await show(id))!;
    expect(job).toMatchObject({
      id,
      queue: q,
      state: 'queued',
      repl: 1,
      delay: 0,
      retry: 7,
      nacks: 0,
      'additional-deliveries': 0,
      'nodes-delivered': [myid],
      'nodes-confirmed': [],
      body: 'hello',
    });
    expect(job.ttl).toBeGreaterThan(3590);
    expect(job.ttl).toBeLessThanOrEqual(3600);
    expect(job['next-requeue-within']).toBeGreaterThan(0);
    expect(job['next-requeue-within']).toBeLessThanOrEqual(7_500);
    // ctime is in nanoseconds (ioredis reads it as a number, losing the last digits).
    expect(Math.abs(Number(job.ctime) / 1e6 - Date.now())).toBeLessThan(60_000);
  });

  it('RETRY 0 makes an at most once job (even last ID field)', async () => {
    const id = await addJob(queue(), 'once', 'RETRY', 0);
    expect(parseInt(id.slice(-4), 16) & 1).toBe(0);
    expect((await show(id))?.retry).toBe(0);
  });

  it('DELAY with ASYNC and a timeout: queued only once the delay elapses', async () => {
    const q = queue();
    const id = (await redis.call('ADDJOB', q, 'later', 1000, 'DELAY', 1, 'REPLICATE', 1, 'ASYNC')) as string;
    expect(id).toMatch(JOB_ID);
    expect((await show(id))?.delay).toBe(1);
    expect(await redis.call('QLEN', q)).toBe(0);
    await waitFor(async () => (await redis.call('QLEN', q)) === 1, 'the delayed job is queued', 5000);
  });

  it('binary bodies round-trip as Buffers with callBuffer', async () => {
    const q = queue();
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const id = ((await redis.callBuffer('ADDJOB', q, bytes, 0)) as Buffer).toString();
    expect(id).toMatch(JOB_ID);
    const shown = pairs(((await redis.callBuffer('SHOW', id)) as Buffer[]).map((v, i) => (i % 2 ? v : v.toString())));
    expect(shown.body).toEqual(bytes);
    const [peeked] = (await redis.callBuffer('QPEEK', q, 1)) as Buffer[][];
    expect(peeked![2]).toEqual(bytes);
    const [job] = (await redis.callBuffer('GETJOB', 'NOHANG', 'FROM', q)) as Buffer[][];
    expect(job![0]!.toString()).toBe(q);
    expect(job![1]!.toString()).toBe(id);
    expect(job![2]).toEqual(bytes);
  });

  it('SHOW: null for an unknown job, BADID for a malformed ID', async () => {
    const unknown = (await addJob(queue(), 'x')).replace(/-[A-Za-z0-9+/]{24}-/, '-AAAAAAAAAAAAAAAAAAAAAAAA-');
    expect(await redis.call('SHOW', unknown)).toBeNull();
    const e = await replyError(redis.call('SHOW', 'not-a-job-id'));
    expect(e).toBeInstanceOf(ReplyError);
    expect(e.message).toBe('BADID Invalid Job ID format.');
  });

  it('MAXLEN refuses a job once the queue is that long', async () => {
    const q = queue();
    await addJob(q, 'a', 'MAXLEN', 1);
    const e = await replyError(redis.call('ADDJOB', q, 'b', 0, 'MAXLEN', 1));
    expect(e.message).toBe('MAXLEN Queue is already longer than the specified MAXLEN count');
    expect(await redis.call('QLEN', q)).toBe(1);
  });

  it('more replicas than nodes is NOREPL; a DELAY beyond the TTL is refused', async () => {
    const norepl = await replyError(redis.call('ADDJOB', queue(), 'x', 500, 'REPLICATE', 3));
    expect(norepl.message).toBe('NOREPL Not enough reachable nodes for the requested replication level');
    const delay = await replyError(redis.call('ADDJOB', queue(), 'x', 0, 'DELAY', 200, 'TTL', 100));
    expect(delay.message).toBe('ERR The specified DELAY is greater than TTL. Job refused since would never be delivered');
  });
});

describe('GETJOB', () => {
  it('NOHANG and TIMEOUT return null when nothing is queued', async () => {
    const q = queue();
    expect(await redis.call('GETJOB', 'NOHANG', 'FROM', q)).toBeNull();
    const t0 = Date.now();
    expect(await redis.call('GETJOB', 'TIMEOUT', 150, 'FROM', q)).toBeNull();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });

  it('COUNT takes jobs in order, queues left to right', async () => {
    const [q1, q2] = [queue(), queue()];
    const a = await addJob(q2, 'a');
    const b = await addJob(q2, 'b');
    const c = await addJob(q2, 'c');
    expect(await redis.call('GETJOB', 'NOHANG', 'COUNT', 2, 'FROM', q1, q2)).toEqual([
      [q2, a, 'a'],
      [q2, b, 'b'],
    ]);
    const d = await addJob(q1, 'd');
    expect(await redis.call('GETJOB', 'NOHANG', 'COUNT', 5, 'FROM', q1, q2)).toEqual([
      [q1, d, 'd'],
      [q2, c, 'c'],
    ]);
  });

  it('WITHCOUNTERS reports NACKs and additional deliveries', async () => {
    const q = queue();
    const id = await addJob(q, 'x');
    const getOne = () => redis.call('GETJOB', 'NOHANG', 'WITHCOUNTERS', 'FROM', q);
    expect(await getOne()).toEqual([[q, id, 'x', 'nacks', 0, 'additional-deliveries', 0]]);
    expect(await redis.call('NACK', id)).toBe(1);
    expect(await getOne()).toEqual([[q, id, 'x', 'nacks', 1, 'additional-deliveries', 0]]);
    expect(await redis.call('ENQUEUE', id)).toBe(1);
    expect(await getOne()).toEqual([[q, id, 'x', 'nacks', 1, 'additional-deliveries', 1]]);
  });

  it('a blocked GETJOB on a second connection returns when a job is added', async () => {
    const q = queue();
    const consumer = redis.duplicate();
    extra.push(consumer);
    const pending = consumer.call('GETJOB', 'FROM', q);
    await waitFor(async () => pairs(await redis.call('QSTAT', q)).blocked === 1, 'the consumer blocks on the queue', 5000);
    const id = await addJob(q, 'wake up');
    expect(await pending).toEqual([[q, id, 'wake up']]);
  });

  it('COUNT 0 is an error', async () => {
    const e = await replyError(redis.call('GETJOB', 'NOHANG', 'COUNT', 0, 'FROM', queue()));
    expect(e.message).toBe('ERR COUNT must be a number greater than zero');
  });
});

describe('acknowledging and moving jobs', () => {
  it('ACKJOB acknowledges; once the job is gone a second ACK counts nothing', async () => {
    const q = queue();
    const id = await addJob(q, 'x');
    await redis.call('GETJOB', 'NOHANG', 'FROM', q);
    expect(await redis.call('ACKJOB', id)).toBe(1);
    await waitFor(async () => (await redis.call('SHOW', id)) === null, 'the acked job is collected', 5000);
    expect(await redis.call('ACKJOB', id)).toBe(0);
    expect((await replyError(redis.call('ACKJOB', 'nope'))).message).toBe('BADID Invalid Job ID format.');
  });

  it('FASTACK deletes jobs and counts them', async () => {
    const q = queue();
    const ids = [await addJob(q, 'a'), await addJob(q, 'b')];
    expect(await redis.call('FASTACK', ...ids)).toBe(2);
    expect(await redis.call('QLEN', q)).toBe(0);
    expect(await redis.call('SHOW', ids[0]!)).toBeNull();
  });

  it('NACK puts a delivered job back at once and counts the NACK', async () => {
    const q = queue();
    const id = await addJob(q, 'x');
    await redis.call('GETJOB', 'NOHANG', 'FROM', q);
    expect(await redis.call('QLEN', q)).toBe(0);
    expect(await redis.call('NACK', id)).toBe(1);
    expect(await redis.call('QLEN', q)).toBe(1);
    expect((await show(id))?.nacks).toBe(1);
    expect(await redis.call('NACK', id)).toBe(0); // already queued
  });

  it('WORKING returns the retry time and postpones the next delivery', async () => {
    const q = queue();
    const id = await addJob(q, 'x', 'RETRY', 2);
    await redis.call('GETJOB', 'NOHANG', 'FROM', q);
    expect(await redis.call('WORKING', id)).toBe(2);
    const job = (await show(id))!;
    expect(job.state).toBe('active');
    expect(job['next-requeue-within']).toBeGreaterThan(1_000);
  });

  it('WORKING on an unknown job is NOJOB', async () => {
    const id = await addJob(queue(), 'x');
    expect(await redis.call('DELJOB', id)).toBe(1);
    expect((await replyError(redis.call('WORKING', id))).message).toBe(
      'NOJOB Job not known in the context of this node.',
    );
  });

  it('WORKING after half the TTL is TOOLATE', async () => {
    const q = queue();
    const id = await addJob(q, 'x', 'TTL', 2, 'RETRY', 1);
    await redis.call('GETJOB', 'NOHANG', 'FROM', q);
    let last = '';
    await waitFor(
      async () => {
        last = (await replyError(redis.call('WORKING', id))).message;
        return last.startsWith('TOOLATE');
      },
      'WORKING is refused after half the TTL',
      5000,
    );
    expect(last).toBe(
      'TOOLATE Half of job TTL already elapsed, you are no longer allowed to postpone the next delivery.',
    );
  });

  it('ENQUEUE, DEQUEUE and DELJOB count the jobs they changed', async () => {
    const q = queue();
    const id = await addJob(q, 'x');
    expect(await redis.call('ENQUEUE', id)).toBe(0); // already queued
    expect(await redis.call('DEQUEUE', id)).toBe(1);
    expect(await redis.call('QLEN', q)).toBe(0);
    expect((await show(id))?.state).toBe('active');
    expect(await redis.call('DEQUEUE', id)).toBe(0);
    expect(await redis.call('ENQUEUE', id)).toBe(1);
    expect(await redis.call('QLEN', q)).toBe(1);
    expect(await redis.call('DELJOB', id)).toBe(1);
    expect(await redis.call('SHOW', id)).toBeNull();
    expect(await redis.call('DELJOB', id)).toBe(0);
  });
});

describe('queues', () => {
  it('QLEN and QPEEK (oldest first, newest first with a negative count) leave jobs queued', async () => {
    const q = queue();
    const ids = [await addJob(q, '1'), await addJob(q, '2'), await addJob(q, '3')];
    expect(await redis.call('QLEN', q)).toBe(3);
    expect(await redis.call('QPEEK', q, 2)).toEqual([
      [q, ids[0], '1'],
      [q, ids[1], '2'],
    ]);
    expect(await redis.call('QPEEK', q, -2)).toEqual([
      [q, ids[2], '3'],
      [q, ids[1], '2'],
    ]);
    expect(await redis.call('QLEN', q)).toBe(3);
    expect(await redis.call('QPEEK', queue(), 5)).toEqual([]);
  });

  it('QSTAT describes a queue and is null for an unknown one', async () => {
    const q = queue();
    await addJob(q, 'a');
    await addJob(q, 'b');
    await redis.call('GETJOB', 'NOHANG', 'FROM', q);
    const stat = pairs(await redis.call('QSTAT', q));
    expect(stat).toMatchObject({
      name: q,
      len: 1,
      blocked: 0,
      'import-from': [],
      'import-rate': 0,
      'jobs-in': 2,
      'jobs-out': 1,
      pause: 'none',
    });
    expect(stat.age).toBeTypeOf('number');
    expect(stat.idle).toBeTypeOf('number');
    expect(await redis.call('QSTAT', `no-such-queue-${Date.now()}`)).toBeNull();
  });

  it('PAUSE sets, reads and clears the state; PAUSED refuses new jobs', async () => {
    const q = queue();
    await addJob(q, 'x');
    expect(await redis.call('PAUSE', q, 'state')).toBe('none');
    expect(await redis.call('PAUSE', q, 'in')).toBe('in');
    expect((await replyError(redis.call('ADDJOB', q, 'y', 0))).message).toBe('PAUSED Queue paused in input, try later');
    expect(await redis.call('PAUSE', q, 'in', 'out')).toBe('all');
    expect(pairs(await redis.call('QSTAT', q)).pause).toBe('all');
    expect(await redis.call('GETJOB', 'TIMEOUT', 100, 'FROM', q)).toBeNull();
    expect(await redis.call('PAUSE', q, 'none', 'bcast')).toBe('none');
    expect(await redis.call('GETJOB', 'NOHANG', 'FROM', q)).toHaveLength(1);
    expect(await redis.call('PAUSE', q, 'out')).toBe('out');
    expect(await redis.call('PAUSE', q, 'all')).toBe('all');
    expect(await redis.call('PAUSE', q, 'none')).toBe('none');
  });

  it('QSCAN over all pages, with MINLEN, MAXLEN and BUSYLOOP', async () => {
    const prefix = `pscan-${Date.now()}-`;
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}${i}`);
    for (const [i, n] of names.entries()) {
      await addJob(n, 'a');
      if (i < 5) await addJob(n, 'b');
    }
    const mine = (items: unknown[]) => new Set((items as string[]).filter((n) => n.startsWith(prefix)));
    expect([...mine(await scanAll('QSCAN', 'COUNT', 3))].sort()).toEqual([...names].sort());
    expect([...mine(await scanAll('QSCAN', 'COUNT', 3, 'MINLEN', 2))].sort()).toEqual(names.slice(0, 5).sort());
    const [cursor, page] = (await redis.call('QSCAN', 0, 'BUSYLOOP', 'MAXLEN', 1)) as [string, string[]];
    expect(cursor).toBe('0'); // BUSYLOOP: everything in one call
    expect(mine(page).size).toBe(20);
  });

  it('JSCAN over all pages, by QUEUE and STATE, with REPLY all', async () => {
    const q = queue();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await addJob(q, `job ${i}`));
    const [[, taken]] = (await redis.call('GETJOB', 'NOHANG', 'FROM', q)) as [string, string, string][];
    const all = new Set(await scanAll('JSCAN', 'COUNT', 4, 'QUEUE', q));
    expect([...all].sort()).toEqual([...ids].sort());
    const queued = new Set(await scanAll('JSCAN', 'QUEUE', q, 'STATE', 'queued'));
    expect(queued.size).toBe(11);
    expect(queued.has(taken)).toBe(false);
    expect(new Set(await scanAll('JSCAN', 'QUEUE', q, 'STATE', 'queued', 'STATE', 'active', 'BUSYLOOP')).size).toBe(12);
    const details = (await scanAll('JSCAN', 'QUEUE', q, 'STATE', 'active', 'REPLY', 'all')).map(pairs);
    expect(details).toHaveLength(1);
    expect(details[0]).toMatchObject({ id: taken, queue: q, state: 'active', body: 'job 0' });
    expect((await replyError(redis.call('JSCAN', 'x'))).message).toBe('ERR invalid cursor or option name');
  });
});

describe('pipelining', () => {
  it('an ioredis pipeline sends several commands in one write and gets each reply', async () => {
    const q = queue();
    const results = await redis
      .pipeline()
      .call('ADDJOB', q, 'p1', 0)
      .call('ADDJOB', q, 'p2', 0)
      .call('QLEN', q)
      .call('ADDJOB', q, 'p3', 0, 'MAXLEN', 1)
      .exec();
    expect(results).toHaveLength(4);
    const [[e1, id1], [e2, id2], [e3, len], [e4]] = results!;
    expect([e1, e2, e3]).toEqual([null, null, null]);
    expect(id1).toMatch(JOB_ID);
    expect(id2).toMatch(JOB_ID);
    expect(len).toBe(2);
    expect((e4 as Error).message).toBe('MAXLEN Queue is already longer than the specified MAXLEN count');
  });
});

describe('auto-pipelining', () => {
  it('with enableAutoPipelining, a command declared with addBuiltinCommand reads Buffers (docs/client.md)', async () => {
    const q = queue();
    const auto = new Redis({ port: server.port, enableAutoPipelining: true });
    extra.push(auto);
    auto.addBuiltinCommand('getjob');
    auto.addBuiltinCommand('show');
    const id = (await auto.call('ADDJOB', q, Buffer.from([0, 255]), 0)) as string;
    const getjobBuffer = (auto as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).getjobBuffer!.bind(auto);
    const showBuffer = (auto as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>).showBuffer!.bind(auto);
    // Both in the same tick: one auto-pipeline.
    const [shown, jobs] = await Promise.all([showBuffer(id), getjobBuffer('NOHANG', 'FROM', q)]);
    expect(pairs(shown).body).toEqual(Buffer.from([0, 255]));
    const [[queueName, jobId, body]] = jobs as [Buffer, Buffer, Buffer][];
    expect([queueName!.toString(), jobId!.toString(), body]).toEqual([q, id, Buffer.from([0, 255])]);
  });
});
