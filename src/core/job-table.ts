// The registry of jobs by ID: a chained hash table whose chains run through
// the jobs themselves (job.next), so an entry costs one bucket slot and one
// field instead of a Map entry plus a separate array for sampling. It also
// gives what Disque needs beyond lookups:
//   - a uniformly random job for eviction (random non-empty bucket);
//   - a stateless cursor scan (JSCAN) that returns every job present for
//     the whole iteration even when the table grows or shrinks in between:
//     buckets are visited in reversed-bit order of the cursor, the
//     technique Redis uses for SCAN.
// The hash mixes characters of the 144 random bits of the ID with a random
// per-process seed, so IDs chosen by a client cannot pile into one chain.
import { randomInt } from 'node:crypto';
import type { Job } from './job.js';

const SEED = randomInt(1, 0x7fffffff) | 1;
const MIN_SIZE = 16;

/**
 * Hash of a job ID: eight characters of its random part (48 random bits)
 * mixed with the seed. Other strings (IDs are validated before lookups, but
 * keep it total) hash on their first characters.
 */
export function hashId(id: string): number {
  const o = id.length >= 19 ? 11 : 0;
  const c = (i: number) => (o + i < id.length ? id.charCodeAt(o + i) : 0);
  const a = (c(0) << 21) ^ (c(1) << 14) ^ (c(2) << 7) ^ c(3);
  const b = (c(4) << 21) ^ (c(5) << 14) ^ (c(6) << 7) ^ c(7);
  let h = Math.imul(a ^ SEED, 0x5bd1e995);
  h ^= h >>> 13;
  h = Math.imul(h ^ b, 0x5bd1e995);
  h ^= h >>> 15;
  // A signed 32-bit value stays a small integer in V8 (job.hash costs no allocation).
  return h | 0;
}

/** Reverses the bits of a 32-bit unsigned integer. */
function rev(v: number): number {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1);
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2);
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4);
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8);
  return ((v >>> 16) | (v << 16)) >>> 0;
}

export class JobTable {
  private buckets: (Job | null)[] = new Array<Job | null>(MIN_SIZE).fill(null);
  private mask = MIN_SIZE - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: string): Job | undefined {
    // Comparing hashes first keeps a lookup from touching other jobs' ID
    // strings: with millions of jobs each touch is a cache miss.
    const h = hashId(id);
    let j: Job | null = this.buckets[h & this.mask] ?? null;
    while (j !== null) {
      if (j.hash === h && j.id === id) return j;
      j = j.next;
    }
    return undefined;
  }

  /** Adds the job; false if a job with the same ID is present. */
  add(job: Job): boolean {
    const h = hashId(job.id);
    job.hash = h;
    const b = h & this.mask;
    for (let j: Job | null = this.buckets[b] ?? null; j !== null; j = j.next) if (j.hash === h && j.id === job.id) return false;
    job.next = this.buckets[b] ?? null;
    this.buckets[b] = job;
    this.count++;
    if (this.count > this.buckets.length) this.resize(this.buckets.length * 2);
    return true;
  }

  /** Removes this very job object; false if it is not in the table. */
  remove(job: Job): boolean {
    const b = job.hash & this.mask;
    let prev: Job | null = null;
    for (let j: Job | null = this.buckets[b] ?? null; j !== null; prev = j, j = j.next) {
      if (j !== job) continue;
      if (prev === null) this.buckets[b] = j.next;
      else prev.next = j.next;
      job.next = null;
      this.count--;
      if (this.buckets.length > MIN_SIZE && this.count < this.buckets.length / 8) this.resize(this.buckets.length / 2);
      return true;
    }
    return false;
  }

  /** A random job (random non-empty bucket, then a random job in its chain). */
  random(rnd: () => number): Job | undefined {
    if (this.count === 0) return undefined;
    for (;;) {
      const first = this.buckets[Math.floor(rnd() * this.buckets.length)] ?? null;
      if (first === null) continue;
      let n = 0;
      for (let j: Job | null = first; j !== null; j = j.next) n++;
      let k = Math.floor(rnd() * n);
      let j = first;
      while (k-- > 0) j = j.next!;
      return j;
    }
  }

  /**
   * Visits buckets from `cursor` while `more()` says so (asked before each
   * bucket); returns the next cursor, 0 when the iteration is complete.
   */
  scan(cursor: number, visit: (job: Job) => void, more: () => boolean): number {
    let v = cursor >>> 0;
    do {
      if (!more()) return v;
      for (let j: Job | null = this.buckets[v & this.mask] ?? null; j !== null; j = j.next) visit(j);
      // Increment the reversed cursor: set the bits above the mask, reverse,
      // add one, reverse back.
      v |= ~this.mask >>> 0;
      v = rev(v);
      v = (v + 1) >>> 0;
      v = rev(v);
    } while (v !== 0);
    return 0;
  }

  *[Symbol.iterator](): IterableIterator<Job> {
    for (const first of this.buckets) for (let j = first; j !== null; j = j.next) yield j;
  }

  clear(): void {
    this.buckets = new Array<Job | null>(MIN_SIZE).fill(null);
    this.mask = MIN_SIZE - 1;
    this.count = 0;
  }

  private resize(size: number): void {
    const old = this.buckets;
    const buckets = new Array<Job | null>(size).fill(null);
    const mask = size - 1;
    for (let b = 0; b < old.length; b++) {
      let j: Job | null = old[b] ?? null;
      while (j !== null) {
        const next = j.next;
        const nb = j.hash & mask;
        j.next = buckets[nb] ?? null;
        buckets[nb] = j;
        j = next;
      }
    }
    this.buckets = buckets;
    this.mask = mask;
  }
}
