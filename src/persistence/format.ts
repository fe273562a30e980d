// What this node writes to Redis, as bytes. Every value is msgpackr-encoded
// and self-contained (record definitions travel inline), so any chunk or
// journal entry decodes on its own, whatever was written before it.
//
//   snapshot chunk   [job, job, ...]              jobs in storage form
//   journal entry    [seq, [record, record, ...]]
//     record: a job in storage form (the job exists, as encoded: the
//     reference's LOADJOB) or a job ID string (the job is gone: its DELJOB).
//
// Records are full states, never deltas, so replaying an entry twice, or a
// state newer than the one a snapshot captured, gives the same result.
import { Packr } from 'msgpackr';
import type { WireJob } from '../core/job-codec.js';

/** Layout version, kept in the meta hash; a node refuses to read other versions. */
export const FORMAT_VERSION = 1;

/** Target size of one snapshot chunk or journal entry, so no value is huge. */
export const CHUNK_BYTES = 512 * 1024;

export type JournalRecord = WireJob | string;

const packr = new Packr({ useRecords: true });

export function packChunk(jobs: WireJob[]): Buffer {
  return packr.pack(jobs);
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

export function packJournalEntry(seq: number, records: JournalRecord[]): Buffer {
  return packr.pack([seq, records]);
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
export function estimateJobBytes(w: WireJob): number {
  return 120 + w.b.length + w.q.length + 42 * w.nd.length;
}
