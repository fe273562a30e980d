// The schedule of jobs by the time the core must next look at them (the
// reference's "awakeme" list): queueing delayed jobs, re-queueing, sending
// WILLQUEUE, collecting acks, expiring. One min-heap of (time, record) for
// every job, instead of a timer per job, kept in pages of plain memory. It is
// 4-ary: half the levels of a binary heap, and each entry that moves writes
// its new position into its job's record, a cache miss with millions of jobs,
// so fewer levels is what counts; the 4 children's times sit side by side.
// Pages:
// growing adds a page and never copies the entries already there. Pages
// are not given back when the heap shrinks; they are used again as it grows.
//
// Each job's record holds its position (plus one; 0 when it has none), so a
// changed time moves its entry and a deleted job leaves the heap at once.
import { BlockSource } from './blocks.js';
import { JobRecords, PAGE_SHIFT as REC_PAGE_SHIFT, PAGE_MASK as REC_PAGE_MASK, REC_WORDS, W_HEAP } from './records.js';

const SHIFT = 16;
const PAGE = 1 << SHIFT;
const MASK = PAGE - 1;

export class AwakeHeap {
  private readonly times: Float64Array[] = [];
  private readonly recs: Uint32Array[] = [];
  private n = 0;

  constructor(
    private readonly records: JobRecords,
    private readonly blocks: BlockSource = new BlockSource(),
  ) {}

  get length(): number {
    return this.n;
  }

  /** Bytes of the heap's pages. */
  get allocatedBytes(): number {
    return this.times.length * PAGE * 12;
  }

  /** Enters the record at time `at`, or moves its entry there. */
  set(rec: number, at: number): void {
    const pos = this.posOf(rec);
    if (pos < 0) {
      if (this.n >>> SHIFT >= this.times.length) {
        const t = this.blocks.take(PAGE * 8);
        const r = this.blocks.take(PAGE * 4);
        this.times.push(new Float64Array(t.buffer, t.offset, PAGE));
        this.recs.push(new Uint32Array(r.buffer, r.offset, PAGE));
      }
      this.siftUp(this.n++, rec, at);
      return;
    }
    const old = this.timeAt(pos);
    if (at < old) this.siftUp(pos, rec, at);
    else if (at > old) this.siftDown(pos, rec, at);
  }

  /** Removes the record's entry, if it has one. */
  remove(rec: number): void {
    const i = this.posOf(rec);
    if (i < 0) return;
    this.setPos(rec, -1);
    const last = --this.n;
    if (i === last) return;
    // The last entry fills the hole, then goes up or down to its place.
    const moved = this.recs[last >>> SHIFT]![last & MASK]!;
    const t = this.timeAt(last);
    if (t < this.timeAt(i)) this.siftUp(i, moved, t);
    else this.siftDown(i, moved, t);
  }

  /** Time of the earliest entry, Infinity when empty. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0]![0]!;
  }

  /** Time of the record's entry, or undefined if it has none. */
  timeOf(rec: number): number | undefined {
    const pos = this.posOf(rec);
    return pos < 0 ? undefined : this.timeAt(pos);
  }

  /** Removes and returns the earliest record (0 when empty). */
  pop(): number {
    if (this.n === 0) return 0;
    const rec = this.recs[0]![0]!;
    this.remove(rec);
    return rec;
  }

  private timeAt(i: number): number {
    return this.times[i >>> SHIFT]![i & MASK]!;
  }

  private posOf(rec: number): number {
    return this.records.u32[rec >>> REC_PAGE_SHIFT]![(rec & REC_PAGE_MASK) * REC_WORDS + W_HEAP]! - 1;
  }

  private setPos(rec: number, i: number): void {
    this.records.u32[rec >>> REC_PAGE_SHIFT]![(rec & REC_PAGE_MASK) * REC_WORDS + W_HEAP] = i + 1;
  }

  private put(i: number, rec: number, t: number): void {
    this.times[i >>> SHIFT]![i & MASK] = t;
    this.recs[i >>> SHIFT]![i & MASK] = rec;
    this.setPos(rec, i);
  }

  /** Places `rec` with time `t` at `i` or above it. */
  private siftUp(i: number, rec: number, t: number): void {
    while (i > 0) {
      const parent = (i - 1) >>> 2;
      const pt = this.timeAt(parent);
      if (pt <= t) break;
      this.put(i, this.recs[parent >>> SHIFT]![parent & MASK]!, pt);
      i = parent;
    }
    this.put(i, rec, t);
  }

  /** Places `rec` with time `t` at `i` or below it. */
  private siftDown(i: number, rec: number, t: number): void {
    const n = this.n;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The earliest of up to four children.
      let child = first;
      let ct = this.timeAt(first);
      const last = Math.min(first + 4, n);
      for (let c = first + 1; c < last; c++) {
        const ctc = this.timeAt(c);
        if (ctc < ct) {
          child = c;
          ct = ctc;
        }
      }
      if (ct >= t) break;
      this.put(i, this.recs[child >>> SHIFT]![child & MASK]!, ct);
      i = child;
    }
    this.put(i, rec, t);
  }
}
