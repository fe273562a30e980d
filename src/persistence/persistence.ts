// Persistence of this node's jobs to Redis, turned on by `appendonly yes`
// (the reference's AOF directive). Redis holds, under keys of this node's ID
// (keys.ts), a snapshot of the jobs in chunks plus a journal of the changes
// since (format.ts). At start the node reads both and registers the jobs as
// the reference reloads its AOF.
//
// This file is the one the node uses; it wires the parts together and runs
// what involves several of them (turning appendonly on and off, recovery,
// DEBUG FLUSHALL, shutdown). The parts, each in its own file:
//   redis-tls.ts the redis-tls-* files of a rediss:// redis-url; TLS failures in words
//   health.ts    the Redis client, and whether writes work (-MISCONF, retry)
//   journal.ts   store changes to journal entries; the reply gate
//   snapshot.ts  snapshots: compaction and resync
//   loader.ts    loading at start-up and after Redis came back (reader.ts reads)
// A part imports only the parts listed before it; it reaches the later ones
// through the small interfaces handed to it here (HealthEvents, JournalOwner).
import type { PersistenceHost } from './host.js';
import type { StoreHooks } from '../core/store.js';
import { NodeKeys } from './keys.js';
import { RedisHealth, closeClient, redactUrl } from './health.js';
import { Journal, type Fsync } from './journal.js';
import { Snapshotter } from './snapshot.js';
import { Loader } from './loader.js';
import { PolicyWriter } from './policies.js';
import { readRedisTls, unusedTlsDirectives } from './redis-tls.js';

/** Persistence as /metrics, /readyz and the dashboard see it. */
export interface PersistenceStatus {
  /** appendonly is on. */
  enabled: boolean;
  /** INFO's aof_state: off, on, loading, wait_rewrite or the kind of failure. */
  state: string;
  /** Writes to Redis fail: write commands answer -MISCONF. */
  misconf: boolean;
  /** Journal records captured and not yet sent to Redis. */
  backlog: number;
  writesInFlight: number;
  /** Records and bytes of the journal in Redis (what the next snapshot drops). */
  journalRecords: number;
  journalBytes: number;
  /** Unix ms of the last snapshot (0: none yet), its size, jobs and duration (-1: none yet). */
  lastSnapshotTime: number;
  lastSnapshotBytes: number;
  lastSnapshotJobs: number;
  lastSnapshotMs: number;
}

/** How long a plain shutdown waits for the last journal write. */
const SHUTDOWN_DRAIN_MS = 5000;

export class Persistence {
  private readonly health: RedisHealth;
  private readonly journal: Journal;
  private readonly snapshots: Snapshotter;
  private readonly loader: Loader;
  private readonly policies: PolicyWriter;

  constructor(private readonly node: PersistenceHost) {
    this.health = new RedisHealth(node, {
      failed: () => {
        this.snapshots.abortRun();
        this.journal.holdPending();
      },
      ready: () => this.maybeRecover(),
    });
    this.journal = new Journal(node, this.health, {
      capturing: () =>
        this.health.enabled && !this.loader.loadingNow && (this.health.failure === null || this.snapshots.resyncRunning),
      written: () => this.maybeSnapshot(),
    });
    this.policies = new PolicyWriter(this.journal);
    this.snapshots = new Snapshotter(node, this.health, this.journal);
    this.loader = new Loader(node, this.health, this.journal, this.snapshots);
  }

  /** Journal hooks for the job store. */
  storeHooks(): StoreHooks {
    const journal = this.journal;
    return {
      persistJob: (job) => journal.record(job),
      persistDelete: (job) => journal.record(job.id),
      // Acked jobs are written acked (without their body) and reloaded so,
      // until their collection ends: a node that crashed after an ACKJOB
      // still tells the copies that missed it. The reference forgets them,
      // and such copies are queued again after RETRY.
      persistAck: (job) => journal.record(job),
      persistPolicy: (rec) => this.policies.record(rec),
    };
  }

  /** This node's keys under the current prefix and node ID. */
  private currentKeys(): NodeKeys {
    return new NodeKeys(this.node.config.str('redis-key-prefix'), this.node.cluster.myself.id);
  }

  /** Loads the persisted state (if enabled) before the node serves clients. */
  async start(): Promise<void> {
    const cfg = this.node.config;
    // Read even with appendonly no: CONFIG SET appendonly yes may need them
    // later, and a bad file is a start-up error rather than a later surprise.
    this.health.tls = readRedisTls(cfg);
    const unused = unusedTlsDirectives(cfg);
    if (unused.length > 0) this.node.log.warning(`${unused.join(', ')} ignored: redis-url is not a rediss:// URL`);
    this.journal.fsync = cfg.str('appendfsync') as Fsync;
    this.watchConfig();
    this.health.enabled = cfg.bool('appendonly');
    this.loader.enqueueOnce = cfg.bool('aof-enqueue-jobs-once');
    // As the reference: the controlled-restart flag loads even with appendonly no.
    if (!this.health.enabled && !this.loader.enqueueOnce) return;
    this.health.keys = this.currentKeys();
    await this.loader.loadAtStart(this.health.connect());
    if (!this.health.enabled) {
      // Loaded for a controlled restart only: nothing is kept in Redis meanwhile.
      if (!this.loader.loaded) this.node.log.warning('The controlled restart found Redis unreachable: queued jobs were not reloaded');
      this.loader.cancel();
      await this.detachAndWipe(true);
    }
  }

