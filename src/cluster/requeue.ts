// Re-queueing across owners (the reference's README, "Job re-queueing state
// machine"): WILLQUEUE before a node re-queues, QUEUED when it did (the
// others push back their own retry time; of two nodes that queued the same
// job, the one whose ID compares lower keeps it), WORKING from a consumer
// still busy with the job, and ENQUEUE from a node that keeps no copy.
import type { ClusterContext, NodeTableView, MessageSender } from './context.js';
import type { ClusterNode } from './cluster-node.js';
import type { Acks } from './acks.js';
import { JobState, JOB_FLAG_BCAST_QUEUED, JOB_FLAG_BCAST_WILLQUEUE, nodeListAdd, type Job } from '../core/job.js';
import { MsgType, MSG_FLAG_INCR_DELIV, MSG_FLAG_INCR_NACKS, type BusMessage } from './messages.js';
import { TIME_ERROR } from '../core/store.js';

/**
 * Compares two node IDs mixed (XOR) with the job's random ID part, so which
 * of two nodes wins depends on the job rather than always being the same.
 */
export function compareNodeIdsByJob(a: string, b: string, job: Job): number {
  for (let i = 0; i < 40; i++) {
    const k = job.id.charCodeAt(11 + (i % 24));
    const x = (a.charCodeAt(i) ^ k) & 0xff;
    const y = (b.charCodeAt(i) ^ k) & 0xff;
    if (x !== y) return x - y;
  }
  return 0;
}

export class Requeue {
  private readonly table: NodeTableView;
  private readonly links: MessageSender;

  constructor(
    private readonly cluster: ClusterContext,
    private readonly acks: Acks,
  ) {
    this.table = cluster.table;
    this.links = cluster.links;
  }

  register(): void {
    const c = this.cluster;
    c.on(MsgType.QUEUED, (s, m) => this.onQueuedOrWorking(s, m, false));
    c.on(MsgType.WORKING, (s, m) => this.onQueuedOrWorking(s, m, true));
    c.on(MsgType.WILLQUEUE, (s, m) => this.onWillQueue(s, m));
    c.on(MsgType.ENQUEUE, (s, m) => this.onEnqueue(s, m));
    c.on(MsgType.NACKDELAY, (s, m) => this.onNackDelay(s, m));
  }

  private job(msg: BusMessage): Job | undefined {
    return typeof msg.id === 'string' ? this.cluster.store.lookupJob(msg.id) : undefined;
  }

  private onQueuedOrWorking(sender: ClusterNode, msg: BusMessage, working: boolean): void {
    const store = this.cluster.store;
    const job = this.job(msg);
    if (!job) return;
    if (job.state <= JobState.Queued) {
      // WORKING always takes the job out of our queue; QUEUED only when the
      // sender wins the comparison, to avoid delivering it twice.
      if (
        job.state === JobState.Queued &&
        (working || compareNodeIdsByJob(sender.id, this.table.myself.id, job) > 0)
      ) {
        store.dequeueJob(job);
      }
      if (job.retry) {
        job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
        store.updateRequeueTime(job, store.clock.now() + job.retry * 1000 + store.timeError(TIME_ERROR));
      }
      if (!working) {
        const m = msg.m ?? 0;
        if (m & MSG_FLAG_INCR_NACKS) job.nacks++;
        if (m & MSG_FLAG_INCR_DELIV) job.deliveries++;
        // Queued again elsewhere: a delivery of ours counted under a concurrency cap is over.
        store.releaseDelivery(job);
      }
    } else if (job.state === JobState.Acked) {
      // Someone queued a job we know is acked: tell it.
      this.acks.sendSetAck(sender, job);
    }
  }

  private onWillQueue(sender: ClusterNode, msg: BusMessage): void {
    const job = this.job(msg);
    if (!job) return;
    if (job.state === JobState.Active || job.state === JobState.Queued) {
      job.delivered = nodeListAdd(job.delivered, sender.id);
    }
    if (job.state === JobState.Queued) {
      // Already queued here: everyone (the sender included) backs off.
      this.links.broadcastQueued(job, 0);
    } else if (job.state === JobState.Acked) {
      this.acks.sendSetAck(sender, job);
    }
  }

  /**
   * NACKDELAY (ours, msgpack): the sender NACKed the jobs in `ids` with a
   * delay; wait for it (see JobStore.nackedElsewhere). The bus no longer
   * splits a msgpack message's `ids` into calls (job-ID messages have
   * their own frames now), so the list is walked here.
   */
  private onNackDelay(sender: ClusterNode, msg: BusMessage): void {
    const ids = msg.ids;
    if (!Array.isArray(ids)) return;
    const delay = typeof msg.a === 'number' && msg.a >= 0 ? msg.a : 0;
    const store = this.cluster.store;
    for (const id of ids) {
      if (typeof id !== 'string') continue;
      const job = store.lookupJob(id);
      if (job) this.nackedWithDelay(sender, job, delay);
    }
  }

  private nackedWithDelay(sender: ClusterNode, job: Job, delay: number): void {
    if (job.state === JobState.Acked) {
      this.acks.sendSetAck(sender, job);
      return;
    }
    if (job.state === JobState.WaitRepl) return;
    job.delivered = nodeListAdd(job.delivered, sender.id);
    this.cluster.store.nackedElsewhere(job, delay);
  }

  private onEnqueue(_sender: ClusterNode, msg: BusMessage): void {
    const store = this.cluster.store;
    const job = this.job(msg);
    const delay = typeof msg.a === 'number' ? msg.a : 0;
    if (!job || job.state >= JobState.Queued) return;
    const q = store.lookupQueue(job.queue!);
    if (q && q.pausedIn) return;
    // We are the first to queue it: no QUEUED broadcast this time.
    job.flags &= ~JOB_FLAG_BCAST_QUEUED;
    if (delay === 0) store.enqueueJob(job, false);
    else store.updateRequeueTime(job, store.clock.now() + delay * 1000);
  }
}
