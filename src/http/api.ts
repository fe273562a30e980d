// What the JSON endpoints share: the node (HttpHost), its rates, the peers
// to ask, and running a command through the node's command table, with
// Disque's errors turned into HTTP ones (docs/http-api.md, "Errors").
import type { HttpHost, HttpPeer } from './host.js';
import type { Rates } from './rates.js';
import { HttpError } from './router.js';
import { RespError, type RespValue } from '../protocol/reply-reader.js';
import { isValidJobId } from '../core/job-id.js';

export class Api {
  constructor(
    readonly host: HttpHost,
    readonly rates: Rates,
    /** The port this HTTP server listens on. */
    readonly httpPort: () => number,
  ) {}

  /** The requirepass, sent to peers as a Bearer token ('' when none). */
  get password(): string {
    return this.host.config.str('requirepass');
  }

  /** ip:port of a node; this node's own IP is unknown until a peer told it (then the bind address or loopback). */
  addrOf(ip: string, port: number): string {
    const shown = ip !== '' ? ip : (this.host.config.list('bind')[0] ?? '127.0.0.1');
    return shown.includes(':') ? `[${shown}]:${port}` : `${shown}:${port}`;
  }

  /** Other nodes worth asking: past the handshake and with an address. */
  otherNodes(): HttpPeer[] {
    return this.host.peers().filter((p) => !p.myself && p.state !== 'handshake' && p.state !== 'noaddr');
  }

  /** The known node `id` (another one), or 404. */
  peer(id: string): HttpPeer {
    const p = this.host.peers().find((n) => n.id === id);
    if (p === undefined) throw new HttpError(404, `No node ${id} in this node's cluster`);
    return p;
  }

  /** Runs a command; a Disque error reply becomes 409 with Disque's text. */
  async run(argv: string[], addr: string): Promise<RespValue> {
    const reply = await this.host.command(argv, addr);
    if (reply instanceof RespError) throw new HttpError(409, reply.message);
    return reply;
  }
}

/** 400 unless `id` is a job ID in Disque's format. */
export function checkJobId(id: string): void {
  if (!isValidJobId(id)) throw new HttpError(400, `Not a job ID: ${JSON.stringify(id)} (expected D-<8 hex>-<...>, 40 characters)`);
}

/** A reply value as JSON: bulk strings as UTF-8 text. */
export function plain(v: RespValue): unknown {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof RespError) return { error: v.message };
  return v;
}

/** A flat [field, value, ...] reply (SHOW, QSTAT) as an object. */
export function pairs(v: RespValue): Map<string, RespValue> {
  const out = new Map<string, RespValue>();
  if (!Array.isArray(v)) return out;
  for (let i = 0; i + 1 < v.length; i += 2) {
    const k = v[i]!;
    out.set(Buffer.isBuffer(k) ? k.toString('latin1') : String(k), v[i + 1]!);
  }
  return out;
}

/** A job body as the job page shows it: text when valid UTF-8, parsed JSON, hex when binary. */
export function describeBody(b: Buffer): { text: string | null; json?: unknown; hex: string | null } {
  const text = b.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(b)) return { text: null, hex: b.toString('hex') };
  try {
    return { text, json: JSON.parse(text) as unknown, hex: null };
  } catch {
    return { text, hex: null };
  }
}

/** The first characters of a body, for lists. */
export function bodyPreview(b: Buffer, max = 120): string {
  const text = b.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(b)) return `(binary, ${b.length} bytes) ${b.subarray(0, max / 2).toString('hex')}`;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
