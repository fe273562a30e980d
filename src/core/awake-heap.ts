// The schedule of jobs by the time the core must next look at them (the
// reference's "awakeme" list): queueing delayed jobs, re-queueing, sending
// WILLQUEUE, collecting acks, expiring. One min-heap of (time, record) for
// every job, instead of a timer per job, kept in pages of plain memory. It is
// 4-ary: half the levels of a binary heap, and each entry that moves writes
// its new position into its job's record, a cache miss with millions of jobs,
// so fewer levels is what counts; the 4 children's times sit side by side.
// Growing adds a page and never copies the entries already there. Pages are
// not given back when the heap shrinks; they are used again as it grows.
//
// An entry is 8 bytes: the record and its time as whole milliseconds after
// `base` in 32 bits (49 days). Times before base count as base; times beyond
// the range are kept at its end, and such a job, looked at early, is simply
// scheduled again. The store moves base forward (rebase) long before now
// nears the end of the range.
//
// Each job's record holds its position (plus one; 0 when it has none), so a
// changed time moves its entry and a deleted job leaves the heap at once.
import { BlockSource } from './blocks.js';
import { JobRecords, PAGE_SHIFT as REC_PAGE_SHIFT, PAGE_MASK as REC_PAGE_MASK, REC_WORDS, W_HEAP } from './records.js';

const SHIFT = 16;
const PAGE = 1 << SHIFT;
const MASK = PAGE - 1;
/** The largest key: times from base + KEY_MAX on are kept as base + KEY_MAX. */
const KEY_MAX = 0xffffffff;
/** rebase() is due once now is this far past base (half the range). */
export const REBASE_AFTER = 2 ** 31;

export class AwakeHeap {
  /** Keys (ms after base) and records, by position. */
  private readonly keys: Uint32Array[] = [];
  private readonly recs: Uint32Array[] = [];
  private n = 0;
  /** Clock time of key 0. */
  base = 0;

  constructor(
    private readonly records: JobRecords,
    private readonly blocks: BlockSource = new BlockSource(),
  ) {}

  get length(): number {
    return this.n;
  }

  /** Bytes of the heap's pages. */
  get allocatedBytes(): number {
    return this.keys.length * PAGE * 8;
  }

  /** Enters the record at time `at`, or moves its entry there. */
  set(rec: number, at: number): void {
    const key = this.keyOf(at);
    const pos = this.posOf(rec);
    if (pos < 0) {
      if (this.n >>> SHIFT >= this.keys.length) {
        const k = this.blocks.take(PAGE * 4);
        const r = this.blocks.take(PAGE * 4);
        this.keys.push(new Uint32Array(k.buffer, k.offset, PAGE));
        this.recs.push(new Uint32Array(r.buffer, r.offset, PAGE));
      }
      this.siftUp(this.n++, rec, key);
      return;
    }
    const old = this.timeAt(pos);
    if (key < old) this.siftUp(pos, rec, key);
    else if (key > old) this.siftDown(pos, rec, key);
  }

  /**
   * Moves base to `now` (minus a second): every key is lowered by the same
   * amount, earlier ones to 0. O(n), once per 24 days of uptime.
   */
  rebase(now: number): void {
    const delta = Math.floor(now - 1000 - this.base);
    if (delta <= 0) return;
    for (let i = 0; i < this.n; i++) {
      const page = this.keys[i >>> SHIFT]!;
      const k = page[i & MASK]!;
      // Lowering every key alike keeps the heap order (ties stay ties).
      page[i & MASK] = k > delta ? k - delta : 0;
    }
    this.base += delta;
  }

  private keyOf(at: number): number {
    const k = Math.ceil(at - this.base);
    return k <= 0 ? 0 : k >= KEY_MAX ? KEY_MAX : k;
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
    return this.n === 0 ? Infinity : this.base + this.keys[0]![0]!;
  }

  /** Time of the record's entry, or undefined if it has none. */
  timeOf(rec: number): number | undefined {
    const pos = this.posOf(rec);
    return pos < 0 ? undefined : this.base + this.timeAt(pos);
  }

  /** Removes and returns the earliest record (0 when empty). */
  pop(): number {
    if (this.n === 0) return 0;
    const rec = this.recs[0]![0]!;
    this.remove(rec);
    return rec;
  }

  /** The key at position i. */
  private timeAt(i: number): number {
    return this.keys[i >>> SHIFT]![i & MASK]!;
  }

  private posOf(rec: number): number {
    return this.records.u32[rec >>> REC_PAGE_SHIFT]![(rec & REC_PAGE_MASK) * REC_WORDS + W_HEAP]! - 1;
  }

  private setPos(rec: number, i: number): void {
    this.records.u32[rec >>> REC_PAGE_SHIFT]![(rec & REC_PAGE_MASK) * REC_WORDS + W_HEAP] = i + 1;
  }

  private put(i: number, rec: number, t: number): void {
    this.keys[i >>> SHIFT]![i & MASK] = t;
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
