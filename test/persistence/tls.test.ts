// Persistence to a Redis that only speaks TLS (a rediss:// redis-url and the
// redis-tls-* files). Each test runs a redis-server of its own with
// tls-port only and client certificates required, certificates from
// helpers/certs.ts, and stops it by its pid afterwards.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { startServer, waitFor, serverEntry, type ServerHandle } from '../helpers/server.js';
import { err } from '../helpers/replies.js';
import { testPrefix, keysUnder, disque, info, waitAofState } from './helpers.js';

let certs: TestCerts;
const servers: ServerHandle[] = [];
const redises: TlsRedis[] = [];
const clients: Redis[] = [];

beforeAll(() => {
  certs = makeCerts();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
  await Promise.all(redises.splice(0).map((r) => r.stop()));
});
afterAll(() => {
  certs.remove();
});

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// Below 22768, so that Redis's port stays clear of the node ports that
// helpers/server.ts hands out from the same process.
let nextRedisPort = 21000 + ((process.pid * 13) % 1700);

async function freeRedisPort(): Promise<number> {
  for (let i = 0; i < 1768; i++) {
    nextRedisPort = nextRedisPort >= 22767 ? 21000 : nextRedisPort + 1;
    if (await portIsFree(nextRedisPort)) return nextRedisPort;
  }
  throw new Error('no free port below 22768 for redis-server');
}

