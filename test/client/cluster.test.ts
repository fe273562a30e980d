// The client and worker against a real three node cluster (joined with
// CLUSTER MEET): node discovery through HELLO, moving to producers, moving
// away from a node that is leaving (CLUSTER LEAVING yes) or that died,
// without losing the request in progress.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startCluster, type TestCluster, type ClusterNodeHandle } from '../helpers/cluster.js';
import { waitFor } from '../helpers/server.js';
import { Disque, Worker, type FailoverReason } from '../../src/client/index.js';

let c: TestCluster;
let A: ClusterNodeHandle;
let B: ClusterNodeHandle;
let C: ClusterNodeHandle;
const clients: Disque<unknown>[] = [];

function connectTo(n: ClusterNodeHandle, options: ConstructorParameters<typeof Disque>[0] = {}): Disque {
  const d = new Disque({ nodes: `127.0.0.1:${n.server.port}`, failoverTimeout: 8000, ...options });
  clients.push(d as Disque<unknown>);
  return d;
}

let qn = 0;
const queue = () => `cl-${++qn}`;

beforeAll(async () => {
  c = await startCluster(3);
  [A, B, C] = c.nodes as [ClusterNodeHandle, ClusterNodeHandle, ClusterNodeHandle];
});
afterAll(async () => {
  for (const d of clients) d.disconnect();
  await c?.destroy();
});

