// ADDJOB under a network partition, before the failure detector notices:
// three nodes on their own loopback addresses, C cut off from A and B with
// iptables (chaos/partition.ts; needs root, as CI has). For the node timeout
// A still counts C as reachable; an ADDJOB whose copy went to C waits until
// A adds another node. A picks the nodes that answer first, so only the
// first few ADDJOBs after the cut wait, and those by about 50 ms, not a
// cron period. The guarantees stay: the reply means the copies exist, and
// a replication level the reachable nodes cannot reach is -NOREPL.
import { describe, it, expect, afterAll } from 'vitest';
import type { ServerHandle } from '../helpers/server.js';
import { clusterNodes } from '../helpers/cluster.js';
import { startPartitioned, type PartitionedCluster } from '../helpers/partitioned.js';

let pc: PartitionedCluster | null = null;

afterAll(async () => {
  await pc?.destroy();
});

describe('ADDJOB under a partition', () => {
  it('picks the nodes that answer: a silent node delays only the first ADDJOBs after the cut, by about 50 ms', async () => {
    // A node timeout far longer than the test: C is never PFAIL here.
    // Every ADDJOB that waited 1 ms or more logs its replication.
    pc = await startPartitioned(3, 89, { 'cluster-node-timeout': '60000', 'repl-trace-slower-than': '1' });
    const { partitions, conn } = pc;
    const [a, b, c] = pc.servers as [ServerHandle, ServerHandle, ServerHandle];
    const ra = conn(a);
    const cId = (await conn(c).call('CLUSTER', 'MYID')) as string;

    partitions.split([c.host], [a.host, b.host]);
    const rb = conn(b);
    const times: number[] = [];
    for (let k = 0; k < 60; k++) {
      const t0 = performance.now();
      const id = (await ra.call('ADDJOB', 'part-q', `j${k}`, '5000', 'REPLICATE', '2')) as string;
      times.push(performance.now() - t0);
      // The reply means two copies: A's and B's (C cannot have confirmed).
      expect(await rb.call('SHOW', id)).not.toBeNull();
    }
    // An ADDJOB whose copy went to C waits at least 50 ms for B to be added.
    // Without the preference about half of them (those that picked C) did.
    const slow = times.filter((t) => t >= 45);
    expect(slow.length).toBeLessThanOrEqual(5);
    expect(Math.max(...times)).toBeLessThan(1000);
    // A is still unaware of the partition: C is not flagged failing.
    const cSeen = (await clusterNodes(ra)).find((n) => n.id === cId)!;
    expect(cSeen.flags).not.toContain('fail?');

    // The trace, whatever the machine's load: C was picked, then B added
    // (with B's GOTJOB, then the reply), by one or two of the 60 only.
    const added = a
      .log()
      .split('\n')
      .filter((l) => l.includes('Slow replication') && l.includes('; added '));
    expect(added.length).toBeLessThanOrEqual(2);
    for (const line of added) {
      expect(line).toMatch(new RegExp(`nodes ${cId.slice(0, 8)},\\w{8}; added \\w{8} \\+\\d+; GOTJOB \\w{8} \\+\\d+; reply \\+\\d+$`));
    }

    // Three copies cannot be made with C cut off: -NOREPL, as the reference says.
    await expect(ra.call('ADDJOB', 'part-q', 'three', '300', 'REPLICATE', '3')).rejects.toThrow(/^NOREPL Timeout reached before replicating to the requested number of nodes/);
  }, 60_000);
});
