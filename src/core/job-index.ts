// The index of jobs by ID: a chained hash table of record numbers whose
// chains run through the records themselves (their `next` word), so an
// entry costs a 4-byte bucket slot. Like Redis's dict, it doubles and
// shrinks incrementally: while a resize is under way both tables are live
// and each change moves a few buckets, so no single command pays for
// rehashing millions of jobs. It also gives what Disque needs beyond
// lookups:
//   - a uniformly random job for eviction (random non-empty bucket);
//   - a stateless cursor scan (JSCAN) that returns every job present for
//     the whole iteration even when the table resizes in between: buckets
//     are visited in reversed-bit order of the cursor, as Redis's SCAN does.
import { JobRecords, PAGE_SHIFT, PAGE_MASK, REC_WORDS, W_NEXT } from './records.js';

const MIN_SIZE = 16;
/** Buckets moved per change while resizing (and empty buckets skipped per moved one). */
const STEP_BUCKETS = 2;
const STEP_EMPTY_VISITS = 10;

/** Reverses the bits of a 32-bit unsigned integer. */
function rev(v: number): number {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1);
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2);
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4);
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8);
  return ((v >>> 16) | (v << 16)) >>> 0;
}

export class JobIndex {
  private t0: Uint32Array = new Uint32Array(MIN_SIZE);
  private t1: Uint32Array | null = null;
  /** Next t0 bucket to move to t1, -1 when not resizing. */
  private rehashIdx = -1;
  private count = 0;

  /** `hashOf` gives the hash of a record's ID (as the store computes it for lookups). */
  constructor(
    private readonly records: JobRecords,
    private readonly hashOf: (rec: number) => number,
  ) {}

  get size(): number {
    return this.count;
  }

  get resizing(): boolean {
    return this.rehashIdx >= 0;
  }

  /** Bytes of the bucket tables. */
  get allocatedBytes(): number {
    return (this.t0.length + (this.t1?.length ?? 0)) * 4;
  }

  /** The record whose ID has hash `h` and satisfies `eq`, or 0. */
  find(h: number, eq: (rec: number) => boolean): number {
    let rec = this.t0[(h >>> 0) & (this.t0.length - 1)]!;
    for (; rec !== 0; rec = this.next(rec)) if (eq(rec)) return rec;
    if (this.t1 !== null) {
      rec = this.t1[(h >>> 0) & (this.t1.length - 1)]!;
      for (; rec !== 0; rec = this.next(rec)) if (eq(rec)) return rec;
    }
    return 0;
  }

  /** Adds a record whose ID hashes to `h` (the caller checked it is not present). */
  add(rec: number, h: number): void {
    if (this.t1 !== null) this.step(STEP_BUCKETS);
    // While resizing, a record whose bucket has not moved yet goes to the old
    // table (the move takes it along): writes to the new table then stay in
    // the part the move already wrote. Writing at random across a new table
    // of hundreds of MB faulted in a fresh page of memory on nearly every
    // add, five times the cost of the add.
    let t = this.t0;
    if (this.t1 !== null && ((h >>> 0) & (this.t0.length - 1)) < this.rehashIdx) t = this.t1;
    const b = (h >>> 0) & (t.length - 1);
    this.setNext(rec, t[b]!);
    t[b] = rec;
    this.count++;
    if (this.t1 === null && this.count > this.t0.length) this.startResize(this.t0.length * 2);
  }

  /** Removes the record (its ID hashing to `h`); false if it is not in the index. */
  remove(rec: number, h: number): boolean {
    if (this.t1 !== null) this.step(STEP_BUCKETS);
    const removed = this.unlink(this.t0, rec, h) || (this.t1 !== null && this.unlink(this.t1, rec, h));
    if (!removed) return false;
    this.count--;
    if (this.t1 === null && this.t0.length > MIN_SIZE && this.count < this.t0.length / 8) {
      let size = MIN_SIZE;
      while (size < this.count * 2) size *= 2;
      this.startResize(size);
    }
    return true;
  }

  /** Moves buckets of a resize for about `ms` milliseconds (the cron's share). */
  rehashFor(ms: number): void {
    if (this.t1 === null) return;
    const end = performance.now() + ms;
    while (this.t1 !== null && performance.now() < end) this.step(100);
  }

  /** A random record (random non-empty bucket, then a random entry in its chain), 0 when empty. */
  random(rnd: () => number): number {
    if (this.count === 0) return 0;
    const n0 = this.t1 === null ? this.t0.length : this.t0.length - this.rehashIdx;
    const slots = n0 + (this.t1?.length ?? 0);
    // Random buckets until a non-empty one (the table is at least 1/8 full);
    // after many misses, the next non-empty bucket from a random one.
    let first = 0;
    for (let tries = 0; first === 0; tries++) {
      let i = Math.floor(rnd() * slots);
      first = this.bucketAt(i, n0);
      if (tries > 64) for (let k = 0; k < slots && first === 0; k++) first = this.bucketAt((i = (i + 1) % slots), n0);
    }
    let n = 0;
    for (let r = first; r !== 0; r = this.next(r)) n++;
    let k = Math.floor(rnd() * n);
    let rec = first;
    while (k-- > 0) rec = this.next(rec);
    return rec;
  }

