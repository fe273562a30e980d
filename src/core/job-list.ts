// The jobs of one queue, kept in creation-time order (best-effort FIFO, see
// the reference's README). Jobs are held in a list of sorted chunks: new jobs
// usually append to the last chunk and consumers pop from the first, both
// O(1); a re-queued (older) job or a removal in the middle finds its chunk
// and position by binary search. Memory is one array slot per job.
import { Job, compareJobsByCtime } from './job.js';

const CHUNK_MAX = 1024;

export class JobList {
  private chunks: Job[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  insert(job: Job): void {
    this.count++;
    const chunks = this.chunks;
    const n = chunks.length;
    if (n === 0) {
      chunks.push([job]);
      return;
    }
    const last = chunks[n - 1]!;
    if (compareJobsByCtime(job, last[last.length - 1]!) >= 0) {
      last.push(job);
      if (last.length > CHUNK_MAX) this.split(n - 1);
      return;
    }
    const ci = this.chunkFor(job);
    const chunk = chunks[ci]!;
    chunk.splice(position(chunk, job), 0, job);
    if (chunk.length > CHUNK_MAX) this.split(ci);
  }

  /** Removes `job` if present; returns whether it was. */
  remove(job: Job): boolean {
    if (this.count === 0) return false;
    const ci = this.chunkFor(job);
    const chunk = this.chunks[ci]!;
    const lo = position(chunk, job);
    if (chunk[lo] !== job) return false;
    if (lo === 0) chunk.shift();
    else if (lo === chunk.length - 1) chunk.pop();
    else chunk.splice(lo, 1);
    if (chunk.length === 0) this.chunks.splice(ci, 1);
    this.count--;
    return true;
  }

  /** Removes and returns the oldest job. */
  shift(): Job | undefined {
    const first = this.chunks[0];
    if (first === undefined) return undefined;
    const job = first.shift();
    if (first.length === 0) this.chunks.shift();
    this.count--;
    return job;
  }

  first(): Job | undefined {
    return this.chunks[0]?.[0];
  }

  /** Up to `count` jobs from the oldest, or from the newest when `newestFirst`. */
  peek(count: number, newestFirst: boolean): Job[] {
    const out: Job[] = [];
    if (count <= 0) return out;
    const chunks = this.chunks;
    if (!newestFirst) {
      for (let c = 0; c < chunks.length; c++) {
        const chunk = chunks[c]!;
        for (let i = 0; i < chunk.length; i++) {
          out.push(chunk[i]!);
          if (out.length === count) return out;
        }
      }
    } else {
      for (let c = chunks.length - 1; c >= 0; c--) {
        const chunk = chunks[c]!;
        for (let i = chunk.length - 1; i >= 0; i--) {
          out.push(chunk[i]!);
          if (out.length === count) return out;
        }
      }
    }
    return out;
  }

  *[Symbol.iterator](): IterableIterator<Job> {
    for (const chunk of this.chunks) yield* chunk;
  }

  clear(): void {
    this.chunks = [];
    this.count = 0;
  }

  /** Index of the first chunk whose last job is not before `job` (or the last chunk). */
  private chunkFor(job: Job): number {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid]!;
      if (compareJobsByCtime(c[c.length - 1]!, job) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private split(ci: number): void {
    const chunk = this.chunks[ci]!;
    const tail = chunk.splice(chunk.length >>> 1);
    this.chunks.splice(ci + 1, 0, tail);
  }
}

/** Index of the first job in a sorted chunk that is not before `job`. */
function position(chunk: Job[], job: Job): number {
  let lo = 0;
  let hi = chunk.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareJobsByCtime(chunk[mid]!, job) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
