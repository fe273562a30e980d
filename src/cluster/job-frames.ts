// Job messages on the bus in a fixed binary layout: REPLJOB and YOURJOBS
// (jobs), GOTJOB, ENQUEUE, QUEUED, SETACK, WILLQUEUE, GOTACK, DELJOB and
// WORKING (job IDs). They are most of the bus's traffic, so they are
// written from the job table straight into the link's output buffer, and
// read straight from the frame into the fields the store takes: no msgpack
// map, no object per field. Gossip and rare messages stay msgpack (bus.ts).
//
// A frame (after the bus's 4-byte length) is:
//   u8 JOB_FRAME_MARK (0xc1: a byte msgpack never uses, so the two kinds of
//      frame are told apart by their first byte)
//   u8 bus protocol version, u8 message type, u8 message flags
//   u32 aux (SETACK's node count, GOTACK's "known", ENQUEUE's delay)
//   u16 sender's client port, u16 sender's node flags
//   u8 n + n bytes: the sender's node ID
//   u32 count, then `count` items of the type:
//     job ID: u8 n + n bytes
//     job (message form, the reference's serializeJob for the bus):
//       u8 n + job ID; u32 n + queue; u32 n + body; u16 repl; f64 ctime
//       (Unix ms); u32 cseq; f64 TTL left (ms: clocks of nodes may differ);
//       u32 delay, retry, nacks, deliveries; u16 n, then n × (u8 n + node ID);
//       then, only when the high bit (0x8000) of that u16 is set, the job's
//       ADDJOB UNIQUE key: u16 n + n bytes (1 to UNIQUE_KEY_MAX, 1024; a
//       longer or empty one makes the job malformed). The node count is the
//       low 15 bits. A job without a key costs no byte more, and its frame
//       reads the same as before the key existed.
// Integers are little-endian. Consecutive messages of one kind to one node
// in one event-loop turn share a frame (see Link.jobItem in bus.ts).
import type { Clock } from '../core/clock.js';
import { Job, JobState, NEVER, JOB_FLAG_BCAST_WILLQUEUE, newJobFields, type JobFields } from '../core/job.js';
import { isValidJobId } from '../core/job-id.js';
import type { AnyJob } from '../core/job-codec.js';
import { UNIQUE_KEY_MAX } from '../core/unique-index.js';

export const JOB_FRAME_MARK = 0xc1;
/** Bytes of the header before the sender's ID. */
const FIXED_HEADER = 12;

/** Message types whose items are jobs rather than job IDs. */
export function carriesJobs(type: number): boolean {
  return type === 4 /* REPLJOB */ || type === 13; /* YOURJOBS */
}

/** Writes a frame's header at `p` (the length prefix at p-4 and the count are patched at close); returns where the count goes. */
export function writeJobFrameHeader(
  buf: Buffer,
  p: number,
  version: number,
  type: number,
  mflags: number,
  aux: number,
  port: number,
  flags: number,
  sender: string,
): number {
  buf[p] = JOB_FRAME_MARK;
  buf[p + 1] = version;
  buf[p + 2] = type;
  buf[p + 3] = mflags;
  buf.writeUInt32LE(aux >>> 0, p + 4);
  buf.writeUInt16LE(port, p + 8);
  buf.writeUInt16LE(flags & 0xffff, p + 10);
  buf[p + FIXED_HEADER] = sender.length;
  buf.latin1Write(sender, p + FIXED_HEADER + 1);
  return p + FIXED_HEADER + 1 + sender.length;
}

/** Room a frame header takes with this sender ID, count included. */
export function jobFrameHeaderRoom(sender: string): number {
  return FIXED_HEADER + 1 + sender.length + 4;
}

export function jobIdRoom(id: string): number {
  return 1 + id.length;
}

export function writeJobId(buf: Buffer, p: number, id: string): number {
  buf[p] = id.length;
  return p + 1 + buf.latin1Write(id, p + 1);
}

/** Set in the node-count u16 when the job's UNIQUE key follows its node list. */
const HAS_UNIQUE = 0x8000;

/** The job's ADDJOB UNIQUE key (latin1), or null: cheap for a job without one. */
function uniqueKey(job: AnyJob): string | null {
  return job instanceof Job ? job.unique : (job.unique ?? null);
}

