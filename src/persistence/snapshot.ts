// The snapshotter: writes the jobs this node holds to Redis as a snapshot,
// which lets the journal before it go.
//
// A snapshot captures the list of jobs at one moment T and takes the next
// seq S: entries <= S are covered by it, later ones are replayed on top.
// Chunks are written in the background; one MULTI then points meta at the
// new snapshot, drops the old one and trims the journal, so the old
// snapshot stays valid until the new one is whole. Two kinds:
// - compact: the journal grew (maybeCompact's triggers), BGREWRITEAOF,
//   SHUTDOWN REWRITE-AOF; the journal goes on meanwhile.
// - resync: Redis came back, appendonly was turned on, DEBUG FLUSHALL, the
//   load found damaged data (or SHUTDOWN REWRITE-AOF with appendonly no).
//   It replaces whatever Redis holds for this node; journal entries wait
//   until it commits, and so do the replies held for it (journal.ts).
import type { Redis } from 'ioredis';
import { JobState, type Job } from '../core/job.js';
import type { PersistenceHost } from './host.js';
import type { NodeKeys } from './keys.js';
import type { PersistedState } from './reader.js';
import { oneLine, type RedisHealth } from './health.js';
import type { Journal } from './journal.js';
import { CHUNK_BYTES, FORMAT_VERSION, estimateJobBytes, packChunk } from './format.js';
import { policyFields } from './policies.js';

/** Below this many journal bytes, size alone never triggers a snapshot. */
const JOURNAL_MIN_BYTES = 1024 * 1024;

export type SnapshotKind = 'compact' | 'resync';

export interface SnapshotRun {
  kind: SnapshotKind;
  /** Journal entries up to this seq are covered by the snapshot. */
  seq: number;
  startedAt: number;
  journalBytesAtT: number;
  journalRecordsAtT: number;
  aborted: boolean;
  /** Settles when the run committed, failed or was aborted; never rejects. */
  done: Promise<void>;
}

class SnapshotAborted extends Error {
  constructor() {
    super('snapshot aborted');
  }
}

export class Snapshotter {
  /** The snapshot being written, or null. */
  run: SnapshotRun | null = null;
  private committedSnap: number | null = null;
  /** Snapshot keys that may be left by aborted runs: deleted at the next prepare or commit. */
  private abandoned = new Set<number>();
  /** Keys of a previous node ID (CLUSTER RESET HARD), deleted once Redis answers. */
  private staleKeys: string[] = [];

  // Statistics: INFO and the triggers.
  snapshotJobs = 0;
  snapshotBytes = 0;
  /** Unix ms (store clock) of the last committed snapshot. */
  lastSnapshotTime = 0;
  /** Date.now() of the last snapshot, or of the moment journaling began: snapshot-seconds counts from it. */
  private snapshotDue = Date.now();
  lastSnapshotMs = -1;
  lastBgStatus: 'ok' | 'err' = 'ok';

  constructor(
    private readonly node: PersistenceHost,
    private readonly health: RedisHealth,
    private readonly journal: Journal,
  ) {}

  /** A resync is being written: records captured meanwhile are replayed on top of it. */
  get resyncRunning(): boolean {
    return this.run?.kind === 'resync';
  }

  /**
   * Captures the jobs now (time T) and writes them in the background. A
   * compaction lets the journal go on (entries after T are replayed on top);
   * a resync holds journal entries back until it commits, then deletes the
   * whole old journal.
   */
  start(kind: SnapshotKind): SnapshotRun {
    this.abortRun();
    const run: SnapshotRun = {
      kind,
      seq: this.journal.nextSeq(),
      startedAt: Date.now(),
      journalBytesAtT: this.journal.bytes,
      journalRecordsAtT: this.journal.records,
      aborted: false,
      done: Promise.resolve(),
    };
    if (kind === 'resync') {
      // Records captured before T are in the snapshot; their replies wait for it.
      this.health.resyncWanted = true;
      this.journal.holdPending();
    }
    this.run = run;
    run.done = this.write(run);
    return run;
  }

