// Membership messages: MEET, PING and PONG (the reference's README, "Cluster
// messages"). Each carries a gossip section about a few other nodes, so
// nodes learn of each other and failure reports spread. A MEET or a first
// PONG completes a handshake (the node gets its real ID); a PING from a
// known node at a new address updates it; the cron pings each node about
// every half node timeout.
import type { ClusterHost } from './host.js';
import type { NodeTable } from './node-table.js';
import type { NodesFile } from './nodes-file.js';
import type { Links } from './links.js';
import type { FailureDetection } from './failure-detection.js';
import type { Link } from './bus.js';
import { ClusterNode, NodeFlag, randomNodeId } from './cluster-node.js';
import { MsgType, type BusMessage } from './messages.js';

export class Gossip {
  constructor(
    private readonly host: ClusterHost,
    private readonly table: NodeTable,
    private readonly links: Links,
    private readonly failures: FailureDetection,
    private readonly nodesFile: NodesFile,
    /** The digest of our queue policies for PING and PONG (policies.ts), undefined when none. */
    private readonly policyDigest: () => number | undefined = () => undefined,
  ) {}

  /** PING, PONG or MEET; `senderIn` is the sender if we know it. */
  processPingPong(link: Link, msg: BusMessage, senderIn: ClusterNode | null): void {
    const table = this.table;
    const log = this.host.log;
    let sender = senderIn;
    const type = msg.t;
    const port = typeof msg.p === 'number' ? msg.p : 0;
    if (senderIn) {
      senderIn.tlsPort = typeof msg.tp === 'number' ? msg.tp : 0;
      senderIn.httpPort = typeof msg.hp === 'number' ? msg.hp : 0;
    }

    if (type === MsgType.PING || type === MsgType.MEET) {
      // The address others use to reach us is the one they connect to.
      if (type === MsgType.MEET || table.myself.ip === '') {
        const ip = link.localAddress;
        if (ip && ip !== table.myself.ip) {
          table.myself.ip = ip;
          log.notice(`IP address for this node updated to ${ip}`);
          this.nodesFile.scheduleSave();
        }
      }
      // MEET from an unknown node: add it (in handshake until its PONG).
      if (!sender && type === MsgType.MEET) {
        const n = new ClusterNode(randomNodeId(), NodeFlag.HANDSHAKE);
        n.ip = link.remoteAddress;
        n.port = port;
        table.nodes.set(n.id, n);
        this.nodesFile.scheduleSave();
        this.processGossip(msg, null, true);
      }
      this.sendPing(link, MsgType.PONG);
    }

    const linkNode = link.node as ClusterNode | null;
    if (linkNode) {
      if (linkNode.has(NodeFlag.HANDSHAKE)) {
        if (sender) {
          // We already know this node: update its address and drop the handshake node.
          if (this.updateAddressIfNeeded(sender, link, port)) this.nodesFile.scheduleSave();
          table.delNode(linkNode);
          return;
        }
        table.renameNode(linkNode, msg.s);
        linkNode.flags &= ~NodeFlag.HANDSHAKE;
        log.verbose(`Handshake with node ${linkNode.id} completed.`);
        sender = linkNode;
        table.updateState();
        this.nodesFile.scheduleSave();
      } else if (linkNode.id !== msg.s) {
        // A different node answers at this address: forget the address.
        log.verbose(`PONG contains mismatching sender ID ${msg.s} for ${linkNode.id}`);
        linkNode.flags |= NodeFlag.NOADDR;
        linkNode.ip = '';
        linkNode.port = 0;
        linkNode.freeLink();
        this.nodesFile.scheduleSave();
        return;
      }
    }

    if (sender && type === MsgType.PING && !sender.has(NodeFlag.HANDSHAKE)) {
      if (this.updateAddressIfNeeded(sender, link, port)) this.nodesFile.scheduleSave();
      // A peer we could not reach pings us (it restarted): reconnect now
      // instead of waiting out the backoff, so its PONG clears any PFAIL.
      if (sender.link === null && !sender.has(NodeFlag.NOADDR)) {
        sender.reconnectAt = 0;
        this.links.connect(sender);
      }
    }

    if (linkNode && type === MsgType.PONG && link.node === linkNode) {
      linkNode.pongReceived = Date.now();
      linkNode.pingSent = 0;
      linkNode.reconnectDelay = 0;
      this.failures.answered(linkNode);
    }

    if (sender) {
      // The LEAVING flag is what each node says of itself.
      const reported = typeof msg.f === 'number' ? msg.f : 0;
      const before = sender.flags;
      sender.flags = (sender.flags & ~NodeFlag.LEAVING) | (reported & NodeFlag.LEAVING);
      if (sender.flags !== before) {
        table.updateState();
        this.nodesFile.scheduleSave();
      }
      this.processGossip(msg, sender, false);
    }
  }

