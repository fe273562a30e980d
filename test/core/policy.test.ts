// Queue policies (QPOLICY) on a fake clock: rate windows and concurrency
// caps on one node, consumers served when the limit frees, versions and
// tombstones, and the share arithmetic of a cluster with messages delayed
// at random (no window of the whole cluster over the limit).
import { describe, it, expect, beforeEach } from 'vitest';
import { FakeClock } from '../../src/core/clock.js';
import { JobStore } from '../../src/core/store.js';
import { Job, JobState, newJobFields } from '../../src/core/job.js';
import { generateJobId } from '../../src/core/job-id.js';
import type { QueueWaiter } from '../../src/core/queue.js';
import {
  allocate,
  Policies,
  QueuePolicy,
  RATE,
  CONCURRENCY,
  policyToWire,
  policyFromWire,
  type PolicyRecord,
  type ShareKind,
} from '../../src/core/policy.js';
import { prng } from '../helpers/prng.js';

const ME = 'a'.repeat(40);

function addJob(store: JobStore, queue: string, opts: { retry?: number; delay?: number } = {}): Job {
  const retry = opts.retry ?? 30;
  const now = store.clock.now();
  const fields = newJobFields(generateJobId(ME, 3600, retry), JobState.WaitRepl, store.selfOnly());
  fields.queue = queue;
  fields.body = 'body';
  store.nextCtime(fields);
  fields.etime = now + 3600_000;
  fields.retry = retry;
  fields.delay = opts.delay ?? 0;
  fields.qtime = opts.delay ? now + opts.delay * 1000 : now + retry * 1000;
  const job = store.addJob(fields)!;
  if (!opts.delay) store.enqueueJob(job, false);
  else {
    job.state = JobState.Active;
    store.updateAwakeTime(job);
  }
  return job;
}

function rec(queue: string, rate: [number, number] | null, concurrency: number | null, time = 1000, origin = ME): PolicyRecord {
  return { queue, time, origin, rate: rate === null ? null : { jobs: rate[0], seconds: rate[1] }, concurrency };
}

/** A policy as the node that set it applies it when alone. */
function setAlone(store: JobStore, r: PolicyRecord): void {
  store.applyPolicy(r, allocate(r, [ME]));
}

function waiter(served: Job[]): QueueWaiter {
  return { blockedOn: null, serve: (j) => served.push(j), flushed: () => {}, refuse: () => {} };
}

