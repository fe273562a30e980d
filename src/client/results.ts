// Task results. A caller that wants a result gives its call a key and the
// name of a reply queue private to this process; the worker ADDJOBs a small
// JSON reply there (`started`, then `result` or `error`) with the result's
// TTL. The caller's inbox reads that queue only while someone waits, so
// replies nobody waits for stay in the queue and expire with their TTL.
import { randomBytes } from 'node:crypto';
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import type { ReplyMessage, ReplyTo } from './envelope.js';
import { ClientClosedError, NoReplError, TaskFailedError, TaskRevokedError, TaskTimeoutError } from './errors.js';

/** The `result` option of enqueue(). */
export interface ResultOptions {
  /** Seconds the result (a job in the caller's reply queue) lives, and how long the handle can wait for it. Default 3600. */
  ttl?: number;
}

/** Options of `result()` and `started()`. */
export interface WaitOptions {
  /** Milliseconds to wait before TaskTimeoutError. Default: until the result's TTL ends. */
  timeout?: number;
}

/** What a handle does to its job on the server. */
export interface HandleControl {
  revoke(id: string): Promise<boolean>;
  reschedule(id: string, delay: number): Promise<string>;
  /** The stored progress record of job `id` (progress.ts). */
  progress(id: string): Promise<Progress | undefined>;
}

const DEFAULT_RESULT_TTL = 3600;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: Error): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  const d = { settled: false } as Deferred<T>;
  d.promise = new Promise<T>((resolve, reject) => {
    d.resolve = (v) => {
      if (d.settled) return;
      d.settled = true;
      resolve(v);
    };
    d.reject = (e) => {
      if (d.settled) return;
      d.settled = true;
      reject(e);
    };
  });
  d.promise.catch(() => {}); // rejections reach whoever awaits; none is unhandled
  return d;
}

/** The latest progress of a call. */
export interface Progress {
  value: unknown;
  /** Order of the reports of one delivery (a later one has a higher number). */
  seq: number;
  /** When the handler reported it (worker's clock), if known. */
  at: Date | undefined;
}

/** One call's replies as they arrive. */
class Slot {
  readonly started = deferred<void>();
  readonly result = deferred<unknown>();
  waiters = 0;
  progress: Progress | undefined;
  readonly progressListeners = new Set<(value: unknown, p: Progress) => void>();
  expiry: NodeJS.Timeout | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;

  settle(msg: ReplyMessage): void {
    if (msg.kind === 'progress') {
      this.noteProgress({ value: msg.value, seq: msg.seq, at: msg.at === undefined ? undefined : new Date(msg.at) });
      return;
    }
    if (msg.kind === 'revoked') {
      this.fail(new TaskRevokedError(`job ${msg.jobId} was revoked`));
      return;
    }
    if (msg.kind === 'started' && msg.startedAt !== undefined) this.startedAt ??= new Date(msg.startedAt);
    if (msg.kind !== 'started' && msg.finishedAt !== undefined && this.pending) this.finishedAt = new Date(msg.finishedAt);
    this.started.resolve();
    if (msg.kind === 'result') this.result.resolve(msg.value);
    if (msg.kind === 'error') {
      this.result.reject(
        new TaskFailedError(`task ${msg.task} (job ${msg.jobId}) failed: ${msg.error.name}: ${msg.error.message}`, msg.error, msg.task, msg.jobId, msg.attempts),
      );
    }
  }

  /** Keeps the newest report (replies may arrive out of order) and tells the listeners. */
  noteProgress(p: Progress): void {
    if (this.progress !== undefined && this.progress.seq >= p.seq) return;
    this.progress = p;
    if (this.pending) for (const f of this.progressListeners) f(p.value, p);
  }

  fail(e: Error): void {
    this.started.reject(e);
    this.result.reject(e);
  }

  get pending(): boolean {
    return !this.result.settled;
  }
}

const inboxes = new WeakMap<object, ReplyInbox>();
/** Inboxes by queue name, for replies made in this process (immediate mode). */
const local = new Map<string, WeakRef<ReplyInbox>>();

/** A process-private reply queue and the calls waiting on it. */
export class ReplyInbox {
  readonly queue = `disque-ts-reply-${randomBytes(10).toString('hex')}`;
  private readonly slots = new Map<string, Slot>();
  private loop: Promise<void> | undefined;

  private constructor(private readonly client: Disque<unknown>) {
    local.set(this.queue, new WeakRef(this));
  }

  /** The inbox of `client` (one per client object). */
  static of(client: Disque<unknown>): ReplyInbox {
    let inbox = inboxes.get(client);
    if (!inbox) {
      inbox = new ReplyInbox(client);
      inboxes.set(client, inbox);
    }
    return inbox;
  }

  /** A reply made in this process (immediate mode) goes straight to its inbox. */
  static deliverLocally(msg: ReplyMessage, to: ReplyTo): void {
    local.get(to.queue)?.deref()?.deliver(msg);
  }

