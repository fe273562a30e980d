// The nodes a client knows: the seed addresses it was given, plus what HELLO
// reported (IDs, addresses, priorities). Picks where to connect next.
import type { HelloReply, NodeInfo } from './types.js';

/** A node's client address. */
export interface Address {
  host: string;
  port: number;
}

/** `host:port`, a bare port, or an address object. */
export type AddressSpec = string | number | Address;

export const DEFAULT_ADDRESS: Address = { host: '127.0.0.1', port: 7711 };

/** A seed address given as a URL: `redis://` or `rediss://` (TLS), with an optional password. */
export interface AddressUrl extends Address {
  tls: boolean;
  password?: string;
}

/** Parses `redis://[[user]:pass@]host[:port]` and `rediss://...`; undefined for anything else. */
export function parseAddressUrl(spec: string): AddressUrl | undefined {
  const m = /^(rediss?):\/\//i.exec(spec);
  if (!m) return undefined;
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    throw new TypeError(`invalid node address '${spec.replace(/\/\/[^@/]*@/, '//***@')}'`);
  }
  const out: AddressUrl = {
    host: u.hostname.replace(/^\[|\]$/g, '') || DEFAULT_ADDRESS.host,
    port: u.port === '' ? DEFAULT_ADDRESS.port : Number(u.port),
    tls: m[1]!.toLowerCase() === 'rediss',
  };
  if (u.password !== '') out.password = decodeURIComponent(u.password);
  return out;
}

/** Parses `host:port`, `:port`, `port`, `[v6]:port` or a `redis://` / `rediss://` URL. */
export function parseAddress(spec: AddressSpec): Address {
  if (typeof spec === 'number') return { host: DEFAULT_ADDRESS.host, port: spec };
  if (typeof spec !== 'string') return { host: spec.host || DEFAULT_ADDRESS.host, port: spec.port };
  const url = parseAddressUrl(spec);
  if (url) return { host: url.host, port: url.port };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(spec);
  if (m) return { host: m[1] ?? (m[2] || DEFAULT_ADDRESS.host), port: Number(m[3]) };
  if (/^\d+$/.test(spec)) return { host: DEFAULT_ADDRESS.host, port: Number(spec) };
  return { host: spec, port: DEFAULT_ADDRESS.port };
}

export function addressKey(a: Address): string {
  return `${a.host}:${a.port}`;
}

/** Priority HELLO gives leaving and failing nodes. */
export const LEAVING_PRIORITY = 100;
/** How long a node that failed us is tried only after the others. */
const TROUBLE_MS = 5000;

export class NodeDirectory {
  private readonly seeds: Address[];
  /** Nodes by ID, from the latest HELLO. */
  private readonly known = new Map<string, NodeInfo>();
  /** Address key -> time until which the address is tried last. */
  private readonly trouble = new Map<string, number>();
  /** Address tried first among equals (a duplicate starts where its original is). */
  private preferred: string | undefined;

  constructor(seeds: Address[], private readonly discover: boolean) {
    this.seeds = seeds.length > 0 ? seeds : [DEFAULT_ADDRESS];
  }

  /** A copy for another client (same seeds and learned nodes). */
  clone(): NodeDirectory {
    const d = new NodeDirectory(this.seeds, this.discover);
    for (const [id, n] of this.known) d.known.set(id, { ...n });
    return d;
  }

  /**
   * Records a HELLO reply received from `via`; returns the answering node.
   * A node often does not know its own IP (empty in HELLO): the address we
   * reached it at is used instead.
   */
  learn(hello: HelloReply, via: Address): NodeInfo {
    const seen = new Set<string>();
    let self: NodeInfo | undefined;
    for (const n of hello.nodes) {
      const info = n.id === hello.id ? { ...n, host: via.host, port: via.port } : { ...n };
      if (info.id === hello.id) self = info;
      seen.add(info.id);
      this.known.set(info.id, info);
    }
    // Nodes forgotten by the cluster are forgotten here too.
    for (const id of [...this.known.keys()]) if (!seen.has(id)) this.known.delete(id);
    if (!self) {
      self = { id: hello.id, host: via.host, port: via.port, priority: 1 };
      this.known.set(self.id, self);
    }
    return self;
  }

  /** Takes a node learned by another client (until HELLO says otherwise). */
  adopt(n: NodeInfo): void {
    if (!this.known.has(n.id)) this.known.set(n.id, { ...n });
  }

  /** All nodes learned from HELLO. */
  nodes(): NodeInfo[] {
    return [...this.known.values()].map((n) => ({ ...n }));
  }

  byId(id: string): NodeInfo | undefined {
    return this.known.get(id);
  }

  /** The node whose ID starts with `prefix` (job IDs carry 8 hex characters of it). */
  byPrefix(prefix: string): NodeInfo | undefined {
    for (const n of this.known.values()) if (n.id.startsWith(prefix)) return n;
    return undefined;
  }

  /** Try `a` before other nodes of the same priority. */
  prefer(a: Address): void {
    this.preferred = addressKey(a);
  }

  /** Try `a` only after the other nodes for a while. */
  markTrouble(a: Address): void {
    this.trouble.set(addressKey(a), Date.now() + TROUBLE_MS);
  }

  /** The node announced it is leaving: treat it as HELLO will soon report it. */
  markLeaving(id: string): void {
    const n = this.known.get(id);
    if (n) n.priority = Math.max(n.priority, LEAVING_PRIORITY);
  }

  private inTrouble(a: Address): boolean {
    const until = this.trouble.get(addressKey(a));
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.trouble.delete(addressKey(a));
    return false;
  }

  /**
   * Addresses to try, best first: nodes not recently failing before the
   * others, then lower HELLO priority; ties in random order so that many
   * clients spread over equal nodes.
   */
  candidates(): Address[] {
    const byKey = new Map<string, { a: Address; priority: number }>();
    if (this.discover) {
      for (const n of this.known.values()) {
        if (n.host === '' || n.port <= 0) continue;
        byKey.set(addressKey(n), { a: { host: n.host, port: n.port }, priority: n.priority });
      }
    }
    for (const s of this.seeds) {
      const k = addressKey(s);
      if (!byKey.has(k)) byKey.set(k, { a: s, priority: this.priorityOf(s) });
    }
    const list = [...byKey.values()].map((c) => ({
      ...c,
      trouble: this.inTrouble(c.a),
      r: addressKey(c.a) === this.preferred ? -1 : Math.random(),
    }));
    list.sort((x, y) => Number(x.trouble) - Number(y.trouble) || x.priority - y.priority || x.r - y.r);
    return list.map((c) => c.a);
  }

  /** Priority of a seed address if HELLO told us about it (1 otherwise). */
  private priorityOf(a: Address): number {
    for (const n of this.known.values()) if (n.host === a.host && n.port === a.port) return n.priority;
    return 1;
  }

  /** A reachable-looking node strictly better than `current`, if any. */
  better(current: NodeInfo): NodeInfo | undefined {
    if (!this.discover) return undefined;
    let best: NodeInfo | undefined;
    for (const n of this.known.values()) {
      if (n.id === current.id || n.host === '' || this.inTrouble(n)) continue;
      if (n.priority < current.priority && (!best || n.priority < best.priority)) best = n;
    }
    return best;
  }
}
