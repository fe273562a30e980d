// TLS on the client port and on the bus (tls-port, tls-* directives,
// tls-cluster), against real server processes and certificates made by
// openssl for the run.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import Redis from 'ioredis';
import { Disque } from '../../src/client/index.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { startServer, getFreePort, waitFor, serverEntry, type ServerHandle } from '../helpers/server.js';

let certs: TestCerts;

beforeAll(() => {
  certs = makeCerts();
});
afterAll(() => certs?.remove());

/** Directives of a node that serves TLS only, on `port`. */
function tlsConfig(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    port: '0',
    'tls-port': String(port),
    'tls-cert-file': certs.serverCert,
    'tls-key-file': certs.serverKey,
    'tls-ca-cert-file': certs.caCert,
    ...extra,
  };
}

async function startTls(extra: Record<string, string> = {}): Promise<ServerHandle> {
  const port = await getFreePort();
  // The helper writes `port <port>` first; `port 0` after it makes the node TLS-only.
  return startServer({ port, config: tlsConfig(port, extra) });
}

type TlsOpts = tls.ConnectionOptions;
const clientCert = (): TlsOpts => ({
  ca: readFileSync(certs.caCert),
  cert: readFileSync(certs.clientCert),
  key: readFileSync(certs.clientKey),
});

function tlsRedis(port: number, opts: TlsOpts): Redis {
  const r = new Redis({ host: '127.0.0.1', port, protocol: 2, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, tls: opts });
  r.on('error', () => {});
  return r;
}

/**
 * Opens a TLS connection and sends PING: 'PONG', or what went wrong (the
 * handshake refused, or the server closed the connection after it).
 */
function tlsPing(port: number, opts: TlsOpts): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    let done = false;
    const finish = (r: string) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(r);
    };
    const s = tls.connect({ host: '127.0.0.1', port, ...opts }, () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n')) finish(got.trim().replace(/^\+/, ''));
    });
    s.on('error', (e) => finish(`error: ${e.message}`));
    s.on('close', () => finish(got === '' ? 'closed' : got.trim()));
    s.setTimeout(10000, () => finish('timeout'));
  });
}

/** How a refused TLS client ends: its handshake fails, or the server closes the link right after it (TLSv1.3 checks the client's certificate late). */
const REFUSED = /^(error: .*(certificate|alert|socket hang up|ECONNRESET)|closed)/i;

/** Sends PING in clear text: what comes back (nothing useful, from a TLS port). */
function plainPing(port: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.setTimeout(10000, () => s.destroy());
  });
}

