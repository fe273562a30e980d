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

  it('rewrites a growing set each time it doubles, not every snapshot-journal-max records', async () => {
    const growPrefix = `${prefix}grow:`;
    const g = await startServer({ config: { appendonly: 'yes', 'redis-key-prefix': growPrefix, 'snapshot-journal-max': '200' } });
    const gc = disque(g);
    try {
      const sizes = new Set<number>();
      let maxJournal = 0;
      for (let batch = 0; batch < 32; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => gc.call('ADDJOB', 'grow', `job ${batch}-${i}`, '0')));
        sizes.add(Number(await info(gc, 'aof_last_snapshot_jobs')));
        maxJournal = Math.max(maxJournal, Number(await info(gc, 'aof_journal_records')));
      }
      // 3200 jobs: snapshots near 200, 400, 800, 1600 (plus 0 before the first);
      // one every 200 records would have made about 16 different sizes.
      sizes.delete(0);
      expect(sizes.size).toBeGreaterThanOrEqual(3);
      expect(sizes.size).toBeLessThanOrEqual(6);
      // The journal never grew much past the last snapshot's size (one batch of slack, and one snapshot in flight).
      expect(maxJournal).toBeLessThan(2 * 1600 + 200);
    } finally {
      gc.disconnect();
      await g.destroy();
      await deleteUnder(shared, growPrefix);
    }
  });
});