  /** Bucket i of the live buckets: t0's (from rehashIdx when resizing), then t1's. */
  private bucketAt(i: number, n0: number): number {
    if (this.t1 === null) return this.t0[i]!;
    return i < n0 ? this.t0[this.rehashIdx + i]! : this.t1[i - n0]!;
  }

  /**
   * Visits buckets from `cursor` while `more()` says so (asked before each
   * bucket); returns the next cursor, 0 when the iteration is complete.
   */
  scan(cursor: number, visit: (rec: number) => void, more: () => boolean): number {
    let v = cursor >>> 0;
    do {
      if (!more()) return v;
      if (this.t1 === null) {
        const m0 = this.t0.length - 1;
        this.visitChain(this.t0[v & m0]!, visit);
        v = this.nextCursor(v, m0);
      } else {
        // Both tables: the bucket of the smaller, then the buckets of the
        // larger that its entries can go to, from the cursor's own high
        // bits on and in the same reversed order as a scan of the larger
        // table alone (Redis's dictScan as fixed in Redis 7). The cursor
        // may come from a call that saw only the larger table, half way
        // through those buckets: counting its high bits up plainly skipped
        // the ones between (a JSCAN with ACKJOB of what it returned, the
        // table shrinking, missed jobs). Once they are done, the carry has
        // moved the cursor to the smaller table's next bucket.
        let small = this.t0;
        let large = this.t1;
        if (small.length > large.length) [small, large] = [large, small];
        const m0 = small.length - 1;
        const m1 = large.length - 1;
        this.visitChain(small[v & m0]!, visit);
        do {
          this.visitChain(large[v & m1]!, visit);
          v = this.nextCursor(v, m1);
        } while (v & (m0 ^ m1));
      }
    } while (v !== 0);
    return 0;
  }

  clear(): void {
    this.t0 = new Uint32Array(MIN_SIZE);
    this.t1 = null;
    this.rehashIdx = -1;
    this.count = 0;
  }

  // ------------------------------------------------------------ internals

  private next(rec: number): number {
    return this.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_NEXT]!;
  }

  private setNext(rec: number, next: number): void {
    this.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_NEXT] = next;
  }

  private visitChain(first: number, visit: (rec: number) => void): void {
    // The next link is read first: the visitor may delete the job.
    for (let rec = first; rec !== 0; ) {
      const next = this.next(rec);
      visit(rec);
      rec = next;
    }
  }

  /** Increments the reversed cursor: set the bits above the mask, reverse, add one, reverse back. */
  private nextCursor(v: number, mask: number): number {
    v = (v | ~mask) >>> 0;
    v = rev(v);
    v = (v + 1) >>> 0;
    return rev(v);
  }

  private unlink(t: Uint32Array, rec: number, h: number): boolean {
    const b = (h >>> 0) & (t.length - 1);
    let prev = 0;
    for (let r = t[b]!; r !== 0; prev = r, r = this.next(r)) {
      if (r !== rec) continue;
      if (prev === 0) t[b] = this.next(r);
      else this.setNext(prev, this.next(r));
      this.setNext(r, 0);
      return true;
    }
    return false;
  }

  private startResize(size: number): void {
    this.t1 = new Uint32Array(size);
    this.rehashIdx = 0;
  }

  /** Moves up to `n` non-empty buckets of t0 into t1; finishes the resize when t0 is empty. */
  private step(n: number): void {
    const t0 = this.t0;
    const t1 = this.t1!;
    const m1 = t1.length - 1;
    let emptyVisits = n * STEP_EMPTY_VISITS;
    while (n-- > 0 && this.rehashIdx < t0.length) {
      while (t0[this.rehashIdx] === 0) {
        this.rehashIdx++;
        if (this.rehashIdx === t0.length || --emptyVisits === 0) break;
      }
      if (this.rehashIdx === t0.length || t0[this.rehashIdx] === 0) break;
      let rec = t0[this.rehashIdx]!;
      while (rec !== 0) {
        const next = this.next(rec);
        const b = (this.hashOf(rec) >>> 0) & m1;
        this.setNext(rec, t1[b]!);
        t1[b] = rec;
        rec = next;
      }
      t0[this.rehashIdx] = 0;
      this.rehashIdx++;
    }
    if (this.rehashIdx >= t0.length) {
      this.t0 = t1;
      this.t1 = null;
      this.rehashIdx = -1;
    }
  }
}
