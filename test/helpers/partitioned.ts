// Three (or more) nodes on their own loopback addresses, joined, that a test
// can cut apart with iptables (chaos/partition.ts; needs root, as CI has).
// Clients connect from 127.0.0.1, which the partitions do not cut off.
import type Redis from 'ioredis';
import { startServer, waitFor, type ServerHandle } from './server.js';
import { client, clusterNodes } from './cluster.js';
import { Partitions } from '../../chaos/partition.js';

export interface PartitionedCluster {
  servers: ServerHandle[];
  partitions: Partitions;
  /** A new client of `s`, closed by destroy(). */
  conn(s: ServerHandle): Redis;
  destroy(): Promise<void>;
}

/** `size` nodes at 127.`net`.(pid % 250 + 1).(1..size), joined by CLUSTER MEET. */
export async function startPartitioned(size: number, net: number, config: Record<string, string>): Promise<PartitionedCluster> {
  const servers: ServerHandle[] = [];
  const conns: Redis[] = [];
  const partitions = Partitions.create();
  const conn = (s: ServerHandle): Redis => {
    const r = client(s.port, s.host);
    conns.push(r);
    return r;
  };
  const pc: PartitionedCluster = {
    servers,
    partitions,
    conn,
    async destroy() {
      partitions.destroy();
      for (const r of conns) r.disconnect();
      await Promise.all(servers.map((s) => s.destroy()));
    },
  };
  try {
    const prefix = `127.${net}.${(process.pid % 250) + 1}.`;
    for (let i = 0; i < size; i++) servers.push(await startServer({ host: `${prefix}${i + 1}`, config }));
    const first = conn(servers[0]!);
    for (const s of servers.slice(1)) await first.call('CLUSTER', 'MEET', s.host, String(s.port));
    for (const s of servers) {
      const r = conn(s);
      await waitFor(async () => (await clusterNodes(r)).filter((n) => n.link === 'connected').length === size, `${s.host} joined`);
    }
  } catch (e) {
    await pc.destroy();
    throw e;
  }
  return pc;
}
