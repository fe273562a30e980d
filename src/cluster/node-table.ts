// The node table (the reference's clusterState): every node this node knows,
// myself included, the cluster size and the reachable nodes derived from
// it, the blacklist of forgotten nodes, and how the table is shown (CLUSTER
// NODES, the nodes file, HELLO). Gossip, failure detection and the nodes
// file change it; the job protocols read it (context.ts).
import net from 'node:net';
import type { ClusterHost } from './host.js';
import type { NodeTableView } from './context.js';
import { ClusterNode, NodeFlag, randomNodeId } from './cluster-node.js';

/** A forgotten node is not re-added by gossip for this long. */
const BLACKLIST_TTL_MS = 60_000;

/** A node as HELLO lists it. */
export interface HelloEntry {
  id: string;
  ip: string;
  port: number;
  /** 0 when the node has no TLS port. */
  tlsPort: number;
  priority: number;
}

export class NodeTable implements NodeTableView {
  myself: ClusterNode;
  /** By ID. The same Map for the node's life: loading the nodes file refills it. */
  readonly nodes = new Map<string, ClusterNode>();
  /** Nodes not in handshake, myself included. */
  size = 1;
  /** Reachable peers: not myself, not in handshake, not leaving, not failing. */
  reachable: ClusterNode[] = [];
  private readonly blacklist = new Map<string, number>();

  constructor(private readonly host: ClusterHost) {
    this.myself = new ClusterNode(randomNodeId(), NodeFlag.MYSELF);
    this.nodes.set(this.myself.id, this.myself);
  }

  get leaving(): boolean {
    return this.myself.has(NodeFlag.LEAVING);
  }

  /** Starts a handshake (CLUSTER MEET) unless one is under way for the address. */
  startHandshake(ipIn: string, port: number): 'started' | 'busy' | 'invalid' {
    const family = net.isIP(ipIn);
    const portOffset = this.host.config.int('cluster-port-offset');
    if (family === 0 || !Number.isInteger(port) || port <= 0 || port > 65535 - portOffset) return 'invalid';
    const ip = family === 6 ? normalizeIPv6(ipIn) : ipIn;
    for (const n of this.nodes.values()) {
      if (n.has(NodeFlag.HANDSHAKE) && n.ip === ip && n.port === port) return 'busy';
    }
    const n = new ClusterNode(randomNodeId(), NodeFlag.HANDSHAKE | NodeFlag.MEET);
    n.ip = ip;
    n.port = port;
    this.nodes.set(n.id, n);
    return 'started';
  }

  /** A node first known by a random ID (handshake) gets its real one. */
  renameNode(n: ClusterNode, id: string): void {
    this.nodes.delete(n.id);
    n.id = id;
    this.nodes.set(id, n);
  }

  /** CLUSTER RESET HARD: this node takes a new ID. */
  renameMyself(): void {
    this.renameNode(this.myself, randomNodeId());
  }

  delNode(n: ClusterNode): void {
    for (const other of this.nodes.values()) other.failReports.delete(n.id);
    this.nodes.delete(n.id);
    n.freeLink();
    this.updateState();
  }

  /** CLUSTER FORGET: delete it and keep gossip from adding it back for a while. */
  forget(n: ClusterNode): void {
    this.blacklist.set(n.id, Date.now() + BLACKLIST_TTL_MS);
    this.delNode(n);
  }

  blacklisted(id: string): boolean {
    const until = this.blacklist.get(id);
    if (until === undefined) return false;
    if (until < Date.now()) {
      this.blacklist.delete(id);
      return false;
    }
    return true;
  }

  /** Recomputes the cluster size and the reachable nodes. */
  updateState(): void {
    let size = 0;
    const reachable: ClusterNode[] = [];
    for (const n of this.nodes.values()) {
      if (!n.has(NodeFlag.HANDSHAKE)) size++;
      // NOADDR too: without an address it can be neither pinged nor sent jobs.
      if (
        !(
          n.flags &
          (NodeFlag.MYSELF | NodeFlag.HANDSHAKE | NodeFlag.LEAVING | NodeFlag.PFAIL | NodeFlag.FAIL | NodeFlag.NOADDR)
        )
      ) {
        reachable.push(n);
      }
    }
    this.size = size;
    const log = this.host.log;
    if (reachable.length !== this.reachable.length && log.enabled('verbose')) {
      const down = [...this.nodes.values()]
        .filter((n) => n !== this.myself && !reachable.includes(n))
        .map((n) => `${n.id.slice(0, 8)}(${n.flagString()})`);
      log.verbose(`Reachable nodes: ${reachable.length}; not reachable: ${down.join(' ') || 'none'}`);
    }
    this.reachable = reachable;
  }

  /** Reachable nodes in random order (Fisher-Yates). */
  shuffledReachable(): ClusterNode[] {
    const a = [...this.reachable];
    for (let i = a.length - 1; i > 0; i--) {
      const r = Math.floor(Math.random() * (i + 1));
      [a[i], a[r]] = [a[r]!, a[i]!];
    }
    return a;
  }

  /** IDs of every node of the cluster (handshakes excluded), myself included. */
  memberIds(): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) if (!n.has(NodeFlag.HANDSHAKE)) out.push(n.id);
    return out;
  }

  /** The shared string instance of a known node's ID, or null if unknown. */
  internId(id: string): string | null {
    return this.nodes.get(id)?.id ?? null;
  }

  /** One line of CLUSTER NODES and of the nodes file. */
  describe(n: ClusterNode): string {
    return `${n.id} ${n.ip}:${n.port} ${n.flagString()} ${n.pingSent} ${n.pongReceived} ${
      n.link || n === this.myself ? 'connected' : 'disconnected'
    }`;
  }

  nodesDescription(excludeHandshake: boolean): string {
    let s = '';
    for (const n of this.nodes.values()) {
      if (excludeHandshake && n.has(NodeFlag.HANDSHAKE)) continue;
      s += this.describe(n) + '\n';
    }
    return s;
  }

  /** HELLO: every known node with a priority (lower is better). */
  helloEntries(): HelloEntry[] {
    const out = [];
    for (const n of this.nodes.values()) {
      if (n.has(NodeFlag.HANDSHAKE)) continue;
      let priority = 1;
      if (n.link === null && n !== this.myself) priority = 5;
      if (n.has(NodeFlag.PFAIL)) priority = 10;
      if (n.flags & (NodeFlag.FAIL | NodeFlag.LEAVING)) priority = 100;
      out.push({ id: n.id, ip: n.ip, port: n.port, tlsPort: n.tlsPort, priority });
    }
    return out;
  }
}

function normalizeIPv6(ip: string): string {
  // Let the platform parse it, then print it back in its canonical form.
  try {
    return new URL(`http://[${ip}]/`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return ip;
  }
}
