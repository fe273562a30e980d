// Jobs as msgpack maps: on the cluster bus (REPLJOB, YOURJOBS) and in
// persistence records. writeJob writes them straight from the job; encodeJob
// gives the same map as an object (WireJob), which documents the fields and
// is what tests compare writeJob against; decodeJob reads either. Two forms,
// as in the reference:
//   - message: the expire time is sent as the TTL left, since clocks of
//     different nodes may disagree; the receiver gets an active job with its
//     own re-queue time;
//   - storage: absolute times and the state, to reload the job as it was.
// Bodies and queue names travel as bytes. A job the store holds is written
// from its record, its body copied from the arena into the frame or record;
// a decoded job comes back as JobFields, for JobStore.addJob.
import type { Clock } from './clock.js';
import { Job, JobState, NEVER, JOB_FLAG_BCAST_QUEUED, JOB_FLAG_BCAST_WILLQUEUE, JOB_INTERNAL_FLAGS, newJobFields, type JobFields } from './job.js';
import { UNIQUE_KEY_MAX } from './unique-index.js';
import { isValidJobId } from './job-id.js';
import { MsgWriter, putBytes, putLatin1Bytes, putLength, putNumber, putRaw, putString } from './msgpack-writer.js';

export interface WireJob {
  id: string;
  /** Bytes; the bus's frame reader gives them as latin1 strings. */
  q: Uint8Array | string;
  b: Uint8Array | string;
  r: number;
  /** Creation time, absolute Unix ms, and same-ms counter. */
  ct: number;
  cs: number;
  /** message: TTL left in ms; storage: absolute expire time in Unix ms. */
  e: number;
  d: number;
  rt: number;
  n: number;
  dl: number;
  /** Nodes that may have a copy. */
  nd: string[];
  /** storage only: state, flags, re-queue time (absolute Unix ms or -1). */
  st?: number;
  fl?: number;
  qt?: number;
  /** ADDJOB UNIQUE's key (bytes), only on jobs that have one (both forms). */
  u?: Uint8Array | string;
}

/** A job the store holds, or one as plain fields (a job this node keeps no copy of). */
export type AnyJob = Job | JobFields;

function bodyBuffer(job: AnyJob): Buffer {
  if (job instanceof Job) {
    const at = job.bodyOffset();
    return Buffer.from(job.bodyBytes().subarray(at, at + job.bodyLength));
  }
  const b = job.body;
  return typeof b === 'string' ? Buffer.from(b, 'latin1') : b === null ? Buffer.alloc(0) : Buffer.from(b);
}

/** The job as the object writeJob writes (the readable form of the wire and storage maps). */
export function encodeJob(job: AnyJob, clock: Clock, storage: boolean): WireJob {
  const now = clock.now();
  const w: WireJob = {
    id: job.id,
    q: Buffer.from(job.queue ?? '', 'latin1'),
    b: bodyBuffer(job),
    r: job.repl,
    ct: clock.base + job.ctime,
    cs: job.cseq,
    e: storage ? clock.base + job.etime : Math.max(1, job.etime - now),
    d: job.delay,
    rt: job.retry,
    n: job.nacks,
    dl: job.deliveries,
    nd: [...job.delivered],
  };
  const unique = uniqueOf(job);
  if (unique !== null) w.u = Buffer.from(unique, 'latin1');
  if (storage) {
    w.st = job.state;
    w.fl = job.flags & ~JOB_INTERNAL_FLAGS;
    w.qt = job.qtime === NEVER ? -1 : clock.base + job.qtime;
  }
  return w;
}

/** Keys of the job map, encoded once. */
const K = {
  id: MsgWriter.encodedKey('id'),
  q: MsgWriter.encodedKey('q'),
  b: MsgWriter.encodedKey('b'),
  r: MsgWriter.encodedKey('r'),
  ct: MsgWriter.encodedKey('ct'),
  cs: MsgWriter.encodedKey('cs'),
  e: MsgWriter.encodedKey('e'),
  d: MsgWriter.encodedKey('d'),
  rt: MsgWriter.encodedKey('rt'),
  n: MsgWriter.encodedKey('n'),
  dl: MsgWriter.encodedKey('dl'),
  nd: MsgWriter.encodedKey('nd'),
  st: MsgWriter.encodedKey('st'),
  fl: MsgWriter.encodedKey('fl'),
  qt: MsgWriter.encodedKey('qt'),
  u: MsgWriter.encodedKey('u'),
};