  private processGossip(msg: BusMessage, sender: ClusterNode | null, trustMeet: boolean): void {
    const table = this.table;
    const entries = Array.isArray(msg.g) ? (msg.g as unknown[]) : [];
    for (const raw of entries) {
      if (raw === null || typeof raw !== 'object') continue;
      const g = raw as { id?: unknown; ip?: unknown; port?: unknown; flags?: unknown };
      if (typeof g.id !== 'string' || typeof g.ip !== 'string' || typeof g.port !== 'number' || typeof g.flags !== 'number') continue;
      const known = table.nodes.get(g.id);
      if (known) {
        if (sender && known !== table.myself) {
          this.failures.gossipAbout(known, sender, (g.flags & (NodeFlag.FAIL | NodeFlag.PFAIL)) !== 0);
        }
        // A failing node seen at another address: try the new one.
        if (known.flags & (NodeFlag.FAIL | NodeFlag.PFAIL) && (known.ip !== g.ip || known.port !== g.port) && g.ip !== '') {
          table.startHandshake(g.ip, g.port);
        }
      } else if ((sender || trustMeet) && !(g.flags & NodeFlag.NOADDR) && !table.blacklisted(g.id) && g.ip !== '') {
        // Only gossip from known nodes (or a MEET) adds nodes: we must not
        // join a different cluster by accident.
        table.startHandshake(g.ip, g.port);
      }
    }
  }

  /** The link's peer address differs from what we know of `n`: update it. */
  private updateAddressIfNeeded(n: ClusterNode, link: Link, port: number): boolean {
    if (link === n.link) return false;
    const ip = link.remoteAddress;
    if (n.port === port && n.ip === ip) return false;
    n.ip = ip;
    n.port = port;
    n.freeLink();
    n.flags &= ~NodeFlag.NOADDR;
    this.host.log.notice(`Address updated for node ${n.id}, now ${n.ip}:${n.port}`);
    return true;
  }

  /** PING, PONG or MEET over `link`, with gossip about a few random nodes. */
  sendPing(link: Link, type: number): void {
    const table = this.table;
    const nodes = table.nodes;
    const wanted = Math.min(Math.max(3, Math.floor(nodes.size / 10)), nodes.size - 2);
    const gossip: Record<string, unknown>[] = [];
    const all = [...nodes.values()];
    let iterations = wanted * 3;
    let fresh = nodes.size - 2;
    while (fresh > 0 && gossip.length < wanted && iterations-- > 0) {
      const n = all[Math.floor(Math.random() * all.length)]!;
      if (n === table.myself) continue;
      // Bias toward failing nodes so failure reports spread fast.
      if (iterations > wanted * 2 && !(n.flags & (NodeFlag.PFAIL | NodeFlag.FAIL))) continue;
      if (n.flags & (NodeFlag.HANDSHAKE | NodeFlag.NOADDR)) {
        fresh--;
        continue;
      }
      if (gossip.some((g) => g.id === n.id)) continue;
      fresh--;
      gossip.push({ id: n.id, ip: n.ip, port: n.port, flags: n.flags, ps: n.pingSent, pr: n.pongReceived });
    }
    const linkNode = link.node as ClusterNode | null;
    if (linkNode && type === MsgType.PING) {
      linkNode.pingSent = Date.now();
      linkNode.asked(linkNode.pingSent);
    }
    // Our TLS and HTTP ports, when we have them (older nodes ignore the fields).
    const tp = this.host.tlsPort;
    const hp = this.host.httpPort;
    this.links.sendOnLink(
      link,
      this.links.frame(type, { g: gossip, tp: tp !== 0 ? tp : undefined, hp: hp !== 0 ? hp : undefined, pd: this.policyDigest() }),
    );
  }

  /**
   * Cron: about once a second (`pingRandom`) the node we heard from least
   * recently among a few random ones is pinged; every node is pinged when
   * its last PONG is half a node timeout old, and a link waiting long for
   * its PONG is dropped (it may be stuck; the cron connects again).
   */
  cron(now: number, pingRandom: boolean): void {
    const nodes = this.table.nodes;
    if (pingRandom) {
      const all = [...nodes.values()];
      let best: ClusterNode | null = null;
      for (let j = 0; j < 5 && all.length > 0; j++) {
        const n = all[Math.floor(Math.random() * all.length)]!;
        if (!n.link || n.pingSent !== 0 || n.flags & (NodeFlag.MYSELF | NodeFlag.HANDSHAKE)) continue;
        if (best === null || n.pongReceived < best.pongReceived) best = n;
      }
      if (best?.link) this.sendPing(best.link, MsgType.PING);
    }

    const timeout = this.host.config.int('cluster-node-timeout');
    for (const n of nodes.values()) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR | NodeFlag.HANDSHAKE)) continue;
      if (
        n.link &&
        now - n.link.ctime > timeout &&
        n.pingSent &&
        n.pongReceived < n.pingSent &&
        now - n.pingSent > timeout / 2
      ) {
        n.freeLink();
      }
      if (n.link && n.pingSent === 0 && now - n.pongReceived > timeout / 2) this.sendPing(n.link, MsgType.PING);
    }
  }
}
