// When each job is next looked at: one heap of record numbers by time
// (awake-heap.ts) instead of a timer per job. A job's awake time follows
// from its fields (expire time, next re-queue minus the WILLQUEUE advance,
// next collection attempt); the store's processJobs takes the due ones.
//
// Changes made during an event are entered at its end (flush), once per
// job however often its times changed meanwhile: an ACKJOB that collects
// the job at once, or an ADDJOB that queues it, then moves no heap entry.
import { JobState, NEVER, JOB_FLAG_BCAST_WILLQUEUE, JOB_FLAG_AWAKE_PENDING, JOB_WILLQUEUE_ADVANCE } from './job.js';
import { AwakeHeap, REBASE_AFTER } from './awake-heap.js';
import type { BlockSource } from './blocks.js';
import { JobRecords, PAGE_SHIFT, PAGE_MASK, REC_WORDS, F_ETIME, F_QTIME, W_FLAGS, W_STATE, FLAGS_SHIFT, STATE_SHIFT, GC_SHIFT } from './records.js';

/** Pending changes are entered at once past this many (a long load, say). */
const PENDING_FLUSH_AT = 65536;

export class Schedule {
  private readonly heap: AwakeHeap;
  /** Records whose awake time changed this event (see update). */
  private pending = new Uint32Array(1024);
  private pendingCount = 0;
  /** Off while the store processes due jobs: their changes go to the heap at once. */
  deferred = true;

  /** `gcRetryTime`: when an acked job with that many collection attempts is tried again. */
  constructor(
    private readonly records: JobRecords,
    blocks: BlockSource,
    private readonly gcRetryTime: (gcRetry: number) => number,
  ) {
    this.heap = new AwakeHeap(records, blocks);
  }

  /** Schedules the record at `at`, or (without it) at the time its fields give. */
  update(rec: number, at?: number): void {
    if (at !== undefined || !this.deferred) {
      this.heap.set(rec, at ?? this.awakeTimeOf(rec));
      return;
    }
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const w = u[o + W_FLAGS]!;
    if (w & (JOB_FLAG_AWAKE_PENDING << FLAGS_SHIFT)) return;
    if (this.pendingCount === this.pending.length) {
      if (this.pendingCount >= PENDING_FLUSH_AT) {
        this.flush();
      } else {
        const bigger = new Uint32Array(this.pending.length * 2);
        bigger.set(this.pending);
        this.pending = bigger;
      }
    }
    u[o + W_FLAGS] = u[o + W_FLAGS]! | (JOB_FLAG_AWAKE_PENDING << FLAGS_SHIFT);
    this.pending[this.pendingCount++] = rec;
  }

  /** Enters the awake times that changed since the last flush into the heap. */
  flush(): void {
    const n = this.pendingCount;
    if (n === 0) return;
    this.pendingCount = 0;
    const pending = this.pending;
    for (let i = 0; i < n; i++) {
      const rec = pending[i]!;
      const u = this.records.u32[rec >>> PAGE_SHIFT]!;
      const o = (rec & PAGE_MASK) * REC_WORDS;
      const w = u[o + W_FLAGS]!;
      // Freed since (flags cleared), or already entered (listed twice).
      if (!(w & (JOB_FLAG_AWAKE_PENDING << FLAGS_SHIFT))) continue;
      u[o + W_FLAGS] = w & ~(JOB_FLAG_AWAKE_PENDING << FLAGS_SHIFT);
      this.heap.set(rec, this.awakeTimeOf(rec));
    }
  }

  /** The record's next awake time from its fields, read from its record. */
  awakeTimeOf(rec: number): number {
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const f = this.records.f64[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    // Times are in ms here, so the job can be looked at right at its expire time.
    let at = f[(o >> 1) + F_ETIME]!;
    const state = (u[o + W_STATE]! >>> STATE_SHIFT) & 3;
    if (state === JobState.Acked) {
      const gc = this.gcRetryTime((u[o + W_STATE]! >>> GC_SHIFT) & 15);
      if (gc < at) at = gc;
    } else if (state === JobState.Active || state === JobState.Queued) {
      let qt = f[(o >> 1) + F_QTIME]!;
      if (qt !== NEVER) {
        if ((u[o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_BCAST_WILLQUEUE) qt -= JOB_WILLQUEUE_ADVANCE;
        if (qt < at) at = qt;
      }
    }
    return at;
  }

  /** When the record is scheduled, after entering pending changes; undefined if it is not. */
  timeOf(rec: number): number | undefined {
    this.flush();
    return this.heap.timeOf(rec);
  }

  /** Whether the heap holds the record (pending changes not counted). */
  has(rec: number): boolean {
    return this.heap.timeOf(rec) !== undefined;
  }

  remove(rec: number): void {
    this.heap.remove(rec);
  }

  /** Moves up to `max` records due at `now` into `due`; returns how many. */
  takeDue(now: number, due: Uint32Array, max: number): number {
    if (now - this.heap.base > REBASE_AFTER) this.heap.rebase(now);
    const heap = this.heap;
    let n = 0;
    while (n < max && heap.peekTime() <= now) due[n++] = heap.pop();
    return n;
  }

  /** The earliest awake time (Infinity when nothing is scheduled). */
  nextTime(): number {
    return this.heap.peekTime();
  }
}
