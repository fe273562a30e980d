// redis-benchmark (Debian's redis-tools, C) as the load generator.
//
// Our own Node generator (load.ts) takes most of a core; on a 2-core machine
// with the server on the other one, a single-node row would measure the
// generator as much as the server. The workloads redis-benchmark can express
// (one command repeated: PING, ADDJOB, GETJOB NOHANG from a filled queue;
// Redis: PING, LPUSH, RPOP) are driven by it, the way ../shared/tools/perf-pair
// does:
//
//   redis-benchmark -p PORT -c 50 -P N -n REQS --csv CMD...
//
// rps and latencies come from its CSV (with `tls`: --tls --cacert F, to the
// server's tls-port). The mixed workloads (cycle, cross, the
// lost/duplicate check, registered jobs) stay on our own generator. The scale
// workload (scale.ts) fills its queue with the same helpers. See docs/bench.md.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Client, fmtAddr, type Address, type ServerKind } from './conn.js';
import { childrenCpuMs, cpuUse, cpuWarnings, sampleCpu, type CpuUse } from './procstat.js';
import { purgeQueue } from './queueops.js';
import { findOnPath } from './servers.js';

/** Which generator drives a row: redis-benchmark, or ours (load.ts). */
export type Generator = 'redis-benchmark' | 'own';

/** The workloads redis-benchmark drives (load.ts names). */
export const BENCHMARK_WORKLOADS = ['ping', 'produce', 'consume', 'replicate'] as const;
export type BenchmarkWorkload = (typeof BENCHMARK_WORKLOADS)[number];

/** Connections and pipeline depth of an unmeasured fill (and of the scale workload's steps). */
export const FILL_CONNS = 20;
export const FILL_PIPELINE = 64;

export const REDIS_BENCHMARK_MISSING =
  'redis-benchmark not found: install it (Debian/Ubuntu package redis-tools: apt-get install redis-tools) or give --redis-benchmark PATH';

/** The given path, else /usr/bin/redis-benchmark, else redis-benchmark on the PATH; null if none exists. */
export function findRedisBenchmark(given?: string): string | null {
  if (given !== undefined) return existsSync(given) ? given : null;
  return existsSync('/usr/bin/redis-benchmark') ? '/usr/bin/redis-benchmark' : findOnPath('redis-benchmark');
}

export interface BenchCsv {
  rps: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Parses one CSV line of quoted fields ("a","b",...). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"]|"")*)"|([^,]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!);
  return out;
}

/**
 * redis-benchmark 7 --csv: a header line
 * "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
 * and one line for the test.
 */
export function parseBenchCsv(stdout: string): BenchCsv | null {
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('"'));
  const head = lines.findIndex((l) => l.startsWith('"test"'));
  if (head < 0 || head + 1 >= lines.length) return null;
  const names = csvFields(lines[head]!);
  const vals = csvFields(lines[head + 1]!);
  const get = (name: string): number => {
    const i = names.indexOf(name);
    return i < 0 ? NaN : Number(vals[i]);
  };
  const r = {
    rps: get('rps'),
    avgMs: get('avg_latency_ms'),
    p50Ms: get('p50_latency_ms'),
    p95Ms: get('p95_latency_ms'),
    p99Ms: get('p99_latency_ms'),
    maxMs: get('max_latency_ms'),
  };
  return Object.values(r).every(Number.isFinite) ? r : null;
}

export interface BenchRun {
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
  timedOut: boolean;
}

/** Runs one generator command line (killed after timeoutMs); onTick every second. */
export function runRedisBenchmark(cmd: string[], timeoutMs: number, onTick: (sec: number) => void): Promise<BenchRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('latin1').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('latin1').on('data', (d: string) => (stderr += d));
    const tick = setInterval(() => onTick((performance.now() - t0) / 1000), 1000);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearInterval(tick);
      clearTimeout(timer);
      reject(new Error(`${cmd[0]}: ${e.message}`));
    });
    child.once('close', (code) => {
      clearInterval(tick);
      clearTimeout(timer);
      resolve({ code, stdout, stderr, elapsedMs: performance.now() - t0, timedOut });
    });
  });
}

/**
 * Why a run failed, if it did. redis-benchmark exits at the first error reply
 * ("Error from server: ..." on stderr, exit status 1): `serverError` is that reply.
 */
export function benchFailure(run: BenchRun, csv: BenchCsv | null, timeoutMs: number): { why?: string; serverError?: string } {
  const serverError = /Error from server: (.*)/.exec(run.stderr)?.[1]?.trim();
  let why: string | undefined;
  if (run.timedOut) why = `redis-benchmark killed after ${timeoutMs / 1000} s`;
  else if (serverError) why = `error reply: ${serverError}`;
  else if (run.code !== 0) {
    const said = run.stderr.trim().split('\n').slice(-2).join(' / ');
    why = `redis-benchmark exited ${run.code ?? 'on a signal'}${said ? `: ${said}` : ''}`;
  } else if (!csv) why = `no CSV result from redis-benchmark: ${run.stdout.slice(0, 200)}`;
  return { ...(why !== undefined ? { why } : {}), ...(serverError !== undefined ? { serverError } : {}) };
}

