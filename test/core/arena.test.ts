// The byte arena (job IDs and bodies off the garbage-collected heap): size
// classes and exact accounting, reuse of freed space, growth across
// segments, large allocations, bytes that never overlap between live
// allocations through long random churn, and what memory it keeps.
import { describe, it, expect } from 'vitest';
import { ByteArena, LARGE_MAX, SMALL_MAX, allocatedSize } from '../../src/core/arena.js';
import { prng } from '../helpers/prng.js';

const KiB = 1024;
const MiB = 1024 * 1024;
/** The arena's segment (what small allocations take from the system at a time). */
const SEGMENT = MiB;
/** Its slab (one size class per slab). */
const SLAB = 64 * KiB;
/** Size classes: 16 up to 128 bytes, then 8 per doubling up to SMALL_MAX. */
const CLASSES = 16 + 7 * 8;


interface Live {
  addr: number;
  size: number;
  tag: number;
}

/**
 * Allocations of an arena with a distinct byte pattern written into each
 * (a 4-byte tag at both ends, a tag-derived filler between), so that any
 * overlap or stray write shows as a broken pattern.
 */
class Tracked {
  readonly arena = new ByteArena();
  readonly live = new Map<number, Live>();
  private nextTag = 1;

  alloc(size: number): Live {
    const addr = this.arena.alloc(size);
    if (addr === 0) expect.fail(`alloc(${size}) returned address 0`);
    const key = this.key(addr, size);
    if (this.live.has(key)) expect.fail(`alloc(${size}) returned the live address ${addr}`);
    const a: Live = { addr, size, tag: this.nextTag++ };
    this.live.set(key, a);
    this.write(a);
    return a;
  }

  free(a: Live): void {
    this.live.delete(this.key(a.addr, a.size));
    this.arena.free(a.addr, a.size);
  }

  /** Small and large addresses are separate spaces (the caller knows which is which). */
  key(addr: number, size: number): number {
    return size > SMALL_MAX ? -addr : addr;
  }

  private filler(tag: number): number {
    return (Math.imul(tag, 0x9e3779b1) >>> 24) | 1;
  }

  write(a: Live): void {
    const large = a.size > SMALL_MAX;
    const mem = this.arena.bytes(a.addr, large);
    const off = this.arena.offset(a.addr, large);
    if (off + a.size > mem.length) expect.fail(`allocation #${a.tag} runs past its buffer`);
    mem.fill(this.filler(a.tag), off, off + a.size);
    if (a.size >= 8) {
      mem.writeUInt32LE(a.tag, off);
      mem.writeUInt32LE(a.tag, off + a.size - 4);
    } else {
      for (let i = 0; i < a.size; i++) mem[off + i] = (a.tag + i * 37) & 0xff;
    }
  }

  /** Checks every live allocation's pattern. */
  verifyBytes(): void {
    for (const a of this.live.values()) {
      const large = a.size > SMALL_MAX;
      const mem = this.arena.bytes(a.addr, large);
      const off = this.arena.offset(a.addr, large);
      const what = `allocation #${a.tag} (${a.size} bytes at ${a.addr})`;
      if (a.size >= 8) {
        if (mem.readUInt32LE(off) !== a.tag || mem.readUInt32LE(off + a.size - 4) !== a.tag) expect.fail(`${what}: tag overwritten`);
        const f = this.filler(a.tag);
        for (let i = off + 4; i < off + a.size - 4; i++) if (mem[i] !== f) expect.fail(`${what}: byte ${i - off} overwritten`);
      } else {
        for (let i = 0; i < a.size; i++) if (mem[off + i] !== ((a.tag + i * 37) & 0xff)) expect.fail(`${what}: byte ${i} overwritten`);
      }
    }
  }

