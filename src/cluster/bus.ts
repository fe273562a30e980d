// The cluster bus transport: TCP on the client port + cluster-port-offset.
// A frame is a 4-byte big-endian length and either a msgpackr-encoded
// message (gossip and rare messages) whose header carries the protocol
// version, the message type, the sender's node ID, client port and flags,
// or a job message in the fixed binary layout of job-frames.ts, told apart
// by its first byte. A bad, unknown-version or oversized frame closes that
// link (logged); the process goes on.
//
// Everything a link sends in one event-loop turn is appended to one output
// buffer, job messages written straight into it, and goes out in one write.
//
// With cluster-secret set, every link starts with a mutual challenge: each
// side proves it knows the secret with an HMAC over both sides' nonces, so
// the secret never travels. Until proven, nothing else is accepted.
import net from 'node:net';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import { wrapSocket, type Transport } from '../protocol/transport.js';
import { MsgWriter } from '../core/msgpack-writer.js';
import { JOB_FRAME_MARK, jobFrameHeaderRoom, writeJobFrameHeader } from './job-frames.js';
import { BUS_PROTOCOL_VERSION, MsgType, MSG_NAMES, type BusMessage, type BusHeader } from './messages.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeFrame(msg: BusMessage): Buffer {
  const body = packr.pack(msg);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/**
 * Builds frames for one sender: the same msgpack maps encodeFrame makes, but
 * the header fields are encoded once (again only when the sender's ID, port
 * or flags change) and values are written by a small writer: packing a whole
 * message object per frame with msgpackr was the largest CPU cost of
 * replication. Values the writer does not know go through msgpackr.
 */
export class FrameEncoder {
  private headerBytes: Buffer = Buffer.alloc(0);
  private headerFlags = -1;
  private headerPort = -1;
  private headerId = '';

  constructor(private readonly header: () => BusHeader) {}

  encode(type: number, mflags: number, body: Record<string, unknown>): Buffer {
    const h = this.header();
    if (h.f !== this.headerFlags || h.p !== this.headerPort || h.s !== this.headerId) {
      const w = new MsgWriter();
      for (const [k, v] of [['v', h.v], ['s', h.s], ['p', h.p], ['f', h.f]] as const) {
        w.key(k);
        w.value(v);
      }
      this.headerBytes = w.copy();
      this.headerFlags = h.f;
      this.headerPort = h.p;
      this.headerId = h.s;
    }
    const w = writer;
    w.pos = 4;
    let fields = 6;
    for (const k in body) if (body[k] !== undefined) fields++;
    w.mapHeader(fields);
    w.bytes(this.headerBytes);
    w.key('t');
    w.value(type);
    w.key('m');
    w.value(mflags);
    for (const k in body) {
      const v = body[k];
      if (v === undefined) continue;
      w.key(k);
      w.value(v);
    }
    const out = w.copy();
    out.writeUInt32BE(out.length - 4, 0);
    return out;
  }
}

const writer = new MsgWriter(64 * 1024);

export interface LinkEvents {
  message(link: Link, msg: BusMessage): void;
  /** A job frame (job-frames.ts), from its mark on; valid only during the call. */
  jobFrame(link: Link, frame: Buffer): void;
  /** A job frame of `type` was opened for sending (a frame counts as one message). */
  jobFrameOpened(type: number): void;
  /** The messages of one read were handled. */
  read(link: Link): void;
  closed(link: Link): void;
  /** A protocol violation, logged by the owner. */
  bad(link: Link, reason: string): void;
}

/** Links with output waiting to be written at the end of this event-loop turn. */
let dirtyLinks: Link[] = [];
let flushScheduled = false;

function flushLinks(): void {
  flushScheduled = false;
  const links = dirtyLinks;
  dirtyLinks = [];
  for (const l of links) l.flush();
}

/** A link's output buffer starts this large, and goes back to this size after a burst. */
const OUT_SIZE = 16 * 1024;
const OUT_KEEP_MAX = 1024 * 1024;

/**
 * One TCP connection between two nodes, in either direction. Frames sent
 * during one event-loop turn go out in a single write.
 */
export class Link {
  readonly ctime = Date.now();
  /** For outbound links: the node it was opened to (set by the cluster). */
  node: unknown = null;
  /** False until the secret handshake (if any) completes. */
  authenticated: boolean;
  closed = false;
  private transport: Transport | null = null;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private nonce: Buffer | null = null;
  private peerNonce: Buffer | null = null;
  /**
   * Output of this turn, written at its end; kept until the link is
   * connected and, with cluster-secret, until the peer proved it knows it.
   */
  private out: Buffer = Buffer.allocUnsafe(OUT_SIZE);
  private outLen = 0;
  private dirty = false;
  /** The job frame being filled: its type, aux and flags, where it starts (its length prefix) and its count is, its items. */
  private jobType = -1;
  private jobAux = 0;
  private jobMflags = 0;
  private jobStart = 0;
  private jobCountAt = 0;
  private jobCount = 0;

