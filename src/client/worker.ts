// A Worker turns queues into a job processor: GETJOB on its own connection
// (fetcher.ts, a few jobs ahead when handlers are quick), the handler for
// each job, ACKJOB on success (batched per event-loop turn, ack-batch.ts),
// NACK on failure, WORKING while a handler runs long and revocation
// (heartbeat.ts), dead-lettering after too many attempts; and its
// lifecycle: ready, pause/resume, close.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { AckBatch } from './ack-batch.js';
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { makeEnvelope } from './dead-letter.js';
import { BadIdError, ClientClosedError, JobRevokedError, MaxAttemptsError } from './errors.js';
import { JobFetcher } from './fetcher.js';
import { Heartbeat } from './heartbeat.js';
import type { AddJobOptions, Job, NodeInfo } from './types.js';

/** What a handler gets besides the job. */
export interface JobContext {
  /** This delivery's number: 1 + NACKs + additional deliveries. */
  attempt: number;
  /**
   * Aborted when the job is revoked while the handler runs (reason: a
   * JobRevokedError; the job was acknowledged or deleted elsewhere), or when
   * close() stops waiting for the handler (the job is then left to the server).
   */
  signal: AbortSignal;
  /** ID of the node that delivered the job. */
  nodeId: string | undefined;
  /** Sends WORKING now (the worker also does on its own); returns the job's retry time in seconds. */
  working(): Promise<number>;
  /** When the handler was called. */
  startedAt: Date;
}

/** Processes one job. Returning acknowledges it; throwing NACKs it (or dead-letters it). */
export type JobHandler<T, R = unknown> = (job: Job<T>, ctx: JobContext) => R | Promise<R>;

/** Milliseconds to wait before the NACK of a failed job. */
export type Backoff<T> = number | ((attempt: number, error: unknown, job: Job<T>) => number);

/** Worker options. */
export interface WorkerOptions<T = Buffer> {
  /** Jobs processed at the same time. Default 1. */
  concurrency?: number;
  /**
   * Milliseconds between WORKING commands while a handler runs, or `'auto'`:
   * half the job's retry time less the server's 250 ms jitter (at least
   * 100 ms). The first WORKING is sent 250 ms after the job was delivered
   * (or after the interval, if shorter): a handler returning before never
   * costs one, and the shortest retry (1 s less 250 ms jitter) is still
   * ahead. 0 disables. Default `'auto'`.
   */
  workingInterval?: number | 'auto';
  /**
   * Milliseconds between checks, while a handler runs past its first
   * WORKING, that its job was not revoked (acknowledged or deleted
   * elsewhere: SHOW on the delivering node); each WORKING checks too. A
   * revoked job's handler sees `ctx.signal` aborted with a JobRevokedError.
   * 0: check only with WORKING. Default 5000.
   */
  revocationCheck?: number;
  /**
   * Jobs fetched ahead of free slots, held until a slot frees, so quick
   * handlers do not wait a round trip for each job. `'auto'`: as many as the
   * handlers are expected to start within 100 ms (from their mean duration;
   * none until handlers have run, at most max(100, 2 × concurrency)). A job
   * held gets WORKING from its delivery, as a running one; pause() and
   * close() run held jobs, close() hands back (ENQUEUE) those not started by
   * its timeout. 0 disables. Default `'auto'`.
   */
  prefetch?: number | 'auto';
  /**
   * Deliveries (1 + NACKs + additional deliveries) after which a failing job
   * is given up: moved to `deadLetterQueue` if set, then acknowledged. A job
   * delivered more often than this (e.g. workers crashed) is given up without
   * running. Default Infinity (retry until the job's TTL).
   */
  maxAttempts?: number;
  /**
   * Handler failures (NACKs) after which a failing job is given up, as with
   * maxAttempts; deliveries after a worker died do not count. Default
   * Infinity (tasks: their `retries`, default 0).
   */
  retries?: number;
  /** Queue receiving a JSON DeadLetterEnvelope for each job given up. Default: none (the job is only acknowledged). */
  deadLetterQueue?: string;
  /** ADDJOB options of dead-letter jobs. Default: the server's. */
  deadLetterOptions?: Omit<AddJobOptions, 'codec'>;
  /**
   * Milliseconds before a failed job is delivered again: the worker NACKs
   * it at once with that delay (NACK ... DELAY: the server holds it back,
   * the job keeps its ID and counters, no slot is held). Against a server
   * without NACK DELAY (the reference Disque) the worker keeps the job with
   * WORKING until the backoff ends, then NACKs it. Default 0.
   */
  backoff?: Backoff<T>;
  /**
   * Milliseconds each blocking GETJOB waits before asking again. close() and
   * pause() do not wait for it: they interrupt it. Default 1000.
   */
  fetchTimeout?: number;
  /**
   * Fill `createdAt` of each job before the handler runs: one SHOW per job,
   * pipelined in one more round trip per fetch (job IDs carry no time).
   * Default false.
   */
  withCreatedAt?: boolean;
  /** Milliseconds close() waits for running handlers. Default 30000. */
  closeTimeout?: number;
  /** Close gracefully on these signals (`true`: SIGINT and SIGTERM), then re-raise them. Default false. */
  handleSignals?: boolean | NodeJS.Signals[];
  /** Start fetching in the constructor. Default true. */
  autostart?: boolean;
  /**
   * Called when the worker gives up on a job, before it is dead-lettered and
   * acknowledged (tasks use it to report the failure to chains and callers).
   * If it throws, the job is NACKed instead. Default: none.
   */
  onGiveUp?: (job: Job<T>, error: unknown, info: { attempt: number }) => unknown;
}

