// What a task job carries: the call (task name and arguments) and, for calls
// that want a result or belong to a chain, where the result goes next. It is
// plain JSON so that any Disque client can read and write it.
import type { AddJobOptions } from './types.js';
import { InvalidArgumentsError } from './errors.js';

/** Where the caller waits for the result: its private reply queue and the call's key there. */
export interface ReplyTo {
  queue: string;
  /** Correlation key of the call (chosen by the caller; stays the same across chain steps and reschedules). */
  key: string;
  /** Seconds reply jobs live. */
  ttl: number;
  /** Send a `started` reply when a worker begins this step (the first step of a chain only). */
  started?: boolean;
}

/** A later step of a chain: which task, on which queue, with which ADDJOB options. */
export interface ChainStep {
  task: string;
  queue: string;
  options?: Omit<AddJobOptions, 'codec'>;
}

/** The body of a task job. */
export interface TaskEnvelope<A> {
  /** Task name. */
  task: string;
  args: A;
  /** Send the result (or the error) here. */
  reply?: ReplyTo;
  /** Steps to run after this one, each getting the previous step's result as its arguments. */
  next?: ChainStep[];
  /** Step called with a TaskFailure when a step of the chain is given up. */
  onError?: ChainStep;
  /** W3C traceparent of the enqueue span (tracing.ts); absent when nobody traces. */
  trace?: string;
  /** The batch this call belongs to (batch.ts). */
  batch?: BatchRef;
  /** Set on a batch's callback call: it is held back until its batch is done (batch.ts). */
  batchCallback?: { batch: string; parkedUntil: number };
}

/** What a call of a batch knows about its batch. */
export interface BatchRef {
  /** Batch ID; its tally lives in queue `disque-ts-batch:<id>`. */
  id: string;
  /** Calls in the batch. */
  size: number;
  /** This call's position. */
  index: number;
  /** Parked callback jobs, released when the batch is done. */
  onSuccess?: string;
  onComplete?: string;
  /** Seconds the batch may take (its tally and parked callbacks live that long). */
  ttl: number;
  /** When the batch's TTL ends (ms since the epoch, creator's clock). */
  until: number;
}

/** An error as it travels between processes. */
export interface RemoteError {
  name: string;
  message: string;
  stack?: string;
}

/** The arguments of a chain's `catch` task. */
export interface TaskFailure {
  /** The task that was given up. */
  task: string;
  /** Its job ID. */
  jobId: string;
  /** Its arguments. */
  args: unknown;
  error: RemoteError;
  /** Deliveries counted, including the last one. */
  attempts: number;
}

/**
 * A message in a reply queue. Times are milliseconds since the epoch on the
 * worker's clock (absent from workers older than these fields).
 */
export type ReplyMessage =
  | { key: string; kind: 'started'; jobId: string; startedAt?: number }
  | { key: string; kind: 'result'; jobId: string; value: unknown; finishedAt?: number }
  | { key: string; kind: 'error'; jobId: string; task: string; error: RemoteError; attempts: number; finishedAt?: number }
  | { key: string; kind: 'progress'; jobId: string; value: unknown; seq: number; at?: number }
  | { key: string; kind: 'revoked'; jobId: string; at?: number };

export function remoteError(e: unknown): RemoteError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, ...(err.stack === undefined ? {} : { stack: err.stack }) };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object without prototype';
  return typeof v;
}

/**
 * Throws InvalidArgumentsError unless `value` survives JSON unchanged:
 * null, booleans, finite numbers, strings, arrays and plain objects of
 * those. Object properties that are undefined are allowed (JSON leaves them
 * out, as an optional property would be); Dates, Maps, class instances,
 * functions, BigInts, NaN and cycles are not.
 */
export function assertJson(value: unknown, what = 'args'): void {
  const seen = new Set<object>();
  const walk = (v: unknown, path: string): void => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return;
      case 'number':
        if (!Number.isFinite(v)) throw new InvalidArgumentsError(`${path} is ${v}, which JSON cannot carry`, path);
        return;
      case 'object': {
        if (v === null) return;
        if (seen.has(v)) throw new InvalidArgumentsError(`${path} refers to itself (a cycle); JSON cannot carry it`, path);
        const proto = Object.getPrototypeOf(v);
        if (Array.isArray(v)) {
          seen.add(v);
          v.forEach((x, i) => walk(x, `${path}[${i}]`));
          seen.delete(v);
          return;
        }
        if (proto !== Object.prototype && proto !== null) {
          throw new InvalidArgumentsError(`${path} is a ${describe(v)}; only plain objects, arrays, strings, finite numbers, booleans and null travel as JSON`, path);
        }
        seen.add(v);
        for (const [k, x] of Object.entries(v)) if (x !== undefined) walk(x, `${path}.${k}`);
        seen.delete(v);
        return;
      }
      default:
        throw new InvalidArgumentsError(`${path} is ${describe(v)}, which JSON cannot carry`, path);
    }
  };
  walk(value, what);
}