  abortRun(): void {
    const run = this.run;
    if (run === null) return;
    run.aborted = true;
    this.abandoned.add(run.seq);
    this.run = null;
  }

  private async write(run: SnapshotRun): Promise<void> {
    const redis = this.health.redis!;
    const keys = this.health.keys!;
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
            if (job.state === JobState.WaitRepl || job.queue === null) return; // not yet replicated, or a dummy ack
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

      // The commit goes over the journal's connection, after every journal
      // write sent before it: an entry it trims cannot land after it.
      const m: (string | number | Buffer)[][] = [];
      const time = clock.base + clock.now();
      if (jobs > 0) {
        m.push(['HSET', keys.meta, 'v', FORMAT_VERSION, 'snap', run.seq, 'time', time, 'jobs', jobs, 'bytes', bytes, 'chunks', chunks]);
        m.push(['HDEL', keys.meta, 'pending']);
      } else {
        // Nothing to keep: no meta and no snapshot key at all.
        m.push(['DEL', keys.meta]);
      }
      const drop = [...this.abandoned].map((s) => keys.snap(s));
      if (this.committedSnap !== null && this.committedSnap !== run.seq) drop.push(keys.snap(this.committedSnap));
      if (drop.length > 0) m.push(['UNLINK', ...drop]);
      if (run.kind === 'resync') m.push(['DEL', keys.journal]);
      else m.push(['ZREMRANGEBYSCORE', keys.journal, '-inf', run.seq]);
      // Queue policies are rewritten whole: the newest records, as of this
      // commit. HSETs of policies captured before it and still to be sent go
      // after it on the same connection, in order, so the newest still wins.
      m.push(['DEL', keys.policies]);
      const policies = policyFields(this.node.store.policies.records());
      if (policies.length > 0) m.push(['HSET', keys.policies, ...policies]);
      const res = await this.journal.transaction(m);
      check();
      for (const r of res) if (r instanceof Error) throw r;
      this.abandoned.clear();
      this.committed(run, jobs, bytes);
    } catch (e) {
      if (run.aborted) return;
      this.run = null;
      this.abandoned.add(run.seq);
      this.lastBgStatus = 'err';
      this.node.log.warning(`Persistence: snapshot failed: ${oneLine((e as Error).message)}`);
      this.health.fail(e as Error);
    }
  }

  private committed(run: SnapshotRun, jobs: number, bytes: number): void {
    this.run = null;
    this.committedSnap = jobs > 0 ? run.seq : null;
    this.journal.dropCovered(run.journalBytesAtT, run.journalRecordsAtT);
    this.snapshotJobs = jobs;
    this.snapshotBytes = bytes;
    this.lastSnapshotTime = this.node.store.clock.base + this.node.store.clock.now();
    this.snapshotDue = Date.now();
    this.lastSnapshotMs = Date.now() - run.startedAt;
    this.lastBgStatus = 'ok';
    this.node.log.verbose(`Persistence: snapshot of ${jobs} jobs (${bytes} bytes) written in ${this.lastSnapshotMs} ms`);
    const redis = this.health.redis;
    if (this.staleKeys.length > 0 && redis !== null) {
      const stale = this.staleKeys;
      this.staleKeys = [];
      redis.unlink(...stale).catch(() => {
        this.staleKeys.push(...stale);
      });
    }
    if (run.kind === 'resync') {
      const wasFailing = this.health.recovered();
      this.journal.releaseHeld();
      if (wasFailing) this.node.log.notice('Persistence: snapshot written, Redis writes are accepted again');
      else this.node.log.notice('Persistence: snapshot written, journaling to Redis');
      this.journal.flush();
    }
  }

  /** Starts a compaction when a trigger says so (the caller checks the persisted state was loaded). */
  maybeCompact(): void {
    const health = this.health;
    if (!health.enabled || this.run !== null || health.resyncWanted || health.failure !== null) return;
    if (health.stopping || health.redis === null) return;
    const cfg = this.node.config;
    const recordsMax = cfg.int('snapshot-journal-max');
    const seconds = cfg.int('snapshot-seconds');
    const journal = this.journal;
    // Redis holds snapshot + journal: keep that within twice the live jobs' size.
    const bySize = journal.bytes >= JOURNAL_MIN_BYTES && this.snapshotBytes + journal.bytes > 2 * this.liveBytesEstimate();
    const byTime = seconds > 0 && journal.records > 0 && Date.now() - this.snapshotDue >= seconds * 1000;
    // By count of the records a new snapshot would drop (jobs since deleted,
    // their deletions, superseded states), once they are recordsMax and as
    // many as the live jobs: a set that only grows is never rewritten (the
    // rewrite would hold the same records), and each rewrite is paid for by
    // as many dropped records (amortized O(1) per record).
    const live = this.node.store.jobCount;
    const dropped = this.snapshotJobs + journal.records - live;
    const byCount = dropped >= Math.max(recordsMax, live);
    if (!byCount && !bySize && !byTime) return;
    this.start('compact');
  }

  /** Encoded size of the jobs now held, from the average size seen so far. */
  private liveBytesEstimate(): number {
    const n = this.snapshotJobs + this.journal.puts;
    const avg = n > 0 ? (this.snapshotBytes + this.journal.putBytes) / n : 200;
    return this.node.store.jobCount * avg;
  }

  /** After a load: which snapshot Redis holds, and one a crash left unfinished (to delete). */
  restore(st: PersistedState): void {
    this.committedSnap = st.snapSeq > 0 ? st.snapSeq : null;
    if (st.pendingSeq !== null && st.pendingSeq !== st.snapSeq) this.abandoned.add(st.pendingSeq);
    this.snapshotJobs = st.snapshotJobs;
    this.snapshotBytes = st.snapshotBytes;
    this.lastSnapshotTime = st.snapshotTime;
    this.snapshotDue = st.snapshotTime > 0 ? Math.min(st.snapshotTime, Date.now()) : Date.now();
  }

  /** Every key this node may have written under `keys` (the current ones), for a wipe. */
  private allKeys(keys: NodeKeys): string[] {
    const out = [keys.meta, keys.journal, keys.policies];
    if (this.committedSnap !== null) out.push(keys.snap(this.committedSnap));
    for (const s of this.abandoned) out.push(keys.snap(s));
    if (this.run !== null) out.push(keys.snap(this.run.seq));
    return out;
  }

  /**
   * CLUSTER RESET HARD gave the node a new ID: the old ID's keys are
   * deleted after the next snapshot, and nothing under them is ours anymore.
   */
  leaveKeys(old: NodeKeys): void {
    this.staleKeys.push(...this.allKeys(old));
    this.abortRun();
    this.abandoned.clear();
    this.committedSnap = null;
  }

  /**
   * The client is being dropped: stops the run and returns the name of
   * every key this node may have written (for wipe), forgetting them.
   */
  detach(keys: NodeKeys | null): string[] {
    this.abortRun();
    const names = keys !== null ? [...this.allKeys(keys), ...this.staleKeys] : [...this.staleKeys];
    this.staleKeys = [];
    this.committedSnap = null;
    this.abandoned.clear();
    return names;
  }

  /**
   * Deletes `names` and the snapshot keys meta names (written by an earlier
   * run of this node): appendonly turned off, what Redis holds would only be
   * a stale state.
   */
  async wipe(redis: Redis, keys: NodeKeys, names: string[]): Promise<void> {
    try {
      const meta = await redis.hgetall(keys.meta).catch(() => ({}) as Record<string, string>);
      for (const s of metaSeqs(meta)) names.push(keys.snap(s));
      await redis.unlink(...new Set(names));
    } catch (e) {
      this.node.log.warning(`Persistence: could not delete this node's keys in Redis: ${oneLine((e as Error).message)}`);
    }
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
