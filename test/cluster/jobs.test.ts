// Jobs across the cluster, with real processes: synchronous replication,
// re-queue by survivors after kill -9, ack collection, fast ack,
// federation, NOREPL, and PAUSE BCAST.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startCluster, pairs, infoField, client, waitMesh, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/server.js';
import { err } from '../helpers/replies.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster(5);
});
afterAll(async () => {
  await c?.destroy();
});

/** Nodes (indexes) that hold the job, with its state there. */
async function copies(id: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (let i = 0; i < c.nodes.length; i++) {
    if (c.nodes[i]!.server.proc === null) continue;
    const show = await c.nodes[i]!.r.call('SHOW', id);
    if (show !== null) out.set(i, pairs(show).state as string);
  }
  return out;
}


let qn = 0;
const queue = () => `cq${++qn}`;

describe('replication and re-queue', () => {
  it('REPLICATE 3 leaves three copies, queued on the node that created it only', async () => {
    const id = (await c.nodes[0]!.r.call('ADDJOB', queue(), 'three', '5000', 'REPLICATE', '3')) as string;
    const show = pairs(await c.nodes[0]!.r.call('SHOW', id));
    expect(show.state).toBe('queued');
    expect(show.repl).toBe(3);
    expect(show['nodes-delivered']).toHaveLength(3);
    expect(show['nodes-delivered']).toContain(c.nodes[0]!.id);
    const held = await copies(id);
    expect(held.size).toBe(3);
    expect([...held.values()].sort()).toEqual(['active', 'active', 'queued']);
    expect(held.get(0)).toBe('queued');
  });

  it('defaults to 3 copies on a cluster of 3 or more nodes', async () => {
    const id = (await c.nodes[1]!.r.call('ADDJOB', queue(), 'default', '5000')) as string;
    expect((await copies(id)).size).toBe(3);
  });

  it('replicates many concurrent jobs (one REPLJOB carries the jobs of a turn to a node, one GOTJOB confirms them)', async () => {
    // A client waits for each ADDJOB's replication before its next request
    // runs, so many clients at once give the replicas several REPLJOBs per read.
    const q = queue();
    const node = c.nodes[2]!;
    const clients = Array.from({ length: 30 }, () => client(node.server.port));
    try {
      const ids = (
        await Promise.all(
          clients.map((r, k) => Promise.all(Array.from({ length: 10 }, (_, i) => r.call('ADDJOB', q, `many ${k}-${i}`, '5000', 'REPLICATE', '5')))),
        )
      ).flat() as string[];
      expect(new Set(ids).size).toBe(300);
      expect(await node.r.call('QLEN', q)).toBe(300);
      for (const id of [ids[0]!, ids[150]!, ids[299]!]) expect((await copies(id)).size).toBe(5);
    } finally {
      for (const r of clients) r.disconnect();
    }
  });

  it('NOREPL when the reachable nodes cannot hold the copies', async () => {
    expect(await err(c.nodes[0]!.r.call('ADDJOB', queue(), 'x', '2000', 'REPLICATE', '6'))).toBe(
      'NOREPL Not enough reachable nodes for the requested replication level',
    );
  });

  it('survivors re-queue and deliver a job after two of its three holders die', async () => {
    const q = queue();
    const id = (await c.nodes[0]!.r.call('ADDJOB', q, 'survive', '5000', 'REPLICATE', '3', 'RETRY', '1')) as string;
    const holders = [...(await copies(id)).keys()];
    const victims = holders.filter((i) => i !== holders[holders.length - 1]).slice(0, 2);
    const survivor = holders.find((i) => !victims.includes(i))!;
    for (const v of victims) await c.kill9(v);
    try {
      await waitFor(async () => (await c.nodes[survivor]!.r.call('QLEN', q)) === 1, 'survivor queues the job', 15000);
      expect(await c.nodes[survivor]!.r.call('GETJOB', 'FROM', q)).toEqual([[q, id, 'survive']]);
      expect(pairs(await c.nodes[survivor]!.r.call('SHOW', id))['additional-deliveries']).toBeGreaterThanOrEqual(0);
    } finally {
      for (const v of victims) await c.restart(v);
    }
    await waitMesh(c);
  });
});

