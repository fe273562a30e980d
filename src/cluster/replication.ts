// Synchronous job replication (the reference's README, "Job replication
// strategy" and "Job replication state machine"): REPLJOB to W-1 reachable
// nodes, shuffled; the ADDJOB client is answered when GOTJOB confirmations
// reach W; meanwhile one more node is tried every 50 ms and REPLJOB is sent
// again to the nodes already asked. On timeout the client gets -NOREPL and
// the copies made are deleted (best effort).
// Under a partition a peer stays "reachable" until the node timeout: nodes
// that answer are picked first, and a job whose nodes are silent gets its
// next node from a timer 50 ms after the last one was added, not from the
// 100 ms cron.
import type { ClusterContext, NodeTableView, MessageSender } from './context.js';
import type { ClusterNode } from './cluster-node.js';
import type { Client, Blocker } from '../protocol/client.js';
import { Job, JobState, JOB_FLAG_BCAST_QUEUED, JOB_FLAG_DELIVERED, nodeListAdd, type JobFields } from '../core/job.js';
import type { AnyJob } from '../core/job-codec.js';
import { MsgType, MSG_FLAG_NOREPLY, type BusMessage } from './messages.js';
import { errors } from '../protocol/errors.js';
import { Log2Histogram } from '../core/histogram.js';

/** Try one more node this often while replication is short. */
const ADD_NODE_PERIOD_MS = 50;
/** A peer asked something this long ago that has said nothing since is picked last. */
const SILENT_MS = 50;

interface Waiting {
  job: Job;
  conn: Client;
  addedNodeTime: number;
  /** When the cron or timer last tried to add a node. */
  triedAt: number;
  /** Date.now() when the client started waiting. */
  since: number;
  /** With repl-trace-slower-than: what happened, in ms since `since`, for the log. */
  trace: string[] | null;
}

const short = (id: string): string => id.slice(0, 8);

export class Replication {
  /** Jobs in wait-repl state (by record) and the ADDJOB client waiting for each. */
  private readonly waiting = new Map<number, Waiting>();
  private readonly table: NodeTableView;
  private readonly links: MessageSender;
  /** For /metrics: milliseconds ADDJOB clients waited until replication was reached, and how many gave up. */
  readonly waitMs = new Log2Histogram();
  timeouts = 0;
  /** repl-trace-slower-than: an ADDJOB waiting at least this long logs its trace (0: off). */
  traceSlowerThanMs = 0;
  /** Fires when the earliest waiting job is due another node. */
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;

  constructor(private readonly cluster: ClusterContext) {
    this.table = cluster.table;
    this.links = cluster.links;
  }

  register(): void {
    this.cluster.on(MsgType.REPLJOB, (sender, msg) => this.onReplJob(sender, msg));
    this.cluster.on(MsgType.GOTJOB, (sender, msg) => this.onGotJob(sender, msg));
  }

  /** Blocks the ADDJOB client until the job reaches its replication level. */
  waitForReplication(conn: Client, job: Job, timeoutMs: number, keepsCopy: boolean): void {
    if (this.cluster.log.verboseOn) this.cluster.log.verbose(`Replicating ${job.id} to ${job.repl} nodes, client waits up to ${timeoutMs} ms`);
    job.confirmed = new Set(keepsCopy ? [this.table.myself.id] : []);
    const now = Date.now();
    const w: Waiting = { job, conn, addedNodeTime: now, triedAt: now, since: now, trace: this.traceSlowerThanMs > 0 ? [] : null };
    this.waiting.set(job.rec, w);
    this.armTimer(now + ADD_NODE_PERIOD_MS);
    const blocker: Blocker = {
      kind: 'addjob',
      timedOut: () => {
        this.timeouts++;
        this.logTrace(w, 'NOREPL');
        conn.out.error(errors.noreplTimeout);
        this.release(job);
        conn.unblock();
      },
      disconnected: () => this.release(job),
    };
    conn.block(blocker, timeoutMs > 0 ? Date.now() + timeoutMs : 0);
  }

