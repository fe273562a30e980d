// `npm run bench`: how fast is disque-ts on this machine, compared with the
// reference Disque and with Redis (LPUSH/BRPOP, what one would use instead).
//
// Starts the servers it needs (or uses given addresses), runs each scenario
// on each server in turn (ours, reference, redis, ours, reference, redis...
// so drifts in machine load hit all of them alike), shows progress on stderr,
// prints summary tables and writes JSON + markdown to bench/results/.
// One command repeated (PING, ADDJOB, GETJOB NOHANG, the AOF and REPLICATE 3
// rows, ADDJOB over TLS) is driven by redis-benchmark (bench/redis-benchmark.ts), the mixed
// workloads and the lost/duplicate checks by our own generator (bench/load.ts).
// Two modes apart: --core (bench/core.ts, no servers) and the scale workload
// (bench/scale.ts: --only scale or --scale, run after the others, alone).
// See docs/bench.md for every option.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAddress, type Address } from './conn.js';
import { DEFAULT_SPEC, fmtRate, runLoad, WORKLOADS, type LoadSpec, type Workload } from './load.js';
import { describeMemory, measureMemory } from './memory.js';
import { coreTable, DEFAULT_SIZES, parseSizes, runCore } from './core.js';
import { fill } from './queueops.js';
import { runVsBullmq } from './vs-bullmq.js';
import { CPU_ROWS, cpuMarkdown, cpuRowTitle, runCpuFloor, runCpuRow, type CpuResult } from './cpu.js';
import { jobsFor, runSizes, SIZE_ROWS, sizesMarkdown } from './sizes.js';
import {
  DEFAULT_CHECKPOINTS,
  DEFAULT_REFERENCE_MAX,
  DEFAULT_STEP,
  parseCounts,
  runScale,
  scaleMarkdown,
  type ScaleResult,
} from './scale.js';
import {
  BENCHMARK_WORKLOADS,
  FILL_CONNS,
  FILL_PIPELINE,
  findRedisBenchmark,
  REDIS_BENCHMARK_MISSING,
  requestsFor,
  runBenchmark,
  type BenchmarkResult,
  type BenchmarkWorkload,
  type Generator,
  type TlsTarget,
} from './redis-benchmark.js';
import { makeServerCerts, type ServerCerts } from '../scripts/certs.js';
import { holdableMemory } from '../src/server/memory-limit.js';
import { parseMemory } from '../src/config/config.js';
import {
  FLAVOR_TITLE,
  fmtCount,
  markdown,
  registeredRatios,
  scenarioLabel,
  summarize,
  tlsRatios,
  type MemoryRecord,
  type RunRecord,
  type RunResult,
  type Scenario,
} from './report.js';
import {
  deleteKeys,
  externalServer,
  findOnPath,
  freePort,
  joinCluster,
  OUR_SERVER,
  pinSelf,
  REPO_ROOT,
  startServer,
  type Flavor,
  type ServerHandle,
} from './servers.js';

const USAGE = `Usage: npm run bench -- [options]

Servers (each one: started by us from a binary, or an address someone runs):
  --ours host:port          use a running disque-ts instead of starting dist/src/bin/disque-server.js
  --no-ours                 leave our server out
  --reference host:port     a running reference Disque
  --reference-bin PATH      start the reference Disque from this binary (env BENCH_REFERENCE_BIN)
  --redis host:port         a running Redis (never flushed: we only touch our own keys)
  --redis-bin PATH          start Redis from this binary (default: redis-server on PATH)
  --no-redis                leave Redis out
  --ours-cluster h:p,h:p,h:p / --reference-cluster h:p,h:p,h:p   running 3-node clusters
  --base-port N             first port to try for servers we start (default 7850)

What to run:
  --core                    only the in-process core micro-benchmarks (bench/core.ts, no servers; ~1 min, quick ~20 s)
  --core-sizes N,N          jobs registered for the core store cases (default 1000,1000000)
  --quick                   smoke run, under a minute (short runs, 1 round, no cluster, 100k-job memory)
  --only w1,w2              workloads: ${WORKLOADS.join(',')},tls,memory (default all of these), scale;
                            tls = produce over TLS on our server (its tls-port), with the plain produce rows
  --conns N                 connections per run (default 50)
  --pipelines 1,16          pipeline depths (default 1,16)
  --requests N              redis-benchmark rows: -n base (default 200000; quick 50000); PING pipelined x4,
                            ADDJOB pipelined x2, REPLICATE 3 plain /2 (as ../shared/tools/perf-pair)
  --duration S              own-generator rows: measured seconds per run (default 3; quick 1)
  --warmup S                own-generator rows: warmup seconds per run (default 1; quick 0.3)
  --rounds N                times each server runs each scenario, alternating (default 2; quick 1)
  --threads N               own generator's worker threads (default 1)
  --cluster / --no-cluster  cluster workloads (replicate, cross; default on, off with --quick)
  --memory-jobs N           jobs for the memory workload (default 1000000; quick 100000)
  --persist / --no-persist  produce with AOF on (appendfsync everysec), fresh servers (default on, off with --quick)
  --registered N            produce and cycle with N, then 1000, jobs registered, fresh servers (default 1000000; quick 0 = skip)
  --body N                  job body bytes (default 64)
  --scale                   add the scale workload (also: --only scale); never on unless asked

Against BullMQ (--only vs-bullmq, run alone; bench/vs-bullmq.ts): add one at a time, add in bulk,
process at concurrency 1/10/50, latency at a fixed rate; our node vs BullMQ on its own redis-server:
  --vs-jobs N               jobs per row (default 20000; quick 5000)
  --vs-rate N               jobs/s of the latency row (default 1000)
  --vs-rows id,id           rows (add-one-c10,add-bulk,process-c1,process-c10,process-c50,latency)
  --bullmq-redis host:port  run BullMQ on this Redis (keys under a bench prefix, deleted after) instead of starting one
  --rounds N                rounds, best kept (default 3; quick 1)

CPU per job (--only cpu, run alone: fresh clusters of 1, 2, 3 and 5 nodes, ours, the reference
and the runtime's floor; see bench/cpu.ts; about 5 minutes):
  --cpu-rows id,id          rows to run (default all: ${CPU_ROWS.map((r) => r.id).join(',')})
  --duration S              measured seconds per run (default 5)
  --warmup S                warmup per run: until 30,000 jobs went through or S seconds passed (default 20)
  --rounds N                runs per row and server, the lowest CPU per job kept (default 1)
  --pin                     pin servers to CPU 0 and the generator to CPU 1 (taskset)
  --redis-benchmark PATH    the C generator (default /usr/bin/redis-benchmark, else on PATH; Debian: redis-tools)
  --out DIR                 results directory (default bench/results)

Generators: redis-benchmark drives ping, produce (also with the AOF), consume (GETJOB NOHANG
from a filled queue) and replicate; our own generator drives cycle, cross and the registered-jobs
rows (mixed commands, lost/duplicate checks) and fills the memory workload.

Body sizes (--only sizes, run alone: ADDJOB and GETJOB NOHANG with 64 B to 1 MB bodies, a fresh
server per size, ours and the reference alternating; see bench/sizes.ts; a few minutes):
  --sizes-rows N,N          body sizes in bytes (default ${SIZE_ROWS.join(',')})
  --rounds N                runs per size and server, the best kept (default 3; quick 1)

Scale (one queue filled to millions of jobs by redis-benchmark, a fresh server each, ours
then the reference; minutes and many GB: npm run bench -- --only scale):
  --scale-checkpoints N,N   jobs at which to report (default 1M,10M,40M; k/M suffixes allowed)
  --scale-step N            jobs per redis-benchmark run (default 1M)
  --scale-maxmemory SIZE    maxmemory for the servers, e.g. 16gb (default: the most our node accepts here)
  --scale-reference-max N   the reference's checkpoints stop here (default 10M: ~530 bytes per job)
`;

