// Job and queue commands against a real server, driven with ioredis: the
// replies and errors a Disque client sees.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { waitFor } from '../helpers/server.js';
import { err, pairs } from '../helpers/replies.js';

let srv: InProcessServer;
let r: Redis;



let qn = 0;
const queue = () => `q${++qn}-${Date.now()}`;

beforeAll(async () => {
  srv = await startInProcess();
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

describe('ADDJOB', () => {
  it('returns a job ID of the reference format and queues the job', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'hello', '0')) as string;
    const myid = (await r.call('CLUSTER', 'MYID')) as string;
    expect(id).toMatch(new RegExp(`^D-${myid.slice(0, 8)}-[A-Za-z0-9+/]{24}-05a1$`));
    const job = pairs(await r.call('SHOW', id));
    expect(job).toMatchObject({
      id,
      queue: q,
      state: 'queued',
      repl: 1,
      delay: 0,
      retry: 300,
      nacks: 0,
      'additional-deliveries': 0,
      'nodes-delivered': [myid],
      'nodes-confirmed': [],
      body: 'hello',
    });
    expect(job.ttl).toBeGreaterThanOrEqual(86399);
    expect(String(job.ctime)).toMatch(/^\d{19}$/);
    expect(job['next-requeue-within']).toBeGreaterThan(290_000);
    expect(await r.call('QLEN', q)).toBe(1);
  });

  it('applies the default RETRY (TTL/10, at most 5 minutes, at least 1 s) and TTL parity in the ID', async () => {
    const q = queue();
    const show = async (...opts: string[]) => pairs(await r.call('SHOW', (await r.call('ADDJOB', q, 'b', '0', ...opts)) as string));
    expect((await show('TTL', '100')).retry).toBe(10);
    expect((await show('TTL', '5')).retry).toBe(1);
    expect((await show('TTL', '100000')).retry).toBe(300);
    expect((await show('RETRY', '7')).retry).toBe(7);
    const amo = (await r.call('ADDJOB', q, 'b', '0', 'RETRY', '0')) as string;
    expect(parseInt(amo.slice(36), 16) % 2).toBe(0);
    const alo = (await r.call('ADDJOB', q, 'b', '0', 'TTL', '3600')) as string;
    expect(alo.slice(36)).toBe('003d');
  });

  it('answers bad options with the reference errors', async () => {
    const q = queue();
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'REPLICATE', '0'))).toBe('ERR REPLICATE must be between 1 and 65535');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'REPLICATE', 'x'))).toBe('ERR REPLICATE must be between 1 and 65535');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'TTL', '0'))).toBe('ERR TTL must be a number > 0');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'RETRY', '-1'))).toBe('ERR RETRY time must be a non negative number');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'DELAY', '-1'))).toBe('ERR DELAY time must be a non negative number');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'MAXLEN', '0'))).toBe('ERR MAXLEN must be a positive number');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'BOGUS'))).toBe('ERR syntax error');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'TTL'))).toBe('ERR syntax error');
    expect(await err(r.call('ADDJOB', q, 'b', 'soon'))).toBe('ERR timeout is not an integer or out of range');
    expect(await err(r.call('ADDJOB', q, 'b', '-5'))).toBe('ERR timeout is negative');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'REPLICATE', '2', 'RETRY', '0'))).toBe(
      'ERR With RETRY set to 0 please explicitly set  REPLICATE to 1 (at-most-once delivery)',
    );
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'DELAY', '10', 'TTL', '10'))).toBe(
      'ERR The specified DELAY is greater than TTL. Job refused since would never be delivered',
    );
    expect(await err(r.call('ADDJOB', q, 'b'))).toBe("ERR wrong number of arguments for 'addjob' command");
  });

  it('fails at once with NOREPL when the cluster cannot hold enough copies', async () => {
    expect(await err(r.call('ADDJOB', queue(), 'b', '5000', 'REPLICATE', '3'))).toBe(
      'NOREPL Not enough reachable nodes for the requested replication level',
    );
    expect(await err(r.call('ADDJOB', queue(), 'b', '0', 'REPLICATE', '2', 'ASYNC'))).toMatch(/^NOREPL/);
  });

  it('refuses jobs over MAXLEN and into a queue paused in input', async () => {
    const q = queue();
    await r.call('ADDJOB', q, 'b', '0', 'MAXLEN', '2');
    await r.call('ADDJOB', q, 'b', '0', 'MAXLEN', '2');
    expect(await err(r.call('ADDJOB', q, 'b', '0', 'MAXLEN', '2'))).toBe(
      'MAXLEN Queue is already longer than the specified MAXLEN count',
    );
    const p = queue();
    expect(await r.call('PAUSE', p, 'in')).toBe('in');
    expect(await err(r.call('ADDJOB', p, 'b', '0'))).toBe('PAUSED Queue paused in input, try later');
  });

  it('keeps a delayed job active until its DELAY ends, then queues it', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'later', '0', 'DELAY', '1', 'ASYNC')) as string;
    expect(pairs(await r.call('SHOW', id)).state).toBe('active');
    expect(await r.call('QLEN', q)).toBe(0);
    await waitFor(async () => (await r.call('QLEN', q)) === 1, 'delayed job queued', 3000);
    expect(pairs(await r.call('SHOW', id))).toMatchObject({ state: 'queued', delay: 1 });
  });

  it('keeps bodies and queue names binary safe', async () => {
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    const q = Buffer.from([0, 0xff, 0x0d, 0x0a, 0x20, 0x80]);
    const id = (await r.call('ADDJOB', q, all, '0')) as string;
    const shown = (await r.callBuffer('SHOW', id)) as Buffer[];
    expect(Buffer.compare(shown[29]!, all)).toBe(0);
    expect(Buffer.compare(shown[3]!, q)).toBe(0);
    const peek = (await r.callBuffer('QPEEK', q, '1')) as Buffer[][];
    expect(Buffer.compare(peek[0]![2]!, all)).toBe(0);
    const scan = (await r.callBuffer('JSCAN', 'QUEUE', q, 'REPLY', 'ALL', 'BUSYLOOP')) as [Buffer, Buffer[][]];
    expect(Buffer.compare(scan[1][0]![29]!, all)).toBe(0);
    const got = (await r.callBuffer('GETJOB', 'FROM', q)) as Buffer[][];
    expect(Buffer.compare(got[0]![0]!, q)).toBe(0);
    expect(Buffer.compare(got[0]![2]!, all)).toBe(0);
  });
});

