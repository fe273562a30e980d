// Named tasks in the spirit of huey and RPQueue: declare a task once, enqueue
// calls from producers, process them in workers. Arguments travel as JSON.
// On top of plain Disque jobs: priority levels (one queue per level, read in
// order), results (results.ts), chains (chain.ts), revoke and reschedule
// (control.ts) and immediate mode (immediate.ts).
import { createHash } from 'node:crypto';
import type { Disque } from './client.js';
import { stepGivenUp, stepStarted, stepSucceeded, type Dispatch } from './chain.js';
import { jsonCodec } from './codec.js';
import { AlreadyDeliveredError, kick, rescheduleJob, revokeJob, type KickOptions } from './control.js';
import { assertJson, type BatchRef, type ChainStep, type ReplyTo, type TaskEnvelope, type TaskFailure } from './envelope.js';
import { bufferCodec } from './codec.js';
import { DisqueError, InvalidArgumentsError } from './errors.js';
import { immediateMode, localDispatch, registerLocal, runLocally } from './immediate.js';
import { GroupHandle, ReplyInbox, ResultHandle, sendReply, type HandleControl, type ResultOptions } from './results.js';
import { ProgressReporter, readProgress } from './progress.js';
import { BatchHandle, newBatchId, openTally, parkCallback, recordOutcome, type BatchOutcome } from './batch.js';
import { startEnqueueSpan, traceProcess } from './tracing.js';
import type { AddJobOptions, AddJobsResult, Job } from './types.js';
import { Worker, type JobContext, type JobHandler, type WorkerOptions } from './worker.js';

export type { TaskEnvelope } from './envelope.js';

export interface TaskOptions {
  /** Queue of the task's jobs (with `priorities`: the prefix of its queues). Default: the task name. */
  queue?: string;
  /** ADDJOB options of every enqueue() (each call may override them). Default: the server's. */
  defaults?: Omit<AddJobOptions, 'codec'>;
  /**
   * Priority levels, highest first, e.g. `['high', 'normal', 'low']`. Each
   * level is a queue, `<queue>:<level>`; workers ask for them in this order
   * (GETJOB FROM serves its queues left to right). Default: none, one queue.
   */
  priorities?: readonly string[];
  /** Level of calls that do not name one. Default: the last (lowest) level. */
  defaultPriority?: string;
  /**
   * Checks the arguments of each call before anything is sent; return false
   * or throw to refuse them (InvalidArgumentsError). Arguments must also be
   * JSON-serialisable, which is always checked.
   */
  validate?: (args: unknown) => unknown;
  /** Run calls in this process at once, without a server (see setImmediateMode). Default: the global switch. */
  immediate?: boolean;
  /**
   * At most `jobs` calls started per `seconds`, across every worker and node
   * (QPOLICY RATE, disque-ts; docs/policies.md). Set on the server by
   * `process()` (and `applyPolicy()`), on each of the task's queues.
   */
  rateLimit?: { jobs: number; seconds: number };
  /**
   * At most this many calls running at once across every worker and node
   * (QPOLICY CONCURRENCY; a worker's own `concurrency` option is per
   * process). Set like `rateLimit`.
   */
  globalConcurrency?: number;
  /**
   * Unique calls (ADDJOB UNIQUE, disque-ts; docs/unique.md): while a call
   * with the same key is pending, enqueue() adds nothing and returns its
   * job ID. `true`: the key is a hash of the arguments; a function: the key
   * it returns. A call's `unique` option overrides it.
   */
  unique?: boolean | ((args: any) => string);
  /**
   * Times a call whose handler throws is tried again before it is given up
   * (its result handle then throws TaskFailedError). Deliveries after a
   * worker died do not count. Default 0, as huey's `retries` and BullMQ's
   * `attempts: 1`; a plain Worker keeps Disque's retry until the TTL. The
   * worker's `retries` or `maxAttempts` option overrides it.
   */
  retries?: number;
}

/** A batch callback: a task and its arguments. */
export interface BatchCallback {
  task: Task<any, any>;
  args: unknown;
}

