// Network load generator for any RESP job/queue server: our disque-ts, the
// reference Disque, or Redis (with LPUSH/BRPOP as the equivalent workload).
//
//   node dist/bench/load.js --port 7711 --workload produce --conns 50 --pipeline 16
//
// Workloads (see docs/bench.md):
//   ping       PING: the transport ceiling of the server.
//   produce    ADDJOB (Redis: LPUSH).
//   consume    GETJOB + ACKJOB per job (Redis: BRPOP, or RPOP when pipelined)
//              from a queue preloaded with --preload jobs.
//   cycle      producers and consumers together on one queue (half the conns each).
//   replicate  produce with REPLICATE n (default 3) on a cluster node.
//   cross      produce on --addr, consume on --consume-addr (another node).
//
// The run: connect, warm up for --warmup s, measure for --duration s, stop
// (every connection finishes its batch in flight and acknowledges what it
// fetched), then drain the queue and check that every produced body came back
// exactly once. With --threads N the connections are spread over N
// worker_threads; counters and histograms are merged.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { Client, Conn, detectKind, fmtAddr, parseAddress, type Address, type ServerKind } from './conn.js';
import { ConsumerDriver, type Driver, Flow, PingDriver, ProducerDriver, Stats, type StatsData } from './drivers.js';
import { Histogram, type LatencySummary } from './histogram.js';
import { cpuUse, cpuWarnings, procCpuMs, sampleCpu, selfCpuMs, isLocalHost, type CpuSample, type CpuUse } from './procstat.js';
import { drain, fill } from './queueops.js';
import { MIN_BODY, Tracker, type TrackerData, type Verification } from './tracker.js';

