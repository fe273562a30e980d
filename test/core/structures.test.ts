// Job IDs, the queue's job list and the awake schedule.
import { describe, it, expect } from 'vitest';
import { generateJobId, isValidJobId, ttlMinutesFromJobId, isAtMostOnceJobId, jobIdNodePrefix } from '../../src/core/job-id.js';
import { JobList, ChunkPool } from '../../src/core/job-list.js';
import { AwakeHeap } from '../../src/core/awake-heap.js';
import { JobIndex } from '../../src/core/job-index.js';
import { JobRecords, F_CTIME, W_SEQ, W_HEAP, REC_WORDS, PAGE_SHIFT, PAGE_MASK } from '../../src/core/records.js';

const NODE = '0123456789abcdef0123456789abcdef01234567';

/** Records with a creation time and counter, ordered as the store orders queues. */
class Recs {
  readonly records = new JobRecords();
  readonly chunks = new ChunkPool();
  make(ctime: number, cseq = 0): number {
    const rec = this.records.alloc();
    const o = (rec & PAGE_MASK) * REC_WORDS;
    this.records.f64[rec >>> PAGE_SHIFT]![(o >> 1) + F_CTIME] = ctime;
    this.records.u32[rec >>> PAGE_SHIFT]![o + W_SEQ] = cseq;
    return rec;
  }
  ctime(rec: number): number {
    return this.records.f64[rec >>> PAGE_SHIFT]![((rec & PAGE_MASK) * REC_WORDS >> 1) + F_CTIME]!;
  }
  cseq(rec: number): number {
    return this.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_SEQ]!;
  }
  heapPos(rec: number): number {
    return this.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_HEAP]!;
  }
  readonly order = (a: number, b: number): number => this.ctime(a) - this.ctime(b) || this.cseq(a) - this.cseq(b) || a - b;
  list(): JobList {
    return new JobList(this.order, this.chunks);
  }
}

describe('job IDs', () => {
  it('have the reference format: D-, node prefix, 24 base64 chars, TTL minutes in hex', () => {
    const id = generateJobId(NODE, 3600, 5);
    expect(id).toMatch(/^D-01234567-[A-Za-z0-9+/]{24}-[0-9a-f]{4}$/);
    expect(id).toHaveLength(40);
    expect(isValidJobId(id)).toBe(true);
    expect(jobIdNodePrefix(id)).toBe('01234567');
    expect(ttlMinutesFromJobId(id)).toBe(61); // 60 minutes, made odd: at-least-once
  });

  it('mark at-most-once jobs with an even TTL field and cap it', () => {
    expect(isAtMostOnceJobId(generateJobId(NODE, 3600, 0))).toBe(true);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 3600, 0))).toBe(60);
    expect(isAtMostOnceJobId(generateJobId(NODE, 3600, 1))).toBe(false);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 10_000_000, 1))).toBe(65535);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 30, 1))).toBe(1);
  });

  it('come packed as packJobId packs them, unless the node prefix is not lowercase hex', async () => {
    const idmod = await import('../../src/core/job-id.js');
    const packed = new Uint8Array(24);
    for (let i = 0; i < 200; i++) {
      const id = generateJobId(NODE, 60 * i, i % 2);
      expect(idmod.generatedId).toBe(id);
      expect(idmod.packJobId(id, packed, 0)).toBe(true);
      expect([...idmod.generatedPacked]).toEqual([...packed]);
      const back = Buffer.alloc(40);
      idmod.unpackJobId(packed, 0, back, 0);
      expect(back.toString('latin1')).toBe(id);
    }
    generateJobId('ABCDEF0123456789abcdef0123456789abcdef01', 60, 1);
    expect(idmod.generatedId).toBe('');
  });

  it('are unique', () => {
    const ids = new Set(Array.from({ length: 20000 }, () => generateJobId(NODE, 60, 1)));
    expect(ids.size).toBe(20000);
  });

  it('are validated by length and separators', () => {
    expect(isValidJobId('D-01234567-abc')).toBe(false);
    expect(isValidJobId('X' + generateJobId(NODE, 60, 1).slice(1))).toBe(false);
    expect(isValidJobId(generateJobId(NODE, 60, 1).replace(/-(?=[0-9a-f]{4}$)/, '+'))).toBe(false);
  });
});

