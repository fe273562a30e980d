// The cluster as the node runs it: owns the parts (node table, nodes file,
// links, gossip, failure detection) and the job protocols (replication,
// requeue, acks, federation), dispatches each bus message to the handler
// registered for its type, and is what the server and the commands talk to
// (init, listen, cron, shutdown; CLUSTER MEET/FORGET/RESET/LEAVING, HELLO).
// Each part is in the file named after it; the protocols see the cluster
// through context.ts only.
import dns from 'node:dns/promises';
import type { ClusterHost } from './host.js';
import type { ClusterContext, MessageHandler } from './context.js';
import type { Job } from '../core/job.js';
import type { StoreHooks } from '../core/store.js';
import type { Link } from './bus.js';
import { NodeFlag, type ClusterNode } from './cluster-node.js';
import { NodeTable, type HelloEntry } from './node-table.js';
import { NodesFile } from './nodes-file.js';
import { Links, type LinkOwner } from './links.js';
import { FailureDetection } from './failure-detection.js';
import { Gossip } from './gossip.js';
import { MsgType, MSG_NAMES, type BusMessage, MSG_FLAG_INCR_DELIV, MSG_FLAG_INCR_NACKS } from './messages.js';
import { Replication } from './replication.js';
import { Requeue } from './requeue.js';
import { Acks } from './acks.js';
import { Federation } from './federation.js';
import { PolicySync } from './policies.js';
import type { RateLimit } from '../core/policy.js';
import { errors } from '../protocol/errors.js';
import { carriesJobs, readJob, readJobFrameHeader, readJobId } from './job-frames.js';
import { BUS_PROTOCOL_VERSION } from './messages.js';
import { TIME_ERROR } from '../core/store.js';

export class Cluster implements ClusterContext, LinkOwner {
  readonly table: NodeTable;
  /** The table's nodes by ID (the same Map for the node's life). */
  readonly nodes: ReadonlyMap<string, ClusterNode>;
  readonly links: Links;
  private readonly nodesFile: NodesFile;
  private readonly failures: FailureDetection;
  private readonly gossip: Gossip;
  readonly replication: Replication;
  readonly requeue: Requeue;
  readonly acks: Acks;
  readonly federation: Federation;
  readonly policies: PolicySync;
  private readonly handlers = new Map<number, MessageHandler>();
  private cronIteration = 0;

  constructor(readonly node: ClusterHost) {
    const table = (this.table = new NodeTable(node));
    this.nodes = table.nodes;
    this.nodesFile = new NodesFile(node, table);
    this.links = new Links(node, table, this);
    this.failures = new FailureDetection(node, table, this.links, this.nodesFile);
    this.policies = new PolicySync(this);
    this.gossip = new Gossip(node, table, this.links, this.failures, this.nodesFile, () => this.policies.digest());
    this.replication = new Replication(this);
    this.acks = new Acks(this, this.replication);
    this.requeue = new Requeue(this, this.acks);
    this.federation = new Federation(this);
    this.replication.register();
    this.requeue.register();
    this.acks.register();
    this.federation.register();
    this.policies.register();
    this.on(MsgType.FAIL, (sender, msg) => this.failures.onFail(sender, msg));
  }

  get log() {
    return this.node.log;
  }

  get store() {
    return this.node.store;
  }

  /** Registers the handler of a message type; job protocols plug in here. */
  on(type: number, handler: MessageHandler): void {
    this.handlers.set(type, handler);
  }

  // ------------------------------------------------ what the node shows

  get myself(): ClusterNode {
    return this.table.myself;
  }

  /** Nodes not in handshake, myself included. */
  get size(): number {
    return this.table.size;
  }

  get reachableCount(): number {
    return this.table.reachable.length;
  }

  get leaving(): boolean {
    return this.table.leaving;
  }

  get messagesSent(): number {
    return this.links.messagesSent;
  }

  get messagesReceived(): number {
    return this.links.messagesReceived;
  }

  /** The shared string instance of a known node's ID, or null if unknown. */
  internId(id: string): string | null {
    return this.table.internId(id);
  }

