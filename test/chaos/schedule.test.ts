// The fault schedule: repeatable from its seed, and never more nodes faulty
// at once than the promise allows (replicate - 1).
import { describe, it, expect } from 'vitest';
import { makeSchedule, maxFaultyAtOnce, MODES, type Mode } from '../../chaos/schedule.js';

const base = { durationMs: 60_000, nodes: 5, replicate: 3, nodeTimeoutMs: 3000 };

describe('fault schedule', () => {
  it('is the same for the same seed and differs between seeds', () => {
    const a = makeSchedule({ ...base, seed: 7, mode: 'mixed' });
    expect(makeSchedule({ ...base, seed: 7, mode: 'mixed' })).toEqual(a);
    expect(makeSchedule({ ...base, seed: 8, mode: 'mixed' })).not.toEqual(a);
    expect(a.length).toBeGreaterThan(5);
  });

  it('keeps at most replicate-1 nodes faulty at once, one partition and one Redis fault at a time', () => {
    for (const mode of Object.keys(MODES) as Mode[]) {
      for (const replicate of [1, 2, 3]) {
        for (let seed = 1; seed <= 30; seed++) {
          const faults = makeSchedule({ ...base, seed, mode, replicate });
          expect(maxFaultyAtOnce(faults)).toBeLessThanOrEqual(replicate - 1);
          for (const f of faults) {
            expect(MODES[mode]).toContain(f.kind);
            expect(f.heal).toBeGreaterThan(f.at);
            expect(f.heal).toBeLessThanOrEqual(base.durationMs);
            const together = faults.filter((g) => g !== f && g.at < f.heal && g.heal > f.at);
            if (f.kind === 'partition') expect(together.filter((g) => g.kind === 'partition')).toEqual([]);
            if (f.kind.startsWith('redis-')) expect(together.filter((g) => g.kind.startsWith('redis-'))).toEqual([]);
            if (f.kind === 'pause') expect(f.heal - f.at).toBeGreaterThan(base.nodeTimeoutMs);
          }
        }
      }
    }
  });

  it('never makes a node faulty with REPLICATE 1 (one copy: any fault could lose it)', () => {
    const faults = makeSchedule({ ...base, seed: 3, mode: 'mixed', replicate: 1 });
    expect(faults.every((f) => f.nodes.length === 0)).toBe(true);
  });

  it('partitions cut off a minority', () => {
    const faults = makeSchedule({ ...base, seed: 5, mode: 'partition' });
    expect(faults.length).toBeGreaterThan(0);
    for (const f of faults) {
      expect(f.nodes.length).toBeGreaterThanOrEqual(1);
      expect(f.nodes.length).toBeLessThanOrEqual(2);
    }
  });
});
