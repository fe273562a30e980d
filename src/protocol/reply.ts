// RESP reply encoder. Each connection writes its replies into one growing
// buffer during an event-loop turn; the connection then hands one Buffer to
// the socket. Strings from clients are kept as latin1 (one char per byte), so
// writing them back with 'latin1' is byte for byte.

/**
 * Writes a latin1 string at buf[at] and returns its length. Short ones
 * (+OK, +PONG, a queue name) as byte stores; longer ones through
 * latin1Write, which skips the argument checks of Buffer.write (a loop over
 * a 40-byte job ID measured slower than that call).
 */
function putLatin1(buf: Buffer, s: string, at: number): number {
  const n = s.length;
  if (n > 16) return buf.latin1Write(s, at, n);
  for (let i = 0; i < n; i++) buf[at + i] = s.charCodeAt(i);
  return n;
}

function putCrlf(buf: Buffer, at: number): void {
  buf[at] = 13;
  buf[at + 1] = 10;
}

/** A reply buffer larger than this is lent from the pool, never kept by one connection. */
export const OWN_BUFFER_MAX = 64 * 1024;
const POOL_MIN_SHIFT = 17; // 128 KiB
const POOL_MAX_SHIFT = 26; // 64 MiB
/** Bytes of idle buffers the pool keeps; what is returned beyond it is left to the GC. */
const POOL_KEEP_BYTES = 64 * 1024 * 1024;

/**
 * Large buffers shared by every connection: for replies, and for requests
 * that span reads (request.ts). A 64 KB job body made each reply allocate a
 * fresh 128 KiB buffer (mmap'd by malloc at that size: page faults on every
 * reply, freed only by a GC), which halved GETJOB's rate; replies are
 * written at the end of a turn, so a few buffers serve everyone. Sizes are
 * powers of two; larger ones get a buffer of their own.
 */
class LargeBufferPool {
  private readonly free: Buffer[][] = [];
  private keptBytes = 0;

  /** A buffer of at least `size` bytes (size > OWN_BUFFER_MAX: smaller ones come from the pool's smallest). */
  take(size: number): Buffer {
    let shift = POOL_MIN_SHIFT;
    while (1 << shift < size) shift++;
    if (shift > POOL_MAX_SHIFT) return Buffer.allocUnsafeSlow(size);
    const list = this.free[shift];
    const b = list?.pop();
    if (b !== undefined) {
      this.keptBytes -= b.length;
      return b;
    }
    return Buffer.allocUnsafeSlow(1 << shift);
  }

  /** Gives back a buffer take() returned, once nothing refers to its bytes any more. */
  give(b: Buffer): void {
    const shift = 31 - Math.clz32(b.length);
    if (b.length !== 1 << shift || shift < POOL_MIN_SHIFT || shift > POOL_MAX_SHIFT) return;
    if (this.keptBytes + b.length > POOL_KEEP_BYTES) return;
    (this.free[shift] ??= []).push(b);
    this.keptBytes += b.length;
  }

  /** Bytes held idle (INFO memory). */
  get idleBytes(): number {
    return this.keptBytes;
  }
}

export const largeBuffers = new LargeBufferPool();

export class ReplyBuffer {
  private buf: Buffer;
  /** The connection's own buffer (at most OWN_BUFFER_MAX), kept while a lent one is in use. */
  private own: Buffer;
  len = 0;
  /** The last view handed to flushTo's writer (see there). */
  private view: Buffer | null = null;

  constructor(initial = 256) {
    this.buf = this.own = Buffer.allocUnsafe(initial);
  }

  /** Back to the own buffer; a lent one goes back to the pool unless the writer still holds it. */
  private reset(stillHeld: boolean): void {
    this.len = 0;
    if (this.buf !== this.own) {
      if (!stillHeld) largeBuffers.give(this.buf);
      this.buf = this.own;
    } else if (stillHeld) {
      this.buf = this.own = Buffer.allocUnsafe(256);
    }
  }

  get empty(): boolean {
    return this.len === 0;
  }

  /** Returns the bytes written so far (a copy the caller owns) and resets. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.reset(false);
    return out;
  }

  /**
   * Hands the bytes written so far to `write` and resets. When `write`
   * returns false it kept a reference: a lent buffer then goes back to the
   * pool through the `release` it was given (called once the bytes are
   * out); an own buffer is replaced.
   */
  flushTo(write: (data: Buffer, release: (() => void) | null) => boolean): number {
    const n = this.len;
    if (n === 0) return 0;
    // Replies of a client are often the same length: their view is kept.
    let view = this.view;
    if (view === null || n !== view.length || view.buffer !== this.buf.buffer || view.byteOffset !== this.buf.byteOffset) {
      view = this.buf.subarray(0, n);
      this.view = view;
    }
    const lent = this.buf !== this.own ? this.buf : null;
    const kept = !write(view, lent === null ? null : () => largeBuffers.give(lent));
    this.reset(kept);
    return n;
  }

