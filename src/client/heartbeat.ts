// WORKING for one running job, and noticing that it was revoked.
//
// A handler that returns quickly needs no WORKING: its ACK comes long before
// the server would queue the job again (retry time, at least 1 s, less up to
// 250 ms of jitter). So the first WORKING goes out only FIRST_WORKING_MS
// after the job was delivered, then every interval. Each beat first asks the
// delivering node for the job (SHOW): acknowledged (ACKJOB from any client
// or node, the dashboard) or gone (DELJOB) means revoked, and the handler
// is told; WORKING's NOJOB means the same.
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { ClientClosedError, NoJobError, TooLateError } from './errors.js';

/** Milliseconds after delivery before the first WORKING: under the shortest requeue (1 s retry less 250 ms jitter) with room for a round trip. */
export const FIRST_WORKING_MS = 250;

export interface HeartbeatOptions {
  /** Milliseconds between WORKING commands, or 'auto' (half the retry time less 250 ms, at least 100 ms); 0: none. */
  interval: number | 'auto';
  /** Milliseconds between revocation checks at most (they also happen with each WORKING); 0: only with WORKING. */
  checkEvery: number;
}

export interface HeartbeatTarget {
  /** The connection to the node that delivered the job. */
  client(): Disque<unknown>;
  /** False once the worker no longer acts on the job. */
  live(): boolean;
  /** The job was acknowledged or deleted elsewhere. */
  revoked(): void;
  error(e: unknown): void;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private nextWorkingAt = 0;
  private workingStopped = false;
  private stopped = false;

  constructor(
    private readonly id: string,
    private readonly options: HeartbeatOptions,
    private readonly target: HeartbeatTarget,
  ) {}

  /** Starts beating; `deliveredAt` (Date.now() units) is when the job was fetched. */
  start(deliveredAt: number): void {
    if (this.options.interval === 0 && this.options.checkEvery === 0) return;
    const first = typeof this.options.interval === 'number' && this.options.interval > 0 ? Math.min(this.options.interval, FIRST_WORKING_MS) : FIRST_WORKING_MS;
    this.schedule(Math.max(0, deliveredAt + first - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(), ms);
  }

  private async beat(): Promise<void> {
    if (!this.alive()) return;
    const c = this.target.client();
    try {
      const job = await c.show(this.id, { codec: bufferCodec });
      if (!this.alive()) return;
      if (job === null || job.state === 'acked') return this.revoke();
    } catch (e) {
      if (e instanceof ClientClosedError) return;
      // SHOW failing says nothing about the job: WORKING still matters.
    }
    let retry: number | undefined;
    const sendWorking = this.options.interval !== 0 && !this.workingStopped && Date.now() >= this.nextWorkingAt;
    if (sendWorking) {
      try {
        retry = await c.working(this.id);
      } catch (e) {
        if (!this.alive()) return;
        if (e instanceof NoJobError) return this.revoke();
        if (e instanceof ClientClosedError) return;
        this.target.error(e);
        // TOOLATE: no more postponing; the job may be delivered again meanwhile.
        if (e instanceof TooLateError) this.workingStopped = true;
        else retry = 1; // try again soon
      }
      if (!this.alive()) return;
      // At-most-once job (retry 0): nothing to postpone.
      if (retry === 0 && this.options.interval === 'auto') this.workingStopped = true;
      if (retry !== undefined) {
        const iv = this.options.interval;
        this.nextWorkingAt = Date.now() + (iv === 'auto' ? Math.max(100, (retry * 1000) / 2 - 250) : iv);
      }
    }
    const check = this.options.checkEvery;
    const untilWorking = this.options.interval === 0 || this.workingStopped ? Infinity : Math.max(0, this.nextWorkingAt - Date.now());
    const next = Math.min(untilWorking, check > 0 ? check : Infinity);
    if (next !== Infinity) this.schedule(next);
  }

  private alive(): boolean {
    return !this.stopped && this.target.live();
  }

  private revoke(): void {
    this.stop();
    this.target.revoked();
  }
}