describe('TLS on the client port', () => {
  let node: ServerHandle;
  beforeAll(async () => {
    node = await startTls({ 'tls-key-file': certs.encryptedKey, 'tls-key-file-pass': certs.keyPass });
  });
  afterAll(async () => node?.destroy());

  it('serves ioredis and the bundled client (rediss://) with a client certificate, and refuses clear text', async () => {
    const r = tlsRedis(node.port, clientCert());
    await r.connect();
    const id = (await r.call('ADDJOB', 'tq', 'over tls', '0')) as string;
    expect(id).toMatch(/^D-/);

    const d = new Disque({ nodes: [`rediss://127.0.0.1:${node.port}`], tls: clientCert(), failoverTimeout: 3000 });
    const jobs = await d.getJob('tq', { noHang: true });
    expect(jobs.map((j) => [j.id, j.body.toString()])).toEqual([[id, 'over tls']]);
    await d.ackJob(id);
    expect(await r.call('SHOW', id)).toBeNull();

    // Clear text on the TLS port gets no reply; the TLS client is unharmed.
    expect(await plainPing(node.port)).not.toMatch(/PONG/);
    expect(await r.call('PING')).toBe('PONG');
    expect(node.log()).toMatch(/Ready to accept connections on TLS port \d+/);
    await d.quit();
    r.disconnect();
  });

  it('carries large bodies, deep pipelines and QUIT', async () => {
    const r = tlsRedis(node.port, clientCert());
    await r.connect();
    const big = Buffer.alloc(3 * 1024 * 1024, 'x');
    const id = (await r.call('ADDJOB', 'bigq', big, '0')) as string;
    const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', 'bigq')) as Buffer[][];
    expect(got[0]![2]!.equals(big)).toBe(true);
    await r.call('ACKJOB', id);
    const p = r.pipeline();
    for (let i = 0; i < 5000; i++) p.call('ADDJOB', 'pq', `job ${i}`, '0');
    const res = (await p.exec())!;
    expect(res.filter(([e, v]) => e === null && /^D-/.test(String(v)))).toHaveLength(5000);
    expect(await r.call('QLEN', 'pq')).toBe(5000);
    expect(await r.quit()).toBe('OK');
    await waitFor(() => r.status === 'end', 'the connection to close after QUIT');
  });

  it('runs redis-cli --tls', () => {
    if (spawnSync('redis-cli', ['--version']).status !== 0) return expect.fail('redis-cli is needed (Debian: redis-tools)');
    const out = execFileSync('redis-cli', [
      '--tls', '--cacert', certs.caCert, '--cert', certs.clientCert, '--key', certs.clientKey,
      '-p', String(node.port), 'ADDJOB', 'cliq', 'from redis-cli', '0',
    ]).toString();
    expect(out.trim()).toMatch(/^D-/);
  });

  it('refuses clients without a certificate, with one from another CA or an expired one', async () => {
    const ca = readFileSync(certs.caCert);
    expect(await tlsPing(node.port, { ca })).toMatch(REFUSED);
    expect(await tlsPing(node.port, { ca, cert: readFileSync(certs.otherClientCert), key: readFileSync(certs.otherClientKey) })).toMatch(REFUSED);
    expect(await tlsPing(node.port, { ca, cert: readFileSync(certs.expiredCert), key: readFileSync(certs.expiredKey) })).toMatch(REFUSED);
    // A client that does not trust our CA refuses the server.
    expect(await tlsPing(node.port, { ca: readFileSync(certs.otherCaCert), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) })).toMatch(
      /error: .*(self.signed|unable to (verify|get local issuer))/i,
    );
    expect(await tlsPing(node.port, clientCert())).toBe('PONG');
  });

  it('tls-auth-clients optional and no, changed with CONFIG SET', async () => {
    const admin = tlsRedis(node.port, clientCert());
    await admin.connect();
    const ca = readFileSync(certs.caCert);
    await admin.call('CONFIG', 'SET', 'tls-auth-clients', 'optional');
    expect(await tlsPing(node.port, { ca })).toBe('PONG');
    expect(await tlsPing(node.port, { ca, cert: readFileSync(certs.expiredCert), key: readFileSync(certs.expiredKey) })).toMatch(REFUSED);
    await admin.call('CONFIG', 'SET', 'tls-auth-clients', 'no');
    expect(await tlsPing(node.port, { ca })).toBe('PONG');
    await admin.call('CONFIG', 'SET', 'tls-auth-clients', 'yes');
    expect(await tlsPing(node.port, { ca })).toMatch(REFUSED);
    admin.disconnect();
  });

  it('reloads the certificate with CONFIG SET, and keeps the old one when the new pair does not load', async () => {
    const admin = tlsRedis(node.port, clientCert());
    await admin.connect();
    const servedCN = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: node.port, ...clientCert() }, () => {
          const cn = s.getPeerCertificate().subject.CN;
          s.destroy();
          resolve(String(cn));
        });
        s.on('error', reject);
      });
    expect(await servedCN()).toBe('localhost');
    // The renewed certificate's key does not match the current key: refused, nothing changes.
    await expect(admin.call('CONFIG', 'SET', 'tls-cert-file', certs.server2Cert)).rejects.toThrow(/Unable to update TLS configuration/);
    expect(await admin.call('CONFIG', 'GET', 'tls-cert-file')).toEqual(['tls-cert-file', certs.serverCert]);
    expect(await servedCN()).toBe('localhost');
    expect(node.log()).toMatch(/Failed to update TLS configuration/);
    // Certificate and key together: new connections get the renewed one; the admin connection stays up.
    await admin.call('CONFIG', 'SET', 'tls-cert-file', certs.server2Cert, 'tls-key-file', certs.server2Key, 'tls-key-file-pass', '');
    expect(await servedCN()).toBe('renewed.localhost');
    expect(await admin.call('PING')).toBe('PONG');
    await expect(admin.call('CONFIG', 'SET', 'tls-ca-cert-file', '/nonexistent/ca.crt')).rejects.toThrow(/Unable to update TLS configuration/);
    expect(node.log()).toMatch(/tls-ca-cert-file '\/nonexistent\/ca.crt' cannot be read/);
    // The key passphrase is never shown.
    expect(await admin.call('CONFIG', 'GET', 'tls-key-file-pass')).toEqual([]);
    admin.disconnect();
  });
});

