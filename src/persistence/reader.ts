// Reads a node's persisted state from Redis: the committed snapshot, then
// the journal entries written after it. readState fetches them as they are
// stored (a few thousand buffers of packed records, off the V8 heap however
// many jobs they hold); replayState then decodes them one at a time and
// hands every record, in order, to the caller, so a node with millions of
// jobs never has them all as JavaScript objects. Damaged or foreign data is
// skipped with a warning (and counted, so the node rewrites it); a failing
// Redis throws.
import type { Redis } from 'ioredis';
import type { NodeKeys } from './keys.js';
import { FORMAT_VERSION, unpackChunk, unpackJournalEntry } from './format.js';

export interface PersistedState {
  /** Snapshot chunks, in order. */
  chunks: Buffer[];
  /** Journal entries after the snapshot, in order, with their seq (score). */
  entries: { seq: number; buf: Buffer }[];
  /** Seq covered by the committed snapshot (0: none). */
  snapSeq: number;
  /** Highest seq seen anywhere: the journal continues after it. */
  maxSeq: number;
  /** A snapshot left unfinished by a crash (to delete), or null. */
  pendingSeq: number | null;
  snapshotJobs: number;
  snapshotBytes: number;
  /** Unix ms of the committed snapshot, or 0. */
  snapshotTime: number;
  journalEntries: number;
  journalRecords: number;
  journalBytes: number;
  /** Records or keys that were skipped: the node should rewrite its state. */
  problems: number;
  /** Queue policy records (policies.ts), as stored. */
  policies: Buffer[];
}

export interface ReaderLog {
  warning(msg: string): void;
}

const LRANGE_WINDOW = 8;
const JOURNAL_PAGE = 128;
/** Warnings about individual records stop after this many per load. */
const MAX_RECORD_WARNINGS = 10;

function isWrongType(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith('WRONGTYPE');
}

function intField(meta: Record<string, string>, name: string): number | null {
  const v = meta[name];
  if (v === undefined || !/^\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

export async function readState(redis: Redis, keys: NodeKeys, log: ReaderLog): Promise<PersistedState> {
  const st: PersistedState = {
    chunks: [],
    entries: [],
    snapSeq: 0,
    maxSeq: 0,
    pendingSeq: null,
    snapshotJobs: 0,
    snapshotBytes: 0,
    snapshotTime: 0,
    journalEntries: 0,
    journalRecords: 0,
    journalBytes: 0,
    problems: 0,
    policies: [],
  };
  let warnings = 0;
  const skip = (what: string): void => {
    st.problems++;
    if (warnings++ < MAX_RECORD_WARNINGS) log.warning(`Persistence: skipping ${what}`);
  };

  let meta: Record<string, string> = {};
  try {
    meta = await redis.hgetall(keys.meta);
  } catch (e) {
    if (!isWrongType(e)) throw e;
    skip(`${keys.meta}: not a hash`);
  }
  const version = intField(meta, 'v');
  if (Object.keys(meta).length > 0 && version !== FORMAT_VERSION) {
    // Written by another program or layout: nothing here can be trusted.
    skip(`${keys.meta}: unknown layout version ${meta.v ?? '(none)'}; ignoring this node's data in Redis`);
    return st;
  }
  const snap = intField(meta, 'snap');
  st.pendingSeq = intField(meta, 'pending');
  if (st.pendingSeq !== null) st.maxSeq = st.pendingSeq;

  if (snap !== null) {
    st.snapSeq = snap;
    if (snap > st.maxSeq) st.maxSeq = snap;
    st.snapshotTime = intField(meta, 'time') ?? 0;
    const key = keys.snap(snap);
    let len = 0;
    try {
      len = await redis.llen(key);
    } catch (e) {
      if (!isWrongType(e)) throw e;
      skip(`${key}: not a list`);
    }
    const expected = intField(meta, 'chunks');
    if (expected !== null && expected !== len) skip(`${key}: ${len} chunks where ${expected} were written`);
    for (let start = 0; start < len; start += LRANGE_WINDOW) {
      const chunks = await redis.lrangeBuffer(key, start, start + LRANGE_WINDOW - 1);
      for (const chunk of chunks) {
        st.snapshotBytes += chunk.length;
        st.chunks.push(chunk);
      }
    }
  }

  // Entries after the snapshot, paged by score so each page costs the same.
  let after = `(${st.snapSeq}`;
  for (;;) {
    let page: Buffer[];
    try {
      page = await redis.zrangebyscoreBuffer(keys.journal, after, '+inf', 'WITHSCORES', 'LIMIT', 0, JOURNAL_PAGE);
    } catch (e) {
      if (!isWrongType(e)) throw e;
      skip(`${keys.journal}: not a sorted set`);
      break;
    }
    for (let i = 0; i + 1 < page.length; i += 2) {
      const member = page[i]!;
      const score = Number(page[i + 1]!.toString());
      after = `(${score}`;
      if (score > st.maxSeq) st.maxSeq = score;
      st.journalEntries++;
      st.journalBytes += member.length;
      st.entries.push({ seq: score, buf: member });
    }
    if (page.length < JOURNAL_PAGE * 2) break;
  }
  try {
    st.policies = await redis.hvalsBuffer(keys.policies);
  } catch (e) {
    if (!isWrongType(e)) throw e;
    skip(`${keys.policies}: not a hash`);
  }
  if (warnings > MAX_RECORD_WARNINGS) log.warning(`Persistence: ${warnings - MAX_RECORD_WARNINGS} more problems not shown`);
  return st;
}

/**
 * Decodes the state read by readState and hands each record to `apply`, in
 * the order written: snapshot jobs, then journal records (a job in storage
 * form, or the ID string of a job that is gone). Counts records and
 * problems in `st`; the buffers are released as they are read.
 */
export function replayState(st: PersistedState, log: ReaderLog, apply: (rec: unknown) => boolean): void {
  let warnings = 0;
  const skip = (what: string): void => {
    st.problems++;
    if (warnings++ < MAX_RECORD_WARNINGS) log.warning(`Persistence: skipping ${what}`);
  };
  const each = (records: unknown[], where: string): void => {
    for (const rec of records) {
      if (typeof rec !== 'string' && (rec === null || typeof rec !== 'object' || typeof (rec as { id?: unknown }).id !== 'string')) {
        skip(`a malformed record in ${where}`);
      } else if (!apply(rec)) {
        skip(`a job record that does not decode in ${where}`);
      }
    }
  };
  const chunks = st.chunks;
  st.chunks = [];
  for (let i = 0; i < chunks.length; i++) {
    const jobs = unpackChunk(chunks[i]!);
    chunks[i] = EMPTY;
    if (jobs === null) {
      skip(`snapshot chunk #${i}: not a chunk of jobs`);
      continue;
    }
    st.snapshotJobs += jobs.length;
    each(jobs, `snapshot chunk #${i}`);
  }
  const entries = st.entries;
  st.entries = [];
  for (const { seq, buf } of entries) {
    const entry = unpackJournalEntry(buf);
    if (entry === null || entry.seq !== seq) {
      skip(`journal entry ${seq}: not a journal entry`);
      continue;
    }
    st.journalRecords += entry.records.length;
    each(entry.records, `journal entry ${seq}`);
  }
  if (warnings > MAX_RECORD_WARNINGS) log.warning(`Persistence: ${warnings - MAX_RECORD_WARNINGS} more problems not shown`);
}

const EMPTY = Buffer.alloc(0);
