// Redis failing under a node with `appendonly yes`: each test runs its own
// redis-server (no persistence of its own, so a killed Redis comes back
// empty), kills it, and checks that the node refuses writes with -MISCONF,
// keeps serving reads and consumers, and writes a fresh snapshot once Redis
// is back.
import { describe, it, expect, afterEach } from 'vitest';
import type { Redis } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { err } from '../helpers/replies.js';
import { PrivateRedis, testPrefix, disque, info, waitAofState } from './helpers.js';

const servers: ServerHandle[] = [];
const redises: PrivateRedis[] = [];
const clients: Redis[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
  await Promise.all(redises.splice(0).map((r) => r.kill9()));
});

async function setup(): Promise<{ redis: PrivateRedis; srv: ServerHandle; c: Redis }> {
  const redis = await PrivateRedis.start();
  redises.push(redis);
  const srv = await startServer({ config: { appendonly: 'yes', 'redis-url': redis.url, 'redis-key-prefix': testPrefix() } });
  servers.push(srv);
  return { redis, srv, c: client(srv) };
}

function client(srv: ServerHandle): Redis {
  const c = disque(srv);
  clients.push(c);
  return c;
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

describe('Redis unreachable or failing', () => {
  it('Redis killed while the node loads: the node serves, answers MISCONF, and resumes writes when Redis is back', async () => {
    const { redis, srv, c } = await setup();
    await Promise.all(Array.from({ length: 200 }, (_, i) => c.call('ADDJOB', 'lq', `l${i}`, '0')));
    await srv.kill9();

    // Paused, Redis holds the node's first command: the node is stuck loading.
    const admin = redis.client();
    await admin.call('CLIENT', 'PAUSE', '30000', 'ALL');
    admin.disconnect();
    const restarting = srv.restart();
    await waitFor(() => count(srv.log(), 'Loading jobs from Redis') === 2, 'the node starts loading', 10000);
    expect(srv.log()).not.toMatch(/DB loaded from Redis: 200/);
    await redis.kill9();
    await restarting;

    const c2 = client(srv);
    expect(await err(c2.call('ADDJOB', 'lq', 'refused', '0'))).toMatch(/^MISCONF Errors writing to Redis: Redis is unreachable/);
    expect(await err(c2.call('DELJOB', 'D-00000000-000000000000000000000000-0000'))).toMatch(/^MISCONF/);
    // Reads and consumers keep working.
    expect(await c2.call('QLEN', 'lq')).toBe(0);
    expect(await c2.call('GETJOB', 'NOHANG', 'FROM', 'lq')).toBeNull();
    expect(await c2.call('PING')).toBe('PONG');
    expect(await info(c2, 'aof_state')).toBe('redis_unreachable');
    expect(await info(c2, 'aof_last_write_status')).toBe('err');
    expect(srv.log()).toMatch(/Could not load jobs from Redis/);
    // Logged once per state change, not once per retry.
    expect(count(srv.log(), 'Persistence: writing to Redis failed')).toBe(1);

    await redis.launch();
    await waitAofState(c2, 'on');
    const id = (await c2.call('ADDJOB', 'lq', 'after', '0')) as string;
    expect(srv.log()).toMatch(/Redis writes are accepted again/);
    await srv.kill9();
    await srv.restart();
    const c3 = client(srv);
    expect(await c3.call('SHOW', id)).not.toBeNull();
  });

  it('Redis killed while serving: MISCONF for producers, consumers go on, the fresh snapshot has every job', async () => {
    const { redis, srv, c } = await setup();
    const ids = (await Promise.all(Array.from({ length: 20 }, (_, i) => c.call('ADDJOB', 'wq', `w${i}`, '0')))) as string[];
    await redis.kill9();
    await waitAofState(c, 'redis_unreachable');
    expect(await err(c.call('ADDJOB', 'wq', 'refused', '0'))).toMatch(/^MISCONF Errors writing to Redis: /);
    const [job] = (await c.call('GETJOB', 'NOHANG', 'FROM', 'wq')) as string[][];
    expect(job![1]).toBe(ids[0]);
    expect(await c.call('ACKJOB', ids[0]!)).toBe(1);
    expect(await c.call('QLEN', 'wq')).toBe(19);

    // Redis comes back empty: the node writes all it holds again.
    await redis.launch();
    await waitAofState(c, 'on');
    expect(Number(await info(c, 'aof_last_snapshot_jobs'))).toBe(19);
    const late = (await c.call('ADDJOB', 'wq', 'late', '0')) as string;
    await srv.kill9();
    await srv.restart();
    const c2 = client(srv);
    expect(await c2.call('SHOW', ids[0]!)).toBeNull();
    for (const id of [...ids.slice(1), late]) expect(await c2.call('SHOW', id)).not.toBeNull();
  });

  it('a node started while Redis is down serves, then loads and persists once Redis starts', async () => {
    const redis = await PrivateRedis.start();
    redises.push(redis);
    await redis.kill9();
    const srv = await startServer({ config: { appendonly: 'yes', 'redis-url': redis.url, 'redis-key-prefix': testPrefix() } });
    servers.push(srv);
    const c = client(srv);
    expect(await info(c, 'aof_state')).toBe('redis_unreachable');
    expect(await err(c.call('ADDJOB', 'dq', 'x', '0'))).toMatch(/^MISCONF/);
    await redis.launch();
    await waitAofState(c, 'on');
    const id = (await c.call('ADDJOB', 'dq', 'x', '0')) as string;
    await srv.kill9();
    await srv.restart();
    expect(await client(srv).call('SHOW', id)).not.toBeNull();
  });
});
