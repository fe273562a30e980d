// How disque-migrate reads a job's copies on the source nodes and turns
// them into the IMPORTJOB that recreates the job in the target.
import { describe, it, expect } from 'vitest';
import { parseJobInfo, planMove, type JobInfo } from '../../src/migrate/job-info.js';

const NOW = 1_800_000_000_000;
const ID = 'D-aabbccdd-0123456789abcdefghijklmn-05a1';

function copy(over: Partial<JobInfo> = {}): JobInfo {
  return {
    id: ID,
    queue: Buffer.from('q'),
    state: 'active',
    repl: 3,
    ttl: 3000,
    ctime: `${NOW - 10_000}000042`,
    delay: 0,
    retry: 60,
    nacks: 0,
    deliveries: 0,
    nodesDelivered: ['a', 'b', 'c'],
    requeueWithin: 50_000,
    body: Buffer.from('body'),
    ...over,
  };
}

function plan(...copies: (JobInfo | null)[]) {
  return planMove(new Map(copies.map((c, i) => [`n${i}`, c])), NOW, 5000);
}

/** The IMPORTJOB options as a map (args after id, queue, body, timeout). */
function options(args: (string | Buffer)[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 4; i < args.length; i += 2) o[String(args[i])] = String(args[i + 1]);
  return o;
}

describe('planMove', () => {
  it('a job queued on any node moves queued, with the highest counters and the lowest TTL', () => {
    const p = plan(copy({ ttl: 2990, nacks: 1 }), copy({ state: 'queued', deliveries: 2 }), null);
    expect(p.kind).toBe('queued');
    if (p.kind !== 'queued') return;
    expect(p.queuedOn).toEqual(['n1']);
    expect(p.args.slice(0, 4).map(String)).toEqual([ID, 'q', 'body', '5000']);
    expect(options(p.args)).toEqual({
      REPLICATE: '3',
      TTL: '2990',
      RETRY: '60',
      CTIME: `${NOW - 10_000}000042`,
      NACKS: '1',
      'ADDITIONAL-DELIVERIES': '2',
    });
  });

  it('acked on any node: not moved; wait-repl: looked at again later; no copy: gone', () => {
    expect(plan(copy({ state: 'queued' }), copy({ state: 'acked' })).kind).toBe('acked');
    expect(plan(copy({ state: 'wait-repl' }), copy()).kind).toBe('unsettled');
    expect(plan(null, null).kind).toBe('gone');
  });

  it('a delay not over yet: DELAY is what is left, in whole seconds rounded up', () => {
    const p = plan(copy({ delay: 30, requeueWithin: 20_000 }), copy({ delay: 30, requeueWithin: 80_000 }));
    expect(p.kind).toBe('delayed');
    if (p.kind === 'delayed') expect(options(p.args).DELAY).toBe('20');
  });

  it('active everywhere and past its delay: delivered, back when the first copy would re-queue it', () => {
    const p = plan(copy({ delay: 5, requeueWithin: 42_000 }), copy({ requeueWithin: 57_000 }));
    expect(p.kind).toBe('delivered');
    if (p.kind !== 'delivered') return;
    expect(options(p.args)).toMatchObject({ STATE: 'active', REQUEUE: '42000' });
    expect(options(p.args).DELAY).toBeUndefined();
  });

  it('an at-most-once job already delivered moves as delivered, never re-queued', () => {
    const p = plan(copy({ retry: 0, repl: 1, requeueWithin: null }));
    expect(p.kind).toBe('delivered');
    if (p.kind === 'delivered') expect(options(p.args)).toMatchObject({ STATE: 'active', RETRY: '0', REPLICATE: '1' });
    if (p.kind === 'delivered') expect(options(p.args).REQUEUE).toBeUndefined();
  });

  it('a TTL about to end, or ending before the delay does: left to expire', () => {
    expect(plan(copy({ ttl: 1 })).kind).toBe('expiring');
    expect(plan(copy({ ttl: 15, delay: 30 })).kind).toBe('expiring');
  });
});

describe('parseJobInfo', () => {
  it('reads SHOW as read with Buffers and integers as strings, null next-requeue-within kept', () => {
    const b = (s: string) => Buffer.from(s);
    const reply = [
      b('id'), b(ID), b('queue'), b('q'), b('state'), b('active'), b('repl'), '1', b('ttl'), '100',
      b('ctime'), '1800000000000000001', b('delay'), '0', b('retry'), '0', b('nacks'), '3',
      b('additional-deliveries'), '4', b('nodes-delivered'), [b('n1')], b('nodes-confirmed'), [],
      b('next-requeue-within'), null, b('next-awake-within'), '100', b('body'), Buffer.from([0, 255]),
    ];
    const info = parseJobInfo(reply)!;
    expect(info).toMatchObject({ id: ID, state: 'active', repl: 1, ttl: 100, ctime: '1800000000000000001', nacks: 3, deliveries: 4, nodesDelivered: ['n1'], requeueWithin: null });
    expect([...info.body]).toEqual([0, 255]);
    expect(parseJobInfo(null)).toBeNull();
  });
});
