// The Disque client: one typed method per command, bodies through a codec,
// and a cluster-aware connection underneath (see connection.ts).
import type { ConnectionOptions } from 'node:tls';
import type { RedisOptions } from 'ioredis';
import { bufferCodec, type BodyInput, type Codec } from './codec.js';
import { drainQueue, queueCounts, type NodeAccess } from './cluster-queue.js';
import { CodecError, ReplyError } from './errors.js';
import { Connection, type ConnectionEvents } from './connection.js';
import { ProducerTracker, type FollowProducersOptions } from './follow.js';
import { NodeDirectory, parseAddress, parseAddressUrl, type AddressSpec } from './nodes.js';
import {
  parseHello,
  parseInfo,
  parseJobDetails,
  parseJobs,
  parsePauseState,
  parseQueueStats,
  parseQueuePolicy,
  parseScanPage,
  showCreatedAt,
  text,
  num,
} from './replies.js';
import type {
  AddJobOptions,
  AddJobsOptions,
  AddJobsResult,
  GetJobOptions,
  HelloReply,
  InfoReply,
  Job,
  JobDetails,
  JScanOptions,
  NackOptions,
  NodeInfo,
  PauseOption,
  PauseState,
  QScanOptions,
  QueueCounts,
  QueuePolicy,
  QueuePolicyUpdate,
  QueueStats,
} from './types.js';

type Arg = string | Buffer | number;

/** Options of a Disque client. */
export interface DisqueOptions<T = Buffer> {
  /**
   * Addresses of one or more nodes: `'host:port'`, a port, or `{ host, port }`.
   * The client connects to one (the best HELLO priority first) and learns the
   * others from HELLO. Default `127.0.0.1:7711`.
   */
  nodes?: AddressSpec | AddressSpec[];
  /** How job bodies are encoded and decoded. Default: Buffers (strings sent as UTF-8). */
  codec?: Codec<T>;
  /**
   * ioredis options for every connection: `password`, `username`, `tls`,
   * `connectTimeout` (default here 3000 ms), `keepAlive`, `enableAutoPipelining`...
   * Host, port, reconnection and protocol are managed by the client.
   */
  redis?: RedisOptions;
  /**
   * Connect with TLS: `true`, or Node's tls.connect options (`ca`, `cert`,
   * `key`, `servername`, ...). Also turned on by `rediss://` node addresses.
   */
  tls?: boolean | ConnectionOptions;
  /**
   * Milliseconds a command keeps trying other nodes (or the same node) after
   * the connection is lost or the node is leaving, before failing. Also bounds
   * the first connection. Default 10000.
   */
  failoverTimeout?: number;
  /** Move to a node HELLO reports with a better (lower) priority. Default true. */
  preferBestNode?: boolean;
  /** Use nodes learned from HELLO as failover targets, not only the given ones. Default true. */
  discover?: boolean;
  /**
   * Move to the node that created most of the jobs GETJOB returns, when it is
   * not the node we are connected to. Default false.
   */
  followProducers?: boolean | FollowProducersOptions;
}

/**
 * ioredis options from `redis`, `tls` and the seed URLs: `rediss://` turns TLS
 * on, a URL's password is used when `redis.password` is not given. One client
 * talks to one cluster, so its seeds are all TLS or all plain.
 */
function redisOptionsFor(specs: AddressSpec[], options: DisqueOptions<unknown>): RedisOptions {
  const urls = specs.flatMap((s) => (typeof s === 'string' ? (parseAddressUrl(s) ?? []) : []));
  const out: RedisOptions = { ...options.redis };
  const tlsUrls = urls.filter((u) => u.tls).length;
  if (tlsUrls > 0 && tlsUrls < specs.length && options.tls === undefined) {
    throw new TypeError('nodes mix rediss:// (TLS) and plain addresses: give all as rediss://, or set the tls option');
  }
  if (options.tls === false && tlsUrls > 0) throw new TypeError('rediss:// node addresses need TLS, but the tls option is false');
  const tlsWanted = options.tls !== undefined ? options.tls !== false : tlsUrls > 0;
  if (tlsWanted && out.tls === undefined) out.tls = typeof options.tls === 'object' ? options.tls : {};
  const withPassword = urls.find((u) => u.password !== undefined);
  if (withPassword && out.password === undefined) {
    // Disque's AUTH takes the password only: a URL's user name is ignored.
    out.password = withPassword.password;
  }
  return out;
}

