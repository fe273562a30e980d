// UNIQUE keys, scheduled jobs and NACK with a delay in the store, on a fake
// clock; the UNIQUE key in the job codec (bus and persistence maps).
import { describe, it, expect, beforeEach } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { JobStore } from '../../src/core/store.js';
import { run } from '../helpers/store.js';
import { Job, JobState, JOB_FLAG_BCAST_QUEUED, newJobFields } from '../../src/core/job.js';
import { generateJobId } from '../../src/core/job-id.js';
import { decodeJob, encodeJob, writeJob } from '../../src/core/job-codec.js';
import { MsgWriter } from '../../src/core/msgpack-writer.js';
import {
  jobFrameHeaderRoom,
  jobRoom,
  readJob as readJobFromFrame,
  readJobFrameHeader,
  writeJob as writeJobToFrame,
  writeJobFrameHeader,
} from '../../src/cluster/job-frames.js';
import { BUS_PROTOCOL_VERSION, MsgType } from '../../src/cluster/messages.js';
import { UniqueIndex } from '../../src/core/unique-index.js';
import { ByteArena } from '../../src/core/arena.js';
import { Packr } from 'msgpackr';

const ME = 'a'.repeat(40);

function fields(store: JobStore, queue: string, opts: { retry?: number; delay?: number; unique?: string } = {}) {
  const retry = opts.retry ?? 30;
  const now = store.clock.now();
  const f = newJobFields(generateJobId(ME, 3600, retry), JobState.WaitRepl, store.selfOnly());
  f.queue = queue;
  f.body = 'body';
  store.nextCtime(f);
  f.etime = now + 3600_000;
  f.retry = retry;
  f.delay = opts.delay ?? 0;
  f.qtime = opts.delay ? now + opts.delay * 1000 : now + retry * 1000;
  if (opts.unique !== undefined) f.unique = opts.unique;
  return f;
}

function addJob(store: JobStore, queue: string, opts: { retry?: number; delay?: number; unique?: string } = {}): Job {
  const job = store.addJob(fields(store, queue, opts))!;
  if (!opts.delay) store.enqueueJob(job, false);
  else {
    job.state = JobState.Active;
    store.updateAwakeTime(job);
  }
  return job;
}

describe('UNIQUE keys', () => {
  let clock: FakeClock;
  let store: JobStore;
  beforeEach(() => {
    clock = new FakeClock();
    store = new JobStore({ clock, myId: () => ME, random: () => 0.5 });
  });

  it('finds the job holding a queue and key until it is acknowledged or gone', () => {
    const a = addJob(store, 'q', { unique: 'k1' });
    addJob(store, 'q', { unique: 'k2' });
    addJob(store, 'other', { unique: 'k1' });
    expect(store.lookupUnique('q', 'k1')?.id).toBe(a.id);
    expect(store.lookupUnique('q', 'k3')).toBeUndefined();
    expect(store.lookupUnique('other', 'k1')?.id).not.toBe(a.id);
    expect(a.unique).toBe('k1');
    // Delivered, NACKed, re-queued: still the holder.
    store.fetchJob(store.lookupQueue('q')!);
    store.enqueueJob(a, true);
    expect(store.lookupUnique('q', 'k1')?.id).toBe(a.id);
    store.acknowledgeJob(a);
    expect(store.lookupUnique('q', 'k1')).toBeUndefined();
    expect(a.unique).toBeNull();
    const b = addJob(store, 'q', { unique: 'k2-again' });
    store.unregisterJob(b);
    expect(store.lookupUnique('q', 'k2-again')).toBeUndefined();
    expect(store.lookupUnique('q', 'k2')).toBeDefined();
  });

  it('keys take arena bytes (counted in used_memory) and give them back', () => {
    store.unregisterJob(addJob(store, 'q')); // the queue exists
    const base = store.usedMemory;
    const plain = addJob(store, 'q');
    const withoutKey = store.usedMemory - base;
    store.unregisterJob(plain);
    const keyed = addJob(store, 'q', { unique: 'x'.repeat(100) });
    expect(store.usedMemory - base).toBeGreaterThan(withoutKey + 100);
    store.unregisterJob(keyed);
    expect(store.usedMemory).toBe(base);
  });

  it('two jobs with one key (both sides of a partition replicated here): the second takes over when the first goes', () => {
    const a = addJob(store, 'q', { unique: 'k' });
    const b = addJob(store, 'q', { unique: 'k' });
    expect(store.lookupUnique('q', 'k')?.id).toBe(a.id);
    store.unregisterJob(a);
    expect(store.lookupUnique('q', 'k')?.id).toBe(b.id);
    store.acknowledgeJob(b);
    expect(store.lookupUnique('q', 'k')).toBeUndefined();
  });

  it('the index stays right with colliding hashes and thousands of keys', () => {
    const arena = new ByteArena();
    const queues = new Map<number, string>();
    const idx = new UniqueIndex(arena, (rec) => queues.get(rec) ?? null);
    const n = 20_000;
    for (let rec = 1; rec <= n; rec++) {
      queues.set(rec, `q${rec % 7}`);
      idx.add(rec, `q${rec % 7}`, `key-${rec}`);
    }
    for (let rec = 1; rec <= n; rec++) expect(idx.find(`q${rec % 7}`, `key-${rec}`)).toBe(rec);
    expect(idx.find('q0', 'key-1')).toBe(0); // key-1 is in q1
    for (let rec = 1; rec <= n; rec += 2) idx.remove(rec);
    for (let rec = 1; rec <= n; rec++) expect(idx.find(`q${rec % 7}`, `key-${rec}`)).toBe(rec % 2 === 1 ? 0 : rec);
    for (let rec = 2; rec <= n; rec += 2) idx.remove(rec);
    expect(idx.size).toBe(0);
    expect(arena.usedBytes).toBe(0);
  });
});