  private ensure(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    const wasLent = this.buf !== this.own;
    let bigger: Buffer;
    if (need > OWN_BUFFER_MAX) {
      bigger = largeBuffers.take(need);
    } else {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      bigger = this.own = Buffer.allocUnsafe(size);
    }
    this.buf.copy(bigger, 0, 0, this.len);
    if (wasLent) largeBuffers.give(this.buf);
    this.buf = bigger;
  }

  raw(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }

  /** +text\r\n (text must not contain CR/LF). */
  status(text: string): void {
    this.ensure(text.length + 3);
    const buf = this.buf;
    buf[this.len++] = 0x2b;
    this.len += putLatin1(buf, text, this.len);
    putCrlf(buf, this.len);
    this.len += 2;
  }

  /** -CODE message\r\n; `text` includes the code word (e.g. "ERR syntax error"). */
  error(text: string): void {
    const clean = text.replace(/[\r\n]+/g, ' ');
    this.ensure(clean.length + 3);
    const buf = this.buf;
    buf[this.len++] = 0x2d;
    this.len += putLatin1(buf, clean, this.len);
    putCrlf(buf, this.len);
    this.len += 2;
  }

  /** :n\r\n */
  int(n: number): void {
    this.prefixed(0x3a, n);
  }

  /** An integer given as decimal digits (for values beyond 2^53, like ctime). */
  intDigits(digits: string): void {
    this.ensure(digits.length + 3);
    this.buf[this.len++] = 0x3a;
    this.len += putLatin1(this.buf, digits, this.len);
    putCrlf(this.buf, this.len);
    this.len += 2;
  }

  /** *n\r\n */
  arrayLen(n: number): void {
    this.prefixed(0x2a, n);
  }

  /** $len\r\ndata\r\n for a latin1 string, or $-1\r\n for null. */
  bulk(s: string | null): void {
    if (s === null) {
      this.nullBulk();
      return;
    }
    const n = s.length;
    this.ensure(n + 16);
    this.prefixed(0x24, n);
    this.len += putLatin1(this.buf, s, this.len);
    putCrlf(this.buf, this.len);
    this.len += 2;
  }

  /** A bulk string holding the decimal form of n (QSCAN cursors, HELLO ports). */
  bulkInt(n: number): void {
    this.bulk(String(n));
  }

  bulkBuffer(b: Buffer): void {
    this.ensure(b.length + 16);
    this.prefixed(0x24, b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
    putCrlf(this.buf, this.len);
    this.len += 2;
  }

  /** $len\r\ndata\r\n for src[from, from + len) (a job body in the store's arena). */
  bulkBytes(src: Uint8Array, from: number, len: number): void {
    this.ensure(len + 16);
    this.prefixed(0x24, len);
    const buf = this.buf;
    if (len <= 32) {
      for (let i = 0; i < len; i++) buf[this.len + i] = src[from + i]!;
    } else {
      buf.set(src.subarray(from, from + len), this.len);
    }
    this.len += len;
    putCrlf(buf, this.len);
    this.len += 2;
  }

  /**
   * Starts a bulk string of `len` bytes the caller writes itself into
   * `buffer` at the returned position (an ID decoded straight from where it
   * is kept); endBulk(len) finishes it.
   */
  beginBulk(len: number): number {
    this.ensure(len + 16);
    this.prefixed(0x24, len);
    return this.len;
  }

  endBulk(len: number): void {
    this.len += len;
    putCrlf(this.buf, this.len);
    this.len += 2;
  }

  /** The buffer beginBulk's position is in (valid until the next write). */
  get buffer(): Buffer {
    return this.buf;
  }

  nullBulk(): void {
    this.ensure(5);
    this.len += putLatin1(this.buf, '$-1\r\n', this.len);
  }

  nullArray(): void {
    this.ensure(5);
    this.len += putLatin1(this.buf, '*-1\r\n', this.len);
  }

  ok(): void {
    this.ensure(5);
    this.len += putLatin1(this.buf, '+OK\r\n', this.len);
  }

  /** Writes `<type><n>\r\n`; digits of non-negative safe integers by hand. */
  private prefixed(type: number, n: number): void {
    this.ensure(24);
    const buf = this.buf;
    buf[this.len++] = type;
    if (n < 0 || !Number.isSafeInteger(n)) {
      this.len += putLatin1(buf, String(n), this.len);
    } else if (n < 10) {
      buf[this.len++] = 48 + n;
    } else {
      let digits = 0;
      for (let x = n; x > 0; x = Math.floor(x / 10)) digits++;
      let p = this.len + digits - 1;
      for (let x = n; x > 0; x = Math.floor(x / 10)) buf[p--] = 48 + (x % 10);
      this.len += digits;
    }
    putCrlf(buf, this.len);
    this.len += 2;
  }
}
