// The job store: every job and queue this node knows, the schedule that
// moves jobs through their life cycle, blocked consumers, and memory
// accounting. It is the reference's state machine for one node (README,
// "Disque state machine"); what it must tell other nodes or the journal goes
// out through StoreHooks, so the store itself has no sockets and no Redis,
// and time comes from an injected clock.
//
// Jobs are held off the garbage-collected heap (DESIGN.md) in the job table
// (job-table.ts: records, arena, ID index); queues and blocked clients are
// in the queue table (queue-table.ts); when each job is next looked at is
// the schedule's (schedule.ts). This file is what happens to jobs: their
// life cycle, processing the due ones, and memory pressure. Commands and
// messages see a job through a Job handle made for the occasion (job.ts).
// It stays one file of about 600 lines: each step of the life cycle reads
// and changes the three tables together, and reads best in one place.
import { Clock } from './clock.js';
import {
  Job,
  JobState,
  NEVER,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_BCAST_WILLQUEUE,
  JOB_FLAG_DELIVERED,
  JOB_FLAG_REGISTERED,
  JOB_WILLQUEUE_ADVANCE,
  JOB_GC_RETRY_MIN_PERIOD,
  JOB_GC_RETRY_MAX_PERIOD,
  type JobFields,
  type NodeIdList,
} from './job.js';
import { JOB_ID_LEN } from './job-id.js';
import { Queue, QueueWaiter, QUEUE_FLAG_PAUSED_IN, QUEUE_FLAG_PAUSED_OUT } from './queue.js';
import { QueueTable, QUEUE_MAX_IDLE_SECONDS } from './queue-table.js';
import { JobTable } from './job-table.js';
import { Schedule } from './schedule.js';
import { BlockSource } from './blocks.js';
import { Policies, type QueuePolicy, type PolicyRecord, type Allocation } from './policy.js';
import {
  JobRecords,
  PAGE_SHIFT,
  PAGE_MASK,
  JOB_RECORD_BYTES,
  REC_WORDS,
  W_FLAGS,
  W_HEAP,
  FLAGS_SHIFT,
} from './records.js';

/** Random desynchronization of re-queue times between nodes, in ms. */
export const TIME_ERROR = 500;
/** processJobs stops after about this long, letting clients in, and goes on 1 ms later. */
export const PROCESS_JOBS_BUDGET_MS = 2;
/** Bytes of the schedule per job: a time and a record number. */
const SCHEDULE_ENTRY_BYTES = 8;

/** What the store needs to tell the cluster and the journal. All optional. */
export interface StoreHooks {
  /** This node queued a job again: tell the other owners (QUEUED), counting a nack or a delivery. */
  queued?(job: Job, nack: boolean): void;
  /** This node will re-queue the job in JOB_WILLQUEUE_ADVANCE ms (WILLQUEUE). */
  willQueue?(job: Job): void;
  /** An acked job is due for a garbage collection attempt; may unregister it. */
  collect?(job: Job): void;
  /** A job still waiting for synchronous replication is being removed. */
  waitReplAborted?(job: Job): void;
  /** Federation: clients wait on an empty queue, or a queue just ran empty. */
  needJobs?(queue: Queue, reachedZero: boolean): void;
  /** A queue's policy held a delivery back: this node may ask the others for more of the limit. */
  policyHeld?(policy: QueuePolicy): void;
  /** Journal records. */
  persistJob?(job: Job): void;
  persistDelete?(job: Job): void;
  persistAck?(job: Job): void;
  /** A queue policy record changed (QPOLICY): persistence keeps the newest of each queue. */
  persistPolicy?(rec: PolicyRecord): void;
}

export interface StoreOptions {
  clock: Clock;
  /** This node's ID (a getter: CLUSTER RESET HARD changes it). */
  myId: () => string;
  hooks?: StoreHooks;
  /** Random source in [0,1) for time desynchronization; Math.random by default. */
  random?: () => number;
  maxmemory?: number;
}

