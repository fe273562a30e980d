// A short mixed fault run (npm run chaos --mode mixed, 30 s): node kills,
// pauses, a partition and Redis outages while producers and consumers run.
// Every job whose ADDJOB was answered must be delivered. Needs root,
// iptables and redis-server, as CI has (.ci/run installs them).
import { describe, it, expect } from 'vitest';
import { runOnce } from '../../chaos/run.js';
import { makeSchedule } from '../../chaos/schedule.js';
import { findOnPath } from '../../bench/servers.js';

const options = {
  flavor: 'ours' as const,
  mode: 'mixed' as const,
  // A seed whose 30 s schedule has every kind of fault.
  seed: 10,
  durationMs: 30_000,
  nodes: 5,
  replicate: 3,
  retrySec: 5,
  nodeTimeoutMs: 3000,
  producers: 5,
  consumers: 5,
  drainTimeoutMs: 60_000,
};

describe('fault run', () => {
  it('loses no acknowledged job through kills, pauses, a partition and Redis outages', async () => {
    const kinds = new Set(makeSchedule(options).map((f) => f.kind));
    expect([...kinds].sort()).toEqual(['kill', 'partition', 'pause', 'redis-empty', 'redis-pause', 'redis-restart']);
    const redisBin = findOnPath('redis-server');
    if (redisBin === null) throw new Error('redis-server is not on PATH (apt-get install redis-server)');
    const lines: string[] = [];
    const r = await runOnce({ ...options, redisBin, log: (l) => lines.push(l) });
    const v = r.verdict;
    const summary = `${JSON.stringify(v)}\n${r.lostWhere.join('\n')}\n${lines.join('\n')}`;
    expect(v.acked, summary).toBeGreaterThan(200);
    expect(v.lost, summary).toBe(0);
    expect(v.phantom, summary).toBe(0);
    expect(v.delivered, summary).toBe(v.acked);
    expect(v.drainMs, summary).not.toBeNull();
  }, 240_000);
});
