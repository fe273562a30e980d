// Schedules on a 3-node cluster: two scheduler processes on different nodes,
// one node killed -9 during the run. Tokens have 2 copies, so the chain
// survives the node; every tick in the window is enqueued once. Needs
// `npm run build` (the scheduler processes run dist/).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/server.js';
import { spawnScheduler, TickConsumer, sleep, type SchedulerProcess } from '../fixtures/schedule-helpers.js';

let cluster: TestCluster;
const procs: SchedulerProcess[] = [];
let consumer: TickConsumer | undefined;

beforeAll(async () => {
  cluster = await startCluster(3);
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill9()));
  await consumer?.close();
  await cluster?.destroy();
});

describe('two scheduler processes, 3 nodes', () => {
  it('every second for 30 s, a node killed -9 half way: each tick exactly once', async () => {
    const ports = cluster.nodes.map((n) => n.server.port);
    const name = `cluster-${process.pid}`;
    const queue = `cluster-ticks-${process.pid}`;
    consumer = new TickConsumer(ports, queue);
    const cfg = {
      name,
      queue,
      spec: { every: 1 },
      scheduler: { retry: 2 },
      // Tick jobs too must be addable with a node down (the server's default is 3 copies).
      jobOptions: { replicate: 2, retry: 2 },
    };
    const a = spawnScheduler({ ...cfg, nodes: [ports[0]!] });
    const b = spawnScheduler({ ...cfg, nodes: [ports[1]!] });
    procs.push(a, b);
    await Promise.all([a.ready, b.ready]);
    const from = Date.now() + 3000;
    await sleep(15_000);
    await cluster.kill9(0); // the node process A is connected to
    const killedAt = Date.now();
    const before = a.ticks() + b.ticks();
    await sleep(15_000);
    const to = Date.now() - 4000; // ticks within RETRY of the end may still be on their way
    await waitFor(() => consumer.missing(from, to).length === 0, 'every tick of the window to arrive', 15_000).catch(() => {});
    const missing = consumer.missing(from, to);
    const dup = consumer.duplicates();
    console.log(
      `every 1 s, 2 processes, 3 nodes: ${Math.floor((to - from) / 1000) + 1} ticks expected in the window, ` +
        `${consumer.ticks.size} seen in all, missing ${missing.length}, duplicates ${dup.extra}; ` +
        `node killed at +${Math.round((killedAt - from) / 1000)} s; enqueued by A ${a.ticks()}, by B ${b.ticks()}, ` +
        `${a.ticks() + b.ticks() - before} after the kill`,
    );
    expect(missing).toEqual([]);
    expect(dup.extra).toBeLessThanOrEqual(1);
    expect(a.ticks() + b.ticks() - before).toBeGreaterThan(10);
  }, 90_000);
});
