// The schedule of jobs by the time the core must next look at them (the
// reference's "awakeme" list): queueing delayed jobs, re-queueing, sending
// WILLQUEUE, collecting acks, expiring. One binary min-heap for every
// registered job, stored in two parallel arrays, instead of a timer per job.
//
// Entries are never moved when a job's time changes: a new entry is pushed
// and the old one is recognised as stale when it reaches the top (its time no
// longer equals job.awake; an unregistered job's is NEVER). The heap is rebuilt
// without stale entries when they outnumber the live ones.
import { Job } from './job.js';

export class AwakeHeap {
  private times = new Float64Array(1024);
  private jobs: (Job | undefined)[] = [];
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(job: Job, at: number): void {
    if (this.n === this.times.length) {
      const bigger = new Float64Array(this.times.length * 2);
      bigger.set(this.times);
      this.times = bigger;
    }
    let i = this.n++;
    const times = this.times;
    const jobs = this.jobs;
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent]! <= at) break;
      times[i] = times[parent]!;
      jobs[i] = jobs[parent];
      i = parent;
    }
    times[i] = at;
    jobs[i] = job;
  }

  /** Time of the earliest entry (stale or not), Infinity when empty. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0]!;
  }

  /** Removes the earliest entry and returns its job if the entry is live. */
  popLive(): Job | undefined {
    if (this.n === 0) return undefined;
    const job = this.jobs[0]!;
    const at = this.times[0]!;
    this.removeTop();
    return job.awake === at ? job : undefined;
  }

  /** Drops stale entries when there are more than `live` entries by a margin. */
  compactIfNeeded(live: number): void {
    if (this.n < 4096 || this.n < live * 2) return;
    const times = this.times;
    const jobs = this.jobs;
    let w = 0;
    for (let r = 0; r < this.n; r++) {
      const job = jobs[r]!;
      if (job.awake === times[r]) {
        times[w] = times[r]!;
        jobs[w++] = job;
      }
    }
    for (let r = w; r < this.n; r++) jobs[r] = undefined;
    jobs.length = w;
    this.n = w;
    for (let i = (w >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  clear(): void {
    this.times = new Float64Array(1024);
    this.jobs = [];
    this.n = 0;
  }

  private removeTop(): void {
    const last = --this.n;
    if (last === 0) {
      this.jobs[0] = undefined;
      return;
    }
    this.times[0] = this.times[last]!;
    this.jobs[0] = this.jobs[last];
    this.jobs[last] = undefined;
    this.siftDown(0);
  }

  private siftDown(i: number): void {
    const times = this.times;
    const jobs = this.jobs;
    const n = this.n;
    const t = times[i]!;
    const j = jobs[i];
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1]! < times[child]!) child++;
      if (times[child]! >= t) break;
      times[i] = times[child]!;
      jobs[i] = jobs[child];
      i = child;
    }
    times[i] = t;
    jobs[i] = j;
  }
}