export const WORKLOADS = ['ping', 'produce', 'consume', 'cycle', 'replicate', 'cross'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface LoadSpec {
  kind: ServerKind;
  addr: Address;
  /** cross: where consumers connect. Defaults to addr. */
  consumeAddr?: Address;
  workload: Workload;
  conns: number;
  pipeline: number;
  warmupSec: number;
  durationSec: number;
  bodySize: number;
  /** Queue (Redis: list key). Default: a fresh random name per run. */
  queue?: string;
  /** ADDJOB REPLICATE n; 0 = server default. The replicate workload defaults to 3. */
  replicate: number;
  /** ADDJOB <ms-timeout>. */
  addTimeoutMs: number;
  /** cycle/cross: how many of the conns produce; default half (rounded up). */
  producers?: number;
  /** Blocking GETJOB TIMEOUT / BRPOP timeout in ms (default 200: short, so a run stops promptly). */
  blockMs?: number;
  /** Consumer style; default block when pipeline is 1 or on cross, else nohang. */
  consumeMode?: 'block' | 'nohang';
  threads: number;
  /**
   * consume: jobs queued before the run. 0 = auto: add jobs for as long as the
   * run will last (warmup + duration), at most 5M. Adding pipelined is faster
   * than GETJOB+ACKJOB, so the queue outlasts the window; if it still runs
   * dry the window ends there and the result says so.
   */
  preload: number;
  /** cycle/cross: producers pause while produced - consumed exceeds this (0 = no cap). */
  maxBacklog: number;
  /** Drain and check lost/duplicated jobs after the run. */
  verify: boolean;
  /** Server processes whose CPU use is reported; default: found via INFO when local. */
  serverPids?: number[];
}

export const DEFAULT_SPEC: Omit<LoadSpec, 'kind' | 'addr' | 'workload'> = {
  conns: 50,
  pipeline: 1,
  warmupSec: 1,
  durationSec: 5,
  bodySize: 64,
  replicate: 0,
  addTimeoutMs: 0,
  threads: 1,
  preload: 0,
  maxBacklog: 10_000,
  verify: true,
};

export interface LoadResult {
  kind: ServerKind;
  addr: string;
  consumeAddr?: string;
  workload: Workload;
  conns: number;
  pipeline: number;
  threads: number;
  bodySize: number;
  queue: string;
  /** Length of the measurement window (shorter than asked if the consume queue ran dry). */
  elapsedSec: number;
  /** The headline rate: pings, jobs added (produce), or jobs consumed (consume/cycle/cross). */
  opsPerSec: number;
  producedPerSec: number;
  consumedPerSec: number;
  /** All commands answered per second (GETJOB and ACKJOB both count). */
  cmdsPerSec: number;
  /** Latency of the headline command: PING, ADDJOB/LPUSH, or GETJOB/BRPOP/RPOP. */
  latency: LatencySummary;
  latencies: Partial<Record<'add' | 'get' | 'ack' | 'ping', LatencySummary>>;
  errors: number;
  errorSamples: string[];
  emptyReplies: number;
  /** consume: the queue ran dry before the window ended (window shortened). */
  drainedEarly: boolean;
  /** cycle/cross: jobs produced but not consumed within the window. */
  backlog?: number;
  preload?: { jobs: number; sec: number; jobsPerSec: number };
  drain?: { jobs: number; sec: number };
  verification?: Verification;
  /** CPU used by the generator process (all threads), % of one core, over the window. */
  generatorCpuPct: number;
  /** CPU used by the server process(es), % of one core, when readable. */
  serverCpuPct?: number;
  /** Time the server's threads were runnable but waiting for a core, % of one core (Linux). */
  serverWaitPct?: number;
  /** CPU used by everything else on the machine during the window, % of one core (Linux, local server). */
  otherCpuPct?: number;
  /** Things that make this number less trustworthy, in words. */
  warnings: string[];
}

export interface ProgressInfo {
  phase: 'preload' | 'warmup' | 'measure' | 'stop' | 'drain';
  /** Headline operations so far (monotonic within a phase). */
  ops: number;
  /** Seconds into the phase. */
  sec: number;
}

// ---------------------------------------------------------------------------
// One thread's share of the connections.

interface Part {
  thread: number;
  threads: number;
  pings: number;
  producers: number;
  consumers: number;
}

interface LocalResult {
  stats: StatsData;
  elapsedMs: number;
  drainedEarly: boolean;
  tracker: TrackerData;
}

interface Hooks {
  ready(): Promise<number>; // resolves with the start time (Date.now() epoch ms)
  measureStart(): void;
  measureEnd(): void;
  progress(ops: number, phase: ProgressInfo['phase']): void;
}

/** Producer ids: thread * 10000 + connection index; preload uses PRELOAD_PID. */
const PRELOAD_PID = 990_000;

function consumeMode(spec: LoadSpec): 'block' | 'nohang' {
  if (spec.consumeMode) return spec.consumeMode;
  return spec.pipeline === 1 || spec.workload === 'cross' ? 'block' : 'nohang';
}

async function runLocal(spec: LoadSpec & { queue: string }, part: Part, hooks: Hooks): Promise<LocalResult> {
  const stats = new Stats();
  const tracker = new Tracker();
  const consumeAt = spec.consumeAddr ?? spec.addr;
  const opened = await Promise.allSettled([
    ...Array.from({ length: part.pings + part.producers }, () => Conn.open(spec.addr)),
    ...Array.from({ length: part.consumers }, () => Conn.open(consumeAt)),
  ]);
  const conns = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) {
    for (const c of conns) c.close(); // an open socket would keep the process alive
    throw failed.reason;
  }
  const drivers: Driver[] = [];
  const producers: ProducerDriver[] = [];
  const flow =
    part.producers > 0 && part.consumers > 0 && spec.maxBacklog > 0
      ? // Each thread gets its share of the cap, and room for at least one batch per producer.
        new Flow(Math.max(spec.pipeline * part.producers, Math.round(spec.maxBacklog / part.threads)))
      : undefined;
  let k = 0;
  for (let i = 0; i < part.pings; i++) drivers.push(new PingDriver(conns[k++]!, stats, spec.pipeline));
  for (let i = 0; i < part.producers; i++) {
    const p = new ProducerDriver(conns[k++]!, stats, spec.pipeline, {
      kind: spec.kind,
      queue: spec.queue,
      pid: part.thread * 10_000 + i,
      bodySize: spec.bodySize,
      addTimeoutMs: spec.addTimeoutMs,
      replicate: spec.replicate,
      ...(flow ? { flow } : {}),
    });
    producers.push(p);
    drivers.push(p);
  }
  const mode = consumeMode(spec);
  for (let i = 0; i < part.consumers; i++) {
    drivers.push(
      new ConsumerDriver(conns[k++]!, stats, spec.pipeline, {
        kind: spec.kind,
        queue: spec.queue,
        mode,
        blockMs: spec.blockMs ?? 200,
        tracker,
        ...(flow ? { flow } : {}),
      }),
    );
  }

  const startAt = await hooks.ready();
  await sleep(startAt - Date.now());

  let phase: ProgressInfo['phase'] = 'warmup';
  let measuring = false;
  let t0 = 0;
  let elapsedMs = 0;
  let drainedEarly = false;
  let snapshot: StatsData | null = null;
  let endMeasure!: () => void;
  const ended = new Promise<void>((r) => (endMeasure = r));

  const stopAll = (): void => {
    if (snapshot) return;
    snapshot = stats.snapshot();
    elapsedMs = measuring ? performance.now() - t0 : 0;
    measuring = false;
    phase = 'stop';
    hooks.measureEnd();
    for (const d of drivers) d.stop();
    endMeasure();
  };
  if (spec.workload === 'consume') {
    // Nothing refills the queue: the first empty reply means it ran dry, and
    // from then on consumers would only measure polling. End the window there.
    stats.onEmpty = () => {
      drainedEarly = true;
      stopAll();
    };
  }

  const ticker = setInterval(() => hooks.progress(stats.progress, phase), 250);
  for (const d of drivers) d.start();
  const warmTimer = setTimeout(() => {
    if (snapshot) return;
    stats.reset();
    stats.progress = 0;
    phase = 'measure';
    measuring = true;
    t0 = performance.now();
    hooks.measureStart();
    measureTimer = setTimeout(stopAll, spec.durationSec * 1000);
  }, spec.warmupSec * 1000);
  let measureTimer: NodeJS.Timeout | undefined;

  await ended;
  clearTimeout(warmTimer);
  clearTimeout(measureTimer);
  // Every driver finishes its batch in flight; a blocked GETJOB returns within blockMs.
  let guard: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    Promise.all(drivers.map((d) => d.done)).then(() => true),
    new Promise<boolean>((r) => (guard = setTimeout(() => r(false), 30_000))),
  ]);
  clearTimeout(guard);
  clearInterval(ticker);
  for (const c of conns) c.close();

  const td = tracker.toData();
  td.produced = producers.map((p) => p.producedData());
  const snap = snapshot ?? stats.snapshot();
  if (!settled) {
    snap.errors++;
    snap.errorSamples.push('some connections did not finish their last batch within 30 s');
  }
  return { stats: snap, elapsedMs, drainedEarly, tracker: td };
}

