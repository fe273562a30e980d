// The job store: every job and queue this node knows, the schedule that
// moves jobs through their life cycle, blocked consumers, and memory
// accounting. It is the reference's state machine for one node (README,
// "Disque state machine"); what it must tell other nodes or the journal goes
// out through StoreHooks, so the store itself has no sockets and no Redis,
// and time comes from an injected clock.
//
// Jobs are held off the garbage-collected heap (DESIGN.md): a fixed-size
// record per job (records.ts), ID and body bytes in an arena (arena.ts), an
// index by ID (job-index.ts), queues as lists of record numbers
// (job-list.ts) and one schedule (awake-heap.ts). Commands and messages see
// a job through a Job handle made for the occasion (job.ts).
import { Clock } from './clock.js';
import {
  Job,
  JobState,
  NEVER,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_BCAST_WILLQUEUE,
  JOB_FLAG_DELIVERED,
  JOB_FLAG_REGISTERED,
  JOB_FLAG_RAW_ID,
  JOB_FLAG_LARGE,
  JOB_FLAG_AWAKE_PENDING,
  JOB_INTERNAL_FLAGS,
  JOB_WILLQUEUE_ADVANCE,
  JOB_GC_RETRY_MIN_PERIOD,
  JOB_GC_RETRY_MAX_PERIOD,
  type JobFields,
  type JobStoreInternals,
  type NodeIdList,
} from './job.js';
import { JOB_ID_LEN, PACKED_ID_LEN, packJobId, unpackJobId, generatedId, generatedPacked } from './job-id.js';
import { Queue, QueueWaiter, QUEUE_FLAG_PAUSED_ALL, QUEUE_FLAG_PAUSED_IN, QUEUE_FLAG_PAUSED_OUT } from './queue.js';
import { AwakeHeap, REBASE_AFTER } from './awake-heap.js';
import { hashBytes, hashWords } from './id-hash.js';
import { JobIndex } from './job-index.js';
import { ByteArena, SMALL_MAX } from './arena.js';
import { NodeLists, QueueNames } from './intern.js';
import { ChunkPool } from './job-list.js';
import { BlockSource } from './blocks.js';
import {
  JobRecords,
  PAGE_SHIFT,
  PAGE_MASK,
  REC_BYTES,
  REC_WORDS,
  F_CTIME,
  F_ETIME,
  F_QTIME,
  W_DELAY,
  W_RETRY,
  W_COUNTS,
  W_FLAGS,
  W_STATE,
  W_GEN,
  W_SEQ,
  W_HEAP,
  W_BODY,
  W_ID,
  QUEUE_MASK,
  FLAGS_SHIFT,
  NODES_MASK,
  STATE_SHIFT,
  GC_SHIFT,
  REPL_MASK,
  CSEQ_MASK,
  LEN_SHIFT,
  GEN_HIGH_SHIFT,
} from './records.js';

/** Random desynchronization of re-queue times between nodes, in ms. */
export const TIME_ERROR = 500;
/** An idle empty queue is dropped after this many seconds (less under memory pressure). */
export const QUEUE_MAX_IDLE_SECONDS = 300;
/** Estimated bytes of a queue beyond its name (the Queue object and its Map entry). */
export const QUEUE_MEMORY_OVERHEAD = 400;
/** Pending schedule changes are entered at once past this many (a long load, say). */
const PENDING_FLUSH_AT = 65536;
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

const EMPTY = Buffer.alloc(0);
const ID_SCRATCH = Buffer.alloc(JOB_ID_LEN);

export class JobStore implements JobStoreInternals {
  readonly clock: Clock;
  hooks: StoreHooks;
  maxmemory: number;
  /** maxmemory-policy acks: under pressure, evict acked and delivered at-most-once jobs (noeviction: refuse). */
  evictOnPressure = true;
  peakMemory = 0;

