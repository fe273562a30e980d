// Reads a RESP2 reply back into values: the HTTP API runs commands through
// the node's own command table (src/server/internal-client.ts) and turns
// the reply the command wrote into JSON. Bulk strings stay bytes (job
// bodies may be binary); statuses are strings, errors RespError.

/** An error reply (-ERR ..., -NOREPL ...): `message` is its whole text. */
export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespError';
  }
  /** The code word: ERR, NOREPL, MISCONF... */
  get code(): string {
    const sp = this.message.indexOf(' ');
    return sp < 0 ? this.message : this.message.slice(0, sp);
  }
}

export type RespValue = string | number | bigint | Buffer | null | RespError | RespValue[];

/** Parses one complete reply from `buf`; throws on malformed or incomplete input. */
export function readReply(buf: Buffer): RespValue {
  const r = { pos: 0 };
  const v = readValue(buf, r);
  if (r.pos !== buf.length) throw new Error('trailing bytes after the reply');
  return v;
}

/**
 * The reply starting at `pos` and where it ends, or null when `buf` ends
 * before the reply does (read more, then try again); throws on malformed input.
 */
export function readReplyAt(buf: Buffer, pos: number): { value: RespValue; end: number } | null {
  const r = { pos };
  try {
    const value = readValue(buf, r);
    return { value, end: r.pos };
  } catch (e) {
    if (e === INCOMPLETE) return null;
    throw e;
  }
}

const INCOMPLETE = new Error('incomplete reply');

function line(buf: Buffer, r: { pos: number }): string {
  const end = buf.indexOf('\r\n', r.pos, 'latin1');
  if (end < 0) throw INCOMPLETE;
  const s = buf.latin1Slice(r.pos + 1, end);
  r.pos = end + 2;
  return s;
}

function readValue(buf: Buffer, r: { pos: number }): RespValue {
  if (r.pos >= buf.length) throw INCOMPLETE;
  const type = buf[r.pos];
  const text = line(buf, r);
  switch (type) {
    case 0x2b: // +
      return text;
    case 0x2d: // -
      return new RespError(text);
    case 0x3a: {
      // : (ctime in SHOW is beyond 2^53)
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : BigInt(text);
    }
    case 0x24: {
      // $
      const len = Number(text);
      if (len < 0) return null;
      if (r.pos + len + 2 > buf.length) throw INCOMPLETE;
      const b = Buffer.from(buf.subarray(r.pos, r.pos + len));
      r.pos += len + 2;
      return b;
    }
    case 0x2a: {
      // *
      const n = Number(text);
      if (n < 0) return null;
      const out: RespValue[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(buf, r));
      return out;
    }
    default:
      throw new Error(`unknown reply type ${String.fromCharCode(type ?? 0)}`);
  }
}