interface Opts {
  quick: boolean;
  only: Set<string>;
  conns: number;
  pipelines: number[];
  /** redis-benchmark rows: the base -n (see requestsFor). */
  requests: number;
  duration: number;
  warmup: number;
  rounds: number;
  threads: number;
  cluster: boolean;
  memoryJobs: number;
  persist: boolean;
  registered: number;
  body: number;
  pin: boolean;
  out: string;
  basePort: number;
  /** Path of redis-benchmark, null if not found. */
  redisBenchmark: string | null;
  scale: ScaleOpts;
}

interface ScaleOpts {
  checkpoints: number[];
  step: number;
  /** Bytes. */
  maxmemory: number;
  referenceMax: number;
}

function parse(): { o: Opts; a: Record<string, string | boolean | undefined> } {
  const { values: a } = parseArgs({
    options: {
      ours: { type: 'string' },
      'no-ours': { type: 'boolean', default: false },
      reference: { type: 'string' },
      'reference-bin': { type: 'string' },
      redis: { type: 'string' },
      'redis-bin': { type: 'string' },
      'no-redis': { type: 'boolean', default: false },
      'ours-cluster': { type: 'string' },
      'reference-cluster': { type: 'string' },
      'base-port': { type: 'string', default: '7850' },
      quick: { type: 'boolean', default: false },
      core: { type: 'boolean', default: false },
      'core-sizes': { type: 'string' },
      only: { type: 'string' },
      conns: { type: 'string', default: '50' },
      pipelines: { type: 'string', default: '1,16' },
      requests: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      threads: { type: 'string', default: '1' },
      cluster: { type: 'boolean' },
      'no-cluster': { type: 'boolean', default: false },
      'memory-jobs': { type: 'string' },
      persist: { type: 'boolean' },
      'no-persist': { type: 'boolean', default: false },
      registered: { type: 'string' },
      body: { type: 'string', default: '64' },
      pin: { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      'scale-checkpoints': { type: 'string' },
      'cpu-rows': { type: 'string' },
      'sizes-rows': { type: 'string' },
      'scale-step': { type: 'string' },
      'scale-maxmemory': { type: 'string' },
      'scale-reference-max': { type: 'string' },
      'redis-benchmark': { type: 'string' },
      'vs-jobs': { type: 'string' },
      'vs-rate': { type: 'string', default: '1000' },
      'vs-rows': { type: 'string' },
      'bullmq-redis': { type: 'string' },
      out: { type: 'string', default: join(REPO_ROOT, 'bench/results') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = a.quick!;
  const only = new Set((a.only ?? [...WORKLOADS, 'tls', 'memory'].join(',')).split(',').map((s) => s.trim()));
  // Scale takes minutes and many GB: only when asked, by --only or --scale (even with --quick).
  if (a.scale) only.add('scale');
  for (const w of only)
    if (w !== 'memory' && w !== 'scale' && w !== 'tls' && w !== 'cpu' && w !== 'vs-bullmq' && w !== 'sizes' && !WORKLOADS.includes(w as Workload))
      throw new Error(`unknown workload ${w}`);
  const maxmemory = a['scale-maxmemory'] !== undefined ? parseMemory(a['scale-maxmemory']) : holdableMemory();
  if (maxmemory === undefined || !(maxmemory > 0)) throw new Error(`bad --scale-maxmemory ${a['scale-maxmemory']}`);
  return {
    a,
    o: {
      quick,
      only,
      conns: Number(a.conns),
      pipelines: a.pipelines!.split(',').map(Number),
      requests: Number(a.requests ?? (quick ? 50_000 : 200_000)),
      duration: Number(a.duration ?? (quick ? 1 : 3)),
      warmup: Number(a.warmup ?? (quick ? 0.3 : 1)),
      rounds: Number(a.rounds ?? (quick ? 1 : 2)),
      threads: Number(a.threads),
      cluster: a['no-cluster'] ? false : (a.cluster ?? !quick),
      memoryJobs: Number(a['memory-jobs'] ?? (quick ? 100_000 : 1_000_000)),
      persist: a['no-persist'] ? false : (a.persist ?? !quick),
      registered: Number(a.registered ?? (quick ? 0 : 1_000_000)),
      body: Number(a.body),
      pin: a.pin!,
      out: a.out!,
      basePort: Number(a['base-port']),
      redisBenchmark: findRedisBenchmark(a['redis-benchmark'] as string | undefined),
      scale: {
        checkpoints: a['scale-checkpoints'] ? parseCounts(a['scale-checkpoints']) : DEFAULT_CHECKPOINTS,
        step: a['scale-step'] ? parseCounts(a['scale-step'])[0]! : DEFAULT_STEP,
        maxmemory,
        referenceMax: a['scale-reference-max'] ? parseCounts(a['scale-reference-max'])[0]! : DEFAULT_REFERENCE_MAX,
      },
    },
  };
}

/** The registered-jobs scenarios compare --registered N with this many. */
const REGISTERED_FEW = 1000;
/** Where our server persists with `appendonly yes` (its default redis-url). */
const PERSIST_REDIS: Address = { host: '127.0.0.1', port: 6379 };

/** Scenarios that need a fresh server per round, and the setup key they share one with. */
const setupOf = (sc: Scenario): string | null => (sc.aof ? 'aof' : sc.registered !== undefined ? `reg${sc.registered}` : null);

/**
 * Who drives a scenario: redis-benchmark where one command repeated expresses
 * it (PING, ADDJOB, GETJOB NOHANG from a filled queue, ADDJOB REPLICATE 3,
 * ADDJOB with the AOF on), our own generator for the mixed workloads and the
 * lost/duplicate checks (cycle, cross) and the registered-jobs rows.
 */
const generatorOf = (w: Workload, registered: boolean): Generator =>
  !registered && (BENCHMARK_WORKLOADS as readonly string[]).includes(w) ? 'redis-benchmark' : 'own';

/** Scenario list, in run order. The quick run keeps the ones the issue names. */
function scenarios(o: Opts): Scenario[] {
  const out: Scenario[] = [];
  const base = { conns: o.conns, cluster: false };
  const single: Workload[] = ['ping', 'produce', 'consume', 'cycle'];
  for (const w of single) {
    // tls: ADDJOB over TLS, each after its plain row (run with it even without produce in --only).
    const tls = w === 'produce' && o.only.has('tls');
    if (!o.only.has(w) && !tls) continue;
    for (const p of o.pipelines) {
      // Quick: PING only pipelined (the ceiling), the cycle only plain.
      if (o.quick && ((w === 'ping' && p === 1 && o.pipelines.length > 1) || (w === 'cycle' && p > 1))) continue;
      out.push({ ...base, id: `${w}-c${o.conns}-p${p}`, workload: w, generator: generatorOf(w, false), pipeline: p });
      if (tls) out.push({ ...base, id: `${w}-c${o.conns}-p${p}-tls`, workload: w, generator: generatorOf(w, false), pipeline: p, tls: true });
    }
  }
  // On fresh servers we start (ours, the reference): ADDJOB with the AOF on;
  // produce and cycle with few, then many jobs registered (issue 7).
  if (o.persist && o.only.has('produce'))
    for (const p of o.pipelines)
      out.push({ ...base, id: `produce-c${o.conns}-p${p}-aof`, workload: 'produce', generator: generatorOf('produce', false), pipeline: p, aof: true });
  if (o.registered > 0)
    for (const reg of new Set([REGISTERED_FEW, o.registered]))
      for (const w of ['produce', 'cycle'] as const) {
        if (!o.only.has(w)) continue;
        for (const p of o.pipelines) {
          if (o.quick && w === 'cycle' && p > 1) continue;
          out.push({ ...base, id: `${w}-c${o.conns}-p${p}-reg${reg}`, workload: w, generator: generatorOf(w, true), pipeline: p, registered: reg });
        }
      }
  if (o.cluster) {
    if (o.only.has('replicate'))
      for (const p of o.pipelines)
        out.push({ ...base, id: `replicate-c${o.conns}-p${p}`, workload: 'replicate', generator: generatorOf('replicate', false), pipeline: p, cluster: true });
    // Cross-node consumption is blocking GETJOB by nature (the consumer's node
    // fetches jobs from the producer's node when clients wait): plain only.
    if (o.only.has('cross'))
      out.push({ ...base, id: `cross-c${o.conns}-p1`, workload: 'cross', generator: generatorOf('cross', false), pipeline: 1, cluster: true });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Progress on stderr: one updating line on a terminal, a line per run otherwise.

const tty = process.stderr.isTTY === true;
function status(line: string): void {
  if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
}
function log(line: string): void {
  if (tty) process.stderr.write('\r\x1b[K');
  process.stderr.write(line + '\n');
}

// ---------------------------------------------------------------------------

interface Servers {
  single: Map<Flavor, ServerHandle>;
  binaries: Map<Flavor, string>;
  clusterAddrs: Map<Flavor, Address[]>;
  ports: Set<number>;
  /** Our server's TLS port (the TLS rows), when we started it with one. */
  tls?: TlsTarget;
  /** The throw-away CA and server certificate behind it; removed at the end. */
  certs?: ServerCerts;
}

async function setupServers(o: Opts, a: Record<string, string | boolean | undefined>): Promise<Servers> {
  const s: Servers = { single: new Map(), binaries: new Map(), clusterAddrs: new Map(), ports: new Set() };
  const cpusOpt = o.pin ? { cpus: '0' } : {};
  const add = async (flavor: Flavor, addr: string | undefined, bin: string | undefined, args: string[] = []): Promise<void> => {
    if (addr) {
      s.single.set(flavor, await externalServer(flavor, parseAddress(addr)));
    } else if (bin) {
      s.binaries.set(flavor, bin);
      status(`starting ${FLAVOR_TITLE[flavor]}...`);
      s.single.set(flavor, await startServer(flavor, { bin, port: await freePort(o.basePort, s.ports), args, ...cpusOpt }));
    }
  };
  // The TLS rows: our server, started here, also listens on a tls-port with a
  // throw-away certificate; clients are not asked for one (tls-auth-clients no).
  const tlsArgs = async (): Promise<string[]> => {
    if (!o.only.has('tls')) return [];
    if (a.ours) {
      log('note: the TLS rows need our server started here (not --ours): skipping them');
      return [];
    }
    try {
      s.certs = makeServerCerts('bench-certs-');
    } catch (e) {
      log(`note: could not make certificates with openssl (${(e as Error).message.split('\n')[0]}): skipping the TLS rows`);
      return [];
    }
    const certs = s.certs;
    process.once('exit', () => certs.remove()); // also when interrupted
    s.tls = { port: await freePort(o.basePort, s.ports), caCert: certs.caCert };
    return [
      '--tls-port', String(s.tls.port),
      '--tls-cert-file', certs.serverCert,
      '--tls-key-file', certs.serverKey,
      '--tls-ca-cert-file', certs.caCert,
      '--tls-auth-clients', 'no',
    ];
  };
  if (!a['no-ours']) {
    if (!a.ours && !existsSync(OUR_SERVER)) log(`note: ${OUR_SERVER} not built (npm run build): skipping our server`);
    else await add('ours', a.ours as string | undefined, OUR_SERVER, await tlsArgs());
  }
  const refBin = (a['reference-bin'] as string | undefined) ?? process.env.BENCH_REFERENCE_BIN;
  if (a.reference || refBin) await add('reference', a.reference as string | undefined, refBin);
  else log('note: no reference Disque (--reference host:port or --reference-bin PATH): skipping it');
  if (!a['no-redis']) {
    const bin = (a['redis-bin'] as string | undefined) ?? (a.redis ? undefined : findOnPath('redis-server'));
    if (!a.redis && !bin) log('note: redis-server not found (--redis host:port or --redis-bin PATH): skipping Redis');
    else await add('redis', a.redis as string | undefined, bin ?? undefined);
  }
  for (const f of ['ours', 'reference'] as const) {
    const list = a[`${f}-cluster`] as string | undefined;
    if (list) s.clusterAddrs.set(f, list.split(',').map((x) => parseAddress(x)));
  }
  return s;
}

async function clusterFor(flavor: Flavor, o: Opts, s: Servers): Promise<ServerHandle[] | null> {
  const given = s.clusterAddrs.get(flavor);
  if (given) return Promise.all(given.map((addr) => externalServer(flavor, addr)));
  const bin = s.binaries.get(flavor);
  if (!bin) return null;
  status(`starting a 3-node ${FLAVOR_TITLE[flavor]} cluster...`);
  const nodes: ServerHandle[] = [];
  try {
    for (let i = 0; i < 3; i++)
      nodes.push(await startServer(flavor, { bin, port: await freePort(o.basePort, s.ports), ...(o.pin ? { cpus: '0' } : {}) }));
    await joinCluster(nodes);
    return nodes;
  } catch (e) {
    for (const n of nodes) await n.stop();
    throw e;
  }
}

/** --core: the in-process micro-benchmarks alone; no servers are started. */
async function mainCore(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  const sizes = a['core-sizes'] ? parseSizes(a['core-sizes'] as string) : DEFAULT_SIZES;
  const t0 = Date.now();
  const results = await runCore({ quick: o.quick, sizes }, log);
  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s${o.quick ? ', --quick' : ''}`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, Node ${process.versions.node}`,
  ];
  const md = `# disque-ts core micro-benchmarks\n\n${header.join('  \n')}\n\n${coreTable(results, sizes)}\n`;
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  const base = join(o.out, `core-${stamp}${o.quick ? '-quick' : ''}`);
  const json = JSON.stringify({ header, sizes, results }, null, 2);
  writeFileSync(`${base}.json`, json);
  writeFileSync(`${base}.md`, md);
  writeFileSync(join(o.out, 'core-latest.json'), json);
  writeFileSync(join(o.out, 'core-latest.md'), md);
  process.stdout.write('\n' + md);
  log(`results: ${base}.md and .json`);
}

/**
 * The scale workload: ours filled to every checkpoint and stopped, then the
 * reference (checkpoints up to --scale-reference-max), never both at once.
 * Results: bench/results/scale-<time>.md / .json and scale-latest.*.
 */
async function mainScale(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  const so = o.scale;
  const generator = o.redisBenchmark!; // checked by main()
  const t0 = Date.now();
  const ports = new Set<number>();
  const plan: { flavor: Flavor; bin: string; checkpoints: number[] }[] = [];
  if (!a['no-ours']) {
    if (a.ours) log('note: scale needs a fresh server with a large maxmemory: it starts its own, not --ours');
    if (!existsSync(OUR_SERVER)) log(`note: ${OUR_SERVER} not built (npm run build): skipping our server`);
    else plan.push({ flavor: 'ours', bin: OUR_SERVER, checkpoints: so.checkpoints });
  }
  const refBin = (a['reference-bin'] as string | undefined) ?? process.env.BENCH_REFERENCE_BIN;
  if (refBin) {
    const cps = so.checkpoints.filter((n) => n <= so.referenceMax);
    if (cps.length === 0) log(`note: no scale checkpoint up to --scale-reference-max ${fmtCount(so.referenceMax)}: skipping the reference`);
    else plan.push({ flavor: 'reference', bin: refBin, checkpoints: cps });
  } else log('note: no reference Disque (--reference-bin PATH): scale runs ours only');
  if (plan.length === 0) throw new Error('scale: no server to start');
  if (o.pin && !pinSelf('1')) log('note: taskset failed, not pinning');

  const results: ScaleResult[] = [];
  for (const p of plan) {
    try {
      results.push(
        await runScale({
          flavor: p.flavor,
          bin: p.bin,
          basePort: o.basePort,
          ports,
          maxmemory: so.maxmemory,
          checkpoints: p.checkpoints,
          step: so.step,
          bodySize: o.body,
          generator,
          ...(o.pin ? { serverCpus: '0', generatorCpus: '1' } : {}),
          status,
          log,
        }),
      );
    } catch (e) {
      log(`scale · ${FLAVOR_TITLE[p.flavor]}: FAILED: ${(e as Error).message}`);
    }
  }

  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, ${(totalmem() / 1024 ** 3).toFixed(1)} GB, Node ${process.versions.node}`,
    `each server fresh, alone (ours, stopped, then the reference), maxmemory ${so.maxmemory} bytes (${(so.maxmemory / 1024 ** 3).toFixed(1)} GB)${o.pin ? ', pinned (server CPU 0, redis-benchmark CPU 1)' : ''}`,
    `fill: \`redis-benchmark -p PORT -c ${FILL_CONNS} -P ${FILL_PIPELINE} -n ${so.step} --csv ADDJOB q <${o.body}-byte body> 0\` repeated up to each checkpoint (${so.checkpoints.map(fmtCount).join(', ')}; the reference up to ${fmtCount(so.referenceMax)})`,
    'RSS: /proc/<pid>/status VmRSS; RSS bytes/job: (RSS − RSS of the empty server) / jobs held; used_memory from INFO memory',
    'slowest request: max of redis-benchmark max_latency_ms over every step so far; p99: the last step; fill rate: jobs added / redis-benchmark time since the previous checkpoint',
    'GC (ours only, INFO memory gc_count, gc_pause_total_ms, gc_pause_max_ms): since the server started',
    'errors: failed redis-benchmark runs (it exits at the first error reply) or QLEN below the ADDJOBs sent; jobs missing: sent − QLEN',
  ];
  const md = scaleMarkdown(header, results);
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  const base = join(o.out, `scale-${stamp}`);
  const json = JSON.stringify({ options: { ...so, generator, body: o.body, pin: o.pin }, header, results }, null, 2);
  writeFileSync(`${base}.json`, json);
  writeFileSync(`${base}.md`, md);
  writeFileSync(join(o.out, 'scale-latest.json'), json);
  writeFileSync(join(o.out, 'scale-latest.md'), md);
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write('\n' + md + '\n');
  log(`results: ${base}.md and .json`);
}

async function main(): Promise<void> {
  const { o, a } = parse();
  if (a.core) return mainCore(o, a);
  // Rows redis-benchmark drives cannot run without it: say so, before any server starts.
  const needs = [
    ...new Set(scenarios(o).filter((sc) => sc.generator === 'redis-benchmark').map((sc) => scenarioLabel(sc))),
    ...(o.only.has('scale') ? ['scale'] : []),
  ];
  if (needs.length > 0 && !o.redisBenchmark) {
    const own = [...o.only].filter((w) => w !== 'scale' && !(BENCHMARK_WORKLOADS as readonly string[]).includes(w));
    log(`bench: ${REDIS_BENCHMARK_MISSING}.`);
    log(`bench: the rows that need it: ${needs.join(', ')}${own.length ? `; to run only the others: --only ${own.join(',')}` : ''}`);
    process.exit(2);
  }
  // The other workloads first, their servers stopped, then CPU per job and the scale fill alone.
  if ([...o.only].some((w) => w !== 'scale' && w !== 'cpu' && w !== 'vs-bullmq' && w !== 'sizes')) await mainLoad(o, a);
  if (o.only.has('vs-bullmq')) await mainVsBullmq(o, a);
  if (o.only.has('cpu')) await mainCpu(o, a);
  if (o.only.has('sizes')) await mainSizes(o, a);
  if (o.only.has('scale')) await mainScale(o, a);
}

/**
 * --only vs-bullmq: our client and Worker against BullMQ (bench/vs-bullmq.ts).
 * Results: bench/results/vs-bullmq-<time>.md and vs-bullmq-latest.md.
 */
async function mainVsBullmq(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  const t0 = Date.now();
  const jobs = Number(a['vs-jobs'] ?? (o.quick ? 5000 : 20_000));
  const rate = Number(a['vs-rate']);
  const latencySeconds = o.quick ? 2 : 5;
  const rounds = Number(a.rounds ?? (o.quick ? 1 : 3));
  const table = await runVsBullmq(
    {
      jobs,
      rounds,
      body: o.body,
      rate,
      latencySeconds,
      basePort: o.basePort,
      ...(a['bullmq-redis'] ? { bullmqRedis: parseAddress(a['bullmq-redis'] as string) } : {}),
      status,
      log,
    },
    a['vs-rows'] ? new Set((a['vs-rows'] as string).split(',')) : undefined,
  );
  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, Node ${process.versions.node}`,
    `${jobs} jobs per row (latency row: ${rate} jobs/s for ${latencySeconds} s), ~${o.body}-byte JSON bodies, best of ${rounds} round(s) (latency: lowest p50 and lowest p99 of any round; CPU of the round kept), the sides alternating`,
    `ours: disque-ts node started here, no persistence, client + Worker of this repository; BullMQ ${bullmqVersion()}: ${a['bullmq-redis'] ? `Redis at ${a['bullmq-redis'] as string}` : 'a redis-server started here (no RDB, no AOF)'}, BullMQ defaults`,
    'CPU: utime + stime of the server process (/proc) and of this process (both clients and workers run in it) per 1000 jobs',
  ];
  const md = `# disque-ts vs BullMQ\n\n${header.join('  \n')}\n\n${table}\n`;
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  writeFileSync(join(o.out, `vs-bullmq-${stamp}.md`), md);
  writeFileSync(join(o.out, 'vs-bullmq-latest.md'), md);
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write('\n' + md + '\n');
}

function bullmqVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/bullmq/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/**
 * --only sizes: ADDJOB and GETJOB with bodies of 64 B to 1 MB (bench/sizes.ts).
 * Results: bench/results/sizes-<time>.md / .json and sizes-latest.*.
 */
async function mainSizes(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  const t0 = Date.now();
  if (!o.redisBenchmark) throw new Error(REDIS_BENCHMARK_MISSING);
  const refBin = (a['reference-bin'] as string | undefined) ?? process.env.BENCH_REFERENCE_BIN;
  const flavors: [Flavor, string][] = [];
  if (!a['no-ours']) flavors.push(['ours', OUR_SERVER]);
  if (refBin) flavors.push(['reference', refBin]);
  else log('note: no reference Disque (--reference-bin PATH): the sizes rows run ours only');
  const sizes = a['sizes-rows'] ? (a['sizes-rows'] as string).split(',').map(Number) : SIZE_ROWS;
  const rounds = Number(a.rounds ?? (o.quick ? 1 : 3));
  const results = await runSizes({ flavors, sizes, rounds, basePort: o.basePort, redisBenchmark: o.redisBenchmark, status, log });
  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, Node ${process.versions.node}`,
    `each run: a fresh server (maxmemory 4gb), ADDJOB of ${sizes.map((s) => `${jobsFor(s)}`).join('/')} jobs by 20 connections one request at a time, then as many GETJOB NOHANG; best of ${rounds} round(s), servers alternating`,
    'RSS/job: growth of the server\'s RSS while the jobs were added, ÷ jobs',
  ];
  const md = `# disque-ts job body sizes\n\n${header.join('  \n')}\n\n${sizesMarkdown(results)}\n`;
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  const json = JSON.stringify({ header, results }, null, 2);
  for (const name of [`sizes-${stamp}`, 'sizes-latest']) {
    writeFileSync(join(o.out, `${name}.json`), json);
    writeFileSync(join(o.out, `${name}.md`), md);
  }
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write('\n' + md + '\n');
  log(`results: ${join(o.out, `sizes-${stamp}.md`)} and .json`);
}

/**
 * --only cpu: CPU time per job of every server process on fresh clusters
 * (bench/cpu.ts), ours and the reference alternating, then the floor.
 * Results: bench/results/cpu-<time>.md / .json and cpu-latest.*.
 */
async function mainCpu(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  const t0 = Date.now();
  const ids = a['cpu-rows'] ? new Set((a['cpu-rows'] as string).split(',')) : null;
  const rows = CPU_ROWS.filter((r) => ids === null || ids.has(r.id));
  if (rows.length === 0) throw new Error(`--cpu-rows: none of ${[...(ids ?? [])].join(',')} (rows: ${CPU_ROWS.map((r) => r.id).join(',')})`);
  const seconds = Number(a.duration ?? 5);
  const warmupSeconds = Number(a.warmup ?? 20);
  const warmupJobs = 30_000;
  const rounds = Number(a.rounds ?? 1);
  const redisBin = findOnPath('redis-server');
  const refBin = (a['reference-bin'] as string | undefined) ?? process.env.BENCH_REFERENCE_BIN;
  const flavors: [Flavor, string][] = [];
  if (!a['no-ours']) flavors.push(['ours', OUR_SERVER]);
  if (refBin) flavors.push(['reference', refBin]);
  else log('note: no reference Disque (--reference-bin PATH): the cpu rows run ours and the floor only');
  const ports = new Set<number>();
  const results: CpuResult[] = [];
  const show = (r: CpuResult): void =>
    log(
      `cpu · ${cpuRowTitle(rows.find((x) => x.id === r.row)!)} · ${r.flavor}: ${r.usPerJob.toFixed(1)} µs/job` +
        ` (${r.jobs} jobs, ${r.jobsPerSec.toFixed(0)} jobs/s, CPU ${r.cpuMs.toFixed(0)} ms of which kernel ${r.sysMs.toFixed(0)} ms${r.mainMs !== undefined ? `, main threads ${r.mainMs.toFixed(0)} ms` : ''}${r.redisCpuMs ? `, Redis ${r.redisCpuMs.toFixed(0)} ms` : ''})` +
        (r.errors ? `, ${r.errors} errors: ${r.errorSample ?? ''}` : ''),
    );
  for (const row of rows) {
    for (let round = 1; round <= rounds; round++) {
      for (const [flavor, bin] of flavors) {
        try {
          const r = await runCpuRow({ flavor, bin, redisBin, row, seconds, warmupSeconds, warmupJobs, bodySize: o.body, basePort: o.basePort, ports, status });
          results.push(r);
          show(r);
        } catch (e) {
          log(`cpu · ${row.id} · ${flavor}: FAILED: ${(e as Error).message}`);
        }
      }
      try {
        status(`cpu · ${row.id} · floor`);
        const r = await runCpuFloor(row, { seconds, warmupSeconds: Math.min(warmupSeconds, 2), bodySize: o.body, basePort: o.basePort, ports });
        results.push(r);
        show(r);
      } catch (e) {
        log(`cpu · ${row.id} · floor: FAILED: ${(e as Error).message}`);
      }
    }
  }
  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, Node ${process.versions.node}`,
    `each run: fresh servers, warmup until ${warmupJobs} jobs or ${warmupSeconds} s, ${seconds} s measured, ${o.body}-byte bodies, best (lowest µs/job) of ${rounds} round(s);` +
      ' every client repeats ADDJOB (REPLICATE R) → GETJOB NOHANG → ACKJOB, one request at a time',
    'µs/job: utime + stime of every server process (ours with persistence: with the redis-server that takes the journal, started here) between two moments with no job left on any node, ÷ jobs acked',
    'persistence: appendonly yes, appendfsync everysec (the reference: its AOF; ours: Redis)',
    'floor: bare Node processes (bench/floor.ts) exchanging the same messages per job over the same socket transport, with no work; persistence rows append each record to a Redis',
  ];
  const md = `# disque-ts CPU per job\n\n${header.join('  \n')}\n\n${cpuMarkdown(rows, results)}\n`;
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  const base = join(o.out, `cpu-${stamp}`);
  const json = JSON.stringify({ header, rows, results }, null, 2);
  writeFileSync(`${base}.json`, json);
  writeFileSync(`${base}.md`, md);
  writeFileSync(join(o.out, 'cpu-latest.json'), json);
  writeFileSync(join(o.out, 'cpu-latest.md'), md);
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write('\n' + md + '\n');
  log(`results: ${base}.md and .json`);
}

async function mainLoad(o: Opts, a: Record<string, string | boolean | undefined>): Promise<void> {
  if (o.pin && !pinSelf('1')) log('note: taskset failed, not pinning');
  const t0 = Date.now();
  const servers = await setupServers(o, a);
  const flavors = (['ours', 'reference', 'redis'] as const).filter((f) => servers.single.has(f));
  if (flavors.length === 0) throw new Error('no server to benchmark');
  const scs = scenarios(o);
  const runs: RunRecord[] = [];
  const memory: MemoryRecord[] = [];
  const clusterFlavors = flavors.filter((f) => f !== 'redis');
  // Fresh-server scenarios: only the Disque flavors we start from a binary.
  const freshFlavors = clusterFlavors.filter((f) => servers.binaries.has(f));
  const freshScs = scs.filter((s) => setupOf(s) !== null);
  if (freshScs.length > 0)
    for (const f of clusterFlavors)
      if (!freshFlavors.includes(f)) log(`note: ${FLAVOR_TITLE[f]} is not started here: skipping its AOF / registered-jobs scenarios`);

  // The servers a single-server scenario runs on: TLS rows on ours alone, if it has a TLS port.
  const flavorsOf = (sc: Scenario): Flavor[] => (sc.tls ? flavors.filter((f) => f === 'ours' && servers.tls) : flavors);

  // Count runs for the progress display.
  const singleRuns = scs.filter((s) => !s.cluster && setupOf(s) === null).reduce((k, sc) => k + flavorsOf(sc).length, 0) * o.rounds;
  const freshRuns = freshScs.length * o.rounds * freshFlavors.length;
  const clusterRuns = scs.filter((s) => s.cluster).length * clusterFlavors.length;
  const total = singleRuns + freshRuns + clusterRuns;
  let n = 0;

  const spec = (sc: Scenario, h: ServerHandle): LoadSpec => ({
    ...DEFAULT_SPEC,
    kind: h.kind,
    addr: h.addr,
    workload: sc.workload,
    conns: sc.conns,
    pipeline: sc.pipeline,
    durationSec: o.duration,
    warmupSec: o.warmup,
    bodySize: o.body,
    threads: o.threads,
    ...(h.pid ? { serverPids: [h.pid] } : {}),
  });

  // redis-benchmark drives the row with the spec's server, connections and pipeline.
  const benchmark = (sc: Scenario, s: LoadSpec, label: string): Promise<BenchmarkResult> =>
    runBenchmark({
      bin: o.redisBenchmark!,
      kind: s.kind,
      addr: s.addr,
      workload: sc.workload as BenchmarkWorkload,
      conns: sc.conns,
      pipeline: sc.pipeline,
      requests: requestsFor(sc.workload as BenchmarkWorkload, sc.pipeline, o.requests),
      bodySize: o.body,
      serverPids: s.serverPids ?? [],
      ...(o.pin ? { cpus: '1' } : {}),
      ...(sc.tls && servers.tls ? { tls: servers.tls } : {}),
      onProgress: (phase, sec) => status(`${label}  redis-benchmark ${phase} ${sec.toFixed(0)}s`),
    });

  const runOne = async (sc: Scenario, flavor: Flavor, round: number, s: LoadSpec): Promise<void> => {
    n++;
    const label = `[${n}/${total}] ${scenarioLabel(sc)} c${sc.conns} p${sc.pipeline} · ${FLAVOR_TITLE[flavor]}${o.rounds > 1 && !sc.cluster ? ` · round ${round}` : ''}`;
    let r: RunResult;
    try {
      r =
        sc.generator === 'redis-benchmark'
          ? await benchmark(sc, s, label)
          : await runLoad(s, (p) => {
              const rate = p.sec > 0 ? p.ops / p.sec : 0;
              const goal = p.phase === 'measure' ? `/${o.duration}s` : p.phase === 'warmup' ? `/${o.warmup}s` : 's';
              status(`${label}  ${p.phase} ${p.sec.toFixed(1)}${goal}  ${fmtRate(rate)} ${p.phase === 'drain' || p.phase === 'preload' ? 'jobs' : 'ops'}/s`);
            });
    } catch (e) {
      log(`${label}: FAILED: ${(e as Error).message}`);
      return;
    }
    runs.push({ scenario: sc.id, flavor, round, result: r });
    const v = 'verification' in r ? r.verification : undefined;
    log(
      `${label}: ${fmtRate(r.opsPerSec)} ops/s, p50 ${r.latency.p50Ms} ms, p99 ${r.latency.p99Ms} ms` +
        (v ? `, lost ${v.lost} dup ${v.duplicated}` : '') +
        ('check' in r && r.check ? `, ${r.check}` : '') +
        `, cpu gen ${r.generatorCpuPct}% srv ${r.serverCpuPct ?? '?'}%` +
        (r.warnings.length ? `  [${r.warnings.join('; ')}]` : ''),
    );
  };

  // One fresh server for a group of scenarios sharing a setup: the AOF on (our
  // server persists under a prefix of its own in Redis, deleted afterwards), or
  // `registered` jobs added first to another queue, where they stay.
  const runFresh = async (group: Scenario[], f: Flavor, round: number): Promise<void> => {
    const sc0 = group[0]!;
    const what = `${sc0.aof ? 'AOF' : `${fmtCount(sc0.registered!)} registered`} · ${FLAVOR_TITLE[f]}`;
    const prefix = `bench-${randomBytes(6).toString('hex')}:`;
    const args = !sc0.aof
      ? []
      : ['--appendonly', 'yes', '--appendfsync', 'everysec', ...(f === 'ours' ? ['--redis-url', `redis://${PERSIST_REDIS.host}:${PERSIST_REDIS.port}`, '--redis-key-prefix', prefix] : [])];
    const n0 = n;
    let h: ServerHandle | null = null;
    try {
      status(`${what}: starting a fresh server...`);
      h = await startServer(f, { bin: servers.binaries.get(f)!, port: await freePort(o.basePort, servers.ports), args, ...(o.pin ? { cpus: '0' } : {}) });
      if (sc0.registered) {
        const r = await fill(h.addr, {
          kind: h.kind,
          queue: `bench-registered-${randomBytes(4).toString('hex')}`,
          total: sc0.registered,
          bodySize: o.body,
          pidBase: 980_000,
          onProgress: (d) => status(`${what}: adding ${d.toLocaleString('en-US')}/${sc0.registered!.toLocaleString('en-US')} jobs`),
        });
        if (r.errors > 0) throw new Error(`adding the registered jobs: ${r.errors} errors, e.g. ${r.errorSamples[0]}`);
        log(`${what}${o.rounds > 1 ? ` · round ${round}` : ''}: ${r.added.toLocaleString('en-US')} jobs added in ${(r.elapsedMs / 1000).toFixed(1)} s`);
      }
      for (const sc of group) await runOne(sc, f, round, spec(sc, h));
    } catch (e) {
      log(`${what}: FAILED: ${(e as Error).message}`);
      n = n0 + group.length;
    } finally {
      await h?.stop();
      if (sc0.aof && f === 'ours')
        await deleteKeys(PERSIST_REDIS, prefix).catch((e: Error) => log(`note: could not delete the Redis keys ${prefix}*: ${e.message}`));
    }
  };

  try {
    for (const sc of scs.filter((s) => !s.cluster && setupOf(s) === null))
      for (let round = 1; round <= o.rounds; round++)
        for (const f of flavorsOf(sc)) await runOne(sc, f, round, spec(sc, servers.single.get(f)!));

    const setups = [...new Set(freshScs.map(setupOf))];
    for (let round = 1; round <= o.rounds; round++)
      for (const key of setups)
        for (const f of freshFlavors) await runFresh(freshScs.filter((s) => setupOf(s) === key), f, round);

    const clusterScs = scs.filter((s) => s.cluster);
    if (clusterScs.length > 0) {
      for (const f of clusterFlavors) {
        let nodes: ServerHandle[] | null = null;
        try {
          nodes = await clusterFor(f, o, servers);
        } catch (e) {
          log(`${FLAVOR_TITLE[f]} cluster: FAILED to start: ${(e as Error).message}`);
        }
        if (!nodes) {
          log(`note: no ${FLAVOR_TITLE[f]} cluster (start one from a binary, or --${f}-cluster h:p,h:p,h:p): skipping`);
          n += clusterScs.length;
          continue;
        }
        try {
          const pids = nodes.map((x) => x.pid).filter((x): x is number => x !== undefined);
          for (const sc of clusterScs) {
            const s: LoadSpec = { ...spec(sc, nodes[0]!), serverPids: pids };
            if (sc.workload === 'cross') s.consumeAddr = nodes[1]!.addr;
            await runOne(sc, f, 1, s);
          }
        } finally {
          for (const x of nodes) await x.stop();
        }
      }
    }

    if (o.only.has('memory')) {
      for (const f of flavors) {
        // A fresh server of our own when we can start one: earlier runs leave
        // heap and allocator state behind that would blur the measure.
        const bin = servers.binaries.get(f);
        let h = servers.single.get(f)!;
        let fresh: ServerHandle | null = null;
        try {
          if (bin) {
            status(`memory · ${FLAVOR_TITLE[f]}: starting a fresh server...`);
            fresh = await startServer(f, { bin, port: await freePort(o.basePort, servers.ports), ...(o.pin ? { cpus: '0' } : {}) });
            h = fresh;
          }
          const m = await measureMemory({
            kind: h.kind,
            addr: h.addr,
            ...(h.pid ? { pid: h.pid } : {}),
            jobs: o.memoryJobs,
            bodySize: o.body,
            cleanup: fresh === null,
            onProgress: (d) => status(`memory · ${FLAVOR_TITLE[f]}: ${d.toLocaleString('en-US')}/${o.memoryJobs.toLocaleString('en-US')} jobs`),
          });
          memory.push({ flavor: f, result: m });
          log(`memory · ${FLAVOR_TITLE[f]}: ${describeMemory(m).split('\n')[1]!.trim()}`);
        } catch (e) {
          log(`memory · ${FLAVOR_TITLE[f]}: FAILED: ${(e as Error).message}`);
        } finally {
          await fresh?.stop();
        }
      }
    }
  } finally {
    for (const h of servers.single.values()) await h.stop();
    servers.certs?.remove();
  }

  const summaries = summarize(scs, runs, flavors);
  const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
  const header = [
    `${new Date().toISOString()}, ${((Date.now() - t0) / 1000).toFixed(0)} s${o.quick ? ', --quick' : ''}`,
    `machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()} cores, Node ${process.versions.node}`,
    `servers: ${flavors.map((f) => `${FLAVOR_TITLE[f]} ${servers.single.get(f)!.owned ? '(started here)' : `at ${servers.single.get(f)!.addr.host}:${servers.single.get(f)!.addr.port}`}`).join(', ')}`,
    `each scenario: ${o.rounds} round(s) alternating servers${o.pin ? ', pinned (servers CPU 0, generator CPU 1)' : ''}, ${o.body}-byte bodies`,
    ...(scs.some((sc) => sc.generator === 'redis-benchmark')
      ? [
          `generator redis-benchmark (${o.redisBenchmark}): \`redis-benchmark -p PORT -c ${o.conns} -P PIPELINE -n N --csv COMMAND\`, N = ${fmtCount(o.requests)}` +
            ' (PING pipelined ×4, ADDJOB pipelined ×2, REPLICATE 3 plain ÷2), no warmup; ops/s = its rps, latencies from its CSV;' +
            ' consume = GETJOB NOHANG (Redis: RPOP) from a queue redis-benchmark filled first, no ACKJOB; each row\'s queue is deleted afterwards',
        ]
      : []),
    ...(scs.some((sc) => sc.generator === 'own')
      ? [
          `generator own (bench/load.ts): ${o.warmup}s warmup + ${o.duration}s measured, ${o.threads} thread(s), every job checked back (lost/duplicated);` +
            ' cycle/cross: half the connections produce, half consume, at most 10k jobs queued',
        ]
      : []),
    ...(servers.tls && scs.some((sc) => sc.tls)
      ? [
          `TLS rows: ours only (the reference has no TLS), the same server as the plain rows, also listening on a tls-port (${servers.tls.port}) with a throw-away CA and server certificate (P-256, openssl),` +
            ' tls-auth-clients no; redis-benchmark adds `--tls --cacert ca.crt` (no client certificate); queue checks over plain text',
        ]
      : []),
    'ops/s: PINGs, jobs added (produce, replicate), GETJOB NOHANG replies (consume: one job each), or jobs consumed and acknowledged (cycle, cross)',
    ...(freshScs.length
      ? [
          'AOF, registered: a fresh server per round (ours and the reference, started here); AOF = appendonly yes, appendfsync everysec' +
            ` (ours persists to Redis at ${PERSIST_REDIS.host}:${PERSIST_REDIS.port}); registered = jobs queued in another queue before the runs`,
        ]
      : []),
    'gen CPU: the generator\'s CPU (redis-benchmark\'s, or our own\'s) in % of a core; near 100% the generator, not the server, may be the limit (see docs/bench.md)',
  ];
  const md = markdown({ title: 'disque-ts benchmark', header, scenarios: scs, flavors, summaries, memory });
  mkdirSync(o.out, { recursive: true });
  const base = join(o.out, `bench-${stamp}${o.quick ? '-quick' : ''}`);
  const registered = registeredRatios(summaries);
  const tls = tlsRatios(summaries);
  const json = JSON.stringify({ options: { ...o, only: [...o.only] }, header, flavors, scenarios: scs, summaries, registered, tls, runs, memory }, null, 2);
  writeFileSync(`${base}.json`, json);
  writeFileSync(`${base}.md`, md + '\n');
  writeFileSync(join(o.out, 'latest.json'), json);
  writeFileSync(join(o.out, 'latest.md'), md + '\n');
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write('\n' + md + '\n');
  log(`results: ${base}.md and .json`);
}

main().catch((e: Error) => {
  log(`bench failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
