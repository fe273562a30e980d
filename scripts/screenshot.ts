// Takes docs/dashboard.png: starts a 3-node cluster on free ports (as `npm run
// cluster` does, in a temporary folder), runs producers and consumers on a few
// queues for a while so the charts have a history, and photographs the
// dashboard in headless Chromium (playwright-core, a devDependency).
//
//   npm run build && node dist/scripts/screenshot.js [out.png] [--seconds 90] [--page cluster]
//
// CHROMIUM names the browser binary (default /usr/bin/chromium).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';
import { makeEnvelope } from '../src/client/dead-letter.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const server = path.join(root, 'dist/src/bin/disque-server.js');

const args = process.argv.slice(2);
const flag = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args.splice(i, 2)[1]! : def;
};
const seconds = Number(flag('seconds', '90'));
const pageName = flag('page', 'cluster');
const out = path.resolve(args[0] ?? path.join(root, 'docs/dashboard.png'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    // The bus listens on port + 10000; the HTTP port is chosen separately.
    if (port + 10000 < 65536 && (await isFree(port + 10000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface Node { port: number; httpPort: number; proc: ChildProcess; redis: Redis }

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-screenshot-'));
  const nodes: Node[] = [];
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const n of nodes) n.redis.disconnect();
    for (const n of nodes) n.proc.kill('SIGTERM');
    await Promise.all(nodes.map((n) => (n.proc.exitCode !== null ? null : new Promise((r) => n.proc.once('exit', r)))));
    rmSync(dir, { recursive: true, force: true });
  };

  // However this process ends, the nodes it started end with it.
  process.on('exit', () => {
    for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));

  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      let httpPort = await freePort();
      while (httpPort === port) httpPort = await freePort();
      mkdirSync(path.join(dir, String(i)));
      const proc = spawn(process.execPath, [server, '--port', String(port), '--http-port', String(httpPort),
        '--dir', path.join(dir, String(i)), '--bind', '127.0.0.1', '--loglevel', 'warning', '--maxmemory', '256mb',
        '--logfile', path.join(dir, `${i}.log`), '--cluster-config-file', path.join(dir, `nodes-${i}.conf`)], { stdio: ['ignore', 'ignore', 'inherit'] });
      const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 3, protocol: 2, lazyConnect: true, retryStrategy: () => 100 });
      redis.on('error', () => undefined); // refused until the node listens; retried
      nodes.push({ port, httpPort, proc, redis });
    }
    await until('the nodes to start', async () => {
      await Promise.all(nodes.map((n) => (n.redis.status === 'ready' ? null : n.redis.connect().catch(() => undefined))));
      return nodes.every((n) => n.redis.status === 'ready');
    });
    for (const n of nodes.slice(1)) await nodes[0]!.redis.call('CLUSTER', 'MEET', '127.0.0.1', String(n.port));
    await until('the cluster to form', async () => {
      for (const n of nodes) {
        const hello = (await n.redis.call('HELLO')) as unknown[];
        if (hello.length - 2 < 3) return false; // version, my ID, then one entry per node
      }
      return true;
    });
    await until('the dashboards', async () => {
      for (const n of nodes) if ((await fetch(`http://127.0.0.1:${n.httpPort}/readyz`)).status !== 200) return false;
      return true;
    });

    // Traffic: each queue has producers faster or slower than its consumers.
    const queues = [
      { name: 'emails', add: 60, take: 55 },
      { name: 'thumbnails', add: 35, take: 33 },
      { name: 'reports', add: 8, take: 0 },
      { name: 'webhooks', add: 20, take: 17 },
    ];
    for (let i = 0; i < 4; i++) {
      const env = makeEnvelope({ id: `D-00000000-${'x'.repeat(24)}-0001`, queue: 'emails', body: Buffer.from(JSON.stringify({ to: `user${i}@example.net` })) },
        new Error('SMTP 550 mailbox unavailable'), 5, undefined);
      await nodes[i % 3]!.redis.call('ADDJOB', 'emails-failed', JSON.stringify(env), '0');
    }
    await nodes[0]!.redis.call('PAUSE', 'reports', 'out', 'BCAST');

    // Each loop owes jobs at its rate and settles up every 100 ms (pipelined),
    // so slower replies do not slow the traffic down.
    const loops: Promise<void>[] = [];
    const started = Date.now();
    const every = (rate: (t: number) => number, act: (n: number) => Promise<unknown>) => (async () => {
      let owed = 0;
      let last = Date.now();
      while (!stopping) {
        const now = Date.now();
        owed += (rate((now - started) / 1000) * (now - last)) / 1000;
        last = now;
        const n = Math.floor(owed);
        owed -= n;
        if (n > 0) await act(n).catch(() => undefined);
        await sleep(100);
      }
    })();
    let k = 0;
    for (const [qi, q] of queues.entries()) {
      for (const n of nodes) {
        // Rates wave gently so the charts are not flat.
        const wave = (t: number) => 1 + 0.4 * Math.sin(t / 10 + qi * 1.5);
        loops.push(every((t) => (q.add / 3) * wave(t), (count) => Promise.all(Array.from({ length: count }, () =>
          n.redis.call('ADDJOB', q.name, JSON.stringify({ queue: q.name, n: k++, at: new Date().toISOString() }), '0', 'RETRY', '60')))));
        if (q.take === 0) continue;
        loops.push(every(() => q.take / 3, async (count) => {
          const jobs = (await n.redis.call('GETJOB', 'NOHANG', 'COUNT', String(count), 'FROM', q.name)) as string[][] | null;
          if (jobs && jobs.length > 0) await n.redis.call('ACKJOB', ...jobs.map((j) => j[1]!));
        }));
      }
    }

    process.stdout.write(`traffic running for ${seconds} s (dashboard at http://127.0.0.1:${nodes[0]!.httpPort}/)\n`);
    await sleep(seconds * 1000);

    const profile = mkdtempSync(path.join(os.tmpdir(), 'disque-screenshot-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1400, height: 900 },
      deviceScaleFactor: 1,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${nodes[0]!.httpPort}/#/${pageName}`);
      await page.locator('table.data tbody tr').first().waitFor({ timeout: 15000 });
      await page.locator('.u-over').first().waitFor({ timeout: 15000 }).catch(() => undefined);
      await page.waitForLoadState('networkidle').catch(() => undefined);
      await sleep(3000); // two more polls, so every figure is a live one
      await page.screenshot({ path: out, fullPage: true });
      process.stdout.write(`wrote ${out}\n`);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
    stopping = true;
    await Promise.race([Promise.all(loops), sleep(3000)]);
  } finally {
    await stop();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
