// Bus frames: FrameEncoder's msgpack frames decode to the same messages
// msgpackr-packed frames do (the writer must not change what peers read);
// job frames (job-frames.ts) give back the jobs and IDs written (with
// their UNIQUE key when they have one), refuse what is cut short, and a link sends a turn's job messages of one kind
// as one frame, in order with its other frames.
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { FrameEncoder, encodeFrame } from '../../src/cluster/bus.js';
import { type BusHeader } from '../../src/cluster/messages.js';
import net from 'node:net';
import { Link } from '../../src/cluster/bus.js';
import { FakeClock } from '../../src/core/clock.js';
import { JobState, NEVER, newJobFields } from '../../src/core/job.js';
import {
  JOB_FRAME_MARK,
  jobFrameHeaderRoom,
  jobRoom,
  readJob,
  readJobFrameHeader,
  readJobId,
  writeJob,
  writeJobFrameHeader,
  writeJobId,
} from '../../src/cluster/job-frames.js';
import { BUS_PROTOCOL_VERSION, MsgType, type BusMessage } from '../../src/cluster/messages.js';

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
});

const NODE_A = 'a'.repeat(40);
const NODE_B = 'b'.repeat(40);

/** A frame (from its mark) holding `items` written by `write`. */
function jobFrame(type: number, count: number, room: number, write: (buf: Buffer, p: number) => number): Buffer {
  const buf = Buffer.alloc(jobFrameHeaderRoom(NODE_A) + room);
  const countAt = writeJobFrameHeader(buf, 0, BUS_PROTOCOL_VERSION, type, 1, 7, 7711, 3, NODE_A);
  buf.writeUInt32LE(count, countAt);
  const end = write(buf, countAt + 4);
  return buf.subarray(0, end);
}

describe('job frames', () => {
  const clock = new FakeClock();
  clock.set(5000);
  const job = newJobFields('D-aaaaaaaa-000000000000000000000001-05a1', JobState.Active, [NODE_A, NODE_B, 'c'.repeat(40)]);
  job.queue = 'queue \u00e9';
  job.body = Buffer.from([0, 255, 10, 13, 65]);
  job.ctime = 1234;
  job.cseq = 9;
  job.etime = clock.now() + 60_000;
  job.delay = 2;
  job.retry = 30;
  job.nacks = 3;
  job.deliveries = 4;
  job.repl = 3;
  const known = new Set([NODE_A, NODE_B]);
  const intern = (id: string) => (known.has(id) ? id : null);

  it('gives back the header and every job written, unknown nodes dropped', () => {
    const frame = jobFrame(MsgType.REPLJOB, 2, 2 * jobRoom(job), (buf, p) => writeJob(buf, writeJob(buf, p, job, clock), job, clock));
    expect(frame[0]).toBe(JOB_FRAME_MARK);
    const f = readJobFrameHeader(frame)!;
    expect(f).toMatchObject({ version: BUS_PROTOCOL_VERSION, type: MsgType.REPLJOB, mflags: 1, aux: 7, port: 7711, flags: 3, sender: NODE_A, count: 2 });
    clock.advance(1000); // the receiver's clock: the TTL left (60 s when sent) counts from its now
    for (let i = 0; i < 2; i++) {
      const got = readJob(frame, f, clock, intern, () => 5)!;
      expect(got).toMatchObject({ id: job.id, queue: job.queue, repl: 3, ctime: 1234, cseq: 9, delay: 2, retry: 30, nacks: 3, deliveries: 4, state: JobState.Active });
      expect(Buffer.from(got.body as Uint8Array)).toEqual(job.body);
      expect(got.etime).toBe(clock.now() + 60_000);
      expect(got.delivered).toEqual([NODE_A, NODE_B]);
      expect(got.qtime).toBe(clock.now() + 2000 + 30_000 + 5);
    }
    expect(f.pos).toBe(frame.length);
    clock.advance(-1000);
  });

  it('reads job IDs, and an at-most-once job never to be re-queued', () => {
    const ids = ['D-1', 'D-22', job.id];
    const frame = jobFrame(MsgType.GOTACK, 3, 64 * 3, (buf, p) => ids.reduce((q, id) => writeJobId(buf, q, id), p));
    const f = readJobFrameHeader(frame)!;
    expect([readJobId(frame, f), readJobId(frame, f), readJobId(frame, f)]).toEqual(ids);
    const once = { ...job, retry: 0 };
    const g = jobFrame(MsgType.YOURJOBS, 1, jobRoom(once), (buf, p) => writeJob(buf, p, once, clock));
    expect(readJob(g, readJobFrameHeader(g)!, clock, intern, () => 0)!.qtime).toBe(NEVER);
  });

  it('refuses a malformed job and a frame cut short at any byte, without reading past it', () => {
    const bad = { ...job, id: 'not-a-job-id' };
    const frame = jobFrame(MsgType.REPLJOB, 1, jobRoom(bad), (buf, p) => writeJob(buf, p, bad, clock));
    expect(readJob(frame, readJobFrameHeader(frame)!, clock, intern, () => 0)).toBeNull();
    const good = jobFrame(MsgType.REPLJOB, 1, jobRoom(job), (buf, p) => writeJob(buf, p, job, clock));
    for (let n = 0; n < good.length; n++) {
      const cut = Buffer.from(good.subarray(0, n));
      const f = readJobFrameHeader(cut);
      if (f === null) continue;
      expect(() => readJob(cut, f, clock, intern, () => 0)).toThrow(RangeError);
    }
  });
});

