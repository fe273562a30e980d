// One logical connection to a Disque cluster, carried by one ioredis
// connection at a time. ioredis does the socket work (RESP, pipelining, TLS,
// AUTH); this class decides which node to talk to, and when the node leaves
// (-LEAVING) or the connection drops, moves to another node and sends the
// failed command again there.
import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { ClientClosedError, ConnectionError, InterruptedError, LeavingError, replyError } from './errors.js';
import { addressKey, type Address, type NodeDirectory } from './nodes.js';
import { parseHello } from './replies.js';
import type { NodeInfo } from './types.js';

type Arg = string | Buffer | number;

interface Link {
  redis: Redis;
  node: NodeInfo;
  address: Address;
  /** interrupt() closed our side: what is not answered fails, and is not sent again. */
  interrupted?: boolean;
}

/** How long an interrupted link may wait for the server to close its side before we drop it. */
const INTERRUPT_GRACE_MS = 2000;

export interface ConnectionSettings {
  directory: NodeDirectory;
  redisOptions: RedisOptions;
  failoverTimeout: number;
  preferBestNode: boolean;
}

/** Why the connection moved to another node. */
export type FailoverReason = 'leaving' | 'connection-lost' | 'follow-producers' | 'better-node';

export interface ConnectionEvents {
  node: [node: NodeInfo];
  failover: [info: { from: NodeInfo; reason: FailoverReason; error?: Error }];
  connectionError: [error: Error];
}

/** One command's outcome in a batch: its reply, or why it failed. */
export type BatchOutcome = { reply: unknown; error?: undefined } | { error: Error; reply?: undefined };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isTimeout(e: Error): boolean {
  return /timed out/i.test(e.message);
}

/**
 * `command` with bulk replies as Buffers. Not ioredis' callBuffer(): with
 * enableAutoPipelining it sends the arguments without the command name
 * (ioredis 5 and 6 put the name back for call() only). A command declared
 * with addBuiltinCommand gets a `<name>Buffer` method that auto-pipelines
 * whole, as the commands ioredis knows do.
 */
function callBuffer(redis: Redis, command: string, args: Arg[]): Promise<unknown> {
  const name = command.toLowerCase();
  if (!redis.addedBuiltinSet.has(name)) redis.addBuiltinCommand(name);
  const method = (redis as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>)[`${name}Buffer`]!;
  return method.apply(redis, args);
}

export class Connection extends EventEmitter<ConnectionEvents> {
  private link: Link | null = null;
  private opening: Promise<Link> | null = null;
  private closed = false;
  /** Counts interrupt() calls: a command that started before one is not sent after it. */
  private interrupts = 0;

  constructor(private readonly settings: ConnectionSettings) {
    super();
  }

  get directory(): NodeDirectory {
    return this.settings.directory;
  }

  /** The node currently connected, if any. */
  get node(): NodeInfo | undefined {
    return this.link?.node;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Connects now (otherwise the first command does). */
  async connect(): Promise<NodeInfo> {
    return (await this.current(Date.now() + this.settings.failoverTimeout)).node;
  }

  /**
   * Sends a command; moves to another node and sends it again when the
   * node is leaving or the connection is lost, for up to `failoverTimeout`.
   * With `buffer`, bulk replies arrive as Buffers.
   */
  async send(command: string, args: Arg[], buffer = false): Promise<{ reply: unknown; node: NodeInfo }> {
    let deadline: number | undefined;
    const interrupts = this.interrupts;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new ClientClosedError();
      const link = await this.current(deadline ?? Date.now() + this.settings.failoverTimeout);
      if (this.interrupts !== interrupts) throw new InterruptedError();
      try {
        const reply = buffer ? await callBuffer(link.redis, command, args) : await link.redis.call(command, ...args);
        return { reply, node: link.node };
      } catch (e) {
        if (this.closed) throw new ClientClosedError();
        if (link.interrupted) throw new InterruptedError();
        const err = e as Error;
        let reason: FailoverReason;
        let failure: Error;
        if (err.name === 'ReplyError') {
          failure = replyError(err.message, command.toUpperCase());
          if (!(failure instanceof LeavingError)) throw failure;
          reason = 'leaving';
          this.directory.markLeaving(link.node.id);
        } else if (isTimeout(err)) {
          throw err;
        } else {
          reason = 'connection-lost';
          failure = new ConnectionError(`connection to ${addressKey(link.address)} lost: ${err.message}`, { cause: err });
        }
        deadline ??= Date.now() + this.settings.failoverTimeout;
        if (Date.now() >= deadline) throw failure;
        this.drop(link, reason, err);
        // Only one node (or all leaving): back off instead of spinning.
        if (attempt > 0) await sleep(Math.min(1000, 50 * 2 ** attempt, Math.max(0, deadline - Date.now())));
      }
    }
  }

