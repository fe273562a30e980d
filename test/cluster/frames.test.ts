// Bus frames from FrameEncoder decode to the same messages msgpackr-packed
// frames do (the writer must not change what peers read).
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { FrameEncoder, encodeFrame } from '../../src/cluster/bus.js';
import { type BusHeader } from '../../src/cluster/messages.js';
import { FakeClock } from '../../src/core/clock.js';
import { JobState, newJobFields } from '../../src/core/job.js';
import { encodeJob, writeJob } from '../../src/core/job-codec.js';
import type { MsgWriter } from '../../src/core/msgpack-writer.js';
import { readJobFrame } from '../../src/cluster/frame-reader.js';

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
    const job = newJobFields('D-aaaaaaaa-000000000000000000000001-05a1', JobState.Active, ['a'.repeat(40), 'b'.repeat(40)]);
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

/** What readJobFrame should give: msgpackr's message, job byte fields as latin1 strings, absent fields undefined. */
function expectedRead(frame: Buffer): Record<string, unknown> {
  const msg = { m: undefined, a: undefined, id: undefined, ids: undefined, j: undefined, js: undefined, ...decode(frame) };
  const job = (j: Record<string, unknown>) => ({
    st: undefined,
    fl: undefined,
    qt: undefined,
    ...j,
    q: Buffer.from(j.q as Uint8Array).toString('latin1'),
    b: Buffer.from(j.b as Uint8Array).toString('latin1'),
  });
  if (msg.j) msg.j = job(msg.j as Record<string, unknown>);
  if (msg.js) msg.js = (msg.js as Record<string, unknown>[]).map(job);
  return msg;
}

describe('readJobFrame', () => {
  const clock = new FakeClock();
  clock.set(5000);
  const job = newJobFields('D-aaaaaaaa-000000000000000000000001-05a1', JobState.Active, ['a'.repeat(40), 'b'.repeat(40)]);
  job.queue = 'queue \u00e9';
  job.body = '\u0000\u00ff body'.repeat(50);
  job.etime = clock.now() + 60_000;
  job.retry = 30;
  job.nacks = 300;
  job.deliveries = 70_000;
  const header: BusHeader = { v: 2, s: 'a'.repeat(40), p: 7711, f: 3 };
  const enc = new FrameEncoder(() => header);
  const one = (w: MsgWriter) => writeJob(w, job, clock, false);
  const two = (w: MsgWriter) => {
    w.arrayHeader(2);
    writeJob(w, job, clock, false);
    writeJob(w, job, clock, true);
  };

  it('reads job and job-ID messages as msgpackr does, job bytes as latin1 strings', () => {
    const bodies: Record<string, unknown>[] = [{ j: one }, { js: two }, { id: job.id, a: 0 }, { id: job.id, a: -5 }, { ids: [job.id, 'D-x'], a: 70_000 }, {}];
    for (const body of bodies) {
      const frame = enc.encode(4, 1, body);
      const msg = readJobFrame(frame.subarray(4));
      expect(msg).toBeDefined();
      expect(msg).toEqual(expectedRead(frame));
    }
  });

  it('reads every integer form msgpackr writes', () => {
    for (const a of [0, 127, 200, 70_000, 2 ** 32 - 1, -5, -100, -200, -70_000, -(2 ** 31), 2 ** 45, -(2 ** 45) + 0.5]) {
      const frame = encodeFrame({ ...header, t: 5, id: job.id, a });
      const msg = readJobFrame(frame.subarray(4));
      // Forms it does not read (64-bit integers) go to msgpackr; what it reads must match.
      if (Math.abs(a) < 2 ** 32 || !Number.isInteger(a)) expect(msg).toBeDefined();
      if (msg) expect(msg).toEqual(expectedRead(frame));
    }
  });

  it('leaves other messages, and malformed ones, to msgpackr', () => {
    const others: Buffer[] = [
      enc.encode(0, 0, { g: [{ i: 'x', p: 1 }] }),
      enc.encode(15, 0, { q: Buffer.from('q'), a: 1 }),
      enc.encode(4, 0, { id: 1.5 }),
      encodeFrame({ v: 2, s: 'x', p: 1, t: 4 }), // no flags field
      encodeFrame({ ...header, t: 4, j: { ...encodeJob(job, clock, false), r: undefined } }), // a job field missing
      encodeFrame({ ...header, t: 4, j: { ...encodeJob(job, clock, false), extra: 1 } }),
    ];
    for (const frame of others) expect(readJobFrame(frame.subarray(4))).toBeUndefined();
    // Truncated anywhere, or with bytes after the message.
    const full = enc.encode(4, 0, { js: two }).subarray(4);
    for (let n = 0; n < full.length; n++) expect(readJobFrame(full.subarray(0, n))).toBeUndefined();
    expect(readJobFrame(Buffer.concat([full, Buffer.from([0])]))).toBeUndefined();
    expect(readJobFrame(full)).toBeDefined();
  });
});
