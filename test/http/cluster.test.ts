// The cluster-wide views over HTTP: each node learns the others' HTTP ports
// from their PINGs (hp) and asks them (docs/http-api.md). /api/cluster
// lists every node with its figures, /api/queues sums queue lengths over
// the nodes, ?node= reads and acts on a job another node holds, and
// /readyz is 503 while a node replication needs is missing or while
// persistence cannot write (MISCONF).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { client, infoField } from '../helpers/cluster.js';
import { get, postWithCsrf, startHttpServer } from '../helpers/http.js';
import { getFreePort, waitFor, type ServerHandle } from '../helpers/server.js';

type Node = { server: ServerHandle & { http: number }; r: Redis; id: string };
const nodes: Node[] = [];

beforeAll(async () => {
  const servers = await Promise.all([0, 1, 2].map(() => startHttpServer({ config: { 'cluster-node-timeout': '2000' } })));
  for (const server of servers) {
    const r = client(server.port);
    nodes.push({ server, r, id: (await r.call('CLUSTER', 'MYID')) as string });
  }
  for (let i = 1; i < 3; i++) await nodes[i - 1]!.r.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[i]!.server.port));
  for (const n of nodes) {
    await waitFor(
      async () => Number(infoField((await n.r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === 2,
      `node ${n.server.port} reaches the other two`,
    );
  }
  // Every node knows every other's HTTP port (from PINGs).
  for (const n of nodes) {
    await waitFor(async () => {
      const c = (await get(n.server.http, '/api/cluster')).json;
      return c.nodes.length === 3 && c.nodes.every((x: { httpPort: number }) => x.httpPort > 0);
    }, `node ${n.server.port} knows the HTTP ports`);
  }
}, 90_000);

afterAll(async () => {
  for (const n of nodes) n.r.disconnect();
  await Promise.all(nodes.map((n) => n.server.destroy()));
});

describe('a 3-node cluster over HTTP', () => {
  it('/api/cluster lists the 3 nodes, each with its own figures', async () => {
    const c = (await get(nodes[0]!.server.http, '/api/cluster')).json;
    expect(c.self).toBe(nodes[0]!.id);
    expect(c.nodes.map((n: { id: string }) => n.id).sort()).toEqual(nodes.map((n) => n.id).sort());
    for (const entry of c.nodes) {
      const mine = nodes.find((n) => n.id === entry.id)!;
      expect(entry).toMatchObject({ state: 'ok', myself: entry.id === nodes[0]!.id, httpPort: mine.server.http, addr: `127.0.0.1:${mine.server.port}` });
      expect(entry.error).toBeUndefined();
      expect(entry.node).toMatchObject({ id: entry.id, httpPort: mine.server.http, state: 'ok' });
      expect(typeof entry.node.jobs).toBe('number');
      expect(entry.node.memory.max).toBeGreaterThan(0);
    }
  });

  it('/api/queues sums a queue over the nodes that hold it', async () => {
    const counts = [2, 1, 3];
    for (let i = 0; i < 3; i++) {
      for (let k = 0; k < counts[i]!; k++) await nodes[i]!.r.call('ADDJOB', 'sumq', `job ${i}.${k}`, '0');
    }
    const q = (await get(nodes[1]!.server.http, '/api/queues')).json;
    expect(q.errors).toEqual([]);
    const row = q.queues.find((x: { name: string }) => x.name === 'sumq');
    expect(row.total).toBe(6);
    expect(row.perNode).toEqual({ [nodes[0]!.id]: 2, [nodes[1]!.id]: 1, [nodes[2]!.id]: 3 });
    expect(row.paused).toBe('none');
    const local = (await get(nodes[1]!.server.http, '/api/queues?local=1')).json;
    expect(local.queues.find((x: { name: string }) => x.name === 'sumq').total).toBe(1);
    const rates = (await get(nodes[1]!.server.http, '/api/rates')).json;
    expect(Array.isArray(rates.t)).toBe(true);
    expect(rates.t.length).toBe(rates.added.length);
  });

  it('reads and acts on a job another node holds (?node=)', async () => {
    const id = (await nodes[2]!.r.call('ADDJOB', 'remoteq', 'far away', '0', 'REPLICATE', '1')) as string;
    const path = `/api/job/${encodeURIComponent(id)}`;
    expect((await get(nodes[0]!.server.http, path)).status).toBe(404);
    const remote = await get(nodes[0]!.server.http, `${path}?node=${nodes[2]!.id}`);
    expect(remote.status).toBe(200);
    expect(remote.json.body.text).toBe('far away');
    const ack = await postWithCsrf(nodes[0]!.server.http, `${path}/ack?node=${nodes[2]!.id}`);
    expect(ack.json).toEqual({ ok: true, result: 1 });
    await waitFor(async () => (await nodes[2]!.r.call('SHOW', id)) === null, 'the job acked on its node');
    expect((await get(nodes[0]!.server.http, `${path}?node=${'f'.repeat(40)}`)).status).toBe(404);
  });

  it("a task call's progress record held by another node is found by asking the peers", async () => {
    const id = (await nodes[2]!.r.call('ADDJOB', 'tasks', '{}', '0', 'REPLICATE', '1')) as string;
    const path = `/api/job/${encodeURIComponent(id)}/progress`;
    expect((await get(nodes[0]!.server.http, path)).json).toEqual({ progress: null, node: nodes[0]!.id });
    // Two records on node 2 only, as a worker there leaves them (the newer one wins, by its sequence number).
    for (const seq of [2, 1]) {
      const body = JSON.stringify({ jobId: id, value: { step: seq }, seq, at: 1700000000000 + seq });
      await nodes[2]!.r.call('ADDJOB', `disque-ts-progress:${id}`, body, '0', 'REPLICATE', '1');
    }
    const found = await get(nodes[0]!.server.http, path);
    expect(found.status).toBe(200);
    expect(found.json).toEqual({ progress: { value: { step: 2 }, seq: 2, at: 1700000000002 }, node: nodes[2]!.id });
    expect((await get(nodes[0]!.server.http, `${path}?local=1`)).json).toEqual({ progress: null, node: nodes[0]!.id });
  });

  it('/readyz is 200 with all nodes, 503 while one of the 3 replication needs is missing', async () => {
    for (const n of nodes) expect((await get(n.server.http, '/readyz')).status).toBe(200);
    await nodes[2]!.server.kill9();
    await waitFor(async () => (await get(nodes[0]!.server.http, '/readyz')).status === 503, '/readyz 503 without node 3', 20_000);
    const ready = (await get(nodes[0]!.server.http, '/readyz')).json;
    expect(ready.ready).toBe(false);
    expect(ready.reasons.join(' ')).toMatch(/reachable/);
    const c = (await get(nodes[0]!.server.http, '/api/cluster')).json;
    const dead = c.nodes.find((n: { id: string }) => n.id === nodes[2]!.id);
    expect(dead.node).toBeNull();
    expect(typeof dead.error).toBe('string');
    const q = (await get(nodes[0]!.server.http, '/api/queues')).json;
    expect(q.errors.map((e: { node: string }) => e.node)).toEqual([nodes[2]!.id]);

    await nodes[2]!.server.restart();
    await waitFor(async () => (await get(nodes[0]!.server.http, '/readyz')).status === 200, '/readyz 200 again', 30_000);
  }, 90_000);
});

describe('/readyz and persistence', () => {
  it('is 503 while persistence is MISCONF (Redis unreachable), with the reason', async () => {
    const closed = await getFreePort();
    const h = await startHttpServer({ config: { appendonly: 'yes', 'redis-url': `redis://127.0.0.1:${closed}` } });
    try {
      await waitFor(async () => (await get(h.http, '/readyz')).status === 503, '/readyz 503 with Redis down', 20_000);
      const ready = (await get(h.http, '/readyz')).json;
      expect(ready.reasons.join(' ')).toMatch(/MISCONF/);
      const m = (await get(h.http, '/metrics')).text;
      expect(m).toMatch(/^disque_persistence_misconf 1$/m);
      expect((await get(h.http, '/api/node')).json.persistence).toMatchObject({ enabled: true, ok: false });
    } finally {
      await h.destroy();
    }
  }, 60_000);
});
