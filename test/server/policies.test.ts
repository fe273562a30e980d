// QPOLICY, NACK ... DELAY, ADDJOB ... UNIQUE and QSTAT's delayed count on
// one real node, driven with ioredis: the replies and errors a client sees.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { waitFor } from '../helpers/server.js';
import { err, pairs } from '../helpers/replies.js';

let srv: InProcessServer;
let r: Redis;
let qn = 0;
const queue = () => `pq${++qn}-${Date.now()}`;

beforeAll(async () => {
  srv = await startInProcess();
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

async function add(q: string, n: number, ...opts: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await r.call('ADDJOB', q, `job-${i}`, '0', ...opts)) as string);
  return ids;
}

async function getIds(...args: string[]): Promise<string[]> {
  const reply = (await r.call('GETJOB', ...args)) as string[][] | null;
  return reply === null ? [] : reply.map((j) => j[1]!);
}

describe('QPOLICY', () => {
  it('SET, GET and CLEAR: a flat field/value list, empty when none', async () => {
    const q = queue();
    expect(await r.call('QPOLICY', q, 'GET')).toEqual([]);
    expect(await r.call('QPOLICY', q, 'SET', 'RATE', '10', '2')).toBe('OK');
    expect(await r.call('QPOLICY', q, 'GET')).toEqual(['rate-jobs', 10, 'rate-seconds', 2]);
    // SET changes the limits it names and keeps the other.
    expect(await r.call('QPOLICY', q, 'set', 'concurrency', '4')).toBe('OK');
    expect(await r.call('QPOLICY', q, 'GET')).toEqual(['rate-jobs', 10, 'rate-seconds', 2, 'concurrency', 4]);
    expect(await r.call('QPOLICY', q, 'SET', 'RATE', 'NONE')).toBe('OK');
    expect(await r.call('QPOLICY', q, 'GET')).toEqual(['concurrency', 4]);
    expect(await r.call('QPOLICY', q, 'CLEAR')).toBe('OK');
    expect(await r.call('QPOLICY', q, 'GET')).toEqual([]);
  });

  it('refuses bad input with clear errors', async () => {
    const q = queue();
    expect(await err(r.call('QPOLICY', q))).toMatch(/wrong number of arguments/);
    expect(await err(r.call('QPOLICY', q, 'SET'))).toBe('ERR syntax error');
    expect(await err(r.call('QPOLICY', q, 'SHOW'))).toBe('ERR syntax error');
    expect(await err(r.call('QPOLICY', q, 'GET', 'extra'))).toBe('ERR syntax error');
    expect(await err(r.call('QPOLICY', q, 'SET', 'RATE', '10'))).toBe('ERR syntax error');
    expect(await err(r.call('QPOLICY', q, 'SET', 'RATE', '0', '1'))).toBe('ERR RATE jobs must be between 1 and 1000000');
    expect(await err(r.call('QPOLICY', q, 'SET', 'RATE', '5', 'x'))).toBe('ERR RATE seconds must be between 1 and 86400');
    expect(await err(r.call('QPOLICY', q, 'SET', 'CONCURRENCY', '-1'))).toBe('ERR CONCURRENCY must be between 1 and 1000000');
    expect(await err(r.call('QPOLICY', q, 'SET', 'SPEED', '1'))).toBe('ERR syntax error');
    expect(await r.call('QPOLICY', q, 'GET')).toEqual([]);
  });

  it('RATE: NOHANG returns what it may, the rest stays queued, other queues are still served', async () => {
    const q = queue();
    const free = queue();
    await r.call('QPOLICY', q, 'SET', 'RATE', '3', '60');
    await add(q, 5);
    await add(free, 2);
    const first = await getIds('NOHANG', 'COUNT', '10', 'FROM', q);
    expect(first).toHaveLength(3);
    expect(await r.call('QLEN', q)).toBe(2);
    expect(await getIds('NOHANG', 'FROM', q)).toEqual([]);
    // The limited queue first in FROM: the next one still serves.
    expect(await getIds('NOHANG', 'COUNT', '5', 'FROM', q, free)).toHaveLength(2);
    const stat = pairs(await r.call('QSTAT', q));
    // Held back once per GETJOB and queue, whatever its COUNT.
    expect(pairs(stat.policy)).toMatchObject({ 'rate-share': 3, 'rate-used': 3, 'held-by-rate': 3 });
  });

  it('RATE: a blocking GETJOB waits until the window frees, then gets the job', async () => {
    const q = queue();
    await r.call('QPOLICY', q, 'SET', 'RATE', '2', '2');
    await add(q, 3);
    expect(await getIds('NOHANG', 'COUNT', '5', 'FROM', q)).toHaveLength(2);
    const t0 = Date.now();
    const got = await getIds('TIMEOUT', '10000', 'FROM', q);
    const waited = Date.now() - t0;
    expect(got).toHaveLength(1);
    expect(waited).toBeGreaterThanOrEqual(1500);
    expect(waited).toBeLessThan(8000);
  });

  it('CONCURRENCY: at most N delivered and not acknowledged; ACK, NACK and WORKING-free slots', async () => {
    const q = queue();
    await r.call('QPOLICY', q, 'SET', 'CONCURRENCY', '2');
    await add(q, 5, 'RETRY', '60');
    const [a, b] = await getIds('NOHANG', 'COUNT', '5', 'FROM', q);
    expect(a && b).toBeTruthy();
    expect(await getIds('NOHANG', 'FROM', q)).toEqual([]);
    await r.call('WORKING', a!); // still in flight
    expect(await getIds('NOHANG', 'FROM', q)).toEqual([]);
    // A blocked consumer is served as soon as a slot frees.
    const blocked = srv.client();
    const waiting = blocked.call('GETJOB', 'TIMEOUT', '10000', 'FROM', q) as Promise<string[][]>;
    await waitFor(async () => pairs(await r.call('QSTAT', q)).blocked === 1, 'the consumer blocks');
    expect(await r.call('ACKJOB', a!)).toBe(1);
    expect((await waiting)[0]).toHaveLength(3);
    expect(await getIds('NOHANG', 'FROM', q)).toEqual([]);
    expect(await r.call('NACK', b!)).toBe(1);
    expect(await getIds('NOHANG', 'FROM', q)).toHaveLength(1);
  });
});