/** Options of PAUSE. */
export interface PauseOptions {
  /** Send the same PAUSE to every reachable node. Default false. */
  bcast?: boolean;
}

/** ADDJOB's arguments after the body: ms-timeout and the options given. */
function addJobOptionArgs(options: Omit<AddJobOptions<unknown>, 'codec'>): Arg[] {
  const args: Arg[] = [positiveInt('timeout', options.timeout ?? 0)];
  if (options.replicate !== undefined) args.push('REPLICATE', positiveInt('replicate', options.replicate));
  if (options.delay !== undefined) args.push('DELAY', positiveInt('delay', options.delay));
  if (options.retry !== undefined) args.push('RETRY', positiveInt('retry', options.retry));
  if (options.ttl !== undefined) args.push('TTL', positiveInt('ttl', options.ttl));
  if (options.maxlen !== undefined) args.push('MAXLEN', positiveInt('maxlen', options.maxlen));
  if (options.async) args.push('ASYNC');
  if (options.unique !== undefined) {
    if (typeof options.unique !== 'string' || options.unique === '') throw new RangeError('unique must be a non-empty string');
    args.push('UNIQUE', options.unique);
  }
  return args;
}

function idList(ids: string | readonly string[]): string[] {
  return typeof ids === 'string' ? [ids] : [...ids];
}

function positiveInt(name: string, v: number): string {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return String(v);
}

/**
 * A Disque client. Commands go to one node at a time; on `-LEAVING` or a lost
 * connection the client moves to another node and sends the command again.
 *
 * A blocking GETJOB holds the connection until it returns: use a separate
 * client (`duplicate()`) for blocking consumers, or a Worker, which does.
 */
export class Disque<T = Buffer> {
  /** The codec bodies go through. */
  readonly codec: Codec<T>;
  private readonly conn: Connection;
  private readonly options: DisqueOptions<T>;
  private readonly redisOptions: RedisOptions;
  private readonly tracker: ProducerTracker | undefined;

  constructor(options: DisqueOptions<T> = {}) {
    this.options = options;
    this.codec = options.codec ?? (bufferCodec as unknown as Codec<T>);
    const specs = Array.isArray(options.nodes) ? options.nodes : options.nodes === undefined ? [] : [options.nodes];
    const seeds = specs.map(parseAddress);
    this.redisOptions = redisOptionsFor(specs, options);
    this.conn = new Connection({
      directory: new NodeDirectory(seeds, options.discover ?? true),
      redisOptions: this.redisOptions,
      failoverTimeout: options.failoverTimeout ?? 10000,
      preferBestNode: options.preferBestNode ?? true,
    });
    const follow = options.followProducers;
    this.tracker = follow ? new ProducerTracker(follow === true ? {} : follow) : undefined;
  }

  // ---- connection ---------------------------------------------------------

  /** Connects now and returns the node (otherwise the first command connects). */
  connect(): Promise<NodeInfo> {
    return this.conn.connect();
  }

  /** The node this client is connected to, if connected. */
  get node(): NodeInfo | undefined {
    const n = this.conn.node;
    return n ? { ...n } : undefined;
  }

  /** The nodes learned from HELLO. */
  knownNodes(): NodeInfo[] {
    return this.conn.directory.nodes();
  }

  /**
   * A new client with its own connection and the same options (overridable),
   * starting with the nodes this one has learned, and on the same node if
   * that is among the best.
   */
  duplicate(overrides: Omit<DisqueOptions<T>, 'codec'> = {}): Disque<T> {
    const d = new Disque<T>({ ...this.options, ...overrides, codec: this.codec });
    for (const n of this.conn.directory.nodes()) d.conn.directory.adopt(n);
    const here = this.conn.node;
    if (here) d.conn.directory.prefer({ host: here.host, port: here.port });
    return d;
  }

  /** The same connection with another body codec. */
  withCodec<U>(codec: Codec<U>): Disque<U> {
    const view = Object.create(Disque.prototype) as Disque<U>;
    Object.assign(view, this, { codec });
    return view;
  }

