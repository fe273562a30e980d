// The job store: every job and queue this node knows, the schedule that
// moves jobs through their life cycle, blocked consumers, and memory
// accounting. It is the reference's state machine for one node (README,
// "Disque state machine"); what it must tell other nodes or the journal goes
// out through StoreHooks, so the store itself has no sockets and no Redis,
// and time comes from an injected clock.
import { Clock } from './clock.js';
import {
  Job,
  JobState,
  NEVER,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_BCAST_WILLQUEUE,
  JOB_FLAG_DELIVERED,
  JOB_FLAG_REGISTERED,
  JOB_FLAG_AWAKE_PENDING,
  JOB_WILLQUEUE_ADVANCE,
  JOB_GC_RETRY_MIN_PERIOD,
  JOB_GC_RETRY_MAX_PERIOD,
  type NodeIdList,
} from './job.js';
import { Queue, QueueWaiter, QUEUE_FLAG_PAUSED_ALL, QUEUE_FLAG_PAUSED_IN, QUEUE_FLAG_PAUSED_OUT } from './queue.js';
import { AwakeHeap } from './awake-heap.js';
import { JobTable } from './job-table.js';

/** Random desynchronization of re-queue times between nodes, in ms. */
export const TIME_ERROR = 500;
/** An idle empty queue is dropped after this many seconds (less under memory pressure). */
export const QUEUE_MAX_IDLE_SECONDS = 300;

// Estimated bytes of memory per job and per queue beyond their strings: the
// V8 objects, the registry entry, the queue slot and the schedule entry.
// maxmemory compares the store's own accounting, not the process RSS, which
// the V8 baseline alone would put over small limits.
export const JOB_MEMORY_OVERHEAD = 280;
export const QUEUE_MEMORY_OVERHEAD = 400;

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
  /** Journal records. */
  persistJob?(job: Job): void;
  persistDelete?(job: Job): void;
  persistAck?(job: Job): void;
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

export class JobStore {
  readonly clock: Clock;
  hooks: StoreHooks;
  maxmemory: number;
  /** Bytes accounted to jobs, bodies and queues. */
  usedMemory = 0;
  peakMemory = 0;

  private readonly myId: () => string;
  private readonly random: () => number;
  private readonly jobs = new JobTable();
  /** Jobs whose awake time changed since the schedule was last updated. */
  private awakePending: Job[] = [];
  private readonly queues = new Map<string, Queue>();
  private readonly queueSlots: Queue[] = [];
  private readonly awake = new AwakeHeap();
  private readonly readyQueues = new Set<Queue>();
  private readonly waiters = new Set<QueueWaiter>();
  /** Jobs delivered only by this node share one node list. */
  private selfList: NodeIdList;
  private lastCtime = 0;
  private lastCseq = 0;

  constructor(opts: StoreOptions) {
    this.clock = opts.clock;
    this.myId = opts.myId;
    this.hooks = opts.hooks ?? {};
    this.random = opts.random ?? Math.random;
    this.maxmemory = opts.maxmemory ?? 1024 * 1024 * 1024;
    this.selfList = [this.myId()];
  }

  // ------------------------------------------------------------------ jobs

  get jobCount(): number {
    return this.jobs.size;
  }

  get queueCount(): number {
    return this.queues.size;
  }

  /** The shared node list holding only this node. */
  selfOnly(): NodeIdList {
    const me = this.myId();
    if (this.selfList[0] !== me) this.selfList = [me];
    return this.selfList;
  }

  /** A creation time for a new job: now, with a counter for jobs in the same ms. */
  nextCtime(job: Job): void {
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
    return this.jobs.get(id);
  }

  /** Adds the job to the registry and schedules it. False if the ID exists. */
  registerJob(job: Job): boolean {
    if (!this.jobs.add(job)) return false;
    job.flags |= JOB_FLAG_REGISTERED;
    this.usedMemory += jobMemory(job);
    if (this.usedMemory > this.peakMemory) this.peakMemory = this.usedMemory;
    this.updateAwakeTime(job);
    return true;
  }

  /** Removes the job from the registry, its queue and the schedule. */
  unregisterJob(job: Job): boolean {
    if (!job.registered) return false;
    if (job.state >= JobState.Active && job.state !== JobState.Acked) this.hooks.persistDelete?.(job);
    if (job.state === JobState.Queued) this.dequeueJob(job);
    if (job.state === JobState.WaitRepl) this.hooks.waitReplAborted?.(job);
    this.jobs.remove(job);
    job.flags &= ~JOB_FLAG_REGISTERED;
    job.awake = NEVER;
    this.awake.remove(job);
    this.usedMemory -= jobMemory(job);
    return true;
  }

