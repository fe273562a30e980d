// Scale workload: what one queue of millions of jobs costs a node.
//
// A fresh server (ours, then the reference; never both full at once) gets a
// large maxmemory, then ONE queue is filled with 64-byte-body jobs by
// redis-benchmark (the C load generator from redis-tools), in steps:
//
//   redis-benchmark -p PORT -c 20 -P 64 -n STEP --csv ADDJOB q <body> 0
//
// At each checkpoint (1M, 10M, 40M jobs by default) we read QLEN q, the
// server's resident memory (/proc/<pid>/status VmRSS: the servers are local),
// INFO memory (used_memory; gc_count, gc_pause_total_ms and gc_pause_max_ms
// on ours), and keep redis-benchmark's latency figures of every step: the
// slowest request so far and the last step's p99. An external generator keeps
// our own load generator's memory and GC out of the picture at these sizes.
// Run from bench/run.ts (`npm run bench -- --only scale`); see docs/bench.md.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Client, type Address } from './conn.js';
import { sleep } from './load.js';
import { procRssBytes } from './procstat.js';
import { benchFailure, FILL_CONNS, FILL_PIPELINE, parseBenchCsv, plainBody, requestsSent, runRedisBenchmark, type BenchCsv } from './redis-benchmark.js';
import { fmtCount, fmtOps, FLAVOR_TITLE, table } from './report.js';
import { freePort, startServer, type Flavor, type ServerHandle } from './servers.js';

/** The one queue filled. */
export const SCALE_QUEUE = 'q';
export const DEFAULT_CHECKPOINTS = [1_000_000, 10_000_000, 40_000_000];
export const DEFAULT_STEP = 1_000_000;
/** The reference needs ~530 bytes per job: by default it stops at 10M. */
export const DEFAULT_REFERENCE_MAX = 10_000_000;
/** Stop filling when the next step would leave the machine less than this. */
const MIN_AVAILABLE_BYTES = 1024 * 1024 * 1024;

export interface ScaleOptions {
  flavor: Flavor;
  /** Server binary (ours: dist/src/bin/disque-server.js). */
  bin: string;
  /** First port tried for the server (client port; the bus is +10000). */
  basePort: number;
  ports: Set<number>;
  /** maxmemory given to the server, in bytes. */
  maxmemory: number;
  /** Ascending job counts at which to report. */
  checkpoints: number[];
  /** Jobs per redis-benchmark run. */
  step: number;
  bodySize: number;
  /** Path of redis-benchmark. */
  generator: string;
  /** taskset CPU lists for the server and redis-benchmark (--pin). */
  serverCpus?: string;
  generatorCpus?: string;
  /** A step that takes longer than this is killed (the server hangs). */
  stepTimeoutMs?: number;
  status?: (line: string) => void;
  log?: (line: string) => void;
}

/** One redis-benchmark run: its CSV figures and what the step saw around it. */
export interface ScaleStep extends BenchCsv {
  /** Jobs queued before the step. */
  before: number;
  /** -n given to redis-benchmark. */
  requested: number;
  /** ADDJOBs it actually sends: whole pipelines, ceil(n / 64) × 64. */
  sent: number;
  /** QLEN after the step. */
  qlen: number;
  elapsedMs: number;
  rssBytes: number | null;
  /** Why the step failed (redis-benchmark exited on an error reply, timed out...). */
  error?: string;
}

export interface ScaleCheckpoint {
  /** The checkpoint asked for. */
  target: number;
  /** QLEN q: jobs held. */
  jobs: number;
  rssBytes: number | null;
  /** (RSS − RSS of the empty server) / jobs. */
  rssBytesPerJob: number | null;
  usedMemory: number | null;
  usedMemoryPerJob: number | null;
  /** Slowest request of any step so far (redis-benchmark max_latency_ms); null before a step completed. */
  maxLatencyMs: number | null;
  /** p99 of the last completed step. */
  p99LastStepMs: number | null;
  /** Jobs added per second of redis-benchmark time since the previous checkpoint. */
  fillRate: number;
  /** Jobs added per second of redis-benchmark time since the start. */
  fillRateOverall: number;
  /** Ours only (INFO memory): collections and pauses since the server started. */
  gcCount?: number;
  gcPauseTotalMs?: number;
  gcPauseMaxMs?: number;
  /** Errors so far: error replies, failed redis-benchmark runs, QLEN below what was sent (one each per step). */
  errors: number;
  /** ADDJOBs sent (whole pipelines) that added no job so far: what was sent − QLEN. */
  missingJobs: number;
  /** Seconds since the fill started. */
  elapsedSec: number;
}