describe('GETJOB', () => {
  it('returns jobs as [queue, id, body], left to right, up to COUNT', async () => {
    const a = queue();
    const b = queue();
    const ida1 = (await r.call('ADDJOB', a, 'a1', '0')) as string;
    const idb1 = (await r.call('ADDJOB', b, 'b1', '0')) as string;
    const ida2 = (await r.call('ADDJOB', a, 'a2', '0')) as string;
    expect(await r.call('GETJOB', 'FROM', b, a)).toEqual([[b, idb1, 'b1']]);
    expect(await r.call('GETJOB', 'COUNT', '5', 'FROM', a, b)).toEqual([
      [a, ida1, 'a1'],
      [a, ida2, 'a2'],
    ]);
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', a, b)).toBeNull();
  });

  it('returns counters with WITHCOUNTERS', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'x', '0')) as string;
    await r.call('GETJOB', 'FROM', q);
    expect(await r.call('NACK', id)).toBe(1);
    expect(await r.call('GETJOB', 'WITHCOUNTERS', 'FROM', q)).toEqual([[q, id, 'x', 'nacks', 1, 'additional-deliveries', 0]]);
  });

  it('blocks until a job arrives, serving blocked clients in arrival order', async () => {
    const q = queue();
    const c1 = srv.client();
    const c2 = srv.client();
    const p1 = c1.call('GETJOB', 'TIMEOUT', '5000', 'FROM', q);
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 1, 'first client blocked');
    const p2 = c2.call('GETJOB', 'TIMEOUT', '5000', 'FROM', q);
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 2, 'second client blocked');
    const id1 = await r.call('ADDJOB', q, 'first', '0');
    const id2 = await r.call('ADDJOB', q, 'second', '0');
    expect(await p1).toEqual([[q, id1, 'first']]);
    expect(await p2).toEqual([[q, id2, 'second']]);
  });

  it('returns null when the timeout passes and forgets clients that disconnect', async () => {
    const q = queue();
    const start = Date.now();
    expect(await r.call('GETJOB', 'TIMEOUT', '200', 'FROM', q)).toBeNull();
    expect(Date.now() - start).toBeGreaterThanOrEqual(190);
    const c = srv.client();
    void c.call('GETJOB', 'FROM', q).catch(() => {});
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 1, 'client blocked');
    c.disconnect();
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 0, 'blocked client forgotten');
    const id = await r.call('ADDJOB', q, 'kept', '0');
    expect(await r.call('GETJOB', 'FROM', q)).toEqual([[q, id, 'kept']]);
  });

  it('keeps a client blocked on a queue paused in output until it is unpaused', async () => {
    const q = queue();
    const id = await r.call('ADDJOB', q, 'held', '0');
    expect(await r.call('PAUSE', q, 'out')).toBe('out');
    const c = srv.client();
    const p = c.call('GETJOB', 'TIMEOUT', '5000', 'FROM', q);
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 1, 'client blocked on paused queue');
    expect(await r.call('QLEN', q)).toBe(1);
    expect(await r.call('PAUSE', q, 'none')).toBe('none');
    expect(await p).toEqual([[q, id, 'held']]);
  });

  it('answers bad options with the reference errors', async () => {
    expect(await err(r.call('GETJOB', 'COUNT', '0', 'FROM', 'q'))).toBe('ERR COUNT must be a number greater than zero');
    expect(await err(r.call('GETJOB', 'TIMEOUT', 'x', 'FROM', 'q'))).toBe('ERR timeout is not an integer or out of range');
    expect(await err(r.call('GETJOB', 'NOHANG'))).toBe('ERR syntax error');
    expect(await err(r.call('GETJOB', 'FROM'))).toBe('ERR syntax error');
    expect(await err(r.call('GETJOB', 'WHAT', 'FROM', 'q'))).toBe('ERR syntax error');
  });
});

