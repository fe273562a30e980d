// Federation: jobs move to the nodes where consumers wait (the reference's
// README, "Cluster messages related to nodes federation", and its FAQ on
// delays). A node with consumers blocked on an empty queue sends NEEDJOBS:
// to the nodes that recently gave it jobs for that queue ("ad hoc", fast,
// backoff 25 ms to 2 s) and, from time to time, to the whole cluster to find
// new sources (backoff 2 s to 30 s). Sources answer YOURJOBS with jobs moved
// out of their queue. PAUSE messages set a queue's paused state (BCAST).
import type { ClusterContext, NodeTableView, MessageSender } from './context.js';
import type { ClusterNode } from './cluster-node.js';
import type { Queue } from '../core/queue.js';
import { JOB_FLAG_BCAST_QUEUED, type Job, type JobFields } from '../core/job.js';
import { MsgType, type BusMessage } from './messages.js';

const NEEDJOBS_MIN_REQUEST = 5;
const NEEDJOBS_MAX_REQUEST = 100;
const BCAST_MIN_DELAY = 2000;
const BCAST_MAX_DELAY = 30_000;
const ADHOC_MIN_DELAY = 25;
const ADHOC_MAX_DELAY = 2000;
/** A source that gave nothing for this long is forgotten. */
const RESPONDER_TTL_MS = 5000;

function backoff(min: number, max: number, attempt: number): number {
  return Math.min(max, min * 2 ** Math.min(attempt, 20));
}

export class Federation {
  private readonly table: NodeTableView;
  private readonly links: MessageSender;

  constructor(private readonly cluster: ClusterContext) {
    this.table = cluster.table;
    this.links = cluster.links;
  }

  register(): void {
    const c = this.cluster;
    c.on(MsgType.NEEDJOBS, (s, m) => this.onNeedJobs(s, m));
    c.on(MsgType.YOURJOBS, (s, m) => this.onYourJobs(s, m));
    c.on(MsgType.PAUSE, (_s, m) => this.onPause(m));
  }

  /**
   * Called when clients wait on an empty queue (reachedZero false) or when
   * the last job of a queue was just consumed (reachedZero true: only worth
   * it while jobs are flowing in, and then without throttling).
   */
  needJobs(q: Queue, reachedZero: boolean): void {
    const cluster = this.cluster;
    if (this.table.leaving || this.table.size <= 1) return;
    const now = cluster.store.clock.now();
    const rate = q.importRate(now);
    if (reachedZero && rate === 0) return;

    const responders = this.validResponders(q, now);
    let toFetch = responders.length > 0 ? Math.floor(rate / responders.length) : NEEDJOBS_MIN_REQUEST;
    if (toFetch < NEEDJOBS_MIN_REQUEST) toFetch = NEEDJOBS_MIN_REQUEST;
    else if (toFetch > NEEDJOBS_MAX_REQUEST) toFetch = NEEDJOBS_MAX_REQUEST;

    // Cluster-wide broadcasts only discover sources: ask for one job.
    if (now - q.needjobsBcastTime > backoff(BCAST_MIN_DELAY, BCAST_MAX_DELAY, q.needjobsBcastAttempt)) {
      q.needjobsBcastTime = now;
      q.needjobsBcastAttempt++;
      this.links.broadcast(this.needJobsFrame(q.name, 1));
    }
    if (
      responders.length > 0 &&
      (reachedZero || now - q.needjobsAdhocTime > backoff(ADHOC_MIN_DELAY, ADHOC_MAX_DELAY, q.needjobsAdhocAttempt))
    ) {
      q.needjobsAdhocTime = now;
      q.needjobsAdhocAttempt++;
      this.links.sendToIds(responders, this.needJobsFrame(q.name, toFetch));
    }
  }

  private needJobsFrame(queue: string, count: number): Buffer {
    return this.links.frame(MsgType.NEEDJOBS, { q: Buffer.from(queue, 'latin1'), a: count });
  }

  private validResponders(q: Queue, now: number): string[] {
    if (q.responders === null) return [];
    for (const [id, t] of q.responders) if (now - t > RESPONDER_TTL_MS) q.responders.delete(id);
    return [...q.responders.keys()];
  }

  /** NEEDJOBS: give some of our queued jobs, unless we import for this queue ourselves. */
  private onNeedJobs(sender: ClusterNode, msg: BusMessage): void {
    const store = this.cluster.store;
    const name = queueName(msg.q);
    const count = typeof msg.a === 'number' ? msg.a : 1;
    if (name === null) return;
    const q = store.lookupQueue(name);
    if (!q || q.length === 0) return;
    if (q.importRate(store.clock.now()) > 0) return;
    if (q.pausedOut) return;
    // Give what was asked only if we have twice as many; else at most half
    // (at least one), so one node cannot drain us.
    let give = Math.min(count, NEEDJOBS_MAX_REQUEST);
    if (q.length < count * 2) give = Math.floor(q.length / 2);
    if (give === 0) give = 1;
    const jobs: Job[] = [];
    for (let i = 0; i < give; i++) {
      const job = store.fetchJob(q);
      if (!job) break;
      jobs.push(job);
    }
    this.links.sendYourJobs(sender, jobs);
    // At-most-once jobs must exist in one place only: they moved.
    for (const job of jobs) if (job.retry === 0) store.unregisterJob(job);
  }

  /** YOURJOBS, one job of the frame (`j`: its fields, null when malformed): queue it here and remember the sender as a source. */
  private onYourJobs(sender: ClusterNode, msg: BusMessage): void {
    const cluster = this.cluster;
    const store = cluster.store;
    const now = store.clock.now();
    const fields = msg.j as JobFields | null;
    if (!fields) {
      cluster.log.warning(`A job received via YOURJOBS from ${sender.id} is corrupted.`);
      return;
    }
    let job = store.lookupJob(fields.id);
    if (!job) {
      job = store.addJob(fields)!;
      store.hooks.persistJob?.(job);
    }
    // Moving between queues is not a re-queue: no QUEUED message.
    job.flags &= ~JOB_FLAG_BCAST_QUEUED;
    // An at-most-once job is queued here exactly once.
    if (job.retry === 0) job.qtime = now;
    if (!store.enqueueJob(job, false)) return;
    const q = store.queueFor(job.queue!);
    if (q.responders === null) q.responders = new Map();
    if (!q.responders.has(sender.id)) q.needjobsBcastAttempt = 0;
    q.responders.set(sender.id, now);
    q.countImport(now);
    q.needjobsAdhocAttempt = 0;
  }

  private onPause(msg: BusMessage): void {
    const name = queueName(msg.q);
    if (name === null || typeof msg.a !== 'number') return;
    this.cluster.log.verbose(`RECEIVED PAUSE FOR QUEUE ${name} (${msg.a})`);
    this.cluster.store.setPausedState(name, msg.a);
  }
}

function queueName(x: unknown): string | null {
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('latin1');
  if (typeof x === 'string') return x;
  return null;
}