/**
 * Jobs this node handled since start, for /metrics and the dashboard; each
 * queue keeps the same counts for itself. Counted where the event happens,
 * so summed over the cluster each job counts once: `added` when a new job
 * is first queued (on the node that queues it), `delivered` when a consumer
 * gets it, `nacked` per NACK, `acked` per ACKJOB or FASTACK of a job the
 * node receiving the command knows (noteAcked).
 */
export interface JobTotals {
  added: number;
  delivered: number;
  acked: number;
  nacked: number;
}

/** Memory of the store, in bytes, for INFO. */
export interface StoreMemory {
  /** Everything below but the free arena bytes: what maxmemory compares. */
  used: number;
  records: number;
  arenaUsed: number;
  arenaAllocated: number;
  arenaFree: number;
  arenaRounding: number;
  index: number;
  schedule: number;
  queues: number;
}

export class JobStore {
  readonly clock: Clock;
  hooks: StoreHooks;
  maxmemory: number;
  /** maxmemory-policy acks: under pressure, evict acked and delivered at-most-once jobs (noeviction: refuse). */
  evictOnPressure = true;
  peakMemory = 0;
  readonly totals: JobTotals = { added: 0, delivered: 0, acked: 0, nacked: 0 };

  /** Pages of records, the arena and the schedule come from here (see blocks.ts). */
  readonly blocks = new BlockSource();
  /** Every job's record, ID and body (what Job handles read). */
  readonly jobs: JobTable;
  readonly queues: QueueTable;
  private readonly schedule: Schedule;
  /** The job table's records, read directly on the schedule's paths. */
  readonly records: JobRecords;
  /** Queue policies (QPOLICY): rate limits and concurrency caps (policy.ts). */
  readonly policies = new Policies();

  private readonly myId: () => string;
  private readonly random: () => number;
  /** Jobs delivered only by this node share one node list. */
  private selfList: NodeIdList;
  private lastCtime = 0;
  private lastCseq = 0;
  /** Records due, a batch of a processJobs call. */
  private readonly due = new Uint32Array(256);

  constructor(opts: StoreOptions) {
    this.clock = opts.clock;
    this.myId = opts.myId;
    this.hooks = opts.hooks ?? {};
    this.random = opts.random ?? Math.random;
    this.maxmemory = opts.maxmemory ?? 1024 * 1024 * 1024;
    this.selfList = [this.myId()];
    this.jobs = new JobTable(this.blocks, (rec) => this.awakeOf(rec));
    this.records = this.jobs.records;
    this.queues = new QueueTable(this.clock, this.jobs.order);
    this.schedule = new Schedule(this.records, this.blocks, (gcRetry) => this.gcRetryTime(gcRetry));
  }



  // ------------------------------------------------------------------ jobs

  get jobCount(): number {
    return this.jobs.size;
  }

  get queueCount(): number {
    return this.queues.size;
  }

  /** Jobs in each state: wait-repl, active, queued, acked. */
  jobsByState(): readonly number[] {
    return this.jobs.byState;
  }

  /** The shared node list holding only this node. */
  selfOnly(): NodeIdList {
    const me = this.myId();
    if (this.selfList[0] !== me) this.selfList = [me];
    return this.selfList;
  }

  /** A creation time for a new job: now, with a counter for jobs in the same ms. */
  nextCtime(job: { ctime: number; cseq: number }): void {
    const now = this.clock.now();
    if (now > this.lastCtime) {
      this.lastCtime = now;
      this.lastCseq = 0;
    } else {
      this.lastCseq++;
    }
    job.ctime = this.lastCtime;
    job.cseq = this.lastCseq;
  }

  lookupJob(id: string): Job | undefined {
    const rec = this.jobs.find(id);
    return rec === 0 ? undefined : new Job(this.jobs, rec, id);
  }