  /** Pages of records, the arena and the schedule come from here (see blocks.ts). */
  readonly blocks = new BlockSource();
  readonly records = new JobRecords(this.blocks);
  readonly arena = new ByteArena(this.blocks);
  readonly queueNames = new QueueNames();
  readonly nodeLists = new NodeLists();
  private readonly index: JobIndex;
  private readonly awake: AwakeHeap;
  /** Confirmations of jobs being replicated or collected, by record. */
  private readonly confirmations = new Map<number, Set<string>>();
  /** Jobs by state (wait-repl, active, queued, acked). */
  private readonly stateCounts = [0, 0, 0, 0];
  private readonly chunks = new ChunkPool();
  private queueBytes = 0;

  private readonly myId: () => string;
  private readonly random: () => number;
  private readonly queues = new Map<string, Queue>();
  private readonly queueSlots: Queue[] = [];
  private readonly readyQueues = new Set<Queue>();
  private readonly waiters = new Set<QueueWaiter>();
  /** Jobs delivered only by this node share one node list. */
  private selfList: NodeIdList;
  private lastCtime = 0;
  private lastCseq = 0;

  // The ID being looked up: packed into keyWords, or kept raw.
  private readonly keyBytes = new Uint8Array(PACKED_ID_LEN);
  private readonly keyWords = new Uint32Array(this.keyBytes.buffer);
  private rawKey = '';
  /** Records due, a batch of a processJobs call. */
  private readonly due = new Uint32Array(256);
  /** Records whose awake time changed this event (see updateAwakeTime). */
  private pending = new Uint32Array(1024);
  private pendingCount = 0;
  /** Off while processJobs runs: its changes go to the schedule at once. */
  private deferSchedule = true;

  constructor(opts: StoreOptions) {
    this.clock = opts.clock;
    this.myId = opts.myId;
    this.hooks = opts.hooks ?? {};
    this.random = opts.random ?? Math.random;
    this.maxmemory = opts.maxmemory ?? 1024 * 1024 * 1024;
    this.selfList = [this.myId()];
    this.index = new JobIndex(this.records, (rec) => this.hashOfRecord(rec));
    this.awake = new AwakeHeap(this.records, this.blocks);
  }

  // ------------------------------------------------------------------ jobs

  get jobCount(): number {
    return this.index.size;
  }

  get queueCount(): number {
    return this.queues.size;
  }

