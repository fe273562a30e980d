// Under a long add/ack run the journal is compacted into snapshots, so the
// Redis memory a node uses stays bounded by its live jobs, not by its
// history. Against the Redis at 127.0.0.1:6379, under a prefix of its own.
import { describe, it, expect, afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { SHARED_REDIS_URL, testPrefix, keysUnder, deleteUnder, memoryUnder, disque, info } from './helpers.js';

const shared = new Redis(SHARED_REDIS_URL);
const prefix = testPrefix();
let srv: ServerHandle | null = null;
let c: Redis | null = null;

afterAll(async () => {
  c?.disconnect();
  await srv?.destroy();
  await deleteUnder(shared, prefix);
  shared.disconnect();
});

describe('snapshot compaction', () => {
  it('keeps Redis memory between snapshot writes within twice the live jobs (plus the 1 MB journal floor) over a long add/ack run', async () => {
    srv = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': prefix } });
    c = disque(srv);
    const body = 'x'.repeat(300);
    // 500 jobs stay for the whole run.
    const live = (await Promise.all(Array.from({ length: 500 }, (_, i) => c!.call('ADDJOB', 'live', `${body}${i}`, '0')))) as string[];

    const ROUNDS = 25;
    const PER_ROUND = 1000;
    let maxMemory = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const ids = (await Promise.all(Array.from({ length: PER_ROUND }, (_, i) => c!.call('ADDJOB', 'churn', `${body}${r}-${i}`, '0')))) as string[];
      expect(await c.call('ACKJOB', ...ids)).toBe(PER_ROUND);
      // Between snapshot writes (during one, the old snapshot stays until the new one is whole).
      if ((await info(c, 'aof_rewrite_in_progress')) === '0') maxMemory = Math.max(maxMemory, await memoryUnder(shared, prefix));
    }
    // Without compaction the journal alone would hold every add and ack.
    const history = ROUNDS * PER_ROUND * (body.length + 100);
    expect(Number(await info(c, 'aof_last_snapshot_time'))).toBeGreaterThan(0);

    // The encoded size of the live jobs, measured by a snapshot of them alone.
    await waitFor(async () => (await info(c!, 'aof_rewrite_in_progress')) === '0', 'automatic snapshot finished');
    expect(await c.call('BGREWRITEAOF')).toBe('Background append only file rewriting started');
    await waitFor(async () => Number(await info(c!, 'aof_journal_records')) === 0 && (await info(c!, 'aof_rewrite_in_progress')) === '0', 'snapshot of the live jobs');
    const liveBytes = Number(await info(c, 'aof_last_snapshot_bytes'));
    expect(Number(await info(c, 'aof_last_snapshot_jobs'))).toBe(500);
    expect(liveBytes).toBeGreaterThan(500 * 300);

    // Slack: one round of adds can be in the journal before the check after a write starts a snapshot.
    const bound = 2 * liveBytes + 1024 * 1024 + PER_ROUND * (body.length + 200);
    expect(maxMemory).toBeLessThan(bound);
    expect(bound).toBeLessThan(history / 2);
    // One meta hash and one snapshot list are left; the journal is empty.
    const keys = await keysUnder(shared, prefix);
    expect(keys.filter((k) => k.endsWith(':meta'))).toHaveLength(1);
    expect(keys.filter((k) => /:snap:\d+$/.test(k))).toHaveLength(1);
    expect(await memoryUnder(shared, prefix)).toBeLessThan(2 * liveBytes);

    // And the compacted state reloads.
    await srv.kill9();
    await srv.restart();
    c.disconnect();
    c = disque(srv);
    expect(Number(await info(c, 'registered_jobs'))).toBe(500);
    for (const id of live.slice(0, 20)) expect(await c.call('SHOW', id)).not.toBeNull();
  });

  it('never rewrites a set that only grows; rewrites once as many stored records are obsolete as jobs are live', async () => {
    const growPrefix = `${prefix}grow:`;
    const g = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': growPrefix, 'snapshot-journal-max': '200' } });
    const gc = disque(g);
    try {
      const ids: string[] = [];
      for (let batch = 0; batch < 32; batch++) {
        ids.push(...((await Promise.all(Array.from({ length: 100 }, (_, i) => gc.call('ADDJOB', 'grow', `job ${batch}-${i}`, '0')))) as string[]));
        // A rewrite would hold the same 100 * batch jobs the journal holds.
        expect(await info(gc, 'aof_rewrite_in_progress')).toBe('0');
      }
      expect(await info(gc, 'aof_last_snapshot_jobs')).toBe('0');
      expect(await info(gc, 'aof_journal_records')).toBe('3200');

      // Each ack makes the job's record and its own obsolete: 2 per ack.
      // With 3200 - k jobs live, that reaches them after k = 1067 acks.
      let acked = 0;
      while (acked < 2000 && (await info(gc, 'aof_rewrite_in_progress')) === '0' && (await info(gc, 'aof_last_snapshot_jobs')) === '0') {
        expect(await gc.call('ACKJOB', ...ids.slice(acked, acked + 100))).toBe(100);
        acked += 100;
      }
      expect(acked).toBe(1100);
      await waitFor(async () => (await info(gc, 'aof_last_snapshot_jobs')) !== '0', 'the snapshot committed');
      expect(await info(gc, 'aof_last_snapshot_jobs')).toBe('2100');
    } finally {
      gc.disconnect();
      await g.destroy();
      await deleteUnder(shared, growPrefix);
    }
  });
});