  /** Moves this client to the node `nodeId` (one learned from HELLO). Returns false if unreachable. */
  async moveTo(nodeId: string): Promise<boolean> {
    const n = this.conn.directory.byId(nodeId);
    if (!n || n.host === '') return false;
    return this.conn.moveTo({ host: n.host, port: n.port }, 'follow-producers');
  }

  /** Listens to connection events: `node` (connected to a node), `failover`, `connectionError`. */
  on<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this {
    this.conn.on(event, listener as never);
    return this;
  }

  off<E extends keyof ConnectionEvents>(event: E, listener: (...args: ConnectionEvents[E]) => void): this {
    this.conn.off(event, listener as never);
    return this;
  }

  /**
   * Ends what is in flight now, typically a blocking getJob: the server
   * ends the GETJOB, jobs it had already sent are still returned, and
   * commands left unanswered reject with InterruptedError. Unlike
   * disconnect(), no job on its way is lost, and the client stays usable:
   * the next command connects again.
   */
  interrupt(): void {
    this.conn.interrupt();
  }

  /** Closes after pending replies arrive. Views made with withCodec() share the connection. */
  quit(): Promise<void> {
    return this.conn.quit();
  }

  /** Closes at once; pending commands fail with ClientClosedError. */
  disconnect(): void {
    this.conn.disconnect();
  }

  /** Sends any command (with failover) and returns the raw reply. */
  async call(command: string, ...args: Arg[]): Promise<unknown> {
    return (await this.conn.send(command, args)).reply;
  }

  private async send(command: string, args: Arg[], buffer = false): Promise<unknown> {
    return (await this.conn.send(command, args, buffer)).reply;
  }

  // ---- main API -----------------------------------------------------------

  /** ADDJOB: adds a job and returns its ID. */
  async addJob<U = T>(queue: string, body: NoInfer<BodyInput<U>>, options: AddJobOptions<U> = {}): Promise<string> {
    const codec = (options.codec ?? this.codec) as Codec<U>;
    const tail = addJobOptionArgs(options);
    return text(await this.send('ADDJOB', [queue, codec.encode(body), ...tail]));
  }

  /**
   * ADDJOB for each body, pipelined: one round trip per `batchSize` jobs.
   * Returns the IDs in the order of the bodies. A job that could not be
   * added (its body does not encode, or the server refused it) has no ID and
   * is listed in `failed` with its error; the others are added all the same.
   * Options that are not valid throw before anything is sent.
   */
  async addJobs<U = T>(
    queue: string,
    bodies: readonly NoInfer<BodyInput<U>>[],
    options: AddJobsOptions<U> = {},
  ): Promise<AddJobsResult> {
    const { batchSize = 1000, codec: given, ...rest } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    const codec = (given ?? this.codec) as Codec<U>;
    const tail = addJobOptionArgs(rest);
    const ids: (string | undefined)[] = new Array(bodies.length).fill(undefined);
    const failed: { index: number; error: Error }[] = [];
    for (let start = 0; start < bodies.length; start += batchSize) {
      const argLists: Arg[][] = [];
      const indexes: number[] = [];
      for (let i = start; i < Math.min(bodies.length, start + batchSize); i++) {
        try {
          argLists.push([queue, codec.encode(bodies[i]!), ...tail]);
          indexes.push(i);
        } catch (e) {
          failed.push({ index: i, error: e as Error });
        }
      }
      const outcomes = await this.conn.sendBatch('ADDJOB', argLists);
      let unreachable: Error | undefined;
      outcomes.forEach((o, k) => {
        if (o.error) failed.push({ index: indexes[k]!, error: o.error });
        else ids[indexes[k]!] = text(o.reply);
        if (o.error && !(o.error instanceof ReplyError) && !(o.error instanceof CodecError)) unreachable ??= o.error;
      });
      if (unreachable) {
        // No node took the batch (or the client closed): the next ones would fare no better.
        for (let i = start + batchSize; i < bodies.length; i++) failed.push({ index: i, error: unreachable });
        break;
      }
    }
    failed.sort((a, b) => a.index - b.index);
    return { ids, failed };
  }