  /**
   * Checks that no two live allocations share a byte of memory, counting
   * each at its class size (large ones are views of exactly their size into
   * blocks of their class).
   */
  verifyNoOverlap(): void {
    const byMemory = new Map<ArrayBufferLike, [number, number, number][]>();
    for (const a of this.live.values()) {
      const large = a.size > SMALL_MAX;
      const mem = this.arena.bytes(a.addr, large);
      const off = this.arena.offset(a.addr, large);
      if (large && (off !== 0 || mem.length !== a.size)) expect.fail(`large allocation #${a.tag} is not a view of exactly its size`);
      if (off + allocatedSize(a.size) > mem.byteLength + (large ? allocatedSize(a.size) - a.size : 0)) expect.fail(`allocation #${a.tag} runs past its buffer`);
      let spans = byMemory.get(mem.buffer);
      if (spans === undefined) byMemory.set(mem.buffer, (spans = []));
      spans.push([mem.byteOffset + off, mem.byteOffset + off + allocatedSize(a.size), a.tag]);
    }
    for (const [mem, spans] of byMemory) {
      spans.sort((x, y) => x[0] - y[0]);
      for (let i = 0; i < spans.length; i++) {
        const [start, end, tag] = spans[i]!;
        if (end > mem.byteLength) expect.fail(`allocation #${tag} runs past its memory`);
        if (i > 0 && spans[i - 1]![1] > start) {
          expect.fail(`allocations #${spans[i - 1]![2]} and #${tag} overlap at byte ${start}`);
        }
      }
    }
  }

  /** Checks the byte counters against the live set. */
  verifyAccounting(): void {
    let used = 0;
    let requested = 0;
    let large = 0;
    for (const a of this.live.values()) {
      used += allocatedSize(a.size);
      requested += a.size;
      if (a.size > SMALL_MAX) large += allocatedSize(a.size);
    }
    const ar = this.arena;
    expect(ar.usedBytes).toBe(used);
    expect(ar.requestedBytes).toBe(requested);
    // Large blocks in use, and free ones kept for their class.
    expect(ar.largeBytes).toBeGreaterThanOrEqual(large);
    expect(ar.roundingBytes).toBe(used - requested);
    expect(ar.freeBytes).toBe(ar.allocatedBytes - used);
    expect(ar.freeBytes).toBeGreaterThanOrEqual(0);
    // Small allocations come in whole segments.
    expect((ar.allocatedBytes - ar.largeBytes) % SEGMENT).toBe(0);
  }

  verifyAll(): void {
    this.verifyAccounting();
    this.verifyNoOverlap();
    this.verifyBytes();
  }
}

/** Sizes from 1 byte to several MB, mostly small, as job bodies are. */
function mixedSize(rnd: () => number): number {
  const r = rnd();
  if (r < 0.3) return 1 + Math.floor(rnd() * 64);
  if (r < 0.6) return 65 + Math.floor(rnd() * 1024);
  if (r < 0.85) return 1 + Math.floor(rnd() * 8192);
  if (r < 0.97) return 8192 + Math.floor(rnd() * (SMALL_MAX - 8192 + 1)); // up to SMALL_MAX itself
  if (r < 0.998) return SMALL_MAX + 1 + Math.floor(rnd() * 200 * KiB);
  return MiB + Math.floor(rnd() * 2 * MiB);
}

