// Queues: the list (this node's, or summed over the cluster), the rates
// for the charts, a queue's jobs page by page, PAUSE, and its QPOLICY
// (docs/http-api.md).
import type { Router } from './router.js';
import { HttpError, readJsonBody } from './router.js';
import { Api, pairs, bodyPreview, plain } from './api.js';
import { askPeers } from './peers.js';
import { sumSeries, type RatesSeries } from './rates.js';
import { fromWire, toWire } from './names.js';
import { pausedStateName } from '../core/queue.js';
import { RATE, CONCURRENCY, type PolicyRecord, type RateLimit } from '../core/policy.js';
import type { RespValue } from '../protocol/reply-reader.js';

export interface QueueRow {
  name: string;
  total: number;
  perNode: Record<string, number>;
  paused: 'none' | 'in' | 'out' | 'all';
  oldestAge: number | null;
  addedPerSec: number;
  ackedPerSec: number;
  /** Jobs scheduled for later (ADDJOB DELAY, NACK DELAY). */
  delayed: number;
  /** The queue's QPOLICY, null when none. */
  policy: PolicyView | null;
}

/** A policy as JSON: the limits and the version (Unix ms, node ID). */
export interface PolicyView {
  rate: RateLimit | null;
  concurrency: number | null;
  setAt: number;
  setBy: string;
}

function policyView(r: PolicyRecord | undefined): PolicyView | null {
  if (r === undefined || (r.rate === null && r.concurrency === null)) return null;
  return { rate: r.rate, concurrency: r.concurrency, setAt: r.time, setBy: r.origin };
}

const PAGE_DEFAULT = 50;
const PAGE_MAX = 1000;
/** JSCAN calls one page may take before answering with fewer jobs and a cursor. */
const SCAN_CALLS_MAX = 20;

export function localQueues(api: Api): QueueRow[] {
  const { store, myId } = api.host;
  const out: QueueRow[] = [];
  const seen = new Set<string>();
  for (const q of store.allQueues()) {
    const age = store.oldestJobAge(q);
    const { addedPerSec, ackedPerSec } = api.rates.queueRates(q);
    seen.add(q.name);
    out.push({
      name: fromWire(q.name),
      total: q.length,
      perNode: { [myId]: q.length },
      paused: pausedStateName(q.flags),
      oldestAge: age < 0 ? null : Math.floor(age / 1000),
      addedPerSec,
      ackedPerSec,
      delayed: store.scheduledCount(q.name),
      policy: policyView(store.policies.record(q.name)),
    });
  }
  // Queues known here only by scheduled jobs or a policy (nothing queued yet).
  const extra = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    out.push({
      name: fromWire(name),
      total: 0,
      perNode: { [myId]: 0 },
      paused: 'none',
      oldestAge: null,
      addedPerSec: 0,
      ackedPerSec: 0,
      delayed: store.scheduledCount(name),
      policy: policyView(store.policies.record(name)),
    });
  };
  for (const [name] of store.scheduledQueues()) extra(name);
  for (const p of store.policies.all()) extra(p.queue);
  return out;
}

/** Merges each node's rows: lengths and rates add up, the oldest job is the oldest anywhere. */
function mergeQueues(lists: QueueRow[][]): QueueRow[] {
  const byName = new Map<string, QueueRow>();
  for (const list of lists) {
    for (const row of list) {
      const m = byName.get(row.name);
      if (m === undefined) {
        byName.set(row.name, { ...row, perNode: { ...row.perNode }, delayed: row.delayed ?? 0, policy: row.policy ?? null });
        continue;
      }
      m.total += row.total;
      Object.assign(m.perNode, row.perNode);
      if (m.paused === 'none') m.paused = row.paused;
      if (row.oldestAge !== null && (m.oldestAge === null || row.oldestAge > m.oldestAge)) m.oldestAge = row.oldestAge;
      m.addedPerSec += row.addedPerSec;
      m.ackedPerSec += row.ackedPerSec;
      m.delayed += row.delayed ?? 0;
      // Nodes agree on the policy once gossip has run; meanwhile the newest one.
      const p = row.policy ?? null;
      if (p !== null && (m.policy === null || m.policy === undefined || p.setAt > m.policy.setAt)) m.policy = p;
    }
  }
  return [...byName.values()].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
}

function isLocal(url: URL): boolean {
  const v = url.searchParams.get('local');
  return v !== null && v !== '0' && v !== 'false';
}

function queueName(raw: string): string {
  if (raw === '') throw new HttpError(400, 'Empty queue name');
  return toWire(raw);
}

