// Links between nodes (the reference's clusterLink) and what is sent over
// them. The bus listener accepts inbound links; each known node gets one
// outbound link, opened by the cron and, after a close, again with a
// back-off. Messages go to one node, to a list of nodes or to all; job
// messages are written straight into the link's output (job-frames.ts),
// consecutive ones of one kind to one node sharing a frame.
// bus.ts moves the frames; the cluster (LinkOwner) handles what arrives.
import net from 'node:net';
import type { ClusterHost } from './host.js';
import type { MessageSender } from './context.js';
import type { NodeTable } from './node-table.js';
import { NodeFlag, type ClusterNode } from './cluster-node.js';
import { Link, FrameEncoder } from './bus.js';
import { jobIdRoom, jobRoom, writeJob, writeJobId } from './job-frames.js';
import { BusSockets } from './bus-sockets.js';
import { MsgType, BUS_PROTOCOL_VERSION, type BusMessage, type BusHeader } from './messages.js';
import type { Job } from '../core/job.js';
import type { AnyJob } from '../core/job-codec.js';

/** Reconnection attempts back off from 100 ms up to this. */
const RECONNECT_MAX_DELAY_MS = 500;
/**
 * A link still connecting after this (and a quarter of the node timeout) is
 * dropped and tried again: a SYN lost to a partition is otherwise retried by
 * the kernel only after 1, 3, 7... seconds, long after the partition healed.
 */
const CONNECT_TIMEOUT_MS = 1000;

/** What the links hand up (the Cluster implements it). */
export interface LinkOwner {
  /** A message arrived on a link. */
  processMessage(link: Link, msg: BusMessage): void;
  /** A job frame arrived (job-frames.ts); valid only during the call. */
  processJobFrame(frame: Buffer): void;
  /** PING (or MEET) with gossip over a link (gossip.ts). */
  sendPing(link: Link, type: number): void;
}

export class Links implements MessageSender {
  messagesSent = 0;
  messagesReceived = 0;
  /**
   * Messages by type (MsgType), for /metrics: a frame of job messages
   * counts as one, as it is one message on the wire.
   */
  readonly receivedByType = new Float64Array(256);
  readonly sentByType = new Float64Array(256);
  /** The type of each frame made by frame(), for the counts of send(). Batches know theirs. */
  private readonly frameTypes = new WeakMap<Buffer, number>();
  /** Same Map as the table's, for the hot paths. */
  private readonly nodes: Map<string, ClusterNode>;
  private readonly inbound = new Set<Link>();
  private readonly encoder = new FrameEncoder(() => this.header());
  private busServer: net.Server | null = null;
  /** Plain TCP, or TLS with tls-cluster. */
  readonly sockets: BusSockets;
  /** The last job written for REPLJOB, kept to copy to the next node that gets it (see sendReplJob). */
  private replJob: AnyJob | null = null;
  private replDelivered: readonly string[] | null = null;
  private replBytes = Buffer.allocUnsafe(4096);
  private replLen = 0;

  constructor(
    private readonly host: ClusterHost,
    private readonly table: NodeTable,
    private readonly owner: LinkOwner,
  ) {
    this.nodes = table.nodes;
    this.sockets = new BusSockets(host.config, host.log);
  }

  private get portOffset(): number {
    return this.host.config.int('cluster-port-offset');
  }

  // ------------------------------------------------------ listen and close