export interface ScaleResult {
  flavor: Flavor;
  maxmemory: number;
  bodySize: number;
  step: number;
  checkpoints: number[];
  command: string;
  baselineRssBytes: number | null;
  baselineUsedMemory: number | null;
  reached: ScaleCheckpoint[];
  steps: ScaleStep[];
  errors: number;
  missingJobs: number;
  errorSamples: string[];
  /** Why the fill stopped before the last checkpoint, if it did. */
  stopped?: string;
  notes: string[];
}

/** "1000000,10M,40M" (k and M suffixes allowed) -> ascending job counts. */
export function parseCounts(s: string): number[] {
  const out = s.split(',').map((x) => {
    const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(x.trim());
    const n = m ? Math.round(Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1e3 : 1e6)) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`bad job count '${x}'`);
    return n;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

/** MemAvailable of the machine, in bytes (null if unknown). */
function memAvailable(): number | null {
  try {
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/meminfo', 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface MemInfo {
  used: number | null;
  gcCount?: number;
  gcPauseTotalMs?: number;
  gcPauseMaxMs?: number;
}

async function readInfo(c: Client): Promise<MemInfo> {
  const info = await c.info('memory');
  const num = (k: string): number | undefined => {
    const v = info.get(k);
    return v === undefined || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v);
  };
  const used = num('used_memory');
  const gcCount = num('gc_count');
  const gcPauseTotalMs = num('gc_pause_total_ms');
  const gcPauseMaxMs = num('gc_pause_max_ms');
  return {
    used: used ?? null,
    ...(gcCount !== undefined ? { gcCount } : {}),
    ...(gcPauseTotalMs !== undefined ? { gcPauseTotalMs } : {}),
    ...(gcPauseMaxMs !== undefined ? { gcPauseMaxMs } : {}),
  };
}

async function qlen(c: Client): Promise<number> {
  const r = await c.ok('QLEN', SCALE_QUEUE);
  return Number(r);
}

/** Starts a fresh server, fills its one queue checkpoint by checkpoint, stops the server. */
export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const status = o.status ?? (() => {});
  const log = o.log ?? (() => {});
  const title = `scale · ${FLAVOR_TITLE[o.flavor]}`;
  const body = plainBody(o.bodySize);
  const timeoutMs = o.stepTimeoutMs ?? Math.max(600_000, o.step / 100);
  const result: ScaleResult = {
    flavor: o.flavor,
    maxmemory: o.maxmemory,
    bodySize: o.bodySize,
    step: o.step,
    checkpoints: o.checkpoints,
    command: `redis-benchmark -p PORT -c ${FILL_CONNS} -P ${FILL_PIPELINE} -n STEP --csv ADDJOB ${SCALE_QUEUE} <${o.bodySize}-byte body> 0`,
    baselineRssBytes: null,
    baselineUsedMemory: null,
    reached: [],
    steps: [],
    errors: 0,
    missingJobs: 0,
    errorSamples: [],
    notes: [],
  };

  status(`${title}: starting a fresh server (maxmemory ${o.maxmemory})...`);
  let h: ServerHandle | null = null;
  let c: Client | null = null;
  try {
    h = await startServer(o.flavor, {
      bin: o.bin,
      port: await freePort(o.basePort, o.ports),
      args: ['--maxmemory', String(o.maxmemory)],
      ...(o.serverCpus ? { cpus: o.serverCpus } : {}),
    });
    const addr: Address = h.addr;
    const rss = (): number | null => (h!.pid !== undefined ? procRssBytes(h!.pid) : null);
    if (h.pid === undefined) result.notes.push('no server pid: RSS not measured');
    c = await Client.open(addr);
    // Let the fresh server settle before the empty-server reading.
    await sleep(500);
    result.baselineRssBytes = rss();
    result.baselineUsedMemory = (await readInfo(c)).used;

    const gen = [
      ...(o.generatorCpus ? ['taskset', '-c', o.generatorCpus] : []),
      o.generator,
      '-p', String(addr.port),
      '-c', String(FILL_CONNS),
      '-P', String(FILL_PIPELINE),
    ];
    let held = 0; // QLEN after the last step
    let sentTotal = 0; // ADDJOBs sent so far
    let slowest: number | null = null;
    let benchMs = 0; // redis-benchmark wall time so far
    let benchMsAtCp = 0;
    let heldAtCp = 0;
    let lastStep: ScaleStep | null = null;
    const tStart = performance.now();

    for (const target of o.checkpoints) {
      while (held < target && result.stopped === undefined) {
        const n = Math.min(o.step, target - held);
        const sent = requestsSent(n, FILL_PIPELINE);
        // Leave the machine some memory: at 40M jobs a node needs many GB.
        const avail = memAvailable();
        const rssNow = rss();
        if (avail !== null && rssNow !== null && held > 0 && result.baselineRssBytes !== null) {
          const perJob = Math.max(0, rssNow - result.baselineRssBytes) / held;
          const need = perJob * sent * 1.25;
          if (avail - need < MIN_AVAILABLE_BYTES) {
            result.stopped = `machine memory: ${Math.round(avail / 1048576)} MB available, the next ${fmtOps(sent)} jobs need about ${Math.round(need / 1048576)} MB`;
            break;
          }
        }
        const label = `${title}: ${fmtOps(held)} → ${fmtOps(held + sent)} jobs (checkpoint ${fmtCount(target)})`;
        status(label);
        const run = await runRedisBenchmark([...gen, '-n', String(n), '--csv', 'ADDJOB', SCALE_QUEUE, body, '0'], timeoutMs, (sec) =>
          status(`${label}  ${sec.toFixed(0)} s`),
        );
        benchMs += run.elapsedMs;
        const csv = parseBenchCsv(run.stdout);
        let q: number;
        try {
          q = await qlen(c);
        } catch (e) {
          result.stopped = `QLEN failed after a step: ${(e as Error).message}`;
          result.errors++;
          result.errorSamples.push(result.stopped);
          break;
        }
        sentTotal += sent;
        const step: ScaleStep = {
          before: held,
          requested: n,
          sent,
          qlen: q,
          elapsedMs: Math.round(run.elapsedMs),
          rps: csv?.rps ?? 0,
          avgMs: csv?.avgMs ?? 0,
          p50Ms: csv?.p50Ms ?? 0,
          p95Ms: csv?.p95Ms ?? 0,
          p99Ms: csv?.p99Ms ?? 0,
          maxMs: csv?.maxMs ?? 0,
          rssBytes: rss(),
        };
        // redis-benchmark exits at the first error reply; QLEN tells how many jobs the server took.
        const { why, serverError } = benchFailure(run, csv, timeoutMs);
        // redis-benchmark stops at the first error reply, so the replies are
        // not all seen: a failed step counts as one error, and the jobs it
        // should have added and did not (what was sent − QLEN) are counted apart.
        const missing = Math.max(0, sentTotal - q);
        if (missing > 0 || why !== undefined) {
          result.errors++;
          result.missingJobs += missing;
          if (result.errorSamples.length < 10)
            result.errorSamples.push(`${why ?? 'jobs missing'}${missing > 0 ? ` (QLEN ${fmtOps(q)} after ${fmtOps(sentTotal)} ADDJOBs sent)` : ''}`);
          if (serverError?.startsWith('NOREPL') && !result.notes.some((n) => n.startsWith('NOREPL')))
            result.notes.push(
              `NOREPL: the node was over 75% of maxmemory (${o.maxmemory} bytes), where a single node refuses new jobs: give a larger --scale-maxmemory`,
            );
          sentTotal = q;
        }
        if (why) {
          step.error = why;
          result.stopped = why;
        }
        result.steps.push(step);
        held = q;
        if (csv) {
          slowest = Math.max(slowest ?? 0, csv.maxMs);
          lastStep = step;
        }
        log(
          `${title}: ${fmtOps(q)} jobs (+${fmtOps(q - step.before)} in ${(run.elapsedMs / 1000).toFixed(1)} s` +
            (csv ? `, ${fmtOps(Math.round(step.rps))} jobs/s), p99 ${step.p99Ms} ms, max ${step.maxMs} ms` : ')') +
            (step.rssBytes !== null ? `, RSS ${mb(step.rssBytes)}` : '') +
            (why ? `  [${why}]` : ''),
        );
      }
      if (held === 0 && result.stopped !== undefined) break;
      // Checkpoint (also the partial one where the fill stopped).
      await sleep(1000); // RSS lags the last allocations a little
      let mem: MemInfo;
      let jobs: number;
      try {
        mem = await readInfo(c);
        jobs = await qlen(c);
      } catch (e) {
        result.notes.push(`checkpoint ${fmtCount(target)} not read: ${(e as Error).message}`);
        break;
      }
      const r = rss();
      const cp: ScaleCheckpoint = {
        target,
        jobs,
        rssBytes: r,
        rssBytesPerJob: r !== null && result.baselineRssBytes !== null && jobs > 0 ? Math.round((r - result.baselineRssBytes) / jobs) : null,
        usedMemory: mem.used,
        usedMemoryPerJob:
          mem.used !== null && result.baselineUsedMemory !== null && jobs > 0 ? Math.round((mem.used - result.baselineUsedMemory) / jobs) : null,
        maxLatencyMs: slowest,
        p99LastStepMs: lastStep?.p99Ms ?? null,
        fillRate: benchMs > benchMsAtCp ? Math.round((jobs - heldAtCp) / ((benchMs - benchMsAtCp) / 1000)) : 0,
        fillRateOverall: benchMs > 0 ? Math.round(jobs / (benchMs / 1000)) : 0,
        ...(mem.gcCount !== undefined ? { gcCount: mem.gcCount } : {}),
        ...(mem.gcPauseTotalMs !== undefined ? { gcPauseTotalMs: mem.gcPauseTotalMs } : {}),
        ...(mem.gcPauseMaxMs !== undefined ? { gcPauseMaxMs: mem.gcPauseMaxMs } : {}),
        errors: result.errors,
        missingJobs: result.missingJobs,
        elapsedSec: Math.round((performance.now() - tStart) / 100) / 10,
      };
      result.reached.push(cp);
      benchMsAtCp = benchMs;
      heldAtCp = jobs;
      log(`${title}: checkpoint ${fmtCount(target)}: ${describeCheckpoint(cp)}`);
      if (result.stopped !== undefined) break;
    }
    if (result.stopped !== undefined) log(`${title}: stopped before the last checkpoint: ${result.stopped}`);
  } finally {
    c?.close();
    status(`${title}: stopping the server...`);
    await h?.stop();
  }
  return result;
}