describe('QPOLICY on one node', () => {
  let clock: FakeClock;
  let store: JobStore;
  beforeEach(() => {
    clock = new FakeClock();
    store = new JobStore({ clock, myId: () => ME, random: () => 0.5 });
  });

  it('RATE: at most N deliveries in any window of S seconds, the job stays queued', () => {
    setAlone(store, rec('q', [3, 2], null));
    for (let i = 0; i < 10; i++) addJob(store, 'q');
    const q = store.lookupQueue('q')!;
    const got = [store.deliverJob(q), store.deliverJob(q), store.deliverJob(q)];
    expect(got.every((j) => j instanceof Job)).toBe(true);
    expect(store.deliverJob(q)).toBeNull();
    expect(q.length).toBe(7);
    clock.advance(1999);
    expect(store.deliverJob(q)).toBeNull();
    clock.advance(1);
    // The window slides: the three deliveries of time 0 have left it.
    expect(store.deliverJob(q)).toBeInstanceOf(Job);
    expect(store.policies.get('q')!.held[RATE]).toBe(2);
  });

  it('RATE holds exactly under random arrivals: no window over the limit, and nothing held without need', () => {
    const r = prng(7);
    setAlone(store, rec('q', [5, 3], null));
    for (let i = 0; i < 2000; i++) addJob(store, 'q');
    const q = store.lookupQueue('q')!;
    const times: number[] = [];
    for (let step = 0; step < 3000; step++) {
      clock.advance(Math.floor(r() * 40));
      const now = clock.now();
      const inWindow = times.filter((t) => t > now - 3000).length;
      const job = store.deliverJob(q);
      if (job) times.push(now);
      // Held back only when the window is full; delivered only when it is not.
      expect(job === null).toBe(inWindow >= 5);
    }
    for (let i = 0; i < times.length; i++) {
      const inWindow = times.filter((t) => t >= times[i]! && t < times[i]! + 3000).length;
      expect(inWindow).toBeLessThanOrEqual(5);
    }
    expect(times.length).toBeGreaterThan(50);
  });

  it('CONCURRENCY: a slot frees on ACK, NACK, a retry re-queue, a re-queue elsewhere and deletion', () => {
    setAlone(store, rec('q', null, 2));
    for (let i = 0; i < 8; i++) addJob(store, 'q', { retry: 5 });
    const q = store.lookupQueue('q')!;
    const take = () => store.deliverJob(q);
    const a = take() as Job;
    const b = take() as Job;
    expect(take()).toBeNull();
    store.acknowledgeJob(a); // ACKJOB
    const c = take() as Job;
    expect(c).toBeInstanceOf(Job);
    expect(take()).toBeNull();
    clock.advance(2000);
    store.enqueueJob(b, true); // NACK (b's next retry: 7 s)
    const d = take() as Job;
    expect(d.id).toBe(b.id);
    expect(take()).toBeNull();
    clock.advance(3500);
    store.processJobs(); // c's retry (5 s): queued again, its delivery is over
    expect(c.state).toBe(JobState.Queued);
    const e = take() as Job;
    expect(e).toBeInstanceOf(Job);
    expect(take()).toBeNull();
    store.releaseDelivery(d); // another node queued d (QUEUED)
    expect(take()).toBeInstanceOf(Job);
    expect(take()).toBeNull();
    store.unregisterJob(e); // DELJOB, FASTACK, expiry
    expect(take()).toBeInstanceOf(Job);
    const p = store.policies.get('q')!;
    expect(p.inflight).toBe(2);
    expect(p.held[CONCURRENCY]).toBe(5);
  });

  it('a blocked consumer is served when the window frees (processJobs) or a slot frees', () => {
    setAlone(store, rec('q', [1, 1], null));
    addJob(store, 'q');
    addJob(store, 'q');
    const q = store.lookupQueue('q')!;
    expect(store.deliverJob(q)).toBeInstanceOf(Job);
    // GETJOB tries first, is held back, then blocks.
    expect(store.deliverJob(q)).toBeNull();
    const served: Job[] = [];
    const w = waiter(served);
    store.block(w, ['q']);
    store.serveBlockedClients();
    expect(served).toHaveLength(0);
    clock.advance(999);
    expect(store.processJobs()).toBe(1); // asks to run again when the window frees
    store.serveBlockedClients();
    expect(served).toHaveLength(0);
    clock.advance(1);
    store.processJobs();
    store.serveBlockedClients();
    expect(served).toHaveLength(1);

    setAlone(store, rec('c', null, 1, 2000));
    addJob(store, 'c');
    addJob(store, 'c');
    const cq = store.lookupQueue('c')!;
    const first = store.deliverJob(cq) as Job;
    expect(store.deliverJob(cq)).toBeNull();
    const served2: Job[] = [];
    store.block(waiter(served2), ['c']);
    store.serveBlockedClients();
    expect(served2).toHaveLength(0);
    store.acknowledgeJob(first);
    store.serveBlockedClients();
    expect(served2).toHaveLength(1);
  });

  it('a newer version replaces the limits and keeps the window; a cleared one frees the queue', () => {
    setAlone(store, rec('q', [2, 10], null, 1000));
    for (let i = 0; i < 6; i++) addJob(store, 'q');
    const q = store.lookupQueue('q')!;
    store.deliverJob(q);
    store.deliverJob(q);
    expect(store.deliverJob(q)).toBeNull();
    // An older version heard later changes nothing.
    expect(store.applyPolicy(rec('q', [100, 1], null, 999), null)).toBe(false);
    expect(store.deliverJob(q)).toBeNull();
    setAlone(store, rec('q', [3, 10], null, 1001));
    // Deliveries of the window still count against the new limit.
    expect(store.deliverJob(q)).toBeInstanceOf(Job);
    expect(store.deliverJob(q)).toBeNull();
    expect(store.applyPolicy(rec('q', null, null, 1002), null)).toBe(true);
    expect(store.policies.get('q')).toBeUndefined();
    expect(store.deliverJob(q)).toBeInstanceOf(Job);
    // The tombstone keeps an older SET from coming back.
    expect(store.applyPolicy(rec('q', [1, 1], null, 1001, 'b'.repeat(40)), null)).toBe(false);
    expect(store.policies.record('q')?.rate).toBeNull();
  });

  it('a policy learned second hand gives no share until the allocation or a grant arrives', () => {
    const r = rec('q', [4, 1], 2);
    store.applyPolicy(r, null);
    addJob(store, 'q');
    const q = store.lookupQueue('q')!;
    expect(store.deliverJob(q)).toBeNull();
    // The same version straight from its maker: our part of it, once.
    store.applyPolicy(r, allocate(r, [ME, 'b'.repeat(40)]));
    store.applyPolicy(r, allocate(r, [ME, 'b'.repeat(40)]));
    const p = store.policies.get('q')!;
    expect([p.share[RATE], p.share[CONCURRENCY]]).toEqual([2, 1]);
    expect(store.deliverJob(q)).toBeInstanceOf(Job);
  });
});