  // -------------------------------------------------------------- runtime

  private watchConfig(): void {
    const cfg = this.node.config;
    cfg.onChange('appendfsync', (v) => {
      this.journal.fsync = v as Fsync;
    });
    cfg.onChange('appendonly', (v) => {
      if (v === this.health.enabled) return;
      if (v) this.enable();
      else void this.disable();
    });
  }

  /** CONFIG SET appendonly yes: write a full snapshot of what we hold, then journal. */
  private enable(): void {
    const health = this.health;
    health.enabled = true;
    health.stopping = false;
    health.keys = this.currentKeys();
    this.loader.loaded = true;
    health.resyncWanted = true;
    health.retryAt = 0;
    health.failure = null;
    health.connect();
    this.maybeRecover();
    this.node.log.notice('Persistence to Redis turned on: writing a snapshot of the current jobs');
  }

  /** CONFIG SET appendonly no: stop writing, release waiting replies, drop what Redis holds. */
  private async disable(): Promise<void> {
    this.health.enabled = false;
    this.snapshots.abortRun();
    this.journal.clear();
    this.health.failure = null;
    this.health.resyncWanted = false;
    this.loader.cancel();
    this.node.log.notice('Persistence to Redis turned off');
    await this.detachAndWipe(true);
  }

  /**
   * Drops the client; with `wipe`, first deletes every key of this node
   * (appendonly turned off: what Redis holds would only be a stale state).
   * The client is detached at once, so a new one can start meanwhile.
   */
  private async detachAndWipe(wipe: boolean): Promise<void> {
    const keys = this.health.keys;
    const names = this.snapshots.detach(keys);
    this.journal.closeLink();
    const redis = this.health.detach();
    if (redis === null) return;
    if (wipe && keys !== null && redis.status === 'ready') await this.snapshots.wipe(redis, keys, names);
    await closeClient(redis);
  }

  /** Periodic work: snapshot triggers and recovery attempts. */
  cron(): void {
    if (!this.health.enabled) return;
    if (this.health.resyncWanted) this.maybeRecover();
    else this.maybeSnapshot();
  }

  /** Starts a compaction when a trigger says so, once the persisted state was loaded. */
  private maybeSnapshot(): void {
    if (this.loader.loaded) this.snapshots.maybeCompact();
  }

  // ------------------------------------------------------------- recovery

  /** Starts a resync when one is wanted and Redis can be asked. */
  private maybeRecover(): void {
    if (this.snapshots.run !== null || !this.health.recoveryDue()) return;
    void this.recover();
  }

  private async recover(): Promise<void> {
    const health = this.health;
    health.recovering = true;
    const epoch = health.epoch;
    try {
      if (!this.loader.loaded && !(await this.loader.loadAfterOutage(epoch))) return;
      if (health.failure !== null) this.node.log.notice('Persistence: Redis answers again, writing a fresh snapshot');
      await this.snapshots.start('resync').done;
    } catch (e) {
      if (epoch === health.epoch) health.fail(e as Error);
    } finally {
      health.recovering = false;
    }
  }

  // ------------------------------------------------------------- commands

  /** With `rewrite`, writes a full snapshot (SHUTDOWN REWRITE-AOF) before exiting. */
  async shutdown(rewrite: boolean): Promise<void> {
    try {
      if (rewrite) await this.rewriteForShutdown();
      if (this.health.enabled) await this.journal.drain(SHUTDOWN_DRAIN_MS);
    } finally {
      this.health.stopping = true;
      await this.detachAndWipe(false);
    }
  }

  private async rewriteForShutdown(): Promise<void> {
    const health = this.health;
    if (!health.enabled) {
      // A controlled restart works with appendonly no too, as in the reference.
      health.keys = this.currentKeys();
    }
    const redis = health.connect();
    await health.waitReady(redis, 5000);
    // Let an earlier resync attempt finish or fail first.
    while (health.recovering) await new Promise((r) => setTimeout(r, 10));
    const run = this.snapshots.start(!health.enabled || health.resyncWanted ? 'resync' : 'compact');
    await run.done;
    if (health.failure !== null || this.snapshots.lastBgStatus !== 'ok' || run.aborted) {
      throw new Error(`writing the snapshot to Redis failed: ${health.failure ?? 'aborted'}`);
    }
    this.node.log.notice(`Persistence: snapshot of ${this.snapshots.snapshotJobs} jobs written for the restart`);
  }