/** Bytes writeJob needs for this job, at most. */
export function jobRoom(job: AnyJob): number {
  const body = job instanceof Job ? job.bodyLength : job.body === null ? 0 : job.body.length;
  let n = 1 + job.id.length + 4 + (job.queue?.length ?? 0) + 4 + body + 2 + 8 + 4 + 8 + 16 + 2;
  for (const id of job.delivered) n += 1 + id.length;
  const unique = uniqueKey(job);
  if (unique !== null) n += 2 + unique.length;
  return n;
}

/** Writes a job in message form at `p`; returns the position after it. */
export function writeJob(buf: Buffer, p: number, job: AnyJob, clock: Clock): number {
  p = writeJobId(buf, p, job.id);
  const queue = job.queue ?? '';
  buf.writeUInt32LE(queue.length, p);
  p += 4 + buf.latin1Write(queue, p + 4);
  if (job instanceof Job) {
    const n = job.bodyLength;
    buf.writeUInt32LE(n, p);
    const at = job.bodyOffset();
    buf.set(job.bodyBytes().subarray(at, at + n), p + 4);
    p += 4 + n;
  } else {
    const b = job.body;
    if (typeof b === 'string') {
      buf.writeUInt32LE(b.length, p);
      p += 4 + buf.latin1Write(b, p + 4);
    } else {
      const n = b === null ? 0 : b.length;
      buf.writeUInt32LE(n, p);
      if (b !== null) buf.set(b, p + 4);
      p += 4 + n;
    }
  }
  buf.writeUInt16LE(job.repl, p);
  buf.writeDoubleLE(clock.base + job.ctime, p + 2);
  buf.writeUInt32LE(job.cseq >>> 0, p + 10);
  buf.writeDoubleLE(Math.max(1, job.etime - clock.now()), p + 14);
  buf.writeUInt32LE(job.delay >>> 0, p + 22);
  buf.writeUInt32LE(job.retry >>> 0, p + 26);
  buf.writeUInt32LE(job.nacks >>> 0, p + 30);
  buf.writeUInt32LE(job.deliveries >>> 0, p + 34);
  const nodes = job.delivered;
  const unique = uniqueKey(job);
  buf.writeUInt16LE(unique === null ? nodes.length : nodes.length | HAS_UNIQUE, p + 38);
  p += 40;
  for (const id of nodes) p = writeJobId(buf, p, id);
  if (unique !== null) {
    buf.writeUInt16LE(unique.length, p);
    p += 2 + buf.latin1Write(unique, p + 2);
  }
  return p;
}

/**
 * The last node list read, as bytes and as the array made of it: the jobs
 * of a frame, and of the frames after it, mostly list the same nodes, and
 * the store shares one copy of a list (intern.ts) found faster by the same
 * array. Node IDs only ever name known nodes, so a list stays right while
 * the nodes it names are known; it is made again when a node is forgotten.
 */
let lastNodes: Buffer = Buffer.alloc(0);
let lastList: string[] = [];

function readNodeList(buf: Buffer, f: JobFrame, count: number, internId: (id: string) => string | null): string[] {
  const start = f.pos;
  let p = start;
  for (let i = 0; i < count; i++) {
    if (p >= f.end) throw new RangeError('frame cut short');
    p += 1 + buf[p]!;
  }
  if (p > f.end) throw new RangeError('frame cut short');
  f.pos = p;
  const n = p - start;
  if (n === lastNodes.length && buf.compare(lastNodes, 0, n, start, p) === 0 && lastList.every((id) => internId(id) === id)) return lastList;
  const delivered: string[] = [];
  let dropped = false;
  for (let q = start; q < p; ) {
    const len = buf[q]!;
    const known = internId(buf.latin1Slice(q + 1, q + 1 + len));
    if (known === null) dropped = true;
    else if (!delivered.includes(known)) delivered.push(known);
    q += 1 + len;
  }
  // A list that named an unknown node is not kept: that node may be met later.
  lastNodes = dropped ? Buffer.alloc(0) : Buffer.from(buf.subarray(start, p));
  lastList = delivered;
  return delivered;
}

/** A frame being read: the header, and where its items are. */
export interface JobFrame {
  version: number;
  type: number;
  mflags: number;
  aux: number;
  port: number;
  flags: number;
  sender: string;
  count: number;
  /** Position of the first item, and the frame's end. */
  pos: number;
  end: number;
}

