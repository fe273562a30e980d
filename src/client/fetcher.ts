// A Worker's fetching: GETJOB on a connection of its own, as many jobs as
// the worker wants (free slots, and jobs to hold ahead). It first asks without blocking (NOHANG), so it knows
// when the queues run empty (the `drained` event), and blocks (TIMEOUT
// fetchTimeout) only when they are. Stopping interrupts a blocked GETJOB
// (Disque.interrupt): jobs the server had already sent still arrive, and are
// handed back, so stopping is immediate and loses nothing.
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { ClientClosedError, InterruptedError } from './errors.js';
import type { Job, NodeInfo } from './types.js';

/** What the fetcher needs from its worker. */
export interface FetchTarget {
  /** Jobs the worker wants now: free slots, and room to hold jobs ahead. */
  freeSlots(): number;
  /** Resolves when a slot frees, or when `signal` aborts. */
  slotFreed(signal: AbortSignal): Promise<void>;
  /** Jobs fetched from node `nodeId`, to start. */
  deliver(jobs: Job<Buffer>[], nodeId: string | undefined): void;
  /** Jobs that arrived after fetching stopped: to be queued again. */
  handBack(jobs: Job<Buffer>[], nodeId: string | undefined): Promise<void>;
  /** The first connection is up. */
  ready(): void;
  /** A fetch found the queues empty (once each time they run empty). */
  drained(): void;
  /** A fetch failed (the client already tried other nodes). */
  fetchFailed(error: unknown): void;
}

export interface FetchOptions {
  queues: string[];
  fetchTimeout: number;
  /** Fill each job's createdAt (SHOW). */
  withCreatedAt: boolean;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

export class JobFetcher {
  /** The fetching connection (a duplicate of the worker's client). */
  readonly client: Disque<unknown>;
  private run: { stop: AbortController; done: Promise<void> } | undefined;
  /** The end of the last run stopped, for a stop() called while another waits for it. */
  private stopped: Promise<void> = Promise.resolve();
  private connecting: Promise<void> | undefined;
  private isReady = false;
  /** The queues were found empty and no job came since. */
  private isDrained = false;

  constructor(
    source: Disque<unknown>,
    private readonly options: FetchOptions,
    private readonly target: FetchTarget,
  ) {
    this.client = source.duplicate({ followProducers: false });
  }

  get node(): NodeInfo | undefined {
    return this.client.node;
  }

  get running(): boolean {
    return this.run !== undefined;
  }

  /** Connects (once); `ready` is reported the first time. */
  connect(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    this.connecting ??= this.client
      .connect()
      .then(() => {
        if (this.isReady) return;
        this.isReady = true;
        this.target.ready();
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  /** Starts fetching (again). */
  start(): void {
    if (this.run) return;
    const stop = new AbortController();
    this.run = { stop, done: this.loop(stop.signal).catch((e) => this.target.fetchFailed(e)) };
  }

  /** Stops fetching; resolves when no fetch is in flight (a blocked GETJOB is interrupted). */
  stop(): Promise<void> {
    const run = this.run;
    if (run) {
      this.run = undefined;
      this.stopped = run.done;
      run.stop.abort();
      this.client.interrupt();
    }
    return this.stopped;
  }

  /** Closes the connection (after stop()). */
  close(): Promise<void> {
    return this.client.quit().catch(() => this.client.disconnect());
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let block = false;
    while (!signal.aborted) {
      const free = this.target.freeSlots();
      if (free <= 0) {
        await this.target.slotFreed(signal);
        continue;
      }
      let jobs: Job<Buffer>[];
      try {
        await this.connect();
        jobs = await this.client.getJob(this.options.queues, {
          count: free,
          withCounters: true,
          withCreatedAt: this.options.withCreatedAt,
          codec: bufferCodec,
          ...(block ? { timeout: this.options.fetchTimeout } : { noHang: true }),
        });
        failures = 0;
      } catch (e) {
        if (signal.aborted || e instanceof ClientClosedError) break;
        if (e instanceof InterruptedError) continue; // not by stop(): ask again
        this.target.fetchFailed(e);
        await sleep(Math.min(5000, 250 * 2 ** failures++), signal);
        continue;
      }
      const nodeId = this.client.node?.id;
      if (signal.aborted) {
        // The reply raced stop(): hand the jobs back rather than start them.
        await this.target.handBack(jobs, nodeId);
        break;
      }
      this.target.deliver(jobs, nodeId);
      if (jobs.length > 0) this.isDrained = false;
      // Fewer jobs than asked for: nothing more is queued on this node now.
      if (jobs.length < free && !this.isDrained) {
        this.isDrained = true;
        this.target.drained();
      }
      block = jobs.length === 0;
    }
  }
}