  /** A random registered job. */
  randomJob(): Job | undefined {
    return this.jobs.random(this.random);
  }

  /**
   * Schedules the job's next processing. Without `at`, the time follows from
   * the job: its expire time, its next re-queue (minus the WILLQUEUE advance)
   * or its next collection attempt, whichever comes first.
   */
  updateAwakeTime(job: Job, at?: number): void {
    if (at === undefined) {
      // Times are in ms here, so the job can be looked at right at its expire time.
      at = job.etime;
      if (job.state === JobState.Acked) {
        const gc = this.nextGcRetryTime(job);
        if (gc < at) at = gc;
      } else if ((job.state === JobState.Active || job.state === JobState.Queued) && job.qtime !== NEVER) {
        let qt = job.qtime;
        if (job.flags & JOB_FLAG_BCAST_WILLQUEUE) qt -= JOB_WILLQUEUE_ADVANCE;
        if (qt < at) at = qt;
      }
    }
    if (at !== job.awake && job.registered) {
      job.awake = at;
      // The schedule entry is made once per event, however often the time
      // changes meanwhile (ADDJOB registers then queues, for instance).
      if (!(job.flags & JOB_FLAG_AWAKE_PENDING)) {
        job.flags |= JOB_FLAG_AWAKE_PENDING;
        this.awakePending.push(job);
      }
    }
  }

  /** Enters pending awake times into the schedule. */
  flushSchedule(): void {
    const pending = this.awakePending;
    if (pending.length === 0) return;
    this.awakePending = [];
    for (const job of pending) {
      job.flags &= ~JOB_FLAG_AWAKE_PENDING;
      if (job.registered) this.awake.set(job, job.awake);
    }
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
    job.state = JobState.Queued;
    if (job.retry) {
      job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
      job.qtime = now + job.retry * 1000 + this.timeError(TIME_ERROR);
    } else {
      job.qtime = NEVER; // at-most-once: queued exactly once
    }
    // The first queueing needs no QUEUED message; later ones (re-queues
    // after a missing ack, NACKs) tell the other owners so they back off.
    if (job.flags & JOB_FLAG_BCAST_QUEUED || nack) {
      this.hooks.queued?.(job, nack);
      if (nack) job.nacks++;
      else job.deliveries++;
      this.hooks.persistJob?.(job); // the counters survive a restart
    } else {
      job.flags |= JOB_FLAG_BCAST_QUEUED;
    }
    this.updateAwakeTime(job);
    const q = this.queueFor(job.queue!);
    q.jobs.insert(job);
    q.atime = now;
    q.jobsIn++;
    if (!(q.flags & QUEUE_FLAG_PAUSED_OUT)) this.signalQueueAsReady(q);
    return true;
  }

  /** Takes the job out of its queue (back to active). False if it was not queued. */
  dequeueJob(job: Job): boolean {
    if (job.state !== JobState.Queued) return false;
    const q = this.queues.get(job.queue!);
    if (!q) return false;
    q.jobs.remove(job);
    job.state = JobState.Active;
    return true;
  }

  /** Pops the oldest job of a queue for delivery to a consumer. */
  fetchJob(q: Queue): Job | undefined {
    const job = q.jobs.shift();
    if (!job) return undefined;
    job.state = JobState.Active;
    job.flags |= JOB_FLAG_DELIVERED;
    q.atime = this.clock.now();
    q.jobsOut++;
    return job;
  }

  /** Marks the job acknowledged and schedules its collection. */
  acknowledgeJob(job: Job): void {
    if (job.state === JobState.Acked) return;
    this.dequeueJob(job);
    job.state = JobState.Acked;
    job.confirmed = null; // collection builds its own set of confirmations
    this.updateAwakeTime(job);
    this.hooks.persistAck?.(job);
  }

  nextGcRetryTime(job: Job): number {
    let period = JOB_GC_RETRY_MIN_PERIOD * (1 << job.gcRetry);
    if (period > JOB_GC_RETRY_MAX_PERIOD) period = JOB_GC_RETRY_MAX_PERIOD;
    return this.clock.now() + period + this.timeError(TIME_ERROR);
  }

  /** A random offset in [-ms/2, ms/2) so nodes do not all act at once. */
  timeError(ms: number): number {
    return Math.floor(this.random() * ms) - (ms >> 1);
  }

  // -------------------------------------------------------------- schedule

