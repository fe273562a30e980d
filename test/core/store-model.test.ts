// A randomized model test of the job store: a seeded sequence of commands
// and clock ticks runs against the JobStore and against a plain-JS model of
// what the reference's README says each step does, and after each few steps
// every job, queue, counter and byte count must agree. Failures name the
// seed and the step, so they reproduce.
//
// Time is modelled exactly: with `random: () => 0.5` the re-queue and GC
// desynchronization is 0, and when processJobs runs at time T, a job
//   - is deleted if its expire time is <= T (whatever its state);
//   - else, if active with a re-queue time <= T, is queued again (an
//     additional delivery if it was queued here before), its next re-queue
//     time T + RETRY;
//   - else, if queued with a re-queue time <= T, keeps its place and gets
//     the re-queue time T + RETRY.
// (WILLQUEUE, sent 500 ms before, changes no state; it only makes the store
// look at the job earlier, which the model need not follow.)
import { describe, it, expect } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { JobStore } from '../../src/core/store.js';
import { Job, JobState, NEVER, JOB_FLAG_BCAST_QUEUED, JOB_FLAG_DELIVERED, newJobFields } from '../../src/core/job.js';
import { isValidJobId } from '../../src/core/job-id.js';
import { allocatedSize } from '../../src/core/arena.js';
import { JOB_RECORD_BYTES, REC_WORDS, W_NEXT, PAGE_SHIFT, PAGE_MASK } from '../../src/core/records.js';
import type { JobIndex } from '../../src/core/job-index.js';
import { prng } from '../helpers/prng.js';


const MY_ID = '0123abcd'.repeat(5);
const OTHER_NODES = ['1'.repeat(40), '2'.repeat(40), 'e'.repeat(40), 'f'.repeat(40)];
const HEX = '0123456789abcdef';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const QUEUES = ['q0', 'q1', 'jobs:high', '', 'caf\xe9'];
/** The store keeps a body in a buffer of its own from this size (with an unpacked ID) on. */
const SMALL_LIMIT = 16384;
const STATE_NAMES = ['wait-repl', 'active', 'queued', 'acked'];

interface ModelJob {
  id: string;
  raw: boolean;
  queue: string;
  body: string;
  state: number;
  nacks: number;
  deliveries: number;
  ctime: number;
  cseq: number;
  etime: number;
  retry: number;
  delay: number;
  qtime: number;
  repl: number;
  /** JOB_FLAG_DELIVERED: delivered by this node. */
  delivered: boolean;
  /** JOB_FLAG_BCAST_QUEUED: queued here before (a later queueing is an additional delivery). */
  queuedBefore: boolean;
  nodes: string[];
  /** The store's record number, the last tie-break of queue order. */
  rec: number;
}

interface Options {
  seed: number;
  steps: number;
  /** Jobs the test hovers around. */
  target: number;
  /** Also use bodies whose stored size is exactly at the small/large limit (and one either side). */
  boundarySizes: boolean;
  checkEvery: number;
  /** Weight of fetching from a queue (others: add 30 below target, tick 10, ...). */
  fetchWeight: number;
  /** Probability that a new job goes to queue q0. */
  q0: number;
  /** Only long TTLs (jobs leave by command, not by expiring): queues grow long. */
  longLived?: boolean;
  /** Weight of enqueueJob on a random job (8 by default). */
  enqueueWeight?: number;
  /** At the end, flushAll() with the jobs in place (else they are deleted one by one first). */
  flushWithJobs?: boolean;
}

class StoreModel {
  readonly rnd: () => number;
  readonly clock = new FakeClock();
  readonly store: JobStore;
  readonly jobs = new Map<string, ModelJob>();
  /** The same jobs, for picking one at random, and each one's place in it. */
  private readonly ids: string[] = [];
  private readonly idPos = new Map<string, number>();
  /** Queued jobs of each queue, in the store's order. */
  private readonly queued = new Map<string, ModelJob[]>(QUEUES.map((q) => [q, []]));
  /** IDs deleted (and their last handle), checked to stay gone. */
  readonly gone = new Map<string, Job>();
  /** Hook calls: QUEUED messages the store asked for. */
  queuedHooks = 0;
  expectedQueuedHooks = 0;
  step = 0;
  private sampling: (() => number) | null = null;
  private readonly pool: string;
  private bodyCount = 0;

  constructor(readonly opts: Options) {
    this.rnd = prng(opts.seed);
    // Re-queue times without desynchronization (0.5 -> 0 ms), except while
    // randomJob() samples, which must not draw the same number forever.
    this.store = new JobStore({
      clock: this.clock,
      myId: () => MY_ID,
      random: () => (this.sampling === null ? 0.5 : this.sampling()),
      hooks: { queued: () => void this.queuedHooks++ },
    });
    let pool = '';
    for (let i = 0; i < 4096; i++) pool += String.fromCharCode(Math.floor(this.rnd() * 256));
    while (pool.length < 80_000) pool += pool;
    this.pool = pool;
  }

  fail(msg: string): never {
    expect.fail(`seed ${this.opts.seed}, step ${this.step}: ${msg}`);
  }

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  // ------------------------------------------------------------ inputs

