// The job table: every job this node holds, off the garbage-collected heap
// (DESIGN.md). A fixed-size record per job (records.ts), its ID (when it
// does not pack into the record) and body in the byte arena (arena.ts), an
// index by ID (job-index.ts), and the shared queue names and node lists
// (intern.ts). It stores and finds jobs and answers what a Job handle reads;
// what happens to a job over time (queues, schedule, acks) is the store's.
import {
  JobState,
  NEVER,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_REGISTERED,
  JOB_FLAG_RAW_ID,
  JOB_FLAG_LARGE,
  JOB_INTERNAL_FLAGS,
  type JobFields,
  type JobStoreInternals,
  type NodeIdList,
} from './job.js';
import { JOB_ID_LEN, PACKED_ID_LEN, packJobId, unpackJobId, generatedId, generatedPacked } from './job-id.js';
import { hashBytes, hashWords } from './id-hash.js';
import { JobIndex } from './job-index.js';
import { ByteArena, SMALL_MAX } from './arena.js';
import { NodeLists, QueueNames } from './intern.js';
import type { BlockSource } from './blocks.js';
import { JobList, ChunkPool, type RecordOrder } from './job-list.js';
import { UniqueIndex } from './unique-index.js';
import {
  JobRecords,
  PAGE_SHIFT,
  PAGE_MASK,
  REC_WORDS,
  F_CTIME,
  F_ETIME,
  F_QTIME,
  W_DELAY,
  W_RETRY,
  W_COUNTS,
  W_FLAGS,
  W_STATE,
  W_GEN,
  W_SEQ,
  W_BODY,
  W_ID,
  QUEUE_MASK,
  FLAGS_SHIFT,
  NODES_MASK,
  STATE_SHIFT,
  REPL_MASK,
  CSEQ_MASK,
  LEN_SHIFT,
  GEN_HIGH_SHIFT,
} from './records.js';

const EMPTY = Buffer.alloc(0);
const ID_SCRATCH = Buffer.alloc(JOB_ID_LEN);

export class JobTable implements JobStoreInternals {
  readonly records: JobRecords;
  readonly arena: ByteArena;
  readonly queueNames = new QueueNames();
  readonly nodeLists = new NodeLists();
  private readonly index: JobIndex;
  /** Confirmations of jobs being replicated or collected, by record. */
  private readonly confirmations = new Map<number, Set<string>>();
  /** Jobs by state (wait-repl, active, queued, acked). */
  private readonly stateCounts = [0, 0, 0, 0];
  /** Keys of jobs added with UNIQUE (see unique-index.ts). */
  readonly unique: UniqueIndex;
  /**
   * Scheduled jobs by queue name id: jobs this node will queue for the
   * first time at their qtime (ADDJOB DELAY, NACK DELAY), ordered by that
   * time. A job is in its list exactly while isScheduled holds; the Job
   * setters of state, flags and qtime keep it so (see leaveScheduled).
   */
  private readonly scheduled: (JobList | undefined)[] = [];
  /** Chunks of the scheduled lists (counted in used_memory). */
  readonly scheduledChunks = new ChunkPool();

  // The ID being looked up: packed into keyWords, or kept raw.
  private readonly keyBytes = new Uint8Array(PACKED_ID_LEN);
  private readonly keyWords = new Uint32Array(this.keyBytes.buffer);
  private rawKey = '';
  // The last find that missed: its ID and key hash. A lookup followed by an
  // insert of the same ID (a replica's REPLJOB, every job of a load) packs
  // and hashes the ID once, not twice.
  private missId = '';
  private missHash = 0;

  /** `scheduledAt`: when the store's schedule next looks at the record (Job.awake). */
  constructor(
    blocks: BlockSource,
    private readonly scheduledAt: (rec: number) => number,
  ) {
    this.records = new JobRecords(blocks);
    this.arena = new ByteArena(blocks);
    this.index = new JobIndex(this.records, (rec) => this.hashOfRecord(rec));
    this.unique = new UniqueIndex(this.arena, (rec) => this.queueNames.name(this.queueIdOf(rec)));
  }