  /** DEBUG FLUSHALL, CLUSTER RESET: forget what is persisted for this node. */
  flushAll(): void {
    const health = this.health;
    if (!health.enabled || health.keys === null) return;
    this.loader.flushed();
    const fresh = this.currentKeys();
    if (fresh.meta !== health.keys.meta) {
      // CLUSTER RESET HARD gave us a new ID: the old ID's keys must go.
      this.snapshots.leaveKeys(health.keys);
      health.keys = fresh;
    }
    // An empty snapshot deletes the journal, the snapshot and meta.
    health.resyncWanted = true;
    if (health.failure === null && health.redis?.status === 'ready' && !health.recovering) {
      this.snapshots.start('resync');
    } else {
      this.snapshots.abortRun();
      this.journal.holdPending();
    }
  }

  /** BGREWRITEAOF: write a snapshot now; returns an error text or null. */
  startRewrite(): string | null {
    const health = this.health;
    if (!health.enabled) return 'ERR persistence to Redis is off (appendonly no)';
    if (health.failure !== null) return `ERR Can't write a snapshot to Redis now: ${health.failure}`;
    if (this.snapshots.run !== null || health.resyncWanted || health.recovering) {
      return 'ERR Background append only file rewriting already in progress';
    }
    this.snapshots.start('compact');
    return null;
  }

  /**
   * The gate of replies produced now: a number that must be released
   * (isReleased) before they are written, once Redis confirmed every journal
   * record produced so far; 0 when nothing waits (see Journal.replyGate).
   * The node is told when gates are released (PersistenceHost.repliesReleased).
   */
  replyGate(): number {
    return this.journal.replyGate();
  }

  /** Journal records captured since start (see Node.execute: which replies wait). */
  get capturedRecords(): number {
    return this.journal.captured;
  }

  isReleased(gate: number): boolean {
    return this.journal.isReleased(gate);
  }

  /** The reason writes currently fail, or null: write commands answer -MISCONF meanwhile. */
  writeError(command?: string): string | null {
    return this.health.writeError(command);
  }

  // ----------------------------------------------------------------- INFO

  private state(): string {
    const health = this.health;
    if (!health.enabled) return 'off';
    if (this.loader.loadingNow) return 'loading';
    if (health.failure !== null) return this.snapshots.resyncRunning ? 'wait_rewrite' : health.failureKind;
    if (health.resyncWanted) return 'wait_rewrite';
    return 'on';
  }

  /** For /metrics, /readyz and the dashboard. */
  status(): PersistenceStatus {
    const health = this.health;
    const snaps = this.snapshots;
    return {
      enabled: health.enabled,
      state: this.state(),
      misconf: health.failure !== null,
      backlog: this.journal.pendingRecords,
      writesInFlight: this.journal.writesInFlight,
      journalRecords: this.journal.records,
      journalBytes: this.journal.bytes,
      lastSnapshotTime: snaps.lastSnapshotTime,
      lastSnapshotBytes: snaps.snapshotBytes,
      lastSnapshotJobs: snaps.snapshotJobs,
      lastSnapshotMs: snaps.lastSnapshotMs,
    };
  }

  /** INFO Persistence fields. */
  info(): [string, string | number][] {
    const health = this.health;
    const snaps = this.snapshots;
    const run = snaps.run;
    const out: [string, string | number][] = [
      ['loading', this.node.loading ? 1 : 0],
      ['aof_enabled', health.enabled ? 1 : 0],
      ['aof_state', this.state()],
      ['aof_rewrite_in_progress', run !== null ? 1 : 0],
      ['aof_rewrite_scheduled', health.resyncWanted && run === null ? 1 : 0],
      ['aof_last_rewrite_time_sec', snaps.lastSnapshotMs < 0 ? -1 : Math.round(snaps.lastSnapshotMs / 1000)],
      ['aof_current_rewrite_time_sec', run !== null ? Math.floor((Date.now() - run.startedAt) / 1000) : -1],
      ['aof_last_bgrewrite_status', snaps.lastBgStatus],
      ['aof_last_write_status', health.lastWriteStatus],
    ];
    if (health.enabled) {
      out.push(
        ['aof_last_write_error', health.failure ?? ''],
        ['aof_redis_url', redactUrl(this.node.config.str('redis-url'))],
        ['aof_last_snapshot_time', Math.floor(snaps.lastSnapshotTime / 1000)],
        ['aof_last_snapshot_jobs', snaps.snapshotJobs],
        ['aof_last_snapshot_bytes', snaps.snapshotBytes],
        ['aof_journal_records', this.journal.records],
        ['aof_journal_bytes', this.journal.bytes],
        ['aof_pending_records', this.journal.pendingRecords],
      );
    }
    return out;
  }
}