  /** Jobs in each state: wait-repl, active, queued, acked. */
  jobsByState(): readonly number[] {
    return this.stateCounts;
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
    const rec = this.find(id);
    return rec === 0 ? undefined : new Job(this, rec, id);
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
    if (fresh && id === generatedId) {
      this.keyBytes.set(generatedPacked);
      this.rawKey = '';
    } else if (this.find(id) !== 0) {
      return null;
    }
    const packed = this.rawKey === '';
    const h = this.keyHash(packed);
    const rec = this.records.alloc();
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const f = this.records.f64[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const fo = o >> 1;
    f[fo + F_CTIME] = fields.ctime;
    f[fo + F_ETIME] = fields.etime;
    f[fo + F_QTIME] = fields.qtime;
    u[o + W_DELAY] = fields.delay;
    u[o + W_RETRY] = fields.retry;
    u[o + W_COUNTS] = (fields.nacks & 0xffff) | ((fields.deliveries & 0xffff) << 16);
    let flags = (fields.flags & ~JOB_INTERNAL_FLAGS) | JOB_FLAG_REGISTERED;
    if (!packed) flags |= JOB_FLAG_RAW_ID;
    const queueId = fields.queue === null ? 0 : this.queueNames.acquire(fields.queue);
    // The state word keeps the generation's high bits (see records.ts).
    u[o + W_STATE] = (u[o + W_STATE]! & (3 << GEN_HIGH_SHIFT)) | this.nodeLists.acquire(fields.delivered) | ((fields.state & 3) << STATE_SHIFT);
    u[o + W_GEN] = (u[o + W_GEN]! & ~REPL_MASK) | (fields.repl & REPL_MASK);

    // ID (when it does not pack) and body bytes.
    const body = fields.body;
    const bodyLen = body === null ? 0 : body.length;
    const size = (packed ? 0 : JOB_ID_LEN) + bodyLen;
    let seq = Math.min(fields.cseq, CSEQ_MASK);
    if (size > 0) {
      const large = size > SMALL_MAX;
      if (large) flags |= JOB_FLAG_LARGE;
      else seq |= bodyLen << LEN_SHIFT;
      const addr = this.arena.alloc(size);
      u[o + W_BODY] = addr;
      const mem = this.arena.bytes(addr, large);
      let at = this.arena.offset(addr, large);
      if (!packed) at += mem.latin1Write(id, at, JOB_ID_LEN);
      if (typeof body === 'string') mem.latin1Write(body, at, bodyLen);
      else if (body !== null) mem.set(body, at);
    }
    u[o + W_SEQ] = seq;
    if (packed) {
      const kw = this.keyWords;
      for (let i = 0; i < 6; i++) u[o + W_ID + i] = kw[i]!;
    }
    u[o + W_FLAGS] = queueId | (flags << FLAGS_SHIFT);

    this.index.add(rec, h);
    if (fields.confirmed !== null) this.confirmations.set(rec, fields.confirmed);
    this.stateCounts[fields.state & 3]!++;
    const job = new Job(this, rec, id);
    this.updateAwakeTime(job);
    const used = this.usedMemory;
    if (used > this.peakMemory) this.peakMemory = used;
    return job;
  }

  /** Removes the job from the index, its queue and the schedule, and frees it. */
  unregisterJob(job: Job): boolean {
    if (!job.registered) return false;
    if (job.state >= JobState.Active && job.state !== JobState.Acked) this.hooks.persistDelete?.(job);
    if (job.state === JobState.Queued) this.dequeueJob(job);
    if (job.state === JobState.WaitRepl) this.hooks.waitReplAborted?.(job);
    if (!job.registered) return true; // a hook removed it meanwhile
    const rec = job.rec;
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    this.index.remove(rec, this.hashOfRecord(rec));
    this.awake.remove(rec);
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    const size = this.storedSize(u, o, flags);
    if (size > 0) this.arena.free(u[o + W_BODY]!, size);
    this.queueNames.release(u[o + W_FLAGS]! & QUEUE_MASK);
    this.nodeLists.release(u[o + W_STATE]! & NODES_MASK);
    this.confirmations.delete(rec);
    this.stateCounts[(u[o + W_STATE]! >>> STATE_SHIFT) & 3]!--;
    this.records.free(rec);
    return true;
  }

  /** A random job. */
  randomJob(): Job | undefined {
    const rec = this.index.random(this.random);
    return rec === 0 ? undefined : new Job(this, rec);
  }

  /**
   * Schedules the job's next processing. Without `at`, the time follows from
   * the job: its expire time, its next re-queue (minus the WILLQUEUE advance)
   * or its next collection attempt, whichever comes first. The schedule
   * learns such times at the end of the event (flushSchedule), once per job
   * however often they change meanwhile: an ACKJOB that collects the job at
   * once, or an ADDJOB that queues it, then moves no entry through the heap.
   */
  updateAwakeTime(job: Job, at?: number): void {
    if (!job.registered) return;
    if (at !== undefined || !this.deferSchedule) {
      this.awake.set(job.rec, at ?? this.awakeTimeFor(job));
      return;
    }
    const flags = job.flags;
    if (flags & JOB_FLAG_AWAKE_PENDING) return;
    job.flags = flags | JOB_FLAG_AWAKE_PENDING;
    if (this.pendingCount === this.pending.length) {
      if (this.pendingCount >= PENDING_FLUSH_AT) {
        this.flushSchedule();
        job.flags |= JOB_FLAG_AWAKE_PENDING;
      } else {
        const bigger = new Uint32Array(this.pending.length * 2);
        bigger.set(this.pending);
        this.pending = bigger;
      }
    }
    this.pending[this.pendingCount++] = job.rec;
  }

  /** Enters the awake times that changed since the last flush into the schedule. */
  flushSchedule(): void {
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
      this.awake.set(rec, this.awakeTimeOfRecord(rec));
    }
  }

  private awakeTimeFor(job: Job): number {
    return this.awakeTimeOfRecord(job.rec);
  }