  canonicalId(): string {
    let s = 'D-';
    for (let i = 0; i < 8; i++) s += HEX[this.int(16)];
    s += '-';
    for (let i = 0; i < 24; i++) s += B64[this.int(64)];
    s += '-';
    for (let i = 0; i < 4; i++) s += HEX[this.int(16)];
    return s;
  }

  /** A new ID: mostly canonical; some that do not pack; some built to collide with a present one. */
  newId(): string {
    const r = this.rnd();
    const some = this.ids.length > 0 ? this.ids[this.int(this.ids.length)]! : this.canonicalId();
    let id: string;
    if (r < 0.7) id = this.canonicalId();
    else if (r < 0.76) id = 'D-' + 'ABCDEF01'.slice(0, 1 + this.int(8)).padEnd(8, '9') + this.canonicalId().slice(10); // uppercase hex
    else if (r < 0.8) id = this.canonicalId().slice(0, 20) + '!' + this.canonicalId().slice(21); // not base64
    else if (r < 0.83) id = this.canonicalId().slice(0, 36) + '\xff\x00zz'; // TTL not hex
    else if (r < 0.86) id = this.canonicalId().slice(0, 15) + '-' + this.canonicalId().slice(16); // a dash where base64 goes
    else if (r < 0.91) id = some.slice(0, 2) + some.slice(2, 10).toUpperCase().replace(/[0-9]/, 'A') + some.slice(10); // a twin of a present ID that does not pack
    else if (r < 0.96) id = some.slice(0, 27) + this.canonicalId().slice(27); // same start of the random part as a present ID
    else id = some.slice(0, 19) + '!' + this.canonicalId().slice(20, 36) + 'ZZZZ'; // same characters 11..18 as a present ID, not packed
    if (!isValidJobId(id)) this.fail(`bad generated ID ${JSON.stringify(id)}`);
    return id;
  }

  bodySize(): number {
    const r = this.rnd();
    if (r < 0.1) return 0;
    if (r < 0.45) return 1 + this.int(64);
    if (r < 0.7) return 65 + this.int(960);
    if (r < 0.85) return 1025 + this.int(3072);
    if (r < 0.95) return 4097 + this.int(SMALL_LIMIT - 4097 - 40);
    if (r < 0.98) return SMALL_LIMIT + 1 + this.int(60_000);
    // Near the limit: the ID (40 bytes when it does not pack) counts too.
    const near = this.opts.boundarySizes ? [SMALL_LIMIT - 41, SMALL_LIMIT - 40, SMALL_LIMIT - 39, SMALL_LIMIT - 1, SMALL_LIMIT, SMALL_LIMIT + 1] : [SMALL_LIMIT - 41, SMALL_LIMIT - 1, SMALL_LIMIT + 1];
    return this.pick(near);
  }

  /** A body of `n` latin1 characters, distinct per job, any byte value. */
  body(n: number): string {
    const tag = `#${++this.bodyCount}#`;
    const off = this.int(40_000);
    if (n <= tag.length) return this.pool.slice(off, off + n);
    return tag + this.pool.slice(off, off + n - tag.length);
  }

  // ----------------------------------------------------- model bookkeeping

  /** The store's queue order: creation time, then counter, then record number. */
  static order(a: ModelJob, b: ModelJob): number {
    return a.ctime - b.ctime || a.cseq - b.cseq || a.rec - b.rec;
  }