/** Options of `batch()`. */
export interface BatchOptions extends Omit<EnqueueOptions, 'result' | 'unique'> {
  /** Enqueued once, when every call of the batch succeeded. */
  onSuccess?: BatchCallback;
  /** Enqueued once, when every call of the batch finished, succeeded or not. */
  onComplete?: BatchCallback;
  /** Seconds the batch may take: its tally, parked callbacks and results live that long. Default 86400. */
  ttl?: number;
  /** Calls per pipelined round trip. Default: addJobs' default. */
  batchSize?: number;
}

/** Options of one call. */
export interface EnqueueOptions extends Omit<AddJobOptions, 'codec'> {
  /** Priority level (one of the task's `priorities`). Default: `defaultPriority`. */
  priority?: string;
  /** Ask for the result: `enqueue()` then returns a ResultHandle. `true` means `{}`. */
  result?: ResultOptions | true;
}

/** What a task handler gets besides the arguments. */
export interface TaskContext<A> extends JobContext {
  job: Job<TaskEnvelope<A>>;
  /**
   * Reports progress (any JSON value): streamed to the caller's
   * `r.on('progress')` and kept as the job's progress record for
   * `r.progress()` and the dashboard. Resolves once sent; reports made
   * faster than they travel are coalesced (the newest wins).
   */
  progress(value: unknown): Promise<void>;
}

type Target = string | ResultHandle<unknown> | GroupHandle<unknown>;

/** Steps after the first one of a chain, and its catch task. */
interface ChainTail {
  next?: ChainStep[];
  onError?: ChainStep;
  /** The batch the calls belong to (each call gets its index). */
  batch?: Omit<BatchRef, 'index'>;
}

export class Task<A = unknown, R = unknown> {
  /** The task's queue (with priorities: the prefix of its queues). */
  readonly queue: string;
  /** The queues a worker of this task reads, highest priority first. */
  readonly queues: readonly string[];
  private readonly codec = jsonCodec<TaskEnvelope<A>>();
  private readonly defaultPriority: string | undefined;

  constructor(
    private readonly client: Disque<unknown>,
    readonly name: string,
    private readonly options: TaskOptions = {},
  ) {
    this.queue = options.queue ?? name;
    const levels = options.priorities ?? [];
    if (new Set(levels).size !== levels.length) throw new RangeError(`task ${name}: priority levels must be distinct`);
    this.queues = levels.length === 0 ? [this.queue] : levels.map((l) => `${this.queue}:${l}`);
    this.defaultPriority = options.defaultPriority ?? levels[levels.length - 1];
    if (this.defaultPriority !== undefined && !levels.includes(this.defaultPriority)) {
      throw new RangeError(`task ${name}: defaultPriority ${this.defaultPriority} is not one of its priorities`);
    }
  }

  /** The queue of calls at `priority` (default: the task's default level). */
  queueFor(priority: string | undefined = this.defaultPriority): string {
    if (priority === undefined) return this.queue;
    const levels = this.options.priorities ?? [];
    const i = levels.indexOf(priority);
    if (i < 0) {
      throw new RangeError(
        levels.length === 0 ? `task ${this.name} has no priority levels` : `task ${this.name}: priority must be one of ${levels.join(', ')}, got ${priority}`,
      );
    }
    return this.queues[i]!;
  }

  /**
   * Sets the task's `rateLimit` and `globalConcurrency` on the server
   * (QPOLICY SET on each of its queues), unless already so. `process()`
   * calls it; producers need not.
   */
  async applyPolicy(): Promise<void> {
    const { rateLimit, globalConcurrency } = this.options;
    if ((rateLimit === undefined && globalConcurrency === undefined) || this.immediate) return;
    for (const queue of this.queues) {
      const current = await this.client.qpolicy(queue);
      const sameRate = rateLimit === undefined || (current?.rate?.jobs === rateLimit.jobs && current.rate.seconds === rateLimit.seconds);
      const sameConcurrency = globalConcurrency === undefined || current?.concurrency === globalConcurrency;
      if (sameRate && sameConcurrency) continue;
      await this.client.qpolicy(queue, {
        ...(rateLimit === undefined ? {} : { rate: rateLimit }),
        ...(globalConcurrency === undefined ? {} : { concurrency: globalConcurrency }),
      });
    }
  }

  /** The UNIQUE key of a call, from its options or the task's `unique`; undefined when none. */
  private uniqueKey(args: A, options: EnqueueOptions): string | undefined {
    if (options.unique !== undefined) return options.unique;
    const u = this.options.unique;
    if (u === undefined || u === false) return undefined;
    if (typeof u === 'function') return u(args);
    return `${this.name}:${createHash('sha1').update(canonicalJson(args)).digest('hex')}`;
  }