describe('ByteArena size classes and accounting', () => {
  it('rounds sizes up to classes 8 bytes apart up to 128, then 8 per doubling (at most 12.5% waste)', () => {
    expect(allocatedSize(1)).toBe(8);
    expect(allocatedSize(8)).toBe(8);
    expect(allocatedSize(9)).toBe(16);
    expect(allocatedSize(120)).toBe(120);
    expect(allocatedSize(128)).toBe(128);
    expect(allocatedSize(129)).toBe(144);
    expect(allocatedSize(1000)).toBe(1024);
    expect(allocatedSize(1025)).toBe(1152);
    expect(allocatedSize(SMALL_MAX - 1)).toBe(SMALL_MAX);
    expect(allocatedSize(SMALL_MAX)).toBe(SMALL_MAX);
    // Large classes go on 8 per doubling up to LARGE_MAX; above it an
    // allocation is exactly its size (a buffer of its own).
    expect(allocatedSize(SMALL_MAX + 1)).toBe(SMALL_MAX + SMALL_MAX / 8);
    expect(allocatedSize(64 * KiB)).toBe(64 * KiB);
    expect(allocatedSize(64 * KiB + 1)).toBe(72 * KiB);
    expect(allocatedSize(LARGE_MAX)).toBe(LARGE_MAX);
    expect(allocatedSize(LARGE_MAX + 1)).toBe(LARGE_MAX + 1);
    let prev = 0;
    const bad: number[] = [];
    for (let size = 1; size <= LARGE_MAX; size += size < 4 * SMALL_MAX ? 1 : 61) {
      const c = allocatedSize(size);
      // At least the size, 8-byte aligned, monotonic, at most 12.5% over above 128.
      if (c < size || c % 8 !== 0 || c < prev || (size > 128 && c - size > size / 8)) bad.push(size);
      prev = c;
    }
    expect(bad).toEqual([]);
  });

  it('counts used, requested, rounding, allocated and free bytes exactly', () => {
    const t = new Tracked();
    const ar = t.arena;
    expect(ar.allocatedBytes).toBe(0);
    expect(ar.usedBytes).toBe(0);
    const a = t.alloc(1);
    expect(ar.usedBytes).toBe(8);
    expect(ar.requestedBytes).toBe(1);
    expect(ar.roundingBytes).toBe(7);
    expect(ar.allocatedBytes).toBe(SEGMENT);
    expect(ar.freeBytes).toBe(SEGMENT - 8);
    const b = t.alloc(129);
    const c = t.alloc(SMALL_MAX);
    const d = t.alloc(SMALL_MAX + 1);
    const e = t.alloc(LARGE_MAX + 1);
    t.verifyAll();
    const dClass = SMALL_MAX + SMALL_MAX / 8;
    expect(ar.usedBytes).toBe(8 + 144 + SMALL_MAX + dClass + LARGE_MAX + 1);
    expect(ar.requestedBytes).toBe(1 + 129 + SMALL_MAX + SMALL_MAX + 1 + LARGE_MAX + 1);
    expect(ar.roundingBytes).toBe(7 + 15 + dClass - SMALL_MAX - 1);
    expect(ar.allocatedBytes).toBe(SEGMENT + dClass + LARGE_MAX + 1);
    for (const x of [b, d, e, a, c]) {
      t.free(x);
      t.verifyAll();
    }
    expect(ar.usedBytes).toBe(0);
    expect(ar.requestedBytes).toBe(0);
    expect(ar.roundingBytes).toBe(0);
    // The large block is kept for its class, free; the own buffer is gone.
    expect(ar.largeBytes).toBe(dClass);
    expect(ar.freeBytes).toBe(SEGMENT + dClass);
  });
});

