// What the job protocols (replication, requeue, acks, federation) use of the
// cluster. They depend on these interfaces and on cluster-node.ts only, never
// on cluster.ts, which constructs them: no import cycle, and each protocol
// can be read, and built in a test, on its own. The parts are handed over as
// they are (the node table, the links), so a protocol's call reaches the code
// doing the work directly.
import type { Logger } from '../config/log.js';
import type { JobStore } from '../core/store.js';
import type { Job } from '../core/job.js';
import type { AnyJob } from '../core/job-codec.js';
import type { ClusterNode } from './cluster-node.js';
import type { BusMessage } from './messages.js';

/** Handles one message type; one handler per type, named after it. */
export type MessageHandler = (sender: ClusterNode, msg: BusMessage) => void;

/** The node table as the job protocols read it (NodeTable, node-table.ts). */
export interface NodeTableView {
  /** This node. Read it when needed: loading the nodes file replaces it. */
  readonly myself: ClusterNode;
  readonly nodes: ReadonlyMap<string, ClusterNode>;
  /** Nodes not in handshake, myself included. */
  readonly size: number;
  /** This node is leaving the cluster (CLUSTER LEAVING). */
  readonly leaving: boolean;
  /** Reachable nodes in random order. */
  shuffledReachable(): ClusterNode[];
  /** IDs of every node of the cluster (handshakes excluded), myself included. */
  memberIds(): string[];
  /** The shared string instance of a known node's ID, or null if unknown. */
  internId(id: string): string | null;
}

/** Messages to other nodes, as the job protocols send them (Links, links.ts). */
export interface MessageSender {
  frame(type: number, body: Record<string, unknown>, mflags?: number): Buffer;
  /** To one node over its outbound link; dropped if not connected (best effort). */
  send(n: ClusterNode, frame: Buffer): void;
  sendToIds(ids: Iterable<string>, frame: Buffer): void;
  broadcast(frame: Buffer): void;
  /** A job-ID message (batched per node and turn). */
  sendJobId(n: ClusterNode | string, type: number, id: string, aux?: number, mflags?: number): void;
  /** REPLJOB: the job as it is now. */
  sendReplJob(n: ClusterNode, job: AnyJob, mflags: number): void;
  /** YOURJOBS: jobs handed to a node that asked for them. */
  sendYourJobs(n: ClusterNode, jobs: readonly Job[]): void;
  broadcastQueued(job: Job, mflags: number): void;
  broadcastDelJob(job: Job): void;
  sendEnqueue(nodeId: string, id: string, delay: number): void;
}

export interface ClusterContext {
  readonly log: Logger;
  readonly store: JobStore;
  readonly table: NodeTableView;
  readonly links: MessageSender;
  /** Registers the handler of a message type. */
  on(type: number, handler: MessageHandler): void;
}
