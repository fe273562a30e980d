// Option objects and typed replies of the Disque commands.
import type { Codec } from './codec.js';

/** A job as GETJOB and QPEEK return it. */
export interface Job<T = Buffer> {
  /** Job ID, `D-<node prefix>-<random>-<ttl>`. */
  id: string;
  /** The queue the job was taken from. */
  queue: string;
  /** The body, decoded by the codec in use. */
  body: T;
  /** NACKs received so far (GETJOB with `withCounters` only). */
  nacks?: number;
  /** Deliveries not caused by a NACK, e.g. retry timeouts (GETJOB with `withCounters` only). */
  additionalDeliveries?: number;
  /**
   * When the job was created, to the millisecond (with `withCreatedAt` only;
   * undefined if no node could SHOW it). Job IDs carry no time: it comes from SHOW.
   */
  createdAt?: Date;
}

/** Options of ADDJOB. Times are in seconds except `timeout`. */
export interface AddJobOptions<T = unknown> {
  /** Nodes that must hold a copy. Default: the server's (3, or fewer in smaller clusters). */
  replicate?: number;
  /** Seconds before the job is first queued. Default 0. */
  delay?: number;
  /** Seconds without ACK after which the job is queued again; 0 means at most once delivery. Default: the server's (TTL/10, between 1 s and 5 min). */
  retry?: number;
  /** Seconds the job lives, delivered or not. Default: the server's (1 day). */
  ttl?: number;
  /** Refuse the job (MaxLenError) if the queue already holds this many jobs. */
  maxlen?: number;
  /** Reply at once and replicate in the background. Default false. */
  async?: boolean;
  /**
   * ADDJOB UNIQUE (disque-ts): while a job of this queue added with the same
   * key is held by the node and not acknowledged, nothing is added and its
   * ID is returned. Keys are 1 to 1024 bytes. See docs/unique.md.
   */
  unique?: string;
  /** Milliseconds to wait for synchronous replication before NoReplError (the ADDJOB `ms-timeout`). Default 0: no limit. */
  timeout?: number;
  /** Codec for this call instead of the client's. */
  codec?: Codec<T>;
}

/** Options of addJobs(): ADDJOB's, the same for every job, and the batch size. */
export interface AddJobsOptions<T = unknown> extends AddJobOptions<T> {
  /** Jobs sent per round trip (pipelined ADDJOBs). Default 1000. */
  batchSize?: number;
}

/** What addJobs() did with each body. */
export interface AddJobsResult {
  /** Job IDs in the order of the bodies; undefined where the job was not added. */
  ids: (string | undefined)[];
  /** The jobs not added, by index in the bodies, with why (CodecError, PausedError, MaxLenError, NoReplError...). Empty when all were added. */
  failed: { index: number; error: Error }[];
}

/** Options of GETJOB. */
export interface GetJobOptions<T = unknown> {
  /** Maximum jobs to return. Default 1. */
  count?: number;
  /** Milliseconds to block when no job is available; 0 blocks until one arrives. Default 0. */
  timeout?: number;
  /** Return at once (an empty array) when no job is available. Default false. */
  noHang?: boolean;
  /** Fill `nacks` and `additionalDeliveries` of each job. Default false. */
  withCounters?: boolean;
  /**
   * Fill `createdAt` of each job: one SHOW per job, pipelined in one more
   * round trip (the bodies travel twice). Default false.
   */
  withCreatedAt?: boolean;
  /** Codec for this call instead of the client's. */
  codec?: Codec<T>;
}

/** A job's state on the node that answers. */
export type JobState = 'wait-repl' | 'active' | 'queued' | 'acked' | 'unknown';

/** SHOW: a job as one node knows it. */
export interface JobDetails<T = Buffer> {
  id: string;
  queue: string;
  state: JobState;
  /** Replication factor. */
  replicate: number;
  /** Time to live in seconds, from creation. */
  ttl: number;
  /** Creation time as the server reports it (unix nanoseconds; beyond 2^53 precision is lost, see createdAt). */
  ctime: number;
  /** Creation time, to the millisecond. */
  createdAt: Date;
  delay: number;
  retry: number;
  nacks: number;
  additionalDeliveries: number;
  /** IDs of the nodes the job was replicated to. */
  nodesDelivered: string[];
  /** IDs of the nodes known to have acknowledged it. */
  nodesConfirmed: string[];
  /** Milliseconds until the job is queued again if not acknowledged (0 if never). */
  nextRequeueWithin: number;
  /** Milliseconds until the node next looks at the job. */
  nextAwakeWithin: number;
  /** The ADDJOB UNIQUE key (disque-ts), null when the job has none. */
  unique: string | null;
  body: T;
}