/** The frame's header, or null when it is cut short. `frame` starts at the mark. */
export function readJobFrameHeader(frame: Buffer): JobFrame | null {
  const end = frame.length;
  if (end < FIXED_HEADER + 1 || frame[0] !== JOB_FRAME_MARK) return null;
  const idLen = frame[FIXED_HEADER]!;
  const pos = FIXED_HEADER + 1 + idLen + 4;
  if (pos > end) return null;
  return {
    version: frame[1]!,
    type: frame[2]!,
    mflags: frame[3]!,
    aux: frame.readUInt32LE(4),
    port: frame.readUInt16LE(8),
    flags: frame.readUInt16LE(10),
    sender: frame.latin1Slice(FIXED_HEADER + 1, FIXED_HEADER + 1 + idLen),
    count: frame.readUInt32LE(pos - 4),
    pos,
    end,
  };
}

/** The job ID at f.pos (moving past it), or null when the frame is cut short. */
export function readJobId(buf: Buffer, f: JobFrame): string | null {
  const p = f.pos;
  if (p >= f.end) return null;
  const n = buf[p]!;
  if (p + 1 + n > f.end) return null;
  f.pos = p + 1 + n;
  return buf.latin1Slice(p + 1, p + 1 + n);
}

/**
 * The job at f.pos as the fields JobStore.addJob takes (moving past it):
 * an active job whose re-queue time is computed here, as on REPLJOB
 * reception. Its body is a view into `buf`, valid until the handler
 * returns. Null for a malformed job; throws RangeError when the frame is
 * cut short (the caller drops the frame). `internId` maps a node ID to the
 * string to keep, or null to drop an unknown node.
 */
export function readJob(
  buf: Buffer,
  f: JobFrame,
  clock: Clock,
  internId: (id: string) => string | null,
  timeError: () => number,
): JobFields | null {
  const id = readJobId(buf, f);
  if (id === null) throw new RangeError('frame cut short');
  let p = f.pos;
  const qLen = buf.readUInt32LE(p);
  if (p + 4 + qLen > f.end) throw new RangeError('frame cut short');
  const queue = buf.latin1Slice(p + 4, p + 4 + qLen);
  p += 4 + qLen;
  const bLen = buf.readUInt32LE(p);
  if (p + 4 + bLen + 40 > f.end) throw new RangeError('frame cut short');
  const body = buf.subarray(p + 4, p + 4 + bLen);
  p += 4 + bLen;
  const repl = buf.readUInt16LE(p);
  const ctime = buf.readDoubleLE(p + 2);
  const cseq = buf.readUInt32LE(p + 10);
  const ttl = buf.readDoubleLE(p + 14);
  const delay = buf.readUInt32LE(p + 22);
  const retry = buf.readUInt32LE(p + 26);
  const nacks = buf.readUInt32LE(p + 30);
  const deliveries = buf.readUInt32LE(p + 34);
  const nodeWord = buf.readUInt16LE(p + 38);
  const nodes = nodeWord & ~HAS_UNIQUE;
  f.pos = p + 40;
  const delivered = readNodeList(buf, f, nodes, internId);
  let unique: string | null = null;
  let badUnique = false;
  if (nodeWord & HAS_UNIQUE) {
    p = f.pos;
    if (p + 2 > f.end) throw new RangeError('frame cut short');
    const uLen = buf.readUInt16LE(p);
    if (p + 2 + uLen > f.end) throw new RangeError('frame cut short');
    f.pos = p + 2 + uLen;
    if (uLen === 0 || uLen > UNIQUE_KEY_MAX) badUnique = true;
    else unique = buf.latin1Slice(p + 2, p + 2 + uLen);
  }
  if (badUnique || !isValidJobId(id) || !Number.isFinite(ctime) || !Number.isFinite(ttl)) return null;
  const now = clock.now();
  const job = newJobFields(id, JobState.Active, delivered);
  job.queue = queue;
  job.body = body;
  job.repl = repl;
  job.ctime = ctime - clock.base;
  job.cseq = cseq;
  job.etime = now + ttl;
  job.delay = delay;
  job.retry = retry;
  job.nacks = nacks;
  job.deliveries = deliveries;
  if (unique !== null) job.unique = unique;
  if (retry) {
    job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
    job.qtime = now + delay * 1000 + retry * 1000 + timeError();
  } else {
    job.qtime = NEVER;
  }
  return job;
}