describe('JobList', () => {
  it('keeps records ordered by creation time, ties by counter', () => {
    const r = new Recs();
    const l = r.list();
    const recs = [r.make(5), r.make(1), r.make(3, 1), r.make(3, 0), r.make(9), r.make(0)];
    for (const rec of recs) l.insert(rec);
    expect(l.peek(10, false).map((x) => `${r.ctime(x)}.${r.cseq(x)}`)).toEqual(['0.0', '1.0', '3.0', '3.1', '5.0', '9.0']);
    expect(l.peek(2, true).map((x) => r.ctime(x))).toEqual([9, 5]);
    expect(r.ctime(l.shift())).toBe(0);
    expect(l.size).toBe(5);
  });

  it('stays ordered across many chunks with inserts and removals in the middle', () => {
    const r = new Recs();
    const l = r.list();
    const all: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const rec = r.make(Math.floor(Math.random() * 100000), i);
      all.push(rec);
      l.insert(rec);
    }
    for (let i = 0; i < 2000; i++) expect(l.remove(all[i * 2]!)).toBe(true);
    expect(l.remove(all[0]!)).toBe(false);
    const rest = l.peek(10000, false);
    expect(rest).toHaveLength(3000);
    for (let i = 1; i < rest.length; i++) expect(r.order(rest[i - 1]!, rest[i]!)).toBeLessThan(0);
  });

  it('costs about 4 bytes per record when filled in order, and gives chunks back when drained', () => {
    const r = new Recs();
    const l = r.list();
    for (let i = 0; i < 100_000; i++) l.insert(r.make(i));
    expect(r.chunks.chunkBytes).toBeLessThanOrEqual(100_000 * 4 + 4096);
    while (l.size > 0) l.shift();
    expect(r.chunks.chunkBytes).toBe(0);
  });
});

describe('AwakeHeap', () => {
  it('pops in time order while entries move and leave', () => {
    const r = new Recs();
    const h = new AwakeHeap(r.records);
    const a = r.make(0);
    const b = r.make(0);
    const c = r.make(0);
    h.set(a, 50);
    h.set(b, 20);
    h.set(c, 30);
    h.set(a, 10); // earlier: moves up
    h.set(b, 60); // later: moves down
    h.remove(c);
    expect(r.heapPos(c)).toBe(0);
    expect(h.length).toBe(2);
    const order: [number, number][] = [];
    while (h.peekTime() !== Infinity) {
      const t = h.peekTime();
      order.push([h.pop(), t]);
    }
    expect(order).toEqual([
      [a, 10],
      [b, 60],
    ]);
    expect(r.heapPos(a)).toBe(0);
  });

  it('agrees with a sorted model over random sets, moves and removals, across pages', () => {
    const r = new Recs();
    const h = new AwakeHeap(r.records);
    const model = new Map<number, number>();
    const pool = Array.from({ length: 70_000 }, () => r.make(0));
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    // Fill past one page (65536 entries), then churn.
    for (const rec of pool) {
      const t = rnd(1_000_000);
      h.set(rec, t);
      model.set(rec, t);
    }
    let min = Math.min(...model.values());
    for (let step = 0; step < 30_000; step++) {
      const rec = pool[rnd(pool.length)]!;
      const op = rnd(10);
      if (op < 6) {
        const t = rnd(1_000_000);
        h.set(rec, t);
        model.set(rec, t);
      } else if (op < 8) {
        h.remove(rec);
        model.delete(rec);
      } else if (model.size > 0) {
        if (step % 100 === 0) {
          min = Infinity;
          for (const t of model.values()) if (t < min) min = t;
          expect(h.peekTime()).toBe(min);
        }
        const t = h.peekTime();
        const popped = h.pop();
        expect(model.get(popped)).toBe(t);
        model.delete(popped);
      }
      expect(h.length).toBe(model.size);
    }
    for (const [rec, t] of model) expect(h.timeOf(rec)).toBe(t);
  });
});

