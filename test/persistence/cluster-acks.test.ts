// Acknowledgements outlive kill -9 with `appendonly yes`: a node that missed
// an ACKJOB (it was down) must not queue the job again after every node that
// heard the ACK crashed and restarted. Three nodes on the shared Redis, under
// a key prefix of their own.
import { describe, it, expect, afterEach } from 'vitest';
import { Redis } from 'ioredis';
import { startCluster, waitMesh, pairs, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/server.js';
import { SHARED_REDIS_URL, testPrefix, deleteUnder, info } from './helpers.js';

let cluster: TestCluster | null = null;
let prefix = '';

afterEach(async () => {
  await cluster?.destroy();
  cluster = null;
  const shared = new Redis(SHARED_REDIS_URL);
  await deleteUnder(shared, prefix);
  shared.disconnect();
});

async function state(r: Redis, id: string): Promise<string | null> {
  const reply = await r.call('SHOW', id);
  return reply === null ? null : String(pairs(reply).state);
}

describe('acknowledgements across restarts', () => {
  it('a node that missed the ACK does not queue the job again after the nodes that heard it were killed -9 and restarted', async () => {
    prefix = testPrefix();
    cluster = await startCluster(3, { config: { appendonly: 'yes', 'redis-key-prefix': prefix } });
    const [a, b, c] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const id = (await a.r.call('ADDJOB', 'acked-q', 'body', '0', 'REPLICATE', '3', 'RETRY', '1')) as string;
    for (const n of cluster.nodes) expect(await state(n.r, id)).not.toBeNull();

    await cluster.kill9(2);
    const got = (await a.r.call('GETJOB', 'NOHANG', 'FROM', 'acked-q')) as string[][];
    expect(got[0]![1]).toBe(id);
    expect(await a.r.call('ACKJOB', id)).toBe(1);
    // C holds a copy and cannot confirm: A and B keep the job acked, and
    // the ACKJOB reply came after Redis took the acked state.
    await waitFor(async () => (await state(b.r, id)) === 'acked', 'B heard the ACK');
    // B writes its copy and its acked state to Redis in the background (no
    // reply waits for them; under load that can take longer than the rest
    // of this test before the kill). A journaled command's reply comes after
    // Redis confirmed it and everything B wrote before it.
    await b.r.call('ADDJOB', 'barrier-q', 'x', '0', 'REPLICATE', '1');
    expect(await state(a.r, id)).toBe('acked');
    // A's acked job also goes into a snapshot (B keeps only its journal).
    expect(await a.r.call('BGREWRITEAOF')).toBe('Background append only file rewriting started');
    await waitFor(async () => Number(await info(a.r, 'aof_last_snapshot_jobs')) === 1, 'A wrote its snapshot');

    await Promise.all([cluster.kill9(0), cluster.kill9(1)]);
    await Promise.all([cluster.restart(0), cluster.restart(1)]);
    expect(await state(a.r, id)).toBe('acked');
    expect(await state(b.r, id)).toBe('acked');

    // C comes back with the copy it held, active; RETRY 1 would queue it at
    // once unless A or B tell it the job is acknowledged.
    await cluster.restart(2);
    await waitMesh(cluster);
    await waitFor(
      async () => (await Promise.all(cluster!.nodes.map((n) => state(n.r, id)))).every((s) => s === null),
      'the job collected on every node',
      20000,
    );
    expect(await c.r.call('QLEN', 'acked-q')).toBe(0);
    expect(await c.r.call('GETJOB', 'NOHANG', 'FROM', 'acked-q')).toBeNull();
  });
});