  /**
   * GETJOB: jobs from the first of `queues` that has some. Blocks up to
   * `timeout` ms (forever by default) unless `noHang`; [] when none came.
   */
  async getJob<U = T>(queues: string | readonly string[], options: GetJobOptions<U> = {}): Promise<Job<U>[]> {
    const codec = (options.codec ?? this.codec) as Codec<U>;
    const args: Arg[] = [];
    if (options.noHang) args.push('NOHANG');
    if (options.timeout !== undefined) args.push('TIMEOUT', positiveInt('timeout', options.timeout));
    if (options.count !== undefined) args.push('COUNT', positiveInt('count', options.count));
    if (options.withCounters) args.push('WITHCOUNTERS');
    const qs = idList(queues);
    if (qs.length === 0) throw new RangeError('getJob needs at least one queue');
    args.push('FROM', ...qs);
    const { reply, node } = await this.conn.send('GETJOB', args, true);
    const jobs = parseJobs(reply, codec);
    if (options.withCreatedAt) await this.fillCreatedAt(jobs);
    if (this.tracker && jobs.length > 0) {
      const prefix = this.tracker.observe(
        jobs.map((j) => j.id),
        node.id,
      );
      const target = prefix === undefined ? undefined : this.conn.directory.byPrefix(prefix);
      if (target && target.host !== '') await this.conn.moveTo({ host: target.host, port: target.port }, 'follow-producers');
    }
    return jobs;
  }

  /**
   * Sets `createdAt` from SHOW, pipelined. Never fails (sendBatch does not
   * throw): the jobs are delivered already, and a caller that lost them
   * would leave them to their retry time. Any node holding a copy knows its
   * creation time.
   */
  private async fillCreatedAt(jobs: Job<unknown>[]): Promise<void> {
    if (jobs.length === 0) return;
    const outcomes = await this.conn.sendBatch('SHOW', jobs.map((j) => [j.id]), true);
    outcomes.forEach((o, i) => {
      const ctime = o.error ? undefined : showCreatedAt(o.reply);
      if (ctime) jobs[i]!.createdAt = ctime;
    });
  }

  /** ACKJOB: acknowledges jobs cluster-wide. Returns how many this node knew. */
  ackJob(ids: string | readonly string[]): Promise<number> {
    return this.idsCommand('ACKJOB', ids);
  }

  /** FASTACK: best-effort cluster-wide delete. Returns how many this node deleted. */
  fastAck(ids: string | readonly string[]): Promise<number> {
    return this.idsCommand('FASTACK', ids);
  }

  /**
   * NACK: puts jobs back in their queue, counting a NACK: at once, or with
   * `delay` after that many seconds (NACK ... DELAY, disque-ts: the job keeps
   * its ID and no node queues it earlier). Returns how many were NACKed.
   */
  async nack(ids: string | readonly string[], options: NackOptions = {}): Promise<number> {
    const delay = options.delay ?? 0;
    if (!Number.isFinite(delay) || delay < 0) throw new RangeError(`delay must be a non-negative number of seconds, got ${delay}`);
    if (delay === 0) return this.idsCommand('NACK', ids);
    // Milliseconds are the server's precision; a delay is never rounded down to 0.
    const seconds = Math.max(0.001, Math.ceil(delay * 1000) / 1000);
    return num(await this.send('NACK', [...idList(ids), 'DELAY', seconds.toFixed(3).replace(/\.?0+$/, '')]));
  }

  /**
   * WORKING: postpones the job's next delivery by its retry time. Returns
   * that retry time in seconds (0 for at most once jobs). NoJobError if the
   * node does not know the job; TooLateError after half its TTL.
   */
  async working(id: string): Promise<number> {
    return num(await this.send('WORKING', [id]));
  }

  // ---- a queue across the cluster ------------------------------------------

  /**
   * Deletes every job queued in `queue` on every node HELLO lists (DEQUEUE,
   * then ACKJOB, so no node queues them again) and returns how many. Jobs
   * delivered to a consumer or still within their delay are left alone.
   * Throws UnreachableNodesError, after draining the others, when a node
   * could not be asked.
   */
  drain(queue: string): Promise<number> {
    return drainQueue(this.nodeAccess(), queue);
  }

  /**
   * How many of `queue`'s jobs are queued, active (delivered, not yet
   * acknowledged) and delayed across the cluster, and dead-lettered in
   * `deadLetterQueue` when given. Reads every node's job IDs for the queue
   * (JSCAN) and SHOWs the jobs no node has queued. Nodes that could not be
   * asked are listed in `unreachable`.
   */
  counts(queue: string, options: { deadLetterQueue?: string } = {}): Promise<QueueCounts> {
    return queueCounts(this.nodeAccess(), queue, options.deadLetterQueue);
  }