/** redis-benchmark sends whole pipelines: -n n -P p sends ceil(n / p) × p requests. */
export function requestsSent(n: number, pipeline: number): number {
  return Math.ceil(n / pipeline) * pipeline;
}

/** A body of exactly `n` bytes, letters and digits only (it sits in redis-benchmark's argv and its CSV test name). */
export function plainBody(n: number): string {
  const pattern = 'plain-job-body-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return pattern.repeat(Math.ceil(n / pattern.length)).slice(0, n);
}

/** The command adding one job (Redis: LPUSH), as redis-benchmark arguments. */
export function addCommand(kind: ServerKind, queue: string, body: string, replicate = 0): string[] {
  if (kind === 'redis') return ['LPUSH', queue, body];
  return ['ADDJOB', queue, body, '0', ...(replicate > 0 ? ['REPLICATE', String(replicate)] : [])];
}

/** The command a row repeats. */
export function benchmarkCommand(workload: BenchmarkWorkload, kind: ServerKind, queue: string, body: string): string[] {
  switch (workload) {
    case 'ping':
      return ['PING'];
    case 'produce':
      return addCommand(kind, queue, body);
    case 'consume':
      return kind === 'redis' ? ['RPOP', queue] : ['GETJOB', 'NOHANG', 'FROM', queue];
    case 'replicate':
      if (kind === 'redis') throw new Error('replicate is a Disque cluster workload');
      return addCommand(kind, queue, body, 3);
  }
}

/**
 * Requests per run (-n) for a base count, in perf-pair's proportions: PING
 * pipelined ×4, ADDJOB pipelined ×2, ADDJOB REPLICATE 3 plain ÷2.
 */
export function requestsFor(workload: BenchmarkWorkload, pipeline: number, base: number): number {
  const piped = pipeline > 1;
  switch (workload) {
    case 'ping':
      return piped ? base * 4 : base;
    case 'produce':
      return piped ? base * 2 : base;
    case 'consume':
      return base;
    case 'replicate':
      return piped ? base : Math.round(base / 2);
  }
}

export interface BenchmarkSpec {
  /** Path of redis-benchmark. */
  bin: string;
  kind: ServerKind;
  addr: Address;
  workload: BenchmarkWorkload;
  conns: number;
  pipeline: number;
  /** -n */
  requests: number;
  bodySize: number;
  /** For CPU accounting (every node of a cluster). */
  serverPids: number[];
  /** taskset CPU list for redis-benchmark (--pin). */
  cpus?: string;
  /**
   * redis-benchmark connects over TLS to this port of the same server
   * (`--tls --cacert`); the queue checks and the purge still use `addr`.
   */
  tls?: TlsTarget;
  onProgress?: (phase: 'fill' | 'run' | 'purge', sec: number) => void;
}

/** A server's TLS port and the CA its certificate is checked against (no client certificate). */
export interface TlsTarget {
  port: number;
  caCert: string;
}

export interface BenchmarkResult extends CpuUse {
  generator: 'redis-benchmark';
  kind: ServerKind;
  addr: string;
  workload: BenchmarkWorkload;
  conns: number;
  pipeline: number;
  bodySize: number;
  queue: string;
  /** The command line, the body shown as <N-byte body>. */
  command: string;
  /** -n, and what was sent: whole pipelines. */
  requests: number;
  sent: number;
  elapsedSec: number;
  opsPerSec: number;
  /** From the CSV: one row's latencies. */
  latency: { meanMs: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number };
  /** Failed checks of the queue afterwards (a failed run throws: redis-benchmark stops at the first error reply). */
  errors: number;
  errorSamples: string[];
  /** What the queue says afterwards: jobs added (produce), fetched (consume). */
  check?: string;
  /** consume: the unmeasured fill before the run. */
  fill?: { jobs: number; sec: number };
  warnings: string[];
}

async function queueLength(addr: Address, kind: ServerKind, queue: string): Promise<number> {
  const c = await Client.open(addr);
  try {
    return Number(await c.ok(kind === 'redis' ? 'LLEN' : 'QLEN', queue));
  } finally {
    c.close();
  }
}

/**
 * One row: (consume: fill a fresh queue first, unmeasured), one measured
 * redis-benchmark run, a check of the queue's length, and the queue's jobs
 * deleted, so the server is as it was for the next row.
 */
