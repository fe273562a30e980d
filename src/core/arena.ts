// The byte arena: job bodies (and the rare ID that does not pack, see
// packJobId) in large ArrayBuffers, off the garbage-collected heap, with
// freed space reused.
//
// Small allocations (up to SMALL_MAX bytes) are rounded up to a size class
// and carved from 64 KiB slabs, each slab serving one class; slabs live in
// 1 MiB segments (blocks of the store's BlockSource). A slab keeps its own
// list of free slots, so a slab whose slots are all free goes back to a
// common pool for any class. Segments are kept once made (see blocks.ts).
// Classes are 8 bytes apart up to 128 bytes, then 8 per doubling, so
// rounding wastes at most 12.5% (the reference's allocator, jemalloc, spaces
// its classes alike).
//
// Larger allocations, up to LARGE_MAX, are blocks of their own size class
// (the same 8 per doubling), taken from the block source and kept for their
// class once freed. Each used to be a buffer of its own: V8 counts every
// ArrayBuffer toward its external memory and runs a full collection each
// time that grows by 64 MB, so adding 64 KB bodies ran one every 20 ms,
// 1-5 ms each (see blocks.ts). Only what is larger still gets a buffer.
//
// An address is a 32-bit number: for small allocations, the slab number and
// the offset in 8-byte units (32 GiB addressable); for large ones, an index
// into the large blocks. The caller keeps whether an allocation is large (it
// knows the size), as the store does in the job's flags.

import { BlockSource } from './blocks.js';

const SEG_SHIFT = 20;
const SEG_BYTES = 1 << SEG_SHIFT;
const SLAB_SHIFT = 16;
const SLAB_BYTES = 1 << SLAB_SHIFT;
const SLABS_PER_SEG = SEG_BYTES / SLAB_BYTES;
const UNIT_SHIFT = 3;
const ADDR_SLAB_SHIFT = SLAB_SHIFT - UNIT_SHIFT;
const ADDR_UNIT_MASK = (1 << ADDR_SLAB_SHIFT) - 1;
/** The most slabs 32-bit addresses can name. */
const MAX_SLABS = 2 ** (32 - ADDR_SLAB_SHIFT);

/** The largest size served from slabs; above it an allocation is large. */
export const SMALL_MAX = 16384;
/** The largest size served from large blocks; above it an allocation gets a buffer of its own. */
export const LARGE_MAX = 8 * 1024 * 1024;
/** Bytes addressable in slabs. */
export const ARENA_MAX_SMALL_BYTES = MAX_SLABS * SLAB_BYTES;

const CLASS_SIZES: number[] = [];
for (let s = 8; s <= 128; s += 8) CLASS_SIZES.push(s);
for (let base = 128; base < SMALL_MAX; base *= 2) for (let k = 1; k <= 8; k++) CLASS_SIZES.push(base + (base / 8) * k);
/** Size class of a size, indexed by (size + 7) >> 3. */
const CLASS_OF = new Uint8Array(((SMALL_MAX + 7) >> 3) + 1);
for (let c = 0, units = 0; units < CLASS_OF.length; units++) {
  while (CLASS_SIZES[c]! < units * 8) c++;
  CLASS_OF[units] = c;
}
const CLASS_SLOTS = CLASS_SIZES.map((s) => Math.floor(SLAB_BYTES / s));

/** Large classes: 8 per doubling from above SMALL_MAX to LARGE_MAX. */
const LARGE_SIZES: number[] = [];
for (let base = SMALL_MAX; base < LARGE_MAX; base *= 2) for (let k = 1; k <= 8; k++) LARGE_SIZES.push(base + (base / 8) * k);

/** Large class of a size in (SMALL_MAX, LARGE_MAX]. */
function largeClassOf(size: number): number {
  const doubling = 31 - Math.clz32((size - 1) / SMALL_MAX); // size in (SMALL_MAX << d, SMALL_MAX << (d + 1)]
  const base = SMALL_MAX << doubling;
  return doubling * 8 + Math.ceil((size - base) / (base / 8)) - 1;
}

/** The bytes an allocation of `size` takes in the arena (its class size). */
export function allocatedSize(size: number): number {
  if (size > LARGE_MAX) return size;
  if (size > SMALL_MAX) return LARGE_SIZES[largeClassOf(size)]!;
  return CLASS_SIZES[CLASS_OF[(size + 7) >> 3]!]!;
}

export class ByteArena {
  constructor(private readonly blocks: BlockSource = new BlockSource()) {}

  /** Segment memory, as bytes and as 32-bit words (free-slot links). */
  private segU8: Buffer[] = [];
  private segU32: Uint32Array[] = [];
  /** Per segment: bit i set when its slab i is free. */
  private segFree = new Uint16Array(16);
  /** Segments that may have free slabs (checked when popped), each listed once. */
  private segsWithFree: number[] = [];
  private segListed = new Uint8Array(16);