  /**
   * Takes a job into the store (index, schedule, its queue name and nodes)
   * and returns its handle; null when a job with the same ID is here
   * already. The job is not queued: see enqueueJob. `fresh`: the ID is the
   * one generateJobId just made (ADDJOB), so it is taken packed as it was
   * made and not looked up: 144 random bits do not repeat.
   */
  addJob(fields: JobFields, fresh = false): Job | null {
    const id = fields.id;
    if (id.length !== JOB_ID_LEN) throw new RangeError('job IDs are 40 characters');
    // A queued job is in its queue's list: it enters the store active, then enqueueJob.
    if (fields.state === JobState.Queued) throw new RangeError('jobs enter the store unqueued');
    const rec = this.jobs.insert(fields, fresh);
    if (rec === 0) return null;
    const job = new Job(this.jobs, rec, id);
    this.updateAwakeTime(job);
    const used = this.usedMemory;
    if (used > this.peakMemory) this.peakMemory = used;
    return job;
  }

  /** Removes the job from the index, its queue and the schedule, and frees it. */
  unregisterJob(job: Job): boolean {
    if (!job.registered) return false;
    // A dummy acked job (ACKJOB of an ID this node never held) was never written.
    if (job.state >= JobState.Active && job.queue !== null) this.hooks.persistDelete?.(job);
    if (job.state === JobState.Queued) this.dequeueJob(job);
    if (job.state === JobState.WaitRepl) this.hooks.waitReplAborted?.(job);
    if (!job.registered) return true; // a hook removed it meanwhile
    if (this.policies.tracked !== 0) this.releaseDelivery(job);
    if (this.nackDelayed.size !== 0) this.nackDelayed.delete(job.rec);
    this.schedule.remove(job.rec);
    this.jobs.remove(job.rec);
    return true;
  }

  /** A random job. */
  randomJob(): Job | undefined {
    const rec = this.jobs.random(this.random);
    return rec === 0 ? undefined : new Job(this.jobs, rec);
  }

  /**
   * Schedules the job's next processing. Without `at`, the time follows from
   * the job: its expire time, its next re-queue (minus the WILLQUEUE advance)
   * or its next collection attempt, whichever comes first; the schedule
   * learns it at the end of the event (see schedule.ts).
   */
  updateAwakeTime(job: Job, at?: number): void {
    if (job.registered) this.schedule.update(job.rec, at);
  }

  /** Enters the awake times that changed during this event into the schedule. */
  flushSchedule(): void {
    this.schedule.flush();
  }

  /** Sets when the job is queued again here, unless it must never be (at-most-once). */
  updateRequeueTime(job: Job, qtime: number): void {
    if (job.retry === 0 || job.qtime === NEVER) return;
    job.qtime = qtime;
    this.updateAwakeTime(job);
  }

  /** Puts the job in its queue. False if already queued or never to be queued again. */
  enqueueJob(job: Job, nack: boolean): boolean {
    if (job.state === JobState.Queued || job.qtime === NEVER) return false;
    if (job.retry === 0 && job.flags & JOB_FLAG_DELIVERED) return false;
    const now = this.clock.now();
    // Queued again: the delivery it was counted for under a concurrency cap is over.
    if (this.policies.tracked !== 0) this.releaseDelivery(job);
    const renacked = this.nackDelayed.size !== 0 && this.nackDelayed.delete(job.rec);
    job.state = JobState.Queued;
    if (job.retry) {
      job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
      job.qtime = now + job.retry * 1000 + this.timeError(TIME_ERROR);
    } else {
      job.qtime = NEVER; // at-most-once: queued exactly once
    }
    // The first queueing needs no QUEUED message; later ones (re-queues
    // after a missing ack, NACKs) tell the other owners so they back off.
    let first = false;
    if (job.flags & JOB_FLAG_BCAST_QUEUED || nack) {
      this.hooks.queued?.(job, nack);
      if (nack) job.nacks++;
      else job.deliveries++;
      this.hooks.persistJob?.(job); // the counters survive a restart
    } else {
      job.flags |= JOB_FLAG_BCAST_QUEUED;
      first = true;
    }
    this.updateAwakeTime(job);
    const q = this.queueFor(job.queue!);
    q.jobs.insert(job.rec);
    q.atime = now;
    q.jobsIn++;
    if (first && !renacked) {
      q.added++;
      this.totals.added++;
    } else if (nack) {
      q.nacked++;
      this.totals.nacked++;
    }
    if (!(q.flags & QUEUE_FLAG_PAUSED_OUT)) this.queues.signalReady(q);
    return true;
  }

