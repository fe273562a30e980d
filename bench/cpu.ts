// `npm run bench -- --only cpu`: CPU time per job on the cluster and
// persistence paths, ours beside the reference, and beside the runtime's
// floor (bench/floor.ts).
//
// Each row starts fresh servers (1, 2, 3 or 5 nodes joined into a cluster,
// with or without persistence), then runs clients that each repeat, one
// request at a time: ADDJOB (REPLICATE R) → GETJOB NOHANG → ACKJOB. A job
// thus costs replication (REPLJOB/GOTJOB), delivery, the ack and its
// collection (SETACK/GOTACK/DELJOB) and, with persistence, the journal
// records of each node. The CPU of every server process (utime + stime from
// /proc; for us also the Redis that takes the journal, a redis-server of the
// bench's own) is read at two quiet moments (no job left anywhere), and
// divided by the jobs that went through in between. The generator's CPU is
// not counted: it is the same client code for both servers.
import { randomBytes } from 'node:crypto';
import { Client, type Address } from './conn.js';
import { procCpuMs, procMainThreadMs, procUserSysMs } from './procstat.js';
import { RespError, type Reply } from './resp.js';
import { freePort, joinCluster, startServer, type Flavor, type ServerHandle } from './servers.js';
import { runFloor, type FloorPattern } from './floor.js';

export interface CpuRow {
  id: string;
  nodes: number;
  replicate: number;
  persist: boolean;
  /** 'node': one client per node; a number: that many connections spread over the nodes. */
  clients: 'node' | number;
}

export const CPU_ROWS: CpuRow[] = (() => {
  const topologies = [
    { nodes: 1, replicate: 1, persist: true },
    { nodes: 2, replicate: 2, persist: false },
    { nodes: 3, replicate: 3, persist: false },
    { nodes: 5, replicate: 3, persist: false },
    { nodes: 5, replicate: 3, persist: true },
  ];
  const rows: CpuRow[] = [];
  for (const t of topologies)
    for (const clients of ['node', 50] as const)
      rows.push({ ...t, clients, id: `n${t.nodes}-r${t.replicate}${t.persist ? '-aof' : ''}-c${clients === 'node' ? 'node' : clients}` });
  return rows;
})();

export function cpuRowTitle(r: CpuRow): string {
  const what = r.nodes === 1 ? '1 node' : `${r.nodes} nodes, REPLICATE ${r.replicate}`;
  const who = r.clients === 'node' ? '1 client per node' : `${r.clients} connections`;
  return `${what}${r.persist ? ', persistence' : ''}; ${who}`;
}

export interface CpuResult {
  row: string;
  flavor: Flavor | 'floor';
  jobs: number;
  /** Seconds the measured phase lasted (to the quiet moment after it). */
  seconds: number;
  /** CPU ms of every server process (and our journal's Redis) in the measured phase. */
  cpuMs: number;
  /** Of which the journal's Redis (ours with persistence). */
  redisCpuMs: number;
  /** Of cpuMs: in the kernel (stime; sockets, mostly). */
  sysMs: number;
  /** Of cpuMs: the servers' main threads (the event loop); the rest is helper threads and Redis. */
  mainMs?: number;
  usPerJob: number;
  jobsPerSec: number;
  errors: number;
  errorSample?: string;
}

export interface CpuOptions {
  flavor: Flavor;
  bin: string;
  /** redis-server binary: ours persists to a Redis started here. */
  redisBin: string | null;
  row: CpuRow;
  seconds: number;
  /** Warmup lasts until this many jobs went through, or warmupSeconds passed. */
  warmupJobs: number;
  warmupSeconds: number;
  bodySize: number;
  basePort: number;
  ports: Set<number>;
  status: (s: string) => void;
}

const QUEUE = 'cpuq';

/** One client's loop: ADDJOB → GETJOB NOHANG → ACKJOB, until `stop()`. */
class Cycler {
  done = 0;
  errors = 0;
  errorSample = '';
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly c: Client,
    private readonly body: Buffer,
    private readonly replicate: number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private fail(r: Reply): void {
    this.errors++;
    if (this.errorSample === '' && r instanceof RespError) this.errorSample = r.message;
  }

