// Failure detection (the reference's README, "Cluster failure detection"):
// a node that does not answer our PING within the node timeout is PFAIL
// (possibly failing) for us; when a majority of the cluster reports it so
// (failure reports travel in gossip), it becomes FAIL and a FAIL message
// tells everyone at once. A node that answers again is cleared.
import type { ClusterHost } from './host.js';
import type { NodeTable } from './node-table.js';
import type { NodesFile } from './nodes-file.js';
import type { Links } from './links.js';
import { NodeFlag, type ClusterNode } from './cluster-node.js';
import { MsgType, type BusMessage } from './messages.js';

/** Failure reports older than node-timeout times this are ignored. */
const FAIL_REPORT_VALIDITY_MULT = 2;

export class FailureDetection {
  constructor(
    private readonly host: ClusterHost,
    private readonly table: NodeTable,
    private readonly links: Links,
    private readonly nodesFile: NodesFile,
  ) {}

  private get nodeTimeout(): number {
    return this.host.config.int('cluster-node-timeout');
  }

  /** Gossip from `reporter` says whether `n` is failing (PFAIL or FAIL) for it. */
  gossipAbout(n: ClusterNode, reporter: ClusterNode, failing: boolean): void {
    const log = this.host.log;
    if (failing) {
      if (!n.failReports.has(reporter.id)) log.verbose(`Node ${reporter.id} reported node ${n.id} as not reachable.`);
      n.failReports.set(reporter.id, Date.now());
      this.markFailingIfNeeded(n);
    } else if (n.failReports.delete(reporter.id)) {
      log.verbose(`Node ${reporter.id} reported node ${n.id} is back online.`);
    }
  }

  /** `n` answered our PING: whatever we thought of it, it is reachable. */
  answered(n: ClusterNode): void {
    if (n.has(NodeFlag.PFAIL)) {
      this.host.log.verbose(`Clear PFAIL state for node ${n.id}: it answered.`);
      n.flags &= ~NodeFlag.PFAIL;
      this.changed();
    } else if (n.has(NodeFlag.FAIL)) {
      this.host.log.notice(`Clear FAIL state for node ${n.id}: it is reachable again.`);
      n.flags &= ~NodeFlag.FAIL;
      this.changed();
    }
  }

  /** FAIL: a majority agreed the node failed; no need to count reports ourselves. */
  onFail(_sender: ClusterNode, msg: BusMessage): void {
    const failing = typeof msg.n === 'string' ? this.table.nodes.get(msg.n) : undefined;
    if (failing && !(failing.flags & (NodeFlag.FAIL | NodeFlag.MYSELF))) {
      this.host.log.notice(`FAIL message received from ${msg.s} about ${failing.id}`);
      failing.flags = (failing.flags | NodeFlag.FAIL) & ~NodeFlag.PFAIL;
      failing.failTime = Date.now();
      this.changed();
    }
  }

  private markFailingIfNeeded(n: ClusterNode): void {
    const quorum = Math.floor(this.table.size / 2) + 1;
    if (!n.has(NodeFlag.PFAIL) || n.has(NodeFlag.FAIL)) return;
    const failures = this.failureReports(n) + 1; // our own PFAIL counts
    if (failures < quorum) return;
    this.host.log.notice(`Marking node ${n.id} as failing (quorum reached).`);
    n.flags = (n.flags & ~NodeFlag.PFAIL) | NodeFlag.FAIL;
    n.failTime = Date.now();
    this.links.broadcast(this.links.frame(MsgType.FAIL, { n: n.id }));
    this.changed();
  }

  /** Valid failure reports about `n` (older ones are dropped). */
  private failureReports(n: ClusterNode): number {
    const maxAge = this.nodeTimeout * FAIL_REPORT_VALIDITY_MULT;
    const now = Date.now();
    for (const [id, t] of n.failReports) if (now - t > maxAge) n.failReports.delete(id);
    return n.failReports.size;
  }

  private changed(): void {
    this.table.updateState();
    this.nodesFile.scheduleSave();
  }

  /** Cron: nodes whose PING went unanswered for the node timeout become PFAIL. */
  cron(now: number): void {
    const timeout = this.nodeTimeout;
    let changed = false;
    for (const n of this.table.nodes.values()) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR | NodeFlag.HANDSHAKE)) continue;
      if (n.pingSent === 0) continue;
      // A node that spoke to us within the timeout is alive, whatever became
      // of our last PING (it may have restarted before answering on our new
      // link; later Redis Cluster versions judge the same way).
      if (now - n.dataReceived <= timeout) continue;
      if (now - n.pingSent > timeout && !(n.flags & (NodeFlag.PFAIL | NodeFlag.FAIL))) {
        this.host.log.verbose(`*** NODE ${n.id} possibly failing`);
        n.flags |= NodeFlag.PFAIL;
        changed = true;
      }
    }
    if (changed) this.table.updateState();
  }
}
