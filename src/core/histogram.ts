// A latency histogram cheap enough for the hot path: one counter per power
// of two, so recording a value is a count of leading zeros and an increment
// (no search through bucket bounds, no allocation). /metrics turns the
// counters into cumulative Prometheus buckets when it is scraped.

/** Buckets: [0,1), [1,2), [2,4), ... [2^30, 2^31), and one for 2^31 and above. */
export const LOG2_BUCKETS = 33;

export class Log2Histogram {
  /** counts[b]: values v with 2^(b-1) <= v < 2^b (b = 0: v < 1). */
  readonly counts = new Float64Array(LOG2_BUCKETS);
  count = 0;
  sum = 0;

  /** Records a non-negative value (microseconds, milliseconds: the caller's unit). */
  observe(v: number): void {
    const b = v >= 2147483648 ? 32 : 32 - Math.clz32(v);
    this.counts[b]!++;
    this.count++;
    this.sum += v;
  }

  /** How many values were below 2^k (k from 0 to 31). */
  below(k: number): number {
    let n = 0;
    for (let b = 0; b <= k; b++) n += this.counts[b]!;
    return n;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
  }
}
