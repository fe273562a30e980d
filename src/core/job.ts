// The job, the unit Disque stores, replicates and delivers (the reference's
// README, "Disque state machine", describes its fields and states): its
// states and flags, its fields as plain values (JobFields), and the handle
// through which commands and messages see a job the store holds (Job).
import type { NodeIdList, NodeLists, QueueNames } from './intern.js';
import {
  type JobRecords,
  PAGE_SHIFT,
  PAGE_MASK,
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
  QUEUE_MASK,
  FLAGS_SHIFT,
  NODES_MASK,
  STATE_SHIFT,
  GC_SHIFT,
  REPL_MASK,
  CSEQ_MASK,
  recordGen,
} from './records.js';

export const JobState = {
  /** Waiting for the synchronous replication ADDJOB asked for. */
  WaitRepl: 0,
  /** Known here, not queued here. */
  Active: 1,
  /** Active and waiting in a queue of this node. */
  Queued: 2,
  /** Acknowledged: kept only until garbage collected cluster-wide. */
  Acked: 3,
} as const;
export type JobStateValue = (typeof JobState)[keyof typeof JobState];

export const JOB_STATE_NAMES = ['wait-repl', 'active', 'queued', 'acked'] as const;

export function jobStateFromName(name: string): number {
  const i = (JOB_STATE_NAMES as readonly string[]).indexOf(name.toLowerCase());
  return i;
}

/** Send QUEUED to the other owners when this node queues the job again. */
export const JOB_FLAG_BCAST_QUEUED = 1 << 0;
/** Send WILLQUEUE to the other owners shortly before re-queueing. */
export const JOB_FLAG_BCAST_WILLQUEUE = 1 << 1;
/** This node delivered the job to a consumer at least once. */
export const JOB_FLAG_DELIVERED = 1 << 2;
/** Internal: the job is in the store. */
export const JOB_FLAG_REGISTERED = 1 << 3;
/** Internal: the ID did not pack; its 40 bytes precede the body in the arena. */
export const JOB_FLAG_RAW_ID = 1 << 4;
/** Internal: ID and body are in a large arena buffer of their own. */
export const JOB_FLAG_LARGE = 1 << 5;
/** Internal: registered by the persistence load under way. */
export const JOB_FLAG_LOADED = 1 << 6;
/** Internal: the job's awake time changed this event; the schedule learns it at the event's end. */
export const JOB_FLAG_AWAKE_PENDING = 1 << 7;
/** Flags that only make sense inside one process. */
export const JOB_INTERNAL_FLAGS = JOB_FLAG_REGISTERED | JOB_FLAG_RAW_ID | JOB_FLAG_LARGE | JOB_FLAG_LOADED | JOB_FLAG_AWAKE_PENDING;

/** WILLQUEUE is sent this many ms before the re-queue time. */
export const JOB_WILLQUEUE_ADVANCE = 500;
/** Default RETRY is TTL/10 but at most this many seconds. */
export const JOB_DEFAULT_RETRY_MAX = 300;
export const JOB_GC_RETRY_MIN_PERIOD = 1000;
export const JOB_GC_RETRY_MAX_PERIOD = 180_000;
export const JOB_GC_RETRY_COUNT_MAX = 10;

/** Marks "no time": a job that is never re-queued, or not scheduled. */
export const NEVER = -1;


export type { NodeIdList };

/**
 * A job as plain values: what ADDJOB builds and a bus message or a
 * persistence record decodes, before the store takes it (JobStore.addJob).
 * A job this node keeps no copy of (ADDJOB ASYNC under memory pressure) is
 * replicated from this form.
 */
export interface JobFields {
  id: string;
  /** Queue name, or null for a dummy ack (an ACK about an unknown job). */
  queue: string | null;
  /** Body bytes, as a latin1 string (one char per byte) or bytes; null for a dummy ack. */
  body: string | Uint8Array | null;
  state: number;
  flags: number;
  repl: number;
  /** Creation time (clock-relative ms) and a counter for jobs created in the same ms. */
  ctime: number;
  cseq: number;
  /** Expire time, clock-relative ms. */
  etime: number;
  /** Seconds. */
  delay: number;
  retry: number;
  nacks: number;
  deliveries: number;
  /** Next (re)queue time, clock-relative ms, or NEVER. */
  qtime: number;
  /** Nodes that may have a copy (job.delivered in the reference's README). */
  delivered: NodeIdList;
  /** Nodes that confirmed: GOTJOB while replicating, GOTACK while collecting. */
  confirmed: Set<string> | null;
  /** ADDJOB UNIQUE's key (latin1), when it had one. */
  unique?: string | null;
}

