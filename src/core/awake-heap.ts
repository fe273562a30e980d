// The schedule of jobs by the time the core must next look at them (the
// reference's "awakeme" list): queueing delayed jobs, re-queueing, sending
// WILLQUEUE, collecting acks, expiring. One binary min-heap for every
// registered job, stored in two parallel arrays, instead of a timer per job.
//
// Each job knows its position (job.heapIndex), so a changed time moves its
// entry and a deleted job leaves the heap at once: stale entries would keep
// deleted jobs (and their bodies) in memory until a clean-up.
import { Job } from './job.js';

export class AwakeHeap {
  private times = new Float64Array(1024);
  private jobs: (Job | undefined)[] = [];
  private n = 0;

  get length(): number {
    return this.n;
  }

  /** Enters the job at time `at`, or moves its entry there. */
  set(job: Job, at: number): void {
    let i = job.heapIndex;
    if (i < 0) {
      if (this.n === this.times.length) {
        const bigger = new Float64Array(this.times.length * 2);
        bigger.set(this.times);
        this.times = bigger;
      }
      i = this.n++;
      this.siftUp(i, job, at);
      return;
    }
    const old = this.times[i]!;
    if (at < old) this.siftUp(i, job, at);
    else if (at > old) this.siftDown(i, job, at);
  }

  /** Removes the job's entry, if it has one. */
  remove(job: Job): void {
    const i = job.heapIndex;
    if (i < 0) return;
    job.heapIndex = -1;
    const last = --this.n;
    const moved = this.jobs[last]!;
    const t = this.times[last]!;
    this.jobs[last] = undefined;
    if (i === last) return;
    // The last entry fills the hole, then goes up or down to its place.
    if (t < this.times[i]!) this.siftUp(i, moved, t);
    else this.siftDown(i, moved, t);
  }

  /** Time of the earliest entry, Infinity when empty. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0]!;
  }

  /** Time of the job's entry, or undefined if it has none. */
  timeOf(job: Job): number | undefined {
    return job.heapIndex < 0 ? undefined : this.times[job.heapIndex];
  }

  /** Removes and returns the earliest job. */
  pop(): Job | undefined {
    if (this.n === 0) return undefined;
    const job = this.jobs[0]!;
    this.remove(job);
    return job;
  }

  clear(): void {
    for (let i = 0; i < this.n; i++) this.jobs[i]!.heapIndex = -1;
    this.times = new Float64Array(1024);
    this.jobs = [];
    this.n = 0;
  }

  /** Places `job` with time `t` at `i` or above it. */
  private siftUp(i: number, job: Job, t: number): void {
    const times = this.times;
    const jobs = this.jobs;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent]! <= t) break;
      times[i] = times[parent]!;
      const p = jobs[parent]!;
      jobs[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    times[i] = t;
    jobs[i] = job;
    job.heapIndex = i;
  }

  /** Places `job` with time `t` at `i` or below it. */
  private siftDown(i: number, job: Job, t: number): void {
    const times = this.times;
    const jobs = this.jobs;
    const n = this.n;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1]! < times[child]!) child++;
      if (times[child]! >= t) break;
      times[i] = times[child]!;
      const c = jobs[child]!;
      jobs[i] = c;
      c.heapIndex = i;
      i = child;
    }
    times[i] = t;
    jobs[i] = job;
    job.heapIndex = i;
  }
}
