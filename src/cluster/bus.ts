// The cluster bus transport: TCP on the client port + cluster-port-offset.
// A frame is a 4-byte big-endian length and a msgpackr-encoded message whose
// header carries the protocol version, the message type, the sender's node
// ID, client port and flags. A bad, unknown-version or oversized frame
// closes that link (logged); the process goes on.
//
// With cluster-secret set, every link starts with a mutual challenge: each
// side proves it knows the secret with an HMAC over both sides' nonces, so
// the secret never travels. Until proven, nothing else is accepted.
import net from 'node:net';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import { wrapSocket, type Transport } from '../protocol/transport.js';
import { MsgWriter } from '../core/msgpack-writer.js';
import { readJobFrame } from './frame-reader.js';
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
  /** The messages of one read were handled. */
  read(link: Link): void;
  closed(link: Link): void;
  /** A protocol violation, logged by the owner. */
  bad(link: Link, reason: string): void;
}

/** Links with frames waiting to be written at the end of this event-loop turn. */
const dirtyLinks = new Set<Link>();
let flushScheduled = false;
/** Called at the end of the turn before links are written: senders that batch messages send them here. */
const beforeFlush = new Set<() => void>();

function flushLinks(): void {
  flushScheduled = false;
  for (const f of beforeFlush) f();
  const links = [...dirtyLinks];
  dirtyLinks.clear();
  for (const l of links) l.flush();
}

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushLinks);
}

/**
 * Runs `f` at the end of every event-loop turn in which `requestTurnEnd`
 * was called, before the links write. Returns a function that unregisters it.
 */
export function atTurnEnd(f: () => void): () => void {
  beforeFlush.add(f);
  return () => beforeFlush.delete(f);
}

export function requestTurnEnd(): void {
  scheduleFlush();
}

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
  /** Frames held until the peer proved it knows the secret. */
  private outQueue: Buffer[] = [];
  /** Frames to write at the end of this turn (or once connected). */
  private pending: Buffer[] = [];

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
          this.writeRaw(encodeFrame({ ...opts.myHeader(), t: MsgType.AUTH_HELLO, n: this.nonce }));
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

  get remoteAddress(): string {
    return (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  }

  /** Our own address on this connection, as the peer sees it. */
  get localAddress(): string {
    return (this.socket.localAddress ?? '').replace(/^::ffff:/, '');
  }

  send(frame: Buffer): void {
    if (this.closed) return;
    if (!this.authenticated) {
      this.outQueue.push(frame);
      return;
    }
    this.writeRaw(frame);
  }

  private writeRaw(frame: Buffer): void {
    if (this.closed) return;
    this.pending.push(frame);
    this.schedule();
  }

  private schedule(): void {
    if (this.transport === null || this.pending.length === 0) return;
    dirtyLinks.add(this);
    scheduleFlush();
  }

  /** Writes the frames of this turn at once. */
  flush(): void {
    if (this.closed || this.transport === null || this.pending.length === 0) return;
    const frames = this.pending;
    this.pending = [];
    this.transport.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outQueue = [];
    this.pending = [];
    dirtyLinks.delete(this);
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
        let msg: BusMessage;
        try {
          // Decoded byte fields may point into the read buffer: handlers
          // consume them before returning.
          msg = readJobFrame(frame) ?? (packr.unpack(frame) as BusMessage);
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
      this.writeRaw(
        encodeFrame({ ...this.opts.myHeader(), t: MsgType.AUTH_CHALLENGE, n: this.nonce, h: mac('acceptor', peerNonce, this.nonce) }),
      );
    } else if (!this.inbound && msg.t === MsgType.AUTH_CHALLENGE && this.nonce !== null) {
      const peerNonce = asBuffer(msg.n);
      const proof = asBuffer(msg.h);
      if (!peerNonce || !proof || !equal(proof, mac('acceptor', this.nonce, peerNonce))) return fail('peer does not know the secret');
      this.writeRaw(encodeFrame({ ...this.opts.myHeader(), t: MsgType.AUTH_PROOF, h: mac('connector', peerNonce, this.nonce) }));
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
    const queued = this.outQueue;
    this.outQueue = [];
    for (const f of queued) this.writeRaw(f);
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
