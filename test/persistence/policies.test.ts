// Issue 26 with `appendonly yes`, against the Redis at 127.0.0.1:6379: queue
// policies, jobs NACKed with a delay and UNIQUE keys survive kill -9 and
// restarts; in a cluster, a restarted node takes no share of a limit until
// the others give it one. Each test writes under a key prefix of its own and
// deletes it afterwards.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { Redis } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { startCluster, waitMesh } from '../helpers/cluster.js';
import { pairs } from '../helpers/replies.js';
import { SHARED_REDIS_URL, testPrefix, keysUnder, deleteUnder, disque, waitAofState } from './helpers.js';

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

async function node(prefix = testPrefix()): Promise<{ srv: ServerHandle; c: Redis; prefix: string }> {
  prefixes.push(prefix);
  const srv = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': prefix } });
  servers.push(srv);
  const c = disque(srv);
  clients.push(c);
  await waitAofState(c, 'on');
  return { srv, c, prefix };
}

async function restart(srv: ServerHandle, c: Redis): Promise<void> {
  await srv.kill9();
  await srv.restart();
  await waitFor(async () => (await c.call('PING')) === 'PONG', 'the node answers again');
  await waitAofState(c, 'on');
}

describe('issue 26 state across kill -9', () => {
  it('keeps queue policies, their tombstones, UNIQUE keys and NACK DELAY times', async () => {
    const { srv, c, prefix } = await node();
    expect(await c.call('QPOLICY', 'limited', 'SET', 'RATE', '2', '60', 'CONCURRENCY', '5')).toBe('OK');
    await c.call('QPOLICY', 'gone', 'SET', 'CONCURRENCY', '1');
    await c.call('QPOLICY', 'gone', 'CLEAR');
    expect((await keysUnder(shared, prefix)).some((k) => k.endsWith(':policies'))).toBe(true);
    const unique = (await c.call('ADDJOB', 'u', 'once', '0', 'UNIQUE', 'order-1')) as string;
    const nacked = (await c.call('ADDJOB', 'n', 'later', '0', 'RETRY', '300')) as string;
    await c.call('GETJOB', 'FROM', 'n');
    const t0 = Date.now();
    expect(await c.call('NACK', nacked, 'DELAY', '6')).toBe(1);

    await restart(srv, c);

    expect(await c.call('QPOLICY', 'limited', 'GET')).toEqual(['rate-jobs', 2, 'rate-seconds', 60, 'concurrency', 5]);
    expect(await c.call('QPOLICY', 'gone', 'GET')).toEqual([]);
    // A node alone takes its limits back at once: two deliveries, then held.
    for (let i = 0; i < 4; i++) await c.call('ADDJOB', 'limited', `l${i}`, '0');
    await waitFor(async () => pairs(pairs(await c.call('QSTAT', 'limited')).policy ?? [])['rate-share'] === 2, 'the node holds the limit again');
    const got = (await c.call('GETJOB', 'NOHANG', 'COUNT', '5', 'FROM', 'limited')) as unknown[];
    expect(got).toHaveLength(2);
    expect(await c.call('ADDJOB', 'u', 'twice', '0', 'UNIQUE', 'order-1')).toBe(unique);
    expect(pairs(await c.call('SHOW', unique)).unique).toBe('order-1');
    // The NACKed job waits for its delay, not for its retry (5 minutes) after the restart.
    const show = pairs(await c.call('SHOW', nacked));
    expect(show).toMatchObject({ state: 'active', nacks: 1 });
    expect(await c.call('QLEN', 'n')).toBe(0);
    const again = (await c.call('GETJOB', 'TIMEOUT', '15000', 'FROM', 'n')) as string[][];
    expect(again[0]![1]).toBe(nacked);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5800);
  }, 60_000);

  it('DEBUG FLUSHALL drops the policies with the jobs', async () => {
    const { srv, c } = await node();
    await c.call('QPOLICY', 'q', 'SET', 'RATE', '1', '1');
    await c.call('DEBUG', 'FLUSHALL');
    await waitAofState(c, 'on');
    await restart(srv, c);
    expect(await c.call('QPOLICY', 'q', 'GET')).toEqual([]);
  }, 60_000);
});

describe('a persistent cluster', () => {
  it('every node reloads the policy after kill -9 of all three; the limit is split again and holds', async () => {
    const prefix = testPrefix();
    prefixes.push(prefix);
    const cluster = await startCluster(3, { config: { appendonly: 'yes', 'redis-key-prefix': prefix } });
    try {
      await cluster.nodes[0]!.r.call('QPOLICY', 'cq', 'SET', 'RATE', '6', '2');
      for (const n of cluster.nodes) {
        await waitFor(async () => ((await n.r.call('QPOLICY', 'cq', 'GET')) as unknown[]).length === 4, 'every node has the policy');
      }
      await Promise.all([0, 1, 2].map((i) => cluster.kill9(i)));
      await Promise.all([0, 1, 2].map((i) => cluster.restart(i)));
      // Each node reads it back from its own keys, before any gossip.
      for (const n of cluster.nodes) expect(await n.r.call('QPOLICY', 'cq', 'GET')).toEqual(['rate-jobs', 6, 'rate-seconds', 2]);
      await waitMesh(cluster);
      const r = cluster.nodes[1]!.r;
      for (let i = 0; i < 30; i++) await r.call('ADDJOB', 'cq', `j${i}`, '0', 'REPLICATE', '1', 'RETRY', '600');
      // Shares are not persisted: the smallest node ID splits the limit again.
      const times: number[] = [];
      const until = Date.now() + 15_000;
      while (Date.now() < until && times.length < 12) {
        const got = (await r.call('GETJOB', 'TIMEOUT', '250', 'FROM', 'cq')) as string[][] | null;
        for (const job of got ?? []) {
          times.push(Date.now());
          await r.call('ACKJOB', job[1]!);
        }
      }
      expect(times.length).toBeGreaterThanOrEqual(12);
      const sorted = times.sort((a, b) => a - b);
      for (let i = 6; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 6]!).toBeGreaterThanOrEqual(2000 - 250);
    } finally {
      await cluster.destroy();
    }
  }, 120_000);
});