describe('job frames: the UNIQUE key', () => {
  const clock = new FakeClock();
  clock.set(5000);
  const base = newJobFields('D-aaaaaaaa-000000000000000000000002-05a1', JobState.Active, [NODE_A, NODE_B]);
  base.queue = 'q';
  base.body = Buffer.from('body');
  base.etime = clock.now() + 60_000;
  base.retry = 30;
  const intern = (id: string) => id;
  const keyed = { ...base, unique: 'order-\u00e9-42' };
  const frameOf = (jobs: (typeof base)[]) =>
    jobFrame(
      MsgType.REPLJOB,
      jobs.length,
      jobs.reduce((n, j) => n + jobRoom(j), 0),
      (buf, p) => jobs.reduce((q, j) => writeJob(buf, q, j, clock), p),
    );
  /** Where the node-count u16 of the first job of a frame is. */
  const nodeCountAt = (frame: Buffer, job: typeof base) =>
    readJobFrameHeader(frame)!.pos + 1 + job.id.length + 4 + (job.queue?.length ?? 0) + 4 + (job.body as Buffer).length + 38;

  it('round-trips with and without a key, a job without one taking no byte more', () => {
    const plainFrame = frameOf([base]);
    const keyedFrame = frameOf([keyed]);
    // The key's bytes and their length only; the node count's high bit tells them.
    expect(keyedFrame.length - plainFrame.length).toBe(2 + keyed.unique.length);
    expect(plainFrame.readUInt16LE(nodeCountAt(plainFrame, base))).toBe(2);
    expect(keyedFrame.readUInt16LE(nodeCountAt(keyedFrame, keyed))).toBe(0x8000 | 2);
    expect(jobRoom(keyed) - jobRoom(base)).toBe(2 + keyed.unique.length);

    const mixed = frameOf([keyed, base, keyed]);
    const f = readJobFrameHeader(mixed)!;
    const got = [0, 1, 2].map(() => readJob(mixed, f, clock, intern, () => 0)!);
    expect(f.pos).toBe(mixed.length);
    expect(got.map((j) => j.unique ?? null)).toEqual([keyed.unique, null, keyed.unique]);
    expect(got.map((j) => j.delivered)).toEqual([[NODE_A, NODE_B], [NODE_A, NODE_B], [NODE_A, NODE_B]]);
    expect(got[0]).toMatchObject({ id: base.id, queue: 'q', retry: 30 });
    // The longest key a job may have goes through.
    const longest = { ...base, unique: 'k'.repeat(1024) };
    const lf = frameOf([longest]);
    expect(readJob(lf, readJobFrameHeader(lf)!, clock, intern, () => 0)!.unique).toBe(longest.unique);
  });

  it('refuses a key cut short at any byte, and a key longer than 1024 bytes or empty as malformed', () => {
    const good = frameOf([keyed]);
    for (let n = 0; n < good.length; n++) {
      const cut = Buffer.from(good.subarray(0, n));
      const f = readJobFrameHeader(cut);
      if (f === null) continue;
      expect(() => readJob(cut, f, clock, intern, () => 0)).toThrow(RangeError);
    }
    // Patch the key's length in frames written by hand: the job is dropped, the frame's next job still read.
    for (const len of [1025, 0]) {
      const key = Buffer.alloc(len, 0x6b);
      const head = frameOf([base, base]);
      const f0 = readJobFrameHeader(head)!;
      const firstEnd = (() => {
        const g = { ...f0 };
        readJob(head, g, clock, intern, () => 0);
        return g.pos;
      })();
      const at = nodeCountAt(head, base);
      const frame = Buffer.concat([head.subarray(0, firstEnd), Buffer.from([len & 0xff, len >> 8]), key, head.subarray(firstEnd)]);
      frame.writeUInt16LE(0x8000 | 2, at);
      const f = readJobFrameHeader(frame)!;
      expect(readJob(frame, f, clock, intern, () => 0)).toBeNull();
      expect(readJob(frame, f, clock, intern, () => 0)).toMatchObject({ id: base.id });
      expect(f.pos).toBe(frame.length);
    }
  });
});