  /** Takes the job out of its queue (back to active). False if it was not queued. */
  dequeueJob(job: Job): boolean {
    if (job.state !== JobState.Queued) return false;
    const q = this.queues.lookup(job.queue!);
    if (!q) return false;
    q.jobs.remove(job.rec);
    job.state = JobState.Active;
    return true;
  }

  /**
   * NACK <id> DELAY: the job goes back to its queue in `delayMs`, not
   * before, counting one NACK now. Until then it is scheduled here as a
   * delayed ADDJOB is (queued then without a QUEUED message or another
   * count; the other owners were told by the caller and wait for their own
   * retry after the delay). False unless the job is active (delivered).
   */
  nackWithDelay(job: Job, delayMs: number): boolean {
    if (job.state !== JobState.Active || job.queue === null) return false;
    // As enqueueJob: an at-most-once job already delivered is never queued again.
    if (job.retry === 0 && job.flags & JOB_FLAG_DELIVERED) return false;
    if (this.policies.tracked !== 0) this.releaseDelivery(job);
    const now = this.clock.now();
    job.nacks++;
    const q = this.queueFor(job.queue);
    q.nacked++;
    this.totals.nacked++;
    this.nackDelayed.add(job.rec);
    job.flags = (job.flags & ~JOB_FLAG_BCAST_QUEUED) | JOB_FLAG_BCAST_WILLQUEUE;
    job.qtime = now + delayMs;
    this.updateAwakeTime(job);
    this.hooks.persistJob?.(job);
    return true;
  }

  /**
   * Another owner was NACKed with a delay (its NACKDELAY message): our copy
   * leaves our queue and waits for the delay plus its retry before we would
   * queue it, so no node queues it before the NACKing one. Counts the NACK.
   */
  nackedElsewhere(job: Job, delayMs: number): void {
    if (job.state === JobState.Queued) this.dequeueJob(job);
    if (this.policies.tracked !== 0) this.releaseDelivery(job);
    job.nacks++;
    if (job.retry !== 0) {
      job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
      job.qtime = this.clock.now() + delayMs + job.retry * 1000 + this.timeError(TIME_ERROR);
      this.updateAwakeTime(job);
    }
    this.hooks.persistJob?.(job);
  }

  /** Records of jobs NACKed with a delay and not queued again yet (forgotten when they go): queued then as if new. */
  private readonly nackDelayed = new Set<number>();

  /** Scheduled jobs of a queue: to be queued for the first time at their qtime (ADDJOB DELAY, NACK DELAY). */
  scheduledCount(queue: string): number {
    return this.jobs.scheduledCount(queue);
  }

  /** Queues with scheduled jobs here: [name, count]. */
  scheduledQueues(): [string, number][] {
    return this.jobs.scheduledQueues();
  }

  /** Up to `count` scheduled jobs of a queue from the `offset`-th, soonest first. */
  scheduledJobs(queue: string, offset: number, count: number): Job[] {
    return this.jobs.scheduledRange(queue, offset, count).map((rec) => new Job(this.jobs, rec));
  }

  /** The job holding `key` in `queue` (ADDJOB UNIQUE), unless acknowledged. */
  lookupUnique(queue: string, key: string): Job | undefined {
    const rec = this.jobs.unique.find(queue, key);
    return rec === 0 ? undefined : new Job(this.jobs, rec);
  }

  // ------------------------------------------------------------ policies

