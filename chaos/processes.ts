// The processes of a fault run: the Disque nodes (ours or the reference),
// each on its own loopback address, and the run's own Redis. Faults are
// done to them here: kill -9 and restart, SIGSTOP and SIGCONT, Redis
// stopped, restarted with its data, or restarted empty.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../bench/conn.js';
import { RespError } from '../bench/resp.js';

export type Flavor = 'ours' | 'reference';

/** The repository's root, from dist/chaos/ (npm run chaos) or chaos/ (the tests). */
const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO_ROOT = join(HERE, /[/\\]dist[/\\]chaos[/\\]?$/.test(HERE) ? '../..' : '..');
export const OUR_SERVER = join(REPO_ROOT, 'dist/src/bin/disque-server.js');

const live = new Set<ChildProcess>();
let exitHooked = false;

/**
 * Whatever ends the run, no process it started outlives it (the CLI turns
 * Ctrl-C into process.exit, so this runs then too).
 */
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const c of live) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
  });
}

function launch(cmd: string, args: string[], cwd: string): ChildProcess {
  hookExit();
  const child = spawn(cmd, args, { cwd, stdio: 'ignore' });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

async function killHard(child: ChildProcess | null): Promise<void> {
  if (child === null) return;
  child.kill('SIGKILL');
  child.kill('SIGCONT');
  await exited(child);
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** One command on a fresh connection, with a deadline (a paused node never answers). */
export async function adminCall(host: string, port: number, args: (string | number)[], timeoutMs = 2000): Promise<unknown> {
  let client: Client | null = null;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${host}:${port} did not answer ${args[0]} in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([
      (async () => {
        client = await Client.open({ host, port }, timeoutMs);
        const r = await client.call(...args);
        if (r instanceof RespError) throw new Error(`${args.join(' ')}: ${r.message}`);
        return r;
      })(),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
    (client as Client | null)?.close();
  }
}

export async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface ChaosNode {
  index: number;
  host: string;
  port: number;
  dir: string;
  proc: ChildProcess | null;
  paused: boolean;
}

export interface ClusterOptions {
  flavor: Flavor;
  /** The reference's disque-server (flavor reference). */
  referenceBin?: string;
  nodes: number;
  /** Each node's address is `${hostPrefix}${index + 1}`. */
  hostPrefix: string;
  nodeTimeoutMs: number;
  /** Persistence: ours to `redisUrl`, the reference to its AOF (none: appendonly no). */
  redisUrl?: string;
  /** appendonly no on every node (default: yes). */
  noPersist?: boolean;
  /** Ours: repl-trace-slower-than, ms (slow ADDJOBs log their replication). */
  replTraceMs?: number;
  workDir: string;
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = [];

  private constructor(private readonly o: ClusterOptions) {}

  /** Starts the nodes (not yet joined) on ports free on their addresses. */
  static async start(o: ClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster(o);
    // Client ports below 22768, so the bus (+10000) stays out of the ephemeral range.
    let port = 12000 + ((process.pid * 7) % 8000);
    for (let i = 0; i < o.nodes; i++) {
      const host = `${o.hostPrefix}${i + 1}`;
      while (!((await canListen(host, port)) && (await canListen(host, port + 10_000)))) port++;
      const dir = join(o.workDir, `node${i}`);
      mkdirSync(dir, { recursive: true });
      c.nodes.push({ index: i, host, port, dir, proc: null, paused: false });
      c.writeConfig(c.nodes[i]!);
      port++;
    }
    try {
      await Promise.all(c.nodes.map((n) => c.launch(n)));
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private writeConfig(n: ChaosNode): void {
    const lines = [
      `port ${n.port}`,
      `bind ${n.host}`,
      `dir ${n.dir}`,
      'logfile log.txt',
      'loglevel notice',
      `cluster-node-timeout ${this.o.nodeTimeoutMs}`,
      `appendonly ${this.o.noPersist ? 'no' : 'yes'}`,
    ];
    if (this.o.flavor === 'ours') {
      lines.push('http-port 0');
      if (this.o.redisUrl !== undefined) lines.push(`redis-url ${this.o.redisUrl}`);
      if (this.o.replTraceMs !== undefined) lines.push(`repl-trace-slower-than ${this.o.replTraceMs}`);
    }
    writeFileSync(join(n.dir, 'disque.conf'), lines.join('\n') + '\n');
  }

  private async launch(n: ChaosNode): Promise<void> {
    const conf = join(n.dir, 'disque.conf');
    const [cmd, args] = this.o.flavor === 'ours' ? [process.execPath, [OUR_SERVER, conf]] : [this.o.referenceBin!, [conf]];
    const proc = launch(cmd, args, n.dir);
    n.proc = proc;
    n.paused = false;
    // Loading from Redis or an AOF may take a while; -LOADING means not yet.
    await waitFor(
      `node ${n.index} (${n.host}:${n.port}) to answer`,
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`node ${n.index} exited:\n${this.logTail(n)}`);
        return (await adminCall(n.host, n.port, ['PING'], 1000)) === 'PONG';
      },
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${this.logTail(n)}`);
    });
  }

  logTail(n: ChaosNode, lines = 20): string {
    const f = join(n.dir, 'log.txt');
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').slice(-lines).join('\n') : '(no log)';
  }

  /**
   * The `count` slowest replications the nodes logged (repl-trace-slower-than)
   * that ended with the reply (those in ADDJOB's latency; NOREPL ones are
   * counted), slowest first, and the median one; node IDs replaced by node
   * indexes.
   */
  slowReplications(count: number): { slowest: string[]; median: string | null; replied: number; norepl: number } {
    const found: { ms: number; line: string }[] = [];
    let norepl = 0;
    const logs = this.nodes.map((n) => {
      const f = join(n.dir, 'log.txt');
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    });
    const names = new Map<string, string>();
    logs.forEach((log, i) => {
      const id = /I'm ([0-9a-f]{40})/.exec(log)?.[1];
      if (id !== undefined) names.set(id.slice(0, 8), `node${i}`);
    });
    logs.forEach((log, i) => {
      for (const line of log.split('\n')) {
        const m = /Slow replication of (.*) \+(\d+)$/.exec(line);
        if (m === null) continue;
        if (!m[1]!.endsWith('; reply')) {
          norepl++;
          continue;
        }
        const text = m[1]!.replace(/\b[0-9a-f]{8}\b/g, (s) => names.get(s) ?? s);
        found.push({ ms: Number(m[2]), line: `node${i} ${line.slice(0, line.indexOf(' Slow'))}: ${text} +${m[2]}` });
      }
    });
    found.sort((a, b) => b.ms - a.ms);
    const slowest = found.slice(0, count).map((f) => f.line);
    const median = found.length > 0 ? found[Math.floor(found.length / 2)]!.line : null;
    return { slowest, median, replied: found.length, norepl };
  }

  /** CLUSTER MEET from the first node to the others, then waits for a healthy mesh. */
  async join(): Promise<void> {
    const [first, ...rest] = this.nodes;
    for (const n of rest) await adminCall(first!.host, first!.port, ['CLUSTER', 'MEET', n.host, n.port]);
    await this.waitHealthy(30_000);
  }

  /** Every node sees every other one connected and none failing. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    await waitFor(
      'every node to see every other one connected and not failing',
      async () => {
        for (const n of this.nodes) {
          const text = String(await adminCall(n.host, n.port, ['CLUSTER', 'NODES'], 1000));
          const good = text
            .trim()
            .split('\n')
            .filter((l) => {
              const f = l.split(' ');
              return !/handshake|noaddr|fail/.test(f[2] ?? '') && (f.includes('connected') || /myself/.test(f[2] ?? ''));
            });
          if (good.length < this.nodes.length) return false;
        }
        return true;
      },
      timeoutMs,
    );
  }

  async kill9(i: number): Promise<void> {
    const n = this.nodes[i]!;
    await killHard(n.proc);
    n.proc = null;
    n.paused = false;
  }

  async restart(i: number): Promise<void> {
    const n = this.nodes[i]!;
    if (n.proc !== null) return;
    await this.launch(n);
  }

  pause(i: number): void {
    const n = this.nodes[i]!;
    if (n.proc === null || n.paused) return;
    n.proc.kill('SIGSTOP');
    n.paused = true;
  }

  resume(i: number): void {
    const n = this.nodes[i]!;
    if (n.proc === null || !n.paused) return;
    n.proc.kill('SIGCONT');
    n.paused = false;
  }

  /** Resumes and restarts whatever a fault left down. */
  async healAll(): Promise<void> {
    for (const n of this.nodes) this.resume(n.index);
    await Promise.all(this.nodes.filter((n) => n.proc === null).map((n) => this.launch(n)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => killHard(n.proc)));
    for (const n of this.nodes) n.proc = null;
  }
}

/** The run's own Redis, on a free port of 127.0.0.1. */
export class ChaosRedis {
  private proc: ChildProcess | null = null;
  private paused = false;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(bin: string, workDir: string): Promise<ChaosRedis> {
    let port = 11000 + ((process.pid * 13) % 900);
    while (!(await canListen('127.0.0.1', port))) port++;
    const dir = join(workDir, 'redis');
    mkdirSync(dir, { recursive: true });
    const r = new ChaosRedis(port, dir, bin);
    await r.launch();
    return r;
  }

  private async launch(): Promise<void> {
    // No automatic saves: the dump is written only by SHUTDOWN SAVE (redis-restart).
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--logfile', 'redis.log'];
    this.proc = launch(this.bin, args, this.dir);
    this.paused = false;
    const proc = this.proc;
    await waitFor(
      `Redis on port ${this.port}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode})`);
        return (await adminCall('127.0.0.1', this.port, ['PING'], 1000)) === 'PONG';
      },
      10_000,
    );
  }

  pause(): void {
    if (this.proc === null || this.paused) return;
    this.proc.kill('SIGSTOP');
    this.paused = true;
  }

  /** Stops, saving what it holds, to come back with it (restart). */
  async shutdownSaving(): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    this.resumeNow();
    const gone = exited(proc);
    await adminCall('127.0.0.1', this.port, ['SHUTDOWN', 'SAVE'], 5000).catch(() => {});
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    await killHard(proc);
    this.proc = null;
  }

  /** Killed: what it held is gone (restart finds nothing). */
  async killEmptying(): Promise<void> {
    await killHard(this.proc);
    this.proc = null;
    rmSync(join(this.dir, 'dump.rdb'), { force: true });
  }

  private resumeNow(): void {
    if (this.proc !== null && this.paused) this.proc.kill('SIGCONT');
    this.paused = false;
  }

  /** Whatever the fault, Redis answers again afterwards. */
  async heal(): Promise<void> {
    this.resumeNow();
    if (this.proc === null) await this.launch();
  }

  async stop(): Promise<void> {
    await killHard(this.proc);
    this.proc = null;
  }
}