describe('AwakeHeap time range', () => {
  it('keeps 32-bit millisecond keys after base: clamps, and rebases without losing order', () => {
    const r = new Recs();
    const h = new AwakeHeap(r.records);
    const far = r.make(0);
    const a = r.make(0);
    const b = r.make(0);
    const past = r.make(0);
    h.set(far, 2 ** 33); // beyond 49 days: kept at the end of the range
    h.set(a, 1000.4); // fractions round up: never looked at early
    h.set(b, 5000);
    h.set(past, -50); // before base: due at once
    expect(h.timeOf(far)).toBe(2 ** 32 - 1);
    expect(h.timeOf(a)).toBe(1001);
    expect(h.timeOf(past)).toBe(0);
    h.rebase(3000); // base moves to 2000: a and past are now at base
    expect(h.base).toBe(2000);
    expect(h.timeOf(b)).toBe(5000);
    expect(h.timeOf(a)).toBe(2000);
    expect(h.timeOf(far)).toBe(2 ** 32 - 1);
    const order = [h.pop(), h.pop(), h.pop(), h.pop()];
    expect(order.slice(0, 2).sort()).toEqual([a, past].sort());
    expect(order.slice(2)).toEqual([b, far]);
  });
});

describe('JobIndex', () => {
  /** An index over records whose "ID" is a number kept in their cseq word. */
  function index(r: Recs): JobIndex {
    return new JobIndex(r.records, (rec) => Math.imul(r.cseq(rec), 0x9e3779b1) >>> 0);
  }
  const h = (key: number) => Math.imul(key, 0x9e3779b1) >>> 0;
  const find = (r: Recs, idx: JobIndex, key: number) => idx.find(h(key), (rec) => r.cseq(rec) === key);

  it('finds, removes and samples records while resizing incrementally', () => {
    const r = new Recs();
    const idx = index(r);
    const recs = Array.from({ length: 30_000 }, (_, i) => r.make(0, i + 1));
    for (const rec of recs) idx.add(rec, h(r.cseq(rec)));
    expect(idx.size).toBe(30_000);
    for (const rec of recs) expect(find(r, idx, r.cseq(rec))).toBe(rec);
    expect(find(r, idx, 999_999)).toBe(0);
    for (const rec of recs.slice(0, 29_000)) expect(idx.remove(rec, h(r.cseq(rec)))).toBe(true);
    expect(idx.remove(recs[0]!, h(r.cseq(recs[0]!)))).toBe(false);
    expect(idx.size).toBe(1000);
    for (const rec of recs.slice(29_000)) expect(find(r, idx, r.cseq(rec))).toBe(rec);
    const rest = new Set(recs.slice(29_000));
    for (let i = 0; i < 500; i++) expect(rest.has(idx.random(Math.random))).toBe(true);
    // Shrinking is incremental too; the cron's share finishes it.
    idx.rehashFor(50);
    expect(idx.resizing).toBe(false);
    expect(idx.allocatedBytes).toBeLessThanOrEqual(4 * 4096);
  });

  it('scans every record present for the whole iteration while the table grows and shrinks', () => {
    const r = new Recs();
    const idx = index(r);
    let key = 1;
    const stay = Array.from({ length: 2000 }, () => r.make(0, key++));
    stay.forEach((rec) => idx.add(rec, h(r.cseq(rec))));
    const churn: number[] = [];
    const seen = new Set<number>();
    let cursor = 0;
    let round = 0;
    do {
      let budget = 50;
      cursor = idx.scan(cursor, (rec) => seen.add(rec), () => budget-- > 0);
      // Grow the table a lot, then shrink it back, between calls (resizes stay under way).
      if (round % 2 === 0) {
        for (let i = 0; i < 3000; i++) {
          const rec = r.make(0, key++);
          churn.push(rec);
          idx.add(rec, h(r.cseq(rec)));
        }
      } else {
        while (churn.length) {
          const rec = churn.pop()!;
          idx.remove(rec, h(r.cseq(rec)));
        }
      }
      round++;
    } while (cursor !== 0);
    for (const rec of stay) expect(seen.has(rec)).toBe(true);
  });
});