  constructor(
    readonly socket: net.Socket,
    readonly inbound: boolean,
    private readonly events: LinkEvents,
    private readonly opts: { secret: string; maxFrame: () => number; myHeader: () => BusHeader; ready?: 'connect' | 'secureConnect' },
  ) {
    this.authenticated = opts.secret === '';
    socket.setNoDelay(true);
    if (inbound) {
      this.attach();
    } else {
      // Not reading until connected: then the transport takes the socket over.
      socket.pause();
      socket.once(opts.ready ?? 'connect', () => {
        this.attach();
        if (!this.authenticated) {
          this.nonce = randomBytes(16);
          this.writeNow(encodeFrame({ ...opts.myHeader(), t: MsgType.AUTH_HELLO, n: this.nonce }));
        }
        this.schedule();
      });
      socket.once('error', () => this.close());
      socket.once('close', () => this.close());
    }
  }

  private attach(): void {
    const t = wrapSocket(this.socket);
    this.transport = t;
    t.start(
      (d, n) => this.onData(d.subarray(0, n)),
      () => this.close(),
    );
  }

  /** An outbound link still connecting (or proving the secret): what is sent waits. */
  get connecting(): boolean {
    return this.transport === null || !this.authenticated;
  }

  get remoteAddress(): string {
    return (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  }

  /** Our own address on this connection, as the peer sees it. */
  get localAddress(): string {
    return (this.socket.localAddress ?? '').replace(/^::ffff:/, '');
  }

  /** Sends a whole frame (after whatever was sent before it). */
  send(frame: Buffer): void {
    if (this.closed) return;
    this.closeJobFrame();
    const p = this.reserve(frame.length);
    frame.copy(this.out, p);
    this.outLen = p + frame.length;
    this.schedule();
  }

  /**
   * Room for one job message item of `room` bytes at the returned position
   * of `outBuffer`: in the open job frame if it is of the same type, aux and
   * flags, else in a new one. The caller writes the item and calls
   * endJobItem with the position after it.
   */
  beginJobItem(type: number, aux: number, mflags: number, room: number): number {
    if (this.jobType !== type || this.jobAux !== aux || this.jobMflags !== mflags) {
      this.closeJobFrame();
      const h = this.opts.myHeader();
      const start = this.reserve(4 + jobFrameHeaderRoom(h.s) + room);
      const countAt = writeJobFrameHeader(this.out, start + 4, h.v, type, mflags, aux, h.p, h.f, h.s);
      this.jobType = type;
      this.jobAux = aux;
      this.jobMflags = mflags;
      this.jobStart = start;
      this.jobCountAt = countAt;
      this.jobCount = 0;
      this.outLen = countAt + 4;
      this.events.jobFrameOpened(type);
      this.schedule();
      return this.outLen;
    }
    return this.reserve(room);
  }

  /** The output buffer job items are written into (see beginJobItem); valid until the next send or beginJobItem. */
  get outBuffer(): Buffer {
    return this.out;
  }

  endJobItem(end: number): void {
    this.outLen = end;
    this.jobCount++;
  }

  /** Ends the open job frame: its length and item count are known now. */
  private closeJobFrame(): void {
    if (this.jobType < 0) return;
    this.out.writeUInt32BE(this.outLen - this.jobStart - 4, this.jobStart);
    this.out.writeUInt32LE(this.jobCount, this.jobCountAt);
    this.jobType = -1;
  }

  /** Room for `n` more bytes of output; returns where they go. */
  private reserve(n: number): number {
    const need = this.outLen + n;
    if (need > this.out.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.out.length * 2));
      this.out.copy(bigger, 0, 0, this.outLen);
      this.out = bigger;
    }
    return this.outLen;
  }

  /** The secret handshake's frames go out at once, ahead of anything held for after it. */
  private writeNow(frame: Buffer): void {
    if (!this.closed && this.transport !== null) this.transport.write(frame);
  }

  private schedule(): void {
    if (this.dirty || this.transport === null || !this.authenticated) return;
    this.dirty = true;
    dirtyLinks.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushLinks);
    }
  }

  /** Writes this turn's output at once. */
  flush(): void {
    this.dirty = false;
    if (this.closed || this.transport === null || !this.authenticated) return;
    this.closeJobFrame();
    if (this.outLen === 0) return;
    const data = this.out.subarray(0, this.outLen);
    // Taken by the kernel at once: the buffer is ours again. Else the
    // transport keeps it until written, and the link takes a new one.
    if (!this.transport.write(data) || this.out.length > OUT_KEEP_MAX) this.out = Buffer.allocUnsafe(OUT_SIZE);
    this.outLen = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outLen = 0;
    this.jobType = -1;
    if (this.transport) this.transport.destroy();
    else this.socket.destroy();
    this.events.closed(this);
  }

  private onData(d: Buffer): void {
    // The transport reuses its read buffer: keep copies of partial frames.
    this.chunks.push(d);
    this.buffered += d.length;
    try {
      while (!this.closed && this.buffered >= 4) {
        const head = this.peek(4);
        const len = head.readUInt32BE(0);
        if (len > this.opts.maxFrame()) {
          this.events.bad(this, `oversized frame (${len} bytes)`);
          this.close();
          return;
        }
        if (this.buffered < 4 + len) break;
        const frame = this.take(4 + len).subarray(4);
        if (frame[0] === JOB_FRAME_MARK) {
          // Job messages: read in place by their handlers (job-frames.ts).
          if (frame.length < 2 || frame[1] !== BUS_PROTOCOL_VERSION) {
            this.events.bad(this, `unknown protocol version ${String(frame[1])}`);
            this.close();
            return;
          }
          if (!this.authenticated) {
            this.events.bad(this, 'job message before authentication');
            this.close();
            return;
          }
          this.events.jobFrame(this, frame);
          continue;
        }
        let msg: BusMessage;
        try {
          // Decoded byte fields may point into the read buffer: handlers
          // consume them before returning.
          msg = packr.unpack(frame) as BusMessage;
        } catch {
          this.events.bad(this, 'undecodable frame');
          this.close();
          return;
        }
        if (msg === null || typeof msg !== 'object' || typeof msg.t !== 'number' || typeof msg.s !== 'string') {
          this.events.bad(this, 'malformed message');
          this.close();
          return;
        }
        if (msg.v !== BUS_PROTOCOL_VERSION) {
          this.events.bad(this, `unknown protocol version ${String(msg.v)}`);
          this.close();
          return;
        }
        if (!this.authenticated) {
          this.handshake(msg);
          continue;
        }
        this.events.message(this, msg);
      }
    } finally {
      this.events.read(this);
    }
    if (this.buffered === 0 || this.closed) {
      this.chunks = [];
      return;
    }
    // Keep our own copy of the unconsumed part of this read (earlier chunks
    // are copies already), so a large frame costs one copy per read.
    const last = this.chunks[this.chunks.length - 1]!;
    if (last.buffer === d.buffer) this.chunks[this.chunks.length - 1] = Buffer.from(last);
  }

  /** The secret handshake; see the file comment. */
  private handshake(msg: BusMessage): void {
    const secret = this.opts.secret;
    const mac = (role: string, a: Buffer, b: Buffer) =>
      createHmac('sha256', secret).update(role).update(a).update(b).digest();
    const fail = (why: string) => {
      this.events.bad(this, `cluster-secret handshake failed: ${why}`);
      this.close();
    };
    if (this.inbound && msg.t === MsgType.AUTH_HELLO && this.nonce === null) {
      const peerNonce = asBuffer(msg.n);
      if (!peerNonce || peerNonce.length !== 16) return fail('bad nonce');
      this.peerNonce = peerNonce;
      this.nonce = randomBytes(16);
      this.writeNow(
        encodeFrame({ ...this.opts.myHeader(), t: MsgType.AUTH_CHALLENGE, n: this.nonce, h: mac('acceptor', peerNonce, this.nonce) }),
      );
    } else if (!this.inbound && msg.t === MsgType.AUTH_CHALLENGE && this.nonce !== null) {
      const peerNonce = asBuffer(msg.n);
      const proof = asBuffer(msg.h);
      if (!peerNonce || !proof || !equal(proof, mac('acceptor', this.nonce, peerNonce))) return fail('peer does not know the secret');
      this.writeNow(encodeFrame({ ...this.opts.myHeader(), t: MsgType.AUTH_PROOF, h: mac('connector', peerNonce, this.nonce) }));
      this.becomeAuthenticated();
    } else if (this.inbound && msg.t === MsgType.AUTH_PROOF && this.nonce !== null && this.peerNonce !== null) {
      const proof = asBuffer(msg.h);
      if (!proof || !equal(proof, mac('connector', this.nonce, this.peerNonce))) return fail('peer does not know the secret');
      this.becomeAuthenticated();
    } else {
      fail(`unexpected ${MSG_NAMES[msg.t] ?? msg.t} before authentication`);
    }
  }

  private becomeAuthenticated(): void {
    this.authenticated = true;
    this.schedule();
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

/** A copy of a decoded byte field (it may point into the reused read buffer). */
function asBuffer(x: unknown): Buffer | null {
  if (x instanceof Uint8Array) return Buffer.from(x);
  return null;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