  /** What the job store must tell other nodes. */
  storeHooks(): StoreHooks {
    const links = this.links;
    return {
      queued: (job, nack) => links.broadcastQueued(job, nack ? MSG_FLAG_INCR_NACKS : MSG_FLAG_INCR_DELIV),
      willQueue: (job) => links.broadcastJobId(job.delivered, MsgType.WILLQUEUE, job.id),
      collect: (job) => this.acks.tryJobGC(job),
      waitReplAborted: (job) => this.replication.aborted(job),
      needJobs: (q, zero) => this.federation.needJobs(q, zero),
      policyHeld: (p) => this.policies.held(p),
    };
  }

  // ------------------------------------------------------------ lifecycle

  /** Loads the nodes file, or creates this node's identity and saves it. */
  init(): void {
    if (!this.nodesFile.load()) {
      this.log.notice(`No cluster configuration found, I'm ${this.myself.id}`);
      this.nodesFile.save();
    }
    this.myself.port = this.node.config.int('port');
    this.table.updateState();
    const config = this.node.config;
    const traceSlow = (): void => {
      this.replication.traceSlowerThanMs = config.int('repl-trace-slower-than');
    };
    traceSlow();
    config.onChange('repl-trace-slower-than', traceSlow);
  }

  async listen(): Promise<void> {
    this.myself.port = this.node.port;
    this.myself.tlsPort = this.node.tlsPort;
    const busPort = this.node.port + this.node.config.int('cluster-port-offset');
    if (busPort > 65535) throw new Error(`cluster bus port ${busPort} is out of range: lower port or cluster-port-offset`);
    this.links.sockets.init();
    await this.links.listen(busPort, this.node.config.list('bind')[0]);
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
    this.nodesFile.saveIfScheduled();
    await this.links.close();
  }

  /** Every 100 ms: connect, ping, detect failures (the reference's clusterCron). */
  cron(): void {
    this.cronIteration++;
    const now = Date.now();
    this.links.cron(now, Math.max(this.node.config.int('cluster-node-timeout'), 1000));
    this.gossip.cron(now, this.cronIteration % 10 === 0);
    this.failures.cron(now);
    this.replication.cron();
    this.policies.cron();
  }

  /** About once a second: blocked consumers keep asking other nodes for jobs. */
  clientsCron(): void {
    for (const w of this.store.blockedWaiters()) {
      // A queue with jobs has consumers waiting on its QPOLICY, not on other nodes.
      for (const q of w.blockedOn ?? []) if (q.length === 0) this.federation.needJobs(q, false);
    }
  }

  // ------------------------------------------------------- message entry

  /** PING is sent by gossip (LinkOwner: a new link greets its node). */
  sendPing(link: Link, type: number): void {
    this.gossip.sendPing(link, type);
  }

  processMessage(link: Link, msg: BusMessage): void {
    const type = msg.t;
    const sender = this.nodes.get(msg.s);
    if (sender) sender.dataReceived = Date.now();
    if (this.log.enabled('debug')) this.log.debug(`--- Processing packet of type ${MSG_NAMES[type] ?? type} from ${msg.s}`);

    if (type === MsgType.PING || type === MsgType.PONG || type === MsgType.MEET) {
      this.gossip.processPingPong(link, msg, sender ?? null);
      const known = this.nodes.get(msg.s);
      if (known !== undefined && !known.has(NodeFlag.HANDSHAKE)) this.policies.digestSeen(known, msg.pd);
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
      handler(sender, msg);
    } catch (e) {
      this.log.warning(`Error handling ${MSG_NAMES[type] ?? type} from ${msg.s}: ${(e as Error).stack ?? e}`);
    }
  }

  /**
   * A frame of job messages (job-frames.ts): the handler of its type is
   * called once per job or job ID, with one message object for the frame
   * whose `id` (job-ID messages) or `j` (the job's fields, or null when the
   * job is malformed) changes from call to call.
   */
  private readonly internNodeId = (id: string): string | null => this.table.internId(id);
  private readonly jobTimeError = (): number => this.store.timeError(TIME_ERROR);

