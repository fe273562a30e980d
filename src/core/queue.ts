// A named queue of jobs on this node, with the clients blocked on it and the
// federation bookkeeping (which nodes recently gave us jobs for it, and how
// fast we import them).
import type { Job } from './job.js';
import { JobList, type ChunkPool, type RecordOrder } from './job-list.js';

export const QUEUE_FLAG_PAUSED_IN = 1 << 0;
export const QUEUE_FLAG_PAUSED_OUT = 1 << 1;
export const QUEUE_FLAG_PAUSED_ALL = QUEUE_FLAG_PAUSED_IN | QUEUE_FLAG_PAUSED_OUT;

/** Something blocked waiting for jobs on one or more queues (a GETJOB client). */
export interface QueueWaiter {
  /** Queues it waits on; maintained by the store while blocked, else null. */
  blockedOn: Queue[] | null;
  /** A job was fetched for it. The store has already unblocked it. */
  serve(job: Job): void;
  /** Its queues were dropped (DEBUG FLUSHALL): answer as on timeout. */
  flushed(): void;
  /** The wait is refused with an error reply (the node started leaving). */
  refuse(error: string): void;
}

/** Import rate is measured over at most this window. */
export const IMPORT_RATE_WINDOW = 5000;

export class Queue {
  /** The queued jobs' records, in queue order. */
  readonly jobs: JobList;
  flags = 0;
  /** Blocked clients in arrival order, or null when none. */
  waiters: QueueWaiter[] | null = null;
  /** Creation and last access time, clock-relative ms. */
  ctime: number;
  atime: number;
  /** Jobs queued here, re-queues included (QSTAT jobs-in). */
  jobsIn = 0;
  /** Jobs delivered to consumers (QSTAT jobs-out). */
  jobsOut = 0;
  /** /metrics and the dashboard (see JobStore.totals): new jobs queued, NACKs, client acks. */
  added = 0;
  nacked = 0;
  acked = 0;

  // Federation (see the reference's README, "Cluster messages related to
  // nodes federation").
  needjobsBcastTime = 0;
  needjobsAdhocTime = 0;
  needjobsBcastAttempt = 0;
  needjobsAdhocAttempt = 0;
  /** Nodes that answered NEEDJOBS with jobs: node ID -> time of last answer. */
  responders: Map<string, number> | null = null;
  curImportTime: number;
  prevImportTime: number;
  curImportCount = 0;
  prevImportCount = 0;

  /** Position in the store's dense queue array, -1 when destroyed. */
  slot = -1;

  constructor(
    readonly name: string,
    now: number,
    order: RecordOrder,
    pool: ChunkPool,
  ) {
    this.jobs = new JobList(order, pool);
    this.ctime = now;
    this.atime = now;
    this.curImportTime = now;
    this.prevImportTime = now;
  }

  get length(): number {
    return this.jobs.size;
  }

  get blockedCount(): number {
    return this.waiters === null ? 0 : this.waiters.length;
  }

  get pausedIn(): boolean {
    return (this.flags & QUEUE_FLAG_PAUSED_IN) !== 0;
  }

  get pausedOut(): boolean {
    return (this.flags & QUEUE_FLAG_PAUSED_OUT) !== 0;
  }

  /** Rough jobs/second imported from other nodes lately (0 if none for 5 s). */
  importRate(now: number): number {
    if (now - this.curImportTime > IMPORT_RATE_WINDOW) return 0;
    let elapsed = now - this.prevImportTime;
    if (elapsed < 50) elapsed = 50; // never overestimate
    return Math.ceil(((this.prevImportCount + this.curImportCount) * 1000) / elapsed);
  }

  /** Counts one imported job in the current one-second bucket. */
  countImport(now: number): void {
    if (now - this.curImportTime > 1000) {
      this.prevImportTime = this.curImportTime;
      this.prevImportCount = this.curImportCount;
      this.curImportTime = now;
      this.curImportCount = 0;
    }
    this.curImportCount++;
  }
}

export function pausedStateName(flags: number): 'all' | 'in' | 'out' | 'none' {
  const f = flags & QUEUE_FLAG_PAUSED_ALL;
  if (f === QUEUE_FLAG_PAUSED_ALL) return 'all';
  if (f === QUEUE_FLAG_PAUSED_IN) return 'in';
  if (f === QUEUE_FLAG_PAUSED_OUT) return 'out';
  return 'none';
}
