// Collection of acknowledged jobs (the reference's README, "Acknowledged
// jobs garbage collection state machine"): SETACK to the nodes that may have
// the job, GOTACK back, DELJOB once all confirmed. Attempts repeat with
// exponential backoff (the store schedules them), so an ack given during a
// partition reaches the owners when it heals. A dummy ack (an ACKJOB for a
// job this node never had) asks the whole cluster.
import type { ClusterContext, NodeTableView, MessageSender } from './context.js';
import type { ClusterNode } from './cluster-node.js';
import type { Replication } from './replication.js';
import { JobState, JOB_GC_RETRY_COUNT_MAX, nodeListAdd, type Job } from '../core/job.js';
import { MsgType, type BusMessage } from './messages.js';

export class Acks {
  private readonly table: NodeTableView;
  private readonly links: MessageSender;

  constructor(
    private readonly cluster: ClusterContext,
    private readonly replication: Replication,
  ) {
    this.table = cluster.table;
    this.links = cluster.links;
  }

  register(): void {
    const c = this.cluster;
    c.on(MsgType.SETACK, (s, m) => this.onSetAck(s, m));
    c.on(MsgType.GOTACK, (s, m) => this.onGotAck(s, m));
    c.on(MsgType.DELJOB, (_s, m) => this.onDelJob(m));
  }

  /** SETACK carries how many nodes the sender believes may have the job. */
  sendSetAck(n: ClusterNode | string, job: Job): void {
    this.links.sendJobId(n, MsgType.SETACK, job.id, job.delivered.length);
  }

  /** One collection attempt: delete if everyone confirmed, else SETACK the rest. */
  tryJobGC(job: Job): void {
    if (job.state !== JobState.Acked) return;
    const cluster = this.cluster;
    const dummy = job.delivered.length === 0;
    if (job.gcRetry !== JOB_GC_RETRY_COUNT_MAX) job.gcRetry++;
    if (job.confirmed === null) job.confirmed = new Set([this.table.myself.id]);

    const allReached = !dummy && job.delivered.length === job.confirmed.size;
    const dummyAlone = dummy && this.table.size === 1;
    if (allReached || dummyAlone) {
      if (cluster.log.verboseOn) cluster.log.verbose(`Deleting ${job.id}: all nodes reached in tryJobGC()`);
      cluster.store.unregisterJob(job);
      return;
    }
    // A dummy ack asks everybody, in search of the owners.
    const targets = dummy ? this.table.memberIds() : job.delivered;
    for (const id of targets) {
      if (!job.confirmed.has(id)) this.sendSetAck(id, job);
    }
  }

  private onSetAck(sender: ClusterNode, msg: BusMessage): void {
    const cluster = this.cluster;
    if (typeof msg.id !== 'string') return;
    const mayHave = typeof msg.a === 'number' ? msg.a : 0;
    const job = cluster.store.lookupJob(msg.id);
    if (job) {
      // Acked before ADDJOB got all its GOTJOBs: it is replicated after all.
      if (job.state === JobState.WaitRepl && !this.replication.achievedEarly(job)) return;
      cluster.store.acknowledgeJob(job);
    }
    if (!job || job.delivered.length <= mayHave) {
      this.links.sendJobId(sender, MsgType.GOTACK, msg.id, job ? 1 : 0);
    } else {
      // We know more owners than the sender: the collection is ours to do.
      // A sender with a dummy ack (mayHave 0) may drop it.
      if (mayHave === 0) this.links.sendJobId(sender, MsgType.GOTACK, msg.id, 1);
      this.tryJobGC(job);
    }
  }

  private onGotAck(sender: ClusterNode, msg: BusMessage): void {
    const cluster = this.cluster;
    if (typeof msg.id !== 'string') return;
    const job = cluster.store.lookupJob(msg.id);
    if (!job || job.state !== JobState.Acked) return;
    const known = msg.a === 1;
    const dummy = job.delivered.length === 0;

    // A dummy ack reached a node that knows the job: that node collects it.
    if (dummy && known) {
      if (cluster.log.verboseOn) cluster.log.verbose(`Deleting ${job.id}: authoritative node reached`);
      cluster.store.unregisterJob(job);
      return;
    }
    if (known || job.delivered.includes(sender.id)) {
      job.delivered = nodeListAdd(job.delivered, sender.id);
      job.confirmed?.add(sender.id);
    }
    // Nobody knows the job: once every node said so, drop the dummy ack.
    if (!known && dummy) {
      if (job.confirmed === null) job.confirmed = new Set([this.table.myself.id]);
      job.confirmed.add(sender.id);
      if (job.confirmed.size >= this.table.size) {
        if (cluster.log.verboseOn) cluster.log.verbose(`Deleting ${job.id}: dummy ACK not known cluster-wide`);
        cluster.store.unregisterJob(job);
      }
      return;
    }
    if (!dummy && job.confirmed !== null && job.confirmed.size >= job.delivered.length) {
      if (cluster.log.verboseOn) cluster.log.verbose(`Deleting ${job.id}: All nodes involved acknowledged the job`);
      this.links.broadcastDelJob(job);
      cluster.store.unregisterJob(job);
    }
  }

  private onDelJob(msg: BusMessage): void {
    if (typeof msg.id !== 'string') return;
    const job = this.cluster.store.lookupJob(msg.id);
    if (job) {
      if (this.cluster.log.verboseOn) this.cluster.log.verbose(`RECEIVED DELJOB FOR JOB ${job.id}`);
      this.cluster.store.unregisterJob(job);
    }
  }
}