function uniqueOf(job: AnyJob): string | null {
  return job instanceof Job ? job.unique : (job.unique ?? null);
}

/**
 * Writes what encodeJob(job, clock, storage) returns, as msgpack, straight
 * from the job: no intermediate object or Buffers, and one shape of code
 * (msgpackr packing varied objects was the largest cost of journaling).
 * Room for the whole job is made once, then values go in at a local position.
 */
export function writeJob(w: MsgWriter, job: AnyJob, clock: Clock, storage: boolean): void {
  const queue = job.queue ?? '';
  const stored = job instanceof Job;
  // Stored acked jobs keep no body: they are never delivered again.
  const noBody = storage && job.state === JobState.Acked;
  const bodyLen = noBody ? 0 : stored ? job.bodyLength : job.body === null ? 0 : job.body.length;
  const nodes = job.delivered;
  // The UNIQUE key, an extra entry only on jobs that have one.
  const unique = noBody ? null : uniqueOf(job);
  // Keys, numbers and headers take under 200 bytes; an ID up to 3 bytes per char.
  let room = 200 + 3 * 40 + queue.length + bodyLen + (unique === null ? 0 : unique.length + 8);
  for (const id of nodes) room += 5 + 3 * id.length;
  w.reserve(room);
  const buf = w.buf;
  let p = w.pos;
  // 12 entries (message) or 15 (storage), one more with a UNIQUE key: 16 needs a map16 header.
  const entries = (storage ? 15 : 12) + (unique === null ? 0 : 1);
  if (entries <= 15) {
    buf[p++] = 0x80 | entries;
  } else {
    buf[p++] = 0xde;
    buf[p++] = 0;
    buf[p++] = entries;
  }
  p = putRaw(buf, p, K.id);
  p = putString(buf, p, job.id);
  p = putRaw(buf, p, K.q);
  p = putLatin1Bytes(buf, p, queue);
  p = putRaw(buf, p, K.b);
  if (noBody) p = putBytes(buf, p, EMPTY, 0, 0);
  else if (stored) p = putBytes(buf, p, job.bodyBytes(), job.bodyOffset(), bodyLen);
  else if (typeof job.body === 'string') p = putLatin1Bytes(buf, p, job.body);
  else p = putBytes(buf, p, job.body ?? EMPTY, 0, bodyLen);
  p = putRaw(buf, p, K.r);
  p = putNumber(buf, p, job.repl);
  p = putRaw(buf, p, K.ct);
  p = putNumber(buf, p, clock.base + job.ctime);
  p = putRaw(buf, p, K.cs);
  p = putNumber(buf, p, job.cseq);
  p = putRaw(buf, p, K.e);
  p = putNumber(buf, p, storage ? clock.base + job.etime : Math.max(1, job.etime - clock.now()));
  p = putRaw(buf, p, K.d);
  p = putNumber(buf, p, job.delay);
  p = putRaw(buf, p, K.rt);
  p = putNumber(buf, p, job.retry);
  p = putRaw(buf, p, K.n);
  p = putNumber(buf, p, job.nacks);
  p = putRaw(buf, p, K.dl);
  p = putNumber(buf, p, job.deliveries);
  p = putRaw(buf, p, K.nd);
  p = putLength(buf, p, nodes.length, 0x90, 16, -1, 0xdc, 0xdd);
  for (const id of nodes) p = putString(buf, p, id);
  if (storage) {
    p = putRaw(buf, p, K.st);
    p = putNumber(buf, p, job.state);
    p = putRaw(buf, p, K.fl);
    p = putNumber(buf, p, job.flags & ~JOB_INTERNAL_FLAGS);
    p = putRaw(buf, p, K.qt);
    p = putNumber(buf, p, job.qtime === NEVER ? -1 : clock.base + job.qtime);
  }
  if (unique !== null) {
    p = putRaw(buf, p, K.u);
    p = putLatin1Bytes(buf, p, unique);
  }
  w.pos = p;
}

