// The journal writer and the reply gate.
//
// - Store hooks add records (a job to keep, or an ID to forget) to `pending`.
//   They go out as one ZADD of journal entries (format.ts) at the end of
//   the turn when a client reply waits for them, else within COALESCE_MS
//   (with appendfsync always, every turn), on the journal's own connection
//   (journal-link.ts),
//   pipelined: up to MAX_IN_FLIGHT writes wait for Redis at once, so a
//   turn's replies wait for one round trip and not for the writes before
//   theirs. Past that many, records gather into the next write (group
//   commit). Redis answers in order, so writes are confirmed in the order
//   they were sent.
// - Writes are numbered. With appendfsync always or everysec, the reply to a
//   command that journaled a change waits for the number of the write that
//   holds every record captured so far (replyGate);
//   `released` is the highest number whose replies may go, and the node is
//   told when it moves (PersistenceHost.repliesReleased). No promise or
//   callback per reply or per write.
// - A change kept outside the journal (a queue policy's HSET, policies.ts)
//   goes over the same connection as an extra command of the next write
//   (recordCommand): it counts as a record, is sent before that write's
//   ZADD (or is the write, when no record is pending), and so shares its
//   gate: Redis answers in order, so the ZADD's reply confirms it too, and an
//   error reply to it fails the connection as a refused ZADD would. A reply
//   to QPOLICY thus waits for its HSET exactly as an ADDJOB reply waits for
//   its journal entry, with no second kind of gate.
// - While a resync is wanted (Redis failing, appendonly just turned on,
//   DEBUG FLUSHALL) nothing goes out: the resync snapshot (snapshot.ts)
//   covers what was captured, and the replies waiting for it stay held
//   (up to `heldUpTo`) until it commits.
// This runs for every write command: record() only pushes onto `pending`.
import type { Job } from '../core/job.js';
import type { PersistenceHost } from './host.js';
import type { RedisHealth } from './health.js';
import type { PersistedState } from './reader.js';
import { CHUNK_BYTES, estimateJobBytes, packJournalEntry, type JournalRecord } from './format.js';
import { JournalLink, encodeCommand, type JournalLinkEvents } from './journal-link.js';
import type { RespValue } from '../protocol/reply-reader.js';
import type { NodeKeys } from './keys.js';

/** A command's arguments (latin1 strings, numbers or bytes). */
export type JournalCommand = readonly (string | number | Buffer)[];

/** Bytes Redis spends per journal entry beyond the entry itself (skiplist node, dict entry). */
const ENTRY_OVERHEAD = 64;
/** Journal writes sent and not yet confirmed, at most. */
export const MAX_IN_FLIGHT = 16;
/** Records no reply waits for are written within this many ms (see flushLater). */
export const COALESCE_MS = 20;

export type Fsync = 'always' | 'everysec' | 'no';

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

/** The journal's connection as the journal uses it (JournalLink; a fake in tests). */
export type JournalConnection = Pick<JournalLink, 'closed' | 'write' | 'command' | 'close'>;

export type JournalConnect = (events: JournalLinkEvents) => JournalConnection;

export class Journal {
  /** appendfsync: with `no`, replies do not wait for Redis. */
  fsync: Fsync = 'everysec';
  /** Last journal seq handed out (entries and snapshots share the sequence). */
  private seq = 0;
  private pending: (Job | string)[] = [];
  /** Extra commands for the next write (recordCommand), made with the keys current then. */
  private pendingCommands: ((keys: NodeKeys) => JournalCommand)[] = [];
  /** Last reply gate number handed out (see the file comment). */
  private lastGate = 0;
  /** The gate of the records in `pending` (the number their write will have), 0 until asked for. */
  private pendingGate = 0;
  /** Gates of the writes waiting for Redis, oldest first. */
  private inflight: number[] = [];
  /** Replies with a gate up to this may be written. */
  released = 0;
  /** Replies with a gate up to this wait for the resync snapshot to commit. */
  private heldUpTo = 0;
  /** The gate replies share while a resync is wanted and nothing else is pending (one per resync). */
  private resyncGate = 0;
  private flushScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  /** The connection journal writes go over; made when first needed, again after a failure. */
  private link: JournalConnection | null = null;

