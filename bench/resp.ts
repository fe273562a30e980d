// Minimal RESP2 encoder and incremental reply parser for the load generator.
//
// Why not ioredis / redis-parser: the generator shares a 2-core machine with
// the server under test, so every microsecond it spends per reply is taken
// from the measurement. This parser walks bytes by hand (no indexOf calls for
// short lines, no intermediate objects) and hands each complete reply to a
// callback. Bulk strings come back as latin1 strings: job ids and bodies are
// ASCII, and short latin1 strings are cheap for V8 to create.

/** An error reply (-ERR ...). Kept as a value, not thrown: the generator counts them. */
export class RespError {
  constructor(readonly message: string) {}
}

export type Reply = string | number | null | RespError | Reply[];

const CR = 13;

/** Encodes one command as a RESP multibulk request. */
export function encode(args: readonly (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'latin1');
    parts.push(Buffer.from(`$${b.length}\r\n`, 'latin1'), b, Buffer.from('\r\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Marker returned by the internal parse step when the buffer ends mid-reply. */
const INCOMPLETE = Symbol('incomplete');
type Parsed = Reply | typeof INCOMPLETE;

/**
 * Incremental parser: feed() it socket chunks, it calls onReply once per
 * complete top-level reply, in order. A reply split across chunks is parsed
 * again from its start once more bytes arrive; replies here are small (or, for
 * drains, a few hundred KB at most) so that costs little and keeps the code
 * free of resumable state.
 */
export class ReplyParser {
  private rest: Buffer | null = null;
  /** Cursor of the parse in progress. */
  private p = 0;

  constructor(private readonly onReply: (r: Reply) => void) {}

  feed(chunk: Buffer): void {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    let start = 0;
    const len = buf.length;
    while (start < len) {
      this.p = start;
      const r = this.parse(buf);
      if (r === INCOMPLETE) {
        // Copy: the caller may reuse the chunk's memory for the next read.
        this.rest = Buffer.from(buf.subarray(start));
        return;
      }
      start = this.p;
      this.onReply(r);
    }
  }

  /** Parses an integer line at this.p (after the type byte); -Infinity if incomplete. */
  private int(buf: Buffer): number {
    let p = this.p;
    const len = buf.length;
    let neg = false;
    if (p < len && buf[p] === 45 /* - */) {
      neg = true;
      p++;
    }
    let n = 0;
    while (p < len) {
      const c = buf[p]!;
      if (c === CR) {
        if (p + 1 >= len) return -Infinity;
        this.p = p + 2;
        return neg ? -n : n;
      }
      n = n * 10 + (c - 48);
      p++;
    }
    return -Infinity;
  }

  /** Reads a line at this.p as a latin1 string; null if incomplete. */
  private line(buf: Buffer): string | null {
    const s = this.p;
    const len = buf.length;
    for (let p = s; p < len; p++) {
      if (buf[p] === CR) {
        if (p + 1 >= len) return null;
        this.p = p + 2;
        return buf.latin1Slice(s, p);
      }
    }
    return null;
  }

  private parse(buf: Buffer): Parsed {
    if (this.p >= buf.length) return INCOMPLETE;
    const type = buf[this.p++];
    switch (type) {
      case 43 /* + */: {
        // The two status replies seen at high rates come back as constants, not new strings.
        const p = this.p;
        if (p + 5 < buf.length && buf[p] === 80 && buf[p + 1] === 79 && buf[p + 2] === 78 && buf[p + 3] === 71 && buf[p + 4] === CR) {
          this.p = p + 6;
          return 'PONG';
        }
        if (p + 3 < buf.length && buf[p] === 79 && buf[p + 1] === 75 && buf[p + 2] === CR) {
          this.p = p + 4;
          return 'OK';
        }
        const l = this.line(buf);
        return l === null ? INCOMPLETE : l;
      }
      case 45 /* - */: {
        const l = this.line(buf);
        return l === null ? INCOMPLETE : new RespError(l);
      }
      case 58 /* : */: {
        const n = this.int(buf);
        return n === -Infinity ? INCOMPLETE : n;
      }
      case 36 /* $ */: {
        const n = this.int(buf);
        if (n === -Infinity) return INCOMPLETE;
        if (n < 0) return null;
        const s = this.p;
        if (s + n + 2 > buf.length) return INCOMPLETE;
        this.p = s + n + 2;
        return buf.latin1Slice(s, s + n);
      }
      case 42 /* * */: {
        const n = this.int(buf);
        if (n === -Infinity) return INCOMPLETE;
        if (n < 0) return null;
        const arr: Reply[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const r = this.parse(buf);
          if (r === INCOMPLETE) return INCOMPLETE;
          arr[i] = r;
        }
        return arr;
      }
      default:
        throw new Error(`RESP protocol error: unexpected byte ${type} at ${this.p - 1}`);
    }
  }
}
