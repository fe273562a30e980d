// The job, the unit Disque stores, replicates and delivers (the reference's
// README, "Disque state machine", describes its fields and states).

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
/** Internal: the job is in the registry. */
export const JOB_FLAG_REGISTERED = 1 << 3;
/** Internal: the job's awake time changed and its schedule entry is pending. */
export const JOB_FLAG_AWAKE_PENDING = 1 << 4;
/** Flags that only make sense inside one process. */
export const JOB_INTERNAL_FLAGS = JOB_FLAG_REGISTERED | JOB_FLAG_AWAKE_PENDING;

/** WILLQUEUE is sent this many ms before the re-queue time. */
export const JOB_WILLQUEUE_ADVANCE = 500;
/** Default RETRY is TTL/10 but at most this many seconds. */
export const JOB_DEFAULT_RETRY_MAX = 300;
export const JOB_GC_RETRY_MIN_PERIOD = 1000;
export const JOB_GC_RETRY_MAX_PERIOD = 180_000;
export const JOB_GC_RETRY_COUNT_MAX = 10;

/** Marks "no time": a job that is never re-queued, or not scheduled. */
export const NEVER = -1;

/** A list of node IDs. Treated as immutable so jobs can share one array. */
export type NodeIdList = readonly string[];

export class Job {
  /** Queue name, or null for a dummy ack (an ACK about an unknown job). */
  queue: string | null = null;
  /** Body as a latin1 string (one char per byte), or null for a dummy ack. */
  body: string | null = null;
  /**
   * State (2 bits), GC attempt counter (4 bits) and flags, packed in one
   * small integer: there may be millions of jobs, and every field costs
   * 8 bytes each.
   */
  private bits: number;
  repl = 1;
  /** Creation time (clock-relative ms) and a counter for jobs created in the same ms. */
  ctime = 0;
  cseq = 0;
  /** Expire time, clock-relative ms. */
  etime = 0;
  /** Seconds. */
  delay = 0;
  retry = 0;
  nacks = 0;
  deliveries = 0;
  /** Nodes that may have a copy (job.delivered in the reference's README). */
  delivered: NodeIdList;
  /** Nodes that confirmed: GOTJOB while replicating, GOTACK while collecting. */
  confirmed: Set<string> | null = null;
  /** Next (re)queue time, clock-relative ms, or NEVER. */
  qtime = NEVER;
  /** Next time the scheduler looks at this job, or NEVER when unregistered. */
  awake = NEVER;
  /** Position of this job's entry in the schedule heap, -1 when it has none. */
  heapIndex = -1;
  /** Next job in the same registry bucket, and the ID's hash there. */
  next: Job | null = null;
  hash = 0;

  constructor(
    readonly id: string,
    state: number,
    delivered: NodeIdList,
  ) {
    this.bits = state;
    this.delivered = delivered;
  }

  get state(): number {
    return this.bits & 3;
  }
  set state(v: number) {
    this.bits = (this.bits & ~3) | v;
  }

  get gcRetry(): number {
    return (this.bits >> 2) & 15;
  }
  set gcRetry(v: number) {
    this.bits = (this.bits & ~(15 << 2)) | ((v & 15) << 2);
  }

  get flags(): number {
    return this.bits >> 6;
  }
  set flags(v: number) {
    this.bits = (this.bits & 63) | (v << 6);
  }

  get registered(): boolean {
    return (this.bits & (JOB_FLAG_REGISTERED << 6)) !== 0;
  }

  get isDummyAck(): boolean {
    return this.delivered.length === 0;
  }
}

/** Order of jobs in a queue: creation time, then counter, then ID. */
export function compareJobsByCtime(a: Job, b: Job): number {
  return a.ctime - b.ctime || a.cseq - b.cseq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function nodeListHas(list: NodeIdList, id: string): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === id) return true;
  return false;
}

/** Returns `list` with `id` added (a new array), or `list` itself if present. */
export function nodeListAdd(list: NodeIdList, id: string): NodeIdList {
  return nodeListHas(list, id) ? list : [...list, id];
}

export function nodeListRemove(list: NodeIdList, id: string): NodeIdList {
  return nodeListHas(list, id) ? list.filter((x) => x !== id) : list;
}
