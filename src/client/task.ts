// Named tasks in the spirit of huey and RPQueue: declare a task once, enqueue
// calls from producers, process them in workers. Arguments travel as JSON.
import type { Disque } from './client.js';
import { jsonCodec } from './codec.js';
import type { AddJobOptions, Job } from './types.js';
import { Worker, type JobContext, type WorkerOptions } from './worker.js';

/** The body of a task job. */
export interface TaskEnvelope<A> {
  /** Task name. */
  task: string;
  args: A;
}

export interface TaskOptions {
  /** Queue of the task's jobs. Default: the task name. */
  queue?: string;
  /** ADDJOB options of every enqueue() (each call may override them). Default: the server's. */
  defaults?: Omit<AddJobOptions, 'codec'>;
}

/** What a task handler gets besides the arguments. */
export interface TaskContext<A> extends JobContext {
  job: Job<TaskEnvelope<A>>;
}

export class Task<A = unknown, R = unknown> {
  /** The queue the task's jobs go to. */
  readonly queue: string;
  private readonly codec = jsonCodec<TaskEnvelope<A>>();

  constructor(
    private readonly client: Disque<unknown>,
    readonly name: string,
    private readonly options: TaskOptions = {},
  ) {
    this.queue = options.queue ?? name;
  }

  /** Adds a job calling this task with `args`; returns the job ID. */
  enqueue(args: A, options: Omit<AddJobOptions, 'codec'> = {}): Promise<string> {
    return this.client.addJob<TaskEnvelope<A>>(this.queue, { task: this.name, args }, {
      ...this.options.defaults,
      ...options,
      codec: this.codec,
    });
  }

  /** Starts a Worker running `handler` for each call of this task. */
  process(
    handler: (args: A, ctx: TaskContext<A>) => R | Promise<R>,
    options: WorkerOptions<TaskEnvelope<A>> = {},
  ): Worker<TaskEnvelope<A>> {
    return new Worker(this.client.withCodec(this.codec), this.queue, (job, ctx) => {
      if (job.body?.task !== this.name) {
        throw new Error(`job ${job.id} in queue ${job.queue} is not a call of task ${this.name}`);
      }
      return handler(job.body.args, { ...ctx, job });
    }, options);
  }
}

/**
 * Declares a named task. Producers call `enqueue(args)`, workers call
 * `process(handler)`; both sides declare it the same way.
 */
export function task<A = unknown, R = unknown>(client: Disque<any>, name: string, options?: TaskOptions): Task<A, R> {
  return new Task<A, R>(client as Disque<unknown>, name, options);
}
