// Time source for the core. Every time the core keeps (job ctime, qtime,
// awake time, expire time, queue access times) is in milliseconds relative
// to `base`, the absolute Unix time in ms at which the clock started. Small
// relative values stay small integers in V8, which keeps each job a few
// dozen bytes lighter than absolute millisecond timestamps would.
export interface Clock {
  /** Absolute Unix time in milliseconds that `now()` counts from. */
  readonly base: number;
  /** Milliseconds since `base`. */
  now(): number;
}

/**
 * The process's clock: wall time at start-up, then the monotonic clock
 * (performance.now(), cheaper to read than Date.now() and immune to the
 * wall clock being set back while jobs wait for their times).
 */
export class SystemClock implements Clock {
  readonly base = Date.now();
  private readonly origin = performance.now();
  now(): number {
    return Math.floor(performance.now() - this.origin);
  }
}

/** A clock that only moves when told to: the core's tests run on it. */
export class FakeClock implements Clock {
  private t = 0;
  constructor(readonly base = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}

/** Absolute Unix time in ms for a clock-relative time. */
export function toUnixMs(clock: Clock, rel: number): number {
  return clock.base + rel;
}

/** Clock-relative time for an absolute Unix time in ms. */
export function fromUnixMs(clock: Clock, abs: number): number {
  return abs - clock.base;
}

/** Current Unix time in seconds. */
export function unixSeconds(clock: Clock): number {
  return Math.floor((clock.base + clock.now()) / 1000);
}
