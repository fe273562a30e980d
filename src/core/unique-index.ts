// The unique-key index (ADDJOB ... UNIQUE <key>): which job holds a queue's
// key, so a second ADDJOB with the same queue and key returns that job.
//
// It costs nothing for jobs without a key. For a job with one, the key's
// bytes live in the job table's arena (off the heap, counted in
// used_memory) and two number-to-number maps find them: record -> arena
// address, and hash of (queue, key) -> record. Maps whose keys and values
// are small integers hold them inline, so no JavaScript object is made per
// job. Two keys whose hashes collide (or keys chosen to collide) go to a
// small map by string instead, whose own hashing V8 seeds per process.
//
// A node may hold two jobs with the same queue and key (each side of a
// partition added one, and both replicated here): one is indexed, the
// others are counted, and the next one takes the index when the indexed
// job goes.
import type { ByteArena } from './arena.js';

/** Longest key, in bytes. */
export const UNIQUE_KEY_MAX = 1024;

function hashKey(queue: string, key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < queue.length; i++) h = Math.imul(h ^ queue.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0x100, 0x01000193);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h | 0;
}

export class UniqueIndex {
  private readonly byHash = new Map<number, number>();
  private readonly byString = new Map<string, number>();
  private readonly addrOf = new Map<number, number>();
  /** Queue + key of jobs held here besides the indexed one: how many. */
  private readonly duplicates = new Map<string, number>();

  constructor(
    private readonly arena: ByteArena,
    /** The queue name of a record in the table. */
    private readonly queueOf: (rec: number) => string | null,
  ) {}

  /** Jobs with a key. */
  get size(): number {
    return this.addrOf.size;
  }

  /** The record holding `key` in `queue`, 0 when none. */
  find(queue: string, key: string): number {
    if (this.addrOf.size === 0) return 0;
    const rec = this.byHash.get(hashKey(queue, key));
    if (rec !== undefined && this.matches(rec, queue, key)) return rec;
    return this.byString.get(queue + '\0' + key) ?? 0;
  }

  /** The key of a record, or null. */
  keyOf(rec: number): string | null {
    if (this.addrOf.size === 0) return null;
    const addr = this.addrOf.get(rec);
    if (addr === undefined) return null;
    const mem = this.arena.bytes(addr, false);
    const at = this.arena.offset(addr, false);
    const len = mem[at]! | (mem[at + 1]! << 8);
    return mem.latin1Slice(at + 2, at + 2 + len);
  }

  /** Gives `rec` (a job of `queue`) the key (latin1, at most UNIQUE_KEY_MAX bytes). */
  add(rec: number, queue: string, key: string): void {
    if (key.length > UNIQUE_KEY_MAX) throw new RangeError('unique key too long');
    if (this.addrOf.has(rec)) this.remove(rec);
    const addr = this.arena.alloc(key.length + 2);
    const mem = this.arena.bytes(addr, false);
    const at = this.arena.offset(addr, false);
    mem[at] = key.length & 0xff;
    mem[at + 1] = key.length >>> 8;
    mem.latin1Write(key, at + 2, key.length);
    const existing = this.find(queue, key);
    this.addrOf.set(rec, addr);
    if (existing !== 0) {
      const s = queue + '\0' + key;
      this.duplicates.set(s, (this.duplicates.get(s) ?? 0) + 1);
      return;
    }
    this.index(rec, queue, key);
  }

  /** The record no longer holds its key (acknowledged or gone). */
  remove(rec: number): void {
    if (this.addrOf.size === 0) return;
    const addr = this.addrOf.get(rec);
    if (addr === undefined) return;
    const key = this.keyOf(rec)!;
    const queue = this.queueOf(rec) ?? '';
    this.addrOf.delete(rec);
    this.arena.free(addr, key.length + 2);
    const h = hashKey(queue, key);
    const s = queue + '\0' + key;
    let indexed = false;
    if (this.byHash.get(h) === rec) {
      this.byHash.delete(h);
      indexed = true;
    } else if (this.byString.get(s) === rec) {
      this.byString.delete(s);
      indexed = true;
    }
    const dups = this.duplicates.get(s);
    if (dups === undefined) return;
    if (dups <= 1) this.duplicates.delete(s);
    else this.duplicates.set(s, dups - 1);
    if (!indexed) return;
    // Another job here has the same key: it takes the index (rare: a scan of the keyed jobs).
    for (const other of this.addrOf.keys()) {
      if (this.matches(other, queue, key)) {
        this.index(other, queue, key);
        return;
      }
    }
  }

  private index(rec: number, queue: string, key: string): void {
    const h = hashKey(queue, key);
    if (this.byHash.has(h)) this.byString.set(queue + '\0' + key, rec);
    else this.byHash.set(h, rec);
  }

  private matches(rec: number, queue: string, key: string): boolean {
    const addr = this.addrOf.get(rec);
    if (addr === undefined || this.queueOf(rec) !== queue) return false;
    const mem = this.arena.bytes(addr, false);
    const at = this.arena.offset(addr, false);
    if ((mem[at]! | (mem[at + 1]! << 8)) !== key.length) return false;
    for (let i = 0; i < key.length; i++) if (mem[at + 2 + i] !== (key.charCodeAt(i) & 0xff)) return false;
    return true;
  }
}