describe('acks, NACK, WORKING, ENQUEUE, DEQUEUE, DELJOB', () => {
  it('ACKJOB acknowledges known jobs (collected at once on one node) and counts them', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'x', '0')) as string;
    const unknown = id.slice(0, 11) + 'AAAAAAAAAAAAAAAAAAAAAAAA' + id.slice(35);
    expect(await r.call('ACKJOB', id, unknown)).toBe(1);
    expect(await r.call('SHOW', id)).toBeNull();
    expect(await r.call('QLEN', q)).toBe(0);
    expect(await r.call('ACKJOB', id)).toBe(0);
    expect(await err(r.call('ACKJOB', id, 'not-an-id'))).toBe('BADID Invalid Job ID format.');
  });

  it('FASTACK deletes jobs and counts the known ones', async () => {
    const id = (await r.call('ADDJOB', queue(), 'x', '0')) as string;
    expect(await r.call('FASTACK', id)).toBe(1);
    expect(await r.call('FASTACK', id)).toBe(0);
    expect(await r.call('SHOW', id)).toBeNull();
  });

  it('WORKING postpones the next delivery and returns the retry time', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'x', '0', 'RETRY', '123')) as string;
    expect(await r.call('WORKING', id)).toBe(123);
    expect(pairs(await r.call('SHOW', id)).state).toBe('active');
    expect(await r.call('QLEN', q)).toBe(0);
    expect(await err(r.call('WORKING', id.slice(0, 11) + 'B'.repeat(24) + id.slice(35)))).toBe(
      'NOJOB Job not known in the context of this node.',
    );
    expect(await err(r.call('WORKING', 'D-bad'))).toBe('BADID Invalid Job ID format.');
  });

  it('WORKING is refused once half of the TTL has passed', async () => {
    const id = (await r.call('ADDJOB', queue(), 'x', '0', 'TTL', '2', 'RETRY', '1')) as string;
    expect(await r.call('WORKING', id)).toBe(1);
    await waitFor(
      async () => (await err(r.call('WORKING', id)).catch((e) => String(e))).startsWith('TOOLATE'),
      'TOOLATE after half the TTL',
      3000,
    );
    expect(await err(r.call('WORKING', id))).toBe(
      'TOOLATE Half of job TTL already elapsed, you are no longer allowed to postpone the next delivery.',
    );
  });

  it('NACK and ENQUEUE queue active jobs again; DEQUEUE takes them out; DELJOB deletes', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'x', '0')) as string;
    expect(await r.call('ENQUEUE', id)).toBe(0); // already queued
    expect(await r.call('DEQUEUE', id)).toBe(1);
    expect(await r.call('DEQUEUE', id)).toBe(0);
    expect(await r.call('ENQUEUE', id)).toBe(1);
    expect(pairs(await r.call('SHOW', id))['additional-deliveries']).toBe(1);
    await r.call('GETJOB', 'FROM', q);
    expect(await r.call('NACK', id)).toBe(1);
    expect(pairs(await r.call('SHOW', id))).toMatchObject({ state: 'queued', nacks: 1 });
    expect(await r.call('DELJOB', id)).toBe(1);
    expect(await r.call('DELJOB', id)).toBe(0);
    expect(await err(r.call('NACK', 'x'))).toBe('BADID Invalid Job ID format.');
  });
});

