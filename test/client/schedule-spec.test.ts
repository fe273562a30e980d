// Tick computation and the missed-tick rule: pure functions of a spec and a
// time, so a fake clock is just a number.
import { describe, it, expect } from 'vitest';
import { normalizeSpec, nextTick, lastTickAtOrBefore, planTick, specKey } from '../../src/client/schedule-spec.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('every N seconds', () => {
  const spec = normalizeSpec({ every: 60 });
  it('falls on multiples of N since the epoch, whoever computes it', () => {
    expect(iso(nextTick(spec, at('2024-03-01T10:15:30.250Z')))).toBe('2024-03-01T10:16:00.000Z');
    expect(iso(nextTick(spec, at('2024-03-01T10:16:00.000Z')))).toBe('2024-03-01T10:17:00.000Z');
    expect(iso(lastTickAtOrBefore(spec, at('2024-03-01T10:16:00.000Z')))).toBe('2024-03-01T10:16:00.000Z');
    expect(iso(lastTickAtOrBefore(spec, at('2024-03-01T10:16:59.999Z')))).toBe('2024-03-01T10:16:00.000Z');
  });
  it('refuses what is not a whole number of seconds >= 1', () => {
    expect(() => normalizeSpec({ every: 0 })).toThrow(RangeError);
    expect(() => normalizeSpec({ every: 1.5 })).toThrow(RangeError);
    expect(() => normalizeSpec({} as never)).toThrow(RangeError);
  });
});

describe('cron', () => {
  it('computes the next tick in the given zone, strictly after the time', () => {
    const spec = normalizeSpec({ cron: '0 5 * * tue', tz: 'Europe/Paris' });
    // 05:00 in Paris is 04:00 UTC in winter.
    const t1 = nextTick(spec, at('2024-01-01T00:00:00Z'));
    expect(iso(t1)).toBe('2024-01-02T04:00:00.000Z');
    expect(iso(nextTick(spec, t1))).toBe('2024-01-09T04:00:00.000Z');
    expect(lastTickAtOrBefore(spec, t1)).toBe(t1);
    expect(iso(lastTickAtOrBefore(spec, t1 - 1))).toBe('2023-12-26T04:00:00.000Z');
  });
  it('follows daylight saving time (Paris, last Sunday of March)', () => {
    const spec = normalizeSpec({ cron: '30 9 * * *', tz: 'Europe/Paris' });
    expect(iso(nextTick(spec, at('2024-03-30T12:00:00Z')))).toBe('2024-03-31T07:30:00.000Z');
    expect(iso(nextTick(spec, at('2024-03-29T12:00:00Z')))).toBe('2024-03-30T08:30:00.000Z');
  });
  it('takes a seconds field and macros', () => {
    const s = normalizeSpec({ cron: '*/2 * * * * *', tz: 'UTC' });
    expect(iso(nextTick(s, at('2024-01-01T00:00:05.000Z')))).toBe('2024-01-01T00:00:06.000Z');
    expect(iso(nextTick(normalizeSpec({ cron: '@daily', tz: 'UTC' }), at('2024-01-01T05:00:00Z')))).toBe('2024-01-02T00:00:00.000Z');
  });
  it('fills in the zone of the process and refuses bad lines and zones', () => {
    expect(normalizeSpec({ cron: '* * * * *' })).toEqual({ cron: '* * * * *', tz: Intl.DateTimeFormat().resolvedOptions().timeZone });
    expect(() => normalizeSpec({ cron: 'every tuesday' })).toThrow(RangeError);
    expect(() => normalizeSpec({ cron: '0 0 31 2 *', tz: 'UTC' })).toThrow(RangeError);
    expect(() => normalizeSpec({ cron: '* * * * *', tz: 'Mars/Olympus' })).toThrow(RangeError);
  });
  it('gives equal keys to equal specs only', () => {
    expect(specKey(normalizeSpec({ cron: '0  5 * * tue', tz: 'UTC' }))).toBe(specKey(normalizeSpec({ cron: '0 5 * * tue', tz: 'UTC' })));
    expect(specKey(normalizeSpec({ cron: '0 5 * * tue', tz: 'UTC' }))).not.toBe(specKey(normalizeSpec({ cron: '0 5 * * tue', tz: 'Europe/Paris' })));
    expect(specKey(normalizeSpec({ every: 60 }))).not.toBe(specKey(normalizeSpec({ every: 30 })));
  });
});

describe('the missed-tick rule', () => {
  const every10 = normalizeSpec({ every: 10 });
  const grace = 60_000;
  const t = at('2024-01-01T00:00:00Z');

  it('a tick on time or late within the grace is enqueued, and the chain goes on from it', () => {
    expect(planTick(every10, t, t + 300, grace)).toEqual({ fire: t, next: t + 10_000 });
    expect(planTick(every10, t, t + 59_000, grace)).toEqual({ fire: t, next: t + 10_000 });
  });

  it('after a downtime, only the last missed tick is enqueued, then the ticks within the grace follow', () => {
    // Down for an hour: ticks older than a minute are missed; of those, the
    // last (now - 60 s) is enqueued, then the 6 within the grace, one by one.
    const now = t + 3_600_000;
    const p = planTick(every10, t, now, grace);
    expect(p).toEqual({ fire: now - 60_000, missedFrom: t, next: now - 50_000 });
    const followers: number[] = [];
    for (let tick = p.next; tick <= now; ) {
      const q = planTick(every10, tick, now, grace);
      expect(q.missedFrom).toBeUndefined();
      followers.push(q.fire);
      tick = q.next;
    }
    expect(followers.map((f) => (now - f) / 1000)).toEqual([50, 40, 30, 20, 10, 0]);
  });

  it('with a cron spec, the last missed tick is the last one before the grace', () => {
    const daily = normalizeSpec({ cron: '0 3 * * *', tz: 'UTC' });
    const first = at('2024-01-01T03:00:00Z');
    const now = at('2024-01-05T12:00:00Z'); // down four days
    expect(planTick(daily, first, now, grace)).toEqual({
      fire: at('2024-01-05T03:00:00Z'),
      missedFrom: first,
      next: at('2024-01-06T03:00:00Z'),
    });
  });
});