describe('NACK ... DELAY', () => {
  it('puts the job back after the delay, not before, keeping its ID and counting one NACK', async () => {
    const q = queue();
    const [id] = await add(q, 1, 'RETRY', '60');
    expect(await getIds('NOHANG', 'FROM', q)).toEqual([id]);
    expect(await r.call('NACK', id!, 'DELAY', '1.5')).toBe(1);
    const t0 = Date.now();
    const job = pairs(await r.call('SHOW', id!));
    expect(job).toMatchObject({ state: 'active', nacks: 1, 'additional-deliveries': 0 });
    expect(job['next-requeue-within']).toBeGreaterThan(1000);
    expect(job['next-requeue-within']).toBeLessThanOrEqual(1500);
    expect(await r.call('QLEN', q)).toBe(0);
    expect(pairs(await r.call('QSTAT', q)).delayed).toBe(1);
    const got = (await r.call('GETJOB', 'TIMEOUT', '10000', 'WITHCOUNTERS', 'FROM', q)) as unknown[][];
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1300);
    expect(got[0]![1]).toBe(id);
    expect(got[0]!.slice(3)).toEqual(['nacks', 1, 'additional-deliveries', 0]);
    expect(pairs(await r.call('QSTAT', q)).delayed).toBe(0);
  });

  it('without DELAY (or DELAY 0) is the reference NACK; bad input is refused', async () => {
    const q = queue();
    const [id] = await add(q, 1);
    await getIds('NOHANG', 'FROM', q);
    expect(await r.call('NACK', id!, 'DELAY', '0')).toBe(1);
    expect(await r.call('QLEN', q)).toBe(1);
    expect(await err(r.call('NACK', id!, 'DELAY', '-1'))).toBe('ERR DELAY time must be a non negative number');
    expect(await err(r.call('NACK', id!, 'DELAY', 'soon'))).toBe('ERR DELAY time must be a non negative number');
    expect(await err(r.call('NACK', id!, 'DELAY'))).toBe('ERR syntax error');
    expect(await err(r.call('NACK', 'not-an-id', 'DELAY', '1'))).toBe('BADID Invalid Job ID format.');
    // A queued job is not NACKed (as the reference's NACK).
    expect(await r.call('NACK', id!, 'DELAY', '5')).toBe(0);
    expect(await r.call('QLEN', q)).toBe(1);
  });
});

