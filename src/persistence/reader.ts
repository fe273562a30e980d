// Reads a node's persisted state from Redis: the committed snapshot, then
// the journal entries written after it, replayed in order into one map of
// job ID -> last known record. Damaged or foreign data is skipped with a
// warning (and counted, so the node rewrites it); a failing Redis throws.
import type { Redis } from 'ioredis';
import type { NodeKeys } from './keys.js';
import { FORMAT_VERSION, unpackChunk, unpackJournalEntry } from './format.js';

export interface PersistedState {
  /** Job ID -> raw storage record (decode with decodeJob(..., storage=true)). */
  jobs: Map<string, unknown>;
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
    jobs: new Map(),
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
  };
  let warnings = 0;
  const skip = (what: string): void => {
    st.problems++;
    if (warnings++ < MAX_RECORD_WARNINGS) log.warning(`Persistence: skipping ${what}`);
  };
  const apply = (rec: unknown, where: string): void => {
    if (typeof rec === 'string') {
      st.jobs.delete(rec);
      return;
    }
    const id = rec !== null && typeof rec === 'object' ? (rec as { id?: unknown }).id : undefined;
    if (typeof id !== 'string') return skip(`a malformed record in ${where}`);
    // Delete first so the map keeps the order of the latest writes.
    st.jobs.delete(id);
    st.jobs.set(id, rec);
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
      for (let i = 0; i < chunks.length; i++) {
        const chunk = chunks[i]!;
        st.snapshotBytes += chunk.length;
        const jobs = unpackChunk(chunk);
        if (jobs === null) {
          skip(`snapshot chunk #${start + i} of ${key}: not a chunk of jobs`);
          continue;
        }
        for (const rec of jobs) {
          st.snapshotJobs++;
          apply(rec, `snapshot chunk #${start + i}`);
        }
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
      const entry = unpackJournalEntry(member);
      if (entry === null || entry.seq !== score) {
        skip(`journal entry ${score}: not a journal entry`);
        continue;
      }
      for (const rec of entry.records) {
        st.journalRecords++;
        apply(rec, `journal entry ${score}`);
      }
    }
    if (page.length < JOURNAL_PAGE * 2) break;
  }
  if (warnings > MAX_RECORD_WARNINGS) log.warning(`Persistence: ${warnings - MAX_RECORD_WARNINGS} more problems not shown`);
  return st;
}
