// One client connection: reads requests, runs them in order, buffers the
// replies of one event-loop turn, and holds the blocked state of GETJOB and
// of a synchronous ADDJOB. While blocked, further requests wait (and the
// socket stops reading) so replies keep the request order.
import type { Socket } from 'node:net';
import { ReplyBuffer } from '../protocol/reply.js';
import { wrapSocket, type Transport } from '../protocol/transport.js';
import { RequestReader, type ArgBytes, type RequestLimits } from '../protocol/request.js';
import type { Queue } from '../core/queue.js';
import type { Job } from '../core/job.js';
import type { Command } from './command-table.js';
import type { Blocker } from '../protocol/client.js';
import type { Call, CommandClient, CommandNode, PersistenceView } from '../commands/context.js';
import { replyJob } from '../commands/util.js';

/** Whoever sent a request, as Node.execute needs it: a Connection, or an InternalClient (HTTP). */
export interface Requester extends CommandClient {
  /** The Call its commands run with. */
  readonly call: Call;
  /** The command table's answer for the last command name it sent (see Node.execute). */
  lastCmd: Command | undefined;
  lastCmdName: string;
  /** CLIENT LIST's cmd. */
  lastCommand: string;
  /** Its pending reply reports a journaled change: it waits for Redis (see Connection.flush). */
  journaled(): void;
}

/** What a connection needs from the node that accepted it (the server's Node). */
export interface ConnectionHost extends CommandNode {
  readonly persistence: PersistenceView & {
    /** The gate of replies produced now (0: none); they are written once it is released. */
    replyGate(): number;
    isReleased(gate: number): boolean;
  };
  /** `w` holds replies until a gate is released: call its releaseReplies() when gates are released. */
  waitForRelease(w: ReleaseWaiter): void;
  readonly requestLimits: RequestLimits;
  /** client-output-buffer-limit normal's hard limit in bytes, 0 for none. */
  readonly outputHardLimit: number;
  /** Date.now() as of the last cron tick. */
  readonly coarseNow: number;
  /** Runs one request of the connection. */
  execute(conn: Requester, argv: string[], bytes?: ArgBytes | null): void;
  /** After any event: serve blocked clients and write out replies. */
  afterEvent(): void;
  /** After a read: serve blocked clients; replies wait for the end of the turn (scheduleFlush). */
  afterInput(): void;
  /** Output for the connection produced outside its own request: write it this turn. */
  scheduleFlush(conn: Connection): void;
  clientClosed(conn: Connection): void;
}

/** Something holding replies for the journal (a Connection, an InternalClient). */
export interface ReleaseWaiter {
  /** Writes what was released; true once nothing is held any more. */
  releaseReplies(): boolean;
}

let nextClientId = 1;

export class Connection implements Requester, ReleaseWaiter {
  readonly id = nextClientId++;
  readonly out = new ReplyBuffer();
  readonly addr: string;
  readonly createdAt = Date.now();
  lastInteraction = Date.now();
  name: string | null = null;
  authenticated: boolean;
  readonly tls: boolean;
  lastCommand = 'NULL';
  /** The command table's answer for the last command name this client sent (see Node.execute). */
  lastCmd: Command | undefined = undefined;
  lastCmdName = '';
  /** GETJOB WITHCOUNTERS of the current blocking GETJOB. */
  withCounters = false;
  /** QueueWaiter: the queues this client is blocked on. */
  blockedOn: Queue[] | null = null;
  blocker: Blocker | null = null;
  closed = false;
  private closeAfterReply = false;
  private blockTimer: NodeJS.Timeout | null = null;
  private readonly waiting: { argv: string[]; bytes: ArgBytes | null }[] = [];
  private readonly transport: Transport;
  private readonly reader: RequestReader;
  private dirty = false;
  /** The Call every command of this client runs with (see command-table.ts). */
  readonly call: Call;
  /** The replies buffered report a change that was journaled: they wait for the journal's gate. */
  private gateNeeded = false;
  /** Replies held until persistence confirms (their gate is released), written in order. */
  private readonly held: { data: Buffer; gate: number }[] = [];