  /** Every node HELLO lists, each on a connection of its own that never moves to another node. */
  private nodeAccess(): NodeAccess {
    return {
      nodes: async () => {
        await this.hello();
        return this.conn.directory.nodes();
      },
      connect: (n) =>
        new Connection({
          directory: new NodeDirectory([{ host: n.host, port: n.port }], false),
          redisOptions: this.redisOptions,
          failoverTimeout: 0,
          preferBestNode: false,
        }),
    };
  }

  // ---- other commands -----------------------------------------------------

  /** ENQUEUE: queues active jobs again (counting an additional delivery). Returns how many. */
  enqueue(ids: string | readonly string[]): Promise<number> {
    return this.idsCommand('ENQUEUE', ids);
  }

  /** DEQUEUE: takes queued jobs out of their queue. Returns how many. */
  dequeue(ids: string | readonly string[]): Promise<number> {
    return this.idsCommand('DEQUEUE', ids);
  }

  /** DELJOB: deletes jobs from this node only. Returns how many. */
  delJob(ids: string | readonly string[]): Promise<number> {
    return this.idsCommand('DELJOB', ids);
  }

  /** SHOW: the job as this node knows it, or null. */
  async show<U = T>(id: string, options: { codec?: Codec<U> } = {}): Promise<JobDetails<U> | null> {
    return parseJobDetails(await this.send('SHOW', [id], true), (options.codec ?? this.codec) as Codec<U>);
  }

  /** QLEN: jobs queued in `queue` on this node. */
  async qlen(queue: string): Promise<number> {
    return num(await this.send('QLEN', [queue]));
  }

  /**
   * QPOLICY (disque-ts, docs/policies.md): a queue's delivery limits,
   * cluster-wide. `qpolicy(queue)` reads them (null: none);
   * `qpolicy(queue, { rate: { jobs, seconds }, concurrency })` sets the
   * limits given (null removes one, an absent one is kept);
   * `qpolicy(queue, null)` clears the policy.
   */
  async qpolicy(queue: string): Promise<QueuePolicy | null>;
  async qpolicy(queue: string, update: QueuePolicyUpdate | null): Promise<void>;
  async qpolicy(queue: string, update?: QueuePolicyUpdate | null): Promise<QueuePolicy | null | void> {
    if (update === undefined) return parseQueuePolicy(await this.send('QPOLICY', [queue, 'GET']));
    if (update === null) {
      await this.send('QPOLICY', [queue, 'CLEAR']);
      return;
    }
    const args: Arg[] = [queue, 'SET'];
    if (update.rate === null) args.push('RATE', 'NONE');
    else if (update.rate !== undefined) args.push('RATE', positiveInt('rate.jobs', update.rate.jobs), positiveInt('rate.seconds', update.rate.seconds));
    if (update.concurrency === null) args.push('CONCURRENCY', 'NONE');
    else if (update.concurrency !== undefined) args.push('CONCURRENCY', positiveInt('concurrency', update.concurrency));
    if (args.length === 2) throw new RangeError('qpolicy: give rate and/or concurrency, or null to clear');
    await this.send('QPOLICY', args);
  }

  /** QSTAT: the queue on this node, or null if the node has no such queue. */
  async qstat(queue: string): Promise<QueueStats | null> {
    return parseQueueStats(await this.send('QSTAT', [queue]));
  }

  /**
   * QPEEK: up to `count` queued jobs without taking them, oldest first;
   * a negative count gives the newest first.
   */
  async qpeek<U = T>(queue: string, count: number, options: { codec?: Codec<U>; withCreatedAt?: boolean } = {}): Promise<Job<U>[]> {
    if (!Number.isInteger(count)) throw new RangeError(`count must be an integer, got ${count}`);
    const jobs = parseJobs(await this.send('QPEEK', [queue, count], true), (options.codec ?? this.codec) as Codec<U>);
    if (options.withCreatedAt) await this.fillCreatedAt(jobs);
    return jobs;
  }

