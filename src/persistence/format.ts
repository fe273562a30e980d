// What this node writes to Redis, as bytes. Every value is plain msgpack,
// written by MsgWriter (earlier versions wrote msgpackr records with inline
// definitions; the reader decodes both), and self-contained, so any chunk or
// journal entry decodes on its own, whatever was written before it.
//
//   snapshot chunk   [job, job, ...]              jobs in storage form
//   journal entry    [seq, [record, record, ...]]
//     record: a job in storage form (the job exists, as encoded: the
//     reference's LOADJOB; an acked job without its body) or a job ID
//     string (the job is gone: its DELJOB).
//
// Records are full states, never deltas, so replaying an entry twice, or a
// state newer than the one a snapshot captured, gives the same result.
import { Packr } from 'msgpackr';
import { writeJob, type AnyJob } from '../core/job-codec.js';
import { MsgWriter } from '../core/msgpack-writer.js';
import type { Clock } from '../core/clock.js';
import { JobState, type Job } from '../core/job.js';

/** Layout version, kept in the meta hash; a node refuses to read other versions. */
export const FORMAT_VERSION = 1;

/** Target size of one snapshot chunk or journal entry, so no value is huge. */
export const CHUNK_BYTES = 512 * 1024;

/** A job to keep (written in storage form), or the ID of a job that is gone. */
export type JournalRecord = AnyJob | string;

const packr = new Packr({ useRecords: true, mapsAsObjects: true });
const writer = new MsgWriter(CHUNK_BYTES * 2);

/** A snapshot chunk: the jobs in storage form. */
export function packChunk(jobs: AnyJob[], clock: Clock): Buffer {
  writer.pos = 0;
  writer.arrayHeader(jobs.length);
  for (const job of jobs) writeJob(writer, job, clock, true);
  return writer.copy();
}

/** The records of a chunk, or null when it is not a chunk of ours. */
export function unpackChunk(buf: Buffer): unknown[] | null {
  try {
    const v: unknown = packr.unpack(buf);
    return Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

export function packJournalEntry(seq: number, records: JournalRecord[], clock: Clock): Buffer {
  writer.pos = 0;
  writer.arrayHeader(2);
  writer.number(seq);
  writer.arrayHeader(records.length);
  for (const r of records) {
    if (typeof r === 'string') writer.string(r);
    else writeJob(writer, r, clock, true);
  }
  return writer.copy();
}

export interface JournalEntry {
  seq: number;
  records: unknown[];
}

/** A journal entry, or null when it is not one of ours. */
export function unpackJournalEntry(buf: Buffer): JournalEntry | null {
  let v: unknown;
  try {
    v = packr.unpack(buf);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [seq, records] = v as [unknown, unknown];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1 || !Array.isArray(records)) return null;
  return { seq, records };
}

/** Rough encoded size of a job, to cut chunks and entries before packing them. */
export function estimateJobBytes(job: Job): number {
  const body = job.state === JobState.Acked ? 0 : job.bodyLength;
  return 120 + body + (job.queue?.length ?? 0) + 42 * job.delivered.length;
}