  /** Index of `m` (or where it goes) in its queue's sorted list. */
  private queuePos(list: ModelJob[], m: ModelJob): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (StoreModel.order(list[mid]!, m) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  setState(m: ModelJob, state: number): void {
    const list = this.queued.get(m.queue)!;
    if (m.state === JobState.Queued && state !== JobState.Queued) {
      const i = this.queuePos(list, m);
      if (list[i] !== m) this.fail(`model: ${m.id} is not in its queue`);
      list.splice(i, 1);
    } else if (m.state !== JobState.Queued && state === JobState.Queued) {
      list.splice(this.queuePos(list, m), 0, m);
    }
    m.state = state;
  }

  addModel(m: ModelJob): void {
    this.jobs.set(m.id, m);
    this.idPos.set(m.id, this.ids.length);
    this.ids.push(m.id);
  }

  deleteModel(m: ModelJob): void {
    this.setState(m, JobState.Active);
    this.jobs.delete(m.id);
    const i = this.idPos.get(m.id)!;
    const last = this.ids.pop()!;
    if (last !== m.id) {
      this.ids[i] = last;
      this.idPos.set(last, i);
    }
    this.idPos.delete(m.id);
  }

  storedSize(j: ModelJob): number {
    return (j.raw ? 40 : 0) + j.body.length;
  }

  // ----------------------------------------------------------- commands

  addJob(): void {
    const T = this.clock.now();
    const id = this.newId();
    const fields = newJobFields(id, JobState.WaitRepl, this.store.selfOnly());
    const existing = this.jobs.get(id);
    const queue = this.rnd() < this.opts.q0 ? QUEUES[0]! : this.pick(QUEUES);
    const body = this.body(this.bodySize());
    fields.queue = queue;
    fields.body = this.rnd() < 0.2 ? Buffer.from(body, 'latin1') : body;
    const ttl = this.opts.longLived ? this.pick([3600, 86400]) : this.pick([2, 10, 60, 600, 3600, 86400]);
    const retry = this.opts.longLived ? this.pick([0, 5, 60, 600]) : this.pick([0, 1, 1, 2, 3, 5, 60]);
    // Long-lived: many jobs wait (DELAY 10 minutes) and get queued later by a
    // command, in the middle of full chunks of a long queue.
    const delay = this.opts.longLived ? (this.rnd() < 0.4 ? 600 : 0) : this.rnd() < 0.25 ? 1 + this.int(Math.min(ttl, 4)) : 0;
    const imported = this.rnd() < 0.1;
    if (imported) {
      // As a replica gets it: another node's times and counters and nodes.
      fields.ctime = T - this.int(3000);
      fields.cseq = this.int(3);
      fields.nacks = this.int(70_000) & 0xffff;
      fields.deliveries = this.int(5);
      fields.repl = 1 + this.int(5);
      fields.delivered = [OTHER_NODES[0]!, MY_ID];
      if (this.rnd() < 0.3) fields.flags |= JOB_FLAG_DELIVERED;
      if (this.rnd() < 0.3) fields.flags |= JOB_FLAG_BCAST_QUEUED;
    } else {
      this.store.nextCtime(fields);
    }
    fields.etime = T + ttl * 1000;
    fields.retry = retry;
    fields.delay = delay;
    fields.qtime = delay ? T + delay * 1000 : T + retry * 1000;
    const job = this.store.addJob(fields);
    if (existing !== undefined) {
      if (job !== null) this.fail(`addJob of the present ID ${JSON.stringify(id)} did not return null`);
      return;
    }
    if (job === null) this.fail(`addJob of the new ID ${JSON.stringify(id)} returned null`);
    const m: ModelJob = {
      id,
      raw: !/^D-[0-9a-f]{8}-[A-Za-z0-9+/]{24}-[0-9a-f]{4}$/.test(id),
      queue,
      body,
      state: JobState.WaitRepl,
      nacks: fields.nacks,
      deliveries: fields.deliveries,
      ctime: fields.ctime,
      cseq: fields.cseq,
      etime: fields.etime,
      retry,
      delay,
      qtime: fields.qtime,
      repl: fields.repl,
      delivered: (fields.flags & JOB_FLAG_DELIVERED) !== 0,
      queuedBefore: (fields.flags & JOB_FLAG_BCAST_QUEUED) !== 0,
      nodes: [...fields.delivered],
      rec: job.rec,
    };
    this.addModel(m);
    const r = this.rnd();
    if (delay === 0 && r < 0.85) {
      // ADDJOB without DELAY, once replicated: queued at once.
      this.enqueue(m, job, false);
    } else if (r < 0.95) {
      // Replicated, waiting for DELAY (or a replica: it queues the job if
      // the owner does not ack it in time).
      job.state = JobState.Active;
      this.setState(m, JobState.Active);
      this.store.updateAwakeTime(job);
    } // else: still waiting for replication.
  }

  /** store.enqueueJob on the job, and what the model expects of it. */
  enqueue(m: ModelJob, job: Job, nack: boolean): void {
    const T = this.clock.now();
    const ok = !(m.state === JobState.Queued || m.qtime === NEVER || (m.retry === 0 && m.delivered));
    const got = this.store.enqueueJob(job, nack);
    if (got !== ok) this.fail(`enqueueJob(${m.id}, nack=${nack}) returned ${got}, expected ${ok} (${STATE_NAMES[m.state]})`);
    if (!ok) return;
    this.setState(m, JobState.Queued);
    m.qtime = m.retry ? T + m.retry * 1000 : NEVER;
    if (m.queuedBefore || nack) {
      if (nack) m.nacks = (m.nacks + 1) & 0xffff;
      else m.deliveries = (m.deliveries + 1) & 0xffff;
      this.expectedQueuedHooks++;
    } else {
      m.queuedBefore = true;
    }
  }

  randomJob(): [ModelJob, Job] | null {
    if (this.ids.length === 0) return null;
    const m = this.jobs.get(this.ids[this.int(this.ids.length)]!)!;
    const job = this.store.lookupJob(m.id);
    if (job === undefined) this.fail(`lookupJob(${JSON.stringify(m.id)}) found nothing`);
    return [m, job];
  }

  queuedIn(queue: string): ModelJob[] {
    return this.queued.get(queue)!;
  }

  fetch(): void {
    const queue = this.pick(QUEUES);
    const expected = this.queuedIn(queue)[0];
    const q = this.store.lookupQueue(queue);
    if (q === undefined) {
      if (expected !== undefined) this.fail(`queue ${JSON.stringify(queue)} is missing`);
      return;
    }
    const job = this.store.fetchJob(q);
    if (job?.id !== expected?.id) this.fail(`fetchJob(${JSON.stringify(queue)}) gave ${job?.id}, expected ${expected?.id}`);
    if (expected === undefined) return;
    this.setState(expected, JobState.Active);
    expected.delivered = true;
  }

  remove(m: ModelJob, job: Job): void {
    if (!this.store.unregisterJob(job)) this.fail(`unregisterJob(${m.id}) returned false`);
    if (job.registered) this.fail(`a handle of ${m.id} is still registered after unregisterJob`);
    if (this.store.unregisterJob(job)) this.fail(`a second unregisterJob(${m.id}) returned true`);
    this.deleteModel(m);
    this.gone.set(m.id, job);
  }

  /** Advances the clock and runs the schedule, in the store and in the model. */
  tick(): void {
    const r = this.rnd();
    const dt = r < 0.6 ? 1 + this.int(50) : r < 0.9 ? 300 + this.int(400) : 1000 + this.int(3000);
    this.clock.advance(dt);
    const T = this.clock.now();
    // Handles of jobs about to expire, to check they go stale.
    const expiring: [string, Job][] = [];
    for (const m of this.jobs.values()) if (m.etime <= T) expiring.push([m.id, this.store.lookupJob(m.id)!]);
    this.store.processJobs(100_000);
    for (const m of [...this.jobs.values()]) {
      if (m.etime <= T) {
        this.deleteModel(m);
      } else if (m.state === JobState.Active && m.qtime !== NEVER && m.qtime <= T) {
        const ok = !(m.retry === 0 && m.delivered);
        if (ok) {
          this.setState(m, JobState.Queued);
          m.qtime = m.retry ? T + m.retry * 1000 : NEVER;
          if (m.queuedBefore) {
            m.deliveries = (m.deliveries + 1) & 0xffff;
            this.expectedQueuedHooks++;
          } else {
            m.queuedBefore = true;
          }
        }
      } else if (m.state === JobState.Queued && m.qtime !== NEVER && m.qtime <= T && m.retry) {
        m.qtime = T + m.retry * 1000;
      }
    }
    for (const [id, job] of expiring) {
      if (job.registered) this.fail(`job ${id} expired at ${T} but its handle is still registered`);
      this.gone.set(id, job);
    }
  }

  /** One random step, chosen by weight. */
  run(): void {
    const n = this.jobs.size;
    const target = this.opts.target;
    const weights: [number, () => void][] = [
      [n > target * 1.3 ? 0 : n < target ? 30 : 6, () => this.addJob()],
      [this.opts.fetchWeight, () => this.fetch()],
      [10, () => this.tick()],
      [this.opts.enqueueWeight ?? 8, () => this.withJob((m, job) => m.state !== JobState.Acked && this.enqueue(m, job, this.rnd() < 0.5))], // callers never re-queue acked jobs
      [4, () => this.withJob((m, job) => this.dequeue(m, job))],
      [5, () => this.withJob((m, job) => this.acknowledge(m, job))],
      [n > target * 1.3 ? 30 : 5, () => this.withJob((m, job) => this.remove(m, job))],
      [4, () => this.withJob((m, job) => this.addNode(m, job))],
      [2, () => this.withJob((m, job) => this.setNodes(m, job))],
      [3, () => this.lookupMissing()],
      [2, () => this.sample()],
    ];
    let total = 0;
    for (const [w] of weights) total += w;
    let r = this.rnd() * total;
    for (const [w, op] of weights) {
      if (r < w) return op();
      r -= w;
    }
  }

  withJob(op: (m: ModelJob, job: Job) => void): void {
    const pair = this.randomJob();
    if (pair === null) return this.addJob();
    op(pair[0], pair[1]);
  }

  dequeue(m: ModelJob, job: Job): void {
    const ok = m.state === JobState.Queued;
    if (this.store.dequeueJob(job) !== ok) this.fail(`dequeueJob(${m.id}) did not return ${ok}`);
    if (ok) this.setState(m, JobState.Active);
  }

  acknowledge(m: ModelJob, job: Job): void {
    this.store.acknowledgeJob(job);
    this.setState(m, JobState.Acked);
  }

  addNode(m: ModelJob, job: Job): void {
    const node = this.pick([...OTHER_NODES, MY_ID]);
    job.addDelivered(node);
    if (!m.nodes.includes(node)) m.nodes.push(node);
  }

  setNodes(m: ModelJob, job: Job): void {
    const list = OTHER_NODES.slice(0, 1 + this.int(OTHER_NODES.length));
    job.delivered = list;
    m.nodes = [...list];
  }

  /** An ID never added, or one deleted: not found. */
  lookupMissing(): void {
    const gone = [...this.gone.keys()];
    const id = this.rnd() < 0.5 || gone.length === 0 ? this.canonicalId() : gone[this.int(gone.length)]!;
    if (!this.jobs.has(id) && this.store.lookupJob(id) !== undefined) this.fail(`lookupJob(${JSON.stringify(id)}) found a job not in the model`);
  }

  /** Random jobs, as eviction samples them: only present ones. */
  sample(): void {
    this.sampling = prng(this.int(1 << 30));
    try {
      for (let i = 0; i < 20; i++) {
        const j = this.store.randomJob();
        if (this.jobs.size === 0) {
          if (j !== undefined) this.fail(`randomJob() gave ${j.id} from an empty store`);
          return;
        }
        if (j === undefined || !this.jobs.has(j.id)) this.fail(`randomJob() gave ${j?.id}, not a present job`);
      }
    } finally {
      this.sampling = null;
    }
  }

  // ------------------------------------------------------------- checks

  check(full: boolean): void {
    const s = this.store;
    if (s.jobCount !== this.jobs.size) this.fail(`jobCount ${s.jobCount}, model ${this.jobs.size}`);
    if (s.records.live !== this.jobs.size) this.fail(`records.live ${s.records.live}, model ${this.jobs.size}`);
    const byState = [0, 0, 0, 0];
    let used = 0;
    let requested = 0;
    const queues = new Set<string>();
    const lists = new Set<string>();
    let queuedTotal = 0;
    for (const list of this.queued.values()) queuedTotal += list.length;
    for (const m of this.jobs.values()) {
      byState[m.state]!++;
      const size = this.storedSize(m);
      if (size > 0) {
        used += allocatedSize(size);
        requested += size;
      }
      queues.add(m.queue);
      lists.add(m.nodes.join(','));
    }
    if (queuedTotal !== byState[JobState.Queued]) this.fail(`model: ${queuedTotal} jobs in queues, ${byState[JobState.Queued]} queued`);
    const got = [...s.jobsByState()];
    if (got.join() !== byState.join()) this.fail(`jobsByState ${got}, model ${byState}`);
    if (s.jobs.arena.usedBytes !== used) this.fail(`arena.usedBytes ${s.jobs.arena.usedBytes}, model ${used}`);
    if (s.jobs.arena.requestedBytes !== requested) this.fail(`arena.requestedBytes ${s.jobs.arena.requestedBytes}, model ${requested}`);
    const mem = s.memory();
    if (mem.records !== this.jobs.size * JOB_RECORD_BYTES) this.fail(`memory().records ${mem.records}`);
    // Every job is in the schedule, once.
    if (mem.schedule !== this.jobs.size * 8) this.fail(`memory().schedule ${mem.schedule} for ${this.jobs.size} jobs`);
    if (s.jobs.queueNames.size !== queues.size) this.fail(`${s.jobs.queueNames.size} queue names interned, ${queues.size} in use`);
    if (s.jobs.nodeLists.size !== lists.size) this.fail(`${s.jobs.nodeLists.size} node lists interned, ${lists.size} in use`);
    if (this.queuedHooks !== this.expectedQueuedHooks) this.fail(`${this.queuedHooks} QUEUED hooks, model ${this.expectedQueuedHooks}`);

    // Queues: length and order.
    for (const name of QUEUES) {
      const expected = this.queuedIn(name);
      const q = s.lookupQueue(name);
      const len = q?.length ?? 0;
      if (len !== expected.length) this.fail(`queue ${JSON.stringify(name)} has ${len} jobs, model ${expected.length}`);
      if (q === undefined) continue;
      const n = full ? expected.length : Math.min(expected.length, 20);
      const ids = s.peekJobs(q, n, false).map((j) => j.id);
      for (let i = 0; i < n; i++) {
        if (ids[i] !== expected[i]!.id) this.fail(`queue ${JSON.stringify(name)} position ${i}: ${ids[i]}, model ${expected[i]!.id}`);
      }
      const newest = s.peekJobs(q, 3, true).map((j) => j.id);
      const modelNewest = expected.slice(-3).reverse().map((m) => m.id);
      if (newest.join() !== modelNewest.join()) this.fail(`queue ${JSON.stringify(name)} newest ${newest}, model ${modelNewest}`);
    }

    if (!full) return;
    // Every job, field by field.
    for (const m of this.jobs.values()) {
      const j = s.lookupJob(m.id);
      if (j === undefined) this.fail(`lookupJob(${JSON.stringify(m.id)}) found nothing`);
      const fresh = new Job(s.jobs, j.rec); // a handle without the looked-up ID string: reads the stored one
      const pairs: [string, unknown, unknown][] = [
        ['id', fresh.id, m.id],
        ['registered', j.registered, true],
        ['rec', j.rec, m.rec],
        ['queue', j.queue, m.queue],
        ['bodyLength', j.bodyLength, m.body.length],
        ['state', STATE_NAMES[j.state], STATE_NAMES[m.state]],
        ['nacks', j.nacks, m.nacks],
        ['deliveries', j.deliveries, m.deliveries],
        ['ctime', j.ctime, m.ctime],
        ['cseq', j.cseq, m.cseq],
        ['etime', j.etime, m.etime],
        ['retry', j.retry, m.retry],
        ['delay', j.delay, m.delay],
        ['qtime', j.qtime, m.qtime],
        ['repl', j.repl, m.repl],
        ['delivered flag', (j.flags & JOB_FLAG_DELIVERED) !== 0, m.delivered],
        ['nodes', j.delivered.join(','), m.nodes.join(',')],
      ];
      for (const [what, a, b] of pairs) if (a !== b) this.fail(`job ${JSON.stringify(m.id)}: ${what} is ${String(a)}, model ${String(b)}`);
      if (j.body !== m.body) this.fail(`job ${JSON.stringify(m.id)}: body differs (${m.body.length} bytes)`);
      const bytes = j.bodyBytes();
      const at = j.bodyOffset();
      if (bytes.latin1Slice(at, at + m.body.length) !== m.body) this.fail(`job ${JSON.stringify(m.id)}: bodyBytes differ`);
    }
    for (const [id, handle] of this.gone) {
      if (this.jobs.has(id)) continue; // added again since
      if (s.lookupJob(id) !== undefined) this.fail(`deleted job ${JSON.stringify(id)} is still found`);
      if (handle.registered) this.fail(`a handle of deleted job ${JSON.stringify(id)} is registered`);
    }
    // Iteration: every job once.
    const seen = new Set<string>();
    for (let from = 1; from !== 0; ) from = s.eachJob(from, 1000, (j) => seen.add(j.id));
    if (seen.size !== this.jobs.size || [...this.jobs.keys()].some((id) => !seen.has(id))) this.fail(`eachJob saw ${seen.size} jobs, model ${this.jobs.size}`);
    const scanned = new Set<string>();
    let cursor = 0;
    do cursor = s.scanJobs(cursor, (j) => scanned.add(j.id), () => true);
    while (cursor !== 0);
    if (scanned.size !== this.jobs.size || [...this.jobs.keys()].some((id) => !scanned.has(id))) this.fail(`scanJobs saw ${scanned.size} jobs, model ${this.jobs.size}`);
  }

  runAll(): void {
    const baseline = this.store.usedMemory;
    for (this.step = 0; this.step < this.opts.steps; this.step++) {
      try {
        this.run();
      } catch (e) {
        if (e instanceof Error && e.message.startsWith(`seed ${this.opts.seed},`)) throw e;
        this.fail(`the store threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
      if (this.step % this.opts.checkEvery === 0) this.check(this.step % (this.opts.checkEvery * 10) === 0);
    }
    this.check(true);
    const s = this.store;
    if (this.opts.flushWithJobs) {
      // DEBUG FLUSHALL with the jobs in place.
      const handles = [...this.jobs.values()].map((m) => [m, s.lookupJob(m.id)!] as const);
      s.flushAll();
      for (const [m, job] of handles) {
        if (job.registered) this.fail(`job ${m.id} still registered after flushAll`);
        this.deleteModel(m);
        this.gone.set(m.id, job);
      }
    } else {
      // Everything the model still has, deleted one by one.
      for (const m of [...this.jobs.values()]) this.remove(m, s.lookupJob(m.id)!);
    }
    this.check(true);
    expect(s.records.live).toBe(0);
    expect(s.jobs.arena.usedBytes).toBe(0);
    expect(s.jobs.arena.requestedBytes).toBe(0);
    expect(s.jobs.queueNames.size).toBe(0);
    expect(s.jobs.nodeLists.size).toBe(0);
    expect([...s.jobsByState()]).toEqual([0, 0, 0, 0]);
    // The queues remain, empty; dropping them returns the store to its empty size.
    s.flushAll();
    expect(s.queueCount).toBe(0);
    s.backgroundWork(20); // finish a shrink of the index under way
    const mem = s.memory();
    expect(mem.records).toBe(0);
    expect(mem.arenaUsed).toBe(0);
    expect(mem.schedule).toBe(0);
    expect(mem.queues).toBe(0);
    expect(s.usedMemory, `seed ${this.opts.seed}: usedMemory after deleting everything`).toBe(baseline);
  }
}

describe('JobStore against a model', () => {
  for (const seed of [1, 2, 0xdecade]) {
    it(`agrees step by step (seed ${seed})`, () => {
      new StoreModel({ seed, steps: 4000, target: 1500, boundarySizes: false, checkEvery: 50, fetchWeight: 8, q0: 0.2, flushWithJobs: seed === 2 }).runAll();
    });
  }

  it('agrees with a long queue (several chunks) re-queued in the middle (seed 9)', () => {
    const m = new StoreModel({ seed: 9, steps: 7000, target: 3500, boundarySizes: false, checkEvery: 100, fetchWeight: 1, q0: 0.9, longLived: true, enqueueWeight: 12 });
    m.runAll();
  });

  it('keeps queue order when jobs are queued into the middle of full chunks (seed 12)', () => {
    // A queue keeps 1024 records per chunk; a job queued where a full chunk
    // is splits it. Jobs created in order, half of them left waiting, then
    // queued in random order, then taken out and put back at random.
    // (Job IDs vary in the first characters of their random part, the ones
    // the index hashes.)
    const rnd = prng(12);
    const clock = new FakeClock();
    const store = new JobStore({ clock, myId: () => MY_ID, random: () => 0.5 });
    const all: { id: string; ctime: number; cseq: number; rec: number }[] = [];
    const waiting: Job[] = [];
    let n = 0;
    for (let i = 0; i < 6000; i++) {
      if (rnd() < 0.3) clock.advance(1);
      const fields = newJobFields(`D-0123abcd-${String(++n).padStart(8, '0')}${'A'.repeat(16)}-0001`, JobState.Active, store.selfOnly());
      fields.queue = 'long';
      fields.body = `${i}`;
      store.nextCtime(fields);
      fields.etime = 1e9;
      fields.retry = 3600;
      fields.qtime = 1e8;
      const job = store.addJob(fields)!;
      all.push({ id: fields.id, ctime: fields.ctime, cseq: fields.cseq, rec: job.rec });
      if (rnd() < 0.5) waiting.push(job);
      else expect(store.enqueueJob(job, false)).toBe(true);
    }
    const q = store.lookupQueue('long')!;
    const queued = new Set(all.map((j) => j.id));
    for (const j of waiting) queued.delete(j.id);
    const check = (what: string) => {
      const expected = all.filter((j) => queued.has(j.id)).map((j) => j.id);
      const got = store.peekJobs(q, expected.length + 1, false).map((j) => j.id);
      if (got.length !== expected.length) expect.fail(`${what}: ${got.length} jobs queued, expected ${expected.length}`);
      for (let i = 0; i < expected.length; i++) if (got[i] !== expected[i]) expect.fail(`${what}: position ${i} is ${got[i]}, expected ${expected[i]}`);
    };
    check('in creation order');
    for (let i = waiting.length - 1; i > 0; i--) {
      const k = Math.floor(rnd() * (i + 1));
      [waiting[i], waiting[k]] = [waiting[k]!, waiting[i]!];
    }
    waiting.forEach((job, i) => {
      expect(store.enqueueJob(job, false)).toBe(true);
      queued.add(job.id);
      if (i % 600 === 0) check(`after queueing ${i + 1} waiting jobs`);
    });
    check('after queueing every waiting job');
    for (let round = 0; round < 20; round++) {
      // Take out a run of random jobs, then put them back in another order.
      const out: Job[] = [];
      for (let i = 0; i < 60; i++) {
        const j = all[Math.floor(rnd() * all.length)]!;
        if (!queued.has(j.id)) continue;
        const job = store.lookupJob(j.id)!;
        expect(store.dequeueJob(job)).toBe(true);
        queued.delete(j.id);
        out.push(job);
      }
      check(`round ${round}, taken out`);
      out.reverse();
      for (const job of out) {
        expect(store.enqueueJob(job, true)).toBe(true);
        queued.add(job.id);
      }
      check(`round ${round}, put back`);
    }
    // Consumers get them all, oldest first.
    const expected = all.map((j) => j.id);
    for (let i = 0; i < expected.length; i++) if (store.fetchJob(q)?.id !== expected[i]) expect.fail(`fetch ${i} out of order`);
    expect(store.fetchJob(q)).toBeUndefined();
    expect(q.length).toBe(0);
  });

  // Bodies whose stored size (body, plus the ID when it does not pack) is
  // exactly the store's small/large limit: see the minimal test below.
  for (const seed of [5, 6]) {
    it(`agrees with bodies at the small/large limit (seed ${seed})`, () => {
      new StoreModel({ seed, steps: 3000, target: 500, boundarySizes: true, checkEvery: 50, fetchWeight: 8, q0: 0.2 }).runAll();
    });
  }
});

describe('JobStore body sizes at the small/large limit', () => {
  const mk = () => new JobStore({ clock: new FakeClock(), myId: () => MY_ID, random: () => 0.5 });
  const packedId = 'D-0123abcd-ABCDEFGHIJKLMNOPQRSTUVWX-0001';
  const rawId = 'D-0123ABCD-ABCDEFGHIJKLMNOPQRSTUVWX-0001';

  // The store calls a stored size >= LARGE_BODY (16384, records.ts) large,
  // but the arena serves sizes up to SMALL_MAX (16384, arena.ts) from slabs:
  // at exactly 16384 bytes the store asks arena.bytes(addr, true) for a
  // small address, gets undefined and throws, leaving the record, the
  // arena bytes and the queue name taken.
  for (const [what, id, len] of [
    ['packed ID', packedId, 16384],
    ['unpacked ID', rawId, 16384 - 40],
  ] as const) {
    it(`stores a ${len}-byte body with a ${what} (${len + (id === rawId ? 40 : 0)} bytes in the arena)`, () => {
      const store = mk();
      for (const n of [len - 1, len, len + 1]) {
        const fields = newJobFields(id.slice(0, 30) + String(n).padStart(5, '0') + id.slice(35), JobState.Active, store.selfOnly());
        fields.queue = 'q';
        fields.body = 'b'.repeat(n - 1) + 'z';
        fields.etime = 60_000;
        fields.retry = 1;
        fields.qtime = 1000;
        let job: Job | null;
        try {
          job = store.addJob(fields);
        } catch (e) {
          expect.fail(`addJob with a ${n}-byte body threw ${String(e)}`);
        }
        expect(job!.bodyLength).toBe(n);
        expect(job!.body).toBe(fields.body);
        expect(store.lookupJob(fields.id)!.body).toBe(fields.body);
      }
      expect(store.records.live).toBe(3);
      for (let from = 1; from !== 0; ) from = store.eachJob(from, 100, (j) => store.unregisterJob(j));
      expect(store.records.live).toBe(0);
      expect(store.jobs.arena.usedBytes).toBe(0);
      expect(store.jobs.queueNames.size).toBe(0);
    });
  }
});

describe('JobStore index under chosen IDs', () => {
  /** The longest chain of the store's ID index (read from its tables). */
  function longestChain(store: JobStore): number {
    const idx = (store.jobs as unknown as { index: JobIndex }).index as unknown as { t0: Uint32Array; t1: Uint32Array | null };
    let longest = 0;
    for (const t of idx.t1 === null ? [idx.t0] : [idx.t0, idx.t1]) {
      for (let b = 0; b < t.length; b++) {
        let n = 0;
        for (let rec = t[b]!; rec !== 0; rec = store.records.u32[rec >>> PAGE_SHIFT]![(rec & PAGE_MASK) * REC_WORDS + W_NEXT]!) n++;
        if (n > longest) longest = n;
      }
    }
    return longest;
  }

  /** `n` in 8 base64 characters. */
  const b64 = (n: number) => {
    let s = '';
    for (let i = 0; i < 8; i++, n = Math.floor(n / 64)) s = B64[n % 64]! + s;
    return s;
  };

  // IDs that agree on most of their characters must still spread: clients
  // choose IDs (ACKJOB of an unknown at-least-once ID, odd TTL field,
  // registers a dummy ack under it in a cluster of several nodes), and a
  // hash of only part of the ID would put all of these in one chain, making
  // each lookup a walk (the index hashes the whole ID with a keyed hash).
  for (const [what, make] of [
    ['canonical IDs differing only in the last 8 characters of their random part', (i: number) => `D-0123abcd-${'A'.repeat(16)}${b64(i)}-0001`],
    ['unpacked IDs differing only after character 18', (i: number) => `D-0123ABCD-${'A'.repeat(8)}${b64(i)}${'A'.repeat(8)}-0001`],
  ] as const) {
    it(`spreads ${what} over the table`, () => {
      const clock = new FakeClock();
      const store = new JobStore({ clock, myId: () => MY_ID, random: () => 0.5 });
      for (let i = 0; i < 600; i++) {
        // A dummy ack, as ACKJOB registers it.
        const fields = newJobFields(make(i), JobState.Acked, []);
        fields.etime = 3_600_000;
        expect(store.addJob(fields)).not.toBeNull();
      }
      expect(store.jobCount).toBe(600);
      // 600 IDs in at least 1024 buckets: a fair hash gives chains of a handful.
      expect(longestChain(store)).toBeLessThanOrEqual(32);
    });
  }
});

describe('Job handles', () => {
  const mk = () => {
    const clock = new FakeClock();
    return { clock, store: new JobStore({ clock, myId: () => MY_ID, random: () => 0.5 }) };
  };
  let n = 0;
  const add = (store: JobStore, body = 'x', ttl = 60) => {
    const fields = newJobFields(`D-0123abcd-${String(++n).padStart(8, '0')}${'B'.repeat(16)}-0001`, JobState.WaitRepl, store.selfOnly());
    fields.queue = 'q';
    fields.body = body;
    store.nextCtime(fields);
    fields.etime = store.clock.now() + ttl * 1000;
    fields.retry = 1;
    fields.qtime = store.clock.now() + 1000;
    const job = store.addJob(fields)!;
    store.enqueueJob(job, false);
    return job;
  };

  it('go stale on unregisterJob, and a new job in the same record does not revive them', () => {
    const { store } = mk();
    const keep = add(store, 'keep');
    const old = add(store, 'old');
    const oldId = old.id;
    expect(old.registered).toBe(true);
    expect(store.unregisterJob(old)).toBe(true);
    expect(old.registered).toBe(false);
    const fresh = add(store, 'new');
    expect(fresh.rec).toBe(old.rec); // the record was reused
    expect(fresh.gen).not.toBe(old.gen);
    expect(old.registered).toBe(false);
    expect(fresh.registered).toBe(true);
    // A stale handle cannot delete the job now in its record.
    expect(store.unregisterJob(old)).toBe(false);
    expect(store.lookupJob(fresh.id)?.rec).toBe(fresh.rec);
    expect(store.lookupJob(oldId)).toBeUndefined();
    expect(store.lookupQueue('q')!.length).toBe(2);
    expect(keep.registered).toBe(true);
  });

  it('go stale when the job expires and when everything is flushed', () => {
    const { clock, store } = mk();
    const a = add(store, 'a', 1);
    const b = add(store, 'b', 10);
    clock.advance(1000);
    store.processJobs();
    expect(a.registered).toBe(false);
    expect(b.registered).toBe(true);
    const c = add(store, 'c');
    expect(c.rec).toBe(a.rec);
    expect(a.registered).toBe(false);
    store.flushAll();
    expect(b.registered).toBe(false);
    expect(c.registered).toBe(false);
    const d = add(store, 'd');
    expect(b.registered || c.registered).toBe(false);
    expect(d.registered).toBe(true);
  });

  // The record generation has 16 bits (records.ts): a record freed and
  // reused 65536 times while an old handle is held makes that handle look
  // registered again, and it then reads (and can unregister) the new job.
  it('stay stale across 65,536 reuses of their record (the generation has 18 bits)', () => {
    const { store } = mk();
    const old = add(store, 'old');
    const rec = old.rec;
    store.unregisterJob(old);
    const fields = newJobFields('D-0123abcd-AAAAAAAAAAAAAAAAAAAAAAAA-0001', JobState.Active, store.selfOnly());
    fields.queue = 'q';
    fields.body = 'again';
    fields.etime = 60_000;
    for (let i = 0; i < 65_536; i++) {
      const job = store.addJob(fields)!;
      if (job.rec !== rec) expect.fail('the record was not reused');
      if (old.registered) expect.fail(`after ${i + 1} reuses of record ${rec}, a handle of the first job there is registered again (and reads the new job: body ${old.body})`);
      store.unregisterJob(job);
    }
  });
});
