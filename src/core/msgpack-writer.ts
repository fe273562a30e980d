// A small msgpack writer for the hot paths (bus frames, persistence
// records): values are written into one reused buffer, map keys are encoded
// once, and only unusual values go through msgpackr. The output is plain
// msgpack that msgpackr reads back as the same values (maps as objects,
// byte strings as Buffers, integers beyond 32 bits as doubles).
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

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
    this.lengthHeader(s.length, -1, 0, 0xc4, 0xc5, 0xc6);
    this.ensure(s.length);
    this.pos += this.buf.latin1Write(s, this.pos);
  }

  /** A string as a msgpack string (UTF-8). */
  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.lengthHeader(n, 0xa0, 32, 0xd9, 0xda, 0xdb);
    this.ensure(n);
    this.pos += this.buf.utf8Write(s, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  bytes(b: Uint8Array): void {
    const n = b.byteLength;
    this.ensure(n);
    if (n <= 16) {
      // A loop beats TypedArray.set's fixed cost for a few bytes (keys).
      const buf = this.buf;
      for (let i = 0; i < n; i++) buf[this.pos + i] = b[i]!;
    } else {
      this.buf.set(b, this.pos);
    }
    this.pos += n;
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
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  number(v: number): void {
    this.ensure(9);
    const buf = this.buf;
    if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) {
      if (v < 128) buf[this.pos++] = v;
      else if (v < 0x10000) {
        buf[this.pos++] = 0xcd;
        buf.writeUInt16BE(v, this.pos);
        this.pos += 2;
      } else {
        buf[this.pos++] = 0xce;
        buf.writeUInt32BE(v, this.pos);
        this.pos += 4;
      }
    } else if (Number.isInteger(v) && v < 0 && v >= -0x80000000) {
      buf[this.pos++] = 0xd2;
      buf.writeInt32BE(v, this.pos);
      this.pos += 4;
    } else {
      // Larger integers (times in ms) are exact as doubles; msgpackr reads them as numbers.
      buf[this.pos++] = 0xcb;
      buf.writeDoubleBE(v, this.pos);
      this.pos += 8;
    }
  }

  /** A length with its type byte: fix form (`fix | n` below `fixMax`), else 8/16/32-bit forms. */
  private lengthHeader(n: number, fix: number, fixMax: number, t8: number, t16: number, t32: number): void {
    this.ensure(5);
    const buf = this.buf;
    if (fix >= 0 && n < fixMax) buf[this.pos++] = fix | n;
    else if (t8 >= 0 && n < 0x100) {
      buf[this.pos++] = t8;
      buf[this.pos++] = n;
    } else if (n < 0x10000) {
      buf[this.pos++] = t16;
      buf.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      buf[this.pos++] = t32;
      buf.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }
}
