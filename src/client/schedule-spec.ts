// When a schedule's ticks fall: `{ every: seconds }` or a crontab line, and
// the rule for ticks that were missed. Pure functions of the spec and a time
// in milliseconds, so every process computes the same ticks and tests need
// no clock.
import { CronExpressionParser } from 'cron-parser';

/** Every `every` seconds, at multiples of `every` since the Unix epoch (`{ every: 60 }` is on the minute). */
export interface EverySpec {
  every: number;
}

/**
 * A crontab line: 5 fields (minute hour day-of-month month day-of-week) or 6
 * (seconds first), or a macro such as `@daily`, in time zone `tz` (an IANA
 * name). Without `tz`, the zone of the process that declares the schedule.
 */
export interface CronSpec {
  cron: string;
  tz?: string;
}

export type ScheduleSpec = EverySpec | CronSpec;

/** A spec with every default filled in, as tokens carry it. */
export type NormalizedSpec = { every: number } | { cron: string; tz: string };

/** Checks a spec and fills in the default time zone. Throws a RangeError for a bad spec. */
export function normalizeSpec(spec: ScheduleSpec): NormalizedSpec {
  if ('every' in spec && spec.every !== undefined) {
    if (!Number.isInteger(spec.every) || spec.every < 1) {
      throw new RangeError(`every must be a positive whole number of seconds, got ${spec.every}`);
    }
    return { every: spec.every };
  }
  if ('cron' in spec && typeof spec.cron === 'string') {
    const tz = spec.tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
    try {
      // Parse once to reject bad lines and zones now, not at the first tick;
      // a line that never matches (`0 0 31 2 *`) fails here too.
      CronExpressionParser.parse(spec.cron, { tz, currentDate: new Date(0) }).next();
    } catch (e) {
      throw new RangeError(`bad cron spec ${JSON.stringify(spec.cron)} (tz ${tz}): ${(e as Error).message}`);
    }
    return { cron: spec.cron, tz };
  }
  throw new RangeError('a schedule spec is { every: seconds } or { cron: "* * * * *", tz? }');
}

/** A string that is equal for equal specs: tokens compare specs with it. */
export function specKey(spec: NormalizedSpec): string {
  return 'every' in spec ? `every ${spec.every}` : `cron ${spec.cron.trim().replace(/\s+/g, ' ')} tz ${spec.tz}`;
}

/** The first tick strictly after `t` (ms). */
export function nextTick(spec: NormalizedSpec, t: number): number {
  if ('every' in spec) {
    const p = spec.every * 1000;
    return (Math.floor(t / p) + 1) * p;
  }
  return CronExpressionParser.parse(spec.cron, { tz: spec.tz, currentDate: new Date(t) }).next().getTime();
}

/** The last tick at or before `t` (ms). */
export function lastTickAtOrBefore(spec: NormalizedSpec, t: number): number {
  if ('every' in spec) {
    const p = spec.every * 1000;
    return Math.floor(t / p) * p;
  }
  // prev() is strictly before its start: start 1 ms later to include t.
  return CronExpressionParser.parse(spec.cron, { tz: spec.tz, currentDate: new Date(t + 1) }).prev().getTime();
}

/** What the holder of the token for tick `tick` does at time `now`. */
export interface TickPlan {
  /** The tick to enqueue now. */
  fire: number;
  /** When ticks were missed: the first missed tick (`tick`); `fire` is the last one. */
  missedFrom?: number;
  /** The tick the next token is for. */
  next: number;
}

/**
 * The missed-tick rule. A tick whose token is taken within `graceMs` of the
 * tick time is enqueued, however late (ticks queued up behind it follow one
 * by one). A tick taken later than that was missed (every scheduler was down,
 * or the cluster could not deliver): of a run of missed ticks only the last
 * one is enqueued, as cron does after a downtime, then the ticks still within
 * the grace follow.
 */
export function planTick(spec: NormalizedSpec, tick: number, now: number, graceMs: number): TickPlan {
  if (now - tick <= graceMs) return { fire: tick, next: nextTick(spec, tick) };
  const fire = Math.max(tick, lastTickAtOrBefore(spec, now - graceMs));
  return fire === tick ? { fire, next: nextTick(spec, fire) } : { fire, missedFrom: tick, next: nextTick(spec, fire) };
}
