// The node as the HTTP layer sees it (HttpHost, src/http/host.ts): the
// server hands src/http this view instead of itself, so the HTTP code
// reads only what the interface names and src/http imports nothing above it.
import type { HttpHost, HttpPeer, HttpCommandStats, HttpPersistenceStatus } from '../http/host.js';
import type { ConnectionHost } from './connection.js';
import type { CommandTable } from './command-table.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Persistence } from '../persistence/persistence.js';
import { NodeFlag, type ClusterNode } from '../cluster/cluster-node.js';
import { MSG_NAMES } from '../cluster/messages.js';
import type { RespValue } from '../protocol/reply-reader.js';
import { InternalClient } from './internal-client.js';

/** What the view reads of the server's Node (declared here: node.ts imports this file). */
export interface ViewedNode extends ConnectionHost {
  readonly cluster: Cluster;
  readonly persistence: Persistence;
  readonly commands: CommandTable;
  readonly listening: boolean;
  readonly httpPort: number;
}

/** The worst of a node's flags, in the words of CLUSTER NODES. */
function peerState(n: ClusterNode): HttpPeer['state'] {
  if (n.has(NodeFlag.HANDSHAKE)) return 'handshake';
  if (n.has(NodeFlag.NOADDR)) return 'noaddr';
  if (n.has(NodeFlag.FAIL)) return 'fail';
  if (n.has(NodeFlag.PFAIL)) return 'fail?';
  if (n.has(NodeFlag.LEAVING)) return 'leaving';
  return 'ok';
}

/** A peer that has not answered the bus for this long gets a short HTTP timeout. */
const SILENT_PEER_MS = 250;

export class NodeHttpView implements HttpHost {
  constructor(private readonly node: ViewedNode) {}

  get config() {
    return this.node.config;
  }
  get log() {
    return this.node.log;
  }
  get store() {
    return this.node.store;
  }
  get myId(): string {
    return this.node.cluster.myself.id;
  }
  get uptimeSeconds(): number {
    return this.node.uptimeSeconds;
  }
  get loading(): boolean {
    return this.node.loading;
  }
  get listening(): boolean {
    return this.node.listening;
  }
  get port(): number {
    return this.node.port;
  }
  get clientsConnected(): number {
    return this.node.clients.size;
  }
  get commandsProcessed(): number {
    return this.node.stats.commandsProcessed;
  }
  get connectionsReceived(): number {
    return this.node.stats.connectionsReceived;
  }

  commandStats(): Iterable<HttpCommandStats> {
    return this.node.commands.all();
  }

  peers(): HttpPeer[] {
    const myself = this.node.cluster.myself;
    const now = Date.now();
    return [...this.node.cluster.nodes.values()].map((n) => ({
      id: n.id,
      ip: n.ip,
      port: n.port,
      httpPort: n === myself ? this.node.httpPort : n.httpPort,
      state: peerState(n),
      myself: n === myself,
      connected: n === myself || n.link !== null,
      silent: n !== myself && (n.link === null || n.link.connecting || n.silent(now, SILENT_PEER_MS)),
    }));
  }

  get clusterSize(): number {
    return this.node.cluster.size;
  }
  get reachablePeers(): number {
    return this.node.cluster.reachableCount;
  }

  busMessages(): { type: string; received: number; sent: number }[] {
    const { receivedByType, sentByType } = this.node.cluster.links;
    const out = [];
    for (let t = 0; t < receivedByType.length; t++) {
      const received = receivedByType[t]!;
      const sent = sentByType[t]!;
      if (received === 0 && sent === 0) continue;
      out.push({ type: MSG_NAMES[t] ?? `type${t}`, received, sent });
    }
    return out;
  }

  replicationWait() {
    const r = this.node.cluster.replication;
    return { waitMs: r.waitMs, timeouts: r.timeouts };
  }

  persistence(): HttpPersistenceStatus {
    return this.node.persistence.status();
  }

  command(argv: string[], addr: string): Promise<RespValue> {
    return new InternalClient(this.node, `http:${addr}`).run(argv);
  }
}