describe('policy records', () => {
  it('allocate splits each limit among the nodes, summing to it, the same on every node', () => {
    const ids = ['c'.repeat(40), 'a'.repeat(40), 'b'.repeat(40)];
    const r = rec('q', [10, 1], 4);
    const al = allocate(r, ids);
    expect(al).toEqual(allocate(r, [...ids].reverse()));
    expect(Object.values(al).reduce((s, [x]) => s + x, 0)).toBe(10);
    expect(Object.values(al).reduce((s, [, y]) => s + y, 0)).toBe(4);
    expect(al['a'.repeat(40)]).toEqual([4, 2]);
    expect(allocate(rec('q', [1, 1], null), ids)['c'.repeat(40)]).toEqual([0, 0]);
  });

  it('digests agree exactly when the records do; wire form round-trips', () => {
    const a = new Policies();
    const b = new Policies();
    const r1 = rec('q1', [1, 2], null, 10);
    const r2 = rec('q2', null, 3, 11);
    a.apply(r1, null, ME);
    a.apply(r2, null, ME);
    b.apply(r2, null, ME);
    expect(a.digest()).not.toBe(b.digest());
    b.apply(r1, null, ME);
    expect(a.digest()).toBe(b.digest());
    b.apply(rec('q1', null, null, 12), null, ME);
    expect(a.digest()).not.toBe(b.digest());
    expect(new Policies().digest()).toBe(0);
    const al = allocate(r1, [ME]);
    expect(policyFromWire(policyToWire(r1, al))).toEqual({ rec: r1, alloc: al });
    expect(policyFromWire({ q: 'x', t: 1, o: ME, r: [0, 1] })).toBeNull();
    expect(policyFromWire({ q: 'x', t: 'no', o: ME })).toBeNull();
  });
});