  /** The job's next awake time from its fields (see updateAwakeTime), read from its record. */
  private awakeTimeOfRecord(rec: number): number {
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
    q.jobs.insert(job.rec);
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
    q.jobs.remove(job.rec);
    job.state = JobState.Active;
    return true;
  }

  /** Pops the oldest job of a queue for delivery to a consumer. */
  fetchJob(q: Queue): Job | undefined {
    const rec = q.jobs.shift();
    if (rec === 0) return undefined;
    const job = new Job(this, rec);
    job.state = JobState.Active;
    job.flags |= JOB_FLAG_DELIVERED;
    q.atime = this.clock.now();
    q.jobsOut++;
    return job;
  }

  /** Up to `count` jobs of the queue without taking them, oldest (or newest) first. */
  peekJobs(q: Queue, count: number, newestFirst: boolean): Job[] {
    return q.jobs.peek(count, newestFirst).map((rec) => new Job(this, rec));
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
    this.flushSchedule();
    this.deferSchedule = false;
    try {
      return this.runDueJobs(max, budgetMs);
    } finally {
      this.deferSchedule = true;
    }
  }

  private runDueJobs(max: number, budgetMs: number): number {
    const now = this.clock.now();
    if (now - this.awake.base > REBASE_AFTER) this.awake.rebase(now);
    const deadline = performance.now() + budgetMs;
    const due = this.due;
    let done = 0;
    while (done < max && this.awake.peekTime() <= now) {
      // A batch of due jobs is taken first: one scheduled again at a time
      // already passed while its batch runs waits for the next batch.
      let n = 0;
      while (n < due.length && done + n < max && this.awake.peekTime() <= now) due[n++] = this.awake.pop();
      for (let i = 0; i < n; i++) {
        const rec = due[i]!;
        const u = this.records.u32[rec >>> PAGE_SHIFT]!;
        const o = (rec & PAGE_MASK) * REC_WORDS;
        // Gone, or scheduled again by another job's processing.
        if (!(u[o + W_FLAGS]! & (JOB_FLAG_REGISTERED << FLAGS_SHIFT)) || u[o + W_HEAP] !== 0) continue;
        this.processJob(new Job(this, rec), now);
      }
      done += n;
      if (performance.now() > deadline) break;
    }
    this.index.rehashFor(0.5);
    const next = this.awake.peekTime() - now;
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

    // Nothing scheduled it again: schedule from its fields so it is never
    // stuck at a time in the past.
    if (job.registered && this.awake.timeOf(job.rec) === undefined) {
      let at = this.awakeTimeFor(job);
      if (at <= now) at = now + 100;
      this.awake.set(job.rec, at);
    }
  }

  // ---------------------------------------------------------------- queues

  lookupQueue(name: string): Queue | undefined {
    return this.queues.get(name);
  }

  /** The queue by name, created if missing. */
  queueFor(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, this.clock.now(), this.order, this.chunks);
      this.queues.set(name, q);
      q.slot = this.queueSlots.length;
      this.queueSlots.push(q);
      this.queueBytes += QUEUE_MEMORY_OVERHEAD + name.length;
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
    q.jobs.clear();
    this.readyQueues.delete(q);
    this.queueBytes -= QUEUE_MEMORY_OVERHEAD + q.name.length;
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

  /**
   * Bytes the store holds for jobs and queues: records, arena bytes of live
   * bodies (at their size class), the index, the schedule and queue lists.
   * maxmemory compares this, not the process RSS (see README).
   */
  get usedMemory(): number {
    return (
      this.records.live * REC_BYTES +
      this.arena.usedBytes +
      this.index.allocatedBytes +
      this.index.size * SCHEDULE_ENTRY_BYTES +
      this.chunks.chunkBytes +
      this.queueBytes
    );
  }

