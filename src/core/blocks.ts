// Where the store's pages come from: large ArrayBuffers ("superblocks")
// carved into the fixed-size blocks the records, the arena and the schedule
// ask for.
//
// V8 counts every ArrayBuffer toward its external memory and starts a full
// garbage collection each time that grows by 64 MB, whether or not the pages
// were touched. Allocating a 1 MB arena segment or a 3 MB record page at a
// time, a node filling up ran such a collection every few hundred
// milliseconds. Superblocks start at 32 MB and double up to 1 GB, so growing
// by gigabytes costs a handful of collections. Their memory is zero-filled
// and mapped on first touch (the allocator's calloc maps large sizes), so
// what is reserved but unused costs no resident memory.
//
// Blocks are never returned: a freed arena segment or page is reused by the
// structure that had it (the arena keeps empty segments, records a free list).

const FIRST_SUPERBLOCK = 32 * 1024 * 1024;
const MAX_SUPERBLOCK = 1024 * 1024 * 1024;

export class BlockSource {
  private current: ArrayBuffer | null = null;
  private used = 0;
  private nextSize = FIRST_SUPERBLOCK;
  /** Bytes of all superblocks (address space, not resident memory). */
  reservedBytes = 0;
  /** Bytes handed out as blocks. */
  takenBytes = 0;

  /**
   * A zeroed block of `bytes` (a multiple of 8): the buffer and the offset
   * of the block in it.
   */
  take(bytes: number): { buffer: ArrayBuffer; offset: number } {
    if (bytes % 8 !== 0) throw new RangeError('blocks are whole 8-byte words');
    if (this.current === null || this.used + bytes > this.current.byteLength) {
      // What is left of the current superblock was never touched: it costs nothing.
      let size = this.nextSize;
      while (size < bytes) size *= 2;
      this.current = new ArrayBuffer(size);
      this.used = 0;
      this.reservedBytes += size;
      if (this.nextSize < MAX_SUPERBLOCK) this.nextSize *= 2;
    }
    const offset = this.used;
    this.used += bytes;
    this.takenBytes += bytes;
    return { buffer: this.current, offset };
  }
}
