// Byte transport for client connections and bus links.
//
// Node's stream machinery (Readable push/emit, Writable queues) costs more
// CPU per request than everything else a command does; on a 2-core machine
// that decides throughput. So on Node versions that expose the TCP handle
// internals (process.binding('stream_wrap'), stable since Node 12), a socket
// is driven directly through its handle: reads land in one shared buffer,
// and a reply written synchronously by the kernel lets the caller reuse its
// buffer. Where the internals are missing, the same interface runs on the
// public socket API. A TLS socket, once its handshake is done, is driven the
// same way: its handle (TLSWrap) is a stream handle too, whose reads are
// already decrypted and whose writes are encrypted in C++; skipping the
// TLSSocket stream gave TLS clients 14-17% more requests a second.
import type net from 'node:net';

export interface Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  /** Bytes accepted but not yet handed to the kernel. */
  readonly pendingWrite: number;
  /**
   * Writes `data`. Returns true when the kernel took all of it at once, so
   * the caller may reuse `data`'s memory; false means the transport keeps a
   * reference until the write completes, and then calls `release` if given
   * (also when the connection closed first).
   */
  write(data: Buffer, release?: (() => void) | null): boolean;
  /** Stops/resumes reading (backpressure, blocked clients). */
  pause(): void;
  resume(): void;
  /**
   * Holds reading for a short while apart from pause/resume (the node lets
   * a burst of new connections in first); a no-op where unsupported.
   */
  hold(on: boolean): void;
  /** Closes once pending writes are out. */
  end(): void;
  /** Closes now. */
  destroy(): void;
  /**
   * Starts delivering data: `onData` gets `length` bytes at the start of
   * `data`, valid only during the call (the read buffer is reused, and no
   * view is made per read); copy what must outlive it. `onEof` runs when
   * the peer has finished sending, before the transport closes: replies
   * still owed can be written then.
   */
  start(onData: (data: Buffer, length: number) => void, onClose: () => void, onEof?: () => void): void;
}

interface StreamBinding {
  WriteWrap: new () => WriteReq;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
  streamBaseState: Int32Array;
}

interface WriteReq {
  handle: unknown;
  oncomplete: (status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  /** The writer's callback for when `buffer` is no longer needed. */
  release: (() => void) | null;
}

interface TcpHandle {
  onread: (this: TcpHandle, ab?: ArrayBuffer) => unknown;
  useUserBuffer(buf: Uint8Array): void;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, data: Buffer): number;
  writeQueueSize: number;
}

let binding: StreamBinding | null = null;
let UV_EOF = -4095;
try {
  const p = process as unknown as { binding(name: string): unknown };
  binding = p.binding('stream_wrap') as StreamBinding;
  UV_EOF = (p.binding('uv') as { UV_EOF: number }).UV_EOF;
  if (typeof binding.WriteWrap !== 'function' || !(binding.streamBaseState instanceof Int32Array)) binding = null;
} catch {
  binding = null;
}

/**
 * Shared by every raw transport: reads are consumed synchronously. Large
 * enough that a request with a 64 KB body usually arrives in one read,
 * so it is not first copied aside to wait for its rest (+15% such ADDJOBs).
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/**
 * A write longer than this goes out a slice at a time, the rest on a later
 * pass of the event loop: the kernel copies what fits in the socket's buffer
 * (megabytes on loopback) on the first attempt, and the replies other
 * clients are due in the same turn should not wait for that.
 */
const WRITE_SLICE = 768 * 1024;

/** Reading pauses while this many bytes wait to be written (a client that does not read). */
const WRITE_HIGH_WATER = 8 * 1024 * 1024;

