// Jobs outlive kill -9 and restarts with `appendonly yes`, against the Redis
// at 127.0.0.1:6379. Each test writes under a key prefix of its own and
// deletes it afterwards.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { err, pairs } from '../helpers/replies.js';
import { SHARED_REDIS_URL, testPrefix, keysUnder, deleteUnder, disque, info, waitAofState } from './helpers.js';

let shared: Redis;
const servers: ServerHandle[] = [];
const clients: Redis[] = [];
const prefixes: string[] = [];

beforeAll(() => {
  shared = new Redis(SHARED_REDIS_URL);
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
  for (const p of prefixes.splice(0)) await deleteUnder(shared, p);
});
afterAll(() => {
  shared.disconnect();
});

async function node(config: Record<string, string> = {}, prefix = testPrefix()): Promise<{ srv: ServerHandle; c: Redis; prefix: string }> {
  prefixes.push(prefix);
  const srv = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': prefix, ...config } });
  servers.push(srv);
  return { srv, c: client(srv), prefix };
}

function client(srv: ServerHandle): Redis {
  const c = disque(srv);
  clients.push(c);
  return c;
}

async function show(c: Redis, id: string): Promise<Record<string, unknown> | null> {
  const r = await c.call('SHOW', id);
  return r === null ? null : pairs(r);
}

