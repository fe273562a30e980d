// Persistence of this node's jobs to Redis, turned on by `appendonly yes`
// (the reference's AOF directive). Redis holds, under keys of this node's ID
// (see keys.ts), a snapshot of the jobs in chunks plus a journal of the
// changes since (format.ts). At start the node reads both and registers the
// jobs as the reference reloads its AOF.
//
// Writing, in short:
// - Store hooks add records (a job to keep, or an ID to forget) to `pending`.
//   Once per event-loop turn they go out as one ZADD of journal entries;
//   only one such write is in flight, so everything produced meanwhile
//   travels in the next one (group commit). With appendfsync always or
//   everysec, client replies wait for the write that holds their records
//   (replyGate).
// - A snapshot captures the list of jobs at one moment T and takes the next
//   seq S: entries <= S are covered by it, later ones are replayed on top.
//   Chunks are written in the background; one MULTI then points meta at the
//   new snapshot, drops the old one and trims the journal, so the old
//   snapshot stays valid until the new one is whole.
// - When a write fails, the node stops capturing records (the next snapshot
//   will hold the state anyway), answers write commands -MISCONF, and
//   retries with backoff; once Redis answers it writes a fresh snapshot
//   (a "resync", which also replaces whatever Redis kept or lost) and
//   replies that were waiting are released.
import { Redis } from 'ioredis';
import type { PersistenceHost } from './host.js';
import type { StoreHooks } from '../core/store.js';
import { TIME_ERROR } from '../core/store.js';
import { Job, JobState, NEVER, JOB_FLAG_LOADED } from '../core/job.js';
import { decodeJob } from '../core/job-codec.js';
import { NodeKeys } from './keys.js';
import {
  CHUNK_BYTES,
  FORMAT_VERSION,
  estimateJobBytes,
  packChunk,
  packJournalEntry,
  type JournalRecord,
} from './format.js';
import { readState, replayState, type PersistedState } from './reader.js';

/** Bytes Redis spends per journal entry beyond the entry itself (skiplist node, dict entry). */
const ENTRY_OVERHEAD = 64;
/** Below this many journal bytes, size alone never triggers a snapshot. */
const JOURNAL_MIN_BYTES = 1024 * 1024;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** How long a plain shutdown waits for the last journal write. */
const SHUTDOWN_DRAIN_MS = 5000;

/**
 * Consumers keep working while Redis is failing: what these commands change
 * is either not persisted (deliveries, re-queue times) or safe to lose (an
 * ack lost in a crash means one more delivery, never a lost job).
 */
const ALLOWED_WHILE_FAILING = new Set(['getjob', 'ackjob', 'fastack', 'working', 'nack']);

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

type SnapshotKind = 'compact' | 'resync';

interface SnapshotRun {
  kind: SnapshotKind;
  /** Journal entries up to this seq are covered by the snapshot. */
  seq: number;
  startedAt: number;
  journalBytesAtT: number;
  journalRecordsAtT: number;
  aborted: boolean;
  done: Promise<void>;
}

class SnapshotAborted extends Error {}