/** Addresses of a socket, IPv4-mapped IPv6 shown as plain IPv4. */
abstract class SocketAddresses {
  constructor(protected readonly socket: net.Socket) {}
  get remoteAddress(): string {
    return (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  }
  get remotePort(): number {
    return this.socket.remotePort ?? 0;
  }
  get localAddress(): string {
    return (this.socket.localAddress ?? '').replace(/^::ffff:/, '');
  }
}

class RawTransport extends SocketAddresses implements Transport {
  private spareReq: WriteReq | null = null;
  private onData: (data: Buffer, length: number) => void = () => {};
  private onClose: () => void = () => {};
  // Reading stops for any of: a blocked client (paused), a peer that does
  // not read its replies (throttled), a burst of new connections (held).
  private paused = false;
  private throttled = false;
  private held = false;
  private reading = false;
  private ending = false;
  private closed = false;
  // A TLS handle takes one write at a time: later ones wait here until the
  // one in progress completes, then go out as one.
  private readonly oneWriteAtATime: boolean;
  private writing = false;
  private queued: Buffer[] = [];
  private queuedRelease: ((() => void) | null)[] = [];
  private queuedBytes = 0;
  // Rests of sliced writes (see WRITE_SLICE), and what was written after them, in order.
  private later: { data: Buffer; release: (() => void) | null }[] = [];
  private laterBytes = 0;

  constructor(
    socket: net.Socket,
    private readonly handle: TcpHandle,
    private readonly b: StreamBinding,
  ) {
    super(socket);
    this.oneWriteAtATime = (socket as net.Socket & { encrypted?: boolean }).encrypted === true;
  }

  get pendingWrite(): number {
    return this.closed ? 0 : this.handle.writeQueueSize + this.queuedBytes + this.laterBytes;
  }

  start(onData: (data: Buffer, length: number) => void, onClose: () => void, onEof?: () => void): void {
    this.onData = onData;
    this.onClose = onClose;
    const state = this.b.streamBaseState;
    const kNread = this.b.kReadBytesOrError;
    const self = this;
    this.handle.useUserBuffer(READ_BUFFER);
    this.handle.onread = function () {
      const nread = state[kNread]!;
      if (nread > 0) {
        if (!self.closed) self.onData(READ_BUFFER, nread);
        return undefined;
      }
      if (nread === 0) return undefined;
      // EOF or a read error: the peer is gone (after EOF it may still read).
      if (nread === UV_EOF && !self.closed) onEof?.();
      self.destroy();
      return undefined;
    };
    this.socket.once('close', () => this.closedNow());
    this.socket.on('error', () => this.destroy());
    this.updateReading();
  }

  private updateReading(): void {
    const want = !this.paused && !this.throttled && !this.held && !this.closed;
    if (want === this.reading) return;
    this.reading = want;
    if (want) this.handle.readStart();
    else this.handle.readStop();
  }

  write(data: Buffer, release: (() => void) | null = null): boolean {
    if (this.closed || data.length === 0) return true;
    if (this.later.length > 0 || (data.length > WRITE_SLICE && !this.oneWriteAtATime)) {
      if (this.later.length === 0) {
        this.writeNow(data.subarray(0, WRITE_SLICE), null);
        data = data.subarray(WRITE_SLICE);
        setImmediate(this.writeLater);
      }
      this.later.push({ data, release });
      this.laterBytes += data.length;
      this.throttleIfOver();
      return false;
    }
    return this.writeNow(data, release);
  }

  private readonly writeLater = (): void => {
    const later = this.later;
    this.later = [];
    this.laterBytes = 0;
    // A rest still longer than a slice is sliced again, and what follows it waits again.
    for (const w of later) if (this.write(w.data, w.release)) w.release?.();
    this.afterWrite();
  };