  async listen(busPort: number, host: string | undefined): Promise<void> {
    const srv = this.sockets.createServer((s) => this.acceptLink(s));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ port: busPort, host }, () => {
        srv.removeListener('error', reject);
        resolve();
      });
    });
    srv.on('error', (e) => this.host.log.warning(`Cluster bus listener error: ${e.message}`));
    this.busServer = srv;
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.link?.close();
    for (const l of this.inbound) l.close();
    await new Promise<void>((resolve) => (this.busServer ? this.busServer.close(() => resolve()) : resolve()));
  }

  // --------------------------------------------------------------- links

  private linkOpts() {
    return {
      secret: this.host.config.str('cluster-secret'),
      maxFrame: () => this.host.config.int('client-query-buffer-limit'),
      myHeader: () => this.header(),
    };
  }

  private acceptLink(socket: net.Socket): void {
    const link = new Link(socket, true, this.linkEvents, this.linkOpts());
    this.inbound.add(link);
    this.host.log.verbose(`Accepted cluster node ${link.remoteAddress}:${socket.remotePort}`);
  }

  private readonly linkEvents = {
    message: (link: Link, msg: BusMessage) => {
      this.messagesReceived++;
      this.receivedByType[msg.t & 255]++;
      this.owner.processMessage(link, msg);
    },
    jobFrame: (_link: Link, frame: Buffer) => {
      this.messagesReceived++;
      this.receivedByType[frame[2]!]++;
      this.owner.processJobFrame(frame);
    },
    jobFrameOpened: (type: number) => {
      this.messagesSent++;
      this.sentByType[type & 255]++;
    },
    // Replies and queue changes are settled once per read, as for clients.
    read: () => this.host.afterEvent(),
    closed: (link: Link) => {
      this.inbound.delete(link);
      const n = link.node as ClusterNode | null;
      if (n && n.link === link) {
        n.link = null;
        n.reconnectDelay = Math.min(n.reconnectDelay === 0 ? 100 : n.reconnectDelay * 2, RECONNECT_MAX_DELAY_MS);
        n.reconnectAt = Date.now() + n.reconnectDelay;
      }
    },
    bad: (link: Link, reason: string) => {
      this.host.log.warning(`Closing cluster bus link with ${link.remoteAddress}: ${reason}`);
    },
  };

  /** Opens our link to `n` and greets it. */
  connect(n: ClusterNode): void {
    const { socket, ready } = this.sockets.connect(n.ip, n.port + this.portOffset);
    const link = new Link(socket, false, this.linkEvents, { ...this.linkOpts(), ready });
    link.node = n;
    n.link = link;
    // PING at once (MEET for a node we are introducing ourselves to), so
    // failure detection starts from the first connection attempt.
    const oldPingSent = n.pingSent;
    this.owner.sendPing(link, n.has(NodeFlag.MEET) ? MsgType.MEET : MsgType.PING);
    if (oldPingSent) n.pingSent = oldPingSent;
    n.flags &= ~NodeFlag.MEET;
  }

  /**
   * Cron: a handshake not completed in time is dropped, a link connecting
   * for too long too; nodes without a link are connected once their
   * back-off is over.
   */
  cron(now: number, handshakeTimeout: number): void {
    const connectTimeout = Math.max(CONNECT_TIMEOUT_MS, this.host.config.int('cluster-node-timeout') / 4);
    for (const n of [...this.nodes.values()]) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR)) continue;
      if (n.has(NodeFlag.HANDSHAKE) && now - n.ctime > handshakeTimeout) {
        this.table.delNode(n);
        continue;
      }
      if (n.link !== null && n.link.connecting && now - n.link.ctime > connectTimeout) n.freeLink();
      if (n.link === null && now >= n.reconnectAt) this.connect(n);
    }
  }

  // ------------------------------------------------------------- sending

  header(): BusHeader {
    const myself = this.table.myself;
    return { v: BUS_PROTOCOL_VERSION, s: myself.id, p: this.host.port, f: myself.flags };
  }

  frame(type: number, body: Record<string, unknown>, mflags = 0): Buffer {
    const frame = this.encoder.encode(type, mflags, body);
    this.frameTypes.set(frame, type);
    return frame;
  }

  private countSent(frame: Buffer): void {
    this.messagesSent++;
    const type = this.frameTypes.get(frame);
    if (type !== undefined) this.sentByType[type & 255]++;
  }

  /** Sends to a node over its outbound link; dropped if not connected (best effort). */
  send(n: ClusterNode, frame: Buffer): void {
    if (!n.link || n === this.table.myself) return;
    n.link.send(frame);
    this.countSent(frame);
  }

  /** Sends over a link whatever node it leads to (PING, PONG, MEET). */
  sendOnLink(link: Link, frame: Buffer): void {
    link.send(frame);
    this.countSent(frame);
  }

  /** Sends a message to the nodes with the given IDs (myself and unknown ones skipped). */
  sendToIds(ids: Iterable<string>, frame: Buffer): void {
    for (const id of ids) {
      const n = this.nodes.get(id);
      if (n && !n.has(NodeFlag.HANDSHAKE)) this.send(n, frame);
    }
  }

  /** Sends a message to every node of the cluster. */
  broadcast(frame: Buffer): void {
    const myself = this.table.myself;
    for (const n of this.nodes.values()) {
      if (n !== myself && !n.has(NodeFlag.HANDSHAKE)) this.send(n, frame);
    }
  }

  /** Job messages go only to connected peers past the handshake. */
  private takesJobMessages(n: ClusterNode | undefined): n is ClusterNode & { link: Link } {
    return n !== undefined && n !== this.table.myself && n.link !== null && !n.has(NodeFlag.HANDSHAKE);
  }

  // -------------------------------------------------------- job messages

  /**
   * REPLJOB: the job as it is now. With REPLICATE 3, two nodes get the same
   * bytes: the job is written once, then copied to the next node.
   */
  sendReplJob(n: ClusterNode, job: AnyJob, mflags: number): void {
    if (!this.takesJobMessages(n)) return;
    if (this.replJob !== job || this.replDelivered !== job.delivered) {
      const room = jobRoom(job);
      if (room > this.replBytes.length) this.replBytes = Buffer.allocUnsafe(Math.max(room, this.replBytes.length * 2));
      this.replLen = writeJob(this.replBytes, 0, job, this.host.store.clock);
      this.replJob = job;
      this.replDelivered = job.delivered;
      // Only within this turn: the job's TTL left and state move on.
      queueMicrotask(this.forgetReplJob);
    }
    const link = n.link;
    const p = link.beginJobItem(MsgType.REPLJOB, 0, mflags, this.replLen);
    this.replBytes.copy(link.outBuffer, p, 0, this.replLen);
    link.endJobItem(p + this.replLen);
  }

  private readonly forgetReplJob = (): void => {
    this.replJob = null;
    this.replDelivered = null;
  };

  /** YOURJOBS: jobs handed to a node that asked for them (federation). */
  sendYourJobs(n: ClusterNode, jobs: readonly Job[]): void {
    if (!this.takesJobMessages(n)) return;
    const link = n.link;
    const clock = this.host.store.clock;
    for (const job of jobs) {
      const p = link.beginJobItem(MsgType.YOURJOBS, 0, 0, jobRoom(job));
      link.endJobItem(writeJob(link.outBuffer, p, job, clock));
    }
  }

  /**
   * A message carrying a job ID and an optional number (the reference's
   * JobID messages). Consecutive ones of the same kind to the same node
   * share one frame listing the IDs: with many clients, a turn confirms,
   * acks or deletes many jobs, and one frame per job was a large part of
   * the cost of replication.
   */
  sendJobId(n: ClusterNode | string, type: number, id: string, aux = 0, mflags = 0): void {
    const node = typeof n === 'string' ? this.nodes.get(n) : n;
    if (!this.takesJobMessages(node)) return;
    const link = node.link;
    const p = link.beginJobItem(type, aux, mflags, jobIdRoom(id));
    link.endJobItem(writeJobId(link.outBuffer, p, id));
  }

  broadcastJobId(ids: Iterable<string>, type: number, id: string, aux = 0, mflags = 0): void {
    for (const nid of ids) this.sendJobId(nid, type, id, aux, mflags);
  }

  /** QUEUED to the other owners: they push back their re-queue time. */
  broadcastQueued(job: Job, mflags: number): void {
    this.broadcastJobId(job.delivered, MsgType.QUEUED, job.id, 0, mflags);
  }

  broadcastWorking(job: Job): void {
    this.broadcastJobId(job.delivered, MsgType.WORKING, job.id);
  }

  broadcastDelJob(job: Job): void {
    this.broadcastJobId(job.delivered, MsgType.DELJOB, job.id);
  }

  /** DELJOB to every node: FASTACK of a job this node does not know. */
  broadcastDelJobId(id: string): void {
    for (const n of this.nodes.values()) this.sendJobId(n, MsgType.DELJOB, id);
  }

  /** ENQUEUE: ask a node holding a copy to queue the job (after `delay` seconds). */
  sendEnqueue(nodeId: string, id: string, delay: number): void {
    this.sendJobId(nodeId, MsgType.ENQUEUE, id, delay);
  }

  broadcastPause(queue: string, flags: number): void {
    this.broadcast(this.frame(MsgType.PAUSE, { q: Buffer.from(queue, 'latin1'), a: flags }));
  }
}