  /** Adds a job calling this task with `args`; returns the job ID, or a ResultHandle with the `result` option. */
  enqueue(args: A, options: EnqueueOptions & { result: ResultOptions | true }): Promise<ResultHandle<R>>;
  enqueue(args: A, options?: EnqueueOptions & { result?: undefined }): Promise<string>;
  enqueue(args: A, options?: EnqueueOptions): Promise<string | ResultHandle<R>>;
  enqueue(args: A, options: EnqueueOptions = {}): Promise<string | ResultHandle<R>> {
    return this.call(args, options, {});
  }

  /**
   * Enqueues one call per element of `argsList`, pipelined (one round trip
   * per `batchSize` calls; see Disque.addJobs). Returns the job IDs in order;
   * a call that could not be added is in `failed` with its error, the others
   * are added all the same. Arguments are checked before anything is sent.
   */
  enqueueMany(argsList: readonly A[], options: Omit<EnqueueOptions, 'result'> & { batchSize?: number } = {}): Promise<AddJobsResult> {
    return this.callMany(argsList, options, {}).then(({ ids, failed }) => ({ ids, failed }));
  }

  /**
   * Enqueues one call per element of `argsList` (pipelined, as enqueueMany);
   * the group's result is the results in order. If a call could not be
   * added, rejects with the first such error (the others were added).
   */
  map(argsList: readonly A[], options: EnqueueOptions = {}): Promise<GroupHandle<R>> {
    return mapCalls(this, argsList, options, {});
  }

  /** A chain: this task, then `next` with this task's result as its arguments. */
  then<R2>(next: Task<R, R2>): Chain<A, R2> {
    return new Chain<A, R2>(this, [next.step()]);
  }

  /** A chain whose failure (this task given up) calls `handler` with a TaskFailure. */
  catch(handler: Task<TaskFailure, unknown>): Chain<A, R> {
    return new Chain<A, R>(this, [], handler.step());
  }

  /**
   * Revokes a call by job ID or handle (every call of a group handle):
   * ACKJOB, which the whole cluster honours (DELJOB would act on one node
   * only). The call's result handle, wherever it is, then throws
   * TaskRevokedError (the revoker sends the call's `revoked` reply), and a
   * call of a batch counts as finished, not succeeded. A worker running the
   * call learns it through WORKING and aborts the handler's `ctx.signal`.
   * Returns how many jobs the node knew.
   */
  async revoke(target: Target): Promise<number> {
    if (typeof target === 'string') return (await this.control().revoke(target)) ? 1 : 0;
    if (target instanceof GroupHandle) return target.revoke();
    return (await target.revoke()) ? 1 : 0;
  }

  /**
   * Runs a call not delivered yet `delay` seconds from now instead: same
   * body under a new job ID (a handle keeps waiting for its result).
   * AlreadyDeliveredError if a worker may have it. Returns the new job ID.
   */
  reschedule(target: string | ResultHandle<unknown>, options: { delay: number }): Promise<string> {
    return typeof target === 'string' ? this.control().reschedule(target, options.delay) : target.reschedule(options);
  }

  /**
   * The newest progress the handler of call `id` reported (ctx.progress),
   * from the progress record on the node this client talks to; undefined
   * when there is none there.
   */
  async progress(id: string): Promise<unknown> {
    return (await this.control().progress(id))?.value;
  }