  private writeNow(data: Buffer, release: (() => void) | null): boolean {
    if (this.writing) {
      this.queued.push(data);
      this.queuedRelease.push(release);
      this.queuedBytes += data.length;
      this.throttleIfOver();
      return false;
    }
    // A write the kernel takes at once never touches its request object
    // (Node only wraps it when the write has to wait), so one object serves
    // every such write: making one per write cost more than the write's JS.
    let req = this.spareReq;
    if (req === null) {
      req = new this.b.WriteWrap();
      req.handle = this.handle;
      req.async = false;
      req.bytes = 0;
      req.buffer = null;
      req.release = null;
      const r = req;
      req.oncomplete = (status: number) => {
        r.buffer = null;
        const release = r.release;
        r.release = null;
        if (release !== null) release();
        if (status < 0) return this.destroy();
        this.writing = false;
        if (this.queued.length > 0) {
          const queued = this.queued;
          const released = this.queuedRelease;
          this.queued = [];
          this.queuedRelease = [];
          this.queuedBytes = 0;
          if (queued.length === 1) {
            this.write(queued[0]!, released[0]!);
          } else {
            // The bytes are copied: their writers get their memory back now.
            const next = Buffer.concat(queued);
            for (const f of released) f?.();
            this.write(next);
          }
        }
        this.afterWrite();
      };
      this.spareReq = req;
    }
    const err = this.handle.writeBuffer(req, data);
    if (err !== 0) {
      this.destroy();
      return true;
    }
    if (this.b.streamBaseState[this.b.kLastWriteWasAsync]) {
      // The kernel buffer is full: keep the bytes alive until written; the
      // request object now belongs to this write.
      this.spareReq = null;
      req.buffer = data;
      req.release = release;
      req.async = true;
      this.writing = this.oneWriteAtATime;
      this.throttleIfOver();
      return false;
    }
    return true;
  }

  private throttleIfOver(): void {
    if (this.pendingWrite > WRITE_HIGH_WATER && !this.throttled) {
      this.throttled = true;
      this.updateReading();
    }
  }

  private afterWrite(): void {
    if (this.closed) return;
    const pending = this.pendingWrite;
    if (this.throttled && pending < WRITE_HIGH_WATER / 2) {
      this.throttled = false;
      this.updateReading();
    }
    if (this.ending && pending === 0) this.destroy();
  }

  pause(): void {
    if (this.closed) return;
    this.paused = true;
    this.updateReading();
  }

  resume(): void {
    if (this.closed) return;
    this.paused = false;
    this.updateReading();
  }

  hold(on: boolean): void {
    if (this.closed) return;
    this.held = on;
    this.updateReading();
  }

  end(): void {
    if (this.closed) return;
    this.ending = true;
    if (this.pendingWrite === 0) this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    // socket.destroy() closes the handle through Node, which keeps the
    // server's connection count right and emits 'close'.
    this.socket.destroy();
  }

  private closedNow(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }
}

/** The portable implementation on top of the public socket API. */
class StreamTransport extends SocketAddresses implements Transport {
  private closed = false;

  get pendingWrite(): number {
    return this.socket.writableLength;
  }

  start(onData: (data: Buffer, length: number) => void, onClose: () => void, onEof?: () => void): void {
    this.socket.on('data', (d: Buffer) => onData(d, d.length));
    // Before Node's own 'end' listener ends our side too.
    if (onEof) this.socket.prependListener('end', onEof);
    this.socket.on('error', () => this.destroy());
    this.socket.once('close', () => {
      if (this.closed) return;
      this.closed = true;
      onClose();
    });
    this.socket.resume();
  }

  write(data: Buffer, release: (() => void) | null = null): boolean {
    if (this.closed) return true;
    if (release !== null) this.socket.write(data, () => release());
    else this.socket.write(data);
    return false;
  }

  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  hold(): void {
    // Not needed on the portable path.
  }
  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Wraps a connected socket that is not reading yet (accepted with
 * pauseOnConnect, or paused before connecting).
 */
export function wrapSocket(socket: net.Socket): Transport {
  const handle = (socket as unknown as { _handle?: TcpHandle | null })._handle;
  if (
    binding !== null &&
    process.env.DISQUE_PORTABLE_TRANSPORT === undefined &&
    handle &&
    typeof handle.useUserBuffer === 'function' &&
    typeof handle.writeBuffer === 'function'
  ) {
    return new RawTransport(socket, handle, binding);
  }
  return new StreamTransport(socket);
}

export const rawTransportAvailable = binding !== null;
