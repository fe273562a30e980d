// Helpers for the persistence tests: a key prefix of their own in the shared
// Redis (cleaned up afterwards), a private redis-server that a test may
// kill, Disque clients and INFO parsing.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { getFreePort, waitFor, type ServerHandle } from '../helpers/server.js';
import { infoField } from '../helpers/replies.js';

export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * A key prefix no other test or developer uses (DISQUE_TEST_KEY_PREFIX,
 * default `disque-test:`, then the process and a random part), so several
 * people can run the tests against one Redis.
 */
export function testPrefix(): string {
  return `${process.env.DISQUE_TEST_KEY_PREFIX ?? 'disque-test:'}${process.pid}-${randomBytes(4).toString('hex')}:`;
}

/** Every key under `prefix` (SCAN, never KEYS, on the shared Redis). */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}

export async function deleteUnder(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  if (keys.length > 0) await redis.del(...keys);
}

/** Bytes Redis uses for the keys under `prefix`. */
export async function memoryUnder(redis: Redis, prefix: string): Promise<number> {
  let total = 0;
  for (const k of await keysUnder(redis, prefix)) total += Number((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0);
  return total;
}

/** A client for a Disque node (ioredis speaks RESP; Disque commands go through call()). */
export function disque(srv: ServerHandle): Redis {
  const c = new Redis({ host: srv.host, port: srv.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  c.on('error', () => {}); // the node may be killed under it: commands report that
  return c;
}

export async function info(c: Redis, field: string): Promise<string | undefined> {
  return infoField((await c.call('INFO')) as string, field);
}

export async function waitAofState(c: Redis, state: string, ms = 15000): Promise<void> {
  await waitFor(async () => (await info(c, 'aof_state')) === state, `aof_state ${state}`, ms);
}

/** A redis-server of the test's own, on a free port, which the test may kill and start again. */
export class PrivateRedis {
  proc: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await getFreePort());
    await r.launch();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async launch(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], {
      stdio: 'ignore',
    });
    this.proc = proc;
    const probe = new Redis({ port: this.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      await waitFor(async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          probe.disconnect();
          return false;
        }
      }, `redis-server on port ${this.port}`, 10000);
    } finally {
      probe.disconnect();
    }
  }

  client(): Redis {
    const c = new Redis({ port: this.port, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    return c;
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}
