// Starting, joining and stopping the servers a benchmark runs against.
//
// Three flavors: "ours" (node dist/src/bin/disque-server.js), "reference"
// (the C Disque, given its binary) and "redis" (redis-server). Each may
// instead be an address of a server someone else runs; then we never stop it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, fmtAddr, type Address, type ServerKind } from './conn.js';
import { isLocalHost, procCpuMs } from './procstat.js';

export type Flavor = 'ours' | 'reference' | 'redis';

export const FLAVOR_KIND: Record<Flavor, ServerKind> = { ours: 'disque', reference: 'disque', redis: 'redis' };

export interface ServerHandle {
  flavor: Flavor;
  kind: ServerKind;
  addr: Address;
  /** Known when local: used for CPU and RSS. */
  pid?: number;
  /** True if we started it (and so must stop it). */
  owned: boolean;
  stop(): Promise<void>;
}

/** dist/bench/servers.js -> repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OUR_SERVER = join(REPO_ROOT, 'dist/src/bin/disque-server.js');

const running = new Set<ChildProcess>();

// A benchmark interrupted with Ctrl-C must not leave servers behind.
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: got ${sig}, stopping the servers it started and exiting\n`);
      for (const c of running) c.kill('SIGKILL');
      process.exit(130);
    });
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** First port >= start whose client port and cluster bus port (+10000) are both free. */
export async function freePort(start: number, avoid: Set<number> = new Set()): Promise<number> {
  for (let p = start; p < start + 1000; p++) {
    if (avoid.has(p)) continue;
    if ((await canListen(p)) && (await canListen(p + 10_000))) {
      avoid.add(p);
      return p;
    }
  }
  throw new Error(`no free port pair from ${start}`);
}

async function waitReady(addr: Address, child: ChildProcess, logFile: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server on ${fmtAddr(addr)} exited (${child.exitCode ?? child.signalCode}):\n${tail(logFile)}`);
    }
    try {
      const c = await Client.open(addr, 1000);
      const r = await c.call('PING');
      c.close();
      if (r === 'PONG') return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`server on ${fmtAddr(addr)} not ready after ${timeoutMs} ms:\n${tail(logFile)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface StartOptions {
  /** Binary: our server's JS entry, the reference disque-server, or redis-server. */
  bin: string;
  port: number;
  /** Prefix the command with `taskset -c <cpus>`. */
  cpus?: string;
  /** More arguments after ours (e.g. `--appendonly yes`). */
  args?: string[];
}

/** Starts a server in a fresh temporary directory (removed on stop). */
export async function startServer(flavor: Flavor, o: StartOptions): Promise<ServerHandle> {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), `bench-${flavor}-${o.port}-`));
  const logFile = join(dir, 'server.log');
  let cmd: string[];
  switch (flavor) {
    case 'ours':
      // BENCH_OURS_NODE_ARGS: Node flags for our server (e.g. --cpu-prof --cpu-prof-dir=DIR to profile a row).
      cmd = [process.execPath, ...(process.env.BENCH_OURS_NODE_ARGS ?? '').split(' ').filter(Boolean), o.bin, '--port', String(o.port), '--dir', dir, '--logfile', logFile];
      break;
    case 'reference':
      cmd = [o.bin, '--port', String(o.port), '--dir', dir, '--logfile', logFile];
      break;
    case 'redis':
      cmd = [o.bin, '--port', String(o.port), '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logFile];
      break;
  }
  if (o.args) cmd.push(...o.args);
  if (o.cpus) cmd = ['taskset', '-c', o.cpus, ...cmd];
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'ignore', detached: false });
  running.add(child);
  const addr = { host: '127.0.0.1', port: o.port };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    running.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(addr, child, logFile);
  } catch (e) {
    await stop();
    throw e;
  }
  return { flavor, kind: FLAVOR_KIND[flavor], addr, ...(child.pid ? { pid: child.pid } : {}), owned: true, stop };
}

/** A server someone else runs. Its pid is asked via INFO when it is on this machine. */
export async function externalServer(flavor: Flavor, addr: Address): Promise<ServerHandle> {
  const c = await Client.open(addr);
  let pid: number | undefined;
  try {
    if (isLocalHost(addr.host)) {
      const p = Number((await c.info('server')).get('process_id'));
      if (p > 0 && procCpuMs(p) !== null) pid = p;
    }
  } finally {
    c.close();
  }
  return { flavor, kind: FLAVOR_KIND[flavor], addr, ...(pid ? { pid } : {}), owned: false, stop: async () => {} };
}

/**
 * Joins Disque nodes into one cluster (CLUSTER MEET from the first to the
 * others) and waits until every node sees every other one connected.
 */
export async function joinCluster(nodes: ServerHandle[], timeoutMs = 20_000): Promise<void> {
  const first = await Client.open(nodes[0]!.addr);
  try {
    for (const n of nodes.slice(1)) await first.ok('CLUSTER', 'MEET', n.addr.host, n.addr.port);
  } finally {
    first.close();
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = true;
    for (const n of nodes) {
      const c = await Client.open(n.addr);
      try {
        const r = await c.call('CLUSTER', 'NODES');
        const lines = typeof r === 'string' ? r.trim().split('\n') : [];
        const good = lines.filter((l) => {
          const f = l.split(' ');
          return !/handshake|noaddr|fail/.test(f[2] ?? '') && f.includes('connected');
        });
        if (good.length < nodes.length) ok = false;
      } finally {
        c.close();
      }
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`cluster of ${nodes.map((n) => n.addr.port).join(',')} did not form in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Deletes the keys under `prefix` (SCAN + UNLINK); returns how many. */
export async function deleteKeys(addr: Address, prefix: string): Promise<number> {
  const c = await Client.open(addr);
  let n = 0;
  try {
    let cursor = '0';
    do {
      const r = (await c.ok('SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)) as [string, string[]];
      cursor = r[0];
      if (r[1].length > 0) n += Number(await c.ok('UNLINK', ...r[1]));
    } while (cursor !== '0');
  } finally {
    c.close();
  }
  return n;
}

/** Finds redis-server on PATH (null if absent). */
export function findOnPath(name: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p && existsSync(p) ? p : null;
}

/** Pins this process (all its threads) to the given CPUs; false if taskset is missing. */
export function pinSelf(cpus: string): boolean {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { encoding: 'utf8' });
  return r.status === 0;
}