describe('TLS versions, ciphers and a CA folder', () => {
  it('takes CAs from tls-ca-cert-dir, limits versions with tls-protocols, and picks the TLSv1.3 suite from tls-ciphersuites', async () => {
    const caDir = mkdtempSync(path.join(certs.dir, 'ca-dir-'));
    copyFileSync(certs.caCert, path.join(caDir, 'ca.pem'));
    writeFileSync(path.join(caDir, 'README'), 'not a certificate\n');
    const node = await startTls({
      'tls-ca-cert-file': '""',
      'tls-ca-cert-dir': caDir,
      'tls-protocols': '"TLSv1.3"',
      'tls-ciphersuites': 'TLS_CHACHA20_POLY1305_SHA256',
    });
    try {
      // The client certificate is checked against the folder's CA.
      expect(await tlsPing(node.port, clientCert())).toBe('PONG');
      expect(await tlsPing(node.port, { ...clientCert(), cert: readFileSync(certs.otherClientCert), key: readFileSync(certs.otherClientKey) })).toMatch(REFUSED);
      // TLSv1.2 only: refused by a TLSv1.3-only node.
      expect(await tlsPing(node.port, { ...clientCert(), maxVersion: 'TLSv1.2' })).toMatch(/error: .*(protocol|version)/i);
      const cipher = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: node.port, ...clientCert() }, () => {
          const c = s.getCipher().name;
          s.destroy();
          resolve(c);
        });
        s.on('error', reject);
      });
      expect(cipher).toBe('TLS_CHACHA20_POLY1305_SHA256');
    } finally {
      await node.destroy();
    }
  });
});

describe('bundled client TLS options', () => {
  it('takes rediss:// seeds (with a password) and refuses to mix them with plain ones', async () => {
    expect(() => new Disque({ nodes: ['rediss://127.0.0.1:7811', '127.0.0.1:7712'] })).toThrow(/mix rediss/);
    expect(() => new Disque({ nodes: ['rediss://127.0.0.1:7811'], tls: false })).toThrow(/need TLS/);
    const port = await getFreePort();
    const node = await startServer({ port, config: { ...tlsConfig(port), 'tls-auth-clients': 'no', requirepass: 'sesame' } });
    try {
      const d = new Disque({ nodes: [`rediss://:sesame@localhost:${port}`], tls: { ca: readFileSync(certs.caCert) }, failoverTimeout: 3000 });
      expect(await d.addJob('pwq', 'x')).toMatch(/^D-/);
      await d.quit();
      const wrong = new Disque({ nodes: [`rediss://:nope@localhost:${port}`], tls: { ca: readFileSync(certs.caCert) }, failoverTimeout: 1000 });
      const err = await wrong.addJob('pwq', 'x').then(() => null, (e: Error) => e);
      expect(err?.message).toMatch(/invalid password/);
      wrong.disconnect();
    } finally {
      await node.destroy();
    }
  });
});

