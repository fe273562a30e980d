// Asking other nodes: the cluster-wide views (/api/cluster, /api/queues,
// /api/rates) ask each peer's own HTTP port (learned from its PINGs) for its
// local figures, and job pages may act on a job held by another node
// (?node=). Requests carry the requirepass as a Bearer token when one is
// set (the nodes of a cluster share it). A peer that does not answer within
// PEER_TIMEOUT_MS is reported, not waited for; one silent on the bus (cut
// off by a partition, most likely) within SILENT_PEER_TIMEOUT_MS.
import http from 'node:http';
import type { HttpPeer } from './host.js';

export const PEER_TIMEOUT_MS = 1000;
export const SILENT_PEER_TIMEOUT_MS = 200;
/** A peer's answer larger than this is refused (a node with very many queues). */
const MAX_PEER_BYTES = 64 * 1024 * 1024;

export interface PeerAnswer<T> {
  peer: HttpPeer;
  value: T | null;
  error?: string;
}

/** The peer answered with an error status; `message` is its {"error"} text. */
export class PeerStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function peerName(peer: HttpPeer): string {
  const host = peer.ip.includes(':') ? `[${peer.ip}]` : peer.ip;
  return `node ${peer.id.slice(0, 8)} at ${host}:${peer.httpPort}`;
}

/**
 * One request to a peer's HTTP port: its status and JSON answer. Throws an
 * Error naming the peer when it cannot be reached, does not answer in time
 * or answers something else than JSON.
 */
export function peerRequest(
  peer: HttpPeer,
  method: 'GET' | 'POST',
  pathAndQuery: string,
  password: string,
  body?: unknown,
  timeoutMs = PEER_TIMEOUT_MS,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const name = peerName(peer);
    if (peer.httpPort === 0 || peer.ip === '') {
      reject(new Error(`node ${peer.id.slice(0, 8)} has no known HTTP port`));
      return;
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    // Bearer: no session or CSRF token needed; any value does when the peer has no requirepass.
    const headers: Record<string, string | number> = { Accept: 'application/json', Authorization: `Bearer ${password === '' ? '-' : password}` };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const fail = (why: string) => new Error(`${name}: ${why}`);
    const req = http.request(
      { host: peer.ip, port: peer.httpPort, path: pathAndQuery, method, headers },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_PEER_BYTES) req.destroy(fail('answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch {
            reject(fail(`answer is not JSON (HTTP ${res.statusCode})`));
          }
        });
        res.on('error', (e) => reject(fail(e.message)));
      },
    );
    // The whole exchange is bounded, not only idle time.
    const timer = setTimeout(() => req.destroy(fail(`did not answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e.message.startsWith(name) ? e : fail(e.message));
    });
    req.end(payload);
  });
}

/** GET from a peer: its JSON on 200, else throws (PeerStatusError for an error status). */
export async function getFromPeer<T>(peer: HttpPeer, pathAndQuery: string, password: string): Promise<T> {
  const timeout = peer.silent === true ? SILENT_PEER_TIMEOUT_MS : PEER_TIMEOUT_MS;
  const { status, json } = await peerRequest(peer, 'GET', pathAndQuery, password, undefined, timeout);
  if (status !== 200) throw new PeerStatusError(status, `${peerName(peer)}: ${errorText(json) ?? `HTTP ${status}`}`);
  return json as T;
}

export function errorText(json: unknown): string | undefined {
  const e = (json as { error?: unknown } | null)?.error;
  return typeof e === 'string' ? e : undefined;
}

/** Asks every peer in parallel; answers in the peers' order, failures with their error. */
export async function askPeers<T>(peers: HttpPeer[], pathAndQuery: string, password: string): Promise<PeerAnswer<T>[]> {
  return Promise.all(
    peers.map(async (peer) => {
      try {
        return { peer, value: await getFromPeer<T>(peer, pathAndQuery, password) };
      } catch (e) {
        return { peer, value: null, error: (e as Error).message };
      }
    }),
  );
}