  get size(): number {
    return this.index.size;
  }

  /** Jobs in each state: wait-repl, active, queued, acked. */
  get byState(): readonly number[] {
    return this.stateCounts;
  }

  /** Bytes of the ID index's tables. */
  get indexBytes(): number {
    return this.index.allocatedBytes;
  }

  /**
   * Looks an ID up: the record number, or 0. Leaves the key (packed words,
   * or rawKey for an ID that does not pack) for insert.
   */
  find(id: string): number {
    this.missId = '';
    if (id.length !== JOB_ID_LEN) return 0;
    const packed = packJobId(id, this.keyBytes, 0);
    this.rawKey = packed ? '' : id;
    const h = this.keyHash(packed);
    const rec = this.index.find(h, packed ? this.matchesPacked : this.matchesRaw);
    if (rec === 0) {
      this.missId = id;
      this.missHash = h;
    }
    return rec;
  }

  /**
   * Stores the job's fields in a new record and indexes it; 0 when a job
   * with the same ID is here already. `fresh`: the ID is the one
   * generateJobId just made (ADDJOB), taken packed as it was made and not
   * looked up: 144 random bits do not repeat.
   */
  insert(fields: JobFields, fresh: boolean): number {
    const id = fields.id;
    let h: number;
    if (fresh && id === generatedId) {
      this.keyBytes.set(generatedPacked);
      this.rawKey = '';
      this.missId = '';
      h = this.keyHash(true);
    } else if (id === this.missId || this.find(id) === 0) {
      h = this.missHash;
      this.missId = '';
    } else {
      return 0;
    }
    const packed = this.rawKey === '';
    const rec = this.records.alloc();
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const f = this.records.f64[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const fo = o >> 1;
    f[fo + F_CTIME] = fields.ctime;
    f[fo + F_ETIME] = fields.etime;
    f[fo + F_QTIME] = fields.qtime;
    u[o + W_DELAY] = fields.delay;
    u[o + W_RETRY] = fields.retry;
    u[o + W_COUNTS] = (fields.nacks & 0xffff) | ((fields.deliveries & 0xffff) << 16);
    let flags = (fields.flags & ~JOB_INTERNAL_FLAGS) | JOB_FLAG_REGISTERED;
    if (!packed) flags |= JOB_FLAG_RAW_ID;
    const queueId = fields.queue === null ? 0 : this.queueNames.acquire(fields.queue);
    // The state word keeps the generation's high bits (see records.ts).
    u[o + W_STATE] = (u[o + W_STATE]! & (3 << GEN_HIGH_SHIFT)) | this.nodeLists.acquire(fields.delivered) | ((fields.state & 3) << STATE_SHIFT);
    u[o + W_GEN] = (u[o + W_GEN]! & ~REPL_MASK) | (fields.repl & REPL_MASK);

    // ID (when it does not pack) and body bytes.
    const body = fields.body;
    const bodyLen = body === null ? 0 : body.length;
    const size = (packed ? 0 : JOB_ID_LEN) + bodyLen;
    let seq = Math.min(fields.cseq, CSEQ_MASK);
    if (size > 0) {
      const large = size > SMALL_MAX;
      if (large) flags |= JOB_FLAG_LARGE;
      else seq |= bodyLen << LEN_SHIFT;
      const addr = this.arena.alloc(size);
      u[o + W_BODY] = addr;
      const mem = this.arena.bytes(addr, large);
      let at = this.arena.offset(addr, large);
      if (!packed) at += mem.latin1Write(id, at, JOB_ID_LEN);
      if (typeof body === 'string') mem.latin1Write(body, at, bodyLen);
      else if (body !== null) mem.set(body, at);
    }
    u[o + W_SEQ] = seq;
    if (packed) {
      const kw = this.keyWords;
      for (let i = 0; i < 6; i++) u[o + W_ID + i] = kw[i]!;
    }
    u[o + W_FLAGS] = queueId | (flags << FLAGS_SHIFT);

    this.records.hashes[rec >>> PAGE_SHIFT]![rec & PAGE_MASK] = h;
    this.index.add(rec, h);
    if (fields.confirmed !== null) this.confirmations.set(rec, fields.confirmed);
    this.stateCounts[fields.state & 3]!++;
    // An acked job holds no key: a new job may take it.
    if (fields.unique !== undefined && fields.unique !== null && fields.queue !== null && fields.state !== JobState.Acked) {
      this.unique.add(rec, fields.queue, fields.unique);
    }
    this.enterScheduled(rec);
    return rec;
  }

  /** Unindexes the record and frees it with its arena bytes, queue name and node list. */
  remove(rec: number): void {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    this.leaveScheduled(rec);
    this.unique.remove(rec);
    this.index.remove(rec, this.hashOfRecord(rec));
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    const size = this.storedSize(u, o, flags);
    if (size > 0) this.arena.free(u[o + W_BODY]!, size);
    this.queueNames.release(u[o + W_FLAGS]! & QUEUE_MASK);
    this.nodeLists.release(u[o + W_STATE]! & NODES_MASK);
    this.confirmations.delete(rec);
    this.stateCounts[(u[o + W_STATE]! >>> STATE_SHIFT) & 3]!--;
    this.records.free(rec);
  }

  /** A random job's record, 0 when none. */
  random(rng: () => number): number {
    return this.index.random(rng);
  }

  /** See JobStore.scanJobs. */
  scan(cursor: number, visit: (rec: number) => void, steps: () => boolean): number {
    return this.index.scan(cursor, visit, steps);
  }

  /** See JobStore.eachJob. */
  eachRecord(from: number, max: number, visit: (rec: number) => void): number {
    const end = this.records.end;
    let rec = from < 1 ? 1 : from;
    for (const stop = Math.min(end, rec + max); rec < stop; rec++) {
      const u = this.records.u32[rec >>> PAGE_SHIFT]!;
      if (u[(rec & PAGE_MASK) * REC_WORDS + W_FLAGS]! & (JOB_FLAG_REGISTERED << FLAGS_SHIFT)) visit(rec);
    }
    return rec >= end ? 0 : rec;
  }

  /** Moves the index's resize along for about `ms`. */
  rehashFor(ms: number): void {
    this.index.rehashFor(ms);
  }

  /** Order of jobs in a queue: creation time, then counter, then record number. */
  readonly order: RecordOrder = (a: number, b: number): number => {
    const fa = this.records.f64[a >>> PAGE_SHIFT]!;
    const fb = this.records.f64[b >>> PAGE_SHIFT]!;
    const oa = (a & PAGE_MASK) * REC_WORDS;
    const ob = (b & PAGE_MASK) * REC_WORDS;
    const d = fa[(oa >> 1) + F_CTIME]! - fb[(ob >> 1) + F_CTIME]!;
    if (d !== 0) return d;
    const ua = this.records.u32[a >>> PAGE_SHIFT]!;
    const ub = this.records.u32[b >>> PAGE_SHIFT]!;
    return (ua[oa + W_SEQ]! & CSEQ_MASK) - (ub[ob + W_SEQ]! & CSEQ_MASK) || a - b;
  };

  // ------------------------------------------------- what Job handles read

  /** A job's creation time (clock ms), without a handle. */
  ctimeOf(rec: number): number {
    return this.records.f64[rec >>> PAGE_SHIFT]![(((rec & PAGE_MASK) * REC_WORDS) >> 1) + F_CTIME]!;
  }

  idOf(rec: number): string {
    this.copyId(rec, ID_SCRATCH, 0);
    return ID_SCRATCH.latin1Slice(0, JOB_ID_LEN);
  }

  copyId(rec: number, target: Uint8Array, at: number): void {
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (flags & JOB_FLAG_RAW_ID) {
      const large = (flags & JOB_FLAG_LARGE) !== 0;
      const addr = u[o + W_BODY]!;
      const from = this.arena.offset(addr, large);
      const mem = this.arena.bytes(addr, large);
      for (let i = 0; i < JOB_ID_LEN; i++) target[at + i] = mem[from + i]!;
      return;
    }
    unpackJobId(this.records.u8[page]!, (o + W_ID) * 4, target, at);
  }

  stateChanged(from: number, to: number): void {
    this.stateCounts[from]!--;
    this.stateCounts[to]!++;
  }

  awakeOf(rec: number): number {
    return this.scheduledAt(rec);
  }

  bodyLengthOf(rec: number): number {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (!(flags & JOB_FLAG_LARGE)) return u[o + W_SEQ]! >>> LEN_SHIFT;
    return this.arena.bytes(u[o + W_BODY]!, true).length - (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  bodyBytesOf(rec: number): Buffer {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const addr = u[o + W_BODY]!;
    if (addr === 0) return EMPTY;
    return this.arena.bytes(addr, ((u[o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_LARGE) !== 0);
  }

  bodyOffsetOf(rec: number): number {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const addr = u[o + W_BODY]!;
    if (addr === 0) return 0;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    return this.arena.offset(addr, (flags & JOB_FLAG_LARGE) !== 0) + (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  setNodes(rec: number, list: NodeIdList): void {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const w = u[o + W_STATE]!;
    u[o + W_STATE] = (w & ~NODES_MASK) | this.nodeLists.acquire(list);
    this.nodeLists.release(w & NODES_MASK);
  }

  addNode(rec: number, node: string): void {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const w = u[o + W_STATE]!;
    u[o + W_STATE] = (w & ~NODES_MASK) | this.nodeLists.acquireWithNode(w & NODES_MASK, node);
    this.nodeLists.release(w & NODES_MASK);
  }

  confirmedOf(rec: number): Set<string> | null {
    return this.confirmations.get(rec) ?? null;
  }

  setConfirmed(rec: number, s: Set<string> | null): void {
    if (s === null) this.confirmations.delete(rec);
    else this.confirmations.set(rec, s);
  }

  uniqueKeyOf(rec: number): string | null {
    return this.unique.keyOf(rec);
  }

  // ------------------------------------------------------- scheduled jobs

  private queueIdOf(rec: number): number {
    return this.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_FLAGS]! & QUEUE_MASK;
  }

  /**
   * The job waits here to be queued for the first time at its qtime: active,
   * never queued by this node (or NACKed with a DELAY, which queues it again
   * as new), with a queue time. Copies replicated from other nodes are
   * queued-before (JOB_FLAG_BCAST_QUEUED): their qtime is a retry, not a schedule.
   */
  private isScheduled(u: Uint32Array, o: number, f: Float64Array): boolean {
    const w = u[o + W_FLAGS]!;
    return (
      ((w >>> FLAGS_SHIFT) & (JOB_FLAG_REGISTERED | JOB_FLAG_BCAST_QUEUED)) === JOB_FLAG_REGISTERED &&
      (w & QUEUE_MASK) !== 0 &&
      ((u[o + W_STATE]! >>> STATE_SHIFT) & 3) === JobState.Active &&
      f[(o >> 1) + F_QTIME] !== NEVER
    );
  }

  /** Before a change of state, flags or qtime: out of its scheduled list if in it. */
  leaveScheduled(rec: number): void {
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    if (!this.isScheduled(u, o, this.records.f64[page]!)) return;
    const qid = u[o + W_FLAGS]! & QUEUE_MASK;
    const list = this.scheduled[qid];
    if (list === undefined) return;
    list.remove(rec);
    if (list.size === 0) {
      list.clear();
      this.scheduled[qid] = undefined;
    }
  }

  /** After the change: into its queue's scheduled list if it is scheduled now. */
  enterScheduled(rec: number): void {
    const page = rec >>> PAGE_SHIFT;
    const u = this.records.u32[page]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    if (!this.isScheduled(u, o, this.records.f64[page]!)) return;
    const qid = u[o + W_FLAGS]! & QUEUE_MASK;
    (this.scheduled[qid] ??= new JobList(this.byQtime, this.scheduledChunks)).insert(rec);
  }

  /** Scheduled jobs of a queue (see isScheduled). */
  scheduledCount(queue: string): number {
    const id = this.queueNames.idOf(queue);
    return id === 0 ? 0 : (this.scheduled[id]?.size ?? 0);
  }

  /** Names of the queues with scheduled jobs, and how many each. */
  scheduledQueues(): [string, number][] {
    const out: [string, number][] = [];
    this.scheduled.forEach((list, id) => {
      const name = list === undefined ? null : this.queueNames.name(id);
      if (name !== null && list!.size > 0) out.push([name, list!.size]);
    });
    return out;
  }

  /** Up to `count` scheduled jobs of a queue from the `offset`-th, soonest first. */
  scheduledRange(queue: string, offset: number, count: number): number[] {
    const id = this.queueNames.idOf(queue);
    const list = id === 0 ? undefined : this.scheduled[id];
    return list === undefined ? [] : list.range(offset, count);
  }

  /** Order of a scheduled list: queue time, then record number. */
  private readonly byQtime: RecordOrder = (a: number, b: number): number => {
    const fa = this.records.f64[a >>> PAGE_SHIFT]!;
    const fb = this.records.f64[b >>> PAGE_SHIFT]!;
    const d = fa[(((a & PAGE_MASK) * REC_WORDS) >> 1) + F_QTIME]! - fb[(((b & PAGE_MASK) * REC_WORDS) >> 1) + F_QTIME]!;
    return d !== 0 ? d : a - b;
  };

  // ------------------------------------------------------------- internals

  /** Bytes of the job's arena allocation (0 when it has none). */
  private storedSize(u: Uint32Array, o: number, flags: number): number {
    const addr = u[o + W_BODY]!;
    if (addr === 0) return 0;
    if (flags & JOB_FLAG_LARGE) return this.arena.bytes(addr, true).length;
    return (u[o + W_SEQ]! >>> LEN_SHIFT) + (flags & JOB_FLAG_RAW_ID ? JOB_ID_LEN : 0);
  }

  private keyHash(packed: boolean): number {
    if (packed) return hashWords(this.keyWords, 0, 6);
    return hashBytes(this.rawKey, 0, JOB_ID_LEN);
  }

  private readonly matchesPacked = (rec: number): boolean => {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const kw = this.keyWords;
    return (
      u[o + W_ID + 1] === kw[1] &&
      u[o + W_ID + 2] === kw[2] &&
      u[o + W_ID + 3] === kw[3] &&
      u[o + W_ID + 4] === kw[4] &&
      u[o + W_ID + 5] === kw[5] &&
      u[o + W_ID] === kw[0] &&
      !((u[o + W_FLAGS]! >>> FLAGS_SHIFT) & JOB_FLAG_RAW_ID)
    );
  };

  private readonly matchesRaw = (rec: number): boolean => {
    const u = this.records.u32[rec >>> PAGE_SHIFT]!;
    const o = (rec & PAGE_MASK) * REC_WORDS;
    const flags = u[o + W_FLAGS]! >>> FLAGS_SHIFT;
    if (!(flags & JOB_FLAG_RAW_ID)) return false;
    const large = (flags & JOB_FLAG_LARGE) !== 0;
    const addr = u[o + W_BODY]!;
    const mem = this.arena.bytes(addr, large);
    const at = this.arena.offset(addr, large);
    const id = this.rawKey;
    for (let i = 0; i < JOB_ID_LEN; i++) if (mem[at + i] !== (id.charCodeAt(i) & 0xff)) return false;
    return true;
  };

  /**
   * The hash of a stored job's ID, as keyHash gave it when the job came in:
   * kept beside its record, so that moving jobs to a resized index does not
   * read and hash every ID again (a tenth of ADDJOB's CPU while a node fills).
   */
  private hashOfRecord(rec: number): number {
    return this.records.hashes[rec >>> PAGE_SHIFT]![rec & PAGE_MASK]!;
  }

}