describe('ByteArena reuse', () => {
  it('gives a freed slot to the next allocation of the same class, without taking more memory', () => {
    const t = new Tracked();
    const ar = t.arena;
    const keep = [t.alloc(100), t.alloc(100)];
    const a = t.alloc(100);
    const allocated = ar.allocatedBytes;
    t.free(a);
    // 97..104 bytes share the 104-byte class.
    const b = t.alloc(97);
    expect(b.addr).toBe(a.addr);
    t.free(b);
    const c = t.alloc(104);
    expect(c.addr).toBe(a.addr);
    expect(ar.allocatedBytes).toBe(allocated);
    t.verifyAll();
    for (const x of keep) t.free(x);
    t.free(c);
    expect(ar.usedBytes).toBe(0);
  });

  it('refills freed slots of a class before carving new ones', () => {
    const t = new Tracked();
    const ar = t.arena;
    const first = Array.from({ length: 2000 }, () => t.alloc(48));
    const allocated = ar.allocatedBytes;
    // Free every other one, then allocate as many again: all from the freed slots.
    const freed = new Set<number>();
    for (let i = 0; i < first.length; i += 2) {
      freed.add(first[i]!.addr);
      t.free(first[i]!);
    }
    for (let i = 0; i < 1000; i++) expect(freed.has(t.alloc(41).addr)).toBe(true);
    expect(ar.allocatedBytes).toBe(allocated);
    t.verifyAll();
  });

  it('moves a slab emptied by one class to another class', () => {
    const t = new Tracked();
    const ar = t.arena;
    // Fill almost one segment with one class, free it all, then fill it with another.
    const a = Array.from({ length: (14 * SLAB) / 256 }, () => t.alloc(256));
    expect(ar.allocatedBytes).toBe(SEGMENT);
    for (const x of a) t.free(x);
    const b = Array.from({ length: (14 * SLAB) / 1024 }, () => t.alloc(1000));
    expect(ar.allocatedBytes).toBe(SEGMENT);
    t.verifyAll();
    for (const x of b) t.free(x);
    expect(ar.usedBytes).toBe(0);
  });
});

describe('ByteArena growth', () => {
  // A regression test: in 25f63f7 the per-slab tables started with one
  // segment's worth of entries but were only grown from segment 16 on, so
  // segments 1..15 had no slab bookkeeping (typed-array writes out of range
  // are dropped) and every allocation past the first MiB got address 0
  // (fixed in 6f1e6ee).
  it('serves small allocations past the first segment at distinct, non-overlapping addresses', () => {
    const t = new Tracked();
    const n = (3 * SEGMENT) / 1024; // 3 MiB of 1 KiB allocations
    for (let i = 0; i < n; i++) t.alloc(1024);
    expect(t.live.size).toBe(n);
    expect(t.arena.allocatedBytes).toBeGreaterThanOrEqual(3 * SEGMENT);
    expect(t.arena.allocatedBytes).toBeLessThanOrEqual(5 * SEGMENT);
    t.verifyAll();
  });

  it('grows across many segments (and past the first growth of its tables) with every byte intact', () => {
    const t = new Tracked();
    const rnd = prng(1234);
    // About 40 MiB of small allocations: more than 32 segments.
    while (t.arena.usedBytes < 40 * MiB) t.alloc(1 + Math.floor(rnd() * SMALL_MAX));
    expect(t.arena.allocatedBytes).toBeGreaterThan(32 * SEGMENT);
    t.verifyAll();
    for (const a of [...t.live.values()]) t.free(a);
    t.verifyAccounting();
  });
});