  /**
   * Enqueues one call per element of `argsList` as a batch: `onSuccess` is
   * enqueued once when every call succeeded, `onComplete` once when every
   * call finished either way, by the workers, even when this process is
   * gone (see batch.ts and docs/client.md). `result()` of the handle waits
   * for every call.
   */
  async batch(argsList: readonly A[], options: BatchOptions = {}): Promise<BatchHandle<R>> {
    const { onSuccess, onComplete, ttl = 86400, ...rest } = options;
    if (argsList.length === 0) throw new RangeError(`task ${this.name}: a batch needs at least one call`);
    if (!Number.isInteger(ttl) || ttl < 1) throw new RangeError(`batch ttl must be a positive integer (seconds), got ${ttl}`);
    for (const args of argsList) this.check(args);
    if (this.immediate) return this.batchLocally(argsList, options);
    const ref: Omit<BatchRef, 'index'> = { id: newBatchId(), size: argsList.length, ttl, until: Date.now() + ttl * 1000 };
    // Callbacks and tally exist before the first call can finish.
    if (onSuccess) ref.onSuccess = await parkCallback(this.client, onSuccess.task.step(), onSuccess.args, ref);
    if (onComplete) ref.onComplete = await parkCallback(this.client, onComplete.task.step(), onComplete.args, ref);
    await openTally(this.client, { ...ref, index: -1 });
    const { handles, failed } = await this.callMany(argsList, { ...rest, result: { ttl } }, { batch: ref });
    // Calls never added count as failed, so the batch still completes.
    await Promise.all(failed.map((f) => recordOutcome(this.client, { ...ref, index: f.index }, f.index, 'failed')));
    if (failed.length > 0) throw failed[0]!.error;
    const callbacks = { ...(ref.onSuccess === undefined ? {} : { onSuccess: ref.onSuccess }), ...(ref.onComplete === undefined ? {} : { onComplete: ref.onComplete }) };
    return new BatchHandle(ref.id, new GroupHandle(handles as ResultHandle<R>[]), callbacks);
  }

  /** Immediate mode: the calls run now, then the callbacks. */
  private async batchLocally(argsList: readonly A[], options: BatchOptions): Promise<BatchHandle<R>> {
    const group = await this.map(argsList, {});
    const outcomes = await group.settled();
    const allOk = outcomes.every((o) => o.status === 'fulfilled');
    if (allOk && options.onSuccess) await options.onSuccess.task.enqueue(options.onSuccess.args);
    if (options.onComplete) await options.onComplete.task.enqueue(options.onComplete.args);
    return new BatchHandle(newBatchId(), group, {});
  }

  /** Moves the dead letters in `deadLetterQueue` back to their queues (see kick()). */
  kick(deadLetterQueue: string, options?: KickOptions): Promise<number> {
    return kick(this.client, deadLetterQueue, options);
  }

  /** Starts a Worker running `handler` for each call of this task (in immediate mode, registers it to run calls at once). */
  process(
    handler: (args: A, ctx: TaskContext<A>) => R | Promise<R>,
    options: WorkerOptions<TaskEnvelope<A>> = {},
  ): Worker<TaskEnvelope<A>> {
    const local = this.immediate;
    const dispatch = local ? localDispatch : this.serverDispatch();
    let worker: Worker<TaskEnvelope<A>> | undefined;
    const batchDone = (envelope: TaskEnvelope<unknown>, outcome: BatchOutcome) =>
      local || envelope.batch === undefined ? Promise.resolve() : recordOutcome(this.client, envelope.batch, envelope.batch.index, outcome);
    const jobHandler: JobHandler<TaskEnvelope<A>> = async (job, ctx) => {
      if (job.body?.task !== this.name) {
        throw new Error(`job ${job.id} in queue ${job.queue} is not a call of task ${this.name}`);
      }
      const envelope = job.body as TaskEnvelope<unknown>;
      if (envelope.batchCallback !== undefined && Date.now() >= envelope.batchCallback.parkedUntil) {
        // Released by its parking delay, not by its batch: the batch never finished.
        worker?.emit('error', new DisqueError(`batch ${envelope.batchCallback.batch} did not finish within its ttl: callback job ${job.id} not run`), job);
        return undefined;
      }
      const step = { id: job.id, envelope };
      const trace = { task: this.name, queue: job.queue, jobId: job.id, attempt: ctx.attempt, traceparent: envelope.trace };
      return traceProcess(trace, async () => {
        // A caller never told of the start still gets the result.
        await stepStarted(dispatch, step, ctx.startedAt).catch((e) => worker?.emit('error', e, job));
        let progress: ProgressReporter | undefined; // made on the first report: most handlers send none
        let seq = Date.now() * 1000; // as ProgressReporter numbers its reports
        const report = local
          ? async (value: unknown) => {
              assertJson(value, 'progress');
              const to = envelope.reply;
              if (to) await dispatch.reply(to, { key: to.key, kind: 'progress', jobId: job.id, value, seq: ++seq, at: Date.now() });
            }
          : (value: unknown) => (progress ??= new ProgressReporter(this.client, job.id, envelope.reply)).report(value);
        let result: R;
        try {
          result = await handler(job.body.args, { ...ctx, job, progress: report });
        } catch (e) {
          await progress?.settle();
          if (revoked(ctx.signal)) await this.revokedWhileRunning(dispatch, job.id, envelope, batchDone);
          throw e;
        }
        await progress?.settle();
        if (revoked(ctx.signal)) {
          await this.revokedWhileRunning(dispatch, job.id, envelope, batchDone);
          return result;
        }
        // Before the ACK: a worker killed here leaves the step to run again.
        await stepSucceeded(dispatch, step, result, new Date());
        await batchDone(envelope, 'ok');
        return result;
      });
    };
    const onGiveUp = async (job: Job<TaskEnvelope<A>>, error: unknown, info: { attempt: number }) => {
      await options.onGiveUp?.(job, error, info);
      if (job.body?.task !== this.name) return;
      await stepGivenUp(dispatch, { id: job.id, envelope: job.body }, error, info.attempt, new Date());
      await batchDone(job.body as TaskEnvelope<unknown>, 'failed');
    };
    const retries = options.retries ?? (options.maxAttempts === undefined ? (this.options.retries ?? 0) : undefined);
    const opts: WorkerOptions<TaskEnvelope<A>> = { ...options, onGiveUp, ...(retries === undefined ? {} : { retries }) };
    if (local) {
      // Nothing to fetch, no signals to handle: the worker only carries the events.
      delete opts.handleSignals;
      worker = new Worker(this.client.withCodec(this.codec), this.queues, jobHandler, { ...opts, autostart: false });
      registerLocal(this.name, worker, jobHandler, opts);
    } else {
      worker = new Worker(this.client.withCodec(this.codec), this.queues, jobHandler, opts);
      const w = worker;
      this.applyPolicy().catch((e) => w.emit('error', e));
    }
    return worker;
  }