const mb = (b: number): string => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GB` : `${(b / 1024 ** 2).toFixed(1)} MB`);

export function describeCheckpoint(cp: ScaleCheckpoint): string {
  return (
    `${fmtOps(cp.jobs)} jobs, RSS ${cp.rssBytes !== null ? mb(cp.rssBytes) : '?'} (${cp.rssBytesPerJob ?? '?'} B/job)` +
    `, slowest ${cp.maxLatencyMs ?? '–'} ms, p99 ${cp.p99LastStepMs ?? '–'} ms, ${fmtOps(cp.fillRate)} jobs/s` +
    (cp.gcCount !== undefined ? `, GC ${cp.gcCount} × (total ${cp.gcPauseTotalMs} ms, max ${cp.gcPauseMaxMs} ms)` : '') +
    `, errors ${cp.errors}${cp.missingJobs ? ` (${fmtOps(cp.missingJobs)} jobs missing)` : ''}`
  );
}

/** The markdown table of every checkpoint of every server. */
export function scaleTable(results: ScaleResult[]): string {
  const rows: string[][] = [];
  for (const r of results)
    for (const cp of r.reached) {
      const gc = cp.gcCount !== undefined;
      rows.push([
        FLAVOR_TITLE[r.flavor],
        cp.jobs >= cp.target ? fmtCount(cp.target) : `${fmtCount(cp.target)} (stopped)`,
        fmtOps(cp.jobs),
        cp.rssBytes !== null ? mb(cp.rssBytes) : '–',
        cp.rssBytesPerJob !== null ? String(cp.rssBytesPerJob) : '–',
        cp.usedMemory !== null ? mb(cp.usedMemory) : '–',
        cp.maxLatencyMs !== null ? String(cp.maxLatencyMs) : '–',
        cp.p99LastStepMs !== null ? String(cp.p99LastStepMs) : '–',
        fmtOps(cp.fillRate),
        gc ? fmtOps(cp.gcCount!) : '–',
        gc ? String(cp.gcPauseTotalMs) : '–',
        gc ? String(cp.gcPauseMaxMs) : '–',
        cp.errors + (cp.missingJobs ? ` (${fmtOps(cp.missingJobs)} jobs missing)` : ''),
      ]);
    }
  return table(
    [
      'server',
      'checkpoint',
      'jobs held (QLEN)',
      'RSS',
      'RSS bytes/job',
      'used_memory',
      'slowest request ms',
      'p99 last step ms',
      'fill jobs/s',
      'GC count',
      'GC pause total ms',
      'GC pause max ms',
      'errors',
    ],
    rows,
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}

/** The full markdown report. */
export function scaleMarkdown(header: string[], results: ScaleResult[]): string {
  const out = ['# disque-ts scale: one queue of millions of jobs', '', ...header.map((h) => `- ${h}`), '', scaleTable(results), ''];
  for (const r of results) {
    const extra = [
      ...(r.stopped !== undefined ? [`stopped before the last checkpoint: ${r.stopped}`] : []),
      ...r.errorSamples.map((e) => `error: ${e}`),
      ...r.notes,
    ];
    if (extra.length) out.push(`${FLAVOR_TITLE[r.flavor]}:`, '', ...extra.map((e) => `- ${e}`), '');
  }
  return out.join('\n');
}