  /**
   * Processes every job whose awake time has come (up to `max`). Returns how
   * many ms until the next one, between 1 and 100.
   */
  processJobs(max = 10_000): number {
    this.flushSchedule();
    const now = this.clock.now();
    while (max-- > 0 && this.awake.peekTime() <= now) {
      const at = this.awake.peekTime();
      const job = this.awake.pop()!;
      // A job whose time changed during this loop is entered again by the flush.
      if (job.awake === at) this.processJob(job, now);
    }
    this.flushSchedule();
    const next = this.awake.peekTime() - now;
    return next < 1 ? 1 : next > 100 ? 100 : next;
  }

  private processJob(job: Job, now: number): void {
    const before = job.awake;
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
      const q = this.queues.get(job.queue!);
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

    // Nothing moved its awake time: schedule again from its fields so it is
    // never stuck at a time in the past.
    if (job.registered && job.awake === before) {
      job.awake = NEVER;
      this.updateAwakeTime(job);
      if (job.awake <= now) this.updateAwakeTime(job, now + 100);
    }
  }

  // ---------------------------------------------------------------- queues

  lookupQueue(name: string): Queue | undefined {
    return this.queues.get(name);
  }

  /** The queue's own name string when it exists, so jobs share one copy. */
  internQueueName(name: string): string {
    return this.queues.get(name)?.name ?? name;
  }

