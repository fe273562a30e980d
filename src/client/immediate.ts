// Immediate mode: task calls run in the caller's process, at once, without a
// server, for unit tests of the code that uses tasks. Arguments and results
// still go through JSON, handlers get the same context, failures are retried
// up to maxAttempts, chains and results work; nothing is sent anywhere.
import { randomBytes } from 'node:crypto';
import type { Dispatch } from './chain.js';
import { jsonCodec } from './codec.js';
import type { TaskEnvelope } from './envelope.js';
import { DisqueError } from './errors.js';
import { ReplyInbox } from './results.js';
import type { Job } from './types.js';
import type { JobContext, JobHandler, Worker, WorkerOptions } from './worker.js';

let everyTask = false;

/** Runs every task in immediate mode (or stops), except tasks declared with `immediate: false`. */
export function setImmediateMode(on: boolean): void {
  everyTask = on;
}

/** True when setImmediateMode(true) is in force. */
export function immediateMode(): boolean {
  return everyTask;
}

type LocalRun = (job: Job<TaskEnvelope<unknown>>) => Promise<void>;

/** Handlers registered by process() in immediate mode, by task name. */
const handlers = new Map<string, LocalRun>();

const codec = jsonCodec<TaskEnvelope<unknown>>();

/** A job ID of the Disque shape, from no node (prefix 00000000), TTL field of a day. */
function localJobId(): string {
  return `D-00000000-${randomBytes(18).toString('base64')}-05a1`;
}

/** Adds a job in immediate mode: runs it now (and the steps it enqueues); returns its ID. */
export async function runLocally(queue: string, envelope: TaskEnvelope<unknown>): Promise<string> {
  const run = handlers.get(envelope.task);
  if (!run) {
    throw new DisqueError(`task ${envelope.task} has no handler in this process: in immediate mode, call process() on it first`);
  }
  const id = localJobId();
  // The body the handler sees went through the codec, as it would over the wire.
  await run({ id, queue, body: codec.decode(Buffer.from(codec.encode(envelope))) });
  return id;
}

/** Chain steps and replies in immediate mode. */
export const localDispatch: Dispatch = {
  add: (step, envelope) => runLocally(step.queue, envelope),
  reply: async (to, msg) => ReplyInbox.deliverLocally(JSON.parse(JSON.stringify(msg)), to),
};

/**
 * Registers `handler` (the task's job handler) to run jobs of task `name`
 * here, emitting the worker's events. A failing handler is called again
 * up to maxAttempts times (once when maxAttempts is Infinity, the default:
 * the server would retry it until its TTL), without waiting for backoff;
 * then onGiveUp runs and `deadLettered` is emitted (no dead-letter job is
 * written). Unregistered when the worker closes.
 */
export function registerLocal<T extends TaskEnvelope<unknown>>(
  name: string,
  worker: Worker<T>,
  handler: JobHandler<T>,
  options: WorkerOptions<T>,
): void {
  const maxAttempts = options.maxAttempts ?? Infinity;
  const retries = options.retries ?? Infinity;
  const limit = Math.min(maxAttempts, retries + 1) === Infinity ? 1 : Math.min(maxAttempts, retries + 1);
  const run: LocalRun = async (raw) => {
    const job = raw as Job<T>;
    for (let attempt = 1; ; attempt++) {
      const startedAt = new Date();
      const ctx: JobContext = { attempt, signal: new AbortController().signal, nodeId: undefined, working: async () => 0, startedAt };
      worker.emit('active', job, { attempt, startedAt });
      try {
        const result = await handler(job, ctx);
        const finishedAt = new Date();
        worker.emit('completed', job, result, { attempt, durationMs: finishedAt.getTime() - startedAt.getTime(), startedAt, finishedAt });
        return;
      } catch (e) {
        const willRetry = attempt < limit;
        const finishedAt = new Date();
        worker.emit('failed', job, e, willRetry ? { attempt, willRetry, retryInMs: 0, finishedAt } : { attempt, willRetry, finishedAt });
        if (willRetry) continue;
        await options.onGiveUp?.(job, e, { attempt });
        worker.emit('deadLettered', job, e, { attempt });
        return;
      }
    }
  };
  handlers.set(name, run);
  worker.once('closed', () => {
    if (handlers.get(name) === run) handlers.delete(name);
  });
}