describe('persistence across restarts', () => {
  it('keeps every acknowledged ADDJOB through kill -9: bodies, TTLs, retry and nack counters', async () => {
    const { srv, c } = await node();
    const N = 300;
    // At-most-once jobs (RETRY 0) in a queue of their own: NACK does not queue them again.
    const queueOf = (i: number): string => (i % 10 === 0 ? 'pq-once' : `pq${i % 3}`);
    const added = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        c.call('ADDJOB', queueOf(i), `body-${i}-\u00e9\u0001`, '0', 'TTL', String(3600 + i), 'RETRY', i % 10 === 0 ? '0' : '30'),
      ),
    );
    const ids = added as string[];
    // Two deliveries and nacks of the first jobs of pq1, so their counters are not zero.
    const got = (await c.call('GETJOB', 'NOHANG', 'COUNT', '5', 'FROM', 'pq1')) as string[][];
    expect(got).toHaveLength(5);
    const nacked = got.map((j) => j[1]!);
    expect(await c.call('NACK', ...nacked)).toBe(5);
    await c.call('GETJOB', 'NOHANG', 'COUNT', '5', 'FROM', 'pq1');
    expect(await c.call('NACK', ...nacked)).toBe(5);
    const t0 = Date.now();
    await srv.kill9(); // right after the last reply: nothing may be lost

    await srv.restart();
    const c2 = client(srv);
    for (let i = 0; i < N; i++) {
      const j = await show(c2, ids[i]!);
      expect(j, `job ${i}`).not.toBeNull();
      expect(j!.body).toBe(`body-${i}-\u00e9\u0001`);
      expect(j!.queue).toBe(queueOf(i));
      expect(j!.retry).toBe(i % 10 === 0 ? 0 : 30);
      // Reloaded jobs are active: the retry timer queues them again.
      expect(j!.state).toBe('active');
      const ttl = j!.ttl as number;
      const elapsed = Math.ceil((Date.now() - t0) / 1000) + 1;
      expect(ttl).toBeLessThanOrEqual(3600 + i);
      expect(ttl).toBeGreaterThanOrEqual(3600 + i - elapsed);
    }
    for (const id of nacked) expect((await show(c2, id))!.nacks).toBe(2);
    for (const q of ['pq0', 'pq1', 'pq2', 'pq-once']) expect(await c2.call('QLEN', q)).toBe(0);
    expect(await info(c2, 'aof_state')).toBe('on');
    expect(srv.log()).toMatch(/DB loaded from Redis: 300 jobs/);
  });

  it('keeps every acknowledged ADDJOB of many connections through kill -9 (journal writes in flight)', async () => {
    const { srv } = await node();
    const producers = Array.from({ length: 8 }, () => client(srv));
    // Each producer sends its jobs in small pipelines, so the node's turns
    // (and journal writes) interleave across connections.
    const added = await Promise.all(
      producers.map(async (p, k) => {
        const ids: string[] = [];
        for (let round = 0; round < 20; round++) {
          const batch = Array.from({ length: 10 }, (_, i) => p.call('ADDJOB', `many${k % 3}`, `b${k}-${round}-${i}`, '0'));
          ids.push(...((await Promise.all(batch)) as string[]));
        }
        return ids;
      }),
    );
    await srv.kill9(); // right after the last reply
    await srv.restart();
    const c2 = client(srv);
    const missing: string[] = [];
    for (const id of added.flat()) if ((await show(c2, id)) === null) missing.push(id);
    expect(missing).toEqual([]);
    expect(srv.log()).toMatch(/DB loaded from Redis: 1600 jobs/);
  });

  it('does not bring back acknowledged or deleted jobs', async () => {
    const { srv, c } = await node();
    const ids = (await Promise.all(Array.from({ length: 40 }, (_, i) => c.call('ADDJOB', 'aq', `b${i}`, '0')))) as string[];
    expect(await c.call('ACKJOB', ...ids.slice(0, 10))).toBe(10);
    expect(await c.call('FASTACK', ...ids.slice(10, 15))).toBe(5);
    expect(await c.call('DELJOB', ...ids.slice(15, 20))).toBe(5);
    await srv.kill9();
    await srv.restart();
    const c2 = client(srv);
    for (let i = 0; i < 40; i++) {
      const j = await show(c2, ids[i]!);
      if (i < 20) expect(j, `job ${i} was removed`).toBeNull();
      else expect(j?.body).toBe(`b${i}`);
    }
  });

  it('controlled restart (aof-enqueue-jobs-once + SHUTDOWN REWRITE-AOF) brings the queues back once', async () => {
    const { srv, c } = await node();
    const ids = (await Promise.all(Array.from({ length: 25 }, (_, i) => c.call('ADDJOB', 'cq', `c${i}`, '0', 'RETRY', i < 5 ? '0' : '60')))) as string[];
    // One job delivered and not acked: it is active, not queued, at shutdown.
    const [delivered] = (await c.call('GETJOB', 'NOHANG', 'FROM', 'cq')) as string[][];
    expect(await c.call('QLEN', 'cq')).toBe(24);
    expect(await c.call('CONFIG', 'SET', 'aof-enqueue-jobs-once', 'yes')).toBe('OK');
    expect(await c.call('CONFIG', 'REWRITE')).toBe('OK');
    await c.call('SHUTDOWN', 'REWRITE-AOF').catch(() => undefined);
    await waitFor(() => srv.proc === null || srv.proc.exitCode !== null, 'the node exits', 10000);
    await srv.restart();
    const c2 = client(srv);
    expect(await c2.call('QLEN', 'cq')).toBe(24);
    // In the same order as before.
    const peek = (await c2.call('QPEEK', 'cq', '24')) as string[][];
    expect(peek.map((j) => j[1])).toEqual(ids.filter((id) => id !== delivered![1]));
    expect((await show(c2, delivered![1]!))!.state).toBe('active');
    // The flag turned itself off, in the file too.
    expect(await c2.call('CONFIG', 'GET', 'aof-enqueue-jobs-once')).toEqual(['aof-enqueue-jobs-once', 'no']);
    expect(readFileSync(srv.configFile, 'utf8')).toMatch(/^aof-enqueue-jobs-once no$/m);

    // Once: a later crash reloads the jobs as active, with empty queues.
    await srv.kill9();
    await srv.restart();
    const c3 = client(srv);
    expect(await c3.call('QLEN', 'cq')).toBe(0);
    for (const id of ids) expect((await show(c3, id))?.state).toBe('active');
  });

  it('two nodes sharing one Redis and prefix do not see each other\'s jobs', async () => {
    const prefix = testPrefix();
    const a = await node({}, prefix);
    const b = await node({}, prefix);
    const idsA = (await Promise.all(Array.from({ length: 20 }, (_, i) => a.c.call('ADDJOB', 'sq', `a${i}`, '0')))) as string[];
    const idsB = (await Promise.all(Array.from({ length: 30 }, (_, i) => b.c.call('ADDJOB', 'sq', `b${i}`, '0')))) as string[];
    const idA = (await a.c.call('CLUSTER', 'MYID')) as string;
    const idB = (await b.c.call('CLUSTER', 'MYID')) as string;
    const keys = await keysUnder(shared, prefix);
    expect(keys.some((k) => k.includes(idA))).toBe(true);
    expect(keys.some((k) => k.includes(idB))).toBe(true);
    expect(keys.every((k) => k.includes(idA) || k.includes(idB))).toBe(true);
    await Promise.all([a.srv.kill9(), b.srv.kill9()]);
    await Promise.all([a.srv.restart(), b.srv.restart()]);
    const a2 = client(a.srv);
    const b2 = client(b.srv);
    expect(Number(await info(a2, 'registered_jobs'))).toBe(20);
    expect(Number(await info(b2, 'registered_jobs'))).toBe(30);
    for (const id of idsA) expect(await a2.call('SHOW', id)).not.toBeNull();
    for (const id of idsB) expect(await b2.call('SHOW', id)).not.toBeNull();
  });

  it('CONFIG SET appendonly yes writes a snapshot of the jobs held; no drops the keys', async () => {
    const prefix = testPrefix();
    const { srv, c } = await node({ appendonly: 'no' }, prefix);
    const ids = (await Promise.all(Array.from({ length: 50 }, (_, i) => c.call('ADDJOB', 'rq', `r${i}`, '0')))) as string[];
    expect(await info(c, 'aof_state')).toBe('off');
    expect(await keysUnder(shared, prefix)).toEqual([]);
    expect(await c.call('CONFIG', 'SET', 'appendonly', 'yes')).toBe('OK');
    await waitAofState(c, 'on');
    expect(Number(await info(c, 'aof_last_snapshot_jobs'))).toBe(50);
    const more = (await c.call('ADDJOB', 'rq', 'after', '0')) as string;
    expect(await c.call('CONFIG', 'REWRITE')).toBe('OK');
    await srv.kill9();
    await srv.restart();
    const c2 = client(srv);
    expect(await info(c2, 'aof_state')).toBe('on');
    for (const id of [...ids, more]) expect(await c2.call('SHOW', id)).not.toBeNull();

    expect(await c2.call('CONFIG', 'SET', 'appendonly', 'no')).toBe('OK');
    await waitFor(async () => (await keysUnder(shared, prefix)).length === 0, 'keys deleted after appendonly no', 5000);
    expect(await info(c2, 'aof_state')).toBe('off');
  });

  it('DEBUG FLUSHALL and CLUSTER RESET clear the node\'s keys; HARD moves to the new ID', async () => {
    const { srv, c, prefix } = await node();
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.call('ADDJOB', 'fq', `f${i}`, '0')));
    expect(await c.call('BGREWRITEAOF')).toBe('Background append only file rewriting started');
    await waitFor(async () => Number(await info(c, 'aof_last_snapshot_jobs')) === 10, 'snapshot written');
    expect((await keysUnder(shared, prefix)).length).toBeGreaterThan(0);
    expect(await c.call('DEBUG', 'FLUSHALL')).toBe('OK');
    // The reply waits for Redis: the keys are gone when it arrives.
    expect(await keysUnder(shared, prefix)).toEqual([]);

    const oldId = (await c.call('CLUSTER', 'MYID')) as string;
    await c.call('ADDJOB', 'fq', 'x', '0');
    expect((await keysUnder(shared, prefix)).every((k) => k.includes(oldId))).toBe(true);
    expect(await c.call('CLUSTER', 'RESET', 'HARD')).toBe('OK');
    const newId = (await c.call('CLUSTER', 'MYID')) as string;
    expect(newId).not.toBe(oldId);
    await waitFor(async () => (await keysUnder(shared, prefix)).length === 0, 'old keys deleted', 5000);
    const id = (await c.call('ADDJOB', 'fq', 'y', '0')) as string;
    const keys = await keysUnder(shared, prefix);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.includes(newId))).toBe(true);
    await srv.kill9();
    await srv.restart();
    const c2 = client(srv);
    expect(await c2.call('CLUSTER', 'MYID')).toBe(newId);
    expect(Number(await info(c2, 'registered_jobs'))).toBe(1);
    expect(await c2.call('SHOW', id)).not.toBeNull();
  });

  it('skips corrupt or foreign records with a warning and loads the rest', async () => {
    const { srv, c, prefix } = await node();
    const ids = (await Promise.all(Array.from({ length: 10 }, (_, i) => c.call('ADDJOB', 'xq', `x${i}`, '0')))) as string[];
    expect(await c.call('BGREWRITEAOF')).toBe('Background append only file rewriting started');
    await waitFor(async () => Number(await info(c, 'aof_last_snapshot_jobs')) === 10, 'snapshot written');
    const late = (await c.call('ADDJOB', 'xq', 'late', '0')) as string;
    await srv.kill9();
    const keys = await keysUnder(shared, prefix);
    const journal = keys.find((k) => k.endsWith(':journal'))!;
    const snap = keys.find((k) => /:snap:\d+$/.test(k))!;
    // Garbage in the journal (after the good entries) and in the snapshot.
    await shared.zadd(journal, 1e9, 'not msgpack at all \xff\xfe');
    await shared.zadd(journal, 1e9 + 1, Buffer.from([0x92, 0xce, 0x3b, 0x9a, 0xca, 0x01, 0x91, 0x81, 0xa2, 0x69, 0x64, 0x01]));
    await shared.rpush(snap, Buffer.from([0xc1, 0xc1, 0xc1]));
    await srv.restart();
    const c2 = client(srv);
    for (const id of [...ids, late]) expect(await c2.call('SHOW', id)).not.toBeNull();
    expect(srv.log()).toMatch(/Persistence: skipping/);
    // The damaged state is replaced by a clean snapshot.
    await waitAofState(c2, 'on');
    expect(Number(await info(c2, 'aof_last_snapshot_jobs'))).toBe(11);
    await srv.kill9();
    await srv.restart();
    const c3 = client(srv);
    expect(Number(await info(c3, 'registered_jobs'))).toBe(11);
  });

  it('BGREWRITEAOF is refused when persistence is off', async () => {
    const { c } = await node({ appendonly: 'no' });
    expect(await err(c.call('BGREWRITEAOF'))).toMatch(/appendonly no/);
  });
});