  /**
   * Pops the oldest job of a queue for a consumer, unless the queue's
   * policy holds it back: then null, the job stays queued, and the
   * consumer is served when the window or a slot frees (processJobs,
   * releaseDelivery) or this node's share grows (policyChanged).
   */
  deliverJob(q: Queue): Job | null | undefined {
    const p = this.policies.size !== 0 ? this.policies.get(q.name) : undefined;
    if (p === undefined) return this.fetchJob(q);
    if (q.jobs.size === 0) return undefined;
    const now = this.clock.now();
    if (!p.tryDeliver(now)) {
      this.hooks.policyHeld?.(p);
      return null;
    }
    const job = this.fetchJob(q);
    if (job) this.policies.delivered(p, job.rec, now);
    return job;
  }

  /**
   * A policy record, from QPOLICY here, another node or the persisted
   * state: taken if newer than ours (see Policies.apply), then persisted
   * and consumers served under the new limits. Returns whether it changed.
   */
  applyPolicy(rec: PolicyRecord, alloc: Allocation | null): boolean {
    const { changed, policy } = this.policies.apply(rec, alloc, this.myId());
    if (policy !== null) this.policyChanged(policy);
    if (!changed) return false;
    if (policy === null) {
      const q = this.queues.lookup(rec.queue);
      if (q !== undefined) this.queues.signalReady(q);
    }
    this.hooks.persistPolicy?.(rec);
    return true;
  }

  /** The job's delivery is over (acked, NACKed, re-queued here or elsewhere, gone): frees its concurrency slot. */
  releaseDelivery(job: Job): void {
    const p = this.policies.release(job.rec);
    if (p !== undefined && p.waiting) this.policyChanged(p);
  }

  /** The policy may deliver more (a slot or window freed, a grant, a new version): serve waiting consumers. */
  policyChanged(p: QueuePolicy): void {
    const q = this.queues.lookup(p.queue);
    if (q !== undefined) this.queues.signalReady(q);
  }

  /** Queues whose window freed since they held a delivery back: serve them; returns ms until the next one. */
  private policyWakeups(now: number): number {
    let next = Infinity;
    for (const p of this.policies.all()) {
      if (!p.waiting) continue;
      const at = p.nextFree(now);
      if (at <= now) {
        p.waiting = false;
        this.policyChanged(p);
      } else if (at < next) {
        next = at;
      }
    }
    return next - now;
  }

  /** Pops the oldest job of a queue for delivery to a consumer. */
  fetchJob(q: Queue): Job | undefined {
    const rec = q.jobs.shift();
    if (rec === 0) return undefined;
    const job = new Job(this.jobs, rec);
    job.state = JobState.Active;
    job.flags |= JOB_FLAG_DELIVERED;
    q.atime = this.clock.now();
    q.jobsOut++;
    this.totals.delivered++;
    return job;
  }

  /** A client acknowledged a job this node knows (ACKJOB, FASTACK): counted in totals and its queue. */
  noteAcked(job: Job): void {
    this.totals.acked++;
    const name = job.queue;
    if (name === null) return;
    const q = this.queues.lookup(name);
    if (q !== undefined) q.acked++;
  }

  /** Creation time (clock ms) of the queue's first (oldest) job, or -1 when the queue is empty. */
  oldestJobCtime(q: Queue): number {
    const rec = q.jobs.first();
    return rec === 0 ? -1 : this.jobs.ctimeOf(rec);
  }

  /** How long (ms) the queue's oldest job has existed, or -1 when the queue is empty. */
  oldestJobAge(q: Queue): number {
    const ctime = this.oldestJobCtime(q);
    return ctime < 0 ? -1 : Math.max(0, this.clock.now() - ctime);
  }

  /** Up to `count` jobs of the queue without taking them, oldest (or newest) first. */
  peekJobs(q: Queue, count: number, newestFirst: boolean): Job[] {
    return q.jobs.peek(count, newestFirst).map((rec) => new Job(this.jobs, rec));
  }