/** A redis-server listening on a TLS port only, requiring client certificates signed by the test CA. */
class TlsRedis {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<TlsRedis> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-tls-redis-'));
    const port = await freeRedisPort();
    const proc = spawn(
      'redis-server',
      [
        '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
        '--tls-cert-file', certs.serverCert, '--tls-key-file', certs.serverKey, '--tls-ca-cert-file', certs.caCert,
        '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log'),
      ],
      { stdio: 'ignore' },
    );
    const r = new TlsRedis(proc, port, dir);
    redises.push(r);
    try {
      await waitFor(async () => {
        if (proc.exitCode !== null) return false;
        const c = r.client();
        try {
          return (await c.ping()) === 'PONG';
        } finally {
          c.disconnect();
        }
      }, `redis-server with TLS on port ${port}`, 10000);
    } catch (e) {
      throw new Error(`${(e as Error).message}; its log: ${r.log().slice(-1000)}`);
    }
    return r;
  }

  get url(): string {
    return `rediss://127.0.0.1:${this.port}`;
  }

  /** A client with the test CA and client certificate. */
  client(): Redis {
    const c = new Redis(this.url, {
      tls: { ca: readFileSync(certs.caCert), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) },
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on('error', () => {});
    return c;
  }

  log(): string {
    const f = path.join(this.dir, 'redis.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      process.kill(p.pid!, 'SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function client(srv: ServerHandle): Redis {
  const c = disque(srv);
  clients.push(c);
  return c;
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

async function node(config: Record<string, string>): Promise<ServerHandle> {
  const srv = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': testPrefix(), ...config } });
  servers.push(srv);
  return srv;
}

/** Runs the server with `lines` as its config until it exits (it must, within the deadline). */
async function runUntilExit(lines: string[]): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-test-'));
  try {
    const conf = path.join(dir, 'disque.conf');
    writeFileSync(conf, ['port 0', `dir ${dir}`, ...lines].join('\n') + '\n');
    const proc = spawn(process.execPath, [serverEntry, conf], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15000).unref());
    const code = await Promise.race([closed, timeout]);
    if (code === 'timeout') {
      proc.kill('SIGKILL');
      throw new Error(`the server did not exit within 15 s; stderr: ${stderr}`);
    }
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('persistence to a TLS Redis', () => {
  it('keeps every job of several connections through kill -9, written over TLS with a client certificate', async () => {
    const redis = await TlsRedis.start();
    const prefix = testPrefix();
    const srv = await node({
      'redis-url': redis.url,
      'redis-key-prefix': prefix,
      'redis-tls-ca-cert-file': certs.caCert,
      'redis-tls-cert-file': certs.clientCert,
      'redis-tls-key-file': certs.clientKey,
    });
    const c = client(srv);
    await waitAofState(c, 'on');
    expect(await info(c, 'aof_redis_url')).toBe(`${redis.url}`);

    const producers = Array.from({ length: 4 }, () => client(srv));
    const added = await Promise.all(
      producers.map(async (p, k) => {
        const ids: string[] = [];
        for (let round = 0; round < 10; round++) {
          const batch = Array.from({ length: 10 }, (_, i) => p.call('ADDJOB', `tq${k % 2}`, `b${k}-${round}-${i}`, '0'));
          ids.push(...((await Promise.all(batch)) as string[]));
        }
        return ids;
      }),
    );
    const ids = added.flat();
    expect(ids).toHaveLength(400);
    await srv.kill9(); // right after the last reply: each was confirmed by Redis

    // The jobs are in the TLS Redis, under this node's prefix.
    const admin = redis.client();
    try {
      expect((await keysUnder(admin, prefix)).length).toBeGreaterThan(0);
    } finally {
      admin.disconnect();
    }

    await srv.restart();
    const c2 = client(srv);
    const missing: string[] = [];
    for (const id of ids) if ((await c2.call('SHOW', id)) === null) missing.push(id);
    expect(missing).toEqual([]);
    expect(srv.log()).toMatch(/DB loaded from Redis: 400 jobs/);
    expect(await info(c2, 'aof_state')).toBe('on');
    expect(srv.log()).not.toMatch(/TLS handshake with Redis failed/);
  }, 60000);

  it('with the wrong CA for Redis: no crash, MISCONF for writes, one TLS line in the log however often it retries', async () => {
    const redis = await TlsRedis.start();
    const srv = await node({
      // The password must never reach the log.
      'redis-url': `rediss://:sekret-pass@127.0.0.1:${redis.port}`,
      'redis-tls-ca-cert-file': certs.otherCaCert,
      'redis-tls-cert-file': certs.clientCert,
      'redis-tls-key-file': certs.clientKey,
    });
    const c = client(srv);
    expect(await err(c.call('ADDJOB', 'wq', 'refused', '0'))).toMatch(
      /^MISCONF Errors writing to Redis: Redis is unreachable \(TLS handshake with Redis failed: Redis's certificate is not signed by a CA we trust/,
    );
    expect(await info(c, 'aof_state')).toBe('redis_unreachable');
    expect(await info(c, 'aof_last_write_error')).toMatch(/redis-tls-ca-cert-file/);
    // Reads go on.
    expect(await c.call('QLEN', 'wq')).toBe(0);

    // Redis sees each reconnection fail; the node reports the failure once.
    await waitFor(() => count(redis.log(), 'Error accepting a client connection') >= 4, 'four failed TLS attempts', 20000);
    expect(srv.proc!.exitCode).toBeNull();
    expect(await c.call('PING')).toBe('PONG');
    const log = srv.log();
    expect(count(log, 'Persistence: TLS handshake with Redis failed: Redis\'s certificate is not signed by a CA we trust')).toBe(1);
    expect(log).toMatch(/self-signed certificate in certificate chain/);
    expect(log).not.toContain('sekret-pass');
    expect(log).toContain(`rediss://:***@127.0.0.1:${redis.port}`);
  }, 60000);

  it('without a client certificate where Redis requires one: MISCONF and a log line that says so', async () => {
    const redis = await TlsRedis.start();
    const srv = await node({ 'redis-url': redis.url, 'redis-tls-ca-cert-file': certs.caCert });
    const c = client(srv);
    expect(await err(c.call('ADDJOB', 'wq', 'refused', '0'))).toMatch(/^MISCONF Errors writing to Redis: .*TLS handshake with Redis failed/);
    expect(await info(c, 'aof_state')).toBe('redis_unreachable');
    await waitFor(() => count(redis.log(), 'peer did not return a certificate') >= 3, 'three refused TLS attempts', 20000);
    expect(count(srv.log(), 'Redis requires a client certificate: set redis-tls-cert-file and redis-tls-key-file')).toBeGreaterThanOrEqual(1);
    // Refusals come as an alert or as a reset, by turns: still one line.
    expect(count(srv.log(), 'Persistence: TLS handshake with Redis failed')).toBe(1);
    expect(srv.proc!.exitCode).toBeNull();
  }, 60000);

  it('refuses to start when a redis-tls-* file is missing, or a certificate has no key', async () => {
    const missing = path.join(certs.dir, 'no-such-client.crt');
    const a = await runUntilExit([
      'appendonly yes',
      'redis-url rediss://127.0.0.1:6379',
      `redis-tls-cert-file ${missing}`,
      `redis-tls-key-file ${certs.clientKey}`,
    ]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain(`redis-tls-cert-file: can't read '${missing}'`);
    expect(a.stderr).toMatch(/ENOENT/);

    const b = await runUntilExit(['redis-url rediss://127.0.0.1:6379', `redis-tls-cert-file ${certs.clientCert}`]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('redis-tls-cert-file is set');
    expect(b.stderr).toContain('redis-tls-key-file is not');

    // A CA file that holds no certificate (here: a key).
    const c = await runUntilExit(['redis-url rediss://127.0.0.1:6379', `redis-tls-ca-cert-file ${certs.caKey}`]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain(`redis-tls-ca-cert-file: '${certs.caKey}' holds no usable CA certificate`);
  }, 60000);

  it('warns that redis-tls-* files are ignored with a plain redis:// URL', async () => {
    const srv = await startServer({ config: { 'redis-tls-ca-cert-file': certs.caCert } });
    servers.push(srv);
    expect(srv.log()).toContain('redis-tls-ca-cert-file ignored: redis-url is not a rediss:// URL');
  });
});
