// The index of jobs by ID under collisions: chains that share one bucket
// (a hash that returns a constant or a few values), removal of the first,
// middle and last entries of a chain, changes while an incremental resize
// is under way, and random sampling that only returns present records.
import { describe, it, expect } from 'vitest';
import { JobIndex } from '../../src/core/job-index.js';
import { JobRecords, W_NEXT, REC_WORDS, PAGE_SHIFT, PAGE_MASK } from '../../src/core/records.js';
import { prng } from '../helpers/prng.js';


/** The index's tables, read only to check that a test reaches the state it means to. */
interface IndexInternals {
  t0: Uint32Array;
  t1: Uint32Array | null;
  rehashIdx: number;
}

/**
 * Records standing for jobs whose "ID" is a number (kept beside, in a Map:
 * the index itself only uses the records' `next` word), indexed with a hash
 * of that key chosen by the test.
 */
class Keyed {
  readonly records = new JobRecords();
  readonly idx: JobIndex;
  readonly byKey = new Map<number, number>();
  private readonly keyOf = new Map<number, number>();

  constructor(readonly hash: (key: number) => number) {
    this.idx = new JobIndex(this.records, (rec) => this.hash(this.key(rec)));
  }

  key(rec: number): number {
    const key = this.keyOf.get(rec);
    if (key === undefined) expect.fail(`record ${rec} was never added`);
    return key;
  }

  add(key: number): number {
    const rec = this.records.alloc();
    this.keyOf.set(rec, key);
    this.idx.add(rec, this.hash(key));
    this.byKey.set(key, rec);
    return rec;
  }

  find(key: number): number {
    return this.idx.find(this.hash(key), (rec) => this.key(rec) === key);
  }

  remove(key: number): boolean {
    const rec = this.byKey.get(key);
    if (rec === undefined) return false;
    this.byKey.delete(key);
    return this.idx.remove(rec, this.hash(key));
  }

  get internals(): IndexInternals {
    return this.idx as unknown as IndexInternals;
  }

  /** Records of the bucket(s) hash `h` goes to, in chain order (head first): t0's, then t1's. */
  chain(h: number): number[] {
    const out: number[] = [];
    const { t0, t1 } = this.internals;
    const u = this.records;
    for (const t of t1 === null ? [t0] : [t0, t1]) {
      for (let rec = t[h & (t.length - 1)]!; rec !== 0; rec = u.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_NEXT]!) out.push(rec);
    }
    return out;
  }

  /** Every present key is found at its record, every absent key in `gone` is not, and the size agrees. */
  check(gone: Iterable<number> = []): void {
    expect(this.idx.size).toBe(this.byKey.size);
    for (const [key, rec] of this.byKey) if (this.find(key) !== rec) expect.fail(`key ${key} (record ${rec}) not found`);
    for (const key of gone) if (this.find(key) !== 0) expect.fail(`removed key ${key} still found`);
  }

  /** Every record in the tables, by a full scan. */
  scanAll(): number[] {
    const seen: number[] = [];
    expect(this.idx.scan(0, (rec) => seen.push(rec), () => true)).toBe(0);
    return seen;
  }
}

describe('JobIndex with every ID in one bucket', () => {
  it('finds every record of a long chain and removes its first, middle and last entries', () => {
    const k = new Keyed(() => 0x5eed);
    for (let key = 1; key <= 60; key++) k.add(key);
    k.idx.rehashFor(10);
    expect(k.idx.resizing).toBe(false);
    k.check();
    let chain = k.chain(0x5eed);
    expect(chain).toHaveLength(60);
    const gone: number[] = [];
    const removeAt = (pos: number) => {
      const rec = chain[pos]!;
      const key = k.key(rec);
      const tableBefore = k.internals.t0;
      expect(k.remove(key)).toBe(true);
      gone.push(key);
      // Removing again, or a record of the same hash that is not there, finds nothing.
      expect(k.idx.remove(rec, 0x5eed)).toBe(false);
      k.check(gone);
      const next = k.chain(0x5eed);
      const rest = chain.filter((r) => r !== rec);
      // The rest keep their order, unless a (shrinking) resize moved the chain.
      if (k.internals.t0 === tableBefore && !k.idx.resizing) expect(next).toEqual(rest);
      else expect([...next].sort((a, b) => a - b)).toEqual([...rest].sort((a, b) => a - b));
      chain = next;
    };
    removeAt(0); // head
    removeAt(chain.length - 1); // tail
    removeAt(Math.floor(chain.length / 2)); // middle
    removeAt(1);
    removeAt(chain.length - 2);
    expect(k.scanAll().sort((a, b) => a - b)).toEqual([...k.byKey.values()].sort((a, b) => a - b));
    // Down to empty, from the tail.
    while (chain.length > 0) removeAt(chain.length - 1);
    expect(k.idx.size).toBe(0);
    expect(k.idx.random(Math.random)).toBe(0);
  });

  it('samples every member of a chain and nothing else', () => {
    const k = new Keyed(() => 7);
    for (let key = 1; key <= 20; key++) k.add(key);
    const rnd = prng(11);
    const hits = new Map<number, number>();
    for (let i = 0; i < 4000; i++) {
      const rec = k.idx.random(rnd);
      hits.set(rec, (hits.get(rec) ?? 0) + 1);
    }
    expect([...hits.keys()].sort((a, b) => a - b)).toEqual([...k.byKey.values()].sort((a, b) => a - b));
    for (const n of hits.values()) expect(n).toBeGreaterThan(100); // about 200 each
  });
});

