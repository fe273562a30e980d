// A small msgpack writer for the hot paths (bus frames, persistence
// records): values are written into one reused buffer, map keys are encoded
// once, and only unusual values go through msgpackr. The output is plain
// msgpack that msgpackr reads back as the same values (maps as objects,
// byte strings as Buffers, integers beyond 32 bits as doubles).
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

// Writers of single values at a position of a buffer with room for them;
// each returns the position after what it wrote. MsgWriter's methods make
// room and call them; writeJob makes room for a whole job once and calls
// them directly.

/** A length with its type byte: fix form (`fix | n` below `fixMax`), else 8/16/32-bit forms. Up to 5 bytes. */
export function putLength(buf: Buffer, p: number, n: number, fix: number, fixMax: number, t8: number, t16: number, t32: number): number {
  if (fix >= 0 && n < fixMax) {
    buf[p] = fix | n;
    return p + 1;
  }
  if (t8 >= 0 && n < 0x100) {
    buf[p] = t8;
    buf[p + 1] = n;
    return p + 2;
  }
  if (n < 0x10000) {
    buf[p] = t16;
    buf.writeUInt16BE(n, p + 1);
    return p + 3;
  }
  buf[p] = t32;
  buf.writeUInt32BE(n, p + 1);
  return p + 5;
}

/** A number: the smallest integer form, or a double. Up to 9 bytes. */
export function putNumber(buf: Buffer, p: number, v: number): number {
  if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) {
    if (v < 128) {
      buf[p] = v;
      return p + 1;
    }
    if (v < 0x10000) {
      buf[p] = 0xcd;
      buf.writeUInt16BE(v, p + 1);
      return p + 3;
    }
    buf[p] = 0xce;
    buf.writeUInt32BE(v, p + 1);
    return p + 5;
  }
  if (Number.isInteger(v) && v < 0 && v >= -0x80000000) {
    buf[p] = 0xd2;
    buf.writeInt32BE(v, p + 1);
    return p + 5;
  }
  // Larger integers (times in ms) are exact as doubles; msgpackr reads them as numbers.
  buf[p] = 0xcb;
  buf.writeDoubleBE(v, p + 1);
  return p + 9;
}

/** Bytes as they are (encoded keys): a loop beats TypedArray.set's fixed cost for a few bytes. */
export function putRaw(buf: Buffer, p: number, b: Uint8Array): number {
  const n = b.byteLength;
  if (n <= 16) {
    for (let i = 0; i < n; i++) buf[p + i] = b[i]!;
  } else {
    buf.set(b, p);
  }
  return p + n;
}

/** A latin1 string (one char per byte) as a msgpack byte string. Up to 5 + length bytes. */
export function putLatin1Bytes(buf: Buffer, p: number, s: string): number {
  p = putLength(buf, p, s.length, -1, 0, 0xc4, 0xc5, 0xc6);
  return p + buf.latin1Write(s, p);
}

/** src[from, from + n) as a msgpack byte string. Up to 5 + n bytes. */
export function putBytes(buf: Buffer, p: number, src: Uint8Array, from: number, n: number): number {
  p = putLength(buf, p, n, -1, 0, 0xc4, 0xc5, 0xc6);
  if (n <= 16) {
    for (let i = 0; i < n; i++) buf[p + i] = src[from + i]!;
  } else {
    buf.set(src.subarray(from, from + n), p);
  }
  return p + n;
}

/**
 * A msgpack string, for strings that are mostly ASCII (IDs): written with
 * a header for one byte per char, and written again with the right header
 * in the rare case the UTF-8 form is longer. Up to 5 + 3 * length bytes.
 */
export function putString(buf: Buffer, p: number, s: string): number {
  const at = p;
  p = putLength(buf, p, s.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
  const n = buf.utf8Write(s, p);
  if (n === s.length) return p + n;
  p = putLength(buf, at, n, 0xa0, 32, 0xd9, 0xda, 0xdb);
  return p + buf.utf8Write(s, p);
}

/** A msgpack writer into one reused buffer (frames are copied out of it). */
export class MsgWriter {
  buf: Buffer;
  pos = 0;
  private readonly keys = new Map<string, Buffer>();

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** A copy of what was written, from `from` on. */
  copy(from = 0): Buffer {
    const out = Buffer.allocUnsafe(this.pos - from);
    this.buf.copy(out, 0, from, this.pos);
    return out;
  }

  arrayHeader(n: number): void {
    this.lengthHeader(n, 0x90, 16, -1, 0xdc, 0xdd);
  }

  /** A latin1 string (one char per byte) as a msgpack byte string. */
  latin1Bytes(s: string): void {
    this.reserve(5 + s.length);
    this.pos = putLatin1Bytes(this.buf, this.pos, s);
  }

  /** A string as a msgpack string (UTF-8). */
  string(s: string): void {
    this.reserve(5 + 3 * s.length);
    this.pos = putString(this.buf, this.pos, s);
  }

  /** Makes room for n more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.byteLength);
    this.pos = putRaw(this.buf, this.pos, b);
  }

  /** The msgpack encoding of a map key, to write with bytes() where the key is fixed. */
  static encodedKey(k: string): Buffer {
    return Buffer.from(packr.pack(k));
  }

  key(k: string): void {
    let b = this.keys.get(k);
    if (b === undefined) {
      b = Buffer.from(packr.pack(k));
      if (this.keys.size < 1000) this.keys.set(k, b);
    }
    this.bytes(b);
  }

  mapHeader(n: number): void {
    this.lengthHeader(n, 0x80, 16, -1, 0xde, 0xdf);
  }

  value(v: unknown): void {
    if (typeof v === 'number') this.number(v);
    else if (typeof v === 'function') (v as (w: MsgWriter) => void)(this); // writes its own value
    else if (typeof v === 'string') this.string(v);
    else if (v instanceof Uint8Array) {
      this.lengthHeader(v.byteLength, -1, 0, 0xc4, 0xc5, 0xc6);
      this.bytes(v);
    } else if (Array.isArray(v)) {
      this.lengthHeader(v.length, 0x90, 16, -1, 0xdc, 0xdd);
      for (const x of v) this.value(x);
    } else if (v === null || v === undefined) {
      this.byte(0xc0);
    } else if (typeof v === 'boolean') {
      this.byte(v ? 0xc3 : 0xc2);
    } else if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      const o = v as Record<string, unknown>;
      let n = 0;
      for (const k in o) if (o[k] !== undefined) n++;
      this.mapHeader(n);
      for (const k in o) {
        if (o[k] === undefined) continue;
        this.key(k);
        this.value(o[k]);
      }
    } else {
      this.bytes(packr.pack(v));
    }
  }

  private byte(b: number): void {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  number(v: number): void {
    this.reserve(9);
    this.pos = putNumber(this.buf, this.pos, v);
  }

  private lengthHeader(n: number, fix: number, fixMax: number, t8: number, t16: number, t32: number): void {
    this.reserve(5);
    this.pos = putLength(this.buf, this.pos, n, fix, fixMax, t8, t16, t32);
  }
}
