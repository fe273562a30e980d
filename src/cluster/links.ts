// Links between nodes (the reference's clusterLink) and what is sent over
// them. The bus listener accepts inbound links; each known node gets one
// outbound link, opened by the cron and, after a close, again with a
// back-off. Messages go to one node, to a list of nodes or to all; the job
// messages are batched per node and per event-loop turn (see Batch).
// bus.ts moves the frames; the cluster (LinkOwner) handles what arrives.
import net from 'node:net';
import type { ClusterHost } from './host.js';
import type { MessageSender } from './context.js';
import type { NodeTable } from './node-table.js';
import { NodeFlag, type ClusterNode, type Batch } from './cluster-node.js';
import { Link, FrameEncoder, atTurnEnd, requestTurnEnd } from './bus.js';
import { BusSockets } from './bus-sockets.js';
import { MsgType, BUS_PROTOCOL_VERSION, type BusMessage, type BusHeader } from './messages.js';
import { Job } from '../core/job.js';
import { writeJob, type AnyJob } from '../core/job-codec.js';
import type { MsgWriter } from '../core/msgpack-writer.js';

/** Reconnection attempts back off from 100 ms up to this. */
const RECONNECT_MAX_DELAY_MS = 500;

/** What the links hand up (the Cluster implements it). */
export interface LinkOwner {
  /** A message arrived on a link. */
  processMessage(link: Link, msg: BusMessage): void;
  /** PING (or MEET) with gossip over a link (gossip.ts). */
  sendPing(link: Link, type: number): void;
}

function sameJobs(a: AnyJob[], b: AnyJob[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Links implements MessageSender {
  messagesSent = 0;
  messagesReceived = 0;
  /**
   * Messages by type (MsgType), for /metrics: a batch of job messages (see
   * Batch) counts as one, as it is one message on the wire.
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
  /** Nodes with a Batch open. */
  private readonly batched = new Set<ClusterNode>();
  private readonly stopBatching: () => void;

  constructor(
    private readonly host: ClusterHost,
    private readonly table: NodeTable,
    private readonly owner: LinkOwner,
  ) {
    this.nodes = table.nodes;
    this.sockets = new BusSockets(host.config, host.log);
    this.stopBatching = atTurnEnd(this.sendBatches);
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
    this.stopBatching();
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
   * Cron: a handshake not completed in time is dropped; nodes without a
   * link are connected once their back-off is over.
   */
  cron(now: number, handshakeTimeout: number): void {
    for (const n of [...this.nodes.values()]) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR)) continue;
      if (n.has(NodeFlag.HANDSHAKE) && now - n.ctime > handshakeTimeout) {
        this.table.delNode(n);
        continue;
      }
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
    if (n.batch !== null) this.sendBatch(n);
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

  // ------------------------------------------------------------ batching

  private sendBatch(n: ClusterNode): void {
    const b = n.batch!;
    n.batch = null;
    if (!n.link) return;
    const shared = this.sharedReplJob;
    if (shared !== null && b.type === MsgType.REPLJOB && b.mflags === shared.mflags && sameJobs(b.jobs, shared.jobs)) {
      n.link.send(shared.frame);
      this.messagesSent++;
      this.sentByType[b.type & 255]++;
      return;
    }
    let body: Record<string, unknown>;
    if (b.type === MsgType.REPLJOB) {
      // Written into the frame straight from the jobs (see writeJob). A job
      // deleted since it was batched needs no copy anywhere.
      const clock = this.host.store.clock;
      const jobs = b.jobs.filter((j) => !(j instanceof Job) || j.registered);
      if (jobs.length === 0) return;
      body =
        jobs.length === 1
          ? { j: (w: MsgWriter) => writeJob(w, jobs[0]!, clock, false) }
          : {
              js: (w: MsgWriter) => {
                w.arrayHeader(jobs.length);
                for (const job of jobs) writeJob(w, job, clock, false);
              },
            };
    } else {
      body = b.ids.length === 1 ? { id: b.ids[0], a: b.aux } : { ids: b.ids, a: b.aux };
    }
    const frame = this.encoder.encode(b.type, b.mflags, body);
    if (shared !== null && b.type === MsgType.REPLJOB) {
      shared.jobs = b.jobs;
      shared.mflags = b.mflags;
      shared.frame = frame;
    }
    n.link.send(frame);
    this.messagesSent++;
    this.sentByType[b.type & 255]++;
  }

  /**
   * While the batches of a turn go out: the last REPLJOB written, reused for
   * the next node whose batch holds the same jobs (with REPLICATE 3 on three
   * nodes, both peers get every job), so each job is encoded once.
   */
  private sharedReplJob: { jobs: AnyJob[]; mflags: number; frame: Buffer } | null = null;

  /** At the end of the turn: the batched job messages go out. */
  private readonly sendBatches = (): void => {
    this.sharedReplJob = { jobs: [], mflags: -1, frame: Buffer.alloc(0) };
    for (const n of this.batched) if (n.batch !== null) this.sendBatch(n);
    this.sharedReplJob = null;
    this.batched.clear();
  };

  /** The open batch of `type` to `n`, a new one when the last message to it differs. */
  private batchFor(n: ClusterNode, type: number, aux: number, mflags: number): Batch {
    const b = n.batch;
    if (b !== null && b.type === type && b.aux === aux && b.mflags === mflags) return b;
    if (b !== null) this.sendBatch(n);
    const nb: Batch = { type, aux, mflags, ids: [], jobs: [] };
    n.batch = nb;
    this.batched.add(n);
    requestTurnEnd();
    return nb;
  }

  /** Job messages go only to connected peers past the handshake. */
  private takesJobMessages(n: ClusterNode | undefined): n is ClusterNode {
    return n !== undefined && n !== this.table.myself && n.link !== null && !n.has(NodeFlag.HANDSHAKE);
  }

  // -------------------------------------------------------- job messages

  /** REPLJOB: the job is written as it is when the batch is sent (this turn). */
  sendReplJob(n: ClusterNode, job: AnyJob, mflags: number): void {
    if (this.takesJobMessages(n)) this.batchFor(n, MsgType.REPLJOB, 0, mflags).jobs.push(job);
  }

  /**
   * A message carrying a job ID and an optional number (the reference's
   * JobID messages). Consecutive ones of the same kind to the same node are
   * sent as one message listing the IDs (see Batch): with many clients,
   * a turn confirms, acks or deletes many jobs, and one message per job was
   * a large part of the cost of replication.
   */
  sendJobId(n: ClusterNode | string, type: number, id: string, aux = 0, mflags = 0): void {
    const node = typeof n === 'string' ? this.nodes.get(n) : n;
    if (this.takesJobMessages(node)) this.batchFor(node, type, aux, mflags).ids.push(id);
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
