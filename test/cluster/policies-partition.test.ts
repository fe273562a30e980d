// A queue's RATE limit through a network partition (docs/policies.md, "When
// shares are lost, and the worst case"): three nodes on their own loopback
// addresses, cut apart with iptables (chaos/partition.ts; needs root, as
// CI has). The node left alone keeps the share it held; the two others flag
// it FAIL and split the whole limit among themselves; the cluster then
// delivers at most twice the limit per window, and once the partition heals
// the limit holds again. Consumers connect from 127.0.0.1, which the
// partition does not cut off.
import { describe, it, expect, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { waitFor, type ServerHandle } from '../helpers/server.js';
import { startPartitioned, type PartitionedCluster } from '../helpers/partitioned.js';

let pc: PartitionedCluster | null = null;

afterAll(async () => {
  await pc?.destroy();
});

function conn(s: ServerHandle): Redis {
  return pc!.conn(s);
}

/** Consumes until `until`, recording when each job arrived, and ACKs it. */
async function consume(s: ServerHandle, q: string, until: number, times: number[]): Promise<void> {
  const r = conn(s);
  while (Date.now() < until) {
    const reply = (await r.call('GETJOB', 'TIMEOUT', '250', 'FROM', q).catch(() => null)) as string[][] | null;
    for (const job of reply ?? []) {
      times.push(Date.now());
      await r.call('ACKJOB', job[1]!).catch(() => {});
    }
  }
}

function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

const JITTER_MS = 250;

describe('RATE through a partition', () => {
  it('the minority keeps its share, the majority takes the whole limit: at most twice the limit per window; after healing, the limit', async () => {
    pc = await startPartitioned(3, 88, { 'cluster-node-timeout': '2000', loglevel: 'verbose' });
    const { partitions } = pc;
    const [a, b, c] = pc.servers as [ServerHandle, ServerHandle, ServerHandle];
    const ra = conn(a);
    const q = 'part-q';
    await ra.call('QPOLICY', q, 'SET', 'RATE', '10', '2');
    for (const s of pc.servers) {
      const r = conn(s);
      await waitFor(async () => ((await r.call('QPOLICY', q, 'GET')) as unknown[]).length === 4, `${s.host} has the policy`);
    }
    const rc = conn(c);
    for (let k = 0; k < 200; k++) await rc.call('ADDJOB', q, `c${k}`, '5000', 'REPLICATE', '1', 'RETRY', '600');
    // C's consumers collect the whole limit.
    const before: number[] = [];
    await consume(c, q, Date.now() + 3000, before);
    await waitFor(async () => {
      const stat = (await rc.call('QSTAT', q)) as unknown[];
      const policy = stat[stat.indexOf('policy') + 1] as unknown[];
      return policy[policy.indexOf('rate-share') + 1] === 10;
    }, 'C holds the whole limit');

    partitions.split([c.host], [a.host, b.host]);
    const rb = conn(b);
    for (let k = 0; k < 100; k++) await ra.call('ADDJOB', q, `a${k}`, '5000', 'REPLICATE', '1', 'RETRY', '600');
    for (let k = 0; k < 100; k++) await rb.call('ADDJOB', q, `b${k}`, '5000', 'REPLICATE', '1', 'RETRY', '600');
    // A and B flag C FAIL (they are a majority) and split the limit between them.
    const during: number[] = [];
    const duringC: number[] = [];
    const until = Date.now() + 14_000;
    await Promise.all([consume(a, q, until, during), consume(b, q, until, during), consume(c, q, until, duringC)]);
    const all = [...before, ...during, ...duringC];
    expect(maxInWindow(all, 2000 - JITTER_MS)).toBeLessThanOrEqual(20);
    // Both sides delivered meanwhile: the overshoot the docs bound is real.
    expect(during.length).toBeGreaterThanOrEqual(10);
    expect(duringC.length).toBeGreaterThanOrEqual(10);

    partitions.heal();
    // C learns the newer version: its old share is gone.
    await waitFor(async () => {
      const stat = (await rc.call('QSTAT', q)) as unknown[];
      const policy = stat[stat.indexOf('policy') + 1] as unknown[];
      return policy[policy.indexOf('rate-share') + 1] !== 10;
    }, 'C dropped the share of the old version', 20_000);
    const healedAt = Date.now();
    const after: number[] = [];
    await Promise.all([a, b, c].map((s) => consume(s, q, Date.now() + 6000, after)));
    expect(maxInWindow(after.filter((t) => t > healedAt + 2000), 2000 - JITTER_MS)).toBeLessThanOrEqual(10);
    expect(after.length).toBeGreaterThanOrEqual(10);
  }, 120_000);
});