describe('shares across nodes', () => {
  /**
   * Three nodes' views of one policy, each with its own consumers; asks and
   * grants travel with random delays (and some are lost). Whatever moves,
   * every window of the cluster's deliveries stays within the limit, and
   * capacity follows demand.
   */
  function simulate(seed: number, kind: ShareKind, lossy: boolean): void {
    const r = prng(seed);
    const clock = new FakeClock();
    const ids = ['n1', 'n2', 'n3'];
    const record = kind === RATE ? rec('q', [12, 2], null) : rec('q', null, 6);
    const al = allocate(record, ids);
    const nodes = ids.map((id) => {
      const p = new QueuePolicy(record);
      p.applyAlloc(al, id);
      return { id, p, inflight: [] as number[] };
    });
    type Msg = { at: number; to: string; from: string; w?: number; g?: number };
    let net: Msg[] = [];
    const deliveries: number[] = [];
    // Demand moves: one node wants jobs for a while, then another.
    for (let t = 0; t < 60_000; t += 5) {
      clock.set(t);
      const hot = Math.floor(t / 7000) % 3;
      for (const n of nodes) {
        // Jobs in flight finish after a while (concurrency).
        n.inflight = n.inflight.filter((end) => {
          if (end > t) return true;
          n.p.inflight--;
          return false;
        });
        const wants = n.id === ids[hot] || r() < 0.02;
        if (wants) {
          if (n.p.tryDeliver(t)) {
            n.p.delivered(t);
            deliveries.push(t);
            if (kind === CONCURRENCY) n.inflight.push(t + 200 + Math.floor(r() * 800));
          } else if (t - n.p.lastAsk >= 200) {
            n.p.lastAsk = t;
            for (const o of nodes) {
              if (o !== n && r() > 0.1) net.push({ at: t + Math.floor(r() * 300), to: o.id, from: n.id, w: Math.ceil(n.p.want(kind) / 2) });
            }
          }
        }
        for (const g of n.p.takeReadyGives(t)) {
          // A lost grant loses its part (until the cluster's rebase, not simulated here): never more.
          if (!lossy || r() > 0.1) net.push({ at: t + Math.floor(r() * 300), to: g.to, from: n.id, g: g.amount });
        }
      }
      const due = net.filter((m) => m.at <= t);
      net = net.filter((m) => m.at > t);
      for (const m of due) {
        const n = nodes.find((x) => x.id === m.to)!;
        if (m.g !== undefined) n.p.receive(kind, m.g);
        else n.p.decideGive(kind, m.from, m.w!, t);
      }
      // Shares never add up to more than the limit.
      const held = nodes.reduce((s, n) => s + n.p.holding(kind), 0) + net.reduce((s, m) => s + (m.g ?? 0), 0);
      expect(held).toBeLessThanOrEqual(record.rate?.jobs ?? record.concurrency!);
      if (kind === CONCURRENCY) {
        expect(nodes.reduce((s, n) => s + n.p.inflight, 0)).toBeLessThanOrEqual(6);
      }
    }
    if (kind === RATE) {
      for (let i = 0; i < deliveries.length; i++) {
        let n = 0;
        for (let k = i; k < deliveries.length && deliveries[k]! < deliveries[i]! + 2000; k++) n++;
        expect(n).toBeLessThanOrEqual(12);
      }
    }
    if (lossy) return;
    // Capacity followed the demand: most of the limit was used over the run.
    const expected = kind === RATE ? (60_000 / 2000) * 12 : 60_000 / 700;
    expect(deliveries.length).toBeGreaterThan(expected * 0.5);
  }

  for (const seed of [1, 2, 3]) {
    it(`rate shares move with demand and no 2 s window of the cluster exceeds 12 (seed ${seed})`, () => simulate(seed, RATE, false));
    it(`concurrency shares move with demand and never more than 6 in flight (seed ${seed})`, () => simulate(seed, CONCURRENCY, false));
  }
  it('with grants lost on the way, still no window over the limit (capacity is lost, never added)', () => {
    simulate(4, RATE, true);
    simulate(5, CONCURRENCY, true);
  });

  it('a node wanting jobs itself keeps a fair part when asked, and gives only what its window no longer uses', () => {
    const r = rec('q', [10, 1], null);
    const idle = new QueuePolicy(r);
    idle.applyAlloc({ me: [10, 0] }, 'me');
    // Not wanting deliveries: gives what is asked, from its share at once.
    expect(idle.decideGive(RATE, 'other', 10, 0)).toBe(10);
    expect(idle.share[RATE]).toBe(0);
    expect(idle.takeReadyGives(0)).toEqual([{ to: 'other', kind: RATE, amount: 10 }]);

    const busy = new QueuePolicy(r);
    busy.applyAlloc({ me: [10, 0] }, 'me');
    for (let i = 0; i < 10; i++) busy.delivered(0);
    expect(busy.tryDeliver(100)).toBe(false); // held back: it wants deliveries
    expect(busy.decideGive(RATE, 'other', 10, 150)).toBe(5);
    expect(busy.share[RATE]).toBe(5);
    // Its window still holds 10 deliveries: the grant waits until they leave it.
    expect(busy.takeReadyGives(150)).toHaveLength(0);
    expect(busy.holding(RATE)).toBe(10);
    expect(busy.takeReadyGives(1000)).toEqual([{ to: 'other', kind: RATE, amount: 5 }]);
    expect(busy.holding(RATE)).toBe(5);
  });
});
