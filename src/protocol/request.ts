// Request input. redis-parser turns multibulk requests into argument arrays;
// in front of it a small scanner walks the request headers (never the
// argument bytes, which it skips by length) to
//   - enforce the reference's limits and error texts (redis-parser would wait
//     forever on a bogus length, and accepts any RESP type),
//   - route inline requests (`PING\r\n`, as redis-cli and telnet users send
//     them), which redis-parser does not handle, to our own splitter,
//   - count the bytes of an unfinished request against the query buffer limit.
// Only whole requests the scanner validated are handed to redis-parser, so
// its callbacks fire in request order, interleaved correctly with inline
// ones, and it never keeps references to the caller's (reused) read buffer.
//
// Arguments come out as latin1 strings (one char per byte, so any bytes are
// kept exactly). redis-parser runs in its string mode over a Latin1View,
// whose toString() is latin1: one string per argument, where its buffer mode
// made a Buffer per argument that we then turned into a string (half of what
// a request allocated). A test with every byte value in a job body guards
// this against a redis-parser that decodes differently.
//
// A request with a long argument (a job body of kilobytes) runs through a
// second redis-parser in buffer mode instead: the long argument comes out as
// a view of the bytes read, which ADDJOB copies straight into the job arena.
// As a string it was one more copy, and a young-generation string per
// request whose scavenges (0.3-5 ms with 4 KB bodies) made the tail.
import RedisParser from 'redis-parser';
import { splitArgs } from './split-args.js';
import { largeBuffers } from './reply.js';

export const INLINE_MAX_SIZE = 64 * 1024;
export const MULTIBULK_MAX_ARGS = 1024 * 1024;
/**
 * A held request's buffer up to this size is kept for the connection's next
 * one; a larger one is lent by the shared pool of large buffers and given
 * back once its request ran (a fresh one per request of a 256 KB body cost
 * a full collection every few dozen requests: V8 counts each toward its
 * external memory).
 */
const HELD_KEEP_MAX = 256 * 1024;
/** An argument (past the command name) this long or longer comes out as bytes (see RequestSink). */
export const BYTES_ARG_MIN = 1024;

/** Per argument, its bytes where it came out as bytes (see RequestSink.request). */
export type ArgBytes = (Buffer | undefined)[];

export interface RequestSink {
  /**
   * A complete request: the command name and its arguments, as latin1
   * strings. `bytes` is null, or holds at index i the bytes of argument i
   * when it is BYTES_ARG_MIN bytes or longer (args[i] is then ''): a view of
   * the reader's memory, valid only during the call.
   */
  request(args: string[], bytes: ArgBytes | null): void;
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

/** Bytes that redis-parser's string mode reads as latin1 (see above). */
class Latin1View extends Uint8Array {
  override toString(_encoding?: string, start?: number, end?: number): string {
    return latin1Slice.call(this, start ?? 0, end ?? this.length);
  }
}

function latin1View(b: Uint8Array, from: number, to: number): Latin1View {
  return new Latin1View(b.buffer as ArrayBuffer, b.byteOffset + from, to - from);
}

const enum Mode {
  Idle,
  Inline,
  MultibulkHeader,
  BulkHeader,
  BulkBody,
}

export class RequestReader {
  private readonly parser: RedisParser;
  /** The buffer-mode parser for requests with a long argument (see above). */
  private readonly bytesParser: RedisParser;
  /** The request under way has a long argument; its argument count so far. */
  private long = false;
  private argCount = 0;
  private mode = Mode.Idle;
  private argsLeft = 0;
  private bodyLeft = 0;
  /** Bytes of a header or inline line split across reads. */
  private partial: Buffer[] = [];
  private partialLen = 0;
  /** Bytes of the request under way, for the query buffer limit. */
  private requestBytes = 0;
  /**
   * Bytes (copied) of a multibulk request begun in earlier reads, in one
   * buffer sized for the bulk under way: a large body is copied once from
   * the reads, not once per read and again to join them.
   */
  private held: Buffer | null = null;
  private heldLen = 0;
  private dead = false;
  /** The last view of a read's first bytes handed to redis-parser (see execute). */
  private view: Latin1View | null = null;