/** How a queue is paused. */
export type PauseState = 'none' | 'in' | 'out' | 'all';

/** QSTAT: a queue on the node that answers. */
export interface QueueStats {
  name: string;
  /** Jobs queued. */
  len: number;
  /** Seconds since the queue was created. */
  age: number;
  /** Seconds since the last operation on the queue. */
  idle: number;
  /** Clients blocked in GETJOB on the queue. */
  blocked: number;
  /** Nodes this node imports jobs from for this queue. */
  importFrom: string[];
  /** Jobs per second imported from other nodes. */
  importRate: number;
  /** Jobs ever queued. */
  jobsIn: number;
  /** Jobs ever dequeued. */
  jobsOut: number;
  pause: PauseState;
  /** Jobs scheduled to be queued later here (ADDJOB DELAY, NACK DELAY); undefined from servers without it (the reference). */
  delayed?: number;
  /** With a QPOLICY (disque-ts): this node's share of its limits and what it uses. */
  policy?: QueuePolicyUsage;
}

/** A queue's delivery limits (QPOLICY, disque-ts). */
export interface QueuePolicy {
  /** At most `jobs` deliveries in any `seconds`-long window, cluster-wide; null: none. */
  rate: { jobs: number; seconds: number } | null;
  /** At most this many jobs delivered and not yet acknowledged or NACKed, cluster-wide; null: none. */
  concurrency: number | null;
}

/** What `qpolicy(queue, ...)` sets: each limit given replaces the old one, null removes it, absent keeps it. */
export interface QueuePolicyUpdate {
  rate?: { jobs: number; seconds: number } | null;
  concurrency?: number | null;
}

/** QSTAT's policy field: this node's part of the cluster-wide limits (docs/policies.md). */
export interface QueuePolicyUsage {
  rateShare: number;
  rateUsed: number;
  concurrencyShare: number;
  inFlight: number;
  heldByRate: number;
  heldByConcurrency: number;
}

/** Options of NACK. */
export interface NackOptions {
  /**
   * Seconds (fractions allowed, to the millisecond) before the job goes back
   * to its queue, keeping its ID (NACK ... DELAY, disque-ts). Default 0: at once.
   */
  delay?: number;
}

/** A queue's jobs across the cluster (client.counts()), each job counted once however many copies it has. */
export interface QueueCounts {
  /** Jobs waiting in the queue on some node. */
  queued: number;
  /**
   * Jobs held by nodes but queued on none and past their delay: delivered
   * and not yet acknowledged (or waiting for their retry time after a
   * consumer that did not acknowledge them).
   */
  active: number;
  /** Jobs waiting for their DELAY before being queued the first time. */
  delayed: number;
  /** Jobs queued in the `deadLetterQueue` given (undefined without it). */
  deadLettered?: number;
  /** IDs of the nodes HELLO lists that could not be asked: their jobs are not counted. */
  unreachable: string[];
}

/** Options of QSCAN. */
export interface QScanOptions {
  /** Work hint per call. Server default 100. */
  count?: number;
  /** Ask the server to return everything in one call. Default false. */
  busyLoop?: boolean;
  /** Only queues with at least this many jobs. */
  minLen?: number;
  /** Only queues with at most this many jobs. */
  maxLen?: number;
  /** Only queues importing at least this many jobs per second. */
  importRate?: number;
}

/** Options of JSCAN. */
export interface JScanOptions<T = unknown> {
  /** Work hint per call. Server default 100. */
  count?: number;
  /** Ask the server to return everything in one call. Default false. */
  busyLoop?: boolean;
  /** Only jobs of this queue. */
  queue?: string;
  /** Only jobs in one of these states. */
  state?: JobState | JobState[];
  /** `'id'` (default) yields job IDs; `'all'` yields the SHOW details of each job. */
  reply?: 'id' | 'all';
  /** Codec for bodies when `reply` is `'all'`. */
  codec?: Codec<T>;
}

/** PAUSE options: which directions to pause, or `none` to clear. */
export type PauseOption = 'in' | 'out' | 'all' | 'none';

/** A node as HELLO reports it. */
export interface NodeInfo {
  /** Full 40 hex character node ID. */
  id: string;
  /** Client address; empty when the node does not know it. */
  host: string;
  port: number;
  /** Lower is better: 1 reachable, 5 no link, 10 possibly failing, 100 failing or leaving. */
  priority: number;
}

/** HELLO reply. */
export interface HelloReply {
  /** HELLO format version (1). */
  version: number;
  /** ID of the node that answered. */
  id: string;
  nodes: NodeInfo[];
}

/** INFO reply: section name (lower case) -> field -> value (numbers parsed). */
export type InfoReply = Record<string, Record<string, string | number>>;