// ---------------------------------------------------------------------------
// Worker thread side: run one part, talk to the main thread by messages.

interface WorkerInit {
  benchLoadWorker: true;
  spec: LoadSpec & { queue: string };
  part: Part;
}

type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; ops: number; phase: ProgressInfo['phase'] }
  | { type: 'measure-start' }
  | { type: 'measure-end' }
  | { type: 'result'; result: LocalResult }
  | { type: 'error'; message: string };

if (!isMainThread && (workerData as WorkerInit | undefined)?.benchLoadWorker) {
  const { spec, part } = workerData as WorkerInit;
  const port = parentPort!;
  const post = (m: FromWorker): void => port.postMessage(m);
  runLocal(spec, part, {
    ready: () =>
      new Promise((resolve) => {
        port.once('message', (m: { type: 'go'; startAt: number }) => resolve(m.startAt));
        post({ type: 'ready' });
      }),
    measureStart: () => post({ type: 'measure-start' }),
    measureEnd: () => post({ type: 'measure-end' }),
    progress: (ops, phase) => post({ type: 'progress', ops, phase }),
  }).then(
    (result) => post({ type: 'result', result }),
    (e: Error) => post({ type: 'error', message: e.stack ?? String(e) }),
  );
}

// ---------------------------------------------------------------------------
// Main side.