  // ---- internals ----------------------------------------------------------

  /** The handler's job was acknowledged elsewhere (revoked) while it ran: tell the caller and the batch. */
  private async revokedWhileRunning(
    dispatch: Dispatch,
    jobId: string,
    envelope: TaskEnvelope<unknown>,
    batchDone: (e: TaskEnvelope<unknown>, o: BatchOutcome) => Promise<void>,
  ): Promise<void> {
    const to = envelope.reply;
    if (to) await dispatch.reply(to, { key: to.key, kind: 'revoked', jobId, at: Date.now() });
    await batchDone(envelope, 'revoked');
  }

  /** This task as a later step of a chain. */
  step(): ChainStep {
    const d = this.options.defaults;
    return { task: this.name, queue: this.queueFor(), ...(d === undefined ? {} : { options: d }) };
  }

  /** Enqueues a call (the first step of a chain when `tail` is given). */
  async call(args: A, options: EnqueueOptions, tail: ChainTail): Promise<string | ResultHandle<R>> {
    this.check(args);
    const { priority, result, ...addOptions } = options;
    const queue = this.queueFor(priority);
    const unique = this.uniqueKey(args, options);
    if (unique !== undefined) {
      // A deduplicated call returns the first call's job, whose result goes to the first caller.
      if (result !== undefined) throw new RangeError(`task ${this.name}: a unique call cannot ask for its result (the first call's caller gets it)`);
      addOptions.unique = unique;
    }
    const call = this.envelope(args, result, tail);
    const span = startEnqueueSpan({ task: this.name, queue });
    if (span) call.envelope.trace = span.traceparent;
    let id: string;
    try {
      id = this.immediate
        ? await runLocally(queue, call.envelope)
        : await this.client.addJob<TaskEnvelope<A>>(queue, call.envelope, { ...this.options.defaults, ...addOptions, codec: this.codec });
    } catch (error) {
      span?.end({ error });
      throw error;
    }
    span?.end({ jobId: id });
    return call.handle(id) ?? id;
  }

