// The journal's own connection to Redis. Journal writes (one ZADD per
// event-loop turn) go out as RESP encoded here, over a socket driven by our
// transport (src/protocol/transport.ts), with no command object, promise or
// stream machinery per write: through ioredis, those cost more CPU than the
// write itself. ioredis stays for everything else (loading, snapshot chunks,
// health checks).
//
// Redis answers a connection's commands in order, so each reply belongs to
// the oldest command sent and not yet answered: a journal write's reply
// confirms the oldest write in flight (JournalLinkEvents.confirmed), other
// commands (the snapshot's commit, sent here so that it lands after every
// journal write sent before it) get a callback.
import net from 'node:net';
import tls from 'node:tls';
import { wrapSocket, type Transport } from '../protocol/transport.js';
import { readReplyAt, RespError, type RespValue } from '../protocol/reply-reader.js';
import type { RedisTls } from './redis-tls.js';

export interface JournalLinkEvents {
  /** The reply to the oldest journal write not yet confirmed arrived (an error reply fails the link instead). */
  confirmed(): void;
  /** The connection failed or Redis refused a journal write: nothing more will be confirmed. */
  failed(e: Error): void;
}

type ReplyCallback = (e: Error | null, v: RespValue) => void;

/** What a journal write's reply does: confirm it. */
const WRITE = 1;

/** Where a redis-url leads, and how to log in. */
interface Target {
  host: string;
  port: number;
  tls: boolean;
  username: string;
  password: string;
  db: number;
}

function parseUrl(url: string): Target {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port === '' ? 6379 : Number(u.port),
    tls: u.protocol === 'rediss:',
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    db: Number(u.pathname.replace(/^\//, '') || 0) || 0,
  };
}

/** One command as RESP; arguments are latin1 strings, numbers or bytes. */
export function encodeCommand(args: readonly (string | number | Buffer)[]): Buffer {
  let size = 16;
  const parts: Buffer[] = [];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'latin1');
    parts.push(b);
    size += b.length + 24;
  }
  const out = Buffer.allocUnsafe(size);
  let p = out.latin1Write(`*${parts.length}\r\n`, 0);
  for (const b of parts) {
    p += out.latin1Write(`$${b.length}\r\n`, p);
    p += b.copy(out, p);
    out[p++] = 13;
    out[p++] = 10;
  }
  return out.subarray(0, p);
}

export class JournalLink {
  closed = false;
  private transport: Transport | null = null;
  private readonly socket: net.Socket;
  /** Bytes written before the connection (and TLS) was up. */
  private early: Buffer[] = [];
  /** Per command sent and not answered, oldest first: WRITE for a journal write, or a callback. */
  private readonly expect: (typeof WRITE | ReplyCallback | null)[] = [];
  private head = 0;
  /** An incomplete reply, kept across reads. */
  private rest: Buffer | null = null;

  constructor(
    url: string,
    tlsOptions: RedisTls | null,
    clientName: string,
    private readonly events: JournalLinkEvents,
  ) {
    const t = parseUrl(url);
    const ready = t.tls ? 'secureConnect' : 'connect';
    this.socket = t.tls
      ? tls.connect({ host: t.host, port: t.port, ...(net.isIP(t.host) ? {} : { servername: t.host }), ...(tlsOptions ?? {}) })
      : net.connect(t.port, t.host);
    this.socket.setNoDelay(true);
    // Not read by Node's stream until connected: then the transport takes the socket over.
    this.socket.pause();
    this.socket.once(ready, () => this.attach());
    this.socket.once('error', (e) => this.fail(e));
    this.socket.once('close', () => this.fail(new Error('connection to Redis lost')));
    // Logged in, database and name first; their replies are only checked for errors.
    if (t.password !== '') this.command(t.username !== '' ? ['AUTH', t.username, t.password] : ['AUTH', t.password], null);
    if (t.db !== 0) this.command(['SELECT', t.db], null);
    this.command(['CLIENT', 'SETNAME', clientName], null);
  }

  /** Commands sent and not yet answered. */
  get inFlight(): number {
    return this.expect.length - this.head;
  }

  /** Sends a journal write (RESP bytes); its reply confirms it. */
  write(resp: Buffer): void {
    this.send(resp, WRITE);
  }

  /** Sends one command; `cb` gets its reply (null: only an error reply matters, and fails the link). */
  command(args: readonly (string | number | Buffer)[], cb: ReplyCallback | null): void {
    this.send(encodeCommand(args), cb);
  }

  private send(bytes: Buffer, expect: typeof WRITE | ReplyCallback | null): void {
    if (this.closed) {
      if (typeof expect === 'function') expect(new Error('connection to Redis lost'), null);
      return;
    }
    this.expect.push(expect);
    if (this.transport === null) this.early.push(bytes);
    else this.transport.write(bytes);
  }

  private attach(): void {
    if (this.closed) return;
    const t = wrapSocket(this.socket);
    this.transport = t;
    t.start(
      (d, n) => this.onData(d, n),
      () => this.fail(new Error('connection to Redis lost')),
    );
    const early = this.early;
    this.early = [];
    if (early.length > 0) t.write(early.length === 1 ? early[0]! : Buffer.concat(early));
  }

  private onData(d: Buffer, n: number): void {
    let buf = d.subarray(0, n);
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, buf]);
      this.rest = null;
    }
    let p = 0;
    const len = buf.length;
    while (p < len && !this.closed) {
      const type = buf[p];
      let end: number;
      let value: RespValue = null;
      if (type === 0x3a || type === 0x2b) {
        // :N or +OK, the journal's replies: no value needed.
        end = buf.indexOf(10, p);
        if (end < 0) break;
        end++;
      } else {
        const r = readReplyAt(buf, p);
        if (r === null) break;
        value = r.value;
        end = r.end;
      }
      p = end;
      this.reply(value);
    }
    // The read buffer is reused: keep a copy of an incomplete reply.
    if (p < len && !this.closed) this.rest = Buffer.from(buf.subarray(p));
  }

  private reply(v: RespValue): void {
    const e = this.expect[this.head];
    this.expect[this.head++] = null;
    if (this.head > 1024 && this.head * 2 > this.expect.length) {
      this.expect.splice(0, this.head);
      this.head = 0;
    }
    if (typeof e === 'function') {
      e(v instanceof RespError ? v : null, v);
      return;
    }
    if (v instanceof RespError) {
      this.fail(v);
      return;
    }
    if (e === WRITE) this.events.confirmed();
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.close();
    this.events.failed(e);
  }

  /** Closes at once: writes not yet answered will never be confirmed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.early = [];
    if (this.transport !== null) this.transport.destroy();
    else this.socket.destroy();
    const waiting = this.expect.slice(this.head);
    this.expect.length = 0;
    this.head = 0;
    for (const w of waiting) if (typeof w === 'function') w(new Error('connection to Redis lost'), null);
  }
}
