// A direct reader for the bus messages that carry jobs and job IDs (REPLJOB,
// YOURJOBS, GOTJOB, SETACK, ...), the bulk of bus traffic under load.
// msgpackr builds each decoded map key by key, so the objects of a frame
// take many shapes and every later field access goes through V8's slowest
// property paths; on a replica that was the largest single cost of taking a
// job. This reader knows the few keys those messages use and builds objects
// of one fixed shape each: the message, and every job as a WireJob whose
// queue and body are already latin1 strings (decodeJob takes either form).
// Anything else in a frame (gossip, byte fields, unusual value types) makes
// it give up, and the caller decodes the frame with msgpackr as before.
// Otherwise it gives the values msgpackr would give for the same bytes,
// except byte strings in jobs, which come as latin1 strings.
import type { BusMessage } from './messages.js';
import type { WireJob } from '../core/job-codec.js';

/** Thrown inside the reader when the frame needs msgpackr; never escapes. */
const GIVE_UP = new Error('frame needs the general decoder');

class Reader {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;

  byte(): number {
    if (this.pos >= this.end) throw GIVE_UP;
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** `n` bytes are present from pos. */
  need(n: number): void {
    if (this.pos + n > this.end) throw GIVE_UP;
  }

  number(): number {
    const t = this.byte();
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    switch (t) {
      case 0xcc:
        return this.byte();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xd0:
        return (this.byte() << 24) >> 24;
      case 0xd1:
        return (this.u16() << 16) >> 16;
      case 0xd2:
        return this.u32() | 0;
      case 0xcb: {
        this.need(8);
        const v = this.buf.readDoubleBE(this.pos);
        this.pos += 8;
        return v;
      }
      default:
        throw GIVE_UP;
    }
  }

  /** A msgpack str (UTF-8). */
  string(): string {
    const t = this.byte();
    const n = t >= 0xa0 && t <= 0xbf ? t & 0x1f : t === 0xd9 ? this.byte() : t === 0xda ? this.u16() : -1;
    if (n < 0) throw GIVE_UP;
    this.need(n);
    const s = this.buf.utf8Slice(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A msgpack bin as a latin1 string (one char per byte). */
  latin1(): string {
    const t = this.byte();
    const n = t === 0xc4 ? this.byte() : t === 0xc5 ? this.u16() : t === 0xc6 ? this.u32() : -1;
    if (n < 0) throw GIVE_UP;
    this.need(n);
    const s = this.buf.latin1Slice(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** An array header: the element count. */
  arrayLength(): number {
    const t = this.byte();
    if (t >= 0x90 && t <= 0x9f) return t & 0x0f;
    if (t === 0xdc) return this.u16();
    if (t === 0xdd) return this.u32();
    throw GIVE_UP;
  }

  /** A map header: the entry count (fixmap or map16). */
  mapLength(): number {
    const t = this.byte();
    if (t >= 0x80 && t <= 0x8f) return t & 0x0f;
    if (t === 0xde) return this.u16();
    throw GIVE_UP;
  }

  /**
   * A map key of 1 to 3 ASCII characters (all our keys), packed into one
   * number so it is matched without making a string: 'a' → 0x61, 'id' → 0x6964.
   */
  key(): number {
    const t = this.byte();
    const n = t - 0xa0;
    if (n < 1 || n > 3) throw GIVE_UP;
    this.need(n);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + n;
    let k = b[p]!;
    for (let i = 1; i < n; i++) k = (k << 8) | b[p + i]!;
    return k;
  }

  strings(): string[] {
    const n = this.arrayLength();
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.string());
    return out;
  }

  job(): WireJob {
    const w: WireJob = {
      id: '',
      q: '',
      b: '',
      r: 0,
      ct: 0,
      cs: 0,
      e: 0,
      d: 0,
      rt: 0,
      n: 0,
      dl: 0,
      nd: [],
      st: undefined,
      fl: undefined,
      qt: undefined,
      u: undefined,
    };
    // Fields absent from the map must stay absent, as msgpackr gives them:
    // decodeJob rejects a job that lacks a required one.
    let seen = 0;
    const entries = this.mapLength();
    for (let i = 0; i < entries; i++) {
      const k = this.key();
      switch (k) {
        case K_ID:
          w.id = this.string();
          seen |= 1;
          break;
        case K_Q:
          w.q = this.latin1();
          seen |= 2;
          break;
        case K_B:
          w.b = this.latin1();
          seen |= 4;
          break;
        case K_R:
          w.r = this.number();
          seen |= 8;
          break;
        case K_CT:
          w.ct = this.number();
          seen |= 16;
          break;
        case K_CS:
          w.cs = this.number();
          seen |= 32;
          break;
        case K_E:
          w.e = this.number();
          seen |= 64;
          break;
        case K_D:
          w.d = this.number();
          seen |= 128;
          break;
        case K_RT:
          w.rt = this.number();
          seen |= 256;
          break;
        case K_N:
          w.n = this.number();
          seen |= 512;
          break;
        case K_DL:
          w.dl = this.number();
          seen |= 1024;
          break;
        case K_ND:
          w.nd = this.strings();
          seen |= 2048;
          break;
        case K_ST:
          w.st = this.number();
          break;
        case K_FL:
          w.fl = this.number();
          break;
        case K_QT:
          w.qt = this.number();
          break;
        case K_U:
          w.u = this.latin1();
          break;
        default:
          throw GIVE_UP;
      }
    }
    if (seen !== 4095) throw GIVE_UP;
    return w;
  }
}

function key(s: string): number {
  let k = 0;
  for (let i = 0; i < s.length; i++) k = (k << 8) | s.charCodeAt(i);
  return k;
}

const K_V = key('v');
const K_S = key('s');
const K_P = key('p');
const K_F = key('f');
const K_T = key('t');
const K_M = key('m');
const K_A = key('a');
const K_ID = key('id');
const K_IDS = key('ids');
const K_J = key('j');
const K_JS = key('js');
const K_Q = key('q');
const K_B = key('b');
const K_R = key('r');
const K_CT = key('ct');
const K_CS = key('cs');
const K_E = key('e');
const K_D = key('d');
const K_RT = key('rt');
const K_N = key('n');
const K_DL = key('dl');
const K_ND = key('nd');
const K_ST = key('st');
const K_FL = key('fl');
const K_QT = key('qt');
const K_U = key('u');

const reader = new Reader();

/**
 * The message in `frame` (without its length prefix) when it is one of the
 * job or job-ID messages, else undefined: decode it with msgpackr then.
 * The strings it returns are copies; it keeps no reference to `frame`.
 */
export function readJobFrame(frame: Buffer): BusMessage | undefined {
  const r = reader;
  r.buf = frame;
  r.pos = 0;
  r.end = frame.length;
  try {
    const msg: BusMessage = { v: -1, s: '', p: 0, f: 0, t: -1, m: undefined, a: undefined, id: undefined, ids: undefined, j: undefined, js: undefined };
    let header = 0;
    const entries = r.mapLength();
    for (let i = 0; i < entries; i++) {
      switch (r.key()) {
        case K_V:
          msg.v = r.number();
          header |= 1;
          break;
        case K_S:
          msg.s = r.string();
          header |= 2;
          break;
        case K_P:
          msg.p = r.number();
          header |= 4;
          break;
        case K_F:
          msg.f = r.number();
          header |= 8;
          break;
        case K_T:
          msg.t = r.number();
          header |= 16;
          break;
        case K_M:
          msg.m = r.number();
          break;
        case K_A:
          msg.a = r.number();
          break;
        case K_ID:
          msg.id = r.string();
          break;
        case K_IDS:
          msg.ids = r.strings();
          break;
        case K_J:
          msg.j = r.job();
          break;
        case K_JS: {
          const n = r.arrayLength();
          const js: WireJob[] = [];
          for (let k = 0; k < n; k++) js.push(r.job());
          msg.js = js;
          break;
        }
        default:
          return undefined;
      }
    }
    // Trailing bytes or a missing header field: let msgpackr judge the frame.
    if (r.pos !== r.end || header !== 31) return undefined;
    return msg;
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    throw e;
  } finally {
    r.buf = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);