describe('queue commands', () => {
  it('QSTAT reports the queue; QLEN counts; unknown queues give null and 0', async () => {
    const q = queue();
    expect(await r.call('QSTAT', q)).toBeNull();
    expect(await r.call('QLEN', q)).toBe(0);
    await r.call('ADDJOB', q, 'a', '0');
    await r.call('ADDJOB', q, 'b', '0');
    await r.call('GETJOB', 'FROM', q);
    expect(pairs(await r.call('QSTAT', q))).toMatchObject({
      name: q,
      len: 1,
      age: 0,
      idle: 0,
      blocked: 0,
      'import-from': [],
      'import-rate': 0,
      'jobs-in': 2,
      'jobs-out': 1,
      pause: 'none',
    });
  });

  it('QPEEK shows the oldest first, or the newest first with a negative count', async () => {
    const q = queue();
    const ids: unknown[] = [];
    for (const b of ['1', '2', '3']) ids.push(await r.call('ADDJOB', q, b, '0'));
    expect(await r.call('QPEEK', q, '2')).toEqual([
      [q, ids[0], '1'],
      [q, ids[1], '2'],
    ]);
    expect(await r.call('QPEEK', q, '-2')).toEqual([
      [q, ids[2], '3'],
      [q, ids[1], '2'],
    ]);
    expect(await r.call('QPEEK', queue(), '5')).toEqual([]);
    expect(await err(r.call('QPEEK', q, 'x'))).toBe('ERR value is not an integer or out of range');
    expect(await r.call('QLEN', q)).toBe(3);
  });

  it('PAUSE sets and reports in, out, all and none', async () => {
    const q = queue();
    expect(await r.call('PAUSE', q, 'state')).toBe('none');
    expect(await r.call('PAUSE', q, 'in')).toBe('in');
    expect(await r.call('PAUSE', q, 'in', 'out')).toBe('all');
    expect(await r.call('PAUSE', q, 'state')).toBe('all');
    expect(await r.call('PAUSE', q, 'out')).toBe('out');
    expect(await r.call('PAUSE', q, 'none')).toBe('none');
    expect(await r.call('PAUSE', q, 'all')).toBe('all');
    expect(pairs(await r.call('QSTAT', q)).pause).toBe('all');
    expect(await err(r.call('PAUSE', q, 'sideways'))).toBe('ERR syntax error');
  });

  it('QSCAN iterates queues with a cursor and filters by length', async () => {
    await r.call('DEBUG', 'FLUSHALL');
    for (let i = 0; i < 150; i++) await r.call('ADDJOB', `scan-${i}`, 'x', '0', 'RETRY', '0');
    await r.call('ADDJOB', 'scan-7', 'y', '0', 'RETRY', '0');
    const seen = new Set<string>();
    let cursor = '0';
    do {
      const [next, items] = (await r.call('QSCAN', 'COUNT', '20', cursor)) as [string, string[]];
      items.forEach((i) => seen.add(i));
      cursor = next;
    } while (cursor !== '0');
    expect(seen.size).toBe(150);
    expect(((await r.call('QSCAN', 'BUSYLOOP', 'MINLEN', '2')) as [string, string[]])[1]).toEqual(['scan-7']);
    expect(((await r.call('QSCAN', 'BUSYLOOP', 'MAXLEN', '1')) as [string, string[]])[1]).toHaveLength(149);
    expect(await err(r.call('QSCAN', 'nonsense'))).toBe('ERR invalid cursor or option name');
    expect(await err(r.call('QSCAN', '0', '0'))).toBe('ERR syntax error');
  });

  it('JSCAN iterates jobs, by queue and state, with IDs or full SHOW replies', async () => {
    await r.call('DEBUG', 'FLUSHALL');
    const a = (await r.call('ADDJOB', 'ja', 'x', '0')) as string;
    const b = (await r.call('ADDJOB', 'jb', 'y', '0')) as string;
    await r.call('GETJOB', 'FROM', 'jb');
    expect(((await r.call('JSCAN', 'BUSYLOOP')) as [string, string[]])[1].sort()).toEqual([a, b].sort());
    expect(await r.call('JSCAN', 'QUEUE', 'ja', 'BUSYLOOP')).toEqual(['0', [a]]);
    expect(await r.call('JSCAN', 'STATE', 'active', 'BUSYLOOP')).toEqual(['0', [b]]);
    expect(((await r.call('JSCAN', 'STATE', 'active', 'STATE', 'queued')) as [string, string[]])[1]).toHaveLength(2);
    const [, full] = (await r.call('JSCAN', 'QUEUE', 'ja', 'REPLY', 'ALL')) as [string, unknown[][]];
    expect(pairs(full[0])).toMatchObject({ id: a, queue: 'ja', body: 'x', state: 'queued' });
    expect(await err(r.call('JSCAN', 'STATE', 'sleeping'))).toBe('ERR Invalid job state name');
    expect(await err(r.call('JSCAN', 'REPLY', 'some'))).toBe('ERR Invalid REPLY type, try ID or ALL');
  });
});
