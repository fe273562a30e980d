// Cluster membership: the node table, MEET handshakes, PING/PONG with
// gossip, failure detection (PFAIL/FAIL), the nodes file, LEAVING, and the
// dispatch of bus messages to the job protocols (replication, requeue, acks,
// federation), each in its own file.
import net from 'node:net';
import dns from 'node:dns/promises';
import { readFileSync, writeFileSync, renameSync, existsSync, openSync, fsyncSync, closeSync } from 'node:fs';
import type { ClusterHost } from './host.js';
import { ClusterNode, NodeFlag, NODE_FLAG_NAMES, randomNodeId, type Batch } from './cluster-node.js';
import { Job } from '../core/job.js';
import { writeJob, type AnyJob } from '../core/job-codec.js';
import type { MsgWriter } from '../core/msgpack-writer.js';
import type { StoreHooks } from '../core/store.js';
import { Link, FrameEncoder, atTurnEnd, requestTurnEnd } from './bus.js';
import { MsgType, MSG_NAMES, BUS_PROTOCOL_VERSION, type BusMessage, type BusHeader, MSG_FLAG_INCR_DELIV, MSG_FLAG_INCR_NACKS } from './messages.js';
import { Replication } from './replication.js';
import { Requeue } from './requeue.js';
import { Acks } from './acks.js';
import { Federation } from './federation.js';
import { errors } from '../protocol/errors.js';

/** A forgotten node is not re-added by gossip for this long. */
const BLACKLIST_TTL_MS = 60_000;
/** Reconnection attempts back off from 100 ms up to this. */
const RECONNECT_MAX_DELAY_MS = 500;
/** Failure reports older than node-timeout times this are ignored. */
const FAIL_REPORT_VALIDITY_MULT = 2;