  // Per slab (slab number = segment * 16 + index), sized for segFree's segments.
  private slabClass = new Uint8Array(16 * SLABS_PER_SEG);
  private slabUsed = new Uint16Array(16 * SLABS_PER_SEG);
  private slabCarved = new Uint16Array(16 * SLABS_PER_SEG);
  private slabFreeSlot = new Uint32Array(16 * SLABS_PER_SEG);
  private slabNext = new Uint32Array(16 * SLABS_PER_SEG);
  private slabPrev = new Uint32Array(16 * SLABS_PER_SEG);
  /** Per class: first slab with a free slot (0: none); slab 0 is never used. */
  private partial = new Uint32Array(CLASS_SIZES.length);

  /** Per large address: the allocation's bytes (exactly its size), null when free. */
  private large: (Buffer | null)[] = [null];
  /** Per large address: its whole block (class size), null for a buffer of its own or an unused address. */
  private largeBlock: (Buffer | null)[] = [null];
  /** Per large class: addresses whose blocks are free. */
  private largeClassFree: number[][] = LARGE_SIZES.map(() => []);
  /** Addresses with no block (reused for new blocks and own buffers). */
  private largeFree: number[] = [];

  /** Bytes in live allocations, counted at their class size. */
  usedBytes = 0;
  /** Bytes asked for by live allocations. */
  requestedBytes = 0;
  /** Bytes of large blocks (live or free) and live own buffers. */
  largeBytes = 0;
  /** Bytes the arena holds from the system: segments and large buffers. */
  get allocatedBytes(): number {
    return this.segU8.length * SEG_BYTES + this.largeBytes;
  }

  /** Bytes held but not in live allocations: free slabs, free slots, unused slab tails. */
  get freeBytes(): number {
    return this.allocatedBytes - this.usedBytes;
  }

  /** Bytes lost to rounding sizes up to their class. */
  get roundingBytes(): number {
    return this.usedBytes - this.requestedBytes;
  }

  /** Allocates `size` bytes (size > 0); returns the address. */
  alloc(size: number): number {
    this.requestedBytes += size;
    if (size > SMALL_MAX) return this.allocLarge(size);
    const c = CLASS_OF[(size + 7) >> 3]!;
    let s = this.partial[c]!;
    if (s === 0) {
      s = this.newSlab(c);
      this.linkPartial(c, s);
    }
    let addr = this.slabFreeSlot[s]!;
    if (addr !== 0) {
      this.slabFreeSlot[s] = this.segU32[s >>> 4]![this.wordOf(addr)]!;
    } else {
      const slot = this.slabCarved[s]!;
      this.slabCarved[s] = slot + 1;
      addr = (s << ADDR_SLAB_SHIFT) | ((slot * CLASS_SIZES[c]!) >>> UNIT_SHIFT);
    }
    const used = this.slabUsed[s]! + 1;
    this.slabUsed[s] = used;
    if (used === CLASS_SLOTS[c]) this.unlinkPartial(c, s);
    this.usedBytes += CLASS_SIZES[c]!;
    return addr >>> 0;
  }

  /** Frees what alloc(size) returned as `addr`. */
  free(addr: number, size: number): void {
    this.requestedBytes -= size;
    if (size > SMALL_MAX) return this.freeLarge(addr, size);
    const s = addr >>> ADDR_SLAB_SHIFT;
    const c = this.slabClass[s]!;
    this.usedBytes -= CLASS_SIZES[c]!;
    this.segU32[s >>> 4]![this.wordOf(addr)] = this.slabFreeSlot[s]!;
    this.slabFreeSlot[s] = addr;
    const used = this.slabUsed[s]! - 1;
    this.slabUsed[s] = used;
    if (used + 1 === CLASS_SLOTS[c]) this.linkPartial(c, s);
    if (used === 0) {
      this.unlinkPartial(c, s);
      this.releaseSlab(s);
    }
  }

  /** The memory holding `addr`: a segment, or the large buffer. */
  bytes(addr: number, large: boolean): Buffer {
    return large ? this.large[addr]! : this.segU8[addr >>> (SEG_SHIFT - UNIT_SHIFT)]!;
  }

  /** Byte offset of `addr` within bytes(addr). */
  offset(addr: number, large: boolean): number {
    return large ? 0 : ((addr >>> ADDR_SLAB_SHIFT) & (SLABS_PER_SEG - 1)) * SLAB_BYTES + ((addr & ADDR_UNIT_MASK) << UNIT_SHIFT);
  }

  // ------------------------------------------------------------ internals