  /**
   * The client stopped waiting (timeout or disconnect): a job still short of
   * its replication level is deleted here and, best effort, everywhere.
   */
  private release(job: Job): void {
    if (this.waiting.get(job.rec)?.job !== job) return;
    this.waiting.delete(job.rec);
    if (job.registered && job.state === JobState.WaitRepl) {
      // Active first, so unregistering does not come back here.
      job.state = JobState.Active;
      this.links.broadcastDelJob(job);
      this.cluster.store.unregisterJob(job);
    }
  }

  /** Store hook: a wait-repl job is being removed (it expired). */
  aborted(job: Job): void {
    if (this.cluster.log.verboseOn) this.cluster.log.verbose(`Replication of ${job.id} aborted: the job is being deleted`);
    const w = this.waiting.get(job.rec);
    job.state = JobState.Active;
    this.links.broadcastDelJob(job);
    if (!w) return;
    this.waiting.delete(job.rec);
    w.conn.out.error(errors.noreplRemoved);
    w.conn.unblock();
  }

  /**
   * Adds up to `count` reachable nodes to the job's delivered list and sends
   * REPLJOB to every node in it, asking for GOTJOB unless `noreply` or the
   * node already confirmed (those only get it again when new nodes were
   * added, to learn the new list). Returns how many nodes were added.
   */
  replicateJob(job: AnyJob, count: number, noreply: boolean): number {
    if (count <= 0) return 0;
    const table = this.table;
    const now = Date.now();
    let added = 0;
    // Nodes that answer first; a link still connecting (its SYN may be
    // dropped) or a node silent since we last asked it only when short.
    let later: ClusterNode[] | null = null;
    for (const n of table.shuffledReachable()) {
      if (n.link === null) continue;
      if (n.link.connecting || n.silent(now, SILENT_MS)) {
        (later ??= []).push(n);
        continue;
      }
      if (this.addNode(job, n)) {
        added++;
        if (--count === 0) break;
      }
    }
    for (let i = 0; count > 0 && later !== null && i < later.length; i++) {
      if (this.addNode(job, later[i]!)) {
        added++;
        count--;
      }
    }
    for (const id of job.delivered) {
      const n = table.nodes.get(id);
      if (!n || n === table.myself || n.link === null) continue;
      const acked = job.confirmed !== null && job.confirmed.has(id);
      if (acked && added === 0) continue;
      const reply = !(noreply || acked);
      this.links.sendReplJob(n, job, reply ? 0 : MSG_FLAG_NOREPLY);
      if (reply) n.asked(now);
    }
    return added;
  }

  /** Adds `n` to the job's delivered list; false if it was there. */
  private addNode(job: AnyJob, n: ClusterNode): boolean {
    const before = job.delivered;
    if (job instanceof Job) job.addDelivered(n.id);
    else job.delivered = nodeListAdd(job.delivered, n.id);
    return job.delivered !== before;
  }

  /** From the cluster cron and the timer: jobs short of replicas try one more node. */
  cron(): void {
    const now = Date.now();
    let next = Infinity;
    for (const w of this.waiting.values()) {
      if (now - w.addedNodeTime >= ADD_NODE_PERIOD_MS && now - w.triedAt >= ADD_NODE_PERIOD_MS / 2) {
        w.triedAt = now;
        const before = w.job.delivered;
        if (this.replicateJob(w.job, 1, false) > 0) {
          w.addedNodeTime = now;
          w.trace?.push(`added ${w.job.delivered.filter((id) => !before.includes(id)).map(short).join(',')} +${now - w.since}`);
        }
      }
      next = Math.min(next, Math.max(w.addedNodeTime + ADD_NODE_PERIOD_MS, w.triedAt + ADD_NODE_PERIOD_MS));
    }
    if (next !== Infinity) this.armTimer(Math.max(next, now + 1));
  }