function sameJobs(a: AnyJob[], b: AnyJob[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Cluster {
  myself: ClusterNode;
  readonly nodes = new Map<string, ClusterNode>();
  /** Nodes not in handshake, myself included. */
  size = 1;
  /** Reachable peers: not myself, not in handshake, not leaving, not failing. */
  reachable: ClusterNode[] = [];
  messagesSent = 0;
  messagesReceived = 0;
  readonly replication: Replication;
  /** Nodes with a Batch open. */
  private readonly batched = new Set<ClusterNode>();
  private readonly stopBatching: () => void;
  readonly requeue: Requeue;
  readonly acks: Acks;
  readonly federation: Federation;
  private readonly blacklist = new Map<string, number>();
  private readonly inbound = new Set<Link>();
  private readonly encoder = new FrameEncoder(() => this.header());
  private busServer: net.Server | null = null;
  private cronIteration = 0;
  private saveScheduled = false;
  private readonly handlers = new Map<number, (sender: ClusterNode, msg: BusMessage) => void>();

  constructor(readonly node: ClusterHost) {
    this.myself = new ClusterNode(randomNodeId(), NodeFlag.MYSELF);
    this.nodes.set(this.myself.id, this.myself);
    this.replication = new Replication(this);
    this.stopBatching = atTurnEnd(this.sendBatches);
    this.requeue = new Requeue(this);
    this.acks = new Acks(this);
    this.federation = new Federation(this);
    this.replication.register();
    this.requeue.register();
    this.acks.register();
    this.federation.register();
    this.on(MsgType.FAIL, (sender, msg) => this.onFail(sender, msg));
  }

  get log() {
    return this.node.log;
  }

  get store() {
    return this.node.store;
  }

  /** Registers the handler of a message type; job protocols plug in here. */
  on(type: number, handler: (sender: ClusterNode, msg: BusMessage) => void): void {
    this.handlers.set(type, handler);
  }

  get leaving(): boolean {
    return this.myself.has(NodeFlag.LEAVING);
  }

  get reachableCount(): number {
    return this.reachable.length;
  }

  private get nodeTimeout(): number {
    return this.node.config.int('cluster-node-timeout');
  }

  private get portOffset(): number {
    return this.node.config.int('cluster-port-offset');
  }

  /** What the job store must tell other nodes. */
  storeHooks(): StoreHooks {
    return {
      queued: (job, nack) => this.broadcastQueued(job, nack ? MSG_FLAG_INCR_NACKS : MSG_FLAG_INCR_DELIV),
      willQueue: (job) => this.broadcastJobId(job.delivered, MsgType.WILLQUEUE, job.id),
      collect: (job) => this.acks.tryJobGC(job),
      waitReplAborted: (job) => this.replication.aborted(job),
      needJobs: (q, zero) => this.federation.needJobs(q, zero),
    };
  }

  // ------------------------------------------------------------ lifecycle

  /** Loads the nodes file, or creates this node's identity and saves it. */
  init(): void {
    const file = this.node.config.str('cluster-config-file');
    if (!this.loadNodesFile(file)) {
      this.log.notice(`No cluster configuration found, I'm ${this.myself.id}`);
      this.saveNodesFile();
    }
    this.myself.port = this.node.config.int('port');
    this.updateState();
  }

  async listen(): Promise<void> {
    this.myself.port = this.node.port;
    const busPort = this.node.port + this.portOffset;
    if (busPort > 65535) throw new Error(`cluster bus port ${busPort} is out of range: lower port or cluster-port-offset`);
    // Sockets start paused: the link's transport takes over reading.
    const srv = net.createServer({ pauseOnConnect: true }, (s) => this.acceptLink(s));
    const binds = this.node.config.list('bind');
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ port: busPort, host: binds[0] }, () => {
        srv.removeListener('error', reject);
        resolve();
      });
    });
    srv.on('error', (e) => this.log.warning(`Cluster bus listener error: ${e.message}`));
    this.busServer = srv;
    for (const seed of this.node.config.list('cluster-meet')) void this.meetSeed(seed);
    // Reach the known peers at once: a restarted node is seen alive sooner.
    this.cron();
  }

  /** A cluster-meet directive: host:port, resolved to an address. */
  private async meetSeed(seed: string): Promise<void> {
    const m = /^(.*):(\d+)$/.exec(seed.replace(/^"|"$/g, ''));
    if (!m) {
      this.log.warning(`Ignoring cluster-meet '${seed}': expected host:port`);
      return;
    }
    const port = Number(m[2]);
    if (port === this.node.port && ['127.0.0.1', 'localhost', '::1', this.myself.ip].includes(m[1]!)) return;
    try {
      const { address } = await dns.lookup(m[1]!);
      if (this.startHandshake(address, port) === 'invalid') this.log.warning(`cluster-meet ${seed}: invalid address`);
    } catch (e) {
      this.log.warning(`cluster-meet ${seed}: ${(e as Error).message}`);
    }
  }

  async shutdown(): Promise<void> {
    this.stopBatching();
    if (this.saveScheduled) this.saveNodesFile();
    for (const n of this.nodes.values()) n.link?.close();
    for (const l of this.inbound) l.close();
    await new Promise<void>((resolve) => (this.busServer ? this.busServer.close(() => resolve()) : resolve()));
  }

  // --------------------------------------------------------------- links

  private linkOpts() {
    return {
      secret: this.node.config.str('cluster-secret'),
      maxFrame: () => this.node.config.int('client-query-buffer-limit'),
      myHeader: () => this.header(),
    };
  }

  private acceptLink(socket: net.Socket): void {
    const link = new Link(socket, true, this.linkEvents, this.linkOpts());
    this.inbound.add(link);
    this.log.verbose(`Accepted cluster node ${link.remoteAddress}:${socket.remotePort}`);
  }

  private readonly linkEvents = {
    message: (link: Link, msg: BusMessage) => {
      this.messagesReceived++;
      this.processMessage(link, msg);
    },
    // Replies and queue changes are settled once per read, as for clients.
    read: () => this.node.afterEvent(),
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
      this.log.warning(`Closing cluster bus link with ${link.remoteAddress}: ${reason}`);
    },
  };

  private connect(n: ClusterNode): void {
    const socket = net.connect({ host: n.ip, port: n.port + this.portOffset });
    const link = new Link(socket, false, this.linkEvents, this.linkOpts());
    link.node = n;
    n.link = link;
    // PING at once (MEET for a node we are introducing ourselves to), so
    // failure detection starts from the first connection attempt.
    const oldPingSent = n.pingSent;
    this.sendPing(link, n.has(NodeFlag.MEET) ? MsgType.MEET : MsgType.PING);
    if (oldPingSent) n.pingSent = oldPingSent;
    n.flags &= ~NodeFlag.MEET;
  }

  header(): BusHeader {
    return { v: BUS_PROTOCOL_VERSION, s: this.myself.id, p: this.node.port, f: this.myself.flags };
  }

  /** Sends to a node over its outbound link; dropped if not connected (best effort). */
  send(n: ClusterNode, frame: Buffer): void {
    if (!n.link || n === this.myself) return;
    if (n.batch !== null) this.sendBatch(n);
    n.link.send(frame);
    this.messagesSent++;
  }

  private sendBatch(n: ClusterNode): void {
    const b = n.batch!;
    n.batch = null;
    if (!n.link) return;
    const shared = this.sharedReplJob;
    if (shared !== null && b.type === MsgType.REPLJOB && b.mflags === shared.mflags && sameJobs(b.jobs, shared.jobs)) {
      n.link.send(shared.frame);
      this.messagesSent++;
      return;
    }
    let body: Record<string, unknown>;
    if (b.type === MsgType.REPLJOB) {
      // Written into the frame straight from the jobs (see writeJob). A job
      // deleted since it was batched needs no copy anywhere.
      const clock = this.store.clock;
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
    const frame = this.frame(b.type, body, b.mflags);
    if (shared !== null && b.type === MsgType.REPLJOB) {
      shared.jobs = b.jobs;
      shared.mflags = b.mflags;
      shared.frame = frame;
    }
    n.link.send(frame);
    this.messagesSent++;
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
    return n !== undefined && n !== this.myself && n.link !== null && !n.has(NodeFlag.HANDSHAKE);
  }

  /** REPLJOB: the job is written as it is when the batch is sent (this turn). */
  sendReplJob(n: ClusterNode, job: AnyJob, mflags: number): void {
    if (this.takesJobMessages(n)) this.batchFor(n, MsgType.REPLJOB, 0, mflags).jobs.push(job);
  }

  frame(type: number, body: Record<string, unknown>, mflags = 0): Buffer {
    return this.encoder.encode(type, mflags, body);
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
    for (const n of this.nodes.values()) {
      if (n !== this.myself && !n.has(NodeFlag.HANDSHAKE)) this.send(n, frame);
    }
  }

  // ------------------------------------------------- job message helpers

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

  // ------------------------------------------------------- message entry

  private processMessage(link: Link, msg: BusMessage): void {
    const type = msg.t;
    const sender = this.nodes.get(msg.s);
    if (sender) sender.dataReceived = Date.now();
    if (this.log.enabled('debug')) this.log.debug(`--- Processing packet of type ${MSG_NAMES[type] ?? type} from ${msg.s}`);

    if (type === MsgType.PING || type === MsgType.PONG || type === MsgType.MEET) {
      this.processPingPong(link, msg, sender ?? null);
      return;
    }
    // Every other message must come from a known node.
    if (!sender || sender.has(NodeFlag.HANDSHAKE)) return;
    const handler = this.handlers.get(type);
    if (!handler) {
      this.log.warning(`Received unknown packet type: ${type}`);
      return;
    }
    try {
      // Job-ID messages may list several IDs (see Batch): one call per ID.
      const ids = msg.ids;
      if (Array.isArray(ids)) {
        for (const id of ids) {
          if (typeof id !== 'string') continue;
          msg.id = id;
          handler(sender, msg);
        }
      } else {
        handler(sender, msg);
      }
    } catch (e) {
      this.log.warning(`Error handling ${MSG_NAMES[type] ?? type} from ${msg.s}: ${(e as Error).stack ?? e}`);
    }
  }

  private processPingPong(link: Link, msg: BusMessage, senderIn: ClusterNode | null): void {
    let sender = senderIn;
    const type = msg.t;
    const port = typeof msg.p === 'number' ? msg.p : 0;

    if (type === MsgType.PING || type === MsgType.MEET) {
      // The address others use to reach us is the one they connect to.
      if (type === MsgType.MEET || this.myself.ip === '') {
        const ip = link.localAddress;
        if (ip && ip !== this.myself.ip) {
          this.myself.ip = ip;
          this.log.notice(`IP address for this node updated to ${ip}`);
          this.scheduleSave();
        }
      }
      // MEET from an unknown node: add it (in handshake until its PONG).
      if (!sender && type === MsgType.MEET) {
        const n = new ClusterNode(randomNodeId(), NodeFlag.HANDSHAKE);
        n.ip = link.remoteAddress;
        n.port = port;
        this.nodes.set(n.id, n);
        this.scheduleSave();
        this.processGossip(msg, null, true);
      }
      this.sendPing(link, MsgType.PONG);
    }

    const linkNode = link.node as ClusterNode | null;
    if (linkNode) {
      if (linkNode.has(NodeFlag.HANDSHAKE)) {
        if (sender) {
          // We already know this node: update its address and drop the handshake node.
          if (this.updateAddressIfNeeded(sender, link, port)) this.scheduleSave();
          this.delNode(linkNode);
          return;
        }
        this.renameNode(linkNode, msg.s);
        linkNode.flags &= ~NodeFlag.HANDSHAKE;
        this.log.verbose(`Handshake with node ${linkNode.id} completed.`);
        sender = linkNode;
        this.updateState();
        this.scheduleSave();
      } else if (linkNode.id !== msg.s) {
        // A different node answers at this address: forget the address.
        this.log.verbose(`PONG contains mismatching sender ID ${msg.s} for ${linkNode.id}`);
        linkNode.flags |= NodeFlag.NOADDR;
        linkNode.ip = '';
        linkNode.port = 0;
        linkNode.freeLink();
        this.scheduleSave();
        return;
      }
    }

    if (sender && type === MsgType.PING && !sender.has(NodeFlag.HANDSHAKE)) {
      if (this.updateAddressIfNeeded(sender, link, port)) this.scheduleSave();
      // A peer we could not reach pings us (it restarted): reconnect now
      // instead of waiting out the backoff, so its PONG clears any PFAIL.
      if (sender.link === null && !sender.has(NodeFlag.NOADDR)) {
        sender.reconnectAt = 0;
        this.connect(sender);
      }
    }

    if (linkNode && type === MsgType.PONG && link.node === linkNode) {
      linkNode.pongReceived = Date.now();
      linkNode.pingSent = 0;
      linkNode.reconnectDelay = 0;
      if (linkNode.has(NodeFlag.PFAIL)) {
        this.log.verbose(`Clear PFAIL state for node ${linkNode.id}: it answered.`);
        linkNode.flags &= ~NodeFlag.PFAIL;
        this.updateState();
        this.scheduleSave();
      } else if (linkNode.has(NodeFlag.FAIL)) {
        this.log.notice(`Clear FAIL state for node ${linkNode.id}: it is reachable again.`);
        linkNode.flags &= ~NodeFlag.FAIL;
        this.updateState();
        this.scheduleSave();
      }
    }

    if (sender) {
      // The LEAVING flag is what each node says of itself.
      const reported = typeof msg.f === 'number' ? msg.f : 0;
      const before = sender.flags;
      sender.flags = (sender.flags & ~NodeFlag.LEAVING) | (reported & NodeFlag.LEAVING);
      if (sender.flags !== before) {
        this.updateState();
        this.scheduleSave();
      }
      this.processGossip(msg, sender, false);
    }
  }

  private processGossip(msg: BusMessage, sender: ClusterNode | null, trustMeet: boolean): void {
    const entries = Array.isArray(msg.g) ? (msg.g as unknown[]) : [];
    for (const raw of entries) {
      if (raw === null || typeof raw !== 'object') continue;
      const g = raw as { id?: unknown; ip?: unknown; port?: unknown; flags?: unknown };
      if (typeof g.id !== 'string' || typeof g.ip !== 'string' || typeof g.port !== 'number' || typeof g.flags !== 'number') continue;
      const known = this.nodes.get(g.id);
      if (known) {
        if (sender && known !== this.myself) {
          if (g.flags & (NodeFlag.FAIL | NodeFlag.PFAIL)) {
            if (!known.failReports.has(sender.id)) this.log.verbose(`Node ${sender.id} reported node ${known.id} as not reachable.`);
            known.failReports.set(sender.id, Date.now());
            this.markFailingIfNeeded(known);
          } else if (known.failReports.delete(sender.id)) {
            this.log.verbose(`Node ${sender.id} reported node ${known.id} is back online.`);
          }
        }
        // A failing node seen at another address: try the new one.
        if (known.flags & (NodeFlag.FAIL | NodeFlag.PFAIL) && (known.ip !== g.ip || known.port !== g.port) && g.ip !== '') {
          this.startHandshake(g.ip, g.port);
        }
      } else if ((sender || trustMeet) && !(g.flags & NodeFlag.NOADDR) && !this.blacklisted(g.id) && g.ip !== '') {
        // Only gossip from known nodes (or a MEET) adds nodes: we must not
        // join a different cluster by accident.
        this.startHandshake(g.ip, g.port);
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
    this.log.notice(`Address updated for node ${n.id}, now ${n.ip}:${n.port}`);
    return true;
  }

  private onFail(_sender: ClusterNode, msg: BusMessage): void {
    const failing = typeof msg.n === 'string' ? this.nodes.get(msg.n) : undefined;
    if (failing && !(failing.flags & (NodeFlag.FAIL | NodeFlag.MYSELF))) {
      this.log.notice(`FAIL message received from ${msg.s} about ${failing.id}`);
      failing.flags = (failing.flags | NodeFlag.FAIL) & ~NodeFlag.PFAIL;
      failing.failTime = Date.now();
      this.updateState();
      this.scheduleSave();
    }
  }

  // ------------------------------------------------------ ping and gossip

  private sendPing(link: Link, type: number): void {
    const wanted = Math.min(Math.max(3, Math.floor(this.nodes.size / 10)), this.nodes.size - 2);
    const gossip: Record<string, unknown>[] = [];
    const all = [...this.nodes.values()];
    let iterations = wanted * 3;
    let fresh = this.nodes.size - 2;
    while (fresh > 0 && gossip.length < wanted && iterations-- > 0) {
      const n = all[Math.floor(Math.random() * all.length)]!;
      if (n === this.myself) continue;
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
    if (linkNode && type === MsgType.PING) linkNode.pingSent = Date.now();
    link.send(this.frame(type, { g: gossip }));
    this.messagesSent++;
  }

  private markFailingIfNeeded(n: ClusterNode): void {
    const quorum = Math.floor(this.size / 2) + 1;
    if (!n.has(NodeFlag.PFAIL) || n.has(NodeFlag.FAIL)) return;
    const failures = this.failureReports(n) + 1; // our own PFAIL counts
    if (failures < quorum) return;
    this.log.notice(`Marking node ${n.id} as failing (quorum reached).`);
    n.flags = (n.flags & ~NodeFlag.PFAIL) | NodeFlag.FAIL;
    n.failTime = Date.now();
    this.broadcast(this.frame(MsgType.FAIL, { n: n.id }));
    this.updateState();
    this.scheduleSave();
  }

  private failureReports(n: ClusterNode): number {
    const maxAge = this.nodeTimeout * FAIL_REPORT_VALIDITY_MULT;
    const now = Date.now();
    for (const [id, t] of n.failReports) if (now - t > maxAge) n.failReports.delete(id);
    return n.failReports.size;
  }

  // ---------------------------------------------------------------- cron

  /** Every 100 ms: connect, ping, detect failures (the reference's clusterCron). */
  cron(): void {
    this.cronIteration++;
    const now = Date.now();
    const timeout = this.nodeTimeout;
    const handshakeTimeout = Math.max(timeout, 1000);

    for (const n of [...this.nodes.values()]) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR)) continue;
      if (n.has(NodeFlag.HANDSHAKE) && now - n.ctime > handshakeTimeout) {
        this.delNode(n);
        continue;
      }
      if (n.link === null && now >= n.reconnectAt) this.connect(n);
    }

    // About once a second, ping the node we heard from least recently.
    if (this.cronIteration % 10 === 0) {
      const all = [...this.nodes.values()];
      let best: ClusterNode | null = null;
      for (let j = 0; j < 5 && all.length > 0; j++) {
        const n = all[Math.floor(Math.random() * all.length)]!;
        if (!n.link || n.pingSent !== 0 || n.flags & (NodeFlag.MYSELF | NodeFlag.HANDSHAKE)) continue;
        if (best === null || n.pongReceived < best.pongReceived) best = n;
      }
      if (best?.link) this.sendPing(best.link, MsgType.PING);
    }

    let changed = false;
    for (const n of this.nodes.values()) {
      if (n.flags & (NodeFlag.MYSELF | NodeFlag.NOADDR | NodeFlag.HANDSHAKE)) continue;
      // Waiting long for a PONG on an old link: reconnect, the link may be stuck.
      if (
        n.link &&
        now - n.link.ctime > timeout &&
        n.pingSent &&
        n.pongReceived < n.pingSent &&
        now - n.pingSent > timeout / 2
      ) {
        n.freeLink();
      }
      if (n.link && n.pingSent === 0 && now - n.pongReceived > timeout / 2) {
        this.sendPing(n.link, MsgType.PING);
        continue;
      }
      if (n.pingSent === 0) continue;
      // A node that spoke to us within the timeout is alive, whatever became
      // of our last PING (it may have restarted before answering on our new
      // link; later Redis Cluster versions judge the same way).
      if (now - n.dataReceived <= timeout) continue;
      if (now - n.pingSent > timeout && !(n.flags & (NodeFlag.PFAIL | NodeFlag.FAIL))) {
        this.log.verbose(`*** NODE ${n.id} possibly failing`);
        n.flags |= NodeFlag.PFAIL;
        changed = true;
      }
    }
    if (changed) this.updateState();
    this.replication.cron();
  }

  /** About once a second: blocked consumers keep asking other nodes for jobs. */
  clientsCron(): void {
    for (const w of this.store.blockedWaiters()) {
      for (const q of w.blockedOn ?? []) this.federation.needJobs(q, false);
    }
  }

  // --------------------------------------------------------- node table

  /** Starts a handshake (CLUSTER MEET) unless one is under way for the address. */
  startHandshake(ipIn: string, port: number): 'started' | 'busy' | 'invalid' {
    const family = net.isIP(ipIn);
    if (family === 0 || !Number.isInteger(port) || port <= 0 || port > 65535 - this.portOffset) return 'invalid';
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

  private renameNode(n: ClusterNode, id: string): void {
    this.nodes.delete(n.id);
    n.id = id;
    this.nodes.set(id, n);
  }

  delNode(n: ClusterNode): void {
    for (const other of this.nodes.values()) other.failReports.delete(n.id);
    this.nodes.delete(n.id);
    n.freeLink();
    this.updateState();
  }

  private blacklisted(id: string): boolean {
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
    if (reachable.length !== this.reachable.length && this.log.enabled('verbose')) {
      const down = [...this.nodes.values()]
        .filter((n) => n !== this.myself && !reachable.includes(n))
        .map((n) => `${n.id.slice(0, 8)}(${n.flagString()})`);
      this.log.verbose(`Reachable nodes: ${reachable.length}; not reachable: ${down.join(' ') || 'none'}`);
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

  // ----------------------------------------------------------- nodes file

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

  private loadNodesFile(file: string): boolean {
    if (!existsSync(file)) return false;
    const text = readFileSync(file, 'utf8');
    if (text.trim() === '') return false;
    const nodes = new Map<string, ClusterNode>();
    let me: ClusterNode | null = null;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const argv = line.trim().split(/\s+/);
      if (argv[0] === 'vars') continue;
      if (argv.length !== 6 || !/^[0-9a-f]{40}$/.test(argv[0]!)) {
        throw new Error(`Unrecoverable error: corrupted cluster config file ${file}: '${line}'`);
      }
      const n = new ClusterNode(argv[0]!, 0);
      const at = argv[1]!.lastIndexOf(':');
      if (at < 0) throw new Error(`Unrecoverable error: corrupted cluster config file ${file}: '${line}'`);
      n.ip = argv[1]!.slice(0, at);
      n.port = Number(argv[1]!.slice(at + 1)) || 0;
      for (const f of argv[2]!.split(',')) {
        const flag = NODE_FLAG_NAMES.find(([, name]) => name === f)?.[0];
        if (flag !== undefined) n.flags |= flag;
        else if (f !== 'noflags') throw new Error(`Unknown flag '${f}' in cluster config file ${file}`);
      }
      if (n.has(NodeFlag.MYSELF)) me = n;
      if (n.has(NodeFlag.FAIL)) n.failTime = Date.now();
      // A restarted node expects answers from everyone: failure detection
      // starts over rather than trusting old timestamps.
      if (Number(argv[3])) n.pingSent = Date.now();
      if (Number(argv[4])) n.pongReceived = Date.now();
      nodes.set(n.id, n);
    }
    if (!me) throw new Error(`Unrecoverable error: cluster config file ${file} has no 'myself' node`);
    this.nodes.clear();
    for (const [id, n] of nodes) this.nodes.set(id, n);
    this.myself = me;
    this.log.notice(`Node configuration loaded, I'm ${me.id}`);
    return true;
  }

  /** Writes the nodes file atomically (temporary file, fsync, rename). */
  saveNodesFile(): boolean {
    this.saveScheduled = false;
    const file = this.node.config.str('cluster-config-file');
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, this.nodesDescription(true));
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, file);
      return true;
    } catch (e) {
      this.log.warning(`Can't update cluster config file ${file}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Saves the nodes file once, after the current event. */
  scheduleSave(): void {
    if (this.saveScheduled) return;
    this.saveScheduled = true;
    setImmediate(() => {
      if (this.saveScheduled) this.saveNodesFile();
    });
  }

  // ------------------------------------------------------------ commands

  forget(id: string): string | undefined {
    if (id.length !== 40) return 'ERR Invalid node identifier';
    const n = this.nodes.get(id);
    if (!n) return `ERR Unknown node ${id}`;
    if (n === this.myself) return "ERR I tried hard but I can't forget myself...";
    this.blacklist.set(id, Date.now() + BLACKLIST_TTL_MS);
    this.delNode(n);
    this.scheduleSave();
    return undefined;
  }

  /** CLUSTER RESET: forget every other node, flush jobs; HARD also changes our ID. */
  reset(hard: boolean): void {
    for (const n of [...this.nodes.values()]) if (n !== this.myself) this.delNode(n);
    if (hard) {
      this.nodes.delete(this.myself.id);
      this.myself.id = randomNodeId();
      this.nodes.set(this.myself.id, this.myself);
    }
    this.store.flushAll();
    this.node.dropPersistedJobs();
    this.updateState();
    this.saveNodesFile();
  }

  setLeaving(on: boolean): void {
    const before = this.myself.flags;
    if (on) this.myself.flags |= NodeFlag.LEAVING;
    else this.myself.flags &= ~NodeFlag.LEAVING;
    if (before === this.myself.flags) return;
    this.scheduleSave();
    if (on) {
      // Consumers blocked here must go elsewhere: this node stops attracting jobs.
      for (const w of this.store.blockedWaiters()) {
        this.store.unblock(w);
        w.refuse(errors.leaving);
      }
    }
  }

  /** HELLO: every known node with a priority (lower is better). */
  helloEntries(): { id: string; ip: string; port: number; priority: number }[] {
    const out = [];
    for (const n of this.nodes.values()) {
      if (n.has(NodeFlag.HANDSHAKE)) continue;
      let priority = 1;
      if (n.link === null && n !== this.myself) priority = 5;
      if (n.has(NodeFlag.PFAIL)) priority = 10;
      if (n.flags & (NodeFlag.FAIL | NodeFlag.LEAVING)) priority = 100;
      out.push({ id: n.id, ip: n.ip, port: n.port, priority });
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