describe('JobIndex with a few hash values', () => {
  // Values that share their low bits in small tables and split in larger ones.
  const HASHES = [0x0, 0x10, 0x30, 0x1000_0000, 0xffff_ffff, 0x8000_0010, 0x3];
  const hash = (key: number) => HASHES[key % HASHES.length]!;

  it('keeps every record findable as the table grows and shrinks through the same buckets', () => {
    const k = new Keyed(hash);
    const gone: number[] = [];
    for (let key = 1; key <= 1200; key++) {
      k.add(key);
      if (key % 300 === 0) k.check();
    }
    k.check();
    for (let key = 1; key <= 1200; key += 2) {
      expect(k.remove(key)).toBe(true);
      gone.push(key);
      if (key % 301 === 0) k.check(gone);
    }
    k.check(gone);
    for (let key = 2; key <= 1190; key += 2) {
      expect(k.remove(key)).toBe(true);
      gone.push(key);
    }
    k.check(gone);
    expect(k.idx.size).toBe(5);
    k.idx.rehashFor(10);
    expect(k.idx.allocatedBytes).toBeLessThanOrEqual(64 * 4);
    k.check(gone);
  });
});

describe('JobIndex changes during an incremental resize', () => {
  const spread = (key: number) => Math.imul(key, 0x9e3779b1) >>> 0;

  it('removes records still in the old table and records already moved, while growing', () => {
    const k = new Keyed(spread);
    for (let key = 1; key <= 16; key++) k.add(key);
    expect(k.idx.resizing).toBe(false);
    k.add(17); // over one entry per bucket: the table starts doubling
    expect(k.idx.resizing).toBe(true);
    // Each change moves two buckets first; find which records moved after this one.
    const victimOld = (() => {
      // A record in the last non-empty bucket of the old table: it moves last.
      const t0 = k.internals.t0;
      for (let b = t0.length - 1; b >= 0; b--) if (t0[b] !== 0) return k.key(t0[b]!);
      return -1;
    })();
    expect(k.remove(victimOld)).toBe(true);
    expect(k.idx.resizing).toBe(true);
    const { t0, t1, rehashIdx } = k.internals;
    expect(t1).not.toBeNull();
    // Some records are in each table now.
    expect(t0.some((r) => r !== 0)).toBe(true);
    expect(t1!.some((r) => r !== 0)).toBe(true);
    expect(rehashIdx).toBeGreaterThan(0);
    // A record already moved to the new table.
    const moved = t1!.find((r) => r !== 0)!;
    expect(k.remove(k.key(moved))).toBe(true);
    k.check([victimOld, k.key(moved)]);
    // Finish; everything still there.
    k.idx.rehashFor(10);
    expect(k.idx.resizing).toBe(false);
    k.check([victimOld, k.key(moved)]);
    expect(k.scanAll().sort((a, b) => a - b)).toEqual([...k.byKey.values()].sort((a, b) => a - b));
  });

  it('adds and removes while shrinking, including removing what a shrink step just moved', () => {
    const k = new Keyed((key) => spread(key % 97)); // 97 hash values: chains of ~40 at the peak
    for (let key = 1; key <= 4000; key++) k.add(key);
    k.idx.rehashFor(10);
    const gone = new Set<number>();
    let key = 1;
    // Remove until a shrink starts.
    while (!k.idx.resizing) {
      expect(k.remove(key)).toBe(true);
      gone.add(key++);
    }
    let sawBoth = false;
    let extra = 100_000;
    while (k.idx.resizing) {
      const { t0, t1 } = k.internals;
      if (t0.some((r) => r !== 0) && t1!.some((r) => r !== 0)) sawBoth = true;
      // Alternate: remove an old key, add a new one (it lands in the new table).
      if (key % 3 === 0) {
        k.add(extra++);
      } else {
        expect(k.remove(key)).toBe(true);
        gone.add(key);
      }
      key++;
      if (key % 16 === 0) k.check(gone);
    }
    expect(sawBoth).toBe(true);
    k.check(gone);
  });

  for (const seed of [1, 2024, 777777]) {
    it(`agrees with a set model through random adds, removes, finds and samples (seed ${seed})`, () => {
      const rnd = prng(seed);
      // One key in eight piles into 5 hash values, the rest spread out.
      const k = new Keyed((key) => (key & 7 ? spread(key) : [11, 12, 13, 0x40000, 0x40001][key % 5]!));
      const present: number[] = [];
      const gone: number[] = [];
      let nextKey = 1;
      let duringResize = { add: 0, remove: 0, random: 0 };
      for (let step = 0; step < 15_000; step++) {
        // The size swings between empty and a thousand or two, so the table grows and shrinks often.
        const phase = Math.floor(step / 2500) % 2 === 0;
        const r = rnd();
        const resizing = k.idx.resizing;
        if (present.length === 0 || r < (phase ? 0.7 : 0.3)) {
          const key = nextKey++;
          k.add(key);
          present.push(key);
          if (resizing) duringResize.add++;
        } else if (r < 0.95) {
          const i = Math.floor(rnd() * present.length);
          const key = present[i]!;
          present[i] = present[present.length - 1]!;
          present.pop();
          expect(k.remove(key)).toBe(true);
          gone.push(key);
          if (resizing) duringResize.remove++;
        } else {
          const rec = k.idx.random(rnd);
          if (present.length === 0) expect(rec).toBe(0);
          else if (k.byKey.get(k.key(rec)) !== rec) expect.fail(`step ${step}: random() gave record ${rec}, not in the index`);
          if (resizing) duringResize.random++;
        }
        if (step % 1000 === 0) k.check(gone.slice(-100));
      }
      k.check(gone);
      expect(duringResize.add).toBeGreaterThan(50);
      expect(duringResize.remove).toBeGreaterThan(50);
      expect(duringResize.random).toBeGreaterThan(5);
      expect(k.scanAll().sort((a, b) => a - b)).toEqual([...k.byKey.values()].sort((a, b) => a - b));
    });
  }

  it('random() returns only present records while a resize is under way', () => {
    const rnd = prng(3);
    // Collisions, but not so few hash values that random() must try thousands of empty buckets.
    const k = new Keyed((key) => spread(key % 500));
    let key = 1;
    let checked = 0;
    for (let round = 0; round < 8; round++) {
      while (!k.idx.resizing) k.add(key++);
      while (k.idx.resizing) {
        for (let i = 0; i < 20; i++) {
          const rec = k.idx.random(rnd);
          if (k.byKey.get(k.key(rec)) !== rec) expect.fail(`random() gave record ${rec}, not in the index`);
          checked++;
        }
        k.add(key++);
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});

describe('JobIndex scan while the table resizes between calls', () => {
  // JSCAN + ACKJOB of what it returned: each call's records are removed
  // before the next call, so the table shrinks (and the cron moves resize
  // steps along) mid-iteration. Every record present for the whole
  // iteration must still be returned.
  for (const seed of [1, 2, 3]) {
    it(`returns every record never removed, removing each call's records (seed ${seed})`, () => {
      const rnd = prng(seed);
      // A well mixed hash (murmur3's finalizer), as the store's keyed hash is.
      const k = new Keyed((key) => {
        let h = Math.imul(key ^ (key >>> 16), 0x85ebca6b);
        h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
        return (h ^ (h >>> 16)) >>> 0;
      });
      const N = 50_000;
      for (let key = 1; key <= N; key++) {
        k.add(key);
        if (key % 300 === 0 && rnd() < 0.5) k.idx.rehashFor(0.01);
      }
      const seen = new Set<number>();
      let cursor = 0;
      let shrinkingCalls = 0;
      do {
        const got: number[] = [];
        let budget = 10_000;
        if (k.idx.resizing && k.internals.t1!.length < k.internals.t0.length) shrinkingCalls++;
        cursor = k.idx.scan(cursor, (rec) => got.push(k.key(rec)), () => budget-- > 0 && got.length < 1000);
        for (const key of got) {
          seen.add(key);
          k.remove(key);
        }
        if (rnd() < 0.5) k.idx.rehashFor(0.05);
      } while (cursor !== 0);
      expect(shrinkingCalls).toBeGreaterThan(0);
      const missed = [...k.byKey.keys()].filter((key) => !seen.has(key));
      expect(missed).toEqual([]);
    });
  }
});
