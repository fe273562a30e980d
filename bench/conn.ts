// Raw TCP connections for the load generator.
//
// Conn is the hot-path connection: one socket, one parser, one reply callback
// set by the workload driver that owns it (no per-request closures or
// promises). Client wraps a Conn with a promise FIFO for the slow paths:
// setup, INFO, preload and drain.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { encode, ReplyParser, RespError, type Reply } from './resp.js';
import { wrapSocket, type Transport } from '../src/protocol/transport.js';

export interface Address {
  host: string;
  port: number;
}

export function parseAddress(s: string, defaultHost = '127.0.0.1'): Address {
  const i = s.lastIndexOf(':');
  if (i < 0) return { host: defaultHost, port: Number(s) };
  return { host: s.slice(0, i) || defaultHost, port: Number(s.slice(i + 1)) };
}

export const fmtAddr = (a: Address): string => `${a.host}:${a.port}`;

// Node's stream machinery costs ~10 µs of CPU per request/reply round, which
// on 2 cores caps a plain (unpipelined) generator well below what the server
// can do, so connections run on the server's own transport
// (src/protocol/transport.ts: the TCP handle driven directly, one shared read
// buffer). BENCH_PORTABLE=1 forces the public socket API (slower, for
// comparison or if Node's internals change).
if (process.env.BENCH_PORTABLE !== undefined) process.env.DISQUE_PORTABLE_TRANSPORT = '1';

export class Conn {
  /**
   * performance.now() when the chunk being parsed was read. Every reply in
   * one chunk arrived together, so they share one timestamp: one clock read
   * per read() instead of one per reply.
   */
  now = 0;
  onReply: (r: Reply) => void = () => {};
  onClose: ((err?: Error) => void) | null = null;
  closed = false;
  private readonly parser: ReplyParser;
  private readonly transport: Transport;

  private constructor(readonly socket: net.Socket) {
    this.parser = new ReplyParser((r) => this.onReply(r));
    socket.setNoDelay(true);
    let error: Error | undefined;
    socket.on('error', (e) => (error = e));
    this.transport = wrapSocket(socket);
    // The parser copies what it keeps: the transport reuses its read buffer.
    this.transport.start(
      (chunk, n) => {
        this.now = performance.now();
        this.parser.feed(chunk.subarray(0, n));
      },
      () => {
        if (this.closed) return;
        this.closed = true;
        this.onClose?.(error);
      },
    );
  }

  static open(addr: Address, timeoutMs = 5000): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(addr.port, addr.host);
      // Paused so Node does not start reading with its own callbacks on connect.
      s.pause();
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${fmtAddr(addr)} timed out`));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(new Conn(s));
      });
    });
  }

  /** Writes `buf`. The caller must not modify it afterwards (it may still be queued). */
  write(buf: Buffer): void {
    if (!this.closed) this.transport.write(buf);
  }

  close(): void {
    this.closed = true;
    this.transport.destroy();
  }
}

/** Promise-based request/response client for non-measured work. */
export class Client {
  private readonly waiting: ((r: Reply) => void)[] = [];
  private head = 0;

  private constructor(readonly conn: Conn) {
    conn.onReply = (r) => {
      const w = this.waiting[this.head];
      this.waiting[this.head++] = undefined as never;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
      w?.(r);
    };
    conn.onClose = (err) => {
      const pending = this.waiting.slice(this.head);
      this.waiting.length = 0;
      this.head = 0;
      for (const w of pending) w?.(new RespError(`connection closed${err ? `: ${err.message}` : ''}`));
    };
  }

  static async open(addr: Address, timeoutMs?: number): Promise<Client> {
    return new Client(await Conn.open(addr, timeoutMs));
  }

  /** Sends one command; resolves with its reply (error replies resolve as RespError). */
  call(...args: (string | number | Buffer)[]): Promise<Reply> {
    return this.raw(encode(args), 1).then((r) => r[0]!);
  }

  /** Sends `n` pre-encoded commands in one write; resolves with their n replies. */
  raw(buf: Buffer, n: number): Promise<Reply[]> {
    if (this.conn.closed) return Promise.resolve(new Array(n).fill(new RespError('connection closed')));
    return new Promise((resolve) => {
      const out: Reply[] = [];
      for (let i = 0; i < n; i++) {
        this.waiting.push((r) => {
          out.push(r);
          if (out.length === n) resolve(out);
        });
      }
      this.conn.write(buf);
    });
  }

  /** Like call() but throws on error replies. */
  async ok(...args: (string | number | Buffer)[]): Promise<Reply> {
    const r = await this.call(...args);
    if (r instanceof RespError) throw new Error(`${args.join(' ')}: ${r.message}`);
    return r;
  }

  /** INFO [section] parsed into a key -> value map. */
  async info(section?: string): Promise<Map<string, string>> {
    const r = await (section ? this.call('INFO', section) : this.call('INFO'));
    const m = new Map<string, string>();
    if (typeof r !== 'string') return m;
    for (const line of r.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) m.set(line.slice(0, i), line.slice(i + 1));
    }
    return m;
  }

  close(): void {
    this.conn.close();
  }
}

export type ServerKind = 'disque' | 'redis';

/** Tells Disque (reference or ours) from Redis by what INFO server reports. */
export async function detectKind(addr: Address): Promise<ServerKind> {
  const c = await Client.open(addr);
  try {
    const info = await c.info('server');
    if (info.has('disque_version')) return 'disque';
    if (info.has('redis_version')) return 'redis';
    throw new Error(`${fmtAddr(addr)}: INFO reports neither disque_version nor redis_version`);
  } finally {
    c.close();
  }
}

/** Opens n clients; if any fails, closes the others (open sockets keep the process alive) and throws. */
export async function openClients(addr: Address, n: number): Promise<Client[]> {
  const r = await Promise.allSettled(Array.from({ length: n }, () => Client.open(addr)));
  const ok = r.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
  const bad = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (bad) {
    for (const c of ok) c.close();
    throw bad.reason;
  }
  return ok;
}