  processJobFrame(frame: Buffer): void {
    const f = readJobFrameHeader(frame);
    if (f === null) {
      this.log.warning('Received a truncated job message');
      return;
    }
    const sender = this.nodes.get(f.sender);
    if (!sender || sender.has(NodeFlag.HANDSHAKE)) return;
    sender.dataReceived = Date.now();
    const handler = this.handlers.get(f.type);
    if (!handler) {
      this.log.warning(`Received unknown packet type: ${f.type}`);
      return;
    }
    if (this.log.enabled('debug')) this.log.debug(`--- Processing ${f.count} ${MSG_NAMES[f.type] ?? f.type} from ${f.sender}`);
    const msg: BusMessage = { v: BUS_PROTOCOL_VERSION, s: f.sender, p: f.port, f: f.flags, t: f.type, m: f.mflags, a: f.aux, id: undefined, j: undefined };
    const jobs = carriesJobs(f.type);
    try {
      for (let i = 0; i < f.count; i++) {
        if (jobs) msg.j = readJob(frame, f, this.store.clock, this.internNodeId, this.jobTimeError);
        else {
          const id = readJobId(frame, f);
          if (id === null) throw new RangeError('frame cut short');
          msg.id = id;
        }
        handler(sender, msg);
      }
    } catch (e) {
      if (e instanceof RangeError) this.log.warning(`Received a truncated ${MSG_NAMES[f.type] ?? f.type} message from ${f.sender}`);
      else this.log.warning(`Error handling ${MSG_NAMES[f.type] ?? f.type} from ${f.sender}: ${(e as Error).stack ?? e}`);
    }
  }

  // ------------------------------------------------- what commands send

  broadcastWorking(job: Job): void {
    this.links.broadcastWorking(job);
  }

  broadcastDelJob(job: Job): void {
    this.links.broadcastDelJob(job);
  }

  /** DELJOB to every node: FASTACK of a job this node does not know. */
  broadcastDelJobId(id: string): void {
    this.links.broadcastDelJobId(id);
  }

  broadcastPause(queue: string, flags: number): void {
    this.links.broadcastPause(queue, flags);
  }

  /** NACK DELAY: the job's other owners wait for the delay plus their retry (NACKDELAY). */
  broadcastNackDelay(job: Job, delayMs: number): void {
    this.links.sendToIds(job.delivered, this.links.frame(MsgType.NACKDELAY, { ids: [job.id], a: delayMs }));
  }

  /** QPOLICY SET/CLEAR (see policies.ts). */
  publishPolicy(queue: string, rate: RateLimit | null, concurrency: number | null): void {
    this.policies.publish(queue, rate, concurrency);
  }

  /** ENQUEUE: ask a node holding a copy to queue the job (after `delay` seconds). */
  sendEnqueue(nodeId: string, id: string, delay: number): void {
    this.links.sendEnqueue(nodeId, id, delay);
  }

  // ------------------------------------------------------------ commands

  /** CLUSTER MEET: starts a handshake unless one is under way for the address. */
  startHandshake(ip: string, port: number): 'started' | 'busy' | 'invalid' {
    return this.table.startHandshake(ip, port);
  }

  forget(id: string): string | undefined {
    if (id.length !== 40) return 'ERR Invalid node identifier';
    const n = this.nodes.get(id);
    if (!n) return `ERR Unknown node ${id}`;
    if (n === this.myself) return "ERR I tried hard but I can't forget myself...";
    this.table.forget(n);
    this.nodesFile.scheduleSave();
    return undefined;
  }

  /** CLUSTER RESET: forget every other node, flush jobs; HARD also changes our ID. */
  reset(hard: boolean): void {
    const table = this.table;
    for (const n of [...table.nodes.values()]) if (n !== table.myself) table.delNode(n);
    if (hard) table.renameMyself();
    this.store.flushAll();
    this.node.dropPersistedJobs();
    table.updateState();
    this.nodesFile.save();
  }

  setLeaving(on: boolean): void {
    const myself = this.myself;
    const before = myself.flags;
    if (on) myself.flags |= NodeFlag.LEAVING;
    else myself.flags &= ~NodeFlag.LEAVING;
    if (before === myself.flags) return;
    this.nodesFile.scheduleSave();
    if (on) {
      // Consumers blocked here must go elsewhere: this node stops attracting jobs.
      for (const w of this.store.blockedWaiters()) {
        this.store.unblock(w);
        w.refuse(errors.leaving);
      }
    }
  }

  /** CLUSTER SAVECONFIG. */
  saveNodesFile(): boolean {
    return this.nodesFile.save();
  }

  nodesDescription(excludeHandshake: boolean): string {
    return this.table.nodesDescription(excludeHandshake);
  }

  helloEntries(): HelloEntry[] {
    return this.table.helloEntries();
  }
}