  // Statistics: INFO and the snapshot triggers.
  /** Records captured since start: a command that changed it made a journaled change. */
  captured = 0;
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
    /** Opens the journal's connection (a JournalLink to redis-url by default). */
    private readonly connect: JournalConnect = (events) =>
      new JournalLink(node.config.str('redis-url'), health.tls, `disque-journal-${node.cluster.myself.id.slice(0, 8)}`, events),
  ) {}

  /** Records (and extra commands) captured and not yet sent. */
  get pendingRecords(): number {
    return this.pending.length + this.pendingCommands.length;
  }

  private get hasPending(): boolean {
    return this.pending.length > 0 || this.pendingCommands.length > 0;
  }

  /** Journal writes sent and not yet confirmed by Redis. */
  get writesInFlight(): number {
    return this.inflight.length;
  }

  /** A job to keep (its state as it is when the entry is written) or the ID of one that is gone. */
  record(r: Job | string): void {
    if (!this.owner.capturing()) return;
    this.captured++;
    this.pending.push(r);
    if (this.fsync === 'always') this.flushSoon();
    else this.flushLater();
  }

  /**
   * A command to send with the next write, for a change kept outside the
   * journal (see the file comment): counted as a record, so the reply of the
   * command that made the change waits for that write. `make` builds it with
   * the keys current when it is sent.
   */
  recordCommand(make: (keys: NodeKeys) => JournalCommand): void {
    if (!this.owner.capturing()) return;
    this.captured++;
    this.pendingCommands.push(make);
    if (this.fsync === 'always') this.flushSoon();
    else this.flushLater();
  }

  /** At the end of this event-loop turn: a reply waits for the write. */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  /**
   * Within COALESCE_MS: no reply waits (a replica's copy, an ack heard
   * from another node, a collected job), so records of many turns share a
   * write, and a job added, acked and collected meanwhile is written once,
   * as its ID. appendfsync everysec accepts losing that much in a crash.
   */
  private flushLater(): void {
    if (this.timer !== null || this.flushScheduled) return;
    this.timer = setTimeout(this.flush, COALESCE_MS);
    this.timer.unref?.();
  }

  /** The next seq: a journal entry's, or the one a snapshot covers up to. */
  nextSeq(): number {
    return ++this.seq;
  }

  /** The journal's connection, connected on first use. */
  private connection(): JournalConnection {
    if (this.link !== null && !this.link.closed) return this.link;
    const health = this.health;
    const link = this.connect({
      confirmed: () => this.confirmed(),
      failed: (e) => {
        if (link !== this.link) return;
        this.link = null;
        // Writes not confirmed wait for the resync snapshot with the records captured since.
        this.holdInflight();
        if (health.enabled && !health.stopping) health.fail(e);
      },
    });
    this.link = link;
    return link;
  }

  /** Sends what the store recorded since the last write, unless MAX_IN_FLIGHT writes wait already. */
  readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.inflight.length >= MAX_IN_FLIGHT || !this.hasPending) return;
    const health = this.health;
    // Held until the resync snapshot commits: they are replayed on top of it.
    if (health.resyncWanted || health.failure !== null || health.redis === null || health.keys === null) return;
    const records = this.pending;
    this.pending = [];
    const keys = health.keys;
    const extra = this.pendingCommands.map((make) => make(keys));
    this.pendingCommands = [];
    const gate = this.pendingGate !== 0 ? this.pendingGate : ++this.lastGate;
    this.pendingGate = 0;

    const clock = this.node.store.clock;
    const args: (string | number | Buffer)[] = ['ZADD', keys.journal];
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
    if (args.length === 2 && extra.length === 0) {
      // Nothing to write after all: the replies wait for what is in flight.
      const n = this.inflight.length;
      if (n > 0) this.inflight[n - 1] = gate;
      else this.release(gate);
      return;
    }
    this.records += count;
    this.inflight.push(gate);
    const link = this.connection();
    // The extra commands first, the last command is the write: its reply,
    // after theirs, confirms them all (an error reply to one fails the link).
    const last = args.length > 2 ? args : extra.pop()!;
    for (const c of extra) link.command(c, null);
    link.write(encodeCommand(last));
  };

  /** Redis confirmed the oldest write in flight (it answers in order). */
  private confirmed(): void {
    const gate = this.inflight.shift();
    if (gate === undefined) return;
    this.health.lastWriteStatus = 'ok';
    this.release(gate);
    // Records held back by MAX_IN_FLIGHT go now if a reply waits for them.
    if (this.pendingGate !== 0) this.flush();
    else if (this.hasPending) this.flushLater();
    // Checked per write, not only per cron tick, so the journal never runs far past its limits.
    this.owner.written();
  }

  /** Replies with a gate up to `gate` may go, unless held for a resync. */
  private release(gate: number): void {
    if (gate <= this.released) return;
    // In order: a gate held for the resync stops the release before it.
    if (this.heldUpTo > this.released && gate >= this.heldUpTo) gate = this.heldUpTo - 1;
    if (gate <= this.released) return;
    this.released = gate;
    this.node.repliesReleased();
  }

  /** The writes in flight will not be confirmed: their replies wait for the resync snapshot. */
  private holdInflight(): void {
    const n = this.inflight.length;
    if (n > 0) this.hold(this.inflight[n - 1]!);
    this.inflight = [];
  }

  private hold(gate: number): void {
    if (gate > this.heldUpTo) this.heldUpTo = gate;
  }

  /**
   * The gate of replies produced now: the number of the write holding every
   * journal record produced so far, or 0 when nothing is pending (or
   * appendfsync is no). Such a reply is written once released >= its gate.
   */
  replyGate(): number {
    if (this.fsync === 'no') return 0;
    if (this.hasPending) {
      if (this.pendingGate === 0) this.pendingGate = ++this.lastGate;
      this.flushSoon();
      return this.pendingGate;
    }
    // The newest write: Redis confirms it after every earlier one.
    const n = this.inflight.length;
    if (n > 0) return this.inflight[n - 1]!;
    // A resync (appendonly just turned on, DEBUG FLUSHALL) replaces what
    // Redis holds: replies wait until it is in place. While Redis is failing
    // nothing is captured, and replies do not wait.
    const health = this.health;
    if (health.resyncWanted && health.failure === null && health.enabled) {
      if (this.resyncGate === 0) {
        this.resyncGate = ++this.lastGate;
        this.hold(this.resyncGate);
      }
      return this.resyncGate;
    }
    return 0;
  }

  /** Whether replies with this gate may be written. */
  isReleased(gate: number): boolean {
    return gate <= this.released;
  }

  /**
   * A resync snapshot takes over what was captured (it holds the state as
   * of now): drop the records, and let their replies wait for the snapshot.
   */
  holdPending(): void {
    if (this.pendingGate !== 0) this.hold(this.pendingGate);
    this.pendingGate = 0;
    this.pending = [];
    this.pendingCommands = [];
  }

  /** The resync snapshot committed: release the replies that waited for it. */
  releaseHeld(): void {
    const held = this.heldUpTo;
    this.heldUpTo = 0;
    this.resyncGate = 0;
    this.release(held);
  }

  /** appendonly no: nothing will reach Redis; release every waiting reply and forget the journal. */
  clear(): void {
    this.pending = [];
    this.pendingCommands = [];
    this.pendingGate = 0;
    this.inflight = [];
    this.heldUpTo = 0;
    this.resyncGate = 0;
    this.closeLink();
    this.release(this.lastGate);
    this.records = 0;
    this.bytes = 0;
  }

  /** Drops the journal's connection (writes not yet confirmed never will be). */
  closeLink(): void {
    const link = this.link;
    this.link = null;
    link?.close();
  }

  /**
   * MULTI, the commands, EXEC, after every journal write sent so far and on
   * the same connection, so Redis runs them after those writes (the
   * snapshot's commit: a journal entry it trims must not land after it).
   * Resolves with EXEC's replies (errors among them as RespError values).
   */
  transaction(commands: readonly (readonly (string | number | Buffer)[])[]): Promise<RespValue[]> {
    return new Promise((resolve, reject) => {
      const link = this.connection();
      // Refusals while queueing show again as EXEC's error (EXECABORT).
      const ignore = (): void => {};
      link.command(['MULTI'], ignore);
      for (const c of commands) link.command(c, ignore);
      link.command(['EXEC'], (e, v) => {
        if (e) reject(e);
        else if (!Array.isArray(v)) reject(new Error('transaction aborted'));
        else resolve(v);
      });
    });
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
    while ((this.hasPending || this.inflight.length > 0) && health.failure === null && !health.resyncWanted) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.node.log.warning('Persistence: the last journal write did not complete before shutdown');
        return;
      }
      this.flush();
      await new Promise((r) => setTimeout(r, Math.min(left, 2)));
    }
  }
}