  private async run(): Promise<void> {
    const c = this.c;
    while (this.running) {
      const add = await c.call('ADDJOB', QUEUE, this.body, 0, 'REPLICATE', this.replicate);
      if (typeof add !== 'string') {
        this.fail(add);
        continue;
      }
      const got = await c.call('GETJOB', 'NOHANG', 'FROM', QUEUE);
      if (!Array.isArray(got)) continue;
      const job = got[0] as Reply[];
      const ack = await c.call('ACKJOB', job[1] as string);
      if (typeof ack === 'number') this.done++;
      else this.fail(ack);
    }
  }
}

/** Empties the queue on every node (GETJOB NOHANG + ACKJOB), returns how many jobs it acked. */
async function drain(clients: Client[]): Promise<number> {
  let n = 0;
  for (const c of clients) {
    for (;;) {
      const got = await c.call('GETJOB', 'NOHANG', 'COUNT', 100, 'FROM', QUEUE);
      if (!Array.isArray(got) || got.length === 0) break;
      const ids = (got as Reply[][]).map((j) => j[1] as string);
      const r = await c.call('ACKJOB', ...ids);
      if (typeof r === 'number') n += ids.length;
    }
  }
  return n;
}

/** Waits until no node holds a job (acks collected everywhere). */
async function quiet(clients: Client[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let left = 0;
    for (const c of clients) left += Number((await c.info('jobs')).get('registered_jobs') ?? 0);
    if (left === 0) return;
    if (Date.now() > deadline) throw new Error(`${left} jobs still registered ${timeoutMs} ms after the load stopped`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function cpuOf(pids: number[]): number {
  let s = 0;
  for (const p of pids) s += procCpuMs(p) ?? 0;
  return s;
}

function mainOf(pids: number[]): number {
  let s = 0;
  for (const p of pids) s += procMainThreadMs(p) ?? 0;
  return s;
}

function sysOf(pids: number[]): number {
  let s = 0;
  for (const p of pids) s += procUserSysMs(p)?.sys ?? 0;
  return s;
}

/** Runs one row on one flavor: fresh servers, warmup, measured phase, servers stopped. */
export async function runCpuRow(o: CpuOptions): Promise<CpuResult> {
  const { row } = o;
  const handles: ServerHandle[] = [];
  let redis: ServerHandle | null = null;
  const clients: Client[] = [];
  const prefix = `cpu-${randomBytes(4).toString('hex')}:`;
  try {
    const args: string[] = [];
    if (row.persist) {
      args.push('--appendonly', 'yes', '--appendfsync', 'everysec');
      if (o.flavor === 'ours') {
        if (!o.redisBin) throw new Error('persistence rows need redis-server (Debian: redis-server)');
        redis = await startServer('redis', { bin: o.redisBin, port: await freePort(o.basePort, o.ports) });
        args.push('--redis-url', `redis://127.0.0.1:${redis.addr.port}`, '--redis-key-prefix', prefix);
      }
    }
    o.status(`cpu · ${row.id} · ${o.flavor}: starting ${row.nodes} node(s)`);
    for (let i = 0; i < row.nodes; i++) handles.push(await startServer(o.flavor, { bin: o.bin, port: await freePort(o.basePort, o.ports), args }));
    if (row.nodes > 1) await joinCluster(handles);
    const addrs: Address[] = handles.map((h) => h.addr);
    const admin = await Promise.all(addrs.map((a) => Client.open(a)));
    clients.push(...admin);
    const conns = row.clients === 'node' ? row.nodes : row.clients;
    const load: Client[] = [];
    for (let i = 0; i < conns; i++) load.push(await Client.open(addrs[i % addrs.length]!));
    clients.push(...load);
    const body = Buffer.alloc(o.bodySize, 'x');
    const nodePids = handles.map((h) => h.pid!);
    const pids = nodePids.concat(redis ? [redis.pid!] : []);

    const phase = async (seconds: number, label: string, untilJobs = Infinity): Promise<{ jobs: number; errors: number; sample: string }> => {
      const cyclers = load.map((c) => new Cycler(c, body, row.replicate));
      for (const c of cyclers) c.start();
      const t0 = Date.now();
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        const done = cyclers.reduce((s, c) => s + c.done, 0);
        if (Date.now() - t0 >= seconds * 1000 || done >= untilJobs) break;
        o.status(`cpu · ${row.id} · ${o.flavor}: ${label} ${((Date.now() - t0) / 1000).toFixed(0)}/${seconds}s, ${done} jobs`);
      }
      await Promise.all(cyclers.map((c) => c.stop()));
      const drained = await drain(admin);
      await quiet(admin);
      return {
        jobs: cyclers.reduce((s, c) => s + c.done, 0) + drained,
        errors: cyclers.reduce((s, c) => s + c.errors, 0),
        sample: cyclers.find((c) => c.errorSample !== '')?.errorSample ?? '',
      };
    };

    // Our node compiles its hot paths (V8's optimizing compiler, on other
    // threads) during its first few tens of thousands of jobs: the warmup
    // lets that settle, as it does on a node that has run for a while.
    await phase(o.warmupSeconds, 'warmup', o.warmupJobs);
    const cpu0 = cpuOf(pids);
    const sys0 = sysOf(pids);
    const main0 = mainOf(nodePids);
    const redis0 = redis ? cpuOf([redis.pid!]) : 0;
    const w0 = Date.now();
    const m = await phase(o.seconds, 'measure');
    const cpuMs = cpuOf(pids) - cpu0;
    const sysMs = sysOf(pids) - sys0;
    const mainMs = mainOf(nodePids) - main0;
    const redisCpuMs = redis ? cpuOf([redis.pid!]) - redis0 : 0;
    const seconds = (Date.now() - w0) / 1000;
    return {
      row: row.id,
      flavor: o.flavor,
      jobs: m.jobs,
      seconds,
      cpuMs,
      redisCpuMs,
      sysMs,
      mainMs,
      usPerJob: m.jobs > 0 ? (cpuMs * 1000) / m.jobs : 0,
      jobsPerSec: m.jobs / seconds,
      errors: m.errors,
      ...(m.sample ? { errorSample: m.sample } : {}),
    };
  } finally {
    for (const c of clients) c.close();
    for (const h of handles) await h.stop();
    await redis?.stop();
  }
}

/** The runtime's floor for a row: bare Node processes exchanging the same messages (bench/floor.ts). */
export async function runCpuFloor(
  row: CpuRow,
  o: { seconds: number; warmupSeconds: number; bodySize: number; basePort: number; ports: Set<number> },
): Promise<CpuResult> {
  const pattern: FloorPattern = {
    nodes: row.nodes,
    replicate: row.replicate,
    journal: row.persist,
    conns: row.clients === 'node' ? row.nodes : row.clients,
    bodySize: o.bodySize,
  };
  const r = await runFloor(pattern, { seconds: o.seconds, warmupSeconds: o.warmupSeconds, basePort: o.basePort, ports: o.ports });
  return {
    row: row.id,
    flavor: 'floor',
    jobs: r.jobs,
    seconds: r.seconds,
    cpuMs: r.cpuMs,
    redisCpuMs: r.journalCpuMs,
    sysMs: r.sysMs,
    usPerJob: r.jobs > 0 ? (r.cpuMs * 1000) / r.jobs : 0,
    jobsPerSec: r.jobs / r.seconds,
    errors: 0,
  };
}

const fmt = (x: number | undefined, d = 0): string => (x === undefined ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

/** The table README shows: µs of CPU per job, ours ÷ reference, the floor. */
export function cpuMarkdown(rows: CpuRow[], results: CpuResult[]): string {
  const pick = (row: CpuRow, f: CpuResult['flavor']): CpuResult | undefined => {
    const rs = results.filter((r) => r.row === row.id && r.flavor === f);
    // Best (lowest CPU per job) of the rounds.
    return rs.sort((a, b) => a.usPerJob - b.usPerJob)[0];
  };
  const lines = [
    '| workload | ours µs/job | reference µs/job | ours ÷ ref | floor µs/job | ours jobs/s | reference jobs/s | ours of which Redis µs/job |',
    '| :-- | --: | --: | --: | --: | --: | --: | --: |',
  ];
  for (const row of rows) {
    const o = pick(row, 'ours');
    const r = pick(row, 'reference');
    const fl = pick(row, 'floor');
    if (!o && !r && !fl) continue;
    const ratio = o && r && r.usPerJob > 0 ? (o.usPerJob / r.usPerJob).toFixed(2) : '–';
    const redis = o && row.persist && o.jobs > 0 ? fmt((o.redisCpuMs * 1000) / o.jobs, 1) : '–';
    lines.push(
      `| ${cpuRowTitle(row)} | ${fmt(o?.usPerJob, 1)} | ${fmt(r?.usPerJob, 1)} | ${ratio} | ${fmt(fl?.usPerJob, 1)} | ${fmt(o?.jobsPerSec)} | ${fmt(r?.jobsPerSec)} | ${redis} |`,
    );
  }
  return lines.join('\n');
}