  /**
   * Sends `command` once per argument list, pipelined: one write, one round
   * trip. Outcomes come back in order, each a reply or an error; an error
   * reply to one does not fail the others. Those the node did not answer
   * (connection lost, -LEAVING) are sent again on another node, as send()
   * does, for up to `failoverTimeout`, then fail with the last error.
   * Never throws: replies that arrived are kept whatever happens to the rest.
   */
  async sendBatch(command: string, argLists: readonly Arg[][], buffer = false): Promise<BatchOutcome[]> {
    const out: BatchOutcome[] = new Array(argLists.length);
    let pending = argLists.map((_, i) => i);
    const failAll = (error: Error) => {
      for (const i of pending) out[i] = { error };
    };
    let deadline: number | undefined;
    const interrupts = this.interrupts;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (this.closed) {
        failAll(new ClientClosedError());
        break;
      }
      let link: Link;
      try {
        link = await this.current(deadline ?? Date.now() + this.settings.failoverTimeout);
      } catch (e) {
        failAll(e as Error);
        break;
      }
      if (this.interrupts !== interrupts) {
        failAll(new InterruptedError());
        break;
      }
      // An explicit pipeline is never auto-pipelined: callBuffer keeps its name here.
      const pipeline = link.redis.pipeline();
      for (const i of pending) {
        if (buffer) pipeline.callBuffer(command, ...argLists[i]!);
        else pipeline.call(command, ...argLists[i]!);
      }
      let results: [Error | null, unknown][];
      try {
        results = (await pipeline.exec()) ?? [];
      } catch (e) {
        results = [];
        for (let k = 0; k < pending.length; k++) results.push([e as Error, undefined]);
      }
      const closed = this.closed;
      const again: number[] = [];
      let reason: FailoverReason | undefined;
      let failure: Error | undefined;
      let cause: Error | undefined;
      pending.forEach((i, k) => {
        const [err, reply] = results[k] ?? [new Error('no reply in the pipeline'), undefined];
        if (!err) {
          out[i] = { reply };
        } else if (closed) {
          out[i] = { error: new ClientClosedError() };
        } else if (err.name === 'ReplyError') {
          const e = replyError(err.message, command.toUpperCase());
          if (e instanceof LeavingError) {
            again.push(i);
            reason = 'leaving';
            failure = e;
            cause = err;
          } else {
            out[i] = { error: e };
          }
        } else if (isTimeout(err)) {
          out[i] = { error: err };
        } else if (link.interrupted) {
          out[i] = { error: new InterruptedError() };
        } else {
          again.push(i);
          reason ??= 'connection-lost';
          failure ??= new ConnectionError(`connection to ${addressKey(link.address)} lost: ${err.message}`, { cause: err });
          cause ??= err;
        }
      });
      if (again.length === 0) break;
      if (reason === 'leaving') this.directory.markLeaving(link.node.id);
      deadline ??= Date.now() + this.settings.failoverTimeout;
      if (Date.now() >= deadline) {
        for (const i of again) out[i] = { error: failure! };
        break;
      }
      this.drop(link, reason!, cause!);
      pending = again;
      if (attempt > 0) await sleep(Math.min(1000, 50 * 2 ** attempt, Math.max(0, deadline - Date.now())));
    }
    return out;
  }

  /** Moves to `address` (keeping the current node if it cannot be reached). */
  async moveTo(address: Address, reason: FailoverReason): Promise<boolean> {
    const old = this.link;
    if (old && addressKey(old.address) === addressKey(address)) return true;
    let link: Link;
    try {
      link = await this.open(address);
    } catch {
      this.directory.markTrouble(address);
      return false;
    }
    if (this.closed) {
      link.redis.disconnect();
      return false;
    }
    this.link = link;
    if (old) {
      // QUIT lets replies still in flight on the old node arrive first.
      old.redis.quit().catch(() => old.redis.disconnect());
      this.emit('failover', { from: old.node, reason });
    }
    this.emit('node', link.node);
    return true;
  }

  /**
   * Ends the commands in flight without losing replies the server already
   * sent: closes our half of the socket, so the server ends a blocked
   * GETJOB and closes its side after the replies it wrote. Those replies
   * arrive; commands left unanswered fail with InterruptedError and are not
   * sent again. The next command connects again.
   */
  interrupt(): void {
    this.interrupts++;
    const link = this.link;
    if (!link) return;
    this.link = null;
    link.interrupted = true;
    link.redis.stream?.end();
    // A server (or proxy) that keeps its side open must not hold the link forever.
    setTimeout(() => link.redis.disconnect(), INTERRUPT_GRACE_MS).unref();
  }

  /** Closes after pending replies arrive. */
  async quit(): Promise<void> {
    this.closed = true;
    const link = this.link;
    this.link = null;
    if (link) await link.redis.quit().catch(() => link.redis.disconnect());
  }

  /** Closes at once; pending commands fail with ClientClosedError. */
  disconnect(): void {
    this.closed = true;
    const link = this.link;
    this.link = null;
    link?.redis.disconnect();
  }

  private drop(link: Link, reason: FailoverReason, error: Error): void {
    // Leaving nodes too: other nodes' HELLO may not report the departure yet.
    this.directory.markTrouble(link.address);
    if (this.link !== link) return; // another command already moved on
    this.link = null;
    link.redis.disconnect();
    this.emit('failover', { from: link.node, reason, error });
  }

  private current(deadline: number): Promise<Link> {
    const link = this.link;
    if (link && link.redis.status !== 'end' && link.redis.status !== 'close') return Promise.resolve(link);
    if (link) this.drop(link, 'connection-lost', new Error('connection closed'));
    if (!this.opening) {
      this.opening = this.openBest(deadline).finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  /** Tries the candidate nodes, best first, until one answers HELLO or the deadline passes. */
  private async openBest(deadline: number): Promise<Link> {
    let lastError: unknown;
    for (let round = 0; ; round++) {
      const tried: string[] = [];
      for (const address of this.directory.candidates()) {
        if (this.closed) throw new ClientClosedError();
        tried.push(addressKey(address));
        let link: Link;
        try {
          link = await this.open(address);
        } catch (e) {
          lastError = e;
          this.directory.markTrouble(address);
          continue;
        }
        link = await this.preferBetter(link);
        if (this.closed) {
          link.redis.disconnect();
          throw new ClientClosedError();
        }
        this.link = link;
        this.emit('node', link.node);
        return link;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const why = lastError instanceof Error ? `: ${lastError.message}` : '';
        throw new ConnectionError(`no Disque node reachable (tried ${tried.join(', ')})${why}`, { cause: lastError });
      }
      await sleep(Math.min(left, 100 * 2 ** Math.min(round, 4)));
    }
  }

  /** HELLO listed a node with a better priority: use it if it answers. */
  private async preferBetter(link: Link): Promise<Link> {
    if (!this.settings.preferBestNode) return link;
    const better = this.directory.better(link.node);
    if (!better) return link;
    try {
      const b = await this.open({ host: better.host, port: better.port });
      link.redis.disconnect();
      return b;
    } catch {
      this.directory.markTrouble(better);
      return link;
    }
  }

  /** A ready ioredis connection to `address`, after HELLO. */
  private async open(address: Address): Promise<Link> {
    const redis = new Redis({
      connectTimeout: 3000,
      ...this.settings.redisOptions,
      host: address.host,
      port: address.port,
      // Disque's HELLO is not Redis' RESP3 handshake; CLIENT SETINFO does not exist.
      protocol: 2,
      disableClientInfo: true,
      enableReadyCheck: false,
      lazyConnect: true,
      // Reconnection is ours: possibly to another node.
      retryStrategy: () => null,
      autoResendUnfulfilledCommands: false,
    });
    // ioredis closes the connection when AUTH is refused and reports why only
    // as an 'error' event: keep it, it says more than "Connection is closed".
    let refusal: Error | null = null;
    redis.on('error', (e: Error) => {
      if (e.name === 'ReplyError') refusal = e;
      if (this.listenerCount('connectionError') > 0) this.emit('connectionError', e);
    });
    try {
      await redis.connect();
      const hello = parseHello(await redis.call('HELLO'));
      return { redis, node: this.directory.learn(hello, address), address };
    } catch (e) {
      redis.disconnect();
      const err = (refusal ?? e) as Error;
      throw err.name === 'ReplyError' ? replyError(err.message, 'HELLO') : err;
    }
  }
}