/** A job's fields with every number at its zero value. */
export function newJobFields(id: string, state: number, delivered: NodeIdList): JobFields {
  return {
    id,
    queue: null,
    body: null,
    state,
    flags: 0,
    repl: 1,
    ctime: 0,
    cseq: 0,
    etime: 0,
    delay: 0,
    retry: 0,
    nacks: 0,
    deliveries: 0,
    qtime: NEVER,
    delivered,
    confirmed: null,
  };
}

/**
 * A job the store holds, seen through its record (see records.ts): every
 * read and write goes to the record, so this object is only a handle,
 * made when a command or a message needs the job and dropped after. Once
 * the job leaves the store the handle is stale: `registered` turns false
 * and nothing else may be read from it.
 */
export class Job {
  private readonly u: Uint32Array;
  private readonly f: Float64Array;
  /** Word offset of the record in its page. */
  private readonly o: number;
  /** The record's generation when the handle was made. */
  readonly gen: number;
  private idString: string | null;

  constructor(
    private readonly store: JobStoreInternals,
    readonly rec: number,
    id: string | null = null,
  ) {
    const page = rec >>> PAGE_SHIFT;
    this.u = store.records.u32[page]!;
    this.f = store.records.f64[page]!;
    this.o = (rec & PAGE_MASK) * REC_WORDS;
    this.gen = recordGen(this.u, this.o);
    this.idString = id;
  }

  /** Still in the store (and the same job the handle was made for). */
  get registered(): boolean {
    const u = this.u;
    return (u[this.o + W_FLAGS]! & (JOB_FLAG_REGISTERED << FLAGS_SHIFT)) !== 0 && recordGen(u, this.o) === this.gen;
  }

  get id(): string {
    return (this.idString ??= this.store.idOf(this.rec));
  }

  /** Writes the 40 bytes of the ID at target[at] (no string made). */
  copyIdTo(target: Uint8Array, at: number): void {
    this.store.copyId(this.rec, target, at);
  }

  get state(): number {
    return (this.u[this.o + W_STATE]! >>> STATE_SHIFT) & 3;
  }
  set state(v: number) {
    const w = this.u[this.o + W_STATE]!;
    const old = (w >>> STATE_SHIFT) & 3;
    this.store.stateChanged(old, v);
    // Scheduled jobs are active ones (JobTable.isScheduled): only that edge can move one.
    const watch = (old === JobState.Active) !== (v === JobState.Active) && this.mayBeScheduled();
    if (watch) this.store.leaveScheduled(this.rec);
    this.u[this.o + W_STATE] = (w & ~(3 << STATE_SHIFT)) | ((v & 3) << STATE_SHIFT);
    if (watch) this.store.enterScheduled(this.rec);
  }

