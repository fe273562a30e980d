// Several real server processes joined into a cluster with CLUSTER MEET.
import Redis from 'ioredis';
import { startServer, waitFor, type ServerHandle, type ServerOptions } from './server.js';
import { infoField } from './replies.js';

export { pairs, infoField } from './replies.js';

export interface ClusterNodeHandle {
  server: ServerHandle;
  /** A client connected to this node (reconnects after restarts). */
  r: Redis;
  id: string;
}

export interface TestCluster {
  nodes: ClusterNodeHandle[];
  /** The node whose ID is `id`. */
  byId(id: string): ClusterNodeHandle;
  kill9(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  destroy(): Promise<void>;
}

export function client(port: number, host = '127.0.0.1'): Redis {
  const r = new Redis({
    port,
    host,
    protocol: 2,
    maxRetriesPerRequest: 2,
    retryStrategy: () => 100,
    lazyConnect: false,
  });
  // Nodes are killed on purpose: connection errors are expected.
  r.on('error', () => {});
  return r;
}

/** Parsed CLUSTER NODES lines. */
export async function clusterNodes(r: Redis): Promise<{ id: string; addr: string; flags: string[]; link: string }[]> {
  const text = (await r.call('CLUSTER', 'NODES')) as string;
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id, addr, flags, , , link] = l.split(' ');
      return { id: id!, addr: addr!, flags: flags!.split(','), link: link! };
    });
}

export async function startCluster(size: number, opts: ServerOptions = {}, join = true): Promise<TestCluster> {
  const config = { 'cluster-node-timeout': '2000', loglevel: 'verbose', ...(opts.config ?? {}) };
  const servers = await Promise.all(Array.from({ length: size }, () => startServer({ ...opts, config })));
  const nodes: ClusterNodeHandle[] = [];
  for (const server of servers) {
    const r = client(server.port);
    nodes.push({ server, r, id: (await r.call('CLUSTER', 'MYID')) as string });
  }
  if (join) {
    for (let i = 1; i < size; i++) await nodes[i - 1]!.r.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[i]!.server.port));
    for (const n of nodes) {
      await waitFor(
        async () => Number(infoField((await n.r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === size - 1,
        `node ${n.server.port} reaches the other ${size - 1} nodes`,
        20000,
      );
    }
  }
  const c: TestCluster = {
    nodes,
    byId(id) {
      const n = nodes.find((x) => x.id === id);
      if (!n) throw new Error(`no node ${id}`);
      return n;
    },
    async kill9(i) {
      await nodes[i]!.server.kill9();
    },
    async restart(i) {
      await nodes[i]!.server.restart();
      await waitFor(async () => (await nodes[i]!.r.call('PING')) === 'PONG', `node ${i} answers after restart`);
    },
    async destroy() {
      for (const n of nodes) n.r.disconnect();
      await Promise.all(nodes.map((n) => n.server.destroy()));
    },
  };
  return c;
}

/** Waits until every node sees every other one connected and not failing. */
export async function waitMesh(c: TestCluster, timeoutMs = 20000): Promise<void> {
  for (const n of c.nodes) {
    if (n.server.proc === null) continue;
    await waitFor(
      async () => {
        const nodes = await clusterNodes(n.r);
        const live = c.nodes.filter((x) => x.server.proc !== null).map((x) => x.id);
        return live.every((id) => {
          const e = nodes.find((x) => x.id === id);
          return e !== undefined && e.link === 'connected' && !e.flags.some((f) => f === 'fail' || f === 'fail?');
        });
      },
      `node ${n.server.port} sees a connected mesh`,
      timeoutMs,
    );
  }
}