  /**
   * Enqueues calls in bulk: pipelined through addJobs, or one after the
   * other in immediate mode (each call runs as it is enqueued). Handles are
   * made only for calls that were added.
   */
  async callMany(
    argsList: readonly A[],
    options: EnqueueOptions & { batchSize?: number },
    tail: ChainTail,
  ): Promise<AddJobsResult & { handles: (ResultHandle<R> | undefined)[] }> {
    for (const args of argsList) this.check(args);
    if (argsList.length > 0 && this.uniqueKey(argsList[0]!, options) !== undefined) {
      // Each call has its own UNIQUE key: one ADDJOB after the other.
      const out: AddJobsResult & { handles: (ResultHandle<R> | undefined)[] } = { ids: [], failed: [], handles: [] };
      for (const [index, args] of argsList.entries()) {
        try {
          const r = await this.call(args, options, tail);
          out.ids.push(typeof r === 'string' ? r : r.id);
          out.handles.push(typeof r === 'string' ? undefined : r);
        } catch (error) {
          out.ids.push(undefined);
          out.handles.push(undefined);
          out.failed.push({ index, error: error as Error });
        }
      }
      return out;
    }
    const { priority, result, batchSize, ...addOptions } = options;
    const queue = this.queueFor(priority);
    const calls = argsList.map((args, index) => this.envelope(args, result, tail, index));
    const span = startEnqueueSpan({ task: this.name, queue });
    if (span) for (const c of calls) c.envelope.trace = span.traceparent;
    let added: AddJobsResult;
    if (this.immediate) {
      added = { ids: [], failed: [] };
      for (const [index, c] of calls.entries()) {
        try {
          added.ids.push(await runLocally(queue, c.envelope));
        } catch (error) {
          added.ids.push(undefined);
          added.failed.push({ index, error: error as Error });
        }
      }
    } else {
      added = await this.client.addJobs<TaskEnvelope<A>>(
        queue,
        calls.map((c) => c.envelope),
        { ...this.options.defaults, ...addOptions, codec: this.codec, ...(batchSize === undefined ? {} : { batchSize }) },
      );
    }
    span?.end({ count: added.ids.length - added.failed.length, ...(added.failed.length > 0 ? { error: added.failed[0]!.error } : {}) });
    const handles = added.ids.map((id, i) => (id === undefined ? calls[i]!.abandon() : calls[i]!.handle(id)));
    return { ...added, handles };
  }

  /** A call's envelope and, when it wants a result, the slot its replies go to. */
  private envelope(args: A, result: EnqueueOptions['result'], tail: ChainTail, index = 0) {
    const inbox = result === undefined ? undefined : ReplyInbox.of(this.client);
    const opened = inbox?.open(result === true ? undefined : result?.ttl);
    const envelope: TaskEnvelope<A> = { task: this.name, args };
    if (opened) envelope.reply = opened.to as ReplyTo;
    if (tail.next?.length) envelope.next = tail.next;
    if (tail.onError) envelope.onError = tail.onError;
    if (tail.batch) envelope.batch = { ...tail.batch, index };
    return {
      envelope,
      handle: (id: string) => (opened ? new ResultHandle<R>(id, opened.to, opened.slot, inbox!, this.control()) : undefined),
      /** Not added: nobody will reply, stop waiting for it. */
      abandon: (): undefined => {
        if (opened) inbox!.close(opened.to.key);
        return undefined;
      },
    };
  }

  private get immediate(): boolean {
    return this.options.immediate ?? immediateMode();
  }

  private check(args: A): void {
    const { validate } = this.options;
    if (validate) {
      let ok: unknown;
      try {
        ok = validate(args);
      } catch (e) {
        throw new InvalidArgumentsError(`task ${this.name}: invalid arguments: ${(e as Error).message ?? e}`, undefined, { cause: e });
      }
      if (ok === false) throw new InvalidArgumentsError(`task ${this.name}: invalid arguments (refused by validate)`);
    }
    try {
      assertJson(args);
    } catch (e) {
      if (e instanceof InvalidArgumentsError) throw new InvalidArgumentsError(`task ${this.name}: ${e.message}`, e.path);
      throw e;
    }
  }

  private control(): HandleControl {
    if (this.immediate) {
      return {
        revoke: async () => false,
        reschedule: async (id) => {
          throw new AlreadyDeliveredError(`job ${id} already ran (immediate mode)`);
        },
        progress: async () => undefined,
      };
    }
    return {
      revoke: (id) => revokeCall(this.client, id),
      reschedule: (id, delay) => rescheduleJob(this.client, id, delay),
      progress: (id) => readProgress(this.client, id),
    };
  }

