// Request input, in one pass over each read: a scanner walks the request
// headers, enforces the reference's limits and error texts, routes inline
// requests (`PING\r\n`, as redis-cli and telnet users send them) to our own
// splitter, and takes each bulk argument straight from the read buffer:
//   - up to LARGE_ARG bytes as a latin1 string (one char per byte, so any
//     bytes are kept exactly), made from the read buffer in one step;
//   - longer ones as bytes, copied once into a Buffer of their own as the
//     reads come (a job body of any size is never joined from pieces, never
//     turned into a JS string; the store adopts that Buffer, see arena.ts).
// A test with every byte value in a job body guards the latin1 round trip.
import { splitArgs } from './split-args.js';

export const INLINE_MAX_SIZE = 64 * 1024;
export const MULTIBULK_MAX_ARGS = 1024 * 1024;
/** Bulk arguments longer than this come as bytes (the arena's large bodies start here). */
export const LARGE_ARG = 16 * 1024;

/** Bulk arguments longer than LARGE_ARG, by position ('' in the argument array there). */
export type LargeArgs = (Buffer | undefined)[];

export interface RequestSink {
  /**
   * A complete request: the command name and its arguments as latin1
   * strings, except where `large` holds an argument's bytes.
   */
  request(args: string[], large: LargeArgs | null): void;
  /** Input that is not the protocol: reply `-ERR <message>` and close. */
  protocolError(message: string): void;
  /** The unfinished request grew past the query buffer limit: close. */
  overLimit(): void;
}

export interface RequestLimits {
  maxQueryBuffer: number;
  maxBulkLen: number;
}

const latin1Slice = Buffer.prototype.latin1Slice;

const enum Mode {
  Idle,
  Inline,
  MultibulkHeader,
  BulkHeader,
  BulkBody,
}

export class RequestReader {
  private mode = Mode.Idle;
  private argsLeft = 0;
  /** Bytes of the bulk argument under way not read yet, its CRLF included. */
  private bodyLeft = 0;
  /** The bulk argument under way when it spans reads: its bytes so far. */
  private arg: Buffer | null = null;
  private argAt = 0;
  private args: string[] = [];
  private large: LargeArgs | null = null;
  /** Bytes of a header or inline line split across reads. */
  private partial: Buffer[] = [];
  private partialLen = 0;
  /** Bytes of the request under way, for the query buffer limit. */
  private requestBytes = 0;
  private dead = false;

  constructor(
    private readonly sink: RequestSink,
    private readonly limits: RequestLimits,
  ) {}

  /** Bytes waiting for the rest of their request. */
  get pendingBytes(): number {
    return this.requestBytes;
  }

