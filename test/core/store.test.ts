// The job store's life cycle on a fake clock: delays, retries, TTLs,
// at-most-once jobs, acks, queue eviction and memory levels, in
// milliseconds of fake time.
import { describe, it, expect, beforeEach } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { JobStore } from '../../src/core/store.js';
import { run } from '../helpers/store.js';
import { Job, JobState, NEVER, JOB_FLAG_DELIVERED, newJobFields } from '../../src/core/job.js';
import { generateJobId } from '../../src/core/job-id.js';
import type { QueueWaiter, Queue } from '../../src/core/queue.js';

const MY_ID = 'a'.repeat(40);

/** Creates and registers a job the way ADDJOB does for a single node. */
function addJob(
  store: JobStore,
  queue: string,
  body: string,
  opts: { ttl?: number; retry?: number; delay?: number } = {},
): Job {
  const ttl = opts.ttl ?? 86400;
  const retry = opts.retry ?? Math.max(1, Math.min(300, Math.floor(ttl / 10)));
  const delay = opts.delay ?? 0;
  const now = store.clock.now();
  const fields = newJobFields(generateJobId(MY_ID, ttl, retry), JobState.WaitRepl, store.selfOnly());
  fields.queue = queue;
  fields.body = body;
  store.nextCtime(fields);
  fields.etime = now + ttl * 1000;
  fields.retry = retry;
  fields.delay = delay;
  fields.qtime = delay ? now + delay * 1000 : now + retry * 1000;
  const job = store.addJob(fields)!;
  expect(job).not.toBeNull();
  if (delay === 0) store.enqueueJob(job, false);
  else {
    job.state = JobState.Active;
    store.updateAwakeTime(job);
  }
  return job;
}