  /** The queue by name, created if missing. */
  queueFor(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, this.clock.now());
      this.queues.set(name, q);
      q.slot = this.queueSlots.length;
      this.queueSlots.push(q);
      this.usedMemory += QUEUE_MEMORY_OVERHEAD + name.length;
      if (this.usedMemory > this.peakMemory) this.peakMemory = this.usedMemory;
    }
    return q;
  }

  destroyQueue(q: Queue): void {
    if (q.slot < 0 || this.queues.get(q.name) !== q) return;
    this.queues.delete(q.name);
    const slots = this.queueSlots;
    const last = slots.pop()!;
    if (last !== q) {
      slots[q.slot] = last;
      last.slot = q.slot;
    }
    q.slot = -1;
    this.readyQueues.delete(q);
    this.usedMemory -= QUEUE_MEMORY_OVERHEAD + q.name.length;
  }

  /** Drops the queue if empty, idle for `maxIdleSeconds`, unpaused and with nobody blocked. */
  gcQueue(q: Queue, maxIdleSeconds: number): boolean {
    const idle = this.clock.now() - q.atime;
    if (idle < maxIdleSeconds * 1000) return false;
    if (q.waiters !== null && q.waiters.length !== 0) return false;
    if (q.jobs.size) return false;
    if (q.flags & QUEUE_FLAG_PAUSED_ALL) return false;
    this.destroyQueue(q);
    return true;
  }

  /** Samples random queues and drops idle ones; returns how many. */
  evictIdleQueues(): number {
    const start = Date.now();
    let maxIdle = QUEUE_MAX_IDLE_SECONDS;
    const level = this.memoryWarningLevel();
    if (level > 0) maxIdle /= 30;
    if (level > 1) maxIdle = 2;
    let sampled = 0;
    let evicted = 0;
    while (this.queueSlots.length !== 0) {
      const q = this.queueSlots[Math.floor(this.random() * this.queueSlots.length)]!;
      sampled++;
      if (this.gcQueue(q, maxIdle)) evicted++;
      // Stop when less than 10% of the sample could go, or after ~1 ms.
      if (sampled > 10 && evicted * 10 < sampled) break;
      if ((sampled + 1) % 1000 === 0 && Date.now() - start > 1) break;
    }
    return evicted;
  }

  /** Sets or clears pause flags; unpausing output serves blocked clients. */
  changePausedState(q: Queue, flag: number, set: boolean): void {
    const orig = q.flags;
    if (set) q.flags |= flag;
    else q.flags &= ~flag;
    if (orig & QUEUE_FLAG_PAUSED_OUT && !(q.flags & QUEUE_FLAG_PAUSED_OUT)) this.signalQueueAsReady(q);
  }

  /** Applies a full pause state (the PAUSE message of another node). */
  setPausedState(name: string, flags: number): void {
    let q = this.queues.get(name);
    if (!q) {
      if ((flags & QUEUE_FLAG_PAUSED_ALL) === 0) return;
      q = this.queueFor(name);
    }
    this.changePausedState(q, QUEUE_FLAG_PAUSED_IN, (flags & QUEUE_FLAG_PAUSED_IN) !== 0);
    this.changePausedState(q, QUEUE_FLAG_PAUSED_OUT, (flags & QUEUE_FLAG_PAUSED_OUT) !== 0);
  }

  // ------------------------------------------------------- blocked clients

  /** Blocks the waiter on the named queues (creating them), in arrival order. */
  block(waiter: QueueWaiter, names: string[]): void {
    const on: Queue[] = [];
    for (const name of names) {
      const q = this.queueFor(name);
      if (on.includes(q)) continue;
      on.push(q);
      if (q.waiters === null) q.waiters = [];
      q.waiters.push(waiter);
    }
    waiter.blockedOn = on;
    this.waiters.add(waiter);
  }

  /** Removes the waiter from every queue it waits on. */
  unblock(waiter: QueueWaiter): void {
    const on = waiter.blockedOn;
    if (on === null) return;
    waiter.blockedOn = null;
    this.waiters.delete(waiter);
    for (const q of on) {
      const list = q.waiters;
      if (list === null) continue;
      const i = list.indexOf(waiter);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) {
        q.waiters = null;
        this.gcQueue(q, QUEUE_MAX_IDLE_SECONDS);
      }
    }
  }

  /** Every blocked waiter (for LEAVING, which turns them away). */
  blockedWaiters(): QueueWaiter[] {
    return [...this.waiters];
  }

  get blockedCount(): number {
    return this.waiters.size;
  }

  signalQueueAsReady(q: Queue): void {
    if (q.waiters !== null && q.waiters.length !== 0) this.readyQueues.add(q);
  }

  /** Serves blocked clients from queues that received jobs, oldest client first. */
  serveBlockedClients(): void {
    if (this.readyQueues.size === 0) return;
    const ready = [...this.readyQueues];
    this.readyQueues.clear();
    for (const q of ready) {
      if (q.slot < 0 || q.flags & QUEUE_FLAG_PAUSED_OUT) continue;
      while (q.waiters !== null && q.waiters.length !== 0) {
        const waiter = q.waiters[0]!;
        const job = this.fetchJob(q);
        if (!job) break;
        if (q.jobs.size === 0) this.hooks.needJobs?.(q, true);
        this.unblock(waiter);
        waiter.serve(job);
      }
    }
  }

  // ---------------------------------------------------------------- memory

  /** 0: fine; 1: over 75% of maxmemory; 2: over 95%. */
  memoryWarningLevel(): number {
    const unit = Math.floor(this.maxmemory / 100);
    if (this.usedMemory > unit * 95) return 2;
    if (this.usedMemory > unit * 75) return 1;
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
    const target = Math.floor(this.maxmemory / 100) * 95;
    const start = Date.now();
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
      if (notFreed > 10 || Date.now() - start > 1) return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ scan

  /**
   * Cursor iteration over jobs (JSCAN): every job present for a whole
   * iteration is returned, some maybe twice (see JobTable.scan). Returns the
   * next cursor, 0 when done.
   */
  scanJobs(cursor: number, visit: (job: Job) => void, steps: () => boolean): number {
    return this.jobs.scan(cursor, visit, steps);
  }

  /**
   * Cursor iteration over queues (QSCAN). The cursor counts down through the
   * dense array of queues: a removal moves the last queue into the hole, and
   * that one was already visited, so every queue present for a whole
   * iteration is returned (some maybe twice); new queues land past the cursor.
   */
  scanQueues(cursor: number, visit: (q: Queue) => void, steps: () => boolean): number {
    return scanDense(this.queueSlots, cursor, visit, steps);
  }

  /** Every registered job (a new array). */
  allJobs(): Job[] {
    return [...this.jobs];
  }

  allQueues(): readonly Queue[] {
    return this.queueSlots;
  }

  // ----------------------------------------------------------------- reset

  /** Drops every job and queue; blocked clients are answered as on timeout. */
  flushAll(): void {
    for (const job of this.allJobs()) this.unregisterJob(job);
    for (const waiter of [...this.waiters]) {
      this.unblock(waiter);
      waiter.flushed();
    }
    for (const q of [...this.queueSlots]) this.destroyQueue(q);
    this.awake.clear();
    this.awakePending = [];
    this.readyQueues.clear();
  }
}

export function jobMemory(job: Job): number {
  return JOB_MEMORY_OVERHEAD + (job.body === null ? 0 : job.body.length) + (job.queue === null ? 0 : 8);
}

/**
 * Walks `items` downward from `cursor` (0 = from the top). `steps` is asked
 * before each item whether to go on. Returns the next cursor, 0 when done.
 */
function scanDense<T>(items: readonly T[], cursor: number, visit: (item: T) => void, steps: () => boolean): number {
  let i = cursor === 0 || cursor > items.length ? items.length : cursor;
  while (i > 0) {
    if (!steps()) return i;
    i--;
    visit(items[i]!);
  }
  return 0;
}
