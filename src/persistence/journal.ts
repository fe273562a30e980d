// The journal writer and the reply gate.
//
// - Store hooks add records (a job to keep, or an ID to forget) to `pending`.
//   Once per event-loop turn they go out as one ZADD of journal entries
//   (format.ts), pipelined on the connection: up to MAX_IN_FLIGHT writes
//   wait for Redis at once, so a turn's replies wait for one round trip
//   and not for the writes before theirs. Past that many, records gather
//   into the next write (group commit). Redis answers a connection's
//   commands in order, so writes are confirmed in the order they were sent.
// - With appendfsync always or everysec, client replies wait for the write
//   that holds their records (replyGate), so a reply that reports a change
//   is only sent once Redis has it.
// - While a resync is wanted (Redis failing, appendonly just turned on,
//   DEBUG FLUSHALL) nothing goes out: the resync snapshot (snapshot.ts)
//   covers what was captured, and the replies waiting for it are held here
//   (heldGates) until it commits.
// This runs for every write command: record() only pushes onto `pending`.
import type { Job } from '../core/job.js';
import type { PersistenceHost } from './host.js';
import type { RedisHealth } from './health.js';
import type { PersistedState } from './reader.js';
import { CHUNK_BYTES, estimateJobBytes, packJournalEntry, type JournalRecord } from './format.js';

/** Bytes Redis spends per journal entry beyond the entry itself (skiplist node, dict entry). */
const ENTRY_OVERHEAD = 64;
/** Journal writes sent and not yet confirmed, at most. */
export const MAX_IN_FLIGHT = 16;

export type Fsync = 'always' | 'everysec' | 'no';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** What the journal asks of the rest of persistence. */
export interface JournalOwner {
  /**
   * Whether store changes are recorded now: appendonly is on, no load is
   * under way, and Redis takes writes or a resync snapshot is being written
   * (records after its moment T are replayed on top of it).
   */
  capturing(): boolean;
  /** A journal write was confirmed: a snapshot may be due. */
  written(): void;
}

export class Journal {
  /** appendfsync: with `no`, replies do not wait for Redis. */
  fsync: Fsync = 'everysec';
  /** Last journal seq handed out (entries and snapshots share the sequence). */
  private seq = 0;
  private pending: (Job | string)[] = [];
  private pendingGate: Deferred | null = null;
  /** Gates of the writes waiting for Redis, oldest first. */
  private inflight: Deferred[] = [];
  /** Bumped when a write fails: the writes sent after it no longer count (the resync covers them). */
  private writeRound = 0;
  private flushScheduled = false;
  /** Replies waiting for the next resync snapshot to commit. */
  private heldGates: Deferred[] = [];
  /** The held gate replies share while a resync is wanted (one per resync). */
  private resyncGate: Deferred | null = null;

  // Statistics: INFO and the snapshot triggers.
  /** Records in Redis's journal (entries not yet dropped by a snapshot). */
  records = 0;
  /** Bytes of Redis's journal, with Redis's per-entry overhead. */
  bytes = 0;
  /** Running sums of estimated put sizes, to estimate the encoded size of live jobs. */
  putBytes = 0;
  puts = 0;

  constructor(
    private readonly node: PersistenceHost,
    private readonly health: RedisHealth,
    private readonly owner: JournalOwner,
  ) {}

  /** Records captured and not yet sent. */
  get pendingRecords(): number {
    return this.pending.length;
  }

  /** Journal writes sent and not yet confirmed by Redis. */
  get writesInFlight(): number {
    return this.inflight.length;
  }

  /** A job to keep (its state as it is when the entry is written) or the ID of one that is gone. */
  record(r: Job | string): void {
    if (!this.owner.capturing()) return;
    this.pending.push(r);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** The next seq: a journal entry's, or the one a snapshot covers up to. */
  nextSeq(): number {
    return ++this.seq;
  }

  /** Sends what the store recorded since the last write, unless MAX_IN_FLIGHT writes wait already. */
  readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.inflight.length >= MAX_IN_FLIGHT || this.pending.length === 0) return;
    const health = this.health;
    // Held until the resync snapshot commits: they are replayed on top of it.
    if (health.resyncWanted || health.failure !== null || health.redis === null || health.keys === null) return;
    const records = this.pending;
    this.pending = [];
    const gate = this.pendingGate ?? deferred();
    this.pendingGate = null;