describe('TLS and plain side by side', () => {
  it('serves both ports; HELLO gives TLS clients the TLS port', async () => {
    const port = await getFreePort();
    const tlsPort = await getFreePort();
    const node = await startServer({ port, config: { ...tlsConfig(tlsPort), port: String(port), 'tls-auth-clients': 'no' } });
    try {
      const plain = new Redis({ port, host: '127.0.0.1', protocol: 2, lazyConnect: true });
      const secure = tlsRedis(tlsPort, { ca: readFileSync(certs.caCert) });
      await plain.connect();
      await secure.connect();
      const helloPort = async (r: Redis) => ((await r.call('HELLO')) as unknown[][])[2]![2];
      expect(await helloPort(plain)).toBe(String(port));
      expect(await helloPort(secure)).toBe(String(tlsPort));
      const id = (await plain.call('ADDJOB', 'both', 'x', '0')) as string;
      expect(await secure.call('QLEN', 'both')).toBe(1);
      expect(((await secure.call('SHOW', id)) as unknown[])[1]).toBe(id);
      plain.disconnect();
      secure.disconnect();
    } finally {
      await node.destroy();
    }
  });

  it('refuses to start without a readable certificate, naming the directive', async () => {
    const port = await getFreePort();
    const res = spawnSync(process.execPath, [serverEntry, '--port', '0', '--tls-port', String(port), '--tls-cert-file', '/nonexistent.crt', '--tls-key-file', certs.serverKey], {
      encoding: 'utf8',
      timeout: 20000,
      cwd: certs.dir,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/tls-cert-file '\/nonexistent.crt' cannot be read/);
    const res2 = spawnSync(process.execPath, [serverEntry, '--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.serverCert, '--tls-key-file', certs.encryptedKey], {
      encoding: 'utf8',
      timeout: 20000,
      cwd: certs.dir,
    });
    expect(res2.status).toBe(1);
    expect(res2.stderr).toMatch(/TLS configuration is invalid/);
  });
});

describe('tls-cluster', () => {
  it('replicates over mutual TLS, and a node from another CA cannot join', async () => {
    const nodes: ServerHandle[] = [];
    try {
      // cluster-secret too: its handshake runs inside the TLS link.
      for (let i = 0; i < 3; i++) nodes.push(await startTls({ 'tls-cluster': 'yes', 'cluster-node-timeout': '3000', 'cluster-secret': 'tls-and-secret' }));
      const rs = await Promise.all(
        nodes.map(async (n) => {
          const r = tlsRedis(n.port, clientCert());
          await r.connect();
          return r;
        }),
      );
      for (let i = 1; i < 3; i++) await rs[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[i]!.port));
      await waitFor(async () => {
        for (const r of rs) {
          const lines = ((await r.call('CLUSTER', 'NODES')) as string).trim().split('\n');
          if (lines.length !== 3 || lines.some((l) => !l.endsWith('connected') || l.includes('handshake'))) return false;
        }
        return true;
      }, 'the three TLS nodes to know each other');
      const id = (await rs[0]!.call('ADDJOB', 'cq', 'replicated over tls', '0', 'REPLICATE', '3')) as string;
      for (const r of rs) expect(((await r.call('SHOW', id)) as unknown[])[1]).toBe(id);
      // Nodes hand out TLS ports in HELLO; the bundled client follows them.
      const d = new Disque({ nodes: [`rediss://127.0.0.1:${nodes[1]!.port}`], tls: clientCert() });
      const [job] = await d.getJob('cq', { timeout: 5000 });
      expect(job?.id).toBe(id);
      await d.quit();

      // A node whose certificate another CA signed: the handshake fails on the bus.
      const intruder = await startTls({
        'tls-cluster': 'yes',
        'tls-cert-file': certs.otherServerCert,
        'tls-key-file': certs.otherServerKey,
        'tls-ca-cert-file': certs.otherCaCert,
      });
      nodes.push(intruder);
      await rs[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(intruder.port));
      await waitFor(() => /Cluster bus TLS handshake with 127\.0\.0\.1(:\d+)? failed/.test(nodes[0]!.log() + intruder.log()), 'a failed bus handshake in the logs');
      const lines = ((await rs[0]!.call('CLUSTER', 'NODES')) as string).trim().split('\n');
      expect(lines.filter((l) => !l.includes('handshake'))).toHaveLength(3);
      for (const r of rs) r.disconnect();
    } finally {
      for (const n of nodes) await n.destroy();
    }
  });
});
