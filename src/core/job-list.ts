// The jobs of one queue, kept in creation-time order (best-effort FIFO, see
// the reference's README), as record numbers in a list of sorted chunks of
// plain memory: new jobs usually append to the last chunk and consumers pop
// from the first, both O(1); a re-queued (older) job or a removal in the
// middle finds its chunk and position by binary search, O(log n). A full
// chunk appended to is followed by a new one, so a queue filled in order
// costs 4 bytes per job; a chunk that gets too empty merges with its
// neighbour.

const CHUNK = 1024;
/** Emptied chunks kept for reuse (1 MiB). */
const SPARE_CHUNKS = 256;

/** Orders two records: negative when `a` comes first. Never 0 for two different records. */
export type RecordOrder = (a: number, b: number) => number;

class Chunk {
  readonly recs = new Uint32Array(CHUNK);
  /** Entries are recs[start, end). */
  start = 0;
  end = 0;

  get size(): number {
    return this.end - this.start;
  }

  last(): number {
    return this.recs[this.end - 1]!;
  }
}

/**
 * Chunks shared by every list of a store: the bytes they take (memory
 * accounting), and emptied chunks kept for reuse, so a queue that fills
 * and drains does not keep allocating (each allocation is an ArrayBuffer
 * the garbage collector accounts for).
 */
export class ChunkPool {
  chunkBytes = 0;
  private readonly spare: Chunk[] = [];

  take(): Chunk {
    this.chunkBytes += CHUNK * 4;
    const c = this.spare.pop();
    if (c === undefined) return new Chunk();
    c.start = 0;
    c.end = 0;
    return c;
  }

  give(c: Chunk): void {
    this.chunkBytes -= CHUNK * 4;
    if (this.spare.length < SPARE_CHUNKS) this.spare.push(c);
  }
}

export class JobList {
  private chunks: Chunk[] = [];
  private count = 0;

  constructor(
    private readonly order: RecordOrder,
    private readonly pool: ChunkPool,
  ) {}

  get size(): number {
    return this.count;
  }

  insert(rec: number): void {
    this.count++;
    const chunks = this.chunks;
    const n = chunks.length;
    if (n === 0) {
      this.append(rec);
      return;
    }
    const lastChunk = chunks[n - 1]!;
    if (this.order(rec, lastChunk.last()) > 0) {
      this.append(rec);
      return;
    }
    const ci = this.chunkFor(rec);
    let chunk = chunks[ci]!;
    let pos = this.position(chunk, rec);
    if (chunk.size === CHUNK) {
      // Full: split in two halves and insert into the right one.
      const tail = this.newChunk();
      const half = chunk.start + (CHUNK >>> 1);
      tail.recs.set(chunk.recs.subarray(half, chunk.end));
      tail.end = chunk.end - half;
      chunk.end = half;
      chunks.splice(ci + 1, 0, tail);
      if (pos > half) {
        pos = pos - half;
        chunk = tail;
      }
    } else if (chunk.end === CHUNK) {
      // No room at the end: move the entries to the front first.
      chunk.recs.copyWithin(0, chunk.start, chunk.end);
      pos -= chunk.start;
      chunk.end -= chunk.start;
      chunk.start = 0;
    }
    chunk.recs.copyWithin(pos + 1, pos, chunk.end);
    chunk.recs[pos] = rec;
    chunk.end++;
  }

  /** Removes `rec` if present; returns whether it was. */
  remove(rec: number): boolean {
    if (this.count === 0) return false;
    const ci = this.chunkFor(rec);
    const chunk = this.chunks[ci]!;
    const pos = this.position(chunk, rec);
    if (pos >= chunk.end || chunk.recs[pos] !== rec) return false;
    this.count--;
    if (pos === chunk.start) chunk.start++;
    else {
      if (pos !== chunk.end - 1) chunk.recs.copyWithin(pos, pos + 1, chunk.end);
      chunk.end--;
    }
    if (chunk.size === 0) this.dropChunk(ci);
    else if (chunk.size < CHUNK >>> 2) this.maybeMerge(ci);
    return true;
  }