describe('ADDJOB ... UNIQUE', () => {
  it('returns the pending job of the same queue and key, adds nothing, and frees the key once acknowledged', async () => {
    const q = queue();
    const id = (await r.call('ADDJOB', q, 'first', '0', 'UNIQUE', 'order-7')) as string;
    expect(await r.call('ADDJOB', q, 'second', '0', 'UNIQUE', 'order-7', 'DELAY', '5')).toBe(id);
    expect(await r.call('QLEN', q)).toBe(1);
    // Another queue or key: a new job.
    expect(await r.call('ADDJOB', `${q}-other`, 'x', '0', 'UNIQUE', 'order-7')).not.toBe(id);
    expect(await r.call('ADDJOB', q, 'x', '0', 'UNIQUE', 'order-8')).not.toBe(id);
    expect(pairs(await r.call('SHOW', id)).unique).toBe('order-7');
    // Delivered and NACKed: still pending.
    await getIds('NOHANG', 'FROM', q);
    await r.call('NACK', id);
    expect(await r.call('ADDJOB', q, 'third', '0', 'UNIQUE', 'order-7')).toBe(id);
    await r.call('ACKJOB', id);
    const next = (await r.call('ADDJOB', q, 'fourth', '0', 'UNIQUE', 'order-7')) as string;
    expect(next).not.toBe(id);
    expect(pairs(await r.call('SHOW', next)).body).toBe('fourth');
    // Jobs without a key show no unique field (the reference's SHOW).
    const plain = (await r.call('ADDJOB', q, 'plain', '0')) as string;
    expect('unique' in pairs(await r.call('SHOW', plain))).toBe(false);
  });

  it('refuses an empty or too long key', async () => {
    expect(await err(r.call('ADDJOB', queue(), 'b', '0', 'UNIQUE', ''))).toBe('ERR UNIQUE key must be 1 to 1024 bytes');
    expect(await err(r.call('ADDJOB', queue(), 'b', '0', 'UNIQUE', 'k'.repeat(1025)))).toBe('ERR UNIQUE key must be 1 to 1024 bytes');
    expect(await err(r.call('ADDJOB', queue(), 'b', '0', 'UNIQUE'))).toBe('ERR syntax error');
  });
});

describe('QSTAT delayed', () => {
  it('counts the jobs scheduled for later, after the reference fields', async () => {
    const q = queue();
    await r.call('ADDJOB', q, 'now', '0');
    await r.call('ADDJOB', q, 'later', '0', 'DELAY', '60');
    await r.call('ADDJOB', q, 'later', '0', 'DELAY', '30');
    const reply = (await r.call('QSTAT', q)) as unknown[];
    expect(reply.slice(0, 20).filter((_, i) => i % 2 === 0)).toEqual([
      'name', 'len', 'age', 'idle', 'blocked', 'import-from', 'import-rate', 'jobs-in', 'jobs-out', 'pause',
    ]);
    expect(pairs(reply)).toMatchObject({ len: 1, delayed: 2 });
    expect(reply).toHaveLength(22);
  });
});