  private serverDispatch(): Dispatch {
    return {
      add: async (step, envelope) => {
        // A step enqueued by a handler: its span is a child of the processing span.
        const span = startEnqueueSpan({ task: step.task, queue: step.queue });
        if (span) envelope.trace = span.traceparent;
        try {
          const id = await this.client.addJob<TaskEnvelope<unknown>>(step.queue, envelope, { ...step.options, codec: jsonCodec() });
          span?.end({ jobId: id });
          return id;
        } catch (error) {
          span?.end({ error });
          throw error;
        }
      },
      reply: (to, msg) => sendReply(this.client, to, msg),
    };
  }
}

/**
 * Several tasks run one after the other: each step's result is the next
 * step's arguments, and the worker that finished a step enqueues the next.
 * `result()` of a chain call is the last step's result.
 */
export class Chain<A, R> {
  constructor(
    private readonly first: Task<A, any>,
    private readonly rest: ChainStep[],
    private readonly onError?: ChainStep,
  ) {}

  /** The chain followed by `next`. */
  then<R2>(next: Task<R, R2>): Chain<A, R2> {
    return new Chain<A, R2>(this.first, [...this.rest, next.step()], this.onError);
  }

  /** The chain with `handler` called (with a TaskFailure) when one of its steps is given up. */
  catch(handler: Task<TaskFailure, unknown>): Chain<A, R> {
    return new Chain<A, R>(this.first, this.rest, handler.step());
  }

  /** Enqueues the first step; options apply to it. */
  enqueue(args: A, options: EnqueueOptions & { result: ResultOptions | true }): Promise<ResultHandle<R>>;
  enqueue(args: A, options?: EnqueueOptions & { result?: undefined }): Promise<string>;
  enqueue(args: A, options: EnqueueOptions = {}): Promise<string | ResultHandle<R>> {
    return this.first.call(args, options, this.tail()) as Promise<string | ResultHandle<R>>;
  }

  /** Runs the chain once per element of `argsList` (pipelined, as Task.map); the group's result is the chains' results in order. */
  map(argsList: readonly A[], options: EnqueueOptions = {}): Promise<GroupHandle<R>> {
    return mapCalls(this.first, argsList, options, this.tail());
  }

  private tail(): ChainTail {
    return { ...(this.rest.length > 0 ? { next: this.rest } : {}), ...(this.onError ? { onError: this.onError } : {}) };
  }
}

async function mapCalls<A, R>(first: Task<A, any>, argsList: readonly A[], options: EnqueueOptions, tail: ChainTail): Promise<GroupHandle<R>> {
  const { handles, failed } = await first.callMany(argsList, { ...options, result: options.result ?? true }, tail);
  if (failed.length > 0) throw failed[0]!.error;
  return new GroupHandle(handles as ResultHandle<R>[]);
}

/**
 * Declares a named task. Producers call `enqueue(args)`, workers call
 * `process(handler)`; both sides declare it the same way.
 */
export function task<A = unknown, R = unknown>(client: Disque<any>, name: string, options?: TaskOptions): Task<A, R> {
  return new Task<A, R>(client as Disque<unknown>, name, options);
}

/** JSON with object keys sorted, so equal arguments give one UNIQUE key whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** True when the handler's signal was aborted because its job was acknowledged elsewhere (the worker's JobRevokedError). */
function revoked(signal: AbortSignal): boolean {
  return signal.aborted && (signal.reason as { name?: unknown } | undefined)?.name === 'JobRevokedError';
}

/**
 * Revokes a call: ACKJOB, then, when the node holds the call, its revoked
 * outcome goes where a worker's result would (the caller's reply queue,
 * the batch's tally), so they learn it even though no worker runs it.
 */
async function revokeCall(client: Disque<unknown>, id: string): Promise<boolean> {
  const job = await client.show(id, { codec: bufferCodec }).catch(() => null);
  const known = await revokeJob(client, id);
  if (job === null || job.state === 'acked') return known;
  let envelope: TaskEnvelope<unknown>;
  try {
    envelope = JSON.parse(job.body.toString('utf8')) as TaskEnvelope<unknown>;
  } catch {
    return known; // not a task call
  }
  const to = envelope.reply;
  if (to) await sendReply(client, to, { key: to.key, kind: 'revoked', jobId: id, at: Date.now() });
  if (envelope.batch) await recordOutcome(client, envelope.batch, envelope.batch.index, 'revoked');
  return known;
}