describe('acks', () => {
  it('an ACKJOB to a node without a copy collects every copy', async () => {
    const id = (await c.nodes[0]!.r.call('ADDJOB', queue(), 'ackme', '5000', 'REPLICATE', '3')) as string;
    const held = await copies(id);
    const outsider = [0, 1, 2, 3, 4].find((i) => !held.has(i))!;
    expect(await c.nodes[outsider]!.r.call('ACKJOB', id)).toBe(0);
    await waitFor(async () => (await copies(id)).size === 0, 'every copy collected', 15000);
  });

  it('an ACKJOB to the owner collects every copy', async () => {
    const id = (await c.nodes[2]!.r.call('ADDJOB', queue(), 'ackme2', '5000', 'REPLICATE', '3')) as string;
    expect(await c.nodes[2]!.r.call('ACKJOB', id)).toBe(1);
    await waitFor(async () => (await copies(id)).size === 0, 'every copy collected', 15000);
  });

  it('FASTACK deletes the copies everywhere, known here or not', async () => {
    const a = (await c.nodes[0]!.r.call('ADDJOB', queue(), 'fast1', '5000', 'REPLICATE', '3')) as string;
    expect(await c.nodes[0]!.r.call('FASTACK', a)).toBe(1);
    await waitFor(async () => (await copies(a)).size === 0, 'fast-acked copies deleted');
    const b = (await c.nodes[0]!.r.call('ADDJOB', queue(), 'fast2', '5000', 'REPLICATE', '3')) as string;
    const held = await copies(b);
    const outsider = [0, 1, 2, 3, 4].find((i) => !held.has(i))!;
    expect(await c.nodes[outsider]!.r.call('FASTACK', b)).toBe(0);
    await waitFor(async () => (await copies(b)).size === 0, 'copies deleted by broadcast DELJOB');
  });
});

describe('federation and pause', () => {
  it('a consumer on one node receives jobs produced on another', async () => {
    const q = queue();
    const consumer = c.nodes[3]!.r;
    const blocking = client(c.nodes[3]!.server.port);
    const waiting = blocking.call('GETJOB', 'TIMEOUT', '10000', 'FROM', q).finally(() => blocking.disconnect());
    await waitFor(
      async () => infoField((await consumer.call('INFO', 'clients')) as string, 'blocked_clients') === '1',
      'consumer blocked',
    );
    const id = (await c.nodes[0]!.r.call('ADDJOB', q, 'travel', '5000', 'REPLICATE', '1', 'RETRY', '30')) as string;
    expect(await waiting).toEqual([[q, id, 'travel']]);
    const stat = pairs(await consumer.call('QSTAT', q));
    expect(stat['import-from']).toEqual([c.nodes[0]!.id]);
    expect(stat['import-rate']).toBeGreaterThanOrEqual(1);
    expect(((await consumer.call('QSCAN', 'BUSYLOOP', 'IMPORTRATE', '1')) as [string, string[]])[1]).toContain(q);
  });

  it('PAUSE BCAST sets the same state on every reachable node', async () => {
    const q = queue();
    expect(await c.nodes[0]!.r.call('PAUSE', q, 'in', 'bcast')).toBe('in');
    for (const n of c.nodes) {
      await waitFor(async () => (await n.r.call('PAUSE', q, 'state')) === 'in', `pause reaches ${n.server.port}`);
    }
    expect(await err(c.nodes[4]!.r.call('ADDJOB', q, 'x', '0'))).toBe('PAUSED Queue paused in input, try later');
    expect(await c.nodes[0]!.r.call('PAUSE', q, 'none', 'bcast')).toBe('none');
    for (const n of c.nodes) {
      await waitFor(async () => (await n.r.call('PAUSE', q, 'state')) === 'none', `unpause reaches ${n.server.port}`);
    }
  });
});