describe('ByteArena large allocations', () => {
  it('serves allocations above SMALL_MAX from blocks of their class, views of exactly their size, kept for the class once freed', () => {
    const t = new Tracked();
    const ar = t.arena;
    const small = t.alloc(SMALL_MAX); // the largest small one comes from a slab
    expect(ar.largeBytes).toBe(0);
    expect(ar.allocatedBytes).toBe(SEGMENT);
    const sizes = [SMALL_MAX + 1, 100 * KiB, 5 * MiB + 3];
    const large = sizes.map((s) => t.alloc(s));
    const classBytes = sizes.reduce((x, y) => x + allocatedSize(y), 0);
    expect(ar.largeBytes).toBe(classBytes);
    expect(ar.allocatedBytes).toBe(SEGMENT + classBytes);
    for (const a of large) {
      expect(ar.bytes(a.addr, true).length).toBe(a.size);
      expect(ar.offset(a.addr, true)).toBe(0);
    }
    t.verifyAll();
    // A freed block serves the next allocation of its class, taking no more memory.
    t.free(large[1]!);
    expect(ar.freeBytes).toBe(SEGMENT - SMALL_MAX + allocatedSize(100 * KiB));
    const again = t.alloc(100 * KiB - 5);
    expect(allocatedSize(100 * KiB - 5)).toBe(allocatedSize(100 * KiB));
    expect(again.addr).toBe(large[1]!.addr);
    expect(ar.allocatedBytes).toBe(SEGMENT + classBytes);
    t.verifyAll();
    // Another class takes a block of its own.
    const other = t.alloc(70 * KiB);
    expect(ar.allocatedBytes).toBe(SEGMENT + classBytes + allocatedSize(70 * KiB));
    t.verifyAll();
    for (const a of [large[0]!, large[2]!, again, other, small]) t.free(a);
    expect(ar.usedBytes).toBe(0);
    expect(ar.freeBytes).toBe(ar.allocatedBytes);
  });

  it('gives a buffer of its own to an allocation above LARGE_MAX, and gives it back at once', () => {
    const t = new Tracked();
    const a = Array.from({ length: 3 }, (_, i) => t.alloc(LARGE_MAX + 1 + i));
    expect(t.arena.allocatedBytes).toBe(3 * LARGE_MAX + 6);
    for (const x of a) {
      expect(t.arena.bytes(x.addr, true).length).toBe(x.size);
      expect(t.arena.bytes(x.addr, true).byteOffset).toBe(0);
    }
    t.verifyAll();
    for (const x of a) t.free(x);
    expect(t.arena.allocatedBytes).toBe(0);
  });
});

describe('ByteArena random churn', () => {
  for (const seed of [1, 42, 20240607]) {
    it(`keeps every live allocation's bytes intact and separate through mixed sizes (seed ${seed})`, () => {
      const rnd = prng(seed);
      const t = new Tracked();
      const live: Live[] = [];
      for (let step = 0; step < 9000; step++) {
        // Grow to a few thousand allocations, then hover, then shrink.
        const target = step < 6000 ? 2500 : 200;
        if (live.length === 0 || rnd() < (live.length < target ? 0.65 : 0.35)) {
          live.push(t.alloc(mixedSize(rnd)));
        } else {
          const i = Math.floor(rnd() * live.length);
          const a = live[i]!;
          live[i] = live[live.length - 1]!;
          live.pop();
          t.free(a);
        }
        if (step % 500 === 0) t.verifyAccounting();
        if (step % 3000 === 2999) t.verifyAll();
      }
      t.verifyAll();
      for (const a of live) t.free(a);
      t.verifyAccounting();
      expect(t.arena.usedBytes).toBe(0);
      expect(t.arena.requestedBytes).toBe(0);
      // Large blocks stay, free, for their classes.
      expect(t.arena.freeBytes).toBe(t.arena.allocatedBytes);
    });
  }
});

