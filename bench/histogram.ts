// Compact log-linear latency histogram (HdrHistogram-like, microseconds).
//
// Values below 64 µs get one bucket each; above that every power of two is
// split into 32 linear sub-buckets, so any recorded value is reported within
// ~3% of its true value. 896 buckets cover up to 2^31 µs (~36 minutes) in
// 7 KB, whatever the number of samples — we never store samples themselves.
// Histograms from several connections or threads merge by adding counts.

const LINEAR = 64; // values 0..63 µs are exact
const SUB_BITS = 5; // 32 sub-buckets per power of two
const SUB = 1 << SUB_BITS;
const MIN_EXP = 6; // log2(LINEAR)
const MAX_EXP = 31;
export const BUCKETS = LINEAR + (MAX_EXP - MIN_EXP) * SUB;

function indexOf(us: number): number {
  if (us < LINEAR) return us < 0 ? 0 : us | 0;
  if (us >= 2 ** MAX_EXP) return BUCKETS - 1;
  const v = us >>> 0;
  const e = 31 - Math.clz32(v); // floor(log2 v), >= MIN_EXP
  return LINEAR + (e - MIN_EXP) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

/** Midpoint of a bucket, in µs. */
function valueOf(i: number): number {
  if (i < LINEAR) return i;
  const e = MIN_EXP + Math.floor((i - LINEAR) / SUB);
  const s = (i - LINEAR) % SUB;
  const width = 2 ** (e - SUB_BITS);
  return 2 ** e + s * width + width / 2;
}

export interface HistogramData {
  counts: number[];
  total: number;
  sumUs: number;
  maxUs: number;
}

export class Histogram {
  counts = new Float64Array(BUCKETS);
  total = 0;
  sumUs = 0;
  maxUs = 0;

  /** Records one latency given in milliseconds (performance.now() units). */
  recordMs(ms: number): void {
    const us = ms * 1000;
    this.counts[indexOf(us)]!++;
    this.total++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Records `n` samples of the same latency (a batch answered in one read). */
  recordManyMs(ms: number, n: number): void {
    const us = ms * 1000;
    this.counts[indexOf(us)]! += n;
    this.total += n;
    this.sumUs += us * n;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }

  merge(o: Histogram | HistogramData): void {
    const c = o.counts;
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += c[i]!;
    this.total += o.total;
    this.sumUs += o.sumUs;
    if (o.maxUs > this.maxUs) this.maxUs = o.maxUs;
  }

  /** Latency at quantile q (0..1), in milliseconds; 0 when empty. */
  quantileMs(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  get meanMs(): number {
    return this.total === 0 ? 0 : this.sumUs / this.total / 1000;
  }

  get maxMs(): number {
    return this.maxUs / 1000;
  }

  /** Plain-object form, for postMessage between threads and JSON output. */
  toData(): HistogramData {
    return { counts: Array.from(this.counts), total: this.total, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  static from(d: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(d);
    return h;
  }

  summary(): LatencySummary {
    return {
      count: this.total,
      meanMs: round3(this.meanMs),
      p50Ms: round3(this.quantileMs(0.5)),
      p99Ms: round3(this.quantileMs(0.99)),
      p999Ms: round3(this.quantileMs(0.999)),
      maxMs: round3(this.maxMs),
    };
  }
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
