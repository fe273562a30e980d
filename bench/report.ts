// Turning run results into the summary tables (markdown, printed and saved).
import type { LoadResult, Workload } from './load.js';
import type { MemoryResult } from './memory.js';
import type { BenchmarkResult, Generator } from './redis-benchmark.js';
import type { Flavor } from './servers.js';

/** One run's result: from our own generator (load.ts) or from redis-benchmark. */
export type RunResult = LoadResult | BenchmarkResult;

export interface RunRecord {
  scenario: string;
  flavor: Flavor;
  round: number;
  result: RunResult;
}

export interface MemoryRecord {
  flavor: Flavor;
  result: MemoryResult;
}

export interface Scenario {
  id: string;
  workload: Workload;
  /** What drives it: redis-benchmark (one command repeated) or our own generator (mixed workloads, checks). */
  generator: Generator;
  conns: number;
  pipeline: number;
  cluster: boolean;
  /** Runs on a fresh server per round with `appendonly yes`, `appendfsync everysec`. */
  aof?: boolean;
  /** Runs on a fresh server per round holding this many other jobs, queued in another queue. */
  registered?: number;
  /** redis-benchmark over TLS to the tls-port of the server the plain rows use (ours only: the reference has no TLS). */
  tls?: boolean;
}

/** The workload column: the workload and its setup, if any. */
export function scenarioLabel(sc: Scenario): string {
  if (sc.aof) return `${sc.workload}, AOF everysec`;
  if (sc.registered !== undefined) return `${sc.workload}, ${fmtCount(sc.registered)} registered`;
  if (sc.tls) return `${sc.workload}, TLS`;
  return sc.workload;
}

