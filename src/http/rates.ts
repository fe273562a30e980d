// The dashboard's charts: one sample a second for the last ten minutes,
// kept by each node and taken by its cron: jobs added, delivered and acked
// per second (from JobStore.totals), and the lengths of the 20 longest
// queues. Each queue's added and acked rates over the last second come from
// the same pass, for /api/queues.
import type { JobStore } from '../core/store.js';
import type { Queue } from '../core/queue.js';

/** Samples kept: ten minutes at one a second. */
export const RATE_SAMPLES = 600;
/** Queues whose lengths each sample keeps. */
export const TOP_QUEUES = 20;

export interface RatesSeries {
  t: number[];
  added: number[];
  delivered: number[];
  acked: number[];
  /** Queue name -> its length at each sample (null when it was not among the longest then). */
  queues: Record<string, (number | null)[]>;
}

export class Rates {
  private readonly t = new Float64Array(RATE_SAMPLES);
  private readonly added = new Float64Array(RATE_SAMPLES);
  private readonly delivered = new Float64Array(RATE_SAMPLES);
  private readonly acked = new Float64Array(RATE_SAMPLES);
  private readonly top: (Map<string, number> | null)[] = new Array<Map<string, number> | null>(RATE_SAMPLES).fill(null);
  /** Next slot to write; `count` samples are valid, ending just before it. */
  private next = 0;
  private count = 0;
  private last = { t: 0, added: 0, delivered: 0, acked: 0 };
  /** Per queue: its counts at the last sample, and its rates over the last second. */
  private readonly perQueue = new Map<Queue, { added: number; acked: number; addedPerSec: number; ackedPerSec: number }>();

  constructor(private readonly store: JobStore) {}

  /** Takes one sample (the node's cron calls it about once a second). `now`: Unix ms. */
  sample(now: number): void {
    const totals = this.store.totals;
    const last = this.last;
    const secs = last.t === 0 ? 0 : (now - last.t) / 1000;
    const rate = (cur: number, prev: number) => (secs > 0 ? Math.max(0, cur - prev) / secs : 0);
    const i = this.next;
    this.t[i] = Math.floor(now / 1000);
    this.added[i] = rate(totals.added, last.added);
    this.delivered[i] = rate(totals.delivered, last.delivered);
    this.acked[i] = rate(totals.acked, last.acked);
    this.top[i] = this.sampleQueues(secs);
    this.last = { t: now, added: totals.added, delivered: totals.delivered, acked: totals.acked };
    this.next = (i + 1) % RATE_SAMPLES;
    if (this.count < RATE_SAMPLES) this.count++;
  }

  /** One pass over the queues: the longest ones, and each queue's rates. */
  private sampleQueues(secs: number): Map<string, number> {
    const longest: Queue[] = [];
    let shortest = 0; // length of the shortest among `longest` once full
    const perQueue = this.perQueue;
    for (const q of this.store.allQueues()) {
      let r = perQueue.get(q);
      if (r === undefined) {
        r = { added: q.added, acked: q.acked, addedPerSec: 0, ackedPerSec: 0 };
        perQueue.set(q, r);
      } else if (secs > 0) {
        r.addedPerSec = (q.added - r.added) / secs;
        r.ackedPerSec = (q.acked - r.acked) / secs;
        r.added = q.added;
        r.acked = q.acked;
      }
      const len = q.length;
      if (len === 0 || (longest.length === TOP_QUEUES && len <= shortest)) continue;
      if (longest.length === TOP_QUEUES) {
        let at = 0;
        for (let k = 1; k < longest.length; k++) if (longest[k]!.length < longest[at]!.length) at = k;
        longest[at] = q;
      } else {
        longest.push(q);
      }
      if (longest.length === TOP_QUEUES) {
        shortest = Infinity;
        for (const x of longest) if (x.length < shortest) shortest = x.length;
      }
    }
    for (const q of perQueue.keys()) if (q.slot < 0) perQueue.delete(q); // dropped queues
    return new Map(longest.map((q) => [q.name, q.length]));
  }

  /** The queue's added and acked jobs per second over the last sampled second. */
  queueRates(q: Queue): { addedPerSec: number; ackedPerSec: number } {
    const r = this.perQueue.get(q);
    return r === undefined ? { addedPerSec: 0, ackedPerSec: 0 } : { addedPerSec: r.addedPerSec, ackedPerSec: r.ackedPerSec };
  }

  /** The samples, oldest first. */
  series(): RatesSeries {
    const out: RatesSeries = { t: [], added: [], delivered: [], acked: [], queues: {} };
    const n = this.count;
    const start = (this.next - n + RATE_SAMPLES) % RATE_SAMPLES;
    const names = new Set<string>();
    for (let k = 0; k < n; k++) for (const name of this.top[(start + k) % RATE_SAMPLES]!.keys()) names.add(name);
    for (const name of names) out.queues[name] = [];
    for (let k = 0; k < n; k++) {
      const i = (start + k) % RATE_SAMPLES;
      out.t.push(this.t[i]!);
      out.added.push(round(this.added[i]!));
      out.delivered.push(round(this.delivered[i]!));
      out.acked.push(round(this.acked[i]!));
      const top = this.top[i]!;
      for (const name of names) out.queues[name]!.push(top.get(name) ?? null);
    }
    return out;
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * Sums several nodes' series (/api/rates without local=1), second by second.
 * A node's sample covers the seconds since its previous one (its cron may
 * skip a second), so a second a node has no sample for takes that node's
 * next sample: a skipped second is not a dip in the sum. The sum ends at the
 * newest second every node has sampled, so its last point is never a
 * partial sum.
 */
export function sumSeries(all: RatesSeries[]): RatesSeries {
  const live = all.filter((s) => s.t.length > 0);
  const out: RatesSeries = { t: [], added: [], delivered: [], acked: [], queues: {} };
  if (live.length === 0) return out;
  const end = Math.min(...live.map((s) => s.t[s.t.length - 1]!));
  const start = Math.max(end - RATE_SAMPLES + 1, Math.min(...live.map((s) => s.t[0]!)));
  for (let sec = start; sec <= end; sec++) out.t.push(sec);
  const n = out.t.length;
  out.added = new Array<number>(n).fill(0);
  out.delivered = new Array<number>(n).fill(0);
  out.acked = new Array<number>(n).fill(0);
  for (const s of live) {
    let k = 0;
    for (let i = 0; i < n; i++) {
      const sec = out.t[i]!;
      while (k < s.t.length && s.t[k]! < sec) k++;
      // Before the node's first sample it had nothing to say; k is its covering sample.
      if (k === s.t.length || sec < s.t[0]!) continue;
      out.added[i]! += s.added[k] ?? 0;
      out.delivered[i]! += s.delivered[k] ?? 0;
      out.acked[i]! += s.acked[k] ?? 0;
      for (const [name, lens] of Object.entries(s.queues)) {
        const len = lens[k];
        if (len === null || len === undefined) continue;
        const series = (out.queues[name] ??= new Array<number | null>(n).fill(null));
        series[i] = (series[i] ?? 0) + len;
      }
    }
  }
  for (const key of ['added', 'delivered', 'acked'] as const) out[key] = out[key].map(round);
  return out;
}