describe('Link output', () => {
  it("sends a turn's job messages of one kind as one frame, in order with the link's other frames", async () => {
    const got: string[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const header = () => ({ v: BUS_PROTOCOL_VERSION, s: NODE_A, p: 7711, f: 0 });
    const events = (name: string) => ({
      message: (_l: Link, m: BusMessage) => {
        got.push(`${name} msgpack ${m.t}`);
        if (m.t === MsgType.PING) done();
      },
      jobFrame: (_l: Link, frame: Buffer) => {
        const f = readJobFrameHeader(frame)!;
        const ids: string[] = [];
        for (let i = 0; i < f.count; i++) ids.push(readJobId(frame, f)!);
        got.push(`${name} ${f.type}/${f.aux}: ${ids.join(',')}`);
      },
      jobFrameOpened: () => {},
      read: () => {},
      closed: () => {},
      bad: (_l: Link, why: string) => got.push(`bad ${why}`),
    });
    const opts = { secret: '', maxFrame: () => 1 << 20, myHeader: header };
    const server = net.createServer((s) => new Link(s, true, events('in'), opts));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const out = new Link(net.connect(port, '127.0.0.1'), false, events('out'), opts);
    const id = (type: number, aux: number, jid: string) => {
      const p = out.beginJobItem(type, aux, 0, 64);
      out.endJobItem(writeJobId(out.outBuffer, p, jid));
    };
    // Written before the link is connected: held until it is.
    id(MsgType.GOTJOB, 0, 'D-1');
    id(MsgType.GOTJOB, 0, 'D-2');
    id(MsgType.SETACK, 3, 'D-3');
    id(MsgType.SETACK, 2, 'D-4'); // another aux: another frame
    out.send(encodeFrame({ ...header(), t: MsgType.PONG }));
    id(MsgType.GOTJOB, 0, 'D-5');
    out.send(encodeFrame({ ...header(), t: MsgType.PING }));
    await finished;
    out.close();
    server.close();
    expect(got).toEqual([
      `in ${MsgType.GOTJOB}/0: D-1,D-2`,
      `in ${MsgType.SETACK}/3: D-3`,
      `in ${MsgType.SETACK}/2: D-4`,
      `in msgpack ${MsgType.PONG}`,
      `in ${MsgType.GOTJOB}/0: D-5`,
      `in msgpack ${MsgType.PING}`,
    ]);
  });
});