describe('JobStore', () => {
  let clock: FakeClock;
  let store: JobStore;
  // A random source of 0.5 makes the re-queue desynchronization zero.
  beforeEach(() => {
    clock = new FakeClock();
    store = new JobStore({ clock, myId: () => MY_ID, random: () => 0.5 });
  });

  it('queues a new job at once and serves queues in creation order', () => {
    const a = addJob(store, 'q', 'a');
    const b = addJob(store, 'q', 'b');
    clock.advance(5);
    const c = addJob(store, 'q', 'c');
    const q = store.lookupQueue('q')!;
    expect(q.length).toBe(3);
    expect(store.fetchJob(q)?.id).toBe(a.id);
    expect(store.fetchJob(q)?.id).toBe(b.id);
    expect(store.fetchJob(q)?.id).toBe(c.id);
    expect(a.state).toBe(JobState.Active);
    expect(a.flags & JOB_FLAG_DELIVERED).toBeTruthy();
  });

  it('queues a delayed job only when its DELAY has passed', () => {
    const job = addJob(store, 'q', 'later', { delay: 2, retry: 10 });
    expect(store.lookupQueue('q')).toBeUndefined();
    run(store, clock, 1990);
    expect(job.state).toBe(JobState.Active);
    run(store, clock, 20);
    expect(job.state).toBe(JobState.Queued);
    expect(store.lookupQueue('q')!.length).toBe(1);
  });

  it('re-queues an unacknowledged job after RETRY and counts an additional delivery', () => {
    const job = addJob(store, 'q', 'x', { retry: 3 });
    const q = store.lookupQueue('q')!;
    expect(store.fetchJob(q)?.id).toBe(job.id);
    run(store, clock, 2900);
    expect(job.state).toBe(JobState.Active);
    run(store, clock, 200);
    expect(job.state).toBe(JobState.Queued);
    expect(job.deliveries).toBe(1);
    expect(q.length).toBe(1);
  });

  it('never re-queues an at-most-once job (RETRY 0) once delivered', () => {
    const job = addJob(store, 'q', 'once', { retry: 0 });
    expect(job.qtime).toBe(NEVER);
    const q = store.lookupQueue('q')!;
    expect(store.fetchJob(q)?.id).toBe(job.id);
    run(store, clock, 60_000, 100);
    expect(job.state).toBe(JobState.Active);
    expect(store.enqueueJob(job, false)).toBe(false);
    expect(q.length).toBe(0);
  });

  it('deletes jobs at their TTL whatever their state', () => {
    const queued = addJob(store, 'q', 'a', { ttl: 5, retry: 1 });
    const active = addJob(store, 'q', 'b', { ttl: 5, retry: 1 });
    store.fetchJob(store.lookupQueue('q')!);
    run(store, clock, 4990);
    expect(store.lookupJob(queued.id)?.rec).toBe(queued.rec);
    expect(store.lookupJob(active.id)?.rec).toBe(active.rec);
    run(store, clock, 20);
    expect(store.lookupJob(queued.id)).toBeUndefined();
    expect(store.lookupJob(active.id)).toBeUndefined();
    expect(store.jobCount).toBe(0);
    expect(store.usedMemory).toBeGreaterThan(0); // the queue is still there
  });

  it('collects an acknowledged job through the collect hook', () => {
    const collected: Job[] = [];
    store.hooks = {
      collect: (job) => {
        collected.push(job);
        store.unregisterJob(job);
      },
    };
    const job = addJob(store, 'q', 'x');
    store.acknowledgeJob(job);
    expect(job.state).toBe(JobState.Acked);
    expect(store.lookupQueue('q')!.length).toBe(0);
    run(store, clock, 2000, 50);
    expect(collected.map((j) => j.id)).toEqual([job.id]);
    expect(store.lookupJob(job.id)).toBeUndefined();
  });

  it('sends WILLQUEUE half a second before re-queueing an active job', () => {
    const events: string[] = [];
    store.hooks = { willQueue: () => events.push(`willqueue@${clock.now()}`) };
    const job = addJob(store, 'q', 'x', { retry: 2 });
    store.fetchJob(store.lookupQueue('q')!);
    run(store, clock, 1490, 10);
    expect(events).toEqual([]);
    run(store, clock, 20, 10);
    expect(events).toEqual(['willqueue@1500']);
    expect(job.state).toBe(JobState.Active);
  });

  it('keeps re-queue in a queue paused in input for another retry period', () => {
    const job = addJob(store, 'q', 'x', { retry: 1 });
    const q = store.lookupQueue('q')!;
    store.fetchJob(q);
    store.changePausedState(q, 1, true);
    run(store, clock, 1100);
    expect(job.state).toBe(JobState.Active);
    store.changePausedState(q, 1, false);
    run(store, clock, 1100);
    expect(job.state).toBe(JobState.Queued);
  });

  it('evicts empty idle queues after five minutes but keeps paused ones', () => {
    // Eviction samples queues at random.
    store = new JobStore({ clock, myId: () => MY_ID });
    const a = addJob(store, 'a', 'x', { retry: 0 });
    addJob(store, 'b', 'x', { retry: 0 });
    store.fetchJob(store.lookupQueue('a')!);
    store.fetchJob(store.lookupQueue('b')!);
    store.changePausedState(store.lookupQueue('b')!, 2, true);
    clock.advance(299_000);
    store.evictIdleQueues();
    expect(store.queueCount).toBe(2);
    clock.advance(2_000);
    for (let i = 0; i < 5; i++) store.evictIdleQueues();
    expect(store.lookupQueue('a')).toBeUndefined();
    expect(store.lookupQueue('b')).toBeDefined();
    expect(a.state).toBe(JobState.Active);
  });

  it('reaches memory warning levels and evicts only what is safe', () => {
    store = new JobStore({ clock, myId: () => MY_ID });
    store.maxmemory = 100_000;
    // Three of every four jobs are delivered: eviction samples jobs at random
    // and gives up after 10 misses in a row, as the reference does.
    const delivered: string[] = [];
    for (let n = 0; store.memoryWarningLevel() < 2; n++) {
      addJob(store, 'q', 'x'.repeat(200), { retry: 0 });
      if (n % 4 !== 0) delivered.push(store.fetchJob(store.lookupQueue('q')!)!.id);
    }
    expect(store.usedMemory).toBeGreaterThan(95_000);
    // Queued jobs are never evicted (even at-most-once ones); delivered at-most-once ones are.
    const queuedBefore = store.lookupQueue('q')!.length;
    expect(store.freeMemoryIfNeeded()).toBe(true);
    expect(store.usedMemory).toBeLessThanOrEqual(95_000);
    expect(store.lookupQueue('q')!.length).toBe(queuedBefore);
    expect(delivered.some((id) => store.lookupJob(id) === undefined)).toBe(true);
  });

  it('with maxmemory-policy noeviction refuses instead of evicting', () => {
    store = new JobStore({ clock, myId: () => MY_ID });
    store.maxmemory = 100_000;
    store.evictOnPressure = false;
    const delivered: string[] = [];
    while (store.memoryWarningLevel() < 2) {
      addJob(store, 'q', 'x'.repeat(200), { retry: 0 });
      delivered.push(store.fetchJob(store.lookupQueue('q')!)!.id);
    }
    const count = store.jobCount;
    expect(store.freeMemoryIfNeeded()).toBe(false);
    expect(store.jobCount).toBe(count);
    store.evictOnPressure = true;
    expect(store.freeMemoryIfNeeded()).toBe(true);
    expect(store.jobCount).toBeLessThan(count);
  });

  it('processes due jobs in batches within a time budget, the rest on the next call', () => {
    for (let i = 0; i < 1000; i++) addJob(store, 'q', `j${i}`, { delay: 1, retry: 10 });
    clock.advance(1000);
    // No time at all: one batch (256 jobs), and the next call is due at once.
    expect(store.processJobs(10_000, 0)).toBe(1);
    expect(store.lookupQueue('q')!.length).toBe(256);
    expect(store.processJobs(10_000, 0)).toBe(1);
    expect(store.lookupQueue('q')!.length).toBe(512);
    // Enough time: everything left.
    expect(store.processJobs(10_000, 10_000)).toBeGreaterThan(1);
    expect(store.lookupQueue('q')!.length).toBe(1000);
  });

  it('serves blocked waiters in arrival order and forgets unblocked ones', () => {
    const served: string[] = [];
    const mk = (name: string): QueueWaiter => ({
      blockedOn: null as Queue[] | null,
      serve: (job: Job) => served.push(`${name}:${job.body}`),
      flushed: () => served.push(`${name}:flushed`),
      refuse: () => {},
    });
    const w1 = mk('w1');
    const w2 = mk('w2');
    const w3 = mk('w3');
    store.block(w1, ['q']);
    store.block(w2, ['q', 'r']);
    store.block(w3, ['q']);
    store.unblock(w3);
    addJob(store, 'r', 'one');
    addJob(store, 'q', 'two');
    store.serveBlockedClients();
    expect(served.sort()).toEqual(['w1:two', 'w2:one']);
    expect(store.lookupQueue('q')!.blockedCount).toBe(0);
  });

  it('scans every job present for the whole iteration despite removals', () => {
    const jobs = Array.from({ length: 500 }, (_, i) => addJob(store, `q${i % 7}`, `b${i}`));
    const seen = new Set<string>();
    let cursor = 0;
    let rounds = 0;
    do {
      let budget = 17;
      cursor = store.scanJobs(cursor, (j) => seen.add(j.id), () => budget-- > 0);
      // Remove some jobs and add new ones between calls.
      if (rounds % 3 === 0) store.unregisterJob(jobs[rounds]!);
      addJob(store, 'new', `n${rounds}`);
      rounds++;
    } while (cursor !== 0);
    for (let i = 0; i < jobs.length; i++) {
      const j = jobs[i]!;
      if (store.lookupJob(j.id)) expect(seen.has(j.id)).toBe(true);
    }
  });
});
