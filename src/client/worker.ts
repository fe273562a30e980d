// A Worker turns queues into a job processor: GETJOB on its own connection
// (fetcher.ts), the handler for each job, ACKJOB on success, NACK on failure,
// WORKING while the handler runs, dead-lettering after too many attempts;
// and its lifecycle: ready, pause/resume, close.
import { EventEmitter } from 'node:events';
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { makeEnvelope } from './dead-letter.js';
import { BadIdError, ClientClosedError, MaxAttemptsError, NoJobError, TooLateError } from './errors.js';
import { JobFetcher } from './fetcher.js';
import type { AddJobOptions, Job, NodeInfo } from './types.js';

/** What a handler gets besides the job. */
export interface JobContext {
  /** This delivery's number: 1 + NACKs + additional deliveries. */
  attempt: number;
  /** Aborted when close() stops waiting for the handler; the job is then left to the server. */
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
   * 100 ms). The first WORKING is sent when the handler starts, since a job
   * may be due for re-queueing soon after it is delivered. 0 disables.
   * Default `'auto'`.
   */
  workingInterval?: number | 'auto';
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
}

export interface WorkerEvents<T> {
  /** The fetching connection is up (once). */
  ready: [];
  /** A handler starts. */
  active: [job: Job<T>, info: { attempt: number; startedAt: Date }];
  completed: [job: Job<T>, result: unknown, info: { attempt: number; durationMs: number; startedAt: Date; finishedAt: Date }];
  failed: [job: Job<T>, error: unknown, info: { attempt: number; willRetry: boolean; retryInMs?: number; finishedAt: Date }];
  deadLettered: [job: Job<T>, error: unknown, info: { attempt: number; deadLetterQueue?: string; deadLetterId?: string }];
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
  abort: AbortController;
  heartbeat?: NodeJS.Timeout;
  /** The worker no longer acts on this job (handler abandoned, or settled). */
  done: boolean;
}

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
  private readonly delayed = new Map<Running<T>, { timer: NodeJS.Timeout; nack: () => Promise<void> }>();
  private readonly stop = new AbortController();
  private slotWaiters: (() => void)[] = [];
  private started = false;
  private paused = false;
  private closing: Promise<void> | undefined;
  private signalHandlers: [NodeJS.Signals, () => void][] = [];
  private readonly counters = { fetched: 0, completed: 0, failed: 0, retried: 0, deadLettered: 0, abandoned: 0, errors: 0 };

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
   * when the handlers running now have finished and their jobs are
   * acknowledged or NACKed. Jobs waiting for a backoff keep waiting.
   */
  async pause(): Promise<void> {
    if (this.closed) return;
    if (!this.paused) {
      this.paused = true;
      this.emit('paused');
    }
    await this.fetcher?.stop();
    while (this.running.size > 0) await new Promise<void>((r) => this.slotWaiters.push(r));
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
    return { ...this.counters, inFlight: this.running.size, waitingRetry: this.delayed.size };
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
   * waiting for a backoff, and waits for running handlers, all within
   * `timeoutMs`. Handlers still running then are abandoned (their signal is
   * aborted, WORKING stops, no ACK is sent) and the server queues their jobs
   * again after their retry time. The client given to the worker stays open.
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
    await settlesBefore(Promise.allSettled([...this.settling]), deadline);
    for (const r of this.running) {
      if (r.done) continue;
      r.done = true;
      clearTimeout(r.heartbeat);
      r.abort.abort(new Error('worker closed before the job finished'));
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
        freeSlots: () => this.opts.concurrency - this.running.size,
        slotFreed: (signal) => this.slotFreed(signal),
        deliver: (jobs, nodeId) => {
          for (const raw of jobs) this.begin(raw, nodeId);
        },
        handBack: (jobs, nodeId) => this.handBack(jobs, nodeId),
        ready: () => this.emit('ready'),
        drained: () => this.emit('drained'),
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

  private begin(raw: Job<Buffer>, nodeId: string | undefined): void {
    this.counters.fetched++;
    const r: Running<T> = {
      raw,
      nodeId,
      attempt: (raw.nacks ?? 0) + (raw.additionalDeliveries ?? 0) + 1,
      abort: new AbortController(),
      done: false,
    };
    this.running.add(r);
    const p = this.process(r)
      .catch((e) => this.report(e, r.job))
      .finally(() => {
        clearTimeout(r.heartbeat);
        this.running.delete(r);
        this.settling.delete(p);
        this.wakeSlotWaiters();
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
    this.startHeartbeat(r);
    const startedAt = new Date();
    this.emit('active', job, { attempt: r.attempt, startedAt });
    let result: unknown;
    try {
      result = await this.handler(job, {
        attempt: r.attempt,
        signal: r.abort.signal,
        nodeId: r.nodeId,
        working: () => this.jobClient(r.nodeId).working(r.raw.id),
        startedAt,
      });
    } catch (e) {
      if (r.done) return;
      await this.failed(r, e, job);
      return;
    }
    if (r.done) return; // abandoned by close(): the server will deliver it again
    const finishedAt = new Date();
    r.done = true;
    clearTimeout(r.heartbeat);
    await this.ack(r, job);
    this.counters.completed++;
    this.emit('completed', job, result, {
      attempt: r.attempt,
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      startedAt,
      finishedAt,
    });
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
      clearTimeout(r.heartbeat);
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
      clearTimeout(r.heartbeat);
      await this.nack(r, job);
      return;
    }
    if (this.nackDelay !== false) {
      r.done = true;
      clearTimeout(r.heartbeat);
      if (await this.nack(r, job, delay)) return;
      // The server has no NACK DELAY: keep the job ourselves, as below.
      r.done = false;
      r.heartbeat = undefined;
    }
    // Keep the job (WORKING goes on) until the backoff ends, without holding a slot.
    if (r.heartbeat === undefined) this.startHeartbeat(r);
    await new Promise<void>((resolve) => {
      const nack = async () => {
        if (!this.delayed.delete(r)) return;
        r.done = true;
        clearTimeout(r.heartbeat);
        await this.nack(r, job);
        resolve();
      };
      this.delayed.set(r, { timer: setTimeout(() => void nack(), delay), nack });
      this.running.delete(r);
      this.wakeSlotWaiters();
    });
  }

  private async giveUp(r: Running<T>, error: unknown, job: Job<T>): Promise<void> {
    r.done = true;
    clearTimeout(r.heartbeat);
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

  private async ack(r: Running<T>, job: Job<T>): Promise<void> {
    try {
      await this.jobClient(r.nodeId).ackJob(r.raw.id);
    } catch (e) {
      // ACKJOB works from any node (the ACK is propagated): try the main client.
      try {
        await this.client.ackJob(r.raw.id);
      } catch {
        this.report(e, job);
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

  private startHeartbeat(r: Running<T>): void {
    const setting = this.opts.workingInterval;
    if (setting === 0) return;
    const beat = async () => {
      if (r.done && !this.delayed.has(r)) return;
      let retry: number;
      try {
        retry = await this.jobClient(r.nodeId).working(r.raw.id);
      } catch (e) {
        if (r.done && !this.delayed.has(r)) return;
        if (e instanceof TooLateError || e instanceof NoJobError || e instanceof ClientClosedError) {
          // Cannot postpone any more: the job may be delivered again meanwhile.
          this.report(e, r.job);
          return;
        }
        this.report(e, r.job);
        retry = 1; // try again soon
      }
      if (r.done && !this.delayed.has(r)) return;
      if (setting === 'auto' && retry === 0) return; // at most once job: nothing to postpone
      const interval = setting === 'auto' ? Math.max(100, (retry * 1000) / 2 - 250) : setting;
      r.heartbeat = setTimeout(() => void beat(), interval);
    };
    r.heartbeat = setTimeout(() => void beat(), 0);
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