  /** The timer fires at `at` unless an earlier one is set. */
  private armTimer(at: number): void {
    if (this.timer !== null) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(1, at - Date.now()));
    this.timer.unref?.();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.waiting.size > 0) this.cron();
  };

  /** repl-trace-slower-than: one log line for an ADDJOB that waited that long. */
  private logTrace(w: Waiting, outcome: string): void {
    if (w.trace === null) return;
    const waited = Date.now() - w.since;
    if (waited < this.traceSlowerThanMs) return;
    const nodes = w.job.delivered.filter((id) => id !== this.table.myself.id).map(short);
    this.cluster.log.notice(`Slow replication of ${w.job.id} (ms since ADDJOB): nodes ${nodes.join(',')}; ${w.trace.join('; ')}; ${outcome} +${waited}`);
  }

  /** The replication level is reached: answer the client, queue the job. */
  private achieved(job: Job): boolean {
    const cluster = this.cluster;
    const store = cluster.store;
    if (cluster.log.verboseOn) cluster.log.verbose(`Replication ACHIEVED ${job.id}`);
    job.state = JobState.Active;
    const w = this.waiting.get(job.rec);
    this.waiting.delete(job.rec);
    if (w) {
      this.waitMs.observe(Date.now() - w.since);
      this.logTrace(w, 'reply');
      w.conn.out.status(job.id);
      w.conn.unblock();
    }
    // Externally replicated: one of the copies queues it; we keep nothing.
    if (!job.delivered.includes(this.table.myself.id)) {
      const confirmed = job.confirmed ? [...job.confirmed] : [];
      const target = confirmed[Math.floor(Math.random() * confirmed.length)];
      if (target !== undefined) this.links.sendEnqueue(target, job.id, job.delay);
      store.unregisterJob(job);
      return false;
    }
    job.confirmed = null;
    // Delayed jobs wait for their DELAY; an imported job that was delivered
    // where it came from (IMPORTJOB STATE active) for its re-queue time.
    if (job.delay === 0 && !(job.flags & JOB_FLAG_DELIVERED)) store.enqueueJob(job, false);
    else store.updateAwakeTime(job);
    store.hooks.persistJob?.(job);
    w?.conn.journaled();
    return true;
  }

  /** SETACK may arrive before the last GOTJOB: the job counts as replicated. */
  achievedEarly(job: Job): boolean {
    return this.achieved(job);
  }

  private onGotJob(sender: ClusterNode, msg: BusMessage): void {
    if (typeof msg.id !== 'string') return;
    const job = this.cluster.store.lookupJob(msg.id);
    if (!job || job.state !== JobState.WaitRepl || job.confirmed === null) return;
    job.confirmed.add(sender.id);
    if (this.traceSlowerThanMs > 0) {
      const w = this.waiting.get(job.rec);
      if (w?.trace) w.trace.push(`GOTJOB ${short(sender.id)} +${Date.now() - w.since}`);
    }
    if (job.confirmed.size === job.repl) this.achieved(job);
  }

  /** REPLJOB: one job of a job frame, decoded (`j`: its fields, null when malformed). */
  private onReplJob(sender: ClusterNode, msg: BusMessage): void {
    const reply = !((msg.m ?? 0) & MSG_FLAG_NOREPLY);
    const cluster = this.cluster;
    const store = cluster.store;
    // No new copies under memory pressure or when leaving the cluster.
    if (store.memoryWarningLevel() > 0 || this.table.leaving) return;
    const fields = msg.j as JobFields | null;
    if (!fields) {
      cluster.log.warning(`Received corrupted job description from node ${sender.id}`);
      return;
    }
    const q = store.lookupQueue(fields.queue!);
    if (q && q.pausedIn) return;
    fields.flags |= JOB_FLAG_BCAST_QUEUED;
    // One table walk in the common case: the lookup only for a repeated REPLJOB.
    const job = store.addJob(fields);
    if (job !== null) {
      store.hooks.persistJob?.(job);
    } else {
      // A repeated REPLJOB: learn about more nodes that may have a copy.
      const existing = store.lookupJob(fields.id)!;
      for (const id of fields.delivered) existing.addDelivered(id);
    }
    // Answer even if we had it: our earlier GOTJOB may have been lost.
    if (reply) this.links.sendJobId(sender, MsgType.GOTJOB, fields.id);
  }
}
