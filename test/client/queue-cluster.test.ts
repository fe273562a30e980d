// client.counts() and client.drain() on a real three node cluster: each job
// counted once however many nodes hold a copy, jobs queued on a node the
// client is not connected to, drained jobs acknowledged on every node that
// holds them, and a node that cannot be asked.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startCluster, type TestCluster, type ClusterNodeHandle } from '../helpers/cluster.js';
import { waitFor } from '../helpers/server.js';
import { Disque, UnreachableNodesError } from '../../src/client/index.js';

let c: TestCluster;
let A: ClusterNodeHandle;
let B: ClusterNodeHandle;
let C: ClusterNodeHandle;
const clients: Disque[] = [];

/** A client that stays on node `n` (jobs are added and taken there). */
function on(n: ClusterNodeHandle): Disque {
  const d = new Disque({ nodes: n.server.port, discover: false, preferBestNode: false });
  clients.push(d);
  return d;
}

beforeAll(async () => {
  c = await startCluster(3);
  [A, B, C] = c.nodes as [ClusterNodeHandle, ClusterNodeHandle, ClusterNodeHandle];
});
afterAll(async () => {
  for (const d of clients) d.disconnect();
  await c?.destroy();
});

describe('a queue across the cluster', () => {
  it('counts each job once, wherever it is queued and however many copies it has; drain deletes them on every node', async () => {
    const q = `cq-${Date.now()}`;
    const a = on(A);
    const b = on(B);
    const cc = on(C);
    // Queued on A, with copies on B and C.
    const replicated = (await a.addJobs(q, ['r1', 'r2', 'r3'], { replicate: 3, retry: 1 })).ids as string[];
    // Queued on C only.
    const local = (await cc.addJobs(q, ['c1', 'c2'], { replicate: 1 })).ids as string[];
    // Delayed, with a copy on two nodes.
    await a.addJob(q, 'later', { replicate: 2, delay: 600 });
    // Delivered by C, not acknowledged.
    const [taken] = await cc.getJob(q, { noHang: true });
    expect(local).toContain(taken!.id);

    // Asked from B, which queues none of them.
    expect(await b.counts(q)).toEqual({ queued: 4, active: 1, delayed: 1, unreachable: [] });

    expect(await b.drain(q)).toBe(4);
    expect(await b.counts(q)).toEqual({ queued: 0, active: 1, delayed: 1, unreachable: [] });
    // Acknowledged, not only dequeued: every copy goes (with RETRY 1 a copy
    // left on B or C would queue the job again within a second or two).
    const drained = [...replicated, ...local.filter((id) => id !== taken!.id)];
    for (const n of [a, b, cc]) {
      await waitFor(
        async () => (await Promise.all(drained.map((id) => n.show(id)))).every((j) => j === null),
        `node ${n.node?.port} has no copy of the drained jobs`,
        10000,
      );
    }
    expect((await cc.show(taken!.id))?.state).toBe('active');
  });

  it('with a node down: counts lists it as unreachable, drain drains the others and throws UnreachableNodesError', async () => {
    const q = `cq-down-${Date.now()}`;
    const a = on(A);
    const cc = on(C);
    await a.addJobs(q, ['a1', 'a2'], { replicate: 1 });
    await cc.addJob(q, 'c1', { replicate: 1 });
    await a.hello(); // A lists C (the client asks HELLO again in counts and drain)
    await c.kill9(2);
    const counts = await a.counts(q);
    expect(counts).toEqual({ queued: 2, active: 0, delayed: 0, unreachable: [C.id] });
    const e = await a.drain(q).then(
      () => new Error('drain should have thrown'),
      (err: Error) => err,
    );
    expect(e).toBeInstanceOf(UnreachableNodesError);
    expect((e as UnreachableNodesError).nodeIds).toEqual([C.id]);
    expect((e as UnreachableNodesError).done).toBe(2);
    expect(e.message).toContain(C.id.slice(0, 8));
    expect(await a.qlen(q)).toBe(0);
  });
});