describe('ByteArena memory kept', () => {
  it('frees everything to usedBytes 0, keeps its segments, and serves from them again without growing', () => {
    const t = new Tracked();
    const ar = t.arena;
    const rnd = prng(7);
    const live: Live[] = [];
    while (ar.usedBytes < 20 * MiB) live.push(t.alloc(1 + Math.floor(rnd() * 4096)));
    const peak = ar.allocatedBytes;
    expect(peak).toBeGreaterThanOrEqual(20 * SEGMENT);
    // Free in random order.
    for (let i = live.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    for (const a of live) t.free(a);
    expect(ar.usedBytes).toBe(0);
    expect(ar.requestedBytes).toBe(0);
    expect(ar.roundingBytes).toBe(0);
    // Segments are kept once made (see blocks.ts): all of it is free now.
    expect(ar.allocatedBytes).toBe(peak);
    expect(ar.freeBytes).toBe(peak);
    // Every slab is free again, whatever class it served: another mix of
    // sizes fills the same segments. Leave room for one partly carved slab
    // per class, which the first fill may not have needed.
    const again: Live[] = [];
    while (ar.usedBytes < 20 * MiB - CLASSES * SLAB) again.push(t.alloc(2048 + Math.floor(rnd() * (SMALL_MAX - 2048))));
    expect(ar.allocatedBytes).toBe(peak);
    t.verifyAll();
    for (const a of again) t.free(a);
    expect(ar.usedBytes).toBe(0);
  });

  it('a fill, a drain and a refill of large allocations take no more memory than the fill', () => {
    const t = new Tracked();
    const rnd = prng(5);
    const sizes = Array.from({ length: 64 }, () => SMALL_MAX + 1 + Math.floor(rnd() * 2 * MiB));
    let live = sizes.map((s) => t.alloc(s));
    const peak = t.arena.allocatedBytes;
    for (const x of live) t.free(x);
    live = sizes.reverse().map((s) => t.alloc(s));
    t.verifyAll();
    expect(t.arena.allocatedBytes).toBe(peak);
  });

  it('stays within a bounded factor of the live bytes after mixed churn at a steady size', () => {
    // Why this bound: a slab serves one class and goes back to the common
    // pool only when all of its slots are free; segments are never given
    // back. At a steady live size with random frees, the freed slots of a
    // class are refilled by later allocations of that class before new
    // slabs are carved, so the waste is (a) each class's live count
    // drifting below the peak it reached (a random walk around its share:
    // well under half the bytes at these sizes), (b) at most one partly
    // carved slab per class (72 classes x 64 KiB = 4.5 MiB), and (c) free
    // slabs of segments made at the peak, and the reserved first slab (a
    // few MiB at most, as the live size hardly moves). So:
    // allocated <= 2 x used + 10 MiB. (We measured about 1.3 x used.)
    const rnd = prng(99);
    const t = new Tracked();
    const ar = t.arena;
    const live: Live[] = [];
    const smallSize = () => {
      const r = rnd();
      if (r < 0.4) return 1 + Math.floor(rnd() * 128);
      if (r < 0.8) return 129 + Math.floor(rnd() * 2048);
      return 2177 + Math.floor(rnd() * (SMALL_MAX - 2176));
    };
    while (ar.usedBytes < 24 * MiB) live.push(t.alloc(smallSize()));
    const steady = live.length;
    for (let step = 0; step < 60_000; step++) {
      // Free one at random, allocate one of a random size: the live count stays put.
      const i = Math.floor(rnd() * live.length);
      t.free(live[i]!);
      live[i] = t.alloc(smallSize());
    }
    expect(live.length).toBe(steady);
    t.verifyAccounting();
    expect(ar.allocatedBytes).toBeLessThanOrEqual(2 * ar.usedBytes + 10 * MiB);
    t.verifyNoOverlap();
  });

  // Found while writing these tests: releaseSlab pushes a segment onto
  // segsWithFree each time its free-slab mask goes from 0 to non-zero, but
  // newSlab pops an entry only when it finds the top one full; a segment
  // that keeps losing and regaining its last free slab is pushed again each
  // time, so the array grows without bound (one entry per round here).
  it('keeps its list of segments with free slabs bounded by the number of segments', () => {
    // One segment full of one class; then, over and over, empty one slab
    // completely and fill it again. Each round frees a slab in a segment
    // that had none free, and takes it back.
    const t = new Tracked();
    const slots = SLAB / 4096;
    const slabs: Live[][] = [];
    for (let s = 0; s < 15; s++) slabs.push(Array.from({ length: slots }, () => t.alloc(4096)));
    expect(t.arena.allocatedBytes).toBe(SEGMENT);
    for (let round = 0; round < 2000; round++) {
      const s = round % 15;
      for (const a of slabs[s]!) t.free(a);
      slabs[s] = Array.from({ length: slots }, () => t.alloc(4096));
    }
    expect(t.arena.allocatedBytes).toBe(SEGMENT);
    const internals = t.arena as unknown as { segsWithFree: number[] };
    expect(internals.segsWithFree.length).toBeLessThanOrEqual(2);
    t.verifyAll();
  });
});