  /** Starts tracking a call; returns where the worker should reply. */
  open(ttl: number = DEFAULT_RESULT_TTL, started = true): { to: ReplyTo; slot: Slot } {
    if (!Number.isInteger(ttl) || ttl < 1) throw new RangeError(`result ttl must be a positive integer (seconds), got ${ttl}`);
    const key = randomBytes(9).toString('base64url');
    const slot = new Slot();
    slot.expiry = setTimeout(() => {
      this.slots.delete(key);
      slot.fail(new TaskTimeoutError(`no result within its TTL (${ttl} s)`));
    }, ttl * 1000);
    slot.expiry.unref();
    this.slots.set(key, slot);
    return { to: { queue: this.queue, key, ttl, ...(started ? { started: true } : {}) }, slot };
  }

  /** Stops tracking a call that was not added after all. */
  close(key: string): void {
    const slot = this.slots.get(key);
    if (!slot) return;
    clearTimeout(slot.expiry);
    this.slots.delete(key);
  }

  deliver(msg: ReplyMessage): void {
    this.slots.get(msg.key)?.settle(msg);
  }

  /** Waits for `which` of `slot`, reading the reply queue meanwhile. */
  async wait<T>(slot: Slot, which: Deferred<T>, what: string, options: WaitOptions = {}): Promise<T> {
    if (which.settled) return which.promise;
    slot.waiters++;
    this.ensureLoop();
    let timer: NodeJS.Timeout | undefined;
    try {
      if (options.timeout === undefined) return await which.promise;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TaskTimeoutError(`${what} did not arrive within ${options.timeout} ms`)), options.timeout);
      });
      return await Promise.race([which.promise, timeout]);
    } finally {
      clearTimeout(timer);
      slot.waiters--;
    }
  }

  private someoneWaits(): boolean {
    for (const s of this.slots.values()) if ((s.waiters > 0 || s.progressListeners.size > 0) && s.pending) return true;
    return false;
  }

  /** Reads the reply queue while someone waits or listens. */
  ensureLoop(): void {
    this.loop ??= this.read().finally(() => {
      this.loop = undefined;
      if (this.someoneWaits()) this.ensureLoop();
    });
  }

  /** Blocking GETJOB on the reply queue, on a connection of its own, while anyone waits. */
  private async read(): Promise<void> {
    const fetcher = this.client.duplicate({ followProducers: false }).withCodec(bufferCodec);
    try {
      while (this.someoneWaits()) {
        let jobs;
        try {
          jobs = await fetcher.getJob(this.queue, { count: 100, timeout: 500 });
        } catch (e) {
          if (e instanceof ClientClosedError) return;
          await new Promise((r) => setTimeout(r, 250)); // the connection already tried other nodes
          continue;
        }
        for (const job of jobs) {
          try {
            this.deliver(JSON.parse(job.body.toString('utf8')) as ReplyMessage);
          } catch {
            // Not one of our replies: dropped with the ACK below.
          }
        }
        if (jobs.length > 0) await fetcher.ackJob(jobs.map((j) => j.id)).catch(() => {});
      }
    } finally {
      await fetcher.quit().catch(() => fetcher.disconnect());
    }
  }
}

/** A call that will have a result: its job ID, its start, its result; revoke or reschedule it. */
export class ResultHandle<R> {
  constructor(
    /** ID of the (first) job of the call; changes when rescheduled. */
    public id: string,
    private readonly to: ReplyTo,
    private readonly slot: Slot,
    private readonly inbox: ReplyInbox,
    private readonly control: HandleControl,
  ) {}

  /** The reply queue of this process (replies to every call made through the same client). */
  get replyQueue(): string {
    return this.to.queue;
  }

  /** The call's key in the reply queue (the same across chain steps and reschedules). */
  get key(): string {
    return this.to.key;
  }

  /** The handler's value; throws TaskFailedError (carrying the remote error), TaskTimeoutError or TaskRevokedError. */
  result(options?: WaitOptions): Promise<R> {
    return this.inbox.wait(this.slot, this.slot.result, `the result of job ${this.id}`, options) as Promise<R>;
  }

  /** When a worker began the call (from its `started` reply; undefined before it arrives, or when not asked for). */
  get startedAt(): Date | undefined {
    return this.slot.startedAt;
  }

  /** When the handler returned or the call was given up (on the worker's clock; undefined until the result arrives). */
  get finishedAt(): Date | undefined {
    return this.slot.finishedAt;
  }

  /** Resolves when a worker began the call (or it already finished). */
  started(options?: WaitOptions): Promise<void> {
    return this.inbox.wait(this.slot, this.slot.started, `the start of job ${this.id}`, options);
  }