function split(n: number, parts: number, i: number): number {
  return Math.floor(n / parts) + (i < n % parts ? 1 : 0);
}

function roles(spec: LoadSpec): { pings: number; producers: number; consumers: number } {
  switch (spec.workload) {
    case 'ping':
      return { pings: spec.conns, producers: 0, consumers: 0 };
    case 'produce':
    case 'replicate':
      return { pings: 0, producers: spec.conns, consumers: 0 };
    case 'consume':
      return { pings: 0, producers: 0, consumers: spec.conns };
    case 'cycle':
    case 'cross': {
      const p = Math.min(spec.conns - 1, Math.max(1, spec.producers ?? Math.ceil(spec.conns / 2)));
      return { pings: 0, producers: p, consumers: spec.conns - p };
    }
  }
}

/** Server pids for CPU accounting: given, or asked via INFO when the server is on this machine. */
async function serverPids(spec: LoadSpec): Promise<number[]> {
  if (spec.serverPids) return spec.serverPids;
  const pids: number[] = [];
  const addrs = [spec.addr, ...(spec.consumeAddr ? [spec.consumeAddr] : [])];
  for (const a of addrs) {
    if (!isLocalHost(a.host)) continue;
    const c = await Client.open(a);
    try {
      const pid = Number((await c.info('server')).get('process_id'));
      if (pid > 0 && procCpuMs(pid) !== null && !pids.includes(pid)) pids.push(pid);
    } finally {
      c.close();
    }
  }
  return pids;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

export async function runLoad(input: LoadSpec, onProgress?: (p: ProgressInfo) => void): Promise<LoadResult> {
  const spec: LoadSpec & { queue: string } = {
    ...input,
    queue: input.queue ?? `bench-${input.workload}-${randomBytes(4).toString('hex')}`,
    replicate: input.workload === 'replicate' && input.replicate === 0 ? 3 : input.replicate,
    addTimeoutMs: input.workload === 'replicate' && input.addTimeoutMs === 0 ? 10_000 : input.addTimeoutMs,
    blockMs: input.blockMs ?? 200,
  };
  if (spec.bodySize < MIN_BODY) throw new Error(`--body must be at least ${MIN_BODY} bytes (it carries a sequence number)`);
  if (spec.workload === 'cross' && !spec.consumeAddr) throw new Error('cross needs --consume-addr (another node)');
  if ((spec.workload === 'cycle' || spec.workload === 'cross') && spec.conns < 2) throw new Error(`${spec.workload} needs at least 2 connections`);
  if (spec.kind === 'redis' && (spec.workload === 'replicate' || spec.workload === 'cross'))
    throw new Error(`${spec.workload} is a Disque cluster workload`);
  const threads = Math.max(1, Math.min(spec.threads, spec.conns));

  const tracker = new Tracker();
  let preload: LoadResult['preload'];
  // consume: the queue must outlast the run. cross: the consumers' node
  // broadcasts NEEDJOBS when its clients first wait, then backs off (2 s, 4 s,
  // ... in the reference) while nobody answers; jobs already queued on the
  // producers' node make that first request succeed, as in a running system.
  const preloadJobs = spec.workload === 'consume' ? spec.preload : spec.workload === 'cross' ? spec.preload || 2000 : 0;
  if (spec.workload === 'consume' || preloadJobs > 0) {
    const t = performance.now();
    const r = await fill(spec.addr, {
      kind: spec.kind,
      queue: spec.queue,
      total: preloadJobs > 0 ? preloadJobs : 5_000_000,
      ...(preloadJobs > 0 ? {} : { forMs: (spec.warmupSec + spec.durationSec) * 1000 }),
      bodySize: spec.bodySize,
      pidBase: PRELOAD_PID,
      tracker,
      onProgress: (n) => onProgress?.({ phase: 'preload', ops: n, sec: (performance.now() - t) / 1000 }),
    });
    if (r.errors > 0) throw new Error(`preload failed: ${r.errors} errors, e.g. ${r.errorSamples[0]}`);
    preload = { jobs: r.added, sec: r.elapsedMs / 1000, jobsPerSec: Math.round(r.added / (r.elapsedMs / 1000)) };
  }

  const pids = await serverPids(spec);
  const r = roles(spec);
  const parts: Part[] = Array.from({ length: threads }, (_, i) => ({
    thread: i,
    threads,
    pings: split(r.pings, threads, i),
    producers: split(r.producers, threads, i),
    consumers: split(r.consumers, threads, i),
  }));

  // CPU is sampled when the first thread starts measuring and when the last one stops.
  let started = 0;
  let stopped = 0;
  const exclude = new Set([process.pid, ...pids]);
  const sample = (): CpuSample => sampleCpu(pids, selfCpuMs, exclude);
  let cpu0: CpuSample | undefined;
  let cpu1: CpuSample | undefined;
  const progressOps = new Array<number>(threads).fill(0);
  let phase: ProgressInfo['phase'] = 'warmup';
  let phaseT0 = performance.now();
  const report = (): void =>
    onProgress?.({ phase, ops: progressOps.reduce((a, b) => a + b, 0), sec: (performance.now() - phaseT0) / 1000 });
  const hooksFor = (i: number): Omit<Hooks, 'ready'> => ({
    measureStart: () => {
      if (started++ === 0) {
        cpu0 = sample();
        phase = 'measure';
        phaseT0 = performance.now();
      }
    },
    measureEnd: () => {
      if (++stopped === threads) {
        cpu1 = sample();
        phase = 'stop';
      }
    },
    progress: (ops, ph) => {
      progressOps[i] = ph === phase ? ops : 0;
      if (i === 0) report();
    },
  });

  let locals: LocalResult[];
  if (threads === 1) {
    const h = hooksFor(0);
    locals = [await runLocal(spec, parts[0]!, { ...h, ready: async () => Date.now() + 20 })];
  } else {
    locals = await runWorkers(spec, parts, hooksFor);
  }

  // Merge threads.
  const merged = new Stats();
  const errorSamples = new Set<string>();
  for (const l of locals) {
    const s = l.stats;
    merged.produced += s.produced;
    merged.consumed += s.consumed;
    merged.pings += s.pings;
    merged.cmds += s.cmds;
    merged.errors += s.errors;
    merged.empty += s.empty;
    merged.add.merge(s.add);
    merged.get.merge(s.get);
    merged.ack.merge(s.ack);
    merged.ping.merge(s.ping);
    for (const e of s.errorSamples) errorSamples.add(e);
    tracker.merge(l.tracker);
  }
  // Each thread's counts over its own window (they differ by a few ms at most;
  // more when a consume queue runs dry in one thread first).
  const rate = (f: (s: StatsData) => number): number =>
    locals.reduce((sum, l) => sum + (l.elapsedMs > 0 ? f(l.stats) / (l.elapsedMs / 1000) : 0), 0);
  const elapsedSec = locals.reduce((a, l) => a + l.elapsedMs, 0) / locals.length / 1000;

  let verification: Verification | undefined;
  let drained: LoadResult['drain'];
  if (spec.verify && spec.workload !== 'ping') {
    phase = 'drain';
    phaseT0 = performance.now();
    await sleep(100); // let in-flight cluster messages (acks, job transfers) land
    const addrs = [spec.addr, ...(spec.consumeAddr ? [spec.consumeAddr] : [])];
    const d = await drain(addrs, spec.kind, spec.queue, tracker, (n) => {
      progressOps.fill(0);
      progressOps[0] = n;
      report();
    });
    drained = { jobs: d.drained, sec: Math.round(d.elapsedMs) / 1000 };
    verification = tracker.verify();
  }

  const latencies: LoadResult['latencies'] = {};
  for (const key of ['add', 'get', 'ack', 'ping'] as const) if (merged[key].total > 0) latencies[key] = merged[key].summary();
  const headline = (): Histogram => {
    switch (spec.workload) {
      case 'ping':
        return merged.ping;
      case 'produce':
      case 'replicate':
        return merged.add;
      default:
        return merged.get;
    }
  };
  const producedPerSec = rate((s) => s.produced);
  const consumedPerSec = rate((s) => s.consumed);
  const opsPerSec =
    spec.workload === 'ping' ? rate((s) => s.pings) : spec.workload === 'produce' || spec.workload === 'replicate' ? producedPerSec : consumedPerSec;
  // The CPU figures of the measured window (none if it never started).
  const cpu: CpuUse = cpu0 && cpu1 ? cpuUse(cpu0, cpu1, pids) : { generatorCpuPct: 0 };
  const warnings: string[] = [];
  if (locals.every((l) => l.elapsedMs === 0)) warnings.push('queue ran dry during warmup: nothing measured (raise --preload)');
  else if (locals.some((l) => l.drainedEarly)) warnings.push(`queue ran dry: measured ${elapsedSec.toFixed(1)}s instead of ${spec.durationSec}s`);
  warnings.push(...cpuWarnings(cpu, threads));
  if (merged.errors > 0) warnings.push(`${merged.errors} error replies`);
  if (verification && (verification.lost > 0 || verification.duplicated > 0 || verification.unexpected > 0))
    warnings.push(`jobs lost ${verification.lost}, duplicated ${verification.duplicated}, unexpected ${verification.unexpected}`);
  return {
    kind: spec.kind,
    addr: fmtAddr(spec.addr),
    ...(spec.consumeAddr ? { consumeAddr: fmtAddr(spec.consumeAddr) } : {}),
    workload: spec.workload,
    conns: spec.conns,
    pipeline: spec.pipeline,
    threads,
    bodySize: spec.bodySize,
    queue: spec.queue,
    elapsedSec: Math.round(elapsedSec * 1000) / 1000,
    opsPerSec: Math.round(opsPerSec),
    producedPerSec: Math.round(producedPerSec),
    consumedPerSec: Math.round(consumedPerSec),
    cmdsPerSec: Math.round(rate((s) => s.cmds)),
    latency: headline().summary(),
    latencies,
    errors: merged.errors,
    errorSamples: [...errorSamples],
    emptyReplies: merged.empty,
    drainedEarly: locals.some((l) => l.drainedEarly),
    ...(spec.workload === 'cycle' || spec.workload === 'cross' ? { backlog: merged.produced - merged.consumed } : {}),
    ...(preload ? { preload } : {}),
    ...(drained ? { drain: drained } : {}),
    ...(verification ? { verification } : {}),
    ...cpu,
    warnings,
  };
}

function runWorkers(
  spec: LoadSpec & { queue: string },
  parts: Part[],
  hooksFor: (i: number) => Omit<Hooks, 'ready'>,
): Promise<LocalResult[]> {
  return new Promise((resolve, reject) => {
    const workers = parts.map(
      (part) => new Worker(fileURLToPath(import.meta.url), { workerData: { benchLoadWorker: true, spec, part } satisfies WorkerInit }),
    );
    const results: LocalResult[] = new Array(parts.length);
    let ready = 0;
    let done = 0;
    const fail = (e: Error): void => {
      for (const w of workers) void w.terminate();
      reject(e);
    };
    workers.forEach((w, i) => {
      const h = hooksFor(i);
      w.on('error', fail);
      w.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'ready':
            if (++ready === workers.length) {
              const startAt = Date.now() + 20;
              for (const x of workers) x.postMessage({ type: 'go', startAt });
            }
            break;
          case 'progress':
            h.progress(m.ops, m.phase);
            break;
          case 'measure-start':
            h.measureStart();
            break;
          case 'measure-end':
            h.measureEnd();
            break;
          case 'error':
            fail(new Error(`load thread ${i}: ${m.message}`));
            break;
          case 'result':
            results[i] = m.result;
            void w.terminate();
            if (++done === workers.length) resolve(results);
            break;
        }
      });
    });
  });
}