  constructor(
    private readonly sink: RequestSink,
    private readonly limits: RequestLimits,
  ) {
    this.parser = new RedisParser({
      returnBuffers: false,
      returnReply: (reply: unknown) => {
        // *0 and *-1 are valid but empty requests: nothing to run.
        if (Array.isArray(reply) && reply.length > 0 && !this.dead) this.sink.request(reply as string[], null);
      },
      returnError: () => {},
      returnFatalError: () => {},
    });
    this.bytesParser = new RedisParser({
      returnBuffers: true,
      returnReply: (reply: unknown) => {
        if (this.dead) return;
        const parts = reply as Buffer[];
        const args = new Array<string>(parts.length);
        const bytes: ArgBytes = new Array(parts.length);
        for (let k = 0; k < parts.length; k++) {
          const b = parts[k]!;
          if (k > 0 && b.length >= BYTES_ARG_MIN) {
            args[k] = '';
            bytes[k] = b;
          } else {
            args[k] = latin1Slice.call(b, 0, b.length);
          }
        }
        this.sink.request(args, bytes);
      },
      returnError: () => {},
      returnFatalError: () => {},
    });
  }

  /** Bytes waiting for the rest of their request. */
  get pendingBytes(): number {
    return this.requestBytes;
  }

  /** Reads the first `n` bytes of `chunk` (which may be longer: the transport's read buffer). */
  feed(chunk: Buffer, n: number = chunk.length): void {
    if (this.dead) return;
    let i = 0;
    // Start of the run of complete multibulk requests in this chunk not yet
    // handed to redis-parser, and where the request under way started.
    let runStart = 0;
    let requestStart = 0;
    while (i < n) {
      switch (this.mode) {
        case Mode.Idle: {
          requestStart = i;
          this.requestBytes = 0;
          if (chunk[i] === 0x2a) {
            this.mode = Mode.MultibulkHeader;
            this.long = false;
            this.argCount = 0;
          } else {
            this.execute(chunk, runStart, i);
            this.mode = Mode.Inline;
          }
          break;
        }
        case Mode.Inline: {
          let nl = chunk.indexOf(0x0a, i);
          if (nl >= n) nl = -1; // past this read's bytes
          if (nl < 0) {
            this.keepPartial(chunk.subarray(i, n));
            i = n;
            runStart = n;
            if (this.partialLen > INLINE_MAX_SIZE) return this.fail('Protocol error: too big inline request');
            break;
          }
          const line = this.takeLine(chunk.subarray(i, nl));
          i = nl + 1;
          runStart = i;
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
            this.execute(chunk, runStart, requestStart);
            return this.fail(
              this.mode === Mode.MultibulkHeader ? 'Protocol error: invalid multibulk length' : 'Protocol error: invalid bulk length',
            );
          }
          to--;
          if (this.mode === Mode.MultibulkHeader) {
            const count = parseDecimal(line, from + 1, to);
            if (count === undefined || count > MULTIBULK_MAX_ARGS) {
              this.execute(chunk, runStart, requestStart);
              return this.fail('Protocol error: invalid multibulk length');
            }
            if (count <= 0) {
              // *0 and *-1: an empty request (redis-parser yields nothing to run).
              if (this.heldLen > 0) {
                this.completeRequest(chunk, i);
                runStart = i;
              }
              this.mode = Mode.Idle;
            } else {
              this.argsLeft = count;
              this.mode = Mode.BulkHeader;
            }
          } else {
            if (line[from] !== 0x24) {
              this.execute(chunk, runStart, requestStart);
              return this.fail(`Protocol error: expected '$', got '${String.fromCharCode(to > from ? line[from]! : 0x20)}'`);
            }
            const len = parseDecimal(line, from + 1, to);
            if (len === undefined || len < 0 || len > this.limits.maxBulkLen) {
              this.execute(chunk, runStart, requestStart);
              return this.fail('Protocol error: invalid bulk length');
            }
            if (len >= BYTES_ARG_MIN && this.argCount > 0) this.long = true;
            this.argCount++;
            this.bodyLeft = len + 2;
            this.mode = Mode.BulkBody;
          }
          break;
        }
        case Mode.BulkBody: {
          const take = Math.min(this.bodyLeft, n - i);
          i += take;
          this.bodyLeft -= take;
          this.requestBytes += take;
          if (this.bodyLeft === 0 && --this.argsLeft === 0) {
            this.mode = Mode.Idle;
            // A request that began in an earlier read runs now, on its own;
            // so does one with a long argument (in buffer mode).
            if (this.heldLen > 0) {
              this.completeRequest(chunk, i);
              runStart = i;
            } else if (this.long) {
              this.execute(chunk, runStart, requestStart);
              if (!this.dead) this.bytesParser.execute(chunk.subarray(requestStart, i));
              runStart = i;
            }
          } else if (this.bodyLeft === 0) {
            this.mode = Mode.BulkHeader;
          }
          break;
        }
      }
      if (this.requestBytes > this.limits.maxQueryBuffer) {
        this.dead = true;
        this.held = null;
        this.heldLen = 0;
        this.sink.overLimit();
        return;
      }
      if (this.dead) return;
    }
    if (this.mode === Mode.Idle || this.mode === Mode.Inline) {
      this.execute(chunk, runStart, this.mode === Mode.Idle ? n : requestStart);
      if (this.mode === Mode.Idle) this.requestBytes = 0;
      return;
    }
    // A multibulk request is unfinished: run the complete ones before it and
    // keep a copy of its bytes (the caller reuses the chunk's memory).
    if (this.heldLen === 0) {
      this.execute(chunk, runStart, requestStart);
      this.hold(chunk, requestStart, n);
    } else {
      this.hold(chunk, 0, n);
    }
  }

