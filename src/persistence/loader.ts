// The loader: brings the jobs persisted in Redis back into the store, at
// start-up (before the node serves clients) or, when Redis was unreachable
// then, once it answers again. reader.ts reads and decodes the snapshot and
// the journal; this file registers the records in the store as the
// reference reloads its AOF, and tells the journal and the snapshotter
// where Redis stands after the load.
import type { Redis } from 'ioredis';
import { TIME_ERROR } from '../core/store.js';
import { JobState, NEVER, JOB_FLAG_LOADED, type Job } from '../core/job.js';
import { decodeJob } from '../core/job-codec.js';
import type { PersistenceHost } from './host.js';
import { oneLine, redactUrl, type RedisHealth } from './health.js';
import type { Journal } from './journal.js';
import type { Snapshotter } from './snapshot.js';
import { readState, replayState, type PersistedState } from './reader.js';
import { PolicyWriter } from './policies.js';

export class Loader {
  /** False while the persisted state could not be read yet (Redis down at start). */
  loaded = true;
  /** A load is being applied: the store's changes are not journaled meanwhile. */
  loadingNow = false;
  /** aof-enqueue-jobs-once was set for a load that has not happened yet. */
  enqueueOnce = false;
  /** Bumped by flushAll, so a state read before it is not applied after it. */
  private flushes = 0;

  constructor(
    private readonly node: PersistenceHost,
    private readonly health: RedisHealth,
    private readonly journal: Journal,
    private readonly snapshots: Snapshotter,
  ) {}

  /**
   * Start-up: reads and registers the persisted jobs; the node answers
   * -LOADING meanwhile. When Redis cannot be read, the node serves without
   * them (and, with appendonly, refuses writes until they are loaded).
   */
  async loadAtStart(redis: Redis): Promise<void> {
    const keys = this.health.keys!;
    this.node.loading = true;
    this.loadingNow = true;
    const started = Date.now();
    this.node.log.notice(`Loading jobs from Redis at ${redactUrl(this.node.config.str('redis-url'))}, keys ${keys.meta.replace(/meta$/, '*')}`);
    try {
      await this.health.waitReady(redis, 10_000);
      const st = await readState(redis, keys, this.node.log);
      const n = this.apply(st, this.enqueueOnce);
      this.node.log.notice(
        `DB loaded from Redis: ${n} jobs (snapshot of ${st.snapshotJobs}, ${st.journalRecords} journal records) in ${((Date.now() - started) / 1000).toFixed(3)} seconds`,
      );
      this.afterLoad(st);
    } catch (e) {
      this.loaded = false;
      this.node.log.warning(
        `Could not load jobs from Redis: ${oneLine((e as Error).message)}. Serving without them; they are loaded when Redis answers again.`,
      );
      if (this.health.enabled) this.health.fail(e as Error);
    } finally {
      this.loadingNow = false;
      this.node.loading = false;
    }
  }

  /**
   * The start-up load failed and Redis answers now: reads what it has and
   * adds the jobs we lack. False when the client changed (epoch) or the
   * state was flushed meanwhile: the read is stale, the recovery stops.
   */
  async loadAfterOutage(epoch: number): Promise<boolean> {
    const flushes = this.flushes;
    const st = await readState(this.health.redis!, this.health.keys!, this.node.log);
    if (epoch !== this.health.epoch || flushes !== this.flushes) return false;
    const n = this.apply(st, this.enqueueOnce);
    this.node.log.notice(`DB loaded from Redis after it came back: ${n} jobs`);
    this.afterLoad(st);
    this.node.afterEvent();
    return true;
  }

  /** What Redis held for this node is not to be loaded anymore (turned off, or used by a controlled restart). */
  cancel(): void {
    this.loaded = true;
    this.enqueueOnce = false;
  }

  /** DEBUG FLUSHALL, CLUSTER RESET: nothing to load, and a read under way must not be applied. */
  flushed(): void {
    this.flushes++;
    this.cancel();
  }

  private afterLoad(st: PersistedState): void {
    this.loaded = true;
    this.journal.restore(st);
    this.snapshots.restore(st);
    // Damaged or foreign data: replace it with a clean snapshot at once.
    if (st.problems > 0 && this.health.enabled) this.health.resyncWanted = true;
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
   * (controlled restart) puts them back in their queues. Acked jobs (which
   * the reference does not keep) come back acked, to be collected. Records are applied
   * in the order written, a later state of a job replacing the earlier one;
   * expired jobs and jobs this node held before the load (Redis came back
   * late) are left alone. Returns how many jobs were added.
   */
  private apply(st: PersistedState, enqueue: boolean): number {
    const store = this.node.store;
    const policies = PolicyWriter.apply(this.node, st.policies);
    if (policies.bad > 0) {
      st.problems += policies.bad;
      this.node.log.warning(`Persistence: skipping ${policies.bad} queue policy records that do not decode`);
    }
    if (policies.loaded > 0) this.node.log.notice(`Loaded ${policies.loaded} queue policy records`);
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
      if (fields.state === JobState.WaitRepl) return true;
      if (fields.etime <= now) return true;
      const wasQueued = fields.state === JobState.Queued;
      if (wasQueued) fields.state = JobState.Active;
      // An acked job comes back acked: its collection starts over.
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
}
