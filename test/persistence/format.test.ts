// The bytes written to Redis: each chunk and journal entry decodes on its
// own, jobs round-trip in storage form, and foreign bytes are rejected.
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { FakeClock } from '../../src/core/clock.js';
import { JobState, JOB_FLAG_DELIVERED, newJobFields, type JobFields } from '../../src/core/job.js';
import { encodeJob, decodeJob } from '../../src/core/job-codec.js';
import { packChunk, unpackChunk, packJournalEntry, unpackJournalEntry } from '../../src/persistence/format.js';
import { NodeKeys } from '../../src/persistence/keys.js';

const NODE = 'a'.repeat(40);

function job(i: number, clock: FakeClock): JobFields {
  const j = newJobFields(`D-aaaaaaaa-${String(i).padStart(24, '0')}-05a1`, JobState.Queued, [NODE]);
  j.queue = 'q';
  j.body = `body ${i} \u00ff\u0000`;
  j.ctime = clock.now();
  j.etime = clock.now() + 60_000;
  j.retry = 10;
  j.nacks = i;
  j.deliveries = 2 * i;
  j.flags |= JOB_FLAG_DELIVERED;
  return j;
}

describe('persistence format', () => {
  it('journal entries and chunks decode with a fresh decoder, whatever was packed before', () => {
    const clock = new FakeClock();
    clock.set(1000);
    packChunk([job(0, clock)], clock); // leaves nothing behind for the next one
    const entry = packJournalEntry(7, [job(1, clock), 'D-gone', job(2, clock)], clock);
    const raw = new Packr().unpack(entry) as unknown[];
    expect(raw[0]).toBe(7);
    const e = unpackJournalEntry(entry)!;
    expect(e.seq).toBe(7);
    expect(e.records[1]).toBe('D-gone');

    // A node started later, with another clock, gets the same absolute times and state.
    const later = new FakeClock(clock.base + 5000);
    const back = decodeJob(e.records[2], later, true, (id) => id, () => 0)!;
    expect(back.id).toBe(job(2, clock).id);
    expect(Buffer.from(back.body as Uint8Array).toString('latin1')).toBe('body 2 \u00ff\u0000');
    expect(back.state).toBe(JobState.Queued);
    expect(back.nacks).toBe(2);
    expect(back.deliveries).toBe(4);
    expect(back.flags & JOB_FLAG_DELIVERED).toBeTruthy();
    expect(later.base + back.etime).toBe(clock.base + 1000 + 60_000);
    expect([...back.delivered]).toEqual([NODE]);

    const chunk = packChunk([job(3, clock), job(4, clock)], clock);
    expect(unpackChunk(chunk)).toHaveLength(2);
  });

  it('stores an acked job without its body, keeping what its collection needs', () => {
    const clock = new FakeClock();
    clock.set(1000);
    const acked = job(6, clock);
    acked.state = JobState.Acked;
    acked.delivered = [NODE, 'b'.repeat(40)];
    const [rec] = unpackChunk(packChunk([acked], clock))!;
    const back = decodeJob(rec, clock, true, (id) => id, () => 0)!;
    expect(back.state).toBe(JobState.Acked);
    expect(Buffer.from(back.body as Uint8Array).length).toBe(0);
    expect(back.queue).toBe('q');
    expect([...back.delivered]).toEqual([NODE, 'b'.repeat(40)]);
  });

  it('writes jobs as encodeJob describes them, and still reads the msgpackr records of earlier versions', () => {
    const clock = new FakeClock();
    clock.set(1000);
    const j = job(5, clock);
    j.queue = 'q\u00e9\u0000'.repeat(100); // a queue name over 255 bytes
    j.body = 'x'.repeat(70_000);
    j.delivered = [NODE, 'b'.repeat(40)];
    j.qtime = clock.now() + 5000;
    const written = unpackChunk(packChunk([j], clock))![0];
    const plain = new Packr({ useRecords: false, mapsAsObjects: true });
    expect(written).toEqual(plain.unpack(plain.pack(encodeJob(j, clock, true))));
    // Earlier versions wrote msgpackr records.
    const old = new Packr({ useRecords: true }).pack([3, [encodeJob(j, clock, true), 'D-gone']]);
    const e = unpackJournalEntry(old)!;
    expect(e.seq).toBe(3);
    expect(e.records[0]).toEqual(written);
  });

  it('rejects foreign bytes instead of throwing', () => {
    expect(unpackJournalEntry(Buffer.from('hello world'))).toBeNull();
    expect(unpackJournalEntry(Buffer.from([0xc1]))).toBeNull();
    expect(unpackJournalEntry(new Packr().pack([0, []]))).toBeNull(); // seq must be >= 1
    expect(unpackJournalEntry(new Packr().pack({ seq: 1 }))).toBeNull();
    expect(unpackChunk(Buffer.from([0xc1, 0xc1]))).toBeNull();
    expect(unpackChunk(new Packr().pack('text'))).toBeNull();
  });

  it('keys of one node share a hash tag and never collide with another node\'s', () => {
    const a = new NodeKeys('disque:', NODE);
    const b = new NodeKeys('disque:', 'b'.repeat(40));
    expect(a.meta).toBe(`disque:{${NODE}}:meta`);
    expect(a.snap(12)).toBe(`disque:{${NODE}}:snap:12`);
    expect(a.journal.startsWith(`disque:{${NODE}}:`)).toBe(true);
    expect(b.meta).not.toBe(a.meta);
  });
});