  /** Word index of a small address within its segment's words. */
  private wordOf(addr: number): number {
    return (((addr >>> ADDR_SLAB_SHIFT) & (SLABS_PER_SEG - 1)) * SLAB_BYTES + ((addr & ADDR_UNIT_MASK) << UNIT_SHIFT)) >>> 2;
  }

  private newSlab(c: number): number {
    let seg = -1;
    while (this.segsWithFree.length > 0) {
      const candidate = this.segsWithFree[this.segsWithFree.length - 1]!;
      if (this.segFree[candidate] !== 0) {
        seg = candidate;
        break;
      }
      this.segsWithFree.pop();
      this.segListed[candidate] = 0;
    }
    if (seg < 0) seg = this.newSegment();
    const mask = this.segFree[seg]!;
    const i = 31 - Math.clz32(mask & -mask);
    this.segFree[seg] = mask & ~(1 << i);
    const s = seg * SLABS_PER_SEG + i;
    this.slabClass[s] = c;
    this.slabUsed[s] = 0;
    this.slabCarved[s] = 0;
    this.slabFreeSlot[s] = 0;
    return s;
  }

  private releaseSlab(s: number): void {
    const seg = s >>> 4;
    this.segFree[seg] = this.segFree[seg]! | (1 << (s & 15));
    if (!this.segListed[seg]) {
      this.segListed[seg] = 1;
      this.segsWithFree.push(seg);
    }
  }

  private newSegment(): number {
    const seg = this.segU8.length;
    if ((seg + 1) * SLABS_PER_SEG > MAX_SLABS) throw new RangeError('job arena is full (32 GiB of small bodies)');
    if (seg >= this.segFree.length) this.growSlabTables(seg + 1);
    const { buffer, offset } = this.blocks.take(SEG_BYTES);
    this.segU8.push(Buffer.from(buffer, offset, SEG_BYTES));
    this.segU32.push(new Uint32Array(buffer, offset, SEG_BYTES / 4));
    // Segment 0 keeps slab 0 unused, so that no address is 0.
    this.segFree[seg] = seg === 0 ? 0xfffe : 0xffff;
    this.segsWithFree.push(seg);
    this.segListed[seg] = 1;
    return seg;
  }

  private growSlabTables(segs: number): void {
    let n = this.segFree.length;
    while (n < segs) n *= 2;
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.segFree = grow(this.segFree, n);
    this.segListed = grow(this.segListed, n);
    const slabs = n * SLABS_PER_SEG;
    this.slabClass = grow(this.slabClass, slabs);
    this.slabUsed = grow(this.slabUsed, slabs);
    this.slabCarved = grow(this.slabCarved, slabs);
    this.slabFreeSlot = grow(this.slabFreeSlot, slabs);
    this.slabNext = grow(this.slabNext, slabs);
    this.slabPrev = grow(this.slabPrev, slabs);
  }

  private linkPartial(c: number, s: number): void {
    const head = this.partial[c]!;
    this.slabPrev[s] = 0;
    this.slabNext[s] = head;
    if (head !== 0) this.slabPrev[head] = s;
    this.partial[c] = s;
  }

  private unlinkPartial(c: number, s: number): void {
    const prev = this.slabPrev[s]!;
    const next = this.slabNext[s]!;
    if (prev !== 0) this.slabNext[prev] = next;
    else if (this.partial[c] === s) this.partial[c] = next;
    if (next !== 0) this.slabPrev[next] = prev;
    this.slabPrev[s] = 0;
    this.slabNext[s] = 0;
  }

  private allocLarge(size: number): number {
    if (size > LARGE_MAX) {
      const id = this.newLargeAddress();
      this.large[id] = Buffer.allocUnsafeSlow(size);
      this.largeBytes += size;
      this.usedBytes += size;
      return id;
    }
    const c = largeClassOf(size);
    const classSize = LARGE_SIZES[c]!;
    let id = this.largeClassFree[c]!.pop();
    if (id === undefined) {
      id = this.newLargeAddress();
      const { buffer, offset } = this.blocks.take(classSize);
      this.largeBlock[id] = Buffer.from(buffer, offset, classSize);
      this.largeBytes += classSize;
    }
    this.large[id] = this.largeBlock[id]!.subarray(0, size);
    this.usedBytes += classSize;
    return id;
  }

  private newLargeAddress(): number {
    const id = this.largeFree.pop();
    if (id !== undefined) return id;
    this.large.push(null);
    this.largeBlock.push(null);
    return this.large.length - 1;
  }

  private freeLarge(id: number, size: number): void {
    this.large[id] = null;
    if (size > LARGE_MAX) {
      this.largeFree.push(id);
      this.largeBytes -= size;
      this.usedBytes -= size;
      return;
    }
    const c = largeClassOf(size);
    this.largeClassFree[c]!.push(id);
    this.usedBytes -= LARGE_SIZES[c]!;
  }
}