// ---------------------------------------------------------------------------
// Command line.

export function fmtRate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export function describe(r: LoadResult): string {
  const v = r.verification;
  const lines = [
    `${r.workload} on ${r.kind} ${r.addr}${r.consumeAddr ? ` -> ${r.consumeAddr}` : ''}: ${r.conns} conns, pipeline ${r.pipeline}, ${r.threads} thread(s), ${r.elapsedSec}s measured`,
    `  ${r.opsPerSec.toLocaleString('en-US')} ops/s  (produced ${r.producedPerSec.toLocaleString('en-US')}/s, consumed ${r.consumedPerSec.toLocaleString('en-US')}/s, commands ${r.cmdsPerSec.toLocaleString('en-US')}/s)`,
  ];
  for (const [k, l] of Object.entries(r.latencies))
    lines.push(`  ${k.padEnd(4)} latency ms: p50 ${l.p50Ms}  p99 ${l.p99Ms}  p99.9 ${l.p999Ms}  max ${l.maxMs}  mean ${l.meanMs}`);
  lines.push(`  errors ${r.errors}${r.errorSamples.length ? ` (${r.errorSamples.join(' | ')})` : ''}, empty replies ${r.emptyReplies}`);
  if (r.backlog !== undefined) lines.push(`  backlog (produced - consumed in window): ${r.backlog}`);
  if (r.preload) lines.push(`  preload: ${r.preload.jobs} jobs in ${r.preload.sec.toFixed(1)}s`);
  if (v)
    lines.push(
      `  check: ${v.expected} jobs expected back, ${v.received} received, lost ${v.lost}, duplicated ${v.duplicated}, unexpected ${v.unexpected}` +
        (r.drain ? ` (drain: ${r.drain.jobs} jobs in ${r.drain.sec}s)` : ''),
    );
  lines.push(
    `  cpu (% of one core): generator ${r.generatorCpuPct}%` +
      (r.serverCpuPct !== undefined ? `, server ${r.serverCpuPct}%` : '') +
      (r.serverWaitPct !== undefined ? ` (and ${r.serverWaitPct}% runnable, waiting for a core)` : '') +
      (r.otherCpuPct !== undefined ? `, other processes ${r.otherCpuPct}%` : ''),
  );
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export const LOAD_USAGE = `Usage: node dist/bench/load.js [options]
  --addr host:port        server to drive (default 127.0.0.1:7711; or --host/--port)
  --kind auto|disque|redis  protocol family (default auto, via INFO)
  --workload W            ${WORKLOADS.join(' | ')} (default produce)
  --conns N               connections (default 50)
  --pipeline N            requests in flight per connection (default 1)
  --duration S            measured seconds (default 5)
  --warmup S              seconds before measuring (default 1)
  --body N                job body bytes (default 64)
  --threads N             generator worker threads (default 1)
  --producers N           cycle/cross: producer connections (default half)
  --consume-addr h:p      cross: consumers connect here
  --consume-mode M        block | nohang (default block if pipeline 1 or cross)
  --block-ms MS           blocking consumers' timeout (default 200)
  --replicate N           ADDJOB REPLICATE N (replicate workload: 3)
  --add-timeout MS        ADDJOB ms-timeout (default 0; replicate: 10000)
  --preload N             consume: jobs queued first (default 0 = auto: add for warmup+duration s, max 5M);
                          cross: jobs queued on the producers' node first (default 2000)
  --max-backlog N         cycle/cross: producers wait while this many jobs are queued (default 10000, 0 = no cap)
  --queue NAME            queue/list name (default random per run)
  --no-verify             skip the final drain and lost/duplicate check
  --json                  print the result as JSON
`;

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      addr: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      kind: { type: 'string', default: 'auto' },
      workload: { type: 'string', default: 'produce' },
      conns: { type: 'string' },
      pipeline: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      body: { type: 'string' },
      threads: { type: 'string' },
      producers: { type: 'string' },
      'consume-addr': { type: 'string' },
      'consume-mode': { type: 'string' },
      'block-ms': { type: 'string' },
      replicate: { type: 'string' },
      'add-timeout': { type: 'string' },
      preload: { type: 'string' },
      'max-backlog': { type: 'string' },
      queue: { type: 'string' },
      'no-verify': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    process.stdout.write(LOAD_USAGE);
    return;
  }
  const addr = a.addr ? parseAddress(a.addr) : { host: a.host ?? '127.0.0.1', port: Number(a.port ?? 7711) };
  if (!WORKLOADS.includes(a.workload as Workload)) throw new Error(`unknown workload ${a.workload}`);
  const kind = a.kind === 'auto' ? await detectKind(addr) : (a.kind as ServerKind);
  const num = (s: string | undefined, d: number): number => (s === undefined ? d : Number(s));
  const spec: LoadSpec = {
    ...DEFAULT_SPEC,
    kind,
    addr,
    workload: a.workload as Workload,
    conns: num(a.conns, DEFAULT_SPEC.conns),
    pipeline: num(a.pipeline, DEFAULT_SPEC.pipeline),
    durationSec: num(a.duration, DEFAULT_SPEC.durationSec),
    warmupSec: num(a.warmup, DEFAULT_SPEC.warmupSec),
    bodySize: num(a.body, DEFAULT_SPEC.bodySize),
    threads: num(a.threads, DEFAULT_SPEC.threads),
    replicate: num(a.replicate, DEFAULT_SPEC.replicate),
    addTimeoutMs: num(a['add-timeout'], DEFAULT_SPEC.addTimeoutMs),
    preload: num(a.preload, DEFAULT_SPEC.preload),
    maxBacklog: num(a['max-backlog'], DEFAULT_SPEC.maxBacklog),
    verify: !a['no-verify'],
    ...(a.producers ? { producers: Number(a.producers) } : {}),
    ...(a['consume-addr'] ? { consumeAddr: parseAddress(a['consume-addr']) } : {}),
    ...(a['consume-mode'] ? { consumeMode: a['consume-mode'] as 'block' | 'nohang' } : {}),
    ...(a['block-ms'] ? { blockMs: Number(a['block-ms']) } : {}),
    ...(a.queue ? { queue: a.queue } : {}),
  };
  const tty = process.stderr.isTTY;
  const r = await runLoad(spec, (p) => {
    if (!tty) return;
    process.stderr.write(`\r\x1b[K${p.phase} ${p.sec.toFixed(1)}s ${fmtRate(p.sec > 0 ? p.ops / p.sec : 0)} ops/s`);
  });
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write(a.json ? JSON.stringify(r, null, 2) + '\n' : describe(r) + '\n');
}

if (isMainThread && process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