  /** Marks the job acknowledged and schedules its collection. */
  acknowledgeJob(job: Job): void {
    if (job.state === JobState.Acked) return;
    this.dequeueJob(job);
    if (this.policies.tracked !== 0) this.releaseDelivery(job);
    // Acknowledged: its UNIQUE key is free for a new job.
    this.jobs.unique.remove(job.rec);
    job.state = JobState.Acked;
    job.confirmed = null; // collection builds its own set of confirmations
    this.updateAwakeTime(job);
    this.hooks.persistAck?.(job);
  }

  nextGcRetryTime(job: Job): number {
    return this.gcRetryTime(job.gcRetry);
  }

  private gcRetryTime(gcRetry: number): number {
    let period = JOB_GC_RETRY_MIN_PERIOD * (1 << gcRetry);
    if (period > JOB_GC_RETRY_MAX_PERIOD) period = JOB_GC_RETRY_MAX_PERIOD;
    return this.clock.now() + period + this.timeError(TIME_ERROR);
  }

  /** A random offset in [-ms/2, ms/2) so nodes do not all act at once. */
  timeError(ms: number): number {
    return Math.floor(this.random() * ms) - (ms >> 1);
  }

  // -------------------------------------------------------------- schedule

  /**
   * Processes the jobs whose awake time has come: up to `max`, and for about
   * `budgetMs` at most, so a node with millions of jobs coming due at once
   * does not stop serving clients meanwhile. Returns how many ms until the
   * next one, between 1 and 100 (1 when some are already due). The budget
   * is wall-clock time: the node passes PROCESS_JOBS_BUDGET_MS; without it
   * (tests on a fake clock) every due job up to `max` is processed.
   */
  processJobs(max = 10_000, budgetMs = Infinity): number {
    this.schedule.flush();
    this.schedule.deferred = false;
    try {
      return this.runDueJobs(max, budgetMs);
    } finally {
      this.schedule.deferred = true;
    }
  }

  private runDueJobs(max: number, budgetMs: number): number {
    const now = this.clock.now();
    const deadline = performance.now() + budgetMs;
    const due = this.due;
    let done = 0;
    while (done < max && this.schedule.nextTime() <= now) {
      // A batch of due jobs is taken first: one scheduled again at a time
      // already passed while its batch runs waits for the next batch.
      const n = this.schedule.takeDue(now, due, Math.min(due.length, max - done));
      for (let i = 0; i < n; i++) {
        const rec = due[i]!;
        const u = this.records.u32[rec >>> PAGE_SHIFT]!;
        const o = (rec & PAGE_MASK) * REC_WORDS;
        // Gone, or scheduled again by another job's processing.
        if (!(u[o + W_FLAGS]! & (JOB_FLAG_REGISTERED << FLAGS_SHIFT)) || u[o + W_HEAP] !== 0) continue;
        this.processJob(new Job(this.jobs, rec), now);
      }
      done += n;
      if (performance.now() > deadline) break;
    }
    this.jobs.rehashFor(0.5);
    let next = this.schedule.nextTime() - now;
    if (this.policies.size !== 0) next = Math.min(next, this.policyWakeups(now));
    return next < 1 ? 1 : next > 100 ? 100 : next;
  }