export interface WorkerStats {
  /** Jobs received. */
  fetched: number;
  /** Handlers that returned (jobs acknowledged). */
  completed: number;
  /** Handlers that threw (or bodies that could not be decoded). */
  failed: number;
  /** Failed jobs NACKed for another attempt. */
  retried: number;
  /** Jobs given up after maxAttempts. */
  deadLettered: number;
  /** Jobs whose handler was still running when close() stopped waiting. */
  abandoned: number;
  /** Errors reported through the `error` event. */
  errors: number;
  /** Handlers running now. */
  inFlight: number;
  /** Failed jobs this worker keeps with WORKING until their backoff ends (servers without NACK DELAY only). */
  waitingRetry: number;
  /** Jobs whose handler was told they were revoked. */
  revoked: number;
  /** Jobs fetched ahead and waiting for a slot. */
  prefetched: number;
}

export interface WorkerEvents<T> {
  /** The fetching connection is up (once). */
  ready: [];
  /** A handler starts. */
  active: [job: Job<T>, info: { attempt: number; startedAt: Date }];
  completed: [job: Job<T>, result: unknown, info: { attempt: number; durationMs: number; startedAt: Date; finishedAt: Date }];
  failed: [job: Job<T>, error: unknown, info: { attempt: number; willRetry: boolean; retryInMs?: number; finishedAt: Date }];
  deadLettered: [job: Job<T>, error: unknown, info: { attempt: number; deadLetterQueue?: string; deadLetterId?: string }];
  /** The job was acknowledged or deleted elsewhere while its handler ran: its signal is aborted, no ACK or NACK follows. */
  revoked: [job: Job<T>, info: { attempt: number }];
  /** A fetch found the queues empty on the worker's node: once each time they run empty. */
  drained: [];
  /** pause() was called (fetching stops). */
  paused: [];
  /** resume() was called (fetching starts again). */
  resumed: [];
  /** Errors outside handlers: fetching, ACK/NACK, WORKING refused. Logged to stderr if nobody listens. */
  error: [error: unknown, job?: Job<T>];
  closed: [];
}

interface Running<T> {
  raw: Job<Buffer>;
  job?: Job<T>;
  nodeId: string | undefined;
  attempt: number;
  /** Date.now() when fetched: the server's retry time runs from then. */
  deliveredAt: number;
  /** Made when the handler reads ctx.signal, or to abort it. */
  abort?: AbortController;
  heartbeat?: Heartbeat;
  /** The worker no longer acts on this job (handler abandoned, or settled). */
  done: boolean;
  /** Revoked while the handler ran. */
  revoked?: boolean;
}

/** Aborts the job's signal (made now if the handler never asked for it). */
function abortJob(r: Running<unknown>, reason: unknown): void {
  r.abort ??= new AbortController();
  r.abort.abort(reason);
}

/** Prefetch 'auto': jobs held ahead are expected to start within this many ms. */
const PREFETCH_WINDOW_MS = 100;