  /** Reads the first `n` bytes of `chunk` (which may be longer: the transport's read buffer). */
  feed(chunk: Buffer, n: number = chunk.length): void {
    if (this.dead) return;
    let i = 0;
    while (i < n) {
      switch (this.mode) {
        case Mode.Idle: {
          this.requestBytes = 0;
          this.mode = chunk[i] === 0x2a ? Mode.MultibulkHeader : Mode.Inline;
          break;
        }
        case Mode.Inline: {
          let nl = chunk.indexOf(0x0a, i);
          if (nl >= n) nl = -1; // past this read's bytes
          if (nl < 0) {
            this.keepPartial(chunk.subarray(i, n));
            i = n;
            if (this.partialLen > INLINE_MAX_SIZE) return this.fail('Protocol error: too big inline request');
            break;
          }
          const line = this.takeLine(chunk.subarray(i, nl));
          i = nl + 1;
          this.mode = Mode.Idle;
          if (line.length > INLINE_MAX_SIZE) return this.fail('Protocol error: too big inline request');
          const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
          const args = splitArgs(line.toString('latin1', 0, end));
          if (args === null) return this.fail('Protocol error: unbalanced quotes in request');
          if (args.length > 0) this.sink.request(args, null);
          if (this.dead) return;
          break;
        }
        case Mode.MultibulkHeader:
        case Mode.BulkHeader: {
          // Headers are a few bytes: a plain loop beats indexOf's call overhead.
          let nl = i;
          while (nl < n && chunk[nl] !== 0x0a) nl++;
          if (nl === n) {
            this.keepPartial(chunk.subarray(i, n));
            this.requestBytes += n - i;
            i = n;
            if (this.partialLen > INLINE_MAX_SIZE) {
              return this.fail(
                this.mode === Mode.MultibulkHeader
                  ? 'Protocol error: too big mbulk count string'
                  : 'Protocol error: too big bulk count string',
              );
            }
            break;
          }
          // The line is line[from, to): in the chunk itself unless it began in an earlier read.
          let line = chunk;
          let from = i;
          let to = nl;
          if (this.partialLen > 0) {
            line = this.takeLine(chunk.subarray(i, nl));
            from = 0;
            to = line.length;
          }
          this.requestBytes += nl + 1 - i;
          i = nl + 1;
          // Headers end with "\r\n" (the CR may have come in an earlier read).
          if (to === from || line[to - 1] !== 0x0d) {
            return this.fail(
              this.mode === Mode.MultibulkHeader ? 'Protocol error: invalid multibulk length' : 'Protocol error: invalid bulk length',
            );
          }
          to--;
          if (this.mode === Mode.MultibulkHeader) {
            const count = parseDecimal(line, from + 1, to);
            if (count === undefined || count > MULTIBULK_MAX_ARGS) return this.fail('Protocol error: invalid multibulk length');
            if (count <= 0) {
              // *0 and *-1: valid but empty requests, nothing to run.
              this.mode = Mode.Idle;
              this.requestBytes = 0;
            } else {
              this.argsLeft = count;
              this.mode = Mode.BulkHeader;
            }
            break;
          }
          if (line[from] !== 0x24) {
            return this.fail(`Protocol error: expected '$', got '${String.fromCharCode(to > from ? line[from]! : 0x20)}'`);
          }
          const len = parseDecimal(line, from + 1, to);
          if (len === undefined || len < 0 || len > this.limits.maxBulkLen) return this.fail('Protocol error: invalid bulk length');
          if (n - i >= len + 2) {
            // The whole argument is in this read (the common case): take it as it is.
            this.pushArg(chunk, i, len);
            i += len + 2;
            this.requestBytes += len + 2;
            if (this.argDone()) return;
          } else {
            this.bodyLeft = len + 2;
            this.arg = len > LARGE_ARG ? Buffer.allocUnsafeSlow(len) : Buffer.allocUnsafe(len);
            this.argAt = 0;
            this.mode = Mode.BulkBody;
          }
          break;
        }
        case Mode.BulkBody: {
          const take = Math.min(this.bodyLeft, n - i);
          const arg = this.arg!;
          // The last two bytes are the argument's CRLF, not kept.
          const bytes = Math.min(take, arg.length - this.argAt);
          if (bytes > 0) {
            chunk.copy(arg, this.argAt, i, i + bytes);
            this.argAt += bytes;
          }
          i += take;
          this.bodyLeft -= take;
          this.requestBytes += take;
          if (this.bodyLeft === 0) {
            this.arg = null;
            this.pushArg(arg, 0, arg.length, true);
            if (this.argDone()) return;
          }
          break;
        }
      }
      if (this.requestBytes > this.limits.maxQueryBuffer) {
        this.dead = true;
        this.arg = null;
        this.args = [];
        this.large = null;
        this.sink.overLimit();
        return;
      }
      if (this.dead) return;
    }
  }

  /** Adds b[from, from + len) as the next argument; `own` when b holds only it and may be kept. */
  private pushArg(b: Buffer, from: number, len: number, own = false): void {
    if (len <= LARGE_ARG || this.args.length === 0) {
      this.args.push(latin1Slice.call(b, from, from + len));
      return;
    }
    let bytes = b;
    if (!own) {
      // Out of the read buffer (reused): the one copy of these bytes.
      bytes = Buffer.allocUnsafeSlow(len);
      b.copy(bytes, 0, from, from + len);
    }
    (this.large ??= [])[this.args.length] = bytes;
    this.args.push('');
  }

  /** An argument is complete; runs the request when it was the last one. True when reading must stop. */
  private argDone(): boolean {
    if (--this.argsLeft > 0) {
      this.mode = Mode.BulkHeader;
      return false;
    }
    const args = this.args;
    const large = this.large;
    this.args = [];
    this.large = null;
    this.mode = Mode.Idle;
    this.requestBytes = 0;
    this.sink.request(args, large);
    return this.dead;
  }

  private fail(message: string): void {
    this.dead = true;
    this.partial = [];
    this.arg = null;
    this.sink.protocolError(message);
  }

  private keepPartial(b: Buffer): void {
    // Copy: the socket's chunk may be reused.
    this.partial.push(Buffer.from(b));
    this.partialLen += b.length;
  }

  private takeLine(rest: Buffer): Buffer {
    if (this.partialLen === 0) return rest;
    this.partial.push(rest);
    const line = Buffer.concat(this.partial);
    this.partial = [];
    this.partialLen = 0;
    return line;
  }
}

/** Parses [-]digits in b[from, to); undefined if not a valid integer. */
function parseDecimal(b: Buffer, from: number, to: number): number | undefined {
  let i = from;
  let neg = false;
  if (i < to && b[i] === 0x2d) {
    neg = true;
    i++;
  }
  if (i >= to || to - i > 18) return undefined;
  let v = 0;
  for (; i < to; i++) {
    const c = b[i]! - 48;
    if (c < 0 || c > 9) return undefined;
    v = v * 10 + c;
  }
  return neg ? -v : v;
}
