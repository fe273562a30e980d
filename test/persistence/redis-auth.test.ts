// The journal writes over a connection of its own (journal-link.ts): it must
// log in and pick the database as the redis-url says, as the rest of
// persistence (ioredis) does. A Redis of the test's own with a password and
// an ACL user; jobs must reach the database the URL names and survive a
// kill -9, and a wrong password must show as a write failure.
import { describe, it, expect, afterEach } from 'vitest';
import { Redis } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { PrivateRedis, testPrefix, disque, info } from './helpers.js';

const servers: ServerHandle[] = [];
const redises: PrivateRedis[] = [];
const clients: Redis[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
  await Promise.all(redises.splice(0).map((r) => r.kill9()));
});

async function protectedRedis(): Promise<PrivateRedis> {
  const redis = await PrivateRedis.start();
  redises.push(redis);
  const admin = redis.client();
  await admin.call('ACL', 'SETUSER', 'disque', 'on', '>user-pw', '~*', '+@all');
  await admin.call('CONFIG', 'SET', 'requirepass', 'default-pw');
  admin.disconnect();
  return redis;
}

async function node(url: string, prefix: string): Promise<{ srv: ServerHandle; c: Redis }> {
  const srv = await startServer({ config: { appendonly: 'yes', 'redis-url': url, 'redis-key-prefix': prefix } });
  servers.push(srv);
  const c = disque(srv);
  clients.push(c);
  return { srv, c };
}

describe('persistence to a Redis with a password', () => {
  for (const [who, auth] of [
    ['the default user', ':default-pw'],
    ['an ACL user', 'disque:user-pw'],
  ] as const) {
    it(`logs in as ${who}, writes to the database the URL names, and reloads after kill -9`, async () => {
      const redis = await protectedRedis();
      const prefix = testPrefix();
      const { srv, c } = await node(`redis://${auth}@127.0.0.1:${redis.port}/3`, prefix);
      const id = (await c.call('ADDJOB', 'q', 'body', '0')) as string;
      expect(await info(c, 'aof_state')).toBe('on');
      const r = new Redis({ port: redis.port, password: 'default-pw', db: 3, protocol: 2, maxRetriesPerRequest: 0 });
      await waitFor(async () => (await r.zcard(`${prefix}{${(await c.call('CLUSTER', 'MYID')) as string}}:journal`)) > 0, 'the journal in db 3', 10000);
      r.disconnect();
      await srv.kill9();
      await srv.restart();
      const c2 = disque(srv);
      clients.push(c2);
      await waitFor(async () => (await info(c2, 'loading')) === '0', 'the node loaded', 15000);
      // Reloaded as the reference reloads its AOF: known, active, queued again after RETRY.
      const shown = (await c2.call('SHOW', id)) as unknown[];
      expect(shown).not.toBeNull();
      expect(shown[shown.indexOf('state') + 1]).toBe('active');
    });
  }

  it('reports a wrong password as a write failure (-MISCONF) in INFO and to writers', async () => {
    const redis = await protectedRedis();
    const { c } = await node(`redis://:not-it@127.0.0.1:${redis.port}`, testPrefix());
    await waitFor(async () => (await info(c, 'aof_last_write_status')) === 'err', 'the write failure', 15000);
    expect(await info(c, 'aof_last_write_error')).toMatch(/WRONGPASS|invalid|auth/i);
    await expect(c.call('ADDJOB', 'q', 'body', '0')).rejects.toThrow(/MISCONF/);
  });
});
