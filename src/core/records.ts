// Job records: the fixed-size part of every job this node holds, in pages
// of plain memory (ArrayBuffers) instead of one JavaScript object per job,
// so the number of jobs does not change what the garbage collector walks.
// A job is known by its record number; record 0 is never used, so 0 means
// "no job" wherever a record number is stored. Pages are added as jobs
// come and never move, so growing never copies what is there.
//
// One record, 96 bytes, as 24 32-bit words (times as 64-bit floats):
//
//   word  0-1  ctime      creation time, clock ms (with cseq and the record
//         2-3  etime      number it orders a queue)
//         4-5  qtime      next (re)queue time, or NEVER
//         6    cseq       counter of jobs created in the same ms
//         7    delay      seconds
//         8    retry      seconds
//         9    nacks
//        10    deliveries additional deliveries
//        11    meta       state (2 bits), GC attempts (4), flags (8), repl (16)
//        12    heap       position in the awake schedule + 1, 0 when none
//        13    next       next record in the same ID-index bucket (or free list)
//        14    queue      queue name id (see intern.ts), 0 for a dummy ack
//        15    nodes      node list id (see intern.ts)
//        16    body       arena address of ID and body bytes, 0 when none
//        17    len/gen    body length (low 16 bits), record generation (high 16)
//     18-23    id         the packed job ID (24 bytes, see packJobId)

export const REC_WORDS = 24;
export const REC_BYTES = REC_WORDS * 4;

// Float64 fields: index within the record's f64 words (record word / 2).
export const F_CTIME = 0;
export const F_ETIME = 1;
export const F_QTIME = 2;
// 32-bit words.
export const W_CSEQ = 6;
export const W_DELAY = 7;
export const W_RETRY = 8;
export const W_NACKS = 9;
export const W_DELIV = 10;
export const W_META = 11;
export const W_HEAP = 12;
export const W_NEXT = 13;
export const W_QUEUE = 14;
export const W_NODES = 15;
export const W_BODY = 16;
export const W_LENGEN = 17;
export const W_ID = 18;

// meta word layout.
export const META_STATE_MASK = 3;
export const META_GC_SHIFT = 2;
export const META_FLAGS_SHIFT = 6;
export const META_FLAGS_MASK = 0xff;
export const META_REPL_SHIFT = 14;

/** Records per page: 32768 records, 3 MiB. */
export const PAGE_SHIFT = 15;
export const PAGE_RECS = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_RECS - 1;

export class JobRecords {
  /** Views of each page: words, the same as float64s, and bytes. */
  readonly u32: Uint32Array[] = [];
  readonly f64: Float64Array[] = [];
  readonly u8: Uint8Array[] = [];
  /** Records in use. */
  live = 0;
  /** Next record never handed out. */
  private top = 1;
  /** Freed records, chained through their `next` word. */
  private freeHead = 0;

  /** Bytes of the pages (what the records take from the system). */
  get allocatedBytes(): number {
    return this.u32.length * PAGE_RECS * REC_BYTES;
  }

  /** Records handed out so far, free ones included: record numbers are below this. */
  get end(): number {
    return this.top;
  }

  /** A zeroed record (its generation word kept), for a new job. */
  alloc(): number {
    let rec = this.freeHead;
    if (rec !== 0) {
      const u = this.u32[rec >>> PAGE_SHIFT]!;
      const o = (rec & PAGE_MASK) * REC_WORDS;
      this.freeHead = u[o + W_NEXT]!;
      const gen = u[o + W_LENGEN]! & 0xffff0000;
      u.fill(0, o, o + REC_WORDS);
      u[o + W_LENGEN] = gen;
    } else {
      rec = this.top++;
      if (rec >>> PAGE_SHIFT >= this.u32.length) this.addPage();
    }
    this.live++;
    return rec;
  }

  /** Returns the record to the free list; its generation changes so old handles see it gone. */
  free(rec: number): void {
    const u = this.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const gen = ((u[o + W_LENGEN]! >>> 16) + 1) & 0xffff;
    u[o + W_META] = 0;
    u[o + W_LENGEN] = gen << 16;
    u[o + W_NEXT] = this.freeHead;
    this.freeHead = rec;
    this.live--;
  }

  /** The generation of a record (changes each time it is freed). */
  gen(rec: number): number {
    return this.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_LENGEN]! >>> 16;
  }

  /** Drops every record and page. */
  clear(): void {
    this.u32.length = 0;
    this.f64.length = 0;
    this.u8.length = 0;
    this.top = 1;
    this.freeHead = 0;
    this.live = 0;
  }

  private addPage(): void {
    const buf = new ArrayBuffer(PAGE_RECS * REC_BYTES);
    this.u32.push(new Uint32Array(buf));
    this.f64.push(new Float64Array(buf));
    this.u8.push(new Uint8Array(buf));
  }
}

/** Word offset of a record within its page. */
export function recOffset(rec: number): number {
  return (rec & PAGE_MASK) * REC_WORDS;
}
