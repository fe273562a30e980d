// Job records: the fixed-size part of every job this node holds, in pages
// of plain memory (ArrayBuffers) instead of one JavaScript object per job,
// so the number of jobs does not change what the garbage collector walks.
// A job is known by its record number; record 0 is never used, so 0 means
// "no job" wherever a record number is stored. Pages are added as jobs
// come and never move, so growing never copies what is there.
//
// Each record's ID hash is kept apart, in a page of hashes beside its page
// (the index rehashes with it when it resizes).
//
// One record, 88 bytes, as 22 32-bit words (times as 64-bit floats). Small
// fields share words, with the reference's widths where it has them (16-bit
// NACK and delivery counters, 16-bit replication factor):
//
//   word  0-1  ctime      creation time, clock ms (with cseq and the record
//                         number it orders a queue)
//         2-3  etime      expire time, clock ms
//         4-5  qtime      next (re)queue time, or NEVER
//         6    delay      seconds
//         7    retry      seconds
//         8    counts     nacks (low 16 bits), additional deliveries (high 16)
//         9    flags      queue name id (low 24, see intern.ts; 0 for a dummy
//                         ack), flags (high 8)
//        10    state      node list id (low 24), state (2 bits), GC attempts (4),
//                         record generation (high 2 of 18 bits)
//        11    gen        repl (low 16), record generation (low 16 of 18 bits)
//        12    seq        cseq (low 17), body length (high 15; see W_BODY)
//        13    heap       position in the awake schedule + 1, 0 when none
//        14    next       next record in the same ID-index bucket (or free list)
//        15    body       arena address of the body (and an ID that does not
//                         pack), 0 when none
//     16-21    id         the packed job ID (24 bytes, see packJobId)

import { BlockSource } from './blocks.js';

export const REC_WORDS = 22;
export const REC_BYTES = REC_WORDS * 4;
/** What a job's record takes in all: the record and its ID hash, kept in a page of hashes beside it. */
export const JOB_RECORD_BYTES = REC_BYTES + 4;

// Float64 fields: index within the record's f64 words (record word / 2).
export const F_CTIME = 0;
export const F_ETIME = 1;
export const F_QTIME = 2;
// 32-bit words.
export const W_DELAY = 6;
export const W_RETRY = 7;
export const W_COUNTS = 8;
export const W_FLAGS = 9;
export const W_STATE = 10;
export const W_GEN = 11;
export const W_SEQ = 12;
export const W_HEAP = 13;
export const W_NEXT = 14;
export const W_BODY = 15;
export const W_ID = 16;

// Fields within shared words.
export const QUEUE_MASK = 0xffffff;
export const FLAGS_SHIFT = 24;
export const NODES_MASK = 0xffffff;
export const STATE_SHIFT = 24;
export const GC_SHIFT = 26;
export const REPL_MASK = 0xffff;
export const GEN_SHIFT = 16;
/** Jobs created in one ms past this many are ordered by record number (the reference counts up to 1e6). */
export const CSEQ_MASK = 0x1ffff;
/** The body length takes the 15 high bits: up to the arena's SMALL_MAX; larger bodies have their own buffer, whose length is theirs. */
export const LEN_SHIFT = 17;
/** The generation's 2 high bits, in the state word (18 bits in all: see JobRecords.free). */
export const GEN_HIGH_SHIFT = 30;

/** Records per page: 32768 records, 2.75 MiB. */
export const PAGE_SHIFT = 15;
export const PAGE_RECS = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_RECS - 1;

export class JobRecords {
  constructor(private readonly blocks: BlockSource = new BlockSource()) {}

  /** Views of each page: words, the same as float64s, and bytes. */
  readonly u32: Uint32Array[] = [];
  readonly f64: Float64Array[] = [];
  readonly u8: Uint8Array[] = [];
  /** Per page, each record's ID hash, as the index uses it (see JobTable.hashOfRecord). */
  readonly hashes: Uint32Array[] = [];
  /** Records in use. */
  live = 0;
  /** Next record never handed out. */
  private top = 1;
  /** Freed records, chained through their `next` word. */
  private freeHead = 0;

  /** Bytes of the pages (what the records take from the system). */
  get allocatedBytes(): number {
    return this.u32.length * PAGE_RECS * JOB_RECORD_BYTES;
  }

  /** Records handed out so far, free ones included: record numbers are below this. */
  get end(): number {
    return this.top;
  }

  /** A zeroed record (its generation kept), for a new job. */
  alloc(): number {
    let rec = this.freeHead;
    if (rec !== 0) {
      const u = this.u32[rec >>> PAGE_SHIFT]!;
      const o = (rec & PAGE_MASK) * REC_WORDS;
      this.freeHead = u[o + W_NEXT]!;
      const lo = u[o + W_GEN]! & 0xffff0000;
      const hi = u[o + W_STATE]! & (3 << GEN_HIGH_SHIFT);
      u.fill(0, o, o + REC_WORDS);
      u[o + W_GEN] = lo;
      u[o + W_STATE] = hi;
    } else {
      rec = this.top++;
      if (rec >>> PAGE_SHIFT >= this.u32.length) this.addPage();
    }
    this.live++;
    return rec;
  }

  /**
   * Returns the record to the free list; its generation changes so old
   * handles see it gone. The generation has 18 bits: a handle kept while its
   * record is reused 262,144 times would see a job again (handles live one
   * event, and a record is reused once per free and add).
   */
  free(rec: number): void {
    const u = this.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const gen = (recordGen(u, o) + 1) & 0x3ffff;
    u[o + W_FLAGS] = 0;
    u[o + W_GEN] = (gen & 0xffff) << GEN_SHIFT;
    u[o + W_STATE] = (gen >>> 16) << GEN_HIGH_SHIFT;
    u[o + W_NEXT] = this.freeHead;
    this.freeHead = rec;
    this.live--;
  }

  /** The generation of a record (changes each time it is freed). */
  gen(rec: number): number {
    return recordGen(this.u32[rec >>> PAGE_SHIFT]!, (rec & PAGE_MASK) * REC_WORDS);
  }

  private addPage(): void {
    const { buffer, offset } = this.blocks.take(PAGE_RECS * REC_BYTES);
    this.u32.push(new Uint32Array(buffer, offset, PAGE_RECS * REC_WORDS));
    this.f64.push(new Float64Array(buffer, offset, (PAGE_RECS * REC_WORDS) / 2));
    this.u8.push(new Uint8Array(buffer, offset, PAGE_RECS * REC_BYTES));
    const h = this.blocks.take(PAGE_RECS * 4);
    this.hashes.push(new Uint32Array(h.buffer, h.offset, PAGE_RECS));
  }
}

/** The generation of the record at word offset `o` of page `u`. */
export function recordGen(u: Uint32Array, o: number): number {
  return (u[o + W_GEN]! >>> GEN_SHIFT) | ((u[o + W_STATE]! >>> GEN_HIGH_SHIFT) << 16);
}

/** Word offset of a record within its page. */
export function recOffset(rec: number): number {
  return (rec & PAGE_MASK) * REC_WORDS;
}
