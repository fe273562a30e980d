// Where the store's pages come from: large ArrayBuffers ("superblocks")
// carved into the fixed-size blocks the records, the arena and the schedule
// ask for.
//
// V8 counts every ArrayBuffer toward its external memory and starts a full
// garbage collection each time that grows by 64 MB, whether or not the pages
// were touched. Allocating a 1 MB arena segment or a 3 MB record page at a
// time, a node filling up ran such a collection every few hundred
// milliseconds. Superblocks start at 32 MB and double up to 4 GB, so growing
// by gigabytes costs a handful of collections; and the node reserves one as
// large as maxmemory (up to 4 GB) before it takes clients, so a collection a
// large superblock triggers happens then, not under load. Their memory is
// zero-filled and mapped on first touch (the allocator's calloc maps large
// sizes), so what is reserved but unused costs no resident memory.
//
// Blocks are never returned: a freed arena segment or page is reused by the
// structure that had it (the arena keeps empty segments, records a free list).

const FIRST_SUPERBLOCK = 32 * 1024 * 1024;
const MAX_SUPERBLOCK = 4 * 1024 * 1024 * 1024;

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
      let size = this.nextSize;
      while (size < bytes) size *= 2;
      this.newSuperblock(size);
    }
    const offset = this.used;
    this.used += bytes;
    this.takenBytes += bytes;
    return { buffer: this.current!, offset };
  }

  /** Makes room for `bytes` more (at most 4 GB) in one superblock now. */
  reserve(bytes: number): void {
    const want = Math.min(Math.max(bytes, FIRST_SUPERBLOCK), MAX_SUPERBLOCK);
    const left = this.current === null ? 0 : this.current.byteLength - this.used;
    if (left >= want) return;
    this.newSuperblock(Math.ceil(want / 8) * 8);
  }

  private newSuperblock(size: number): void {
    // What is left of the current superblock was never touched: it costs nothing.
    this.current = new ArrayBuffer(size);
    this.used = 0;
    this.reservedBytes += size;
    while (this.nextSize < Math.min(size * 2, MAX_SUPERBLOCK)) this.nextSize *= 2;
  }
}
