// Chains: what happens when a step of a task call starts, finishes or is
// given up. The worker that finished a step enqueues the next one (with the
// step's result as its arguments) before it acknowledges the step, so a
// worker killed in between leaves the step to be delivered again: steps run
// at least once, like any Disque job. The same code runs in immediate mode,
// where adding a job means running it here.
import type { ChainStep, RemoteError, ReplyMessage, ReplyTo, TaskEnvelope, TaskFailure } from './envelope.js';
import { remoteError } from './envelope.js';

/** How a step reaches the next one and the caller. */
export interface Dispatch {
  /** Adds the job of a chain step. */
  add(step: ChainStep, envelope: TaskEnvelope<unknown>): Promise<unknown>;
  /** Sends a reply to the caller. */
  reply(to: ReplyTo, msg: ReplyMessage): Promise<void>;
}

/** The job being processed, as the chain needs it. */
export interface StepJob {
  id: string;
  envelope: TaskEnvelope<unknown>;
}

/** A worker began the step at `startedAt`: tell a caller waiting for `started()` (first step only). */
export async function stepStarted(d: Dispatch, job: StepJob, startedAt: Date): Promise<void> {
  const to = job.envelope.reply;
  if (to?.started) await d.reply(to, { key: to.key, kind: 'started', jobId: job.id, startedAt: startedAt.getTime() });
}

/** The step's handler returned `result` at `finishedAt`: enqueue the next step, or reply with the result. */
export async function stepSucceeded(d: Dispatch, job: StepJob, result: unknown, finishedAt: Date): Promise<void> {
  const { next, reply, onError } = job.envelope;
  const [step, ...rest] = next ?? [];
  if (step) {
    // JSON leaves undefined out: a handler that returned nothing passes null on.
    const env: TaskEnvelope<unknown> = { task: step.task, args: result === undefined ? null : result };
    if (rest.length > 0) env.next = rest;
    if (onError) env.onError = onError;
    if (reply) env.reply = { queue: reply.queue, key: reply.key, ttl: reply.ttl };
    await d.add(step, env);
    return;
  }
  if (reply) {
    const value = result === undefined ? null : result;
    await d.reply(reply, { key: reply.key, kind: 'result', jobId: job.id, value, finishedAt: finishedAt.getTime() });
  }
}

/** The worker gave up on the step at `finishedAt`: call the chain's catch task, tell the caller. */
export async function stepGivenUp(d: Dispatch, job: StepJob, error: unknown, attempts: number, finishedAt: Date): Promise<void> {
  const { task, args, onError, reply } = job.envelope;
  const remote: RemoteError = remoteError(error);
  if (onError) {
    const failure: TaskFailure = { task, jobId: job.id, args, error: remote, attempts };
    await d.add(onError, { task: onError.task, args: failure });
  }
  if (reply) await d.reply(reply, { key: reply.key, kind: 'error', jobId: job.id, task, error: remote, attempts, finishedAt: finishedAt.getTime() });
}