  /** Never queued by this node: the scheduled list may hold it (cheap pre-check). */
  private mayBeScheduled(): boolean {
    return ((this.u[this.o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_BCAST_QUEUED) === 0;
  }

  get gcRetry(): number {
    return (this.u[this.o + W_STATE]! >>> GC_SHIFT) & 15;
  }
  set gcRetry(v: number) {
    const w = this.u[this.o + W_STATE]!;
    this.u[this.o + W_STATE] = (w & ~(15 << GC_SHIFT)) | ((v & 15) << GC_SHIFT);
  }

  get flags(): number {
    return this.u[this.o + W_FLAGS]! >>> FLAGS_SHIFT;
  }
  set flags(v: number) {
    const w = this.u[this.o + W_FLAGS]!;
    const watch = ((w >>> FLAGS_SHIFT) ^ v) & JOB_FLAG_BCAST_QUEUED;
    if (watch) this.store.leaveScheduled(this.rec);
    this.u[this.o + W_FLAGS] = (w & QUEUE_MASK) | ((v & 0xff) << FLAGS_SHIFT);
    if (watch) this.store.enterScheduled(this.rec);
  }

  get repl(): number {
    return this.u[this.o + W_GEN]! & REPL_MASK;
  }
  set repl(v: number) {
    const w = this.u[this.o + W_GEN]!;
    this.u[this.o + W_GEN] = (w & ~REPL_MASK) | (v & REPL_MASK);
  }

  get ctime(): number {
    return this.f[(this.o >> 1) + F_CTIME]!;
  }
  set ctime(v: number) {
    this.f[(this.o >> 1) + F_CTIME] = v;
  }

  get etime(): number {
    return this.f[(this.o >> 1) + F_ETIME]!;
  }
  set etime(v: number) {
    this.f[(this.o >> 1) + F_ETIME] = v;
  }

  get qtime(): number {
    return this.f[(this.o >> 1) + F_QTIME]!;
  }
  set qtime(v: number) {
    // A scheduled list is ordered by qtime: out before the change, back in after.
    const watch = this.mayBeScheduled() && ((this.u[this.o + W_STATE]! >>> STATE_SHIFT) & 3) === JobState.Active;
    if (watch) this.store.leaveScheduled(this.rec);
    this.f[(this.o >> 1) + F_QTIME] = v;
    if (watch) this.store.enterScheduled(this.rec);
  }

  get cseq(): number {
    return this.u[this.o + W_SEQ]! & CSEQ_MASK;
  }
  set cseq(v: number) {
    const w = this.u[this.o + W_SEQ]!;
    this.u[this.o + W_SEQ] = (w & ~CSEQ_MASK) | Math.min(v, CSEQ_MASK);
  }

  get delay(): number {
    return this.u[this.o + W_DELAY]!;
  }
  set delay(v: number) {
    this.u[this.o + W_DELAY] = v;
  }

  get retry(): number {
    return this.u[this.o + W_RETRY]!;
  }
  set retry(v: number) {
    this.u[this.o + W_RETRY] = v;
  }

  /** NACKs seen (16 bits, as the reference). */
  get nacks(): number {
    return this.u[this.o + W_COUNTS]! & 0xffff;
  }
  set nacks(v: number) {
    const w = this.u[this.o + W_COUNTS]!;
    this.u[this.o + W_COUNTS] = (w & 0xffff0000) | (v & 0xffff);
  }

  /** Additional deliveries seen (16 bits, as the reference). */
  get deliveries(): number {
    return this.u[this.o + W_COUNTS]! >>> 16;
  }
  set deliveries(v: number) {
    const w = this.u[this.o + W_COUNTS]!;
    this.u[this.o + W_COUNTS] = (w & 0xffff) | ((v & 0xffff) << 16);
  }

  /** Next time the scheduler looks at this job, or NEVER. */
  get awake(): number {
    return this.store.awakeOf(this.rec);
  }

  /** Queue name, or null for a dummy ack. */
  get queue(): string | null {
    return this.store.queueNames.name(this.u[this.o + W_FLAGS]! & QUEUE_MASK);
  }

  /** The body as a latin1 string (a copy; replies and frames copy the bytes instead). */
  get body(): string | null {
    if ((this.u[this.o + W_FLAGS]! & QUEUE_MASK) === 0) return null;
    const len = this.bodyLength;
    if (len === 0) return '';
    const at = this.bodyOffset();
    return this.bodyBytes().latin1Slice(at, at + len);
  }

  get bodyLength(): number {
    return this.store.bodyLengthOf(this.rec);
  }

  /** The memory holding the body: body bytes are bodyBytes()[bodyOffset(), + bodyLength). */
  bodyBytes(): Buffer {
    return this.store.bodyBytesOf(this.rec);
  }

  bodyOffset(): number {
    return this.store.bodyOffsetOf(this.rec);
  }

  /** Nodes that may have a copy (job.delivered in the reference's README). */
  get delivered(): NodeIdList {
    return this.store.nodeLists.list(this.u[this.o + W_STATE]! & NODES_MASK);
  }
  set delivered(list: NodeIdList) {
    this.store.setNodes(this.rec, list);
  }

  /** Adds a node to the delivered list (cheaper than assigning a new list). */
  addDelivered(node: string): void {
    this.store.addNode(this.rec, node);
  }

  /** Nodes that confirmed: GOTJOB while replicating, GOTACK while collecting. */
  get confirmed(): Set<string> | null {
    return this.store.confirmedOf(this.rec);
  }
  set confirmed(s: Set<string> | null) {
    this.store.setConfirmed(this.rec, s);
  }

  /** The key ADDJOB UNIQUE gave it (while not acknowledged), or null. */
  get unique(): string | null {
    return this.store.uniqueKeyOf(this.rec);
  }

  get isDummyAck(): boolean {
    return (this.u[this.o + W_STATE]! & NODES_MASK) === 0;
  }
}

/** What a Job handle needs from the store that holds its record. */
export interface JobStoreInternals {
  readonly records: JobRecords;
  readonly queueNames: QueueNames;
  readonly nodeLists: NodeLists;
  idOf(rec: number): string;
  copyId(rec: number, target: Uint8Array, at: number): void;
  stateChanged(from: number, to: number): void;
  awakeOf(rec: number): number;
  bodyLengthOf(rec: number): number;
  bodyBytesOf(rec: number): Buffer;
  bodyOffsetOf(rec: number): number;
  setNodes(rec: number, list: NodeIdList): void;
  addNode(rec: number, node: string): void;
  confirmedOf(rec: number): Set<string> | null;
  setConfirmed(rec: number, s: Set<string> | null): void;
  uniqueKeyOf(rec: number): string | null;
  /** Around changes of state, flags and qtime: keeps the scheduled lists right. */
  leaveScheduled(rec: number): void;
  enterScheduled(rec: number): void;
}

export function nodeListHas(list: NodeIdList, id: string): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === id) return true;
  return false;
}

/** Returns `list` with `id` added (a new array), or `list` itself if present. */
export function nodeListAdd(list: NodeIdList, id: string): NodeIdList {
  return nodeListHas(list, id) ? list : [...list, id];
}
