// Printing fault-run results: a line per run, and a table per mode with our
// server and the reference side by side.
import type { RunResult } from './run.js';
import type { Flavor } from './processes.js';
import type { Mode } from './schedule.js';

const errs = (m: Record<string, number>): string =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

export function resultLine(r: RunResult): string {
  const v = r.verdict;
  const drain = v.drainMs === null ? 'never' : `${(v.drainMs / 1000).toFixed(1)}s`;
  return (
    `${r.flavor} ${r.mode} seed ${r.seed}: faults ${r.faults}, acked ${v.acked}, delivered ${v.delivered}, LOST ${v.lost}, ` +
    `duplicates ${v.duplicates}, unknown ${v.unknown}, phantom ${v.phantom}, add errors {${errs(v.addErrors)}}, ` +
    `consumer errors {${errs(v.consumerErrors)}}, adds/s under faults ${v.throughput}, p99 ${v.p99Ms.toFixed(1)} ms, ` +
    `max ${v.maxMs.toFixed(0)} ms, drain ${drain}`
  );
}

interface Totals {
  runs: number;
  faults: number;
  acked: number;
  lost: number;
  duplicates: number;
  unknown: number;
  phantom: number;
  addErrors: number;
  throughput: number;
  p99: number[];
  drainMax: number | null;
}

function totals(rs: RunResult[]): Totals | null {
  if (rs.length === 0) return null;
  const sum = (f: (r: RunResult) => number): number => rs.reduce((a, r) => a + f(r), 0);
  const drains = rs.map((r) => r.verdict.drainMs);
  return {
    runs: rs.length,
    faults: sum((r) => r.faults),
    acked: sum((r) => r.verdict.acked),
    lost: sum((r) => r.verdict.lost),
    duplicates: sum((r) => r.verdict.duplicates),
    unknown: sum((r) => r.verdict.unknown),
    phantom: sum((r) => r.verdict.phantom),
    addErrors: sum((r) => Object.values(r.verdict.addErrors).reduce((a, b) => a + b, 0)),
    throughput: Math.round(sum((r) => r.verdict.throughput) / rs.length),
    p99: rs.map((r) => r.verdict.p99Ms).sort((a, b) => a - b),
    drainMax: drains.some((d) => d === null) ? null : Math.max(...(drains as number[])),
  };
}

const median = (xs: number[]): number => (xs.length === 0 ? 0 : xs[Math.floor((xs.length - 1) / 2)]!);

/** One row per mode; with reference runs, "ours / ref" in each cell and the throughput ratio. */
export function summaryTable(results: RunResult[], markdown: boolean): string {
  const modes = [...new Set(results.map((r) => r.mode))];
  const withRef = results.some((r) => r.flavor === 'reference');
  const head = [
    'mode',
    'runs',
    'faults',
    'acked',
    'lost',
    'duplicates',
    'dups per 10k acked',
    'unknown',
    'add errors',
    'adds/s under faults',
    ...(withRef ? ['ratio'] : []),
    'p99 ms (median run)',
    'drain s (worst)',
  ];
  const rows: string[][] = [];
  for (const mode of modes) {
    const of = (flavor: Flavor, m: Mode): Totals | null => totals(results.filter((r) => r.flavor === flavor && r.mode === m));
    const o = of('ours', mode)!;
    const ref = withRef ? of('reference', mode) : null;
    const cell = (f: (t: Totals) => string): string => (withRef ? `${f(o)} / ${ref ? f(ref) : 'n/a'}` : f(o));
    const drain = (t: Totals): string => (t.drainMax === null ? 'never' : (t.drainMax / 1000).toFixed(1));
    rows.push([
      mode,
      String(o.runs),
      cell((t) => String(t.faults)),
      cell((t) => String(t.acked)),
      cell((t) => String(t.lost + t.phantom)),
      cell((t) => String(t.duplicates)),
      cell((t) => (t.acked > 0 ? ((t.duplicates * 10_000) / t.acked).toFixed(1) : 'n/a')),
      cell((t) => String(t.unknown)),
      cell((t) => String(t.addErrors)),
      cell((t) => String(t.throughput)),
      ...(withRef ? [ref && ref.throughput > 0 ? (o.throughput / ref.throughput).toFixed(2) : 'n/a'] : []),
      cell((t) => median(t.p99).toFixed(1)),
      cell(drain),
    ]);
  }
  if (markdown) {
    const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
    return [line(head), line(head.map((_, i) => (i === 0 ? ':--' : '--:'))), ...rows.map(line)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), ...rows.map(fmt)].join('\n');
}