describe('scheduled jobs', () => {
  let clock: FakeClock;
  let store: JobStore;
  beforeEach(() => {
    clock = new FakeClock();
    store = new JobStore({ clock, myId: () => ME, random: () => 0.5 });
  });

  it('lists a queue\'s delayed jobs by due time, pages them, and drops them once queued', () => {
    const late = addJob(store, 'q', { delay: 30 });
    const soon = addJob(store, 'q', { delay: 5 });
    const mid = addJob(store, 'q', { delay: 10 });
    addJob(store, 'q'); // queued at once: not scheduled
    addJob(store, 'other', { delay: 3 });
    expect(store.scheduledCount('q')).toBe(3);
    expect(store.scheduledJobs('q', 0, 10).map((j) => j.id)).toEqual([soon.id, mid.id, late.id]);
    expect(store.scheduledJobs('q', 1, 1).map((j) => j.id)).toEqual([mid.id]);
    expect(store.scheduledQueues().sort()).toEqual([['other', 1], ['q', 3]]);
    run(store, clock, 5010);
    expect(soon.state).toBe(JobState.Queued);
    expect(store.scheduledCount('other')).toBe(0);
    expect(store.scheduledJobs('q', 0, 10).map((j) => j.id)).toEqual([mid.id, late.id]);
    // ENQUEUE (run now), DELJOB.
    store.enqueueJob(late, false);
    store.unregisterJob(mid);
    expect(store.scheduledCount('q')).toBe(0);
    expect(store.scheduledQueues()).toEqual([]);
  });

  it('replicated copies waiting for their retry are not scheduled here', () => {
    const f = fields(store, 'q', { delay: 5 });
    f.state = JobState.Active;
    f.flags |= JOB_FLAG_BCAST_QUEUED; // as REPLJOB gives them
    store.addJob(f);
    expect(store.scheduledCount('q')).toBe(0);
  });

  it('NACK DELAY: back in the queue after the delay, not before, one NACK counted, ID kept', () => {
    const job = addJob(store, 'q', { retry: 60 });
    const q = store.lookupQueue('q')!;
    expect(store.fetchJob(q)?.id).toBe(job.id);
    const added = store.totals.added;
    expect(store.nackWithDelay(job, 2500)).toBe(true);
    expect(job.nacks).toBe(1);
    expect(store.scheduledJobs('q', 0, 10).map((j) => j.id)).toEqual([job.id]);
    run(store, clock, 2490);
    expect(job.state).toBe(JobState.Active);
    expect(q.length).toBe(0);
    run(store, clock, 20);
    expect(job.state).toBe(JobState.Queued);
    expect(store.fetchJob(q)?.id).toBe(job.id);
    expect([job.nacks, job.deliveries]).toEqual([1, 0]);
    expect(store.totals.added).toBe(added);
    expect(store.totals.nacked).toBe(1);
    expect(store.scheduledCount('q')).toBe(0);
    // Not NACKed again by its own re-queue: the next one counts as a retry.
    run(store, clock, 61_000, 100);
    expect([job.nacks, job.deliveries]).toEqual([1, 1]);
  });

  it('NACK DELAY on another owner: our copy waits for the delay plus its retry', () => {
    const job = addJob(store, 'q', { retry: 3 });
    expect(job.state).toBe(JobState.Queued);
    store.nackedElsewhere(job, 10_000);
    expect(job.state).toBe(JobState.Active);
    expect(job.nacks).toBe(1);
    run(store, clock, 12_900, 50);
    expect(job.state).toBe(JobState.Active);
    run(store, clock, 200, 50);
    expect(job.state).toBe(JobState.Queued);
  });

  it('an at-most-once job already delivered is not NACKed again', () => {
    const job = addJob(store, 'q', { retry: 0 });
    store.fetchJob(store.lookupQueue('q')!);
    expect(store.nackWithDelay(job, 1000)).toBe(false);
  });
});

