// Bus frames from FrameEncoder decode to the same messages msgpackr-packed
// frames do (the writer must not change what peers read).
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { FrameEncoder, encodeFrame, type BusHeader } from '../../src/cluster/bus.js';
import { FakeClock } from '../../src/core/clock.js';
import { Job, JobState } from '../../src/core/job.js';
import { encodeJob, writeJob } from '../../src/core/job-codec.js';
import type { MsgWriter } from '../../src/core/msgpack-writer.js';

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true });
const decode = (frame: Buffer) => {
  expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
  return unpackr.unpack(frame.subarray(4)) as Record<string, unknown>;
};

describe('FrameEncoder', () => {
  it('writes the messages encodeFrame writes, for every kind of field value', () => {
    const header: BusHeader = { v: 1, s: 'a'.repeat(40), p: 7711, f: 3 };
    const enc = new FrameEncoder(() => header);
    const job = {
      id: `D-${'x'.repeat(38)}`,
      q: Buffer.from('queue'),
      b: Buffer.alloc(300, 7),
      ct: 1795430177169,
      e: 86_400_000,
      nd: ['a'.repeat(40), 'b'.repeat(40)],
    };
    const bodies: Record<string, unknown>[] = [
      { id: job.id, a: 0 },
      { id: 'D-x', a: 70_000 },
      { j: job },
      { js: [job, job] },
      { q: Buffer.alloc(70_000, 1), a: 5 },
      { g: [{ i: 'x', p: 1, z: null, t: true }], s2: 'é'.repeat(40), neg: -3, big: -(2 ** 40), fl: 1.5, long: 'y'.repeat(300) },
      { m2: new Map([[1, 2]]) },
    ];
    for (const body of bodies) {
      expect(decode(enc.encode(9, 2, body))).toEqual(decode(encodeFrame({ ...header, t: 9, m: 2, ...body })));
    }
    // The header follows a change of the node's flags.
    header.f = 8;
    expect(decode(enc.encode(5, 0, { id: 'x' })).f).toBe(8);
  });

  it('writes a job given as a writer (REPLJOB, YOURJOBS) as its message form', () => {
    const clock = new FakeClock();
    clock.set(5000);
    const job = new Job('D-aaaaaaaa-000000000000000000000001-05a1', JobState.Active, ['a'.repeat(40), 'b'.repeat(40)]);
    job.queue = 'queue \u00e9';
    job.body = '\u0000\u00ff body';
    job.etime = clock.now() + 60_000;
    job.retry = 30;
    const header: BusHeader = { v: 1, s: 'a'.repeat(40), p: 7711, f: 0 };
    const enc = new FrameEncoder(() => header);
    const one = decode(enc.encode(4, 0, { j: (w: MsgWriter) => writeJob(w, job, clock, false) }));
    const many = decode(
      enc.encode(13, 0, {
        js: (w: MsgWriter) => {
          w.arrayHeader(2);
          writeJob(w, job, clock, false);
          writeJob(w, job, clock, false);
        },
      }),
    );
    const expected = decode(encodeFrame({ ...header, t: 4, m: 0, j: encodeJob(job, clock, false) })).j;
    expect(one.j).toEqual(expected);
    expect(many.js).toEqual([expected, expected]);
  });
});
