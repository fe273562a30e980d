// The cluster-wide chart series: nodes' per-second samples summed.
import { describe, it, expect } from 'vitest';
import { sumSeries, type RatesSeries } from '../../src/http/rates.js';

function series(t: number[], added: number[], queue?: (number | null)[]): RatesSeries {
  return { t, added, delivered: added.map(() => 0), acked: added.map(() => 0), queues: queue ? { q: queue } : {} };
}

describe('sumSeries', () => {
  it('fills a second a node skipped with its next sample, so the sum has no dip', () => {
    const a = series([10, 11, 12, 13], [5, 5, 5, 5], [1, 2, 3, 4]);
    // Node b's cron skipped second 12: its sample at 13 covers 12 and 13.
    const b = series([10, 11, 13], [7, 7, 7], [10, 10, 12]);
    const sum = sumSeries([a, b]);
    expect(sum.t).toEqual([10, 11, 12, 13]);
    expect(sum.added).toEqual([12, 12, 12, 12]);
    expect(sum.queues.q).toEqual([11, 12, 15, 16]);
  });

  it('ends at the newest second every node has sampled, and starts where the first node starts', () => {
    const a = series([10, 11, 12, 13, 14], [1, 1, 1, 1, 1]);
    const b = series([12, 13], [2, 2]);
    const sum = sumSeries([a, b, series([], [])]);
    expect(sum.t).toEqual([10, 11, 12, 13]);
    expect(sum.added).toEqual([1, 1, 3, 3]);
    expect(sumSeries([]).t).toEqual([]);
  });
});
