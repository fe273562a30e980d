// Job IDs, the queue's job list and the awake schedule.
import { describe, it, expect } from 'vitest';
import { generateJobId, isValidJobId, ttlMinutesFromJobId, isAtMostOnceJobId, jobIdNodePrefix } from '../../src/core/job-id.js';
import { Job, JobState } from '../../src/core/job.js';
import { JobList } from '../../src/core/job-list.js';
import { AwakeHeap } from '../../src/core/awake-heap.js';

const NODE = '0123456789abcdef0123456789abcdef01234567';

function job(ctime: number, cseq = 0): Job {
  const j = new Job(generateJobId(NODE, 3600, 1), JobState.Queued, []);
  j.ctime = ctime;
  j.cseq = cseq;
  return j;
}

describe('job IDs', () => {
  it('have the reference format: D-, node prefix, 24 base64 chars, TTL minutes in hex', () => {
    const id = generateJobId(NODE, 3600, 5);
    expect(id).toMatch(/^D-01234567-[A-Za-z0-9+/]{24}-[0-9a-f]{4}$/);
    expect(id).toHaveLength(40);
    expect(isValidJobId(id)).toBe(true);
    expect(jobIdNodePrefix(id)).toBe('01234567');
    expect(ttlMinutesFromJobId(id)).toBe(61); // 60 minutes, made odd: at-least-once
  });

  it('mark at-most-once jobs with an even TTL field and cap it', () => {
    expect(isAtMostOnceJobId(generateJobId(NODE, 3600, 0))).toBe(true);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 3600, 0))).toBe(60);
    expect(isAtMostOnceJobId(generateJobId(NODE, 3600, 1))).toBe(false);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 10_000_000, 1))).toBe(65535);
    expect(ttlMinutesFromJobId(generateJobId(NODE, 30, 1))).toBe(1);
  });

  it('are unique', () => {
    const ids = new Set(Array.from({ length: 20000 }, () => generateJobId(NODE, 60, 1)));
    expect(ids.size).toBe(20000);
  });

  it('are validated by length and separators', () => {
    expect(isValidJobId('D-01234567-abc')).toBe(false);
    expect(isValidJobId('X' + generateJobId(NODE, 60, 1).slice(1))).toBe(false);
    expect(isValidJobId(generateJobId(NODE, 60, 1).replace(/-(?=[0-9a-f]{4}$)/, '+'))).toBe(false);
  });
});

describe('JobList', () => {
  it('keeps jobs ordered by creation time, ties by counter', () => {
    const l = new JobList();
    const jobs = [job(5), job(1), job(3, 1), job(3, 0), job(9), job(0)];
    for (const j of jobs) l.insert(j);
    expect(l.peek(10, false).map((j) => `${j.ctime}.${j.cseq}`)).toEqual(['0.0', '1.0', '3.0', '3.1', '5.0', '9.0']);
    expect(l.peek(2, true).map((j) => j.ctime)).toEqual([9, 5]);
    expect(l.shift()!.ctime).toBe(0);
    expect(l.size).toBe(5);
  });

  it('stays ordered across many chunks with inserts and removals in the middle', () => {
    const l = new JobList();
    const all: Job[] = [];
    for (let i = 0; i < 5000; i++) {
      const j = job(Math.floor(Math.random() * 100000), i);
      all.push(j);
      l.insert(j);
    }
    for (let i = 0; i < 2000; i++) expect(l.remove(all[i * 2]!)).toBe(true);
    expect(l.remove(all[0]!)).toBe(false);
    const rest = l.peek(10000, false);
    expect(rest).toHaveLength(3000);
    for (let i = 1; i < rest.length; i++) {
      const a = rest[i - 1]!;
      const b = rest[i]!;
      expect(a.ctime < b.ctime || (a.ctime === b.ctime && a.cseq <= b.cseq)).toBe(true);
    }
  });
});

describe('AwakeHeap', () => {
  it('pops in time order while entries move and leave', () => {
    const h = new AwakeHeap();
    const a = job(0);
    const b = job(0);
    const c = job(0);
    h.set(a, 50);
    h.set(b, 20);
    h.set(c, 30);
    h.set(a, 10); // earlier: moves up
    h.set(b, 60); // later: moves down
    h.remove(c);
    expect(c.heapIndex).toBe(-1);
    expect(h.length).toBe(2);
    const order: [Job | undefined, number][] = [];
    while (h.peekTime() !== Infinity) {
      const t = h.peekTime();
      order.push([h.pop(), t]);
    }
    expect(order).toEqual([
      [a, 10],
      [b, 60],
    ]);
    expect(a.heapIndex).toBe(-1);
  });

  it('agrees with a sorted model over random sets, moves and removals', () => {
    const h = new AwakeHeap();
    const model = new Map<Job, number>();
    const pool = Array.from({ length: 300 }, () => job(0));
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let step = 0; step < 20000; step++) {
      const j = pool[rnd(pool.length)]!;
      const op = rnd(10);
      if (op < 6) {
        const t = rnd(1000);
        h.set(j, t);
        model.set(j, t);
      } else if (op < 8) {
        h.remove(j);
        model.delete(j);
      } else if (model.size > 0) {
        const min = Math.min(...model.values());
        expect(h.peekTime()).toBe(min);
        const popped = h.pop()!;
        expect(model.get(popped)).toBe(min);
        model.delete(popped);
      }
      expect(h.length).toBe(model.size);
    }
    for (const [j, t] of model) expect(h.timeOf(j)).toBe(t);
  });
});

describe('JobTable', () => {
  it('finds, removes and samples jobs', async () => {
    const { JobTable } = await import('../../src/core/job-table.js');
    const t = new JobTable();
    const jobs = Array.from({ length: 3000 }, () => job(0));
    for (const j of jobs) expect(t.add(j)).toBe(true);
    expect(t.add(jobs[0]!)).toBe(false);
    expect(t.size).toBe(3000);
    for (const j of jobs) expect(t.get(j.id)).toBe(j);
    for (const j of jobs.slice(0, 2900)) expect(t.remove(j)).toBe(true);
    expect(t.size).toBe(100);
    expect(t.get(jobs[0]!.id)).toBeUndefined();
    const sample = new Set(Array.from({ length: 500 }, () => t.random(Math.random)));
    for (const j of sample) expect(jobs.slice(2900)).toContain(j);
  });

  it('scans every job present for the whole iteration while the table grows and shrinks', async () => {
    const { JobTable } = await import('../../src/core/job-table.js');
    const t = new JobTable();
    const stay = Array.from({ length: 2000 }, () => job(0));
    stay.forEach((j) => t.add(j));
    const churn: Job[] = [];
    const seen = new Set<Job>();
    let cursor = 0;
    let round = 0;
    do {
      let budget = 50;
      cursor = t.scan(cursor, (j) => seen.add(j), () => budget-- > 0);
      // Grow the table a lot, then shrink it back, between calls.
      if (round % 2 === 0) for (let i = 0; i < 3000; i++) churn.push(job(0)), t.add(churn[churn.length - 1]!);
      else while (churn.length) t.remove(churn.pop()!);
      round++;
    } while (cursor !== 0);
    for (const j of stay) expect(seen.has(j)).toBe(true);
  });
});