export async function runBenchmark(s: BenchmarkSpec): Promise<BenchmarkResult> {
  const queue = `bench-${s.workload}-${randomBytes(4).toString('hex')}`;
  const body = plainBody(s.bodySize);
  const taskset = s.cpus ? ['taskset', '-c', s.cpus] : [];
  const base = [
    ...taskset,
    s.bin,
    '-p',
    String(s.tls ? s.tls.port : s.addr.port),
    ...(s.addr.host !== '127.0.0.1' ? ['-h', s.addr.host] : []),
    ...(s.tls ? ['--tls', '--cacert', s.tls.caCert] : []),
  ];
  const cmd = benchmarkCommand(s.workload, s.kind, queue, body);
  const sent = requestsSent(s.requests, s.pipeline);
  const timeoutMs = Math.max(120_000, sent); // at least 1000 requests/s
  const errorSamples: string[] = [];
  const warnings: string[] = [];
  let errors = 0;
  let fill: BenchmarkResult['fill'];
  let check: string | undefined;

  try {
    let before = 0;
    if (s.workload === 'consume') {
      // Enough jobs that every GETJOB finds one: what will be sent, and some.
      const jobs = sent + 1000;
      const t = performance.now();
      const run = await runRedisBenchmark(
        [...base, '-c', String(FILL_CONNS), '-P', String(FILL_PIPELINE), '-n', String(jobs), '--csv', ...addCommand(s.kind, queue, body)],
        Math.max(120_000, jobs),
        (sec) => s.onProgress?.('fill', sec),
      );
      const failed = benchFailure(run, parseBenchCsv(run.stdout), timeoutMs).why;
      if (failed) throw new Error(`filling the queue: ${failed}`);
      before = await queueLength(s.addr, s.kind, queue);
      fill = { jobs: before, sec: Math.round(performance.now() - t) / 1000 };
    }

    const pids = s.serverPids;
    const cpu0 = sampleCpu(pids, childrenCpuMs, new Set([process.pid, ...pids]));
    const run = await runRedisBenchmark(
      [...base, '-c', String(s.conns), '-P', String(s.pipeline), '-n', String(s.requests), '--csv', ...cmd],
      timeoutMs,
      (sec) => s.onProgress?.('run', sec),
    );
    const cpu = cpuUse(cpu0, sampleCpu(pids, childrenCpuMs, new Set([process.pid, ...pids])), pids);
    const csv = parseBenchCsv(run.stdout);
    const failed = benchFailure(run, csv, timeoutMs).why;
    if (failed || !csv) throw new Error(failed);
    if (s.workload !== 'ping') {
      const after = await queueLength(s.addr, s.kind, queue);
      if (s.workload === 'consume') {
        const fetched = before - after;
        check = `${fetched.toLocaleString('en-US')} jobs fetched by ${sent.toLocaleString('en-US')} requests`;
        if (after === 0) warnings.push('queue ran dry: some replies were empty');
        if (fetched !== sent) {
          errors++;
          errorSamples.push(`${check} (queue ${before} -> ${after})`);
        }
      } else {
        check = `${after.toLocaleString('en-US')} jobs queued after ${sent.toLocaleString('en-US')} requests`;
        if (after !== sent) {
          errors++;
          errorSamples.push(check);
        }
      }
    }
    warnings.push(...cpuWarnings(cpu, 1));
    if (errors > 0) warnings.push(errorSamples[0]!);
    return {
      generator: 'redis-benchmark',
      kind: s.kind,
      addr: fmtAddr(s.addr),
      workload: s.workload,
      conns: s.conns,
      pipeline: s.pipeline,
      bodySize: s.bodySize,
      queue,
      command: [
        'redis-benchmark',
        ...base.slice(taskset.length + 1),
        ...['-c', String(s.conns), '-P', String(s.pipeline), '-n', String(s.requests), '--csv'],
        ...cmd.map((a) => (a === body ? `<${s.bodySize}-byte body>` : a)),
      ].join(' '),
      requests: s.requests,
      sent,
      elapsedSec: Math.round(run.elapsedMs) / 1000,
      opsPerSec: Math.round(csv.rps),
      latency: { meanMs: csv.avgMs, p50Ms: csv.p50Ms, p95Ms: csv.p95Ms, p99Ms: csv.p99Ms, maxMs: csv.maxMs },
      errors,
      errorSamples,
      ...(check !== undefined ? { check } : {}),
      ...(fill ? { fill } : {}),
      ...cpu,
      warnings,
    };
  } finally {
    // Also after a failure: the server is left as the row found it.
    if (s.workload !== 'ping') {
      s.onProgress?.('purge', 0);
      await purgeQueue(s.addr, s.kind, queue).catch((e: Error) => warnings.push(`queue ${queue} not emptied: ${e.message}`));
    }
  }
}
