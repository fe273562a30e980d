// What a command may see and do: the node as commands know it. The server's
// Node and Connection implement these interfaces; commands never import the
// server, the concrete Cluster or the Persistence classes (docs/architecture.md).
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { JobStore } from '../core/store.js';
import type { Job } from '../core/job.js';
import type { AnyJob } from '../core/job-codec.js';
import type { Queue, QueueWaiter } from '../core/queue.js';
import type { RateLimit } from '../core/policy.js';
import type { Client } from '../protocol/client.js';
import type { ReplyBuffer } from '../protocol/reply.js';

/** The reference's command flags, as COMMAND reports them. */
export type CommandFlag =
  | 'write'
  | 'readonly'
  | 'denyoom'
  | 'admin'
  | 'random'
  | 'loading'
  | 'skip_monitor'
  | 'fast'
  | 'noauth';

/**
 * One execution of a command. Arguments are latin1 strings (byte for byte).
 * Each connection reuses one Call (argv changes): keep what you need of it,
 * not the Call, past the handler.
 */
export interface Call {
  readonly node: CommandNode;
  readonly client: CommandClient;
  argv: string[];
  /**
   * The bytes of argv[spec.bodyArg] when the request carried that argument
   * as bytes (a long one: argv holds '' there), else null. A view of the
   * request's memory: copy what must outlive the handler.
   */
  body: Buffer | null;
  readonly reply: ReplyBuffer;
}

export interface CommandSpec {
  name: string;
  /** Positive: exact argument count (name included); negative: at least -arity. */
  arity: number;
  flags: readonly CommandFlag[];
  handler: (call: Call) => void;
  /** Position in argv of an argument the handler takes as bytes when it is long (Call.body): a job body. */
  bodyArg?: number;
  /**
   * Positions in argv of secrets (passwords): MONITOR and SLOWLOG show
   * "(redacted)" there, as Redis does. Only asked when a command is shown.
   */
  secretArgs?: (argv: readonly string[]) => number[];
}

/** A command as COMMAND, INFO commandstats and CONFIG RESETSTAT see it. */
export interface CommandEntry {
  readonly name: string;
  readonly arity: number;
  readonly flags: ReadonlySet<CommandFlag>;
  calls: number;
  usec: number;
}

export interface CommandTableView {
  /** The command named `name`, whatever its case. */
  lookup(name: string): CommandEntry | undefined;
  all(): CommandEntry[];
  readonly size: number;
}

/** A client as commands see it. */
export interface CommandClient extends Client, QueueWaiter {
  readonly addr: string;
  name: string | null;
  authenticated: boolean;
  /** Connected over TLS. */
  readonly tls: boolean;
  /** GETJOB WITHCOUNTERS of the current blocking GETJOB. */
  withCounters: boolean;
  readonly blocked: boolean;
  /** Bytes received and not yet parsed (INFO clients). */
  readonly pendingInput: number;
  /** QUIT: send what is buffered, then close. */
  closeAfterReplies(): void;
  close(): void;
  /** One line of CLIENT LIST. */
  info(now: number): string;
}

/** What commands ask of the cluster. */
export interface ClusterView {
  readonly myself: { readonly id: string };
  readonly nodes: { readonly size: number };
  /** Nodes not in handshake, myself included. */
  readonly size: number;
  readonly reachableCount: number;
  readonly leaving: boolean;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly replication: {
    /** REPLJOB to `count` more nodes; returns how many were asked. */
    replicateJob(job: AnyJob, count: number, noreply: boolean): number;
    /** Blocks the ADDJOB client until the job reaches its replication level. */
    waitForReplication(client: Client, job: Job, timeoutMs: number, keepsCopy: boolean): void;
  };
  readonly federation: { needJobs(q: Queue, reachedZero: boolean): void };
  readonly acks: { tryJobGC(job: Job): void };
  broadcastWorking(job: Job): void;
  broadcastDelJob(job: Job): void;
  broadcastDelJobId(id: string): void;
  broadcastPause(queue: string, flags: number): void;
  /** NACK DELAY: tells the job's other owners (NACKDELAY) to wait for the delay plus their retry. */
  broadcastNackDelay(job: Job, delayMs: number): void;
  /**
   * QPOLICY SET/CLEAR: a new version of the queue's policy (both limits
   * null: cleared), applied here, split among the nodes and sent to them.
   */
  publishPolicy(queue: string, rate: RateLimit | null, concurrency: number | null): void;
  sendEnqueue(nodeId: string, id: string, delay: number): void;
  startHandshake(ip: string, port: number): 'started' | 'busy' | 'invalid';
  forget(id: string): string | undefined;
  reset(hard: boolean): void;
  setLeaving(on: boolean): void;
  saveNodesFile(): boolean;
  nodesDescription(excludeHandshake: boolean): string;
  /** tlsPort: 0 when the node has no TLS port. */
  helloEntries(): { id: string; ip: string; port: number; tlsPort: number; priority: number }[];
}

/** What commands ask of persistence. */
export interface PersistenceView {
  /** INFO persistence fields. */
  info(): [string, string | number][];
  /** DEBUG FLUSHALL: drop this node's persisted state. */
  flushAll(): void;
  /** BGREWRITEAOF: null when started, else the error reply. */
  startRewrite(): string | null;
}

export interface SlowlogEntry {
  id: number;
  time: number;
  usec: number;
  argv: string[];
}

export interface Stats {
  connectionsReceived: number;
  commandsProcessed: number;
  netInputBytes: number;
  netOutputBytes: number;
  rejectedConnections: number;
  /** ops/sec samples over the last ~1.6 s, taken every 100 ms. */
  opsSamples: number[];
  lastSampleCommands: number;
  lastSampleTime: number;
}

/** The node as commands see it. */
export interface CommandNode {
  readonly store: JobStore;
  readonly config: Config;
  readonly log: Logger;
  readonly cluster: ClusterView;
  readonly persistence: PersistenceView;
  readonly commands: CommandTableView;
  readonly clients: ReadonlySet<CommandClient>;
  /** Clients that ran MONITOR: they see every command. */
  readonly monitors: Set<CommandClient>;
  readonly stats: Stats;
  readonly slowlog: SlowlogEntry[];
  /** LATENCY: samples per event over latency-monitor-threshold. */
  readonly latencyEvents: Map<string, { time: number; ms: number }[]>;
  /** Garbage-collection pauses seen since start (INFO memory). */
  readonly gcStats: { readonly count: number; readonly totalMs: number; readonly maxMs: number };
  readonly runId: string;
  readonly port: number;
  readonly uptimeSeconds: number;
  /** Set while reloading persisted jobs. */
  readonly loading: boolean;
  instantaneousOps(): number;
  /** Stops serving; with rewrite, writes a full snapshot first. */
  shutdown(opts: { rewrite?: boolean }): Promise<void>;
  /** Ends the process after SHUTDOWN (the bin exits; tests do not). */
  exit(code: number): void;
}