  /**
   * The newest progress the handler reported (ctx.progress), or undefined:
   * the newest of what this handle was sent and the progress record the
   * node this client talks to holds (see readProgress).
   */
  async progress(): Promise<unknown> {
    return (await this.progressRecord())?.value;
  }

  /** The newest progress with its sequence number and time. */
  async progressRecord(): Promise<Progress | undefined> {
    const stored = await this.control.progress(this.id).catch(() => undefined);
    if (stored !== undefined) this.slot.noteProgress(stored);
    return this.slot.progress;
  }

  /**
   * `progress`: calls `listener(value)` for each progress report as it
   * arrives (reports sent faster than they travel are coalesced: the newest
   * wins). Listening reads the reply queue until the call finishes.
   */
  on(event: 'progress', listener: (value: unknown, p: Progress) => void): this {
    if (event !== 'progress') throw new RangeError(`unknown event ${String(event)}; ResultHandle emits 'progress'`);
    this.slot.progressListeners.add(listener);
    if (this.slot.pending) this.inbox.ensureLoop();
    return this;
  }

  off(event: 'progress', listener: (value: unknown, p: Progress) => void): this {
    if (event === 'progress') this.slot.progressListeners.delete(listener);
    return this;
  }

  /** Revokes the call (see Task.revoke); waiting on it then throws TaskRevokedError. Returns true if the node knew the job. */
  async revoke(): Promise<boolean> {
    const known = await this.control.revoke(this.id);
    this.slot.fail(new TaskRevokedError(`job ${this.id} was revoked`));
    return known;
  }

  /** Runs the call `delay` seconds from now instead (see Task.reschedule); returns the new job ID. */
  async reschedule(options: { delay: number }): Promise<string> {
    this.id = await this.control.reschedule(this.id, options.delay);
    return this.id;
  }
}

/** The calls of `map()`: one handle per argument, the results in argument order. */
export class GroupHandle<R> {
  constructor(readonly handles: ResultHandle<R>[]) {}

  get ids(): string[] {
    return this.handles.map((h) => h.id);
  }

  /** Every call's result, in order; throws the first failure. `timeout` bounds the whole wait. */
  result(options: WaitOptions = {}): Promise<R[]> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
    return Promise.all(
      this.handles.map((h) => h.result(deadline === undefined ? {} : { timeout: Math.max(0, deadline - Date.now()) })),
    );
  }

  /** Each call's outcome, in order, failures included. */
  settled(options: WaitOptions = {}): Promise<PromiseSettledResult<R>[]> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
    return Promise.allSettled(
      this.handles.map((h) => h.result(deadline === undefined ? {} : { timeout: Math.max(0, deadline - Date.now()) })),
    );
  }

  /** Revokes every call; returns how many jobs the node knew. */
  async revoke(): Promise<number> {
    let n = 0;
    for (const h of this.handles) if (await h.revoke()) n++;
    return n;
  }
}

/** Milliseconds a reply's ADDJOB waits for its copies before trying with fewer. */
const REPLY_REPLICATION_TIMEOUT = 2000;

/** Retry time of reply jobs: short, so a reply held by a node that died is queued again soon. */
function replyRetry(ttl: number): number | undefined {
  const retry = Math.min(5, Math.max(1, Math.floor(ttl / 10)));
  return retry < ttl ? retry : undefined;
}

/**
 * Worker side: ADDJOBs a reply. When the cluster cannot reach the default
 * replication level (a node is down), the reply is added with fewer copies
 * rather than lost: the caller is waiting for it now.
 */
export async function sendReply(client: Disque<unknown>, to: ReplyTo, msg: ReplyMessage): Promise<void> {
  await addRecord(client, to.queue, JSON.stringify(msg), to.ttl);
}

/**
 * ADDJOBs a small bookkeeping job (a reply, a progress record, a batch
 * tally), with fewer copies when the default replication cannot be
 * reached; `replicate` asks for more first. Returns its job ID.
 */
export async function addRecord(
  client: Disque<unknown>,
  queue: string,
  body: string,
  ttl: number,
  options: { retry?: number; delay?: number; replicate?: number } = {},
): Promise<string> {
  const retry = options.retry ?? replyRetry(ttl);
  // A bounded wait for the copies: a node that just died could hold the reply up until it is seen failing.
  const base = {
    ttl,
    timeout: REPLY_REPLICATION_TIMEOUT,
    ...(retry === undefined ? {} : { retry }),
    ...(options.delay === undefined ? {} : { delay: options.delay }),
    codec: bufferCodec,
  };
  const levels = [...(options.replicate !== undefined && options.replicate > 2 ? [options.replicate] : []), undefined, 2, 1];
  for (const replicate of levels) {
    try {
      return await client.addJob<Buffer>(queue, body, replicate === undefined ? base : { ...base, replicate });
    } catch (e) {
      if (!(e instanceof NoReplError) || replicate === 1) throw e;
    }
  }
  throw new Error('unreachable');
}
