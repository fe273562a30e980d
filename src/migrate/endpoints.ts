// The two clusters of a migration as disque-migrate reaches them: a seed
// address, then every node HELLO lists, each with connections of its own
// (a scan and its cursor belong to one node; the bundled client's failover
// would move them to another).
import { Redis, type RedisOptions } from 'ioredis';
import { parseAddress, parseAddressUrl } from '../client/nodes.js';
import { parseHello, text } from '../client/replies.js';

export interface Endpoint {
  host: string;
  port: number;
  password?: string;
  tls: boolean;
}

/**
 * `HOST:PORT`, a port, or `redis://:password@host:port` (`rediss://` for
 * TLS). `envPassword` (DISQUE_FROM_PASSWORD / DISQUE_TO_PASSWORD) is used
 * when the address carries none: a password on the command line shows in ps.
 */
export function parseEndpoint(spec: string, envPassword: string | undefined): Endpoint {
  const url = parseAddressUrl(spec);
  // A port that is not a number would otherwise read as part of a host name.
  if (!url && spec.includes(':') && !/^(\[[^\]]+\]|[^:]*):\d+$/.test(spec)) throw new TypeError(`invalid address '${spec}' (HOST:PORT)`);
  const addr = parseAddress(spec);
  if (!Number.isInteger(addr.port) || addr.port <= 0 || addr.port > 65535) throw new TypeError(`invalid address '${spec}'`);
  const password = url?.password ?? (envPassword === '' ? undefined : envPassword);
  const ep: Endpoint = { host: addr.host, port: addr.port, tls: url?.tls ?? false };
  if (password !== undefined) ep.password = password;
  return ep;
}

export function endpointName(ep: { host: string; port: number }): string {
  return ep.host.includes(':') ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}

/** One connection to one node. Integers come as strings: ctime does not fit a double. */
export async function connectNode(ep: Endpoint): Promise<Redis> {
  const opts: RedisOptions = {
    host: ep.host,
    port: ep.port,
    connectTimeout: 5000,
    // Disque is not Redis: no RESP3 HELLO, no CLIENT SETINFO, no INFO ready check.
    protocol: 2,
    disableClientInfo: true,
    enableReadyCheck: false,
    lazyConnect: true,
    stringNumbers: true,
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => (times > 20 ? null : Math.min(1000, 50 * times)),
  };
  if (ep.password !== undefined) opts.password = ep.password;
  if (ep.tls) opts.tls = {};
  const redis = new Redis(opts);
  // ioredis reports why a connection failed (refused, AUTH refused) only as
  // an 'error' event, and rejects with "Connection is closed": keep the why.
  let why: Error | null = null;
  redis.on('error', (e: Error) => {
    why ??= e;
  });
  try {
    await redis.connect();
    await redis.call('PING');
  } catch (e) {
    redis.disconnect();
    const err = (why ?? e) as Error;
    throw new Error(`${endpointName(ep)}: ${err.message}`);
  }
  return redis;
}

export interface ClusterNodeInfo {
  id: string;
  host: string;
  port: number;
  /** HELLO priority: 1 reachable, 5 no link, 10 possibly failing, 100 failing or leaving. */
  priority: number;
}

/** HELLO asked of `seed`: its ID and every node it knows, with addresses. */
export async function clusterOf(redis: Redis, seed: Endpoint): Promise<{ myId: string; nodes: ClusterNodeInfo[] }> {
  const hello = parseHello(await redis.call('HELLO'));
  const nodes = hello.nodes.map((n) => {
    // A node that was never met reports no address of its own.
    const host = n.host === '' || (n.id === hello.id && n.host === '0.0.0.0') ? seed.host : n.host;
    const port = n.port === 0 && n.id === hello.id ? seed.port : n.port;
    return { id: n.id, host, port, priority: n.priority };
  });
  return { myId: hello.id, nodes };
}

/** The node's clock minus ours (ms), from TIME. */
export async function clockOffset(redis: Redis): Promise<number> {
  const before = Date.now();
  const t = (await redis.call('TIME')) as unknown[];
  const after = Date.now();
  const ms = Number(text(t[0])) * 1000 + Math.floor(Number(text(t[1])) / 1000);
  return Number.isFinite(ms) ? ms - Math.round((before + after) / 2) : 0;
}