/** The URL without its password, for logs and INFO. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

export class Persistence {
  /** appendonly: capture records and keep Redis in step. */
  private enabled = false;
  private fsync: 'always' | 'everysec' | 'no' = 'everysec';
  private redis: Redis | null = null;
  private keys: NodeKeys | null = null;
  /** Bumped when the client is dropped, so late callbacks of the old one are ignored. */
  private epoch = 0;
  /** Last journal seq handed out (entries and snapshots share the sequence). */
  private seq = 0;
  /** False while the persisted state could not be read yet (Redis down at start). */
  private loaded = true;
  private loadingNow = false;
  /** aof-enqueue-jobs-once was set for a load that has not happened yet. */
  private enqueueOnce = false;
  private stopping = false;

  // Journal writing.
  private pending: (Job | string)[] = [];
  private pendingGate: Deferred | null = null;
  private inflight: Deferred | null = null;
  private flushScheduled = false;
  /** Replies waiting for the next resync snapshot to commit. */
  private heldGates: Deferred[] = [];
  /** The held gate replies share while a resync is wanted (one per resync). */
  private resyncGate: Deferred | null = null;

  // Failure and recovery.
  private failure: string | null = null;
  private failureKind: 'redis_unreachable' | 'redis_error' = 'redis_error';
  private lastConnError = '';
  /** A resync snapshot must commit before journal entries go out again. */
  private resyncWanted = false;
  private recovering = false;
  private retryDelay = 0;
  private retryAt = 0;

  // Snapshots.
  private run: SnapshotRun | null = null;
  private committedSnap: number | null = null;
  /** Snapshot keys that may be left by aborted runs: deleted at the next prepare or commit. */
  private abandoned = new Set<number>();
  /** Keys of a previous node ID (CLUSTER RESET HARD), deleted once Redis answers. */
  private staleKeys: string[] = [];
  /** Bumped by flushAll, so a state read before it is not applied after it. */
  private flushes = 0;

  // Statistics (INFO).
  private journalRecords = 0;
  private journalBytes = 0;
  private snapshotJobs = 0;
  private snapshotBytes = 0;
  private lastSnapshotTime = 0;
  /** Date.now() of the last snapshot, or of the moment journaling began: snapshot-seconds counts from it. */
  private snapshotDue = Date.now();
  private lastSnapshotMs = -1;
  private lastBgStatus: 'ok' | 'err' = 'ok';
  private lastWriteStatus: 'ok' | 'err' = 'ok';
  /** Running sums of estimated put sizes, to estimate the encoded size of live jobs. */
  private putBytes = 0;
  private puts = 0;

  constructor(private readonly node: PersistenceHost) {}

  // ---------------------------------------------------------------- hooks

  /** Journal hooks for the job store. */
  storeHooks(): StoreHooks {
    return {
      persistJob: (job) => this.record(job),
      persistDelete: (job) => this.record(job.id),
      // Acked jobs are never reloaded (as in the reference): forget them.
      persistAck: (job) => this.record(job.id),
    };
  }

  private get capturing(): boolean {
    return this.enabled && !this.loadingNow && (this.failure === null || this.run?.kind === 'resync');
  }

  private record(r: Job | string): void {
    if (!this.capturing) return;
    this.pending.push(r);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushJournal);
    }
  }

  // ------------------------------------------------------------- start-up

  /** Loads the persisted state (if enabled) before the node serves clients. */
  async start(): Promise<void> {
    const cfg = this.node.config;
    this.fsync = cfg.str('appendfsync') as typeof this.fsync;
    this.watchConfig();
    this.enabled = cfg.bool('appendonly');
    this.enqueueOnce = cfg.bool('aof-enqueue-jobs-once');
    // As the reference: the controlled-restart flag loads even with appendonly no.
    if (!this.enabled && !this.enqueueOnce) return;
    this.keys = new NodeKeys(cfg.str('redis-key-prefix'), this.node.cluster.myself.id);
    const redis = this.connect();
    this.node.loading = true;
    this.loadingNow = true;
    const started = Date.now();
    this.node.log.notice(`Loading jobs from Redis at ${redactUrl(cfg.str('redis-url'))}, keys ${this.keys.meta.replace(/meta$/, '*')}`);
    try {
      await this.waitReady(redis, 10_000);
      const st = await readState(redis, this.keys, this.node.log);
      const n = this.applyState(st, this.enqueueOnce);
      this.node.log.notice(
        `DB loaded from Redis: ${n} jobs (snapshot of ${st.snapshotJobs}, ${st.journalRecords} journal records) in ${((Date.now() - started) / 1000).toFixed(3)} seconds`,
      );
      this.afterLoad(st);
    } catch (e) {
      this.loaded = false;
      this.node.log.warning(
        `Could not load jobs from Redis: ${oneLine((e as Error).message)}. Serving without them; they are loaded when Redis answers again.`,
      );
      if (this.enabled) this.fail(e as Error);
    } finally {
      this.loadingNow = false;
      this.node.loading = false;
    }
    if (!this.enabled) {
      // Loaded for a controlled restart only: nothing is kept in Redis meanwhile.
      if (!this.loaded) this.node.log.warning('The controlled restart found Redis unreachable: queued jobs were not reloaded');
      this.loaded = true;
      this.enqueueOnce = false;
      await this.detachAndWipe(true);
    }
  }

  private afterLoad(st: PersistedState): void {
    this.loaded = true;
    if (st.maxSeq > this.seq) this.seq = st.maxSeq;
    this.committedSnap = st.snapSeq > 0 ? st.snapSeq : null;
    if (st.pendingSeq !== null && st.pendingSeq !== st.snapSeq) this.abandoned.add(st.pendingSeq);
    this.journalRecords = st.journalRecords;
    this.journalBytes = st.journalBytes + st.journalEntries * ENTRY_OVERHEAD;
    this.snapshotJobs = st.snapshotJobs;
    this.snapshotBytes = st.snapshotBytes;
    this.lastSnapshotTime = st.snapshotTime;
    this.snapshotDue = st.snapshotTime > 0 ? Math.min(st.snapshotTime, Date.now()) : Date.now();
    // Damaged or foreign data: replace it with a clean snapshot at once.
    if (st.problems > 0 && this.enabled) this.resyncWanted = true;
    if (this.enqueueOnce) {
      // The reference turns the flag off after the load that used it.
      this.enqueueOnce = false;
      this.node.config.setValue('aof-enqueue-jobs-once', false);
      if (this.node.config.file !== null) {
        try {
          this.node.config.rewrite();
        } catch (e) {
          this.node.log.warning(`CONFIG REWRITE failed (executed to turn off aof-enqueue-jobs-once): ${(e as Error).message}`);
        }
      }
    }
  }

  /**
   * Registers the loaded jobs as the reference's LOADJOB does: queued jobs
   * come back active (the retry timer queues them again) unless `enqueue`
   * (controlled restart) puts them back in their queues. Records are applied
   * in the order written, a later state of a job replacing the earlier one;
   * expired jobs and jobs this node held before the load (Redis came back
   * late) are left alone. Returns how many jobs were added.
   */
  private applyState(st: PersistedState, enqueue: boolean): number {
    const store = this.node.store;
    const cluster = this.node.cluster;
    const now = store.clock.now();
    const intern = (id: string): string => cluster.internId(id) ?? id;
    const loaded = (job: Job | undefined): job is Job => job !== undefined && (job.flags & JOB_FLAG_LOADED) !== 0;
    replayState(st, this.node.log, (raw) => {
      if (typeof raw === 'string') {
        const gone = store.lookupJob(raw);
        if (loaded(gone)) store.unregisterJob(gone);
        return true;
      }
      const fields = decodeJob(raw, store.clock, true, intern, () => store.timeError(TIME_ERROR));
      if (fields === null) return false;
      const existing = store.lookupJob(fields.id);
      if (existing !== undefined) {
        if (!loaded(existing)) return true; // ours from before the load: it is newer
        store.unregisterJob(existing);
      }
      if (fields.state !== JobState.Active && fields.state !== JobState.Queued) return true;
      if (fields.etime <= now) return true;
      const wasQueued = fields.state === JobState.Queued;
      fields.state = JobState.Active;
      const job = store.addJob(fields);
      if (job === null) return true;
      job.flags |= JOB_FLAG_LOADED;
      if (enqueue && wasQueued) {
        // enqueueJob refuses a job that is never to be queued (at-most-once).
        if (job.qtime === NEVER) job.qtime = now;
        store.enqueueJob(job, false);
      }
      return true;
    });
    // The load is over: loaded jobs are like any other.
    let added = 0;
    for (let from = 1; from !== 0; ) {
      from = store.eachJob(from, 65536, (job) => {
        if (!loaded(job)) return;
        job.flags &= ~JOB_FLAG_LOADED;
        added++;
      });
    }
    return added;
  }

  // ---------------------------------------------------------------- Redis

  private connect(): Redis {
    if (this.redis !== null) return this.redis;
    const epoch = ++this.epoch;
    const url = this.node.config.str('redis-url');
    const redis = new Redis(url, {
      lazyConnect: true,
      // Fail fast instead of queueing: a write that cannot happen now is a
      // failure the node must know about (MISCONF, resync).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(RETRY_MIN_MS * 2 ** Math.min(times, 6), RETRY_MAX_MS),
      connectTimeout: 5000,
      commandTimeout: 30_000,
      protocol: 2,
      connectionName: `disque-${this.node.cluster.myself.id.slice(0, 8)}`,
      disableClientInfo: true,
    });
    redis.on('error', (e: Error) => {
      if (epoch !== this.epoch) return;
      this.lastConnError = oneLine(e.message);
      this.node.log.verbose(`Redis (persistence): ${this.lastConnError}`);
    });
    redis.on('close', () => {
      if (epoch !== this.epoch || this.stopping) return;
      if (this.enabled && this.failure === null) {
        this.fail(new Error(`connection to Redis lost${this.lastConnError ? ` (${this.lastConnError})` : ''}`), 'redis_unreachable');
      }
    });
    redis.on('ready', () => {
      if (epoch !== this.epoch) return;
      if (this.resyncWanted) {
        this.retryAt = 0;
        this.maybeRecover();
      }
    });
    redis.connect().catch(() => {
      // Reported through 'error' and 'close'; ioredis keeps reconnecting.
    });
    this.redis = redis;
    return redis;
  }

  private waitReady(redis: Redis, ms: number): Promise<void> {
    if (redis.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (e?: Error): void => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('close', onClose);
        if (e) reject(e);
        else resolve();
      };
      const onReady = (): void => done();
      const onClose = (): void => done(new Error(`Redis is unreachable${this.lastConnError ? ` (${this.lastConnError})` : ''}`));
      const timer = setTimeout(() => done(new Error('timed out connecting to Redis')), ms);
      redis.on('ready', onReady);
      redis.on('close', onClose);
    });
  }

  /** Every key this node may have written, for a wipe. */
  private allKeys(): string[] {
    const k = this.keys!;
    const out = [k.meta, k.journal];
    if (this.committedSnap !== null) out.push(k.snap(this.committedSnap));
    for (const s of this.abandoned) out.push(k.snap(s));
    if (this.run !== null) out.push(k.snap(this.run.seq));
    return out;
  }

  /**
   * Drops the client; with `wipe`, first deletes every key of this node
   * (appendonly turned off: what Redis holds would only be a stale state).
   * The client is detached at once, so a new one can start meanwhile.
   */
  private async detachAndWipe(wipe: boolean): Promise<void> {
    this.abortRun();
    const redis = this.redis;
    const keys = this.keys;
    const names = keys !== null ? [...this.allKeys(), ...this.staleKeys] : [...this.staleKeys];
    this.redis = null;
    this.epoch++;
    this.staleKeys = [];
    this.committedSnap = null;
    this.abandoned.clear();
    if (redis === null) return;
    if (wipe && keys !== null && redis.status === 'ready') {
      try {
        // Snapshot keys written by an earlier run of this node are named in meta.
        const meta = await redis.hgetall(keys.meta).catch(() => ({}) as Record<string, string>);
        for (const s of metaSeqs(meta)) names.push(keys.snap(s));
        await redis.unlink(...new Set(names));
      } catch (e) {
        this.node.log.warning(`Persistence: could not delete this node's keys in Redis: ${oneLine((e as Error).message)}`);
      }
    }
    try {
      await Promise.race([redis.quit(), new Promise((r) => setTimeout(r, 1000))]);
    } catch {
      // Already closed.
    }
    redis.disconnect();
  }

  // -------------------------------------------------------------- journal

  /** Sends what the store recorded since the last write, unless a write is in flight. */
  private readonly flushJournal = (): void => {
    this.flushScheduled = false;
    if (this.inflight !== null || this.pending.length === 0) return;
    // Held until the resync snapshot commits: they are replayed on top of it.
    if (this.resyncWanted || this.failure !== null || this.redis === null || this.keys === null) return;
    const records = this.pending;
    this.pending = [];
    const gate = this.pendingGate ?? deferred();
    this.pendingGate = null;

    const clock = this.node.store.clock;
    const args: (string | number | Buffer)[] = [this.keys.journal];
    let entry: JournalRecord[] = [];
    let est = 0;
    let count = 0;
    const cut = (): void => {
      const seq = ++this.seq;
      const buf = packJournalEntry(seq, entry, clock);
      args.push(seq, buf);
      this.journalBytes += buf.length + ENTRY_OVERHEAD;
      count += entry.length;
      entry = [];
      est = 0;
    };
    for (const r of records) {
      if (typeof r === 'string') {
        entry.push(r);
        est += r.length + 2;
      } else {
        // Deleted since it was recorded (its ID follows), or a dummy ack: nothing to keep.
        if (!r.registered || r.queue === null) continue;
        const size = estimateJobBytes(r);
        this.putBytes += size;
        this.puts++;
        entry.push(r);
        est += size;
      }
      if (est >= CHUNK_BYTES) cut();
    }
    if (entry.length > 0) cut();
    if (args.length === 1) {
      gate.resolve();
      return;
    }
    this.journalRecords += count;
    this.inflight = gate;
    const epoch = this.epoch;
    this.redis.call('ZADD', args).then(
      () => {
        if (epoch !== this.epoch) return;
        this.inflight = null;
        this.lastWriteStatus = 'ok';
        gate.resolve();
        this.flushJournal();
        // Checked per write, not only per cron tick, so the journal never runs far past its limits.
        this.maybeSnapshot();
      },
      (e: Error) => {
        if (epoch !== this.epoch) return;
        this.inflight = null;
        this.heldGates.push(gate);
        this.fail(e);
      },
    );
  };

  /**
   * A promise that resolves once every journal record produced so far is
   * confirmed by Redis, or null when nothing is pending (or appendfsync is
   * no). Client replies produced now wait for it.
   */
  replyGate(): Promise<void> | null {
    if (this.fsync === 'no') return null;
    if (this.pending.length > 0) {
      if (this.pendingGate === null) this.pendingGate = deferred();
      return this.pendingGate.promise;
    }
    if (this.inflight !== null) return this.inflight.promise;
    // A resync (appendonly just turned on, DEBUG FLUSHALL) replaces what
    // Redis holds: replies wait until it is in place. While Redis is failing
    // nothing is captured, and replies do not wait.
    if (this.resyncWanted && this.failure === null && this.enabled) {
      if (this.resyncGate === null) {
        this.resyncGate = deferred();
        this.heldGates.push(this.resyncGate);
      }
      return this.resyncGate.promise;
    }
    return null;
  }

  /** Waits (a bounded time) for captured records to reach Redis. */
  private async drainJournal(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while ((this.pending.length > 0 || this.inflight !== null) && this.failure === null && !this.resyncWanted) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.node.log.warning('Persistence: the last journal write did not complete before shutdown');
        return;
      }
      this.flushJournal();
      const wait = this.inflight?.promise ?? new Promise<void>((r) => setImmediate(r));
      await Promise.race([wait, new Promise((r) => setTimeout(r, left))]);
    }
  }

  // ------------------------------------------------------ failure, resync

  /** A write failed: refuse writes, drop captured records (the resync covers them), retry later. */
  private fail(e: Error, kind?: 'redis_unreachable' | 'redis_error'): void {
    const reason = oneLine(e instanceof SnapshotAborted ? 'snapshot aborted' : e.message);
    this.failureKind = kind ?? (this.redis?.status === 'ready' ? 'redis_error' : 'redis_unreachable');
    this.lastWriteStatus = 'err';
    if (this.failure === null) {
      this.node.log.warning(`Persistence: writing to Redis failed (${reason}). Write commands are refused with -MISCONF until Redis is back.`);
    }
    this.failure =
      this.failureKind === 'redis_unreachable' && this.redis?.status !== 'ready'
        ? `Redis is unreachable (${reason})`
        : reason;
    this.resyncWanted = true;
    this.abortRun();
    if (this.pendingGate !== null) this.heldGates.push(this.pendingGate);
    this.pendingGate = null;
    this.pending = [];
    this.retryDelay = Math.min(Math.max(RETRY_MIN_MS, this.retryDelay * 2), RETRY_MAX_MS);
    this.retryAt = Date.now() + this.retryDelay;
  }

  private abortRun(): void {
    const run = this.run;
    if (run === null) return;
    run.aborted = true;
    this.abandoned.add(run.seq);
    this.run = null;
  }

  /** Starts a resync when one is wanted and Redis can be asked. */
  private maybeRecover(): void {
    if (!this.resyncWanted || this.recovering || this.run !== null || this.stopping) return;
    if (!this.enabled || this.redis === null || this.redis.status !== 'ready') return;
    if (Date.now() < this.retryAt) return;
    void this.recover();
  }

  private async recover(): Promise<void> {
    this.recovering = true;
    const epoch = this.epoch;
    try {
      if (!this.loaded) {
        // The start-up load failed: read what Redis has now and add the jobs we lack.
        const flushes = this.flushes;
        const st = await readState(this.redis!, this.keys!, this.node.log);
        if (epoch !== this.epoch || flushes !== this.flushes) return;
        const n = this.applyState(st, this.enqueueOnce);
        this.node.log.notice(`DB loaded from Redis after it came back: ${n} jobs`);
        this.afterLoad(st);
        this.node.afterEvent();
      }
      if (this.failure !== null) this.node.log.notice('Persistence: Redis answers again, writing a fresh snapshot');
      await this.startSnapshot('resync').done;
    } catch (e) {
      if (epoch === this.epoch) this.fail(e as Error);
    } finally {
      this.recovering = false;
    }
  }

  // ------------------------------------------------------------ snapshots

  /**
   * Captures the jobs now (time T) and writes them in the background. A
   * compaction lets the journal go on (entries after T are replayed on top);
   * a resync holds journal entries back until it commits, then deletes the
   * whole old journal.
   */
  private startSnapshot(kind: SnapshotKind): SnapshotRun {
    this.abortRun();
    const run: SnapshotRun = {
      kind,
      seq: ++this.seq,
      startedAt: Date.now(),
      journalBytesAtT: this.journalBytes,
      journalRecordsAtT: this.journalRecords,
      aborted: false,
      done: Promise.resolve(),
    };
    if (kind === 'resync') {
      // Records captured before T are in the snapshot; their replies wait for it.
      this.resyncWanted = true;
      if (this.pendingGate !== null) this.heldGates.push(this.pendingGate);
      this.pendingGate = null;
      this.pending = [];
    }
    this.run = run;
    run.done = this.writeSnapshot(run);
    return run;
  }

  private async writeSnapshot(run: SnapshotRun): Promise<void> {
    const redis = this.redis!;
    const keys = this.keys!;
    const clock = this.node.store.clock;
    const check = (): void => {
      if (run.aborted) throw new SnapshotAborted();
    };
    let chunks = 0;
    let jobs = 0;
    let bytes = 0;
    try {
      // Yield first: the caller may still be inside a command.
      await new Promise<void>((r) => setImmediate(r));
      check();
      if (run.kind === 'resync') {
        // Whatever Redis holds for us is replaced: learn its snapshot keys to delete them.
        let meta: Record<string, string> = {};
        try {
          meta = await redis.hgetall(keys.meta);
        } catch (e) {
          if (!(e instanceof Error && e.message.startsWith('WRONGTYPE'))) throw e;
          await redis.del(keys.meta);
        }
        check();
        for (const s of metaSeqs(meta)) if (s !== run.seq) this.abandoned.add(s);
        if (this.committedSnap !== null) this.abandoned.add(this.committedSnap);
        this.committedSnap = null;
      }
      let prepared = false;
      // The jobs are read in record order, a chunk at a time: every job held
      // at T and still held when its turn comes is written (jobs added since
      // may be too; the journal after T has them anyway).
      const store = this.node.store;
      let cursor = 1;
      while (cursor !== 0) {
        const batch: Job[] = [];
        let est = 0;
        while (cursor !== 0 && est < CHUNK_BYTES) {
          cursor = store.eachJob(cursor, 64, (job) => {
            if (job.state !== JobState.Active && job.state !== JobState.Queued) return;
            batch.push(job);
            est += estimateJobBytes(job);
          });
        }
        if (batch.length === 0) continue;
        // Encoded now: the handles are only good until the next await.
        const buf = packChunk(batch, clock);
        if (!prepared) {
          // Mark the snapshot as pending so a crash leaves a key we know to delete.
          const leftovers = [keys.snap(run.seq), ...[...this.abandoned].map((s) => keys.snap(s))];
          const res = await redis.multi().unlink(...leftovers).hset(keys.meta, 'v', FORMAT_VERSION, 'pending', run.seq).exec();
          check();
          throwIfFailed(res);
          this.abandoned.clear();
          prepared = true;
        }
        await redis.rpush(keys.snap(run.seq), buf);
        check();
        chunks++;
        jobs += batch.length;
        bytes += buf.length;
      }

      const m = redis.multi();
      const time = clock.base + clock.now();
      if (jobs > 0) {
        m.hset(keys.meta, 'v', FORMAT_VERSION, 'snap', run.seq, 'time', time, 'jobs', jobs, 'bytes', bytes, 'chunks', chunks);
        m.hdel(keys.meta, 'pending');
      } else {
        // Nothing to keep: no meta and no snapshot key at all.
        m.del(keys.meta);
      }
      const drop = [...this.abandoned].map((s) => keys.snap(s));
      if (this.committedSnap !== null && this.committedSnap !== run.seq) drop.push(keys.snap(this.committedSnap));
      if (drop.length > 0) m.unlink(...drop);
      if (run.kind === 'resync') m.del(keys.journal);
      else m.zremrangebyscore(keys.journal, '-inf', run.seq);
      const res = await m.exec();
      check();
      throwIfFailed(res);
      this.abandoned.clear();
      this.committed(run, jobs, bytes);
    } catch (e) {
      if (run.aborted) return;
      this.run = null;
      this.abandoned.add(run.seq);
      this.lastBgStatus = 'err';
      this.node.log.warning(`Persistence: snapshot failed: ${oneLine((e as Error).message)}`);
      this.fail(e as Error);
    }
  }

  private committed(run: SnapshotRun, jobs: number, bytes: number): void {
    this.run = null;
    this.committedSnap = jobs > 0 ? run.seq : null;
    this.journalBytes -= run.journalBytesAtT;
    this.journalRecords -= run.journalRecordsAtT;
    this.snapshotJobs = jobs;
    this.snapshotBytes = bytes;
    this.lastSnapshotTime = this.node.store.clock.base + this.node.store.clock.now();
    this.snapshotDue = Date.now();
    this.lastSnapshotMs = Date.now() - run.startedAt;
    this.lastBgStatus = 'ok';
    this.node.log.verbose(`Persistence: snapshot of ${jobs} jobs (${bytes} bytes) written in ${this.lastSnapshotMs} ms`);
    if (this.staleKeys.length > 0 && this.redis !== null) {
      const stale = this.staleKeys;
      this.staleKeys = [];
      this.redis.unlink(...stale).catch(() => {
        this.staleKeys.push(...stale);
      });
    }
    if (run.kind === 'resync') {
      const wasFailing = this.failure !== null;
      this.failure = null;
      this.resyncWanted = false;
      this.retryDelay = 0;
      this.lastWriteStatus = 'ok';
      const gates = this.heldGates;
      this.heldGates = [];
      this.resyncGate = null;
      for (const g of gates) g.resolve();
      if (wasFailing) this.node.log.notice('Persistence: snapshot written, Redis writes are accepted again');
      else this.node.log.notice('Persistence: snapshot written, journaling to Redis');
      this.flushJournal();
    }
  }

  /** Starts a compaction when a trigger says so. */
  private maybeSnapshot(): void {
    if (!this.enabled || !this.loaded || this.run !== null || this.resyncWanted || this.failure !== null) return;
    if (this.stopping || this.redis === null) return;
    const cfg = this.node.config;
    const recordsMax = cfg.int('snapshot-journal-max');
    const seconds = cfg.int('snapshot-seconds');
    // Redis holds snapshot + journal: keep that within twice the live jobs' size.
    const bySize = this.journalBytes >= JOURNAL_MIN_BYTES && this.snapshotBytes + this.journalBytes > 2 * this.liveBytesEstimate();
    const byTime = seconds > 0 && this.journalRecords > 0 && Date.now() - this.snapshotDue >= seconds * 1000;
    // By count of the records a new snapshot would drop (jobs since deleted,
    // their deletions, superseded states), once they are recordsMax and as
    // many as the live jobs: a set that only grows is never rewritten (the
    // rewrite would hold the same records), and each rewrite is paid for by
    // as many dropped records (amortized O(1) per record).
    const live = this.node.store.jobCount;
    const dropped = this.snapshotJobs + this.journalRecords - live;
    const byCount = dropped >= Math.max(recordsMax, live);
    if (!byCount && !bySize && !byTime) return;
    this.startSnapshot('compact');
  }

  /** Encoded size of the jobs now held, from the average size seen so far. */
  private liveBytesEstimate(): number {
    const n = this.snapshotJobs + this.puts;
    const avg = n > 0 ? (this.snapshotBytes + this.putBytes) / n : 200;
    return this.node.store.jobCount * avg;
  }

  // -------------------------------------------------------------- runtime

  private watchConfig(): void {
    const cfg = this.node.config;
    cfg.onChange('appendfsync', (v) => {
      this.fsync = v as typeof this.fsync;
    });
    cfg.onChange('appendonly', (v) => {
      if (v === this.enabled) return;
      if (v) this.enable();
      else void this.disable();
    });
  }

  /** CONFIG SET appendonly yes: write a full snapshot of what we hold, then journal. */
  private enable(): void {
    this.enabled = true;
    this.stopping = false;
    this.keys = new NodeKeys(this.node.config.str('redis-key-prefix'), this.node.cluster.myself.id);
    this.loaded = true;
    this.resyncWanted = true;
    this.retryAt = 0;
    this.failure = null;
    this.connect();
    this.maybeRecover();
    this.node.log.notice('Persistence to Redis turned on: writing a snapshot of the current jobs');
  }

  /** CONFIG SET appendonly no: stop writing, release waiting replies, drop what Redis holds. */
  private async disable(): Promise<void> {
    this.enabled = false;
    this.abortRun();
    this.pending = [];
    const gates = [...this.heldGates, ...(this.pendingGate ? [this.pendingGate] : []), ...(this.inflight ? [this.inflight] : [])];
    this.heldGates = [];
    this.resyncGate = null;
    this.pendingGate = null;
    this.inflight = null;
    for (const g of gates) g.resolve();
    this.failure = null;
    this.resyncWanted = false;
    this.journalRecords = 0;
    this.journalBytes = 0;
    this.loaded = true;
    this.enqueueOnce = false;
    this.node.log.notice('Persistence to Redis turned off');
    await this.detachAndWipe(true);
  }

  /** Periodic work: snapshot triggers and recovery attempts. */
  cron(): void {
    if (!this.enabled) return;
    if (this.resyncWanted) this.maybeRecover();
    else this.maybeSnapshot();
  }

  /** With `rewrite`, writes a full snapshot (SHUTDOWN REWRITE-AOF) before exiting. */
  async shutdown(rewrite: boolean): Promise<void> {
    try {
      if (rewrite) await this.rewriteForShutdown();
      if (this.enabled) await this.drainJournal(SHUTDOWN_DRAIN_MS);
    } finally {
      this.stopping = true;
      await this.detachAndWipe(false);
    }
  }

  private async rewriteForShutdown(): Promise<void> {
    if (!this.enabled) {
      // A controlled restart works with appendonly no too, as in the reference.
      this.keys = new NodeKeys(this.node.config.str('redis-key-prefix'), this.node.cluster.myself.id);
    }
    const redis = this.connect();
    await this.waitReady(redis, 5000);
    // Let an earlier resync attempt finish or fail first.
    while (this.recovering) await new Promise((r) => setTimeout(r, 10));
    const run = this.startSnapshot(!this.enabled || this.resyncWanted ? 'resync' : 'compact');
    await run.done;
    if (this.failure !== null || this.lastBgStatus !== 'ok' || run.aborted) {
      throw new Error(`writing the snapshot to Redis failed: ${this.failure ?? 'aborted'}`);
    }
    this.node.log.notice(`Persistence: snapshot of ${this.snapshotJobs} jobs written for the restart`);
  }

  /** DEBUG FLUSHALL, CLUSTER RESET: forget what is persisted for this node. */
  flushAll(): void {
    if (!this.enabled || this.keys === null) return;
    this.flushes++;
    this.loaded = true;
    this.enqueueOnce = false;
    const id = this.node.cluster.myself.id;
    const fresh = new NodeKeys(this.node.config.str('redis-key-prefix'), id);
    if (fresh.meta !== this.keys.meta) {
      // CLUSTER RESET HARD gave us a new ID: the old ID's keys must go.
      this.staleKeys.push(...this.allKeys());
      this.abortRun();
      this.abandoned.clear();
      this.committedSnap = null;
      this.keys = fresh;
    }
    // An empty snapshot deletes the journal, the snapshot and meta.
    this.resyncWanted = true;
    if (this.failure === null && this.redis?.status === 'ready' && !this.recovering) {
      this.startSnapshot('resync');
    } else {
      this.abortRun();
      if (this.pendingGate !== null) this.heldGates.push(this.pendingGate);
      this.pendingGate = null;
      this.pending = [];
    }
  }

  /** BGREWRITEAOF: write a snapshot now; returns an error text or null. */
  startRewrite(): string | null {
    if (!this.enabled) return 'ERR persistence to Redis is off (appendonly no)';
    if (this.failure !== null) return `ERR Can't write a snapshot to Redis now: ${this.failure}`;
    if (this.run !== null || this.resyncWanted || this.recovering) {
      return 'ERR Background append only file rewriting already in progress';
    }
    this.startSnapshot('compact');
    return null;
  }

  /** The reason writes currently fail, or null: write commands answer -MISCONF meanwhile. */
  writeError(command?: string): string | null {
    if (this.failure === null) return null;
    if (command !== undefined && ALLOWED_WHILE_FAILING.has(command)) return null;
    return this.failure;
  }

  private state(): string {
    if (!this.enabled) return 'off';
    if (this.loadingNow) return 'loading';
    if (this.failure !== null) return this.run?.kind === 'resync' ? 'wait_rewrite' : this.failureKind;
    if (this.resyncWanted) return 'wait_rewrite';
    return 'on';
  }

  /** INFO Persistence fields. */
  info(): [string, string | number][] {
    const run = this.run;
    const out: [string, string | number][] = [
      ['loading', this.node.loading ? 1 : 0],
      ['aof_enabled', this.enabled ? 1 : 0],
      ['aof_state', this.state()],
      ['aof_rewrite_in_progress', run !== null ? 1 : 0],
      ['aof_rewrite_scheduled', this.resyncWanted && run === null ? 1 : 0],
      ['aof_last_rewrite_time_sec', this.lastSnapshotMs < 0 ? -1 : Math.round(this.lastSnapshotMs / 1000)],
      ['aof_current_rewrite_time_sec', run !== null ? Math.floor((Date.now() - run.startedAt) / 1000) : -1],
      ['aof_last_bgrewrite_status', this.lastBgStatus],
      ['aof_last_write_status', this.lastWriteStatus],
    ];
    if (this.enabled) {
      out.push(
        ['aof_last_write_error', this.failure ?? ''],
        ['aof_redis_url', redactUrl(this.node.config.str('redis-url'))],
        ['aof_last_snapshot_time', Math.floor(this.lastSnapshotTime / 1000)],
        ['aof_last_snapshot_jobs', this.snapshotJobs],
        ['aof_last_snapshot_bytes', this.snapshotBytes],
        ['aof_journal_records', this.journalRecords],
        ['aof_journal_bytes', this.journalBytes],
        ['aof_pending_records', this.pending.length],
      );
    }
    return out;
  }
}

/** Snapshot seqs named in a meta hash (committed and pending). */
function metaSeqs(meta: Record<string, string>): number[] {
  const out: number[] = [];
  for (const f of ['snap', 'pending']) {
    const v = meta[f];
    if (v !== undefined && /^\d{1,15}$/.test(v)) out.push(Number(v));
  }
  return out;
}

/** MULTI replies carry per-command errors instead of rejecting. */
function throwIfFailed(res: [Error | null, unknown][] | null): void {
  if (res === null) throw new Error('transaction aborted');
  for (const [err] of res) if (err) throw err;
}