  private processJob(job: Job, now: number): void {
    // Expired, whatever the state.
    if (job.etime <= now) {
      this.unregisterJob(job);
      return;
    }

    // Tell the other owners we are about to re-queue.
    if (
      (job.state === JobState.Active || job.state === JobState.Queued) &&
      job.flags & JOB_FLAG_BCAST_WILLQUEUE &&
      job.qtime !== NEVER &&
      job.qtime - JOB_WILLQUEUE_ADVANCE <= now
    ) {
      if (job.state !== JobState.Queued) this.hooks.willQueue?.(job);
      job.flags &= ~JOB_FLAG_BCAST_WILLQUEUE;
      this.updateAwakeTime(job);
    }

    // Queue delayed jobs the first time, and re-queue unacked ones.
    if (job.state === JobState.Active && job.qtime !== NEVER && job.qtime <= now) {
      const q = this.queues.lookup(job.queue!);
      if (job.retry !== 0 && q && q.flags & QUEUE_FLAG_PAUSED_IN) {
        // Paused in input: try again after another retry period. An
        // at-most-once delayed job is queued anyway or it would leak.
        this.updateRequeueTime(job, now + job.retry * 1000 + this.timeError(TIME_ERROR));
      } else {
        this.enqueueJob(job, false);
      }
    }

    // Still queued at its re-queue time: nothing to do but push it forward.
    if (job.state === JobState.Queued && job.qtime !== NEVER && job.qtime <= now && job.retry) {
      job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
      job.qtime = now + job.retry * 1000 + this.timeError(TIME_ERROR);
      this.updateAwakeTime(job);
    }

    if (job.state === JobState.Acked) {
      this.hooks.collect?.(job);
      if (job.registered) this.updateAwakeTime(job);
    }

    // Nothing scheduled it again: schedule from its fields so it is never
    // stuck at a time in the past.
    if (job.registered && !this.schedule.has(job.rec)) {
      let at = this.schedule.awakeTimeOf(job.rec);
      if (at <= now) at = now + 100;
      this.schedule.update(job.rec, at);
    }
  }

  // ------------------------------------------ queues (see queue-table.ts)

  lookupQueue(name: string): Queue | undefined {
    return this.queues.lookup(name);
  }

  /** The queue by name, created if missing. */
  queueFor(name: string): Queue {
    return this.queues.queueFor(name);
  }

  /** Samples random queues and drops idle ones (sooner under memory pressure); returns how many. */
  evictIdleQueues(): number {
    let maxIdle = QUEUE_MAX_IDLE_SECONDS;
    const level = this.memoryWarningLevel();
    if (level > 0) maxIdle /= 30;
    if (level > 1) maxIdle = 2;
    return this.queues.evictIdle(maxIdle, this.random);
  }

  /** Sets or clears pause flags; unpausing output serves blocked clients. */
  changePausedState(q: Queue, flag: number, set: boolean): void {
    this.queues.changePausedState(q, flag, set);
  }

  /** Applies a full pause state (the PAUSE message of another node). */
  setPausedState(name: string, flags: number): void {
    this.queues.setPausedState(name, flags);
  }

  /** Blocks the waiter on the named queues (creating them), in arrival order. */
  block(waiter: QueueWaiter, names: string[]): void {
    this.queues.block(waiter, names);
  }

  /** Removes the waiter from every queue it waits on. */
  unblock(waiter: QueueWaiter): void {
    this.queues.unblock(waiter);
  }

  /** Every blocked waiter (for LEAVING, which turns them away). */
  blockedWaiters(): QueueWaiter[] {
    return this.queues.blockedWaiters();
  }

  get blockedCount(): number {
    return this.queues.blockedCount;
  }

  /** Serves blocked clients from queues that received jobs, oldest client first. */
  serveBlockedClients(): void {
    this.queues.eachReady(this.serveQueue);
  }

  private readonly serveQueue = (q: Queue): void => {
    if (q.flags & QUEUE_FLAG_PAUSED_OUT) return;
    while (q.waiters !== null && q.waiters.length !== 0) {
      const waiter = q.waiters[0]!;
      const job = this.deliverJob(q);
      if (!job) break;
      if (q.jobs.size === 0) this.hooks.needJobs?.(q, true);
      this.queues.unblock(waiter);
      waiter.serve(job);
    }
  };

  // ---------------------------------------------------------------- memory

  /**
   * Bytes the store holds for jobs and queues: records, arena bytes of live
   * bodies (at their size class), the index, the schedule and queue lists.
   * maxmemory compares this, not the process RSS (see README).
   */
  get usedMemory(): number {
    return (
      this.records.live * JOB_RECORD_BYTES +
      this.jobs.arena.usedBytes +
      this.jobs.indexBytes +
      this.jobs.size * SCHEDULE_ENTRY_BYTES +
      this.queues.memoryBytes +
      this.jobs.scheduledChunks.chunkBytes
    );
  }