  /**
   * QSCAN over all pages: the names of this node's queues. A name may come
   * twice; if the client moves to another node meanwhile, the scan restarts there.
   */
  async *qscan(options: QScanOptions = {}): AsyncIterableIterator<string> {
    const args: Arg[] = [];
    if (options.count !== undefined) args.push('COUNT', positiveInt('count', options.count));
    if (options.busyLoop) args.push('BUSYLOOP');
    if (options.minLen !== undefined) args.push('MINLEN', positiveInt('minLen', options.minLen));
    if (options.maxLen !== undefined) args.push('MAXLEN', positiveInt('maxLen', options.maxLen));
    if (options.importRate !== undefined) args.push('IMPORTRATE', positiveInt('importRate', options.importRate));
    for await (const item of this.scan('QSCAN', args, false)) yield text(item);
  }

  /**
   * JSCAN over all pages: this node's jobs, as IDs, or as SHOW details with
   * `reply: 'all'`. A job may come twice; if the client moves to another node
   * meanwhile, the scan restarts there.
   */
  jscan<U = T>(options: JScanOptions<U> & { reply: 'all' }): AsyncIterableIterator<JobDetails<U>>;
  jscan(options?: JScanOptions & { reply?: 'id' }): AsyncIterableIterator<string>;
  async *jscan<U = T>(options: JScanOptions<U> = {}): AsyncIterableIterator<string | JobDetails<U>> {
    const args: Arg[] = [];
    if (options.count !== undefined) args.push('COUNT', positiveInt('count', options.count));
    if (options.busyLoop) args.push('BUSYLOOP');
    if (options.queue !== undefined) args.push('QUEUE', options.queue);
    const states = options.state === undefined ? [] : Array.isArray(options.state) ? options.state : [options.state];
    for (const s of states) args.push('STATE', s);
    const all = options.reply === 'all';
    args.push('REPLY', all ? 'all' : 'id');
    const codec = (options.codec ?? this.codec) as Codec<U>;
    for await (const item of this.scan('JSCAN', args, all)) {
      if (all) {
        const details = parseJobDetails(item, codec);
        if (details) yield details;
      } else {
        yield text(item);
      }
    }
  }

  /** Runs a cursor scan to the end on one node; restarts if the node changes. */
  private async *scan(command: string, args: Arg[], buffer: boolean): AsyncIterableIterator<unknown> {
    let cursor = '0';
    let nodeId: string | undefined;
    for (;;) {
      const { reply, node } = await this.conn.send(command, [cursor, ...args], buffer);
      if (nodeId !== undefined && node.id !== nodeId) {
        // Cursors are node-local: start over on the new node. (Not a
        // do-while `continue`: that would test cursor '0' and stop.)
        nodeId = node.id;
        cursor = '0';
        continue;
      }
      nodeId = node.id;
      const page = parseScanPage(reply);
      for (const item of page.items) yield item;
      cursor = page.cursor;
      if (cursor === '0') return;
    }
  }

  /**
   * PAUSE: pauses a queue in input, output, both (`'all'` or `['in','out']`),
   * clears it (`'none'`) or just reads it (`'state'`). Returns the state after.
   */
  async pause(
    queue: string,
    how: PauseOption | 'state' | readonly ('in' | 'out')[],
    options: PauseOptions = {},
  ): Promise<PauseState> {
    const args: Arg[] = [queue, ...(typeof how === 'string' ? [how] : how)];
    if (args.length === 1) args.push('state');
    if (options.bcast) args.push('bcast');
    return parsePauseState(await this.send('PAUSE', args));
  }

  /** HELLO: this node's ID and every node with its address and priority. */
  async hello(): Promise<HelloReply> {
    const { reply, node } = await this.conn.send('HELLO', []);
    const hello = parseHello(reply);
    if (hello.id === node.id) this.conn.directory.learn(hello, { host: node.host, port: node.port });
    return hello;
  }

  /** INFO: server information by section (lower case) and field. */
  async info(section?: string): Promise<InfoReply> {
    return parseInfo(text(await this.send('INFO', section === undefined ? [] : [section])));
  }

  /** PING: `PONG`, or the message given. */
  async ping(message?: string): Promise<string> {
    return text(await this.send('PING', message === undefined ? [] : [message]));
  }

  private async idsCommand(command: string, ids: string | readonly string[]): Promise<number> {
    const list = idList(ids);
    if (list.length === 0) return 0;
    return num(await this.send(command, list));
  }
}