    const clock = this.node.store.clock;
    const args: (string | number | Buffer)[] = [health.keys.journal];
    let entry: JournalRecord[] = [];
    let est = 0;
    let count = 0;
    const cut = (): void => {
      const seq = ++this.seq;
      const buf = packJournalEntry(seq, entry, clock);
      args.push(seq, buf);
      this.bytes += buf.length + ENTRY_OVERHEAD;
      count += entry.length;
      entry = [];
      est = 0;
    };
    for (const r of records) {
      if (typeof r === 'string') {
        entry.push(r);
        est += r.length + 2;
      } else {
        // Deleted since it was recorded (its ID follows), or a dummy ack: nothing to keep.
        if (!r.registered || r.queue === null) continue;
        const size = estimateJobBytes(r);
        this.putBytes += size;
        this.puts++;
        entry.push(r);
        est += size;
      }
      if (est >= CHUNK_BYTES) cut();
    }
    if (entry.length > 0) cut();
    if (args.length === 1) {
      gate.resolve();
      return;
    }
    this.records += count;
    this.inflight.push(gate);
    const epoch = health.epoch;
    const round = this.writeRound;
    health.redis.call('ZADD', args).then(
      () => {
        if (epoch !== health.epoch || round !== this.writeRound) return;
        this.confirmed(gate);
        health.lastWriteStatus = 'ok';
        gate.resolve();
        this.flush();
        // Checked per write, not only per cron tick, so the journal never runs far past its limits.
        this.owner.written();
      },
      (e: Error) => {
        if (epoch !== health.epoch || round !== this.writeRound) return;
        // This write and every one sent after it wait for the resync snapshot.
        this.writeRound++;
        for (const g of this.inflight) this.heldGates.push(g);
        this.inflight = [];
        health.fail(e);
      },
    );
  };

  /** Takes a confirmed write's gate off the in-flight list (the oldest, as Redis answers in order). */
  private confirmed(gate: Deferred): void {
    const list = this.inflight;
    if (list[0] === gate) list.shift();
    else list.splice(list.indexOf(gate), 1);
  }

  /**
   * A promise that resolves once every journal record produced so far is
   * confirmed by Redis, or null when nothing is pending (or appendfsync is
   * no). Client replies produced now wait for it.
   */
  replyGate(): Promise<void> | null {
    if (this.fsync === 'no') return null;
    if (this.pending.length > 0) {
      if (this.pendingGate === null) this.pendingGate = deferred();
      return this.pendingGate.promise;
    }
    // The newest write: Redis confirms it after every earlier one.
    const n = this.inflight.length;
    if (n > 0) return this.inflight[n - 1]!.promise;
    // A resync (appendonly just turned on, DEBUG FLUSHALL) replaces what
    // Redis holds: replies wait until it is in place. While Redis is failing
    // nothing is captured, and replies do not wait.
    const health = this.health;
    if (health.resyncWanted && health.failure === null && health.enabled) {
      if (this.resyncGate === null) {
        this.resyncGate = deferred();
        this.heldGates.push(this.resyncGate);
      }
      return this.resyncGate.promise;
    }
    return null;
  }

  /**
   * A resync snapshot takes over what was captured (it holds the state as
   * of now): drop the records, and let their replies wait for the snapshot.
   */
  holdPending(): void {
    if (this.pendingGate !== null) this.heldGates.push(this.pendingGate);
    this.pendingGate = null;
    this.pending = [];
  }

  /** The resync snapshot committed: release the replies that waited for it. */
  releaseHeld(): void {
    const gates = this.heldGates;
    this.heldGates = [];
    this.resyncGate = null;
    for (const g of gates) g.resolve();
  }

  /** appendonly no: nothing will reach Redis; release every waiting reply and forget the journal. */
  clear(): void {
    this.pending = [];
    const gates = [...this.heldGates, ...(this.pendingGate ? [this.pendingGate] : []), ...this.inflight];
    this.heldGates = [];
    this.resyncGate = null;
    this.pendingGate = null;
    this.inflight = [];
    this.writeRound++;
    for (const g of gates) g.resolve();
    this.records = 0;
    this.bytes = 0;
  }

  /** A snapshot committed: the journal up to its moment T is gone from Redis. */
  dropCovered(bytesAtT: number, recordsAtT: number): void {
    this.bytes -= bytesAtT;
    this.records -= recordsAtT;
  }

  /** After a load: the journal continues after the highest seq Redis holds. */
  restore(st: PersistedState): void {
    if (st.maxSeq > this.seq) this.seq = st.maxSeq;
    this.records = st.journalRecords;
    this.bytes = st.journalBytes + st.journalEntries * ENTRY_OVERHEAD;
  }

  /** Waits (a bounded time) for captured records to reach Redis. */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const health = this.health;
    while ((this.pending.length > 0 || this.inflight.length > 0) && health.failure === null && !health.resyncWanted) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.node.log.warning('Persistence: the last journal write did not complete before shutdown');
        return;
      }
      this.flush();
      const last = this.inflight[this.inflight.length - 1];
      const wait = last?.promise ?? new Promise<void>((r) => setImmediate(r));
      await Promise.race([wait, new Promise((r) => setTimeout(r, left))]);
    }
  }
}