  memory(): StoreMemory {
    const used = this.usedMemory;
    if (used > this.peakMemory) this.peakMemory = used;
    return {
      used,
      records: this.records.live * JOB_RECORD_BYTES,
      arenaUsed: this.jobs.arena.usedBytes,
      arenaAllocated: this.jobs.arena.allocatedBytes,
      arenaFree: this.jobs.arena.freeBytes,
      arenaRounding: this.jobs.arena.roundingBytes,
      index: this.jobs.indexBytes,
      schedule: this.jobs.size * SCHEDULE_ENTRY_BYTES,
      queues: this.queues.memoryBytes,
    };
  }

  /** 0: fine; 1: over 75% of maxmemory; 2: over 95%. */
  memoryWarningLevel(): number {
    const unit = Math.floor(this.maxmemory / 100);
    const used = this.usedMemory;
    if (used > unit * 95) return 2;
    if (used > unit * 75) return 1;
    return 0;
  }

  /**
   * Over 95% of maxmemory, evicts what is safe to evict: acknowledged jobs,
   * at-most-once jobs already delivered, idle empty queues. Returns false if
   * memory could not be brought back under the limit (commands that would
   * use more memory are then refused).
   */
  freeMemoryIfNeeded(): boolean {
    if (this.memoryWarningLevel() < 2) return true;
    if (!this.evictOnPressure) return false;
    const target = Math.floor(this.maxmemory / 100) * 95;
    // The 1 ms budget runs on the store's clock: a fake clock in tests, so a
    // loaded machine cannot make the outcome depend on the wall clock.
    const start = this.clock.now();
    let notFreed = 0;
    while (this.usedMemory > target) {
      const job = this.randomJob();
      if (!job) {
        if (this.evictIdleQueues() === 0) return false;
      } else if (job.state === JobState.Acked || (job.retry === 0 && job.flags & JOB_FLAG_DELIVERED)) {
        this.unregisterJob(job);
        notFreed = 0;
      } else {
        notFreed++;
      }
      if (notFreed > 10 || this.clock.now() - start > 1) return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ scan

  /**
   * Cursor iteration over jobs (JSCAN): every job present for a whole
   * iteration is returned, some maybe twice (see JobIndex.scan). Returns the
   * next cursor, 0 when done.
   */
  scanJobs(cursor: number, visit: (job: Job) => void, steps: () => boolean): number {
    return this.jobs.scan(cursor, (rec) => visit(new Job(this.jobs, rec)), steps);
  }

  /**
   * Visits the jobs in record order from record `from` on, at most `max`
   * records; returns where to go on, 0 when every record was seen. A job
   * present from the first call to the last is visited exactly once
   * (records do not move); jobs added meanwhile may or may not be.
   */
  eachJob(from: number, max: number, visit: (job: Job) => void): number {
    return this.jobs.eachRecord(from, max, (rec) => visit(new Job(this.jobs, rec)));
  }

  /** Cursor iteration over queues (QSCAN): see QueueTable.scan. */
  scanQueues(cursor: number, visit: (q: Queue) => void, steps: () => boolean): number {
    return this.queues.scan(cursor, visit, steps);
  }

  allQueues(): readonly Queue[] {
    return this.queues.all();
  }

  /** Moves the index's resize along for about `ms` (called from the node's cron). */
  backgroundWork(ms: number): void {
    this.jobs.rehashFor(ms);
  }

  // ----------------------------------------------------------------- reset

  /** Drops every job and queue; blocked clients are answered as on timeout. */
  flushAll(): void {
    for (let from = 1; from !== 0; ) from = this.eachJob(from, 65536, (job) => this.unregisterJob(job));
    this.queues.flushAll();
    this.nackDelayed.clear();
    this.policies.clear();
  }

  /** When the schedule next looks at the record (Job.awake), NEVER if not scheduled. */
  awakeOf(rec: number): number {
    return this.schedule.timeOf(rec) ?? NEVER;
  }
}