  constructor(
    readonly node: ConnectionHost,
    readonly socket: Socket,
  ) {
    this.transport = wrapSocket(socket);
    this.tls = (socket as Socket & { encrypted?: boolean }).encrypted === true;
    this.addr = `${this.transport.remoteAddress || '?'}:${this.transport.remotePort}`;
    this.authenticated = node.config.str('requirepass') === '';
    this.call = { node, client: this, argv: [], body: null, reply: this.out };
    this.reader = new RequestReader(
      {
        request: (args, bytes) => this.onRequest(args, bytes),
        protocolError: (msg) => this.onProtocolError(msg),
        overLimit: () => {
          node.log.warning(`Closing client that reached max query buffer length: id=${this.id} addr=${this.addr}`);
          this.close();
        },
      },
      node.requestLimits,
    );
    this.transport.start(
      (chunk, n) => this.onData(chunk, n),
      () => this.close(),
      // The client finished sending: replies of this turn (a job just
      // served to it) still go out, and it stops waiting for jobs at once.
      () => {
        this.flush();
        this.close();
      },
    );
  }

  /** Holds reading while a burst of new connections is let in (see accept-burst.ts). */
  hold(on: boolean): void {
    if (!this.closed) this.transport.hold(on);
  }

  get blocked(): boolean {
    return this.blocker !== null;
  }

  get pendingInput(): number {
    return this.reader.pendingBytes;
  }

  private onData(chunk: Buffer, n: number): void {
    if (this.closed) return;
    this.node.stats.netInputBytes += n;
    this.lastInteraction = this.node.coarseNow;
    this.reader.feed(chunk, n);
    this.node.afterInput();
    // Replies go out once all reads of this pass of the event loop are done
    // (the reference writes in beforeSleep): a write per read woke the
    // client's process once per reply, and cost a fifth of ADDJOB's rate.
    if (!this.out.empty || this.closeAfterReply) this.markDirty();
  }

  private onRequest(argv: string[], bytes: ArgBytes | null): void {
    if (this.closed || this.closeAfterReply) return;
    if (this.blocker !== null || this.waiting.length > 0) {
      // Long arguments are views of the read buffer: the request keeps copies.
      this.waiting.push({ argv, bytes: bytes === null ? null : bytes.map((b) => (b === undefined ? b : Buffer.from(b))) });
      this.transport.pause();
      return;
    }
    this.node.execute(this, argv, bytes);
  }

  private onProtocolError(message: string): void {
    this.node.log.verbose(`Protocol error from client: id=${this.id} addr=${this.addr}: ${message}`);
    this.out.error(`ERR ${message}`);
    this.closeAfterReply = true;
    this.flush();
  }

  journaled(): void {
    this.gateNeeded = true;
  }

  /** QUIT and friends: send what is buffered, then close. */
  closeAfterReplies(): void {
    this.closeAfterReply = true;
  }

  /** Marks output to be written at the end of this event-loop turn. */
  markDirty(): void {
    if (this.dirty || this.closed) return;
    this.dirty = true;
    this.node.scheduleFlush(this);
  }

  flush(): void {
    this.dirty = false;
    if (this.closed) return;
    if (!this.out.empty) {
      // Replies to commands whose changes are still being written to Redis
      // wait for the write to be confirmed (appendfsync always/everysec);
      // the others (GETJOB, QLEN, ...) only for the held replies before them.
      const gate = this.gateNeeded ? this.node.persistence.replyGate() : 0;
      this.gateNeeded = false;
      if (gate !== 0 || this.held.length > 0) {
        // In order: a reply that needs no confirmation still waits behind held ones.
        this.held.push({ data: this.out.take(), gate });
        if (this.held.length === 1 && !this.releaseReplies()) this.node.waitForRelease(this);
        return;
      }
      this.node.stats.netOutputBytes += this.out.flushTo(this.writeOut);
      this.checkOutputLimit();
    }
    if (this.closeAfterReply && this.held.length === 0) this.end();
  }