  memory(): StoreMemory {
    const used = this.usedMemory;
    if (used > this.peakMemory) this.peakMemory = used;
    return {
      used,
      records: this.records.live * REC_BYTES,
      arenaUsed: this.arena.usedBytes,
      arenaAllocated: this.arena.allocatedBytes,
      arenaFree: this.arena.freeBytes,
      arenaRounding: this.arena.roundingBytes,
      index: this.index.allocatedBytes,
      schedule: this.index.size * SCHEDULE_ENTRY_BYTES,
      queues: this.chunks.chunkBytes + this.queueBytes,
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
   * iteration is returned, some maybe twice (see JobIndex.scan). Returns the
   * next cursor, 0 when done.
   */
  scanJobs(cursor: number, visit: (job: Job) => void, steps: () => boolean): number {
    return this.index.scan(cursor, (rec) => visit(new Job(this, rec)), steps);
  }

  /**
   * Visits the jobs in record order from record `from` on, at most `max`
   * records; returns where to go on, 0 when every record was seen. A job
   * present from the first call to the last is visited exactly once
   * (records do not move); jobs added meanwhile may or may not be.
   */
  eachJob(from: number, max: number, visit: (job: Job) => void): number {
    const end = this.records.end;
    let rec = from < 1 ? 1 : from;
    for (const stop = Math.min(end, rec + max); rec < stop; rec++) {
      const u = this.records.u32[rec >>> PAGE_SHIFT]!;
      if (u[(rec & PAGE_MASK) * REC_WORDS + W_FLAGS]! & (JOB_FLAG_REGISTERED << FLAGS_SHIFT)) visit(new Job(this, rec));
    }
    return rec >= end ? 0 : rec;
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

  allQueues(): readonly Queue[] {
    return this.queueSlots;
  }

  /** Moves the index's resize along for about `ms` (called from the node's cron). */
  backgroundWork(ms: number): void {
    this.index.rehashFor(ms);
  }

  // ----------------------------------------------------------------- reset

  /** Drops every job and queue; blocked clients are answered as on timeout. */
  flushAll(): void {
    for (let from = 1; from !== 0; ) from = this.eachJob(from, 65536, (job) => this.unregisterJob(job));
    for (const waiter of [...this.waiters]) {
      this.unblock(waiter);
      waiter.flushed();
    }
    for (const q of [...this.queueSlots]) this.destroyQueue(q);
    this.readyQueues.clear();
  }

  // ------------------------------------------------- what Job handles read

  idOf(rec: number): string {
    this.copyId(rec, ID_SCRATCH, 0);
    return ID_SCRATCH.latin1Slice(0, JOB_ID_LEN);
  }

  copyId(rec: number, target: Uint8Array, at: number): void {
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (flags & JOB_FLAG_RAW_ID) {
      const large = (flags & JOB_FLAG_LARGE) !== 0;
      const addr = u[o + W_BODY]!;
      const from = this.arena.offset(addr, large);
      const mem = this.arena.bytes(addr, large);
      for (let i = 0; i < JOB_ID_LEN; i++) target[at + i] = mem[from + i]!;
      return;
    }
    unpackJobId(this.records.u8[page]!, (o + W_ID) * 4, target, at);
  }

  stateChanged(from: number, to: number): void {
    this.stateCounts[from]!--;
    this.stateCounts[to]!++;
  }

  awakeOf(rec: number): number {
    this.flushSchedule();
    return this.awake.timeOf(rec) ?? NEVER;
  }

  bodyLengthOf(rec: number): number {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (!(flags & JOB_FLAG_LARGE)) return u[o + W_SEQ]! >>> LEN_SHIFT;
    return this.arena.bytes(u[o + W_BODY]!, true).length - (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  bodyBytesOf(rec: number): Buffer {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const addr = u[o + W_BODY]!;
    if (addr === 0) return EMPTY;
    return this.arena.bytes(addr, ((u[o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_LARGE) !== 0);
  }

  bodyOffsetOf(rec: number): number {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const addr = u[o + W_BODY]!;
    if (addr === 0) return 0;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    return this.arena.offset(addr, (flags & JOB_FLAG_LARGE) !== 0) + (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  setNodes(rec: number, list: NodeIdList): void {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const w = u[o + W_STATE]!;
    u[o + W_STATE] = (w & ~NODES_MASK) | this.nodeLists.acquire(list);
    this.nodeLists.release(w & NODES_MASK);
  }

  addNode(rec: number, node: string): void {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const w = u[o + W_STATE]!;
    u[o + W_STATE] = (w & ~NODES_MASK) | this.nodeLists.acquireWithNode(w & NODES_MASK, node);
    this.nodeLists.release(w & NODES_MASK);
  }

  confirmedOf(rec: number): Set<string> | null {
    return this.confirmations.get(rec) ?? null;
  }

  setConfirmed(rec: number, s: Set<string> | null): void {
    if (s === null) this.confirmations.delete(rec);
    else this.confirmations.set(rec, s);
  }

  // ------------------------------------------------------------- internals

  /** Order of jobs in a queue: creation time, then counter, then record number. */
  private readonly order = (a: number, b: number): number => {
    const fa = this.records.f64[a >>> PAGE_SHIFT]!;
    const fb = this.records.f64[b >>> PAGE_SHIFT]!;
    const oa = (a & PAGE_MASK) * REC_WORDS;
    const ob = (b & PAGE_MASK) * REC_WORDS;
    const d = fa[(oa >> 1) + F_CTIME]! - fb[(ob >> 1) + F_CTIME]!;
    if (d !== 0) return d;
    const ua = this.records.u32[a >>> PAGE_SHIFT]!;
    const ub = this.records.u32[b >>> PAGE_SHIFT]!;
    return (ua[oa + W_SEQ]! & CSEQ_MASK) - (ub[ob + W_SEQ]! & CSEQ_MASK) || a - b;
  };

  /** Bytes of the job's arena allocation (0 when it has none). */
  private storedSize(u: Uint32Array, o: number, flags: number): number {
    const addr = u[o + W_BODY]!;
    if (addr === 0) return 0;
    if (flags & JOB_FLAG_LARGE) return this.arena.bytes(addr, true).length;
    return (u[o + W_SEQ]! >>> LEN_SHIFT) + (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  /**
   * Looks an ID up: the record number, or 0. Leaves the key (packed words,
   * or rawKey for an ID that does not pack) for addJob.
   */
  private find(id: string): number {
    if (id.length !== JOB_ID_LEN) return 0;
    if (packJobId(id, this.keyBytes, 0)) {
      this.rawKey = '';
      return this.index.find(this.keyHash(true), this.matchesPacked);
    }
    this.rawKey = id;
    return this.index.find(this.keyHash(false), this.matchesRaw);
  }

  private keyHash(packed: boolean): number {
    if (packed) return hashWords(this.keyWords, 0, 6);
    return hashBytes(this.rawKey, 0, JOB_ID_LEN);
  }

  private readonly matchesPacked = (rec: number): boolean => {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const kw = this.keyWords;
    return (
      u[o + W_ID + 1] === kw[1] &&
      u[o + W_ID + 2] === kw[2] &&
      u[o + W_ID + 3] === kw[3] &&
      u[o + W_ID + 4] === kw[4] &&
      u[o + W_ID + 5] === kw[5] &&
      u[o + W_ID] === kw[0] &&
      !((u[o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_RAW_ID)
    );
  };

  private readonly matchesRaw = (rec: number): boolean => {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (!(flags & JOB_FLAG_RAW_ID)) return false;
    const large = (flags & JOB_FLAG_LARGE) !== 0;
    const addr = u[o + W_BODY]!;
    const mem = this.arena.bytes(addr, large);
    const at = this.arena.offset(addr, large);
    const id = this.rawKey;
    for (let i = 0; i < JOB_ID_LEN; i++) if (mem[at + i] !== (id.charCodeAt(i) & 0xff)) return false;
    return true;
  };

  /** The hash of a stored job's ID, as keyHash gives it for the same ID. */
  private hashOfRecord(rec: number): number {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (!(flags & JOB_FLAG_RAW_ID)) return hashWords(u, o + W_ID, 6);
    const large = (flags & JOB_FLAG_LARGE) !== 0;
    const addr = u[o + W_BODY]!;
    const mem = this.arena.bytes(addr, large);
    const at = this.arena.offset(addr, large);
    return hashBytes(mem, at, JOB_ID_LEN);
  }
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