const EMPTY = new Uint8Array(0);

/** Bytes as msgpack gives them (Buffers), as the frame reader gives them (latin1 strings), or null. */
function bodyValue(x: unknown): string | Uint8Array | null {
  if (typeof x === 'string' || x instanceof Uint8Array) return x;
  return null;
}

function bytesToLatin1(x: unknown): string | null {
  // msgpackr gives Buffers in Node; a plain Uint8Array needs a Buffer view.
  if (Buffer.isBuffer(x)) return x.latin1Slice(0, x.length);
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('latin1');
  if (typeof x === 'string') return x;
  return null;
}

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x);
}

/**
 * Rebuilds a job as plain fields, or returns null for a malformed record.
 * `internId` maps a node ID to the ID to keep (or null to drop unknown
 * nodes). `timeError` desynchronizes the re-queue time of message jobs.
 */
export function decodeJob(
  raw: unknown,
  clock: Clock,
  storage: boolean,
  internId: (id: string) => string | null,
  timeError: () => number,
): JobFields | null {
  if (raw === null || typeof raw !== 'object') return null;
  const w = raw as Partial<WireJob>;
  if (typeof w.id !== 'string' || !isValidJobId(w.id)) return null;
  const queue = bytesToLatin1(w.q);
  const body = bodyValue(w.b);
  if (queue === null || body === null) return null;
  if (!isInt(w.r) || !isInt(w.ct) || !isInt(w.cs) || !isInt(w.e) || !isInt(w.d) || !isInt(w.rt)) return null;
  if (!isInt(w.n) || !isInt(w.dl) || !Array.isArray(w.nd)) return null;
  // Counters are 32-bit in the store, repl 16-bit (REPLICATE is at most 65535).
  for (const v of [w.cs, w.d, w.rt, w.n, w.dl]) if (v < 0 || v > 0xffffffff) return null;
  if (w.r < 0 || w.r > 0xffff) return null;
  const delivered: string[] = [];
  for (const id of w.nd) {
    if (typeof id !== 'string') return null;
    const known = internId(id);
    if (known !== null && !delivered.includes(known)) delivered.push(known);
  }
  const now = clock.now();
  const job = newJobFields(w.id, JobState.Active, delivered);
  job.queue = queue;
  job.body = body;
  job.repl = w.r;
  job.ctime = w.ct - clock.base;
  job.cseq = w.cs;
  job.etime = storage ? w.e - clock.base : now + w.e;
  job.delay = w.d;
  job.retry = w.rt;
  job.nacks = w.n;
  job.deliveries = w.dl;
  if (w.u !== undefined) {
    const unique = bytesToLatin1(w.u);
    if (unique === null || unique.length > UNIQUE_KEY_MAX) return null;
    job.unique = unique;
  }
  if (storage) {
    if (!isInt(w.st) || w.st < JobState.WaitRepl || w.st > JobState.Acked) return null;
    job.state = w.st;
    job.flags = isInt(w.fl) ? w.fl & ~JOB_INTERNAL_FLAGS & 0xff : 0;
  }
  // The next re-queue time is computed locally, as on REPLJOB reception.
  if (job.retry) {
    job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
    job.qtime = now + job.delay * 1000 + job.retry * 1000 + timeError();
  } else {
    job.qtime = NEVER;
  }
  // Except a job this node was to queue for the first time at a set time
  // (ADDJOB DELAY, NACK DELAY): reloaded, it keeps that time.
  if (storage && job.state === JobState.Active && !(job.flags & JOB_FLAG_BCAST_QUEUED) && isInt(w.qt) && w.qt >= 0) {
    job.qtime = Math.max(now, w.qt - clock.base);
  }
  return job;
}
