// What happened to every job of a fault run, and the verdict on it.
//
// Producers give each job a unique body. The history records every body a
// producer sent, the ID each acknowledged ADDJOB returned, every error, and
// every delivery GETJOB made. The checker then counts, Jepsen style:
//   lost        acknowledged (the producer got an ID) and never delivered,
//               after the faults healed and the queues drained: the only
//               outcome the at-least-once promise forbids;
//   duplicates  deliveries of a job beyond its first (allowed: at-least-once);
//   unknown     deliveries of jobs no producer got an ID for (an ADDJOB that
//               failed or timed out on the client's side, yet took effect);
//   phantom     deliveries whose body no producer ever sent (never allowed).
import { Histogram } from '../bench/histogram.js';

export class History {
  /** Bodies sent, acknowledged or not. */
  readonly sent = new Set<string>();
  /** ID -> body of every acknowledged ADDJOB. */
  readonly acked = new Map<string, string>();
  /** ID -> number of deliveries. */
  readonly deliveries = new Map<string, number>();
  /** ID -> ms (since the run's start) of its first delivery. */
  readonly firstDelivery = new Map<string, number>();
  readonly phantoms: string[] = [];
  readonly addErrors = new Map<string, number>();
  readonly consumerErrors = new Map<string, number>();
  /** ADDJOB latency while faults were being injected. */
  readonly faultLatency = new Histogram();
  ackedDuringFaults = 0;
  /** With tracing on: per job ID, what happened to it and when (for --trace-dups). */
  trace: Map<string, string[]> | null = null;
  /** Phase marks, ms since the start: faults begin, all healed, drained. */
  faultsFrom = 0;
  faultsUntil = 0;
  private readonly t0 = performance.now();

  now(): number {
    return performance.now() - this.t0;
  }

  get inFaultPhase(): boolean {
    const t = this.now();
    return this.faultsUntil === 0 ? this.faultsFrom > 0 && t >= this.faultsFrom : t >= this.faultsFrom && t < this.faultsUntil;
  }

  /** One timestamped line about a job, when tracing. */
  note(id: string, what: string): void {
    if (this.trace === null) return;
    let t = this.trace.get(id);
    if (t === undefined) this.trace.set(id, (t = []));
    t.push(`${(this.now() / 1000).toFixed(3)}s ${what}`);
  }

  addAcked(id: string, body: string, latencyMs: number, node = ''): void {
    this.acked.set(id, body);
    this.note(id, `added on ${node}`);
    if (this.inFaultPhase) {
      this.ackedDuringFaults++;
      this.faultLatency.recordMs(latencyMs);
    }
  }

  addFailed(kind: string): void {
    this.addErrors.set(kind, (this.addErrors.get(kind) ?? 0) + 1);
  }

  consumerFailed(kind: string): void {
    this.consumerErrors.set(kind, (this.consumerErrors.get(kind) ?? 0) + 1);
  }

  delivered(id: string, body: string, node = ''): void {
    this.note(id, `delivered by ${node}`);
    const n = this.deliveries.get(id) ?? 0;
    this.deliveries.set(id, n + 1);
    if (n === 0) this.firstDelivery.set(id, this.now());
    if (!this.sent.has(body)) this.phantoms.push(`${id} ${body.slice(0, 60)}`);
  }

  /** Acknowledged jobs not delivered yet. */
  undelivered(): string[] {
    const out: string[] = [];
    for (const id of this.acked.keys()) if (!this.deliveries.has(id)) out.push(id);
    return out;
  }
}

export interface Verdict {
  sent: number;
  acked: number;
  /** Acknowledged jobs delivered at least once. */
  delivered: number;
  lost: number;
  /** Up to 20 lost IDs, for the log. */
  lostIds: string[];
  duplicates: number;
  unknown: number;
  phantom: number;
  addErrors: Record<string, number>;
  consumerErrors: Record<string, number>;
  /** Acknowledged adds per second while faults were injected. */
  throughput: number;
  p99Ms: number;
  maxMs: number;
  /** From the last heal to the first delivery of the last acknowledged job; null when some never came. */
  drainMs: number | null;
}

/** Error kinds by the reply's first word (NOREPL, MISCONF, ...) or the client's failure. */
export function errorKind(e: unknown): string {
  const err = e as Error;
  const msg = String(err?.message ?? e);
  // A server's error reply starts with its code: NOREPL, MISCONF, LOADING...
  const word = /^-?([A-Z][A-Z_]{2,})\s/.exec(msg);
  if (word) return word[1]!;
  if (/timed out|timeout/i.test(msg)) return 'client-timeout';
  if (err?.name === 'ConnectionError' || /connection|ECONNREFUSED|ECONNRESET|EPIPE|closed/i.test(msg)) return 'connection';
  return 'other';
}

const record = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));

export function check(h: History): Verdict {
  let delivered = 0;
  let duplicates = 0;
  let unknown = 0;
  let lastFirst = 0;
  const lostIds: string[] = [];
  let lost = 0;
  for (const [id, n] of h.deliveries) {
    duplicates += n - 1;
    if (h.acked.has(id)) delivered++;
    else unknown++;
  }
  for (const id of h.acked.keys()) {
    const first = h.firstDelivery.get(id);
    if (first === undefined) {
      lost++;
      if (lostIds.length < 20) lostIds.push(id);
    } else if (first > lastFirst) lastFirst = first;
  }
  const faultSeconds = Math.max(1, h.faultsUntil - h.faultsFrom) / 1000;
  return {
    sent: h.sent.size,
    acked: h.acked.size,
    delivered,
    lost,
    lostIds,
    duplicates,
    unknown,
    phantom: h.phantoms.length,
    addErrors: record(h.addErrors),
    consumerErrors: record(h.consumerErrors),
    throughput: Math.round(h.ackedDuringFaults / faultSeconds),
    p99Ms: h.faultLatency.total > 0 ? h.faultLatency.quantileMs(0.99) : 0,
    maxMs: h.faultLatency.maxUs / 1000,
    drainMs: lost > 0 ? null : Math.max(0, Math.round(lastFirst - h.faultsUntil)),
  };
}