/** 1000 -> 1K, 1000000 -> 1M. */
export function fmtCount(n: number): string {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}K` : fmtOps(n);
}

export interface RegisteredRatio {
  workload: Workload;
  pipeline: number;
  flavor: Flavor;
  small: number;
  large: number;
  smallOpsPerSec: number;
  largeOpsPerSec: number;
  /** large / small: the issue's goal is at least 0.80. */
  ratio: number;
}

/** Throughput with many registered jobs over that with few, per workload, pipeline and server. */
export function registeredRatios(summaries: Summary[]): RegisteredRatio[] {
  const out: RegisteredRatio[] = [];
  const reg = summaries.filter((s) => s.scenario.registered !== undefined);
  for (const l of reg)
    for (const s of reg) {
      const a = l.scenario;
      const b = s.scenario;
      if (l.flavor !== s.flavor || a.workload !== b.workload || a.pipeline !== b.pipeline || a.registered! <= b.registered!) continue;
      if (s.opsPerSec === 0) continue;
      out.push({
        workload: a.workload,
        pipeline: a.pipeline,
        flavor: l.flavor,
        small: b.registered!,
        large: a.registered!,
        smallOpsPerSec: s.opsPerSec,
        largeOpsPerSec: l.opsPerSec,
        ratio: Math.round((l.opsPerSec / s.opsPerSec) * 1000) / 1000,
      });
    }
  return out;
}

export interface TlsRatio {
  workload: Workload;
  pipeline: number;
  flavor: Flavor;
  plainOpsPerSec: number;
  tlsOpsPerSec: number;
  /** tls / plain throughput. */
  ratio: number;
  plainP99Ms: number;
  tlsP99Ms: number;
}

/** Each TLS row against the plain row with the same workload, connections and pipeline, on the same server. */
export function tlsRatios(summaries: Summary[]): TlsRatio[] {
  const out: TlsRatio[] = [];
  for (const t of summaries) {
    if (!t.scenario.tls) continue;
    const a = t.scenario;
    const p = summaries.find(
      (s) =>
        s.flavor === t.flavor &&
        !s.scenario.tls && !s.scenario.aof && s.scenario.registered === undefined && !s.scenario.cluster &&
        s.scenario.workload === a.workload && s.scenario.conns === a.conns && s.scenario.pipeline === a.pipeline && s.scenario.generator === a.generator,
    );
    if (!p || p.opsPerSec === 0) continue;
    out.push({
      workload: a.workload,
      pipeline: a.pipeline,
      flavor: t.flavor,
      plainOpsPerSec: p.opsPerSec,
      tlsOpsPerSec: t.opsPerSec,
      ratio: Math.round((t.opsPerSec / p.opsPerSec) * 1000) / 1000,
      plainP99Ms: p.p99Ms,
      tlsP99Ms: t.p99Ms,
    });
  }
  return out;
}

export interface Summary {
  scenario: Scenario;
  flavor: Flavor;
  rounds: number;
  /** Mean over rounds, and the spread. */
  opsPerSec: number;
  minOpsPerSec: number;
  maxOpsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  generatorCpuPct: number;
  serverCpuPct?: number;
  serverWaitPct?: number;
  checked: number;
  lost: number;
  duplicated: number;
  unexpected: number;
  /** redis-benchmark rows: what the queue said afterwards (jobs added, fetched), each round. */
  queueChecks: string[];
  errors: number;
  warnings: string[];
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function summarize(scenarios: Scenario[], runs: RunRecord[], flavors: Flavor[]): Summary[] {
  const out: Summary[] = [];
  for (const sc of scenarios) {
    for (const f of flavors) {
      const rs = runs.filter((r) => r.scenario === sc.id && r.flavor === f).map((r) => r.result);
      if (rs.length === 0) continue;
      const ops = rs.map((r) => r.opsPerSec);
      const srv = rs.map((r) => r.serverCpuPct).filter((x): x is number => x !== undefined);
      const wait = rs.map((r) => r.serverWaitPct).filter((x): x is number => x !== undefined);
      const verified = rs.map((r) => ('verification' in r ? r.verification : undefined));
      const queueChecks = rs.flatMap((r) => ('check' in r && r.check !== undefined ? [r.check] : []));
      out.push({
        scenario: sc,
        flavor: f,
        rounds: rs.length,
        opsPerSec: Math.round(mean(ops)),
        minOpsPerSec: Math.min(...ops),
        maxOpsPerSec: Math.max(...ops),
        p50Ms: round2(mean(rs.map((r) => r.latency.p50Ms))),
        p99Ms: round2(mean(rs.map((r) => r.latency.p99Ms))),
        maxMs: round2(Math.max(...rs.map((r) => r.latency.maxMs))),
        generatorCpuPct: Math.max(...rs.map((r) => r.generatorCpuPct)),
        ...(srv.length ? { serverCpuPct: Math.round(mean(srv)) } : {}),
        ...(wait.length ? { serverWaitPct: Math.round(mean(wait)) } : {}),
        checked: verified.reduce((a, v) => a + (v?.expected ?? 0), 0),
        lost: verified.reduce((a, v) => a + (v?.lost ?? 0), 0),
        duplicated: verified.reduce((a, v) => a + (v?.duplicated ?? 0), 0),
        unexpected: verified.reduce((a, v) => a + (v?.unexpected ?? 0), 0),
        queueChecks,
        errors: rs.reduce((a, r) => a + r.errors, 0),
        warnings: [...new Set(rs.flatMap((r) => r.warnings.map((w) => w.replace(/[\d.]+%/g, '…%'))))],
      });
    }
  }
  return out;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export function fmtOps(n: number): string {
  return n.toLocaleString('en-US');
}

/** The commands column: what a scenario sends to Disque. */
function what(sc: Scenario): string {
  switch (sc.workload) {
    case 'ping':
      return 'PING';
    case 'produce':
      return 'ADDJOB';
    case 'consume':
      // redis-benchmark repeats one command: GETJOB NOHANG from a filled queue, no ACKJOB.
      return sc.generator === 'redis-benchmark' ? 'GETJOB NOHANG' : 'GETJOB+ACKJOB';
    case 'cycle':
      return 'ADDJOB → GETJOB+ACKJOB';
    case 'replicate':
      return 'ADDJOB REPLICATE 3';
    case 'cross':
      return 'ADDJOB node 1 → GETJOB+ACKJOB node 2';
  }
}
/** The same for Redis, where there is an equivalent. */
function redisWhat(sc: Scenario): string | undefined {
  const pop = sc.generator === 'redis-benchmark' || sc.pipeline > 1 ? 'RPOP' : 'BRPOP';
  switch (sc.workload) {
    case 'ping':
      return 'PING';
    case 'produce':
      return 'LPUSH';
    case 'consume':
      return pop;
    case 'cycle':
      return `LPUSH → ${pop}`;
    default:
      return undefined;
  }
}

export const FLAVOR_TITLE: Record<Flavor, string> = { ours: 'disque-ts', reference: 'Disque (C)', redis: 'Redis' };

export function table(head: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${head.join(' | ')} |`,
    `| ${a.map((x) => (x === 'l' ? ':--' : '--:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export function ratio(a: number | undefined, b: number | undefined): string {
  if (!a || !b) return '–';
  return `${(a / b).toFixed(2)}×`;
}

export interface ReportInput {
  title: string;
  header: string[];
  scenarios: Scenario[];
  flavors: Flavor[];
  summaries: Summary[];
  memory: MemoryRecord[];
}

export function markdown(inp: ReportInput): string {
  const { flavors, summaries } = inp;
  const get = (sc: Scenario, f: Flavor): Summary | undefined => summaries.find((s) => s.scenario.id === sc.id && s.flavor === f);
  // A server without a result for a row: the reference has no TLS to run a TLS row on.
  const missing = (sc: Scenario, f: Flavor): string => (sc.tls && f === 'reference' ? 'n/a (no TLS)' : '–');
  const out: string[] = [`# ${inp.title}`, '', ...inp.header.map((h) => `- ${h}`), ''];
  const hasOurs = flavors.includes('ours');

  // Throughput with ratios.
  const ratioCols: [Flavor, string][] = hasOurs
    ? flavors.filter((f) => f !== 'ours').map((f) => [f, `ours/${f === 'reference' ? 'ref' : f}`])
    : flavors.includes('reference') && flavors.includes('redis')
      ? [['redis', 'ref/redis']]
      : [];
  const base: Flavor | undefined = hasOurs ? 'ours' : flavors.includes('reference') ? 'reference' : undefined;
  const head = ['workload', 'commands', 'generator', 'conns', 'pipeline', ...flavors.map((f) => FLAVOR_TITLE[f]), ...ratioCols.map(([, t]) => t), 'gen CPU max'];
  out.push('## Throughput (ops/s, mean of rounds)', '');
  out.push(
    table(
      head,
      inp.scenarios
        .filter((sc) => flavors.some((f) => get(sc, f)))
        .map((sc) => {
          const redisCmd = redisWhat(sc);
          return [
            scenarioLabel(sc),
            what(sc) + (redisCmd && get(sc, 'redis') ? ` (Redis: ${redisCmd})` : ''),
            sc.generator,
            String(sc.conns),
            String(sc.pipeline),
            ...flavors.map((f) => {
              const s = get(sc, f);
              if (!s) return missing(sc, f);
              const spread = s.rounds > 1 ? ` (${fmtK(s.minOpsPerSec)}–${fmtK(s.maxOpsPerSec)})` : '';
              return `${fmtOps(s.opsPerSec)}${spread}`;
            }),
            ...ratioCols.map(([f]) => ratio(get(sc, base!)?.opsPerSec, get(sc, f)?.opsPerSec)),
            `${Math.max(...flavors.map((f) => get(sc, f)?.generatorCpuPct ?? 0))}%`,
          ];
        }),
      head.map((_, i) => (i < 3 ? 'l' : 'r')),
    ),
    '',
  );

  // redis-benchmark rows: its CSV's p50, p99 and max; ours: our histogram's. p99 ratio as perf-pair prints it.
  const p99Ratio = hasOurs && flavors.includes('reference');
  out.push('## Latency of the headline command (ms: p50 / p99 / max, mean of rounds)', '');
  out.push(
    table(
      ['workload', 'generator', 'conns', 'pipeline', ...flavors.map((f) => FLAVOR_TITLE[f]), ...(p99Ratio ? ['p99 ours/ref'] : [])],
      inp.scenarios
        .filter((sc) => flavors.some((f) => get(sc, f)))
        .map((sc) => [
          scenarioLabel(sc),
          sc.generator,
          String(sc.conns),
          String(sc.pipeline),
          ...flavors.map((f) => {
            const s = get(sc, f);
            return s ? `${s.p50Ms} / ${s.p99Ms} / ${s.maxMs}` : missing(sc, f);
          }),
          ...(p99Ratio ? [ratio(get(sc, 'ours')?.p99Ms, get(sc, 'reference')?.p99Ms)] : []),
        ]),
      ['l', 'l', ...flavors.map(() => 'r' as const), 'r', 'r', ...(p99Ratio ? ['r' as const] : [])],
    ),
    '',
  );

  out.push(
    '## Checks (all rounds): jobs checked / lost / duplicated (own generator) or what the queue held afterwards (redis-benchmark), errors, CPU (% of a core: generator / server, and the time the server was runnable but waiting for a core)',
    '',
  );
  const checkRows: string[][] = [];
  for (const sc of inp.scenarios)
    for (const f of flavors) {
      const s = get(sc, f);
      if (!s) continue;
      checkRows.push([
        `${scenarioLabel(sc)} p${sc.pipeline}`,
        FLAVOR_TITLE[f],
        sc.workload === 'ping'
          ? '–'
          : sc.generator === 'redis-benchmark'
            ? s.queueChecks.join('; ') || '–'
            : `${fmtOps(s.checked)} / ${s.lost} / ${s.duplicated}${s.unexpected ? ` (+${s.unexpected} unexpected)` : ''}`,
        String(s.errors),
        `${s.generatorCpuPct}% / ${s.serverCpuPct ?? '?'}%${s.serverWaitPct !== undefined ? ` (wait ${s.serverWaitPct}%)` : ''}`,
        s.warnings.join('; ') || '',
      ]);
    }
  out.push(table(['scenario', 'server', 'checked / lost / dup, or queue', 'errors', 'CPU gen / server', 'notes'], checkRows, ['l', 'l', 'r', 'r', 'r', 'l']), '');

  const reg = registeredRatios(summaries);
  if (reg.length) {
    out.push('## Registered jobs: throughput with many jobs registered ÷ with few (issue 7 goal: ≥ 0.80)', '');
    out.push(
      table(
        ['workload', 'pipeline', 'server', 'few', 'ops/s', 'many', 'ops/s', 'many ÷ few'],
        reg.map((r) => [
          r.workload,
          String(r.pipeline),
          FLAVOR_TITLE[r.flavor],
          fmtCount(r.small),
          fmtOps(r.smallOpsPerSec),
          fmtCount(r.large),
          fmtOps(r.largeOpsPerSec),
          r.ratio.toFixed(2),
        ]),
        ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
      ),
      '',
    );
  }

  const tls = tlsRatios(summaries);
  if (tls.length) {
    out.push('## TLS vs plain text, same server (redis-benchmark --tls to its tls-port; ops/s and p99 ms, mean of rounds)', '');
    out.push(
      table(
        ['workload', 'pipeline', 'server', 'plain ops/s', 'TLS ops/s', 'TLS ÷ plain', 'plain p99', 'TLS p99', 'p99 TLS ÷ plain'],
        tls.map((r) => [
          r.workload,
          String(r.pipeline),
          FLAVOR_TITLE[r.flavor],
          fmtOps(r.plainOpsPerSec),
          fmtOps(r.tlsOpsPerSec),
          r.ratio.toFixed(2),
          String(r.plainP99Ms),
          String(r.tlsP99Ms),
          ratio(r.tlsP99Ms, r.plainP99Ms),
        ]),
        ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
      '',
    );
  }

  if (inp.memory.length) {
    const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;
    out.push('## Memory: resident bytes per queued job', '');
    out.push(
      table(
        ['server', 'jobs', 'body', 'RSS before', 'RSS after', 'bytes/job', 'ours ÷ this', 'fill rate (jobs/s)'],
        inp.memory.map((m) => {
          const ours = inp.memory.find((x) => x.flavor === 'ours')?.result.bytesPerJob;
          return [
            FLAVOR_TITLE[m.flavor],
            fmtOps(m.result.jobs),
            `${m.result.bodySize} B`,
            mb(m.result.rssBeforeBytes),
            mb(m.result.rssAfterBytes),
            String(m.result.bytesPerJob),
            m.flavor === 'ours' ? '' : ratio(ours, m.result.bytesPerJob),
            fmtOps(m.result.addPerSec),
          ];
        }),
      ),
      '',
    );
  }
  return out.join('\n');
}

function fmtK(n: number): string {
  return n >= 1e4 ? `${Math.round(n / 1e3)}k` : `${(n / 1e3).toFixed(1)}k`;
}