describe('cluster', () => {
  it('learns every node from HELLO when given one address', async () => {
    const d = connectTo(B);
    const node = await d.connect();
    expect(node.id).toBe(B.id);
    const known = d.knownNodes().sort((x, y) => x.port - y.port);
    expect(known.map((n) => n.id).sort()).toEqual([A.id, B.id, C.id].sort());
    for (const n of known) {
      expect(n.host).toBe('127.0.0.1');
      expect(n.priority).toBe(1);
    }
    expect(known.map((n) => n.port).sort()).toEqual([A, B, C].map((x) => x.server.port).sort());
  });

  it('follows producers: moves to the node that created most jobs it receives', async () => {
    const q = queue();
    const consumer = connectTo(B, { followProducers: { window: 4, threshold: 0.75 } });
    await consumer.connect();
    const producer = connectTo(C);
    for (let i = 0; i < 4; i++) await producer.addJob(q, `j${i}`, { replicate: 1 });
    let got = 0;
    // B imports the jobs from C for its blocked consumer (federation).
    await waitFor(
      async () => {
        got += (await consumer.getJob(q, { count: 4, timeout: 1000 })).length;
        return got >= 4;
      },
      'the consumer on B receives the four jobs made on C',
      15000,
    );
    expect(consumer.node?.id).toBe(C.id);
    // Still a working connection after the move.
    const id = await producer.addJob(q, 'direct', { replicate: 1 });
    expect((await consumer.getJob(q, { timeout: 2000 }))[0]?.id).toBe(id);
  });

  it('a scan whose client moves to another node starts over there', async () => {
    const prefix = `move-scan-${Date.now()}-`;
    for (let i = 0; i < 30; i++) await B.r.call('ADDJOB', `${prefix}b${i}`, 'x', '0', 'REPLICATE', '1');
    const onC = `${prefix}c`;
    await C.r.call('ADDJOB', onC, 'x', '0', 'REPLICATE', '1');
    // The scan on B takes more than one call, so it is still running when the client moves.
    expect(((await B.r.call('QSCAN', '0', 'COUNT', '2')) as [string, unknown])[0]).not.toBe('0');
    const d = connectTo(B, { preferBestNode: false });
    expect((await d.connect()).id).toBe(B.id);
    const seen: string[] = [];
    for await (const name of d.qscan({ count: 2 })) {
      if (seen.push(name) === 1) expect(await d.moveTo(C.id)).toBe(true);
    }
    expect(d.node?.id).toBe(C.id);
    expect(seen).toContain(onC);
  });

  it('a worker on a node that starts leaving moves to another node and keeps processing', async () => {
    const q = queue();
    const client = connectTo(A);
    expect((await client.connect()).id).toBe(A.id);
    const processed: string[] = [];
    const worker = new Worker(client, q, (job) => void processed.push(job.body.toString()), { fetchTimeout: 300 });
    const errors: unknown[] = [];
    worker.on('error', (e) => errors.push(e));
    try {
      await client.addJob(q, 'before', { replicate: 1 });
      await waitFor(() => worker.stats().completed === 1, 'the job made on A is processed', 10000);
      // The worker is now blocked in GETJOB (no timeout) on A.
      const failovers: FailoverReason[] = [];
      const plain = connectTo(A);
      plain.on('failover', (f) => failovers.push(f.reason));
      const blocked = plain.getJob(`${q}-plain`);
      blocked.catch(() => {}); // awaited below; a failed test must not leave it unhandled
      await waitFor(async () => (await client.qstat(q))?.blocked === 1, 'the worker blocks on A', 5000);
      await waitFor(async () => (await client.qstat(`${q}-plain`))?.blocked === 1, 'the plain client blocks on A', 5000);

      expect(await A.r.call('CLUSTER', 'LEAVING', 'yes')).toBe('OK');
      // The blocked GETJOB gets -LEAVING: the same request goes on on B or C.
      await waitFor(() => plain.node !== undefined && plain.node.id !== A.id, 'the plain client moves away from A', 10000);
      expect(failovers).toContain('leaving');
      const other = plain.node!.id === B.id ? B : C;
      const plainJob = await other.r.call('ADDJOB', `${q}-plain`, 'for the plain client', '0', 'REPLICATE', '1');
      expect((await blocked)[0]?.id).toBe(plainJob);
      await waitFor(() => worker.node !== undefined && worker.node.id !== A.id, 'the worker moves away from A', 10000);
      const fetchingFrom = worker.node!.id === B.id ? B : C;
      await fetchingFrom.r.call('ADDJOB', q, 'after', '0', 'REPLICATE', '1');
      await waitFor(() => worker.stats().completed === 2, 'the job made after A started leaving is processed', 15000);
      expect(processed).toEqual(['before', 'after']);
      expect(errors).toEqual([]);
    } finally {
      await worker.close(2000);
    }
  });

  it('a client given only a leaving node moves to a node with a better priority', async () => {
    for (const n of [A, B, C]) {
      await waitFor(
        async () => {
          const hello = (await n.r.call('HELLO')) as unknown[];
          const a = (hello.slice(2) as string[][]).find((e) => e[0] === A.id);
          return Number(a?.[3]) === 100;
        },
        `HELLO on ${n.server.port} reports A with priority 100`,
        10000,
      );
    }
    const d = connectTo(A);
    const node = await d.connect();
    expect(node.id).not.toBe(A.id);
    expect(node.priority).toBe(1);
    expect(d.knownNodes().find((n) => n.id === A.id)?.priority).toBe(100);
  });

  it('when the node dies, a blocked getJob and later commands go on on another node', async () => {
    const q = queue();
    const d = connectTo(B, { preferBestNode: false });
    expect((await d.connect()).id).toBe(B.id);
    const failovers: FailoverReason[] = [];
    d.on('failover', (f) => failovers.push(f.reason));
    const blocked = d.getJob(q);
    blocked.catch(() => {}); // awaited below
    await waitFor(async () => (await B.r.call('QSTAT', q)) !== null, 'the client blocks on B', 5000);
    await c.kill9(1);
    await waitFor(() => d.node?.id === C.id, 'the client moves to C (A is leaving)', 10000);
    expect(failovers).toContain('connection-lost');
    const id = (await C.r.call('ADDJOB', q, 'on C', '0', 'REPLICATE', '1')) as string;
    expect((await blocked)[0]?.id).toBe(id);
    expect(await d.addJob(q, 'more', { replicate: 1 })).toMatch(new RegExp(`^D-${C.id.slice(0, 8)}-`));
  });
});