export function registerQueueRoutes(router: Router, api: Api): void {
  router.on('GET', '/api/queues', async ({ url }) => {
    const mine = localQueues(api);
    if (isLocal(url)) return { queues: mine.sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1)), errors: [] };
    const asked = await askPeers<{ queues: QueueRow[] }>(api.otherNodes(), '/api/queues?local=1', api.password);
    const lists = [mine];
    const errors: { node: string; error: string }[] = [];
    for (const a of asked) {
      if (a.value !== null && Array.isArray(a.value.queues)) lists.push(a.value.queues);
      else errors.push({ node: a.peer.id, error: a.error ?? 'no answer' });
    }
    return { queues: mergeQueues(lists), errors };
  });

  router.on('GET', '/api/rates', async ({ url }) => {
    const mine = api.rates.series();
    if (isLocal(url)) return mine;
    const asked = await askPeers<RatesSeries>(api.otherNodes(), '/api/rates?local=1', api.password);
    const all = [mine, ...asked.flatMap((a) => (a.value !== null && Array.isArray(a.value.t) ? [a.value] : []))];
    const errors = asked.filter((a) => a.value === null).map((a) => ({ node: a.peer.id, error: a.error ?? 'no answer' }));
    return { ...sumSeries(all), errors };
  });

  // This node's jobs of the queue, paged with JSCAN (the cursor is JSCAN's).
  router.on('GET', '/api/queue/:name/jobs', async ({ url, params, addr }) => {
    const name = queueName(params.name!);
    const count = Math.min(PAGE_MAX, Math.max(1, Number(url.searchParams.get('count') ?? PAGE_DEFAULT) || PAGE_DEFAULT));
    let cursor = url.searchParams.get('cursor') ?? '0';
    if (!/^\d+$/.test(cursor)) throw new HttpError(400, `Bad cursor ${JSON.stringify(cursor)}`);
    const jobs: unknown[] = [];
    for (let calls = 0; calls < SCAN_CALLS_MAX && jobs.length < count; calls++) {
      const reply = await api.run(['JSCAN', cursor, 'COUNT', String(count - jobs.length), 'QUEUE', name, 'REPLY', 'all'], addr);
      if (!Array.isArray(reply) || reply.length !== 2 || !Array.isArray(reply[1])) throw new HttpError(500, 'Unexpected JSCAN reply');
      cursor = String(plain(reply[0]!));
      for (const info of reply[1]) jobs.push(jobRow(pairs(info)));
      if (cursor === '0') break;
    }
    return { cursor, jobs };
  });

  router.on('POST', '/api/queue/:name/pause', async ({ req, params, addr }) => {
    const name = queueName(params.name!);
    const body = await readJsonBody(req);
    const state = body.state;
    if (state !== 'in' && state !== 'out' && state !== 'all' && state !== 'none') {
      throw new HttpError(400, 'state must be one of "in", "out", "all", "none"');
    }
    const reply = await api.run(['PAUSE', name, state, 'BCAST'], addr);
    return { ok: true, paused: plain(reply) };
  });

  router.on('GET', '/api/queue/:name/policy', ({ params }) => policyDetails(api, queueName(params.name!)));

  // QPOLICY SET (or CLEAR when both limits are null), cluster-wide.
  router.on('POST', '/api/queue/:name/policy', async ({ req, params, addr }) => {
    const name = queueName(params.name!);
    const body = await readJsonBody(req);
    const argv = ['QPOLICY', name, 'SET'];
    const rate = body.rate;
    if (rate === null) argv.push('RATE', 'NONE');
    else if (rate !== undefined) {
      if (typeof rate !== 'object') throw new HttpError(400, 'rate must be {"jobs": n, "seconds": s} or null');
      const r = rate as Record<string, unknown>;
      argv.push('RATE', String(positiveInt(r.jobs, 'rate.jobs')), String(positiveInt(r.seconds, 'rate.seconds')));
    }
    const concurrency = body.concurrency;
    if (concurrency === null) argv.push('CONCURRENCY', 'NONE');
    else if (concurrency !== undefined) argv.push('CONCURRENCY', String(positiveInt(concurrency, 'concurrency')));
    if (argv.length === 3) throw new HttpError(400, 'Give rate and/or concurrency (null removes one)');
    if (rate === null && concurrency === null) argv.splice(2, argv.length - 2, 'CLEAR');
    await api.run(argv, addr);
    return { ok: true, ...policyDetails(api, name) };
  });
}

/** QPOLICY of a queue as the dashboard reads it: the record and this node's part of it. */
function policyDetails(api: Api, name: string): Record<string, unknown> {
  const store = api.host.store;
  const p = store.policies.get(name);
  const now = store.clock.now();
  return {
    policy: policyView(store.policies.record(name)),
    node: api.host.myId,
    here:
      p === undefined
        ? null
        : {
            rateShare: p.share[RATE],
            rateUsed: p.record.rate === null ? 0 : p.used(now),
            concurrencyShare: p.share[CONCURRENCY],
            inFlight: p.inflight,
            heldByRate: p.held[RATE],
            heldByConcurrency: p.held[CONCURRENCY],
          },
  };
}

function positiveInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new HttpError(400, `${what} must be a positive integer`);
  return v;
}

/** A JSCAN REPLY ALL entry as a row of the queue page. */
function jobRow(f: Map<string, RespValue>): Record<string, unknown> {
  const body = f.get('body');
  return {
    id: plain(f.get('id') ?? null),
    state: plain(f.get('state') ?? null),
    ctime: plain(f.get('ctime') ?? null),
    ttl: plain(f.get('ttl') ?? null),
    retry: plain(f.get('retry') ?? null),
    nacks: plain(f.get('nacks') ?? null),
    additionalDeliveries: plain(f.get('additional-deliveries') ?? null),
    bodyPreview: Buffer.isBuffer(body) ? bodyPreview(body) : null,
  };
}