  private readonly writeOut = (data: Buffer, release: (() => void) | null): boolean => this.transport.write(data, release);

  /** Writes held replies from the first, each once its gate is released; true when none is left. */
  releaseReplies(): boolean {
    if (this.closed) {
      this.held.length = 0;
      return true;
    }
    const persistence = this.node.persistence;
    while (this.held.length > 0) {
      const first = this.held[0]!;
      if (first.gate !== 0 && !persistence.isReleased(first.gate)) return false;
      this.held.shift();
      this.write(first.data);
    }
    if (this.closeAfterReply) this.end();
    return true;
  }

  private write(data: Buffer): void {
    if (this.closed) return;
    this.node.stats.netOutputBytes += data.length;
    this.transport.write(data);
    this.checkOutputLimit();
  }

  private checkOutputLimit(): void {
    const hard = this.node.outputHardLimit;
    if (hard > 0 && this.transport.pendingWrite > hard) {
      this.node.log.warning(`Client id=${this.id} addr=${this.addr} closed for overcoming of output buffer limits.`);
      this.close();
    }
  }

  private end(): void {
    if (this.closed) return;
    this.transport.end();
    this.close();
  }

  // ------------------------------------------------------------- blocking

  /** Blocks the client; timeoutAt is an absolute Date.now() time, 0 for never. */
  block(blocker: Blocker, timeoutAt: number): void {
    this.blocker = blocker;
    if (timeoutAt > 0) {
      const delay = Math.max(0, timeoutAt - Date.now());
      this.blockTimer = setTimeout(() => {
        this.blockTimer = null;
        if (this.blocker !== blocker) return;
        blocker.timedOut();
        this.node.afterEvent();
        this.flush();
      }, delay);
    }
  }

  /** Ends the blocked state and runs requests that arrived meanwhile. */
  unblock(): void {
    if (this.blocker === null) return;
    this.blocker = null;
    if (this.blockTimer !== null) {
      clearTimeout(this.blockTimer);
      this.blockTimer = null;
    }
    this.markDirty();
    if (this.waiting.length > 0) setImmediate(() => this.runWaiting());
    else this.transport.resume();
  }

  private runWaiting(): void {
    this.lastInteraction = this.node.coarseNow;
    while (this.waiting.length > 0 && this.blocker === null && !this.closed && !this.closeAfterReply) {
      const r = this.waiting.shift()!;
      this.node.execute(this, r.argv, r.bytes);
    }
    if (this.blocker === null) this.transport.resume();
    this.node.afterEvent();
    this.flush();
  }

  // ------------------------------------------------- QueueWaiter (GETJOB)

  serve(job: Job): void {
    this.out.arrayLen(1);
    replyJob(this.out, job, this.withCounters);
    this.unblock();
  }

  flushed(): void {
    this.out.nullArray();
    this.unblock();
  }

  refuse(error: string): void {
    this.out.error(error);
    this.unblock();
  }

  // ---------------------------------------------------------------- close

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.blocker !== null) {
      const b = this.blocker;
      this.blocker = null;
      if (this.blockTimer !== null) clearTimeout(this.blockTimer);
      b.disconnected();
    }
    this.waiting.length = 0;
    this.transport.end();
    this.node.clientClosed(this);
  }

  /** One line of CLIENT LIST. */
  info(now: number): string {
    const flags = (this.blocked ? 'b' : '') + (this.closeAfterReply ? 'c' : '') || 'N';
    return (
      `id=${this.id} addr=${this.addr} fd=${(this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1} ` +
      `name=${this.name ?? ''} age=${Math.floor((now - this.createdAt) / 1000)} ` +
      `idle=${Math.floor((now - this.lastInteraction) / 1000)} flags=${flags} ` +
      `qbuf=${this.reader.pendingBytes} qbuf-free=0 obl=${this.out.len} oll=0 ` +
      `omem=${this.transport.pendingWrite} events=r cmd=${this.lastCommand}`
    );
  }
}