  /** Removes and returns the oldest record, 0 when empty. */
  shift(): number {
    const first = this.chunks[0];
    if (first === undefined) return 0;
    const rec = first.recs[first.start++]!;
    this.count--;
    if (first.size === 0) this.dropChunk(0);
    return rec;
  }

  /** The oldest record, 0 when empty. */
  first(): number {
    const first = this.chunks[0];
    return first === undefined ? 0 : first.recs[first.start]!;
  }

  /** Up to `count` records from the oldest, or from the newest when `newestFirst`. */
  peek(count: number, newestFirst: boolean): number[] {
    const out: number[] = [];
    if (count <= 0) return out;
    const chunks = this.chunks;
    if (!newestFirst) {
      for (let c = 0; c < chunks.length; c++) {
        const chunk = chunks[c]!;
        for (let i = chunk.start; i < chunk.end; i++) {
          out.push(chunk.recs[i]!);
          if (out.length === count) return out;
        }
      }
    } else {
      for (let c = chunks.length - 1; c >= 0; c--) {
        const chunk = chunks[c]!;
        for (let i = chunk.end - 1; i >= chunk.start; i--) {
          out.push(chunk.recs[i]!);
          if (out.length === count) return out;
        }
      }
    }
    return out;
  }

  /** Up to `count` records from the `offset`-th (oldest first). */
  range(offset: number, count: number): number[] {
    const out: number[] = [];
    let skip = Math.max(0, offset);
    for (const chunk of this.chunks) {
      if (out.length >= count) break;
      if (skip >= chunk.size) {
        skip -= chunk.size;
        continue;
      }
      for (let i = chunk.start + skip; i < chunk.end && out.length < count; i++) out.push(chunk.recs[i]!);
      skip = 0;
    }
    return out;
  }

  /** Every record, oldest first (a new array). */
  all(): number[] {
    return this.peek(this.count, false);
  }

  clear(): void {
    for (const c of this.chunks) this.pool.give(c);
    this.chunks = [];
    this.count = 0;
  }

  private append(rec: number): void {
    const chunks = this.chunks;
    let last = chunks[chunks.length - 1];
    if (last === undefined || last.end === CHUNK) {
      if (last !== undefined && last.start >= CHUNK >>> 1) {
        // Mostly consumed: slide it to the front rather than add a chunk.
        last.recs.copyWithin(0, last.start, last.end);
        last.end -= last.start;
        last.start = 0;
      } else {
        last = this.newChunk();
        chunks.push(last);
      }
    }
    last.recs[last.end++] = rec;
  }

  private newChunk(): Chunk {
    return this.pool.take();
  }

  private dropChunk(ci: number): void {
    const [c] = this.chunks.splice(ci, 1);
    this.pool.give(c!);
  }

  /** Merges chunk `ci` into a neighbour when both fit in one chunk. */
  private maybeMerge(ci: number): void {
    const chunks = this.chunks;
    for (const other of [ci + 1, ci - 1]) {
      if (other < 0 || other >= chunks.length) continue;
      const a = chunks[Math.min(ci, other)]!;
      const b = chunks[Math.max(ci, other)]!;
      if (a.size + b.size > CHUNK) continue;
      a.recs.copyWithin(0, a.start, a.end);
      a.end -= a.start;
      a.start = 0;
      a.recs.set(b.recs.subarray(b.start, b.end), a.end);
      a.end += b.size;
      this.dropChunk(Math.max(ci, other));
      return;
    }
  }

  /** Index of the first chunk whose last record is not before `rec` (or the last chunk). */
  private chunkFor(rec: number): number {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.order(chunks[mid]!.last(), rec) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index in chunk.recs of the first record not before `rec`. */
  private position(chunk: Chunk, rec: number): number {
    let lo = chunk.start;
    let hi = chunk.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.order(chunk.recs[mid]!, rec) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