describe('UNIQUE key in the job codec', () => {
  it("travels in both msgpack forms (message, storage) and in REPLJOB's binary frame, only on jobs that have one", () => {
    const clock = new FakeClock();
    const store = new JobStore({ clock, myId: () => ME, random: () => 0.5 });
    const keyed = addJob(store, 'q', { unique: 'order-42' });
    const plain = addJob(store, 'q');
    for (const storage of [false, true]) {
      const w = new MsgWriter();
      writeJob(w, keyed, clock, storage);
      const raw = new Packr({ useRecords: false, mapsAsObjects: true }).unpack(w.copy());
      // writeJob writes what encodeJob describes, the key included.
      expect(raw).toEqual(encodeJob(keyed, clock, storage));
      expect(Buffer.from(raw.u).toString('latin1')).toBe('order-42');
      const back = decodeJob(raw, clock, storage, (id) => id, () => 0)!;
      expect(back.unique).toBe('order-42');
      const w2 = new MsgWriter();
      writeJob(w2, plain, clock, storage);
      const raw2 = new Packr({ useRecords: false, mapsAsObjects: true }).unpack(w2.copy());
      expect('u' in raw2).toBe(false);
      expect(decodeJob(raw2, clock, storage, (id) => id, () => 0)!.unique).toBeUndefined();
    }
    // REPLJOB's binary layout (job-frames.ts) carries the key too.
    const frame = Buffer.alloc(jobFrameHeaderRoom(ME) + jobRoom(keyed));
    const countAt = writeJobFrameHeader(frame, 0, BUS_PROTOCOL_VERSION, MsgType.REPLJOB, 0, 0, 1, 0, ME);
    frame.writeUInt32LE(1, countAt);
    const framed = frame.subarray(0, writeJobToFrame(frame, countAt + 4, keyed, clock));
    const job = readJobFromFrame(framed, readJobFrameHeader(framed)!, clock, (id) => id, () => 0)!;
    expect(job.unique).toBe('order-42');
    // A new store indexes it.
    const other = new JobStore({ clock, myId: () => 'b'.repeat(40), random: () => 0.5 });
    const copy = other.addJob(job)!;
    expect(other.lookupUnique('q', 'order-42')?.rec).toBe(copy.rec);
  });

  it('a job reloaded from storage keeps its scheduled time (ADDJOB DELAY, NACK DELAY)', () => {
    const clock = new FakeClock();
    const store = new JobStore({ clock, myId: () => ME, random: () => 0.5 });
    const job = addJob(store, 'q', { delay: 20, retry: 300 });
    const w = new MsgWriter();
    writeJob(w, job, clock, true);
    const raw = new Packr({ useRecords: false, mapsAsObjects: true }).unpack(w.copy());
    clock.advance(5000);
    const back = decodeJob(raw, clock, true, (id) => id, () => 0)!;
    expect(back.qtime).toBe(20_000);
  });
});