/** Waits for `p` until `deadline`; true if it settled in time. */
async function settlesBefore(p: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([p.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class Worker<T = Buffer> extends EventEmitter<WorkerEvents<T>> {
  readonly queues: string[];
  private readonly opts: Required<Omit<WorkerOptions<T>, 'deadLetterQueue' | 'handleSignals' | 'onGiveUp'>> & WorkerOptions<T>;
  private fetcher: JobFetcher | undefined;
  /** Connections pinned to the node that delivered a job: WORKING and NACK only work there. */
  private readonly pinned = new Map<string, Disque<T>>();
  private readonly running = new Set<Running<T>>();
  private readonly settling = new Set<Promise<void>>();
  private readonly delayed = new Map<Running<T>, { timer: NodeJS.Timeout; nack: () => Promise<void>; resolve: () => void }>();
  private readonly stop = new AbortController();
  private slotWaiters: (() => void)[] = [];
  private started = false;
  private paused = false;
  private closing: Promise<void> | undefined;
  private signalHandlers: [NodeJS.Signals, () => void][] = [];
  private readonly counters = { fetched: 0, completed: 0, failed: 0, retried: 0, deadLettered: 0, abandoned: 0, errors: 0, revoked: 0 };
  /** Jobs fetched ahead, waiting for a slot. */
  private buffered: Running<T>[] = [];
  /** Mean handler duration in ms (exponentially weighted), for prefetch 'auto'. */
  private meanHandlerMs: number | undefined;
  /** ACKs of returned handlers not replied yet. */
  private readonly acking = new Set<Promise<void>>();
  private readonly acks = new AckBatch((nodeId, ids) => this.sendAck(nodeId, ids));

  constructor(
    private readonly client: Disque<T>,
    queues: string | readonly string[],
    private readonly handler: JobHandler<T>,
    options: WorkerOptions<T> = {},
  ) {
    super();
    this.queues = typeof queues === 'string' ? [queues] : [...queues];
    if (this.queues.length === 0) throw new RangeError('a Worker needs at least one queue');
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    const prefetch = options.prefetch ?? 'auto';
    if (prefetch !== 'auto' && !(Number.isInteger(prefetch) && prefetch >= 0)) throw new RangeError(`prefetch must be 'auto' or a non-negative integer, got ${prefetch}`);
    const maxAttempts = options.maxAttempts ?? Infinity;
    if (!(maxAttempts >= 1)) throw new RangeError(`maxAttempts must be at least 1, got ${maxAttempts}`);
    const retries = options.retries ?? Infinity;
    if (!(retries >= 0)) throw new RangeError(`retries must be at least 0, got ${retries}`);
    this.opts = {
      ...options,
      concurrency,
      maxAttempts,
      retries,
      workingInterval: options.workingInterval ?? 'auto',
      revocationCheck: options.revocationCheck ?? 5000,
      prefetch: options.prefetch ?? 'auto',
      deadLetterOptions: options.deadLetterOptions ?? {},
      backoff: options.backoff ?? 0,
      fetchTimeout: options.fetchTimeout ?? 1000,
      closeTimeout: options.closeTimeout ?? 30000,
      autostart: options.autostart ?? true,
      withCreatedAt: options.withCreatedAt ?? false,
    };
    if (options.handleSignals) {
      const signals = options.handleSignals === true ? (['SIGINT', 'SIGTERM'] as NodeJS.Signals[]) : options.handleSignals;
      for (const sig of signals) {
        const h = () => void this.closeOnSignal(sig);
        process.once(sig, h);
        this.signalHandlers.push([sig, h]);
      }
    }
    if (this.opts.autostart) this.start();
  }

  // ---- lifecycle ----------------------------------------------------------

  /** Starts fetching (the constructor does unless `autostart: false`). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (!this.paused) this.jobFetcher().start();
  }

  /**
   * Resolves once the worker's fetching connection is up (the `ready`
   * event). Rejects if the connection cannot be made within the client's
   * failoverTimeout (a started worker keeps trying), or if the worker is closed.
   */
  async waitUntilReady(): Promise<void> {
    if (this.closed) throw new ClientClosedError('the worker is closed');
    await this.jobFetcher().connect();
  }

  /**
   * Stops fetching (a GETJOB waiting for jobs is interrupted) and resolves
   * when the handlers running now, and the jobs held ahead, have finished
   * and their jobs are acknowledged or NACKed. Jobs waiting for a backoff
   * keep waiting.
   */
  async pause(): Promise<void> {
    if (this.closed) return;
    if (!this.paused) {
      this.paused = true;
      this.emit('paused');
    }
    await this.fetcher?.stop();
    await this.idle();
  }

  /** Fetches again after pause(). */
  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.emit('resumed');
    if (this.started) this.jobFetcher().start();
  }

  /** True between pause() and resume(). */
  isPaused(): boolean {
    return this.paused;
  }

  /** True while the worker fetches jobs: started, not paused, not closed. */
  isRunning(): boolean {
    return this.fetcher?.running ?? false;
  }

  /** Counters since the worker was created. */
  stats(): WorkerStats {
    return { ...this.counters, inFlight: this.running.size, waitingRetry: this.delayed.size, prefetched: this.buffered.length };
  }

  /** The node jobs are fetched from (undefined before the first fetch connects). */
  get node(): NodeInfo | undefined {
    return this.fetcher?.node;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.stop.signal.aborted;
  }

  /**
   * Stops fetching (a GETJOB waiting for jobs is interrupted; jobs the
   * server had already sent are handed back with ENQUEUE), NACKs jobs
   * waiting for a backoff, and waits for running handlers and the jobs held
   * ahead, all within `timeoutMs`. Held jobs not started by then are handed
   * back; handlers still running are abandoned (their signal is aborted,
   * WORKING stops, no ACK is sent) and the server queues their jobs again
   * after their retry time. The client given to the worker stays open.
   */
  close(timeoutMs = this.opts.closeTimeout): Promise<void> {
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.stop.abort();
    for (const [sig, h] of this.signalHandlers) process.off(sig, h);
    if (this.fetcher && !(await settlesBefore(this.fetcher.stop(), deadline))) this.fetcher.client.disconnect();
    await Promise.all([...this.delayed.values()].map((d) => (clearTimeout(d.timer), d.nack())));
    await settlesBefore(this.idle(), deadline);
    // Held jobs a stuck handler kept from starting: back to the queue now, not after their retry time.
    await this.handBackPrefetched();
    for (const r of this.running) {
      if (r.done) continue;
      r.done = true;
      r.heartbeat?.stop();
      abortJob(r, new Error('worker closed before the job finished'));
      this.counters.abandoned++;
    }
    this.running.clear();
    this.wakeSlotWaiters();
    const clients = [...this.pinned.values()];
    await Promise.all([...clients.map((c) => c.quit().catch(() => c.disconnect())), this.fetcher?.close()]);
    this.pinned.clear();
    this.emit('closed');
  }

  private async closeOnSignal(sig: NodeJS.Signals): Promise<void> {
    await this.close();
    // Our listener is gone: without others, the signal's default action ends the process.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  }

  // ---- fetching -----------------------------------------------------------

  /** The fetcher, made on first use; it reports to this worker. */
  private jobFetcher(): JobFetcher {
    this.fetcher ??= new JobFetcher(
      this.client as Disque<unknown>,
      { queues: this.queues, fetchTimeout: this.opts.fetchTimeout, withCreatedAt: this.opts.withCreatedAt },
      {
        freeSlots: () => this.wanted(),
        slotFreed: (signal) => this.slotFreed(signal),
        deliver: (jobs, nodeId) => {
          const deliveredAt = Date.now();
          for (const raw of jobs) this.buffered.push(this.delivered(raw, nodeId, deliveredAt));
          this.startPrefetched();
        },
        handBack: (jobs, nodeId) => this.handBack(jobs, nodeId),
        ready: () => this.emit('ready'),
        // After the ACKs in flight: `drained` follows the last job's `completed`.
        drained: () => void Promise.allSettled([...this.acking]).then(() => this.emit('drained')),
        fetchFailed: (e) => this.report(e),
      },
    );
    return this.fetcher;
  }

  private async handBack(jobs: Job<Buffer>[], nodeId: string | undefined): Promise<void> {
    if (jobs.length === 0) return;
    try {
      await this.jobClient(nodeId).enqueue(jobs.map((j) => j.id));
    } catch (e) {
      this.report(e); // the server queues them again after their retry time
    }
  }

  /** Jobs to hold ahead of free slots now (see the prefetch option). */
  private ahead(): number {
    const p = this.opts.prefetch;
    if (p !== 'auto') return p;
    const mean = this.meanHandlerMs;
    if (mean === undefined) return 0;
    const c = this.opts.concurrency;
    return Math.min(Math.max(100, 2 * c), Math.floor((c * PREFETCH_WINDOW_MS) / Math.max(mean, 0.001)));
  }

  /** Jobs to fetch now: free slots and room ahead, once the jobs held ahead are down to half. */
  private wanted(): number {
    const ahead = this.ahead();
    if (this.buffered.length > ahead / 2) return 0;
    return this.opts.concurrency - this.running.size + ahead - this.buffered.length;
  }

  /** Starts held jobs while slots are free. */
  private startPrefetched(): void {
    if (this.buffered.length === 0) return;
    let n = 0;
    // Also while pausing or closing: held jobs are ours, expected to start within PREFETCH_WINDOW_MS.
    while (n < this.buffered.length && this.running.size < this.opts.concurrency) {
      const r = this.buffered[n++]!;
      if (!r.done) this.begin(r); // done: revoked while held
    }
    if (n > 0) this.buffered = this.buffered.slice(n);
  }

  /** Hands jobs held ahead back to their nodes (pause, close). */
  private async handBackPrefetched(): Promise<void> {
    const held = this.buffered;
    this.buffered = [];
    const byNode = new Map<string | undefined, Job<Buffer>[]>();
    for (const r of held) {
      if (r.done) continue;
      r.done = true;
      r.heartbeat?.stop();
      const list = byNode.get(r.nodeId) ?? [];
      list.push(r.raw);
      byNode.set(r.nodeId, list);
    }
    await Promise.all([...byNode].map(([nodeId, jobs]) => this.handBack(jobs, nodeId)));
  }

  /**
   * Resolves when no job is held ahead or running, and the ACKs of those
   * that returned are answered. Jobs waiting for a backoff do not count.
   */
  private async idle(): Promise<void> {
    // A handler returning starts the next held job (release), until none is held.
    while (this.running.size > 0 || this.buffered.length > 0) await new Promise<void>((r) => this.slotWaiters.push(r));
    await Promise.allSettled([...this.acking]);
  }

  /** A handler is done with its slot (before its ACK is sent): the next job may start. */
  private release(r: Running<T>): void {
    if (!this.running.delete(r)) return;
    this.startPrefetched();
    this.wakeSlotWaiters();
  }

  private slotFreed(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.slotWaiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private wakeSlotWaiters(): void {
    const w = this.slotWaiters;
    this.slotWaiters = [];
    for (const f of w) f();
  }

  /**
   * A job just fetched. Its WORKING and revocation checks start now: the
   * server's retry time runs from delivery, also while the job is held ahead.
   */
  private delivered(raw: Job<Buffer>, nodeId: string | undefined, deliveredAt: number): Running<T> {
    this.counters.fetched++;
    const r: Running<T> = {
      raw,
      nodeId,
      attempt: (raw.nacks ?? 0) + (raw.additionalDeliveries ?? 0) + 1,
      deliveredAt,
      done: false,
    };
    this.startHeartbeat(r);
    return r;
  }

  private begin(r: Running<T>): void {
    this.running.add(r);
    const p = this.process(r)
      .catch((e) => this.report(e, r.job))
      .finally(() => {
        r.heartbeat?.stop();
        this.settling.delete(p);
        this.release(r);
      });
    this.settling.add(p);
  }

  // ---- processing ---------------------------------------------------------

  private async process(r: Running<T>): Promise<void> {
    if (r.attempt > this.opts.maxAttempts) {
      const e = new MaxAttemptsError(
        `job ${r.raw.id} was delivered ${r.attempt} times (maxAttempts ${this.opts.maxAttempts}) without being acknowledged`,
      );
      await this.giveUp(r, e, this.decodeOrRaw(r));
      return;
    }
    let job: Job<T>;
    try {
      job = { ...r.raw, body: this.client.codec.decode(r.raw.body) };
    } catch (e) {
      await this.failed(r, e, this.decodeOrRaw(r));
      return;
    }
    r.job = job;
    const startedAt = new Date();
    if (this.listenerCount('active') > 0) this.emit('active', job, { attempt: r.attempt, startedAt });
    let result: unknown;
    const t0 = performance.now();
    try {
      result = await this.handler(job, this.context(r, startedAt));
    } catch (e) {
      this.timed(t0);
      if (r.done) return;
      await this.failed(r, e, job);
      return;
    }
    this.timed(t0);
    // Abandoned by close() (the server will deliver it again), or revoked.
    if (r.done) return;
    const finishedAt = new Date();
    r.done = true;
    r.heartbeat?.stop();
    this.release(r);
    const acked = this.ack(r, job);
    this.acking.add(acked);
    await acked;
    this.acking.delete(acked);
    this.counters.completed++;
    this.emit('completed', job, result, {
      attempt: r.attempt,
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      startedAt,
      finishedAt,
    });
  }

  /** What the handler gets besides the job. */
  private context(r: Running<T>, startedAt: Date): JobContext {
    return {
      attempt: r.attempt,
      get signal() {
        r.abort ??= new AbortController();
        return r.abort.signal;
      },
      nodeId: r.nodeId,
      working: () => this.jobClient(r.nodeId).working(r.raw.id),
      startedAt,
    };
  }

  /** Records a handler's duration for prefetch 'auto'. */
  private timed(t0: number): void {
    const ms = performance.now() - t0;
    this.meanHandlerMs = this.meanHandlerMs === undefined ? ms : this.meanHandlerMs * 0.9 + ms * 0.1;
  }

  /** The job as the handler would see it, or with its raw body if it does not decode. */
  private decodeOrRaw(r: Running<T>): Job<T> {
    try {
      return { ...r.raw, body: this.client.codec.decode(r.raw.body) };
    } catch {
      return r.raw as unknown as Job<T>;
    }
  }

  private async failed(r: Running<T>, error: unknown, job: Job<T>): Promise<void> {
    this.counters.failed++;
    const finishedAt = new Date();
    if (r.attempt >= this.opts.maxAttempts || (r.raw.nacks ?? 0) >= this.opts.retries) {
      r.done = true;
      r.heartbeat?.stop();
      this.emit('failed', job, error, { attempt: r.attempt, willRetry: false, finishedAt });
      await this.giveUp(r, error, job);
      return;
    }
    const b = this.opts.backoff;
    let delay = 0;
    try {
      delay = Math.max(0, typeof b === 'function' ? b(r.attempt, error, job) : b);
    } catch (e) {
      this.report(e, job);
    }
    this.emit('failed', job, error, { attempt: r.attempt, willRetry: true, retryInMs: delay, finishedAt });
    if (delay === 0 || this.stop.signal.aborted) {
      r.done = true;
      r.heartbeat?.stop();
      await this.nack(r, job);
      return;
    }
    if (this.nackDelay !== false) {
      r.done = true;
      r.heartbeat?.stop();
      if (await this.nack(r, job, delay)) return;
      // The server has no NACK DELAY: keep the job ourselves, as below.
      r.done = false;
      r.heartbeat = undefined;
    }
    // Keep the job (WORKING goes on) until the backoff ends, without holding a slot.
    if (r.heartbeat === undefined) this.startHeartbeat(r, true);
    await new Promise<void>((resolve) => {
      const nack = async () => {
        if (!this.delayed.delete(r)) return;
        r.done = true;
        r.heartbeat?.stop();
        await this.nack(r, job);
        resolve();
      };
      this.delayed.set(r, { timer: setTimeout(() => void nack(), delay), nack, resolve });
      this.release(r);
    });
  }

  private async giveUp(r: Running<T>, error: unknown, job: Job<T>): Promise<void> {
    r.done = true;
    r.heartbeat?.stop();
    if (this.opts.onGiveUp) {
      try {
        await this.opts.onGiveUp(job, error, { attempt: r.attempt });
      } catch (e) {
        this.report(e, job);
        await this.nack(r, job);
        return;
      }
    }
    const dlq = this.opts.deadLetterQueue;
    let deadLetterId: string | undefined;
    if (dlq !== undefined) {
      const envelope = makeEnvelope(r.raw, error, r.attempt, r.nodeId);
      try {
        deadLetterId = await this.client.addJob<Buffer>(dlq, JSON.stringify(envelope), {
          ...this.opts.deadLetterOptions,
          codec: bufferCodec,
        });
      } catch (e) {
        // Not recorded anywhere: keep the job rather than lose it.
        this.report(e, job);
        await this.nack(r, job);
        return;
      }
    }
    await this.ack(r, job);
    this.counters.deadLettered++;
    this.emit('deadLettered', job, error, {
      attempt: r.attempt,
      ...(dlq === undefined ? {} : { deadLetterQueue: dlq }),
      ...(deadLetterId === undefined ? {} : { deadLetterId }),
    });
  }

  /** Acknowledges the job with the others of this event-loop turn. */
  private async ack(r: Running<T>, job: Job<T>): Promise<void> {
    try {
      await this.acks.add(r.nodeId, r.raw.id);
    } catch (e) {
      this.report(e, job);
    }
  }

  private async sendAck(nodeId: string | undefined, ids: string[]): Promise<void> {
    try {
      await this.jobClient(nodeId).ackJob(ids);
    } catch (e) {
      // ACKJOB works from any node (the ACK is propagated): try the main client.
      try {
        await this.client.ackJob(ids);
      } catch {
        throw e;
      }
    }
  }

  /**
   * NACKs the job, after `delayMs` with NACK DELAY when given. False only
   * when the server refused the DELAY (a server without it, such as the
   * reference, takes "DELAY" for a bad job ID); the caller then waits itself.
   */
  private async nack(r: Running<T>, job: Job<T>, delayMs = 0): Promise<boolean> {
    try {
      await this.jobClient(r.nodeId).nack(r.raw.id, { delay: delayMs / 1000 });
      if (delayMs > 0) this.nackDelay = true;
      this.counters.retried++;
    } catch (e) {
      if (delayMs > 0 && this.nackDelay === undefined && e instanceof BadIdError) {
        this.nackDelay = false;
        return false;
      }
      // The job is queued again anyway after its retry time.
      this.report(e, job);
    }
    return true;
  }

  /** Whether the server knows NACK DELAY: undefined until a backoff tried it. */
  private nackDelay: boolean | undefined = undefined;

  // ---- WORKING ------------------------------------------------------------

  /** WORKING and revocation checks for a job (`beatNow`: kept through a backoff, WORKING from now on). */
  private startHeartbeat(r: Running<T>, beatNow = false): void {
    const hb = new Heartbeat(
      r.raw.id,
      { interval: this.opts.workingInterval, checkEvery: this.opts.revocationCheck },
      {
        client: () => this.jobClient(r.nodeId) as Disque<unknown>,
        live: () => !r.done || this.delayed.has(r),
        revoked: () => this.revoked(r),
        error: (e) => this.report(e, r.job),
      },
    );
    r.heartbeat = hb;
    hb.start(beatNow ? 0 : r.deliveredAt);
  }

  /** The job was acknowledged or deleted elsewhere: tell the handler, send nothing more for it. */
  private revoked(r: Running<T>): void {
    const waiting = this.delayed.get(r);
    if (waiting) {
      clearTimeout(waiting.timer);
      this.delayed.delete(r);
      waiting.resolve();
    }
    if (r.done && !waiting) return;
    if (!this.running.has(r) && !waiting) this.buffered = this.buffered.filter((x) => x !== r);
    r.done = true;
    r.revoked = true;
    this.counters.revoked++;
    abortJob(r, new JobRevokedError(r.raw.id));
    // A job held ahead has not been decoded yet.
    this.emit('revoked', r.job ?? this.decodeOrRaw(r), { attempt: r.attempt });
  }

  /** A connection to the node that delivered the job (WORKING and NACK only work there). */
  private jobClient(nodeId: string | undefined): Disque<T> {
    if (nodeId === undefined) return this.client;
    let c = this.pinned.get(nodeId);
    if (!c) {
      const node = this.fetcher?.client.knownNodes().find((n) => n.id === nodeId);
      if (!node || node.host === '') return this.client;
      c = this.client.duplicate({
        nodes: [{ host: node.host, port: node.port }],
        discover: false,
        preferBestNode: false,
        followProducers: false,
      });
      this.pinned.set(nodeId, c);
    }
    return c;
  }

  private report(error: unknown, job?: Job<T>): void {
    this.counters.errors++;
    if (this.listenerCount('error') > 0) this.emit('error', error, job);
    else console.error('[disque-ts worker]', error);
  }
}