  /** Appends chunk[from, to) to the held request, with room for the rest of the bulk under way. */
  private hold(chunk: Buffer, from: number, to: number): void {
    const need = this.heldLen + (to - from);
    let held = this.held;
    if (held === null || held.length < need) {
      // Room for the rest of this bulk and its next header; doubling keeps
      // requests of many small arguments from copying over and over.
      const want = Math.max(need + (this.mode === Mode.BulkBody ? this.bodyLeft : 0) + 64, held === null ? 0 : held.length * 2);
      const grown = want > HELD_KEEP_MAX ? largeBuffers.take(want) : Buffer.allocUnsafe(want);
      if (held !== null) {
        held.copy(grown, 0, 0, this.heldLen);
        if (held.length > HELD_KEEP_MAX) largeBuffers.give(held);
      }
      this.held = held = grown;
    }
    chunk.copy(held, this.heldLen, from, to);
    this.heldLen = need;
  }

  /** Runs complete requests in chunk[from, to) through redis-parser. */
  private execute(chunk: Buffer, from: number, to: number): void {
    if (to <= from || this.dead) return;
    // A client sending the same request again and again reads the same bytes
    // into the transport's buffer: the view of them is kept.
    let view = this.view;
    if (from !== 0 || view === null || view.length !== to || view.buffer !== chunk.buffer || view.byteOffset !== chunk.byteOffset) {
      view = latin1View(chunk, from, to);
      if (from === 0) this.view = view;
    }
    this.parser.execute(view as unknown as Buffer);
  }

  /** The request kept from earlier reads ends at chunk[end]: run it. */
  private completeRequest(chunk: Buffer, end: number): void {
    if (this.heldLen === 0) return;
    this.hold(chunk, 0, end);
    const whole = this.held!;
    const len = this.heldLen;
    // redis-parser keeps nothing of the buffer once it returns (see execute;
    // buffer mode's views live only during the sink's call), so a held
    // buffer of moderate size serves the next one.
    const lent = whole.length > HELD_KEEP_MAX;
    if (lent) this.held = null;
    this.heldLen = 0;
    if (!this.dead) {
      if (this.long) this.bytesParser.execute(whole.subarray(0, len));
      else this.parser.execute(latin1View(whole, 0, len) as unknown as Buffer);
    }
    if (lent) largeBuffers.give(whole);
  }

  private fail(message: string): void {
    this.dead = true;
    this.partial = [];
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
