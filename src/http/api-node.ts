// This node and the cluster: /api/node, /api/cluster, and the health checks
// /healthz and /readyz (docs/http-api.md).
import type { Router } from './router.js';
import { sendJson, sendText } from './router.js';
import type { Api } from './api.js';
import { askPeers } from './peers.js';
import { VERSION } from '../config/version.js';

export interface NodeInfo {
  id: string;
  addr: string;
  httpPort: number;
  version: string;
  uptime: number;
  state: 'ok';
  jobs: number;
  queues: number;
  memory: { used: number; max: number };
  clients: { connected: number; blocked: number };
  persistence: { enabled: boolean; ok: boolean; backlog: number; lastSnapshotAt: number | null; lastSnapshotBytes: number };
  totals: { added: number; delivered: number; acked: number; nacked: number };
}

export function nodeInfo(api: Api): NodeInfo {
  const host = api.host;
  const store = host.store;
  const me = host.peers().find((p) => p.myself);
  const p = host.persistence();
  return {
    id: host.myId,
    addr: api.addrOf(me?.ip ?? '', host.port),
    httpPort: api.httpPort(),
    version: VERSION,
    uptime: host.uptimeSeconds,
    state: 'ok',
    jobs: store.jobCount,
    queues: store.queueCount,
    memory: { used: store.usedMemory, max: store.maxmemory },
    clients: { connected: host.clientsConnected, blocked: store.blockedCount },
    persistence: {
      enabled: p.enabled,
      ok: !p.misconf,
      backlog: p.backlog,
      lastSnapshotAt: p.lastSnapshotTime > 0 ? Math.floor(p.lastSnapshotTime / 1000) : null,
      lastSnapshotBytes: p.lastSnapshotBytes,
    },
    totals: { ...store.totals },
  };
}

/** Why the node is not ready, if it is not ([] when ready). */
export function notReadyReasons(api: Api): string[] {
  const host = api.host;
  const reasons: string[] = [];
  if (host.loading) reasons.push('loading persisted jobs');
  if (!host.listening) reasons.push('the client port is not listening');
  const p = host.persistence();
  if (p.enabled && p.misconf) reasons.push('persistence to Redis is failing (MISCONF)');
  const need = Math.min(3, host.clusterSize);
  const reachable = host.reachablePeers + 1;
  if (reachable < need) reasons.push(`${reachable} of the ${need} nodes replication needs are reachable`);
  return reasons;
}

export function registerNodeRoutes(router: Router, api: Api): void {
  router.on('GET', '/healthz', ({ res }) => sendText(res, 200, 'ok\n'));

  router.on('GET', '/readyz', ({ res }) => {
    const reasons = notReadyReasons(api);
    const host = api.host;
    const figures = { clusterSize: host.clusterSize, reachable: host.reachablePeers + 1 };
    if (reasons.length === 0) sendJson(res, 200, { ready: true, ...figures });
    else sendJson(res, 503, { ready: false, reasons, ...figures });
  });

  router.on('GET', '/api/node', () => nodeInfo(api));

  router.on('GET', '/api/cluster', async () => {
    const peers = api.host.peers();
    const asked = await askPeers<NodeInfo>(api.otherNodes(), '/api/node', api.password);
    const answers = new Map(asked.map((a) => [a.peer.id, a]));
    return {
      self: api.host.myId,
      nodes: peers.map((p) => {
        const a = answers.get(p.id);
        const node = p.myself ? nodeInfo(api) : (a?.value ?? null);
        const error = p.myself ? undefined : a === undefined ? `not asked: the node is in state ${p.state}` : a.error;
        return {
          id: p.id,
          addr: api.addrOf(p.ip, p.port),
          httpPort: p.myself ? api.httpPort() : p.httpPort,
          state: p.state,
          myself: p.myself,
          node,
          ...(error === undefined ? {} : { error }),
        };
      }),
    };
  });
}
