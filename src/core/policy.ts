// Queue policies (QPOLICY): a rate limit (at most N deliveries per window of
// S seconds) and a concurrency cap (at most N jobs delivered and not yet
// acknowledged, NACKed or re-queued), per queue, cluster-wide.
//
// A policy is a record (its limits and a version, last writer wins) that
// every node holds; what each node may deliver is its *share* of each
// limit. Shares of a version add up to the limit: the node that sets a
// policy splits the limit among the nodes it knows (the allocation travels
// with the policy), and shares only move by a node giving part of its own to
// another (docs/policies.md). A node gives only what it has not used within
// the last window (rate) or does not hold (concurrency), so however shares
// move, every window of the whole cluster stays within the limit. A share
// lost with a node (killed, or a grant lost on the way) is taken back by a
// new version ("rebase"), the only moment two allocations overlap: there the
// worst case is twice the limit for one window (see docs/policies.md).
//
// This file is the per-node arithmetic, on the store's clock: what this node
// may deliver now, what it gives to a node asking, what a rebase decides.
// The messages that carry policies, requests and grants are the cluster's
// (src/cluster/policies.ts); the records are persisted by src/persistence.

/** RATE: at most `jobs` deliveries in any `seconds`-long window. */
export interface RateLimit {
  jobs: number;
  seconds: number;
}

/** What QPOLICY SET stores for a queue; both null is a cleared policy (kept as a tombstone). */
export interface PolicyRecord {
  queue: string;
  /** Version: Unix ms when set, then the ID of the node that set it (last writer wins). */
  time: number;
  origin: string;
  rate: RateLimit | null;
  concurrency: number | null;
}

/** The initial shares of a version, by node ID: [rate share, concurrency share]. */
export type Allocation = Record<string, [number, number]>;

export const POLICY_RATE_MAX_JOBS = 1_000_000;
export const POLICY_RATE_MAX_SECONDS = 86_400;
export const POLICY_CONCURRENCY_MAX = 1_000_000;
/** A node that held a delivery back this recently wants more of the limit. */
export const POLICY_DEMAND_MS = 1000;
/** A node asks for more at most this often per policy. */
export const POLICY_ASK_PERIOD_MS = 200;
/** Nodes that asked this recently count as wanting their part (fairness). */
export const POLICY_ASKER_MS = 2000;
/** A cleared policy's tombstone is forgotten after this long. */
export const POLICY_TOMBSTONE_MS = 24 * 3600 * 1000;

export const RATE = 0;
export const CONCURRENCY = 1;
export type ShareKind = typeof RATE | typeof CONCURRENCY;

/** a is newer than b (time, then origin). */
export function newerVersion(a: { time: number; origin: string }, b: { time: number; origin: string }): boolean {
  return a.time !== b.time ? a.time > b.time : a.origin > b.origin;
}

export function isCleared(r: PolicyRecord): boolean {
  return r.rate === null && r.concurrency === null;
}

/** The limits split among `nodes` (sorted so every node computes the same): the first ones get the remainder. */
export function allocate(rec: PolicyRecord, nodes: readonly string[]): Allocation {
  const ids = [...new Set(nodes)].sort();
  const out: Allocation = {};
  const n = ids.length;
  const rate = rec.rate?.jobs ?? 0;
  const conc = rec.concurrency ?? 0;
  ids.forEach((id, i) => {
    out[id] = [Math.floor(rate / n) + (i < rate % n ? 1 : 0), Math.floor(conc / n) + (i < conc % n ? 1 : 0)];
  });
  return out;
}

/** A grant decided but not sent yet: it goes once our usage fits the share we kept. */
export interface PendingGive {
  to: string;
  kind: ShareKind;
  amount: number;
}

/** The policy of one queue on this node: the record, our shares, our usage. */
export class QueuePolicy {
  /** Our part of each limit (see the file comment). */
  readonly share = [0, 0];
  /** Grants decided and not sent yet (already taken off `share`). */
  pending: PendingGive[] = [];
  /** The allocation of this version was added to our share (it arrives once). */
  allocApplied = false;
  /** Delivery times (clock ms) within the last window, oldest first, in a ring. */
  private ring: Float64Array;
  private head = 0;
  private count = 0;
  /** Jobs we delivered that are not yet acknowledged, NACKed or re-queued. */
  inflight = 0;
  /** Deliveries held back by each limit (metrics). */
  readonly held = [0, 0];
  /** Last time (clock ms) a delivery was held back here, -Infinity when never. */
  lastHeld = -Infinity;
  /** Last time we asked the others for more. */
  lastAsk = -Infinity;
  /** Nodes that asked us for more: ID -> time of the request. */
  readonly askers = new Map<string, number>();
  /** Rebase bookkeeping (the cluster's): since when the shares seen sum below the limit. */
  shortSince = -1;
  /** Consumers of this queue wait on this node: re-serve them when the limit frees. */
  waiting = false;

  constructor(public record: PolicyRecord) {
    this.ring = new Float64Array(Math.min(64, Math.max(1, record.rate?.jobs ?? 1)));
  }

  get queue(): string {
    return this.record.queue;
  }

  /** Window length in ms, 0 without a rate limit. */
  get windowMs(): number {
    return this.record.rate === null ? 0 : this.record.rate.seconds * 1000;
  }

  /** The limit of a kind (0 when the policy has none). */
  limit(kind: ShareKind): number {
    return kind === RATE ? (this.record.rate?.jobs ?? 0) : (this.record.concurrency ?? 0);
  }

  has(kind: ShareKind): boolean {
    return kind === RATE ? this.record.rate !== null : this.record.concurrency !== null;
  }

  /** Deliveries in the window ending now. */
  used(now: number): number {
    this.expire(now);
    return this.count;
  }

  /** What we use of a kind now: deliveries in the window, or jobs in flight. */
  usage(kind: ShareKind, now: number): number {
    return kind === RATE ? this.used(now) : this.inflight;
  }

  private expire(now: number): void {
    const w = this.windowMs;
    const ring = this.ring;
    while (this.count > 0 && ring[this.head]! <= now - w) {
      this.head = (this.head + 1) % ring.length;
      this.count--;
    }
  }

  /** The limit that holds a delivery back now, or -1 when one may go. */
  blockedBy(now: number): number {
    if (this.record.rate !== null && this.used(now) >= this.share[RATE]!) return RATE;
    if (this.record.concurrency !== null && this.inflight >= this.share[CONCURRENCY]!) return CONCURRENCY;
    return -1;
  }

  /** A delivery may go now (counting it as held back when not). */
  tryDeliver(now: number): boolean {
    const by = this.blockedBy(now);
    if (by < 0) return true;
    this.held[by]!++;
    this.lastHeld = now;
    this.waiting = true;
    return false;
  }

  /** A job was delivered: it counts in the window and in flight (the store tracks it for the release). */
  delivered(now: number): void {
    if (this.record.concurrency !== null) this.inflight++;
    if (this.record.rate === null) return;
    this.expire(now);
    if (this.count === this.ring.length) this.growRing();
    this.ring[(this.head + this.count) % this.ring.length] = now;
    this.count++;
  }

  private growRing(): void {
    const old = this.ring;
    const next = new Float64Array(old.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) % old.length]!;
    this.ring = next;
    this.head = 0;
  }

  /** When a held-back delivery may go (clock ms): now when it may, Infinity when only an ack or a grant can free it. */
  nextFree(now: number): number {
    const by = this.blockedBy(now);
    if (by < 0) return now;
    if (by !== RATE || this.share[RATE]! <= 0) return Infinity;
    // Below the share once the delivery at index count - share has left the window.
    const over = this.count - this.share[RATE]!;
    return this.ring[(this.head + over) % this.ring.length]! + this.windowMs;
  }

  /** This node wanted more than its share lately. */
  demanding(now: number): boolean {
    return now - this.lastHeld < POLICY_DEMAND_MS;
  }

  /** How much more of a kind we would take (asked for when demanding). */
  want(kind: ShareKind): number {
    return Math.max(0, this.limit(kind) - this.share[kind]! - this.pendingOf(kind));
  }

  private pendingOf(kind: ShareKind): number {
    let s = 0;
    for (const p of this.pending) if (p.kind === kind) s += p.amount;
    return s;
  }

  /** Our share plus what we decided to give and did not send: what this node answers for. */
  holding(kind: ShareKind): number {
    return this.share[kind]! + this.pendingOf(kind);
  }

  /**
   * Another node asks for up to `want` more of a kind: takes what we give
   * off our share now (so we stop using it) and returns it; the grant is
   * sent by takeReadyGives once our usage fits the share we kept. While we
   * want deliveries ourselves we keep a fair part: the limit split among
   * the nodes wanting it lately (us and those that asked).
   */
  decideGive(kind: ShareKind, from: string, want: number, now: number): number {
    this.askers.set(from, now);
    if (!this.has(kind) || want <= 0) return 0;
    let keep = 0;
    if (this.demanding(now)) {
      let wanting = 1;
      for (const [id, t] of this.askers) {
        if (now - t > POLICY_ASKER_MS) this.askers.delete(id);
        else wanting++;
      }
      keep = Math.ceil(this.limit(kind) / wanting);
    }
    const give = Math.min(want, this.share[kind]! - keep);
    if (give <= 0) return 0;
    this.share[kind]! -= give;
    const same = this.pending.find((p) => p.to === from && p.kind === kind);
    if (same) same.amount += give;
    else this.pending.push({ to: from, kind, amount: give });
    return give;
  }

  /** Grants whose part we no longer use (see decideGive): removed from `pending`, to send now. */
  takeReadyGives(now: number): PendingGive[] {
    if (this.pending.length === 0) return [];
    const ready: PendingGive[] = [];
    const keep: PendingGive[] = [];
    // Usage must fit what we kept, the grants still pending included.
    for (const kind of [RATE, CONCURRENCY] as const) {
      const mine = this.pending.filter((p) => p.kind === kind);
      if (mine.length === 0) continue;
      let held = this.share[kind]! + mine.reduce((s, p) => s + p.amount, 0);
      const used = this.usage(kind, now);
      for (const p of mine) {
        if (used <= held - p.amount) {
          held -= p.amount;
          ready.push(p);
        } else {
          keep.push(p);
        }
      }
    }
    this.pending = keep;
    return ready;
  }

  /** A pending grant's receiver is gone: the part comes back to us. */
  cancelGivesTo(isGone: (id: string) => boolean): boolean {
    let back = false;
    this.pending = this.pending.filter((p) => {
      if (!isGone(p.to)) return true;
      this.share[p.kind]! += p.amount;
      back = true;
      return false;
    });
    return back;
  }

  /** A grant arrived. */
  receive(kind: ShareKind, amount: number): void {
    // Grants and allocations of one version only (the caller checks): the
    // shares add up to the limit, so one share never exceeds it; a grant
    // that would is not to be trusted past it.
    if (!this.has(kind) || amount <= 0) return;
    this.share[kind] = Math.min(this.limit(kind), this.share[kind]! + amount);
  }

  /**
   * A new version replaces the record. Usage is kept: deliveries of the
   * last window and jobs in flight still count against the new shares.
   * Our share is the allocation's part when it is given (`alloc`), else 0
   * until a grant or the allocation arrives.
   */
  replace(record: PolicyRecord, alloc: Allocation | null, myId: string): void {
    this.record = record;
    this.share[RATE] = 0;
    this.share[CONCURRENCY] = 0;
    this.pending = [];
    this.allocApplied = false;
    this.shortSince = -1;
    if (alloc !== null) this.applyAlloc(alloc, myId);
  }

  /** Adds our part of the version's allocation, once. */
  applyAlloc(alloc: Allocation, myId: string): void {
    if (this.allocApplied) return;
    this.allocApplied = true;
    const mine = alloc[myId];
    if (mine === undefined) return;
    this.receive(RATE, mine[0]);
    this.receive(CONCURRENCY, mine[1]);
  }
}

/**
 * The policies this node knows, by queue, with the records of cleared ones
 * (tombstones, so an older SET heard later does not bring a policy back).
 * The store asks it on every delivery of a queue with a policy, and tells
 * it when a delivered job is done (concurrency).
 */
export class Policies {
  private readonly byQueue = new Map<string, QueuePolicy>();
  private readonly cleared = new Map<string, PolicyRecord>();
  /** Delivered jobs counted in a concurrency limit, by record: released once. */
  private readonly inflightJobs = new Map<number, QueuePolicy>();
  private digestCache: number | null = null;

  /** Queues with a policy in force. */
  get size(): number {
    return this.byQueue.size;
  }

  /** Jobs in flight under a concurrency limit (any queue). */
  get tracked(): number {
    return this.inflightJobs.size;
  }

  get(queue: string): QueuePolicy | undefined {
    return this.byQueue.get(queue);
  }

  all(): IterableIterator<QueuePolicy> {
    return this.byQueue.values();
  }

  /** Every record, cleared ones included (what nodes exchange and persistence keeps). */
  records(): PolicyRecord[] {
    return [...[...this.byQueue.values()].map((p) => p.record), ...this.cleared.values()];
  }

  /** The record for the queue, cleared or not. */
  record(queue: string): PolicyRecord | undefined {
    return this.byQueue.get(queue)?.record ?? this.cleared.get(queue);
  }

  /**
   * Takes a record if it is newer than ours for its queue; returns the
   * policy in force after it (or null once cleared) and whether it changed.
   * `alloc`: the version's allocation, when the record comes straight from
   * the node that made it.
   */
  apply(rec: PolicyRecord, alloc: Allocation | null, myId: string): { changed: boolean; policy: QueuePolicy | null } {
    const current = this.record(rec.queue);
    if (current !== undefined && !newerVersion(rec, current)) {
      const p = this.byQueue.get(rec.queue) ?? null;
      // The same version straight from its maker after we heard it second hand: our part of it.
      if (p !== null && alloc !== null && rec.time === current.time && rec.origin === current.origin) p.applyAlloc(alloc, myId);
      return { changed: false, policy: p };
    }
    this.digestCache = null;
    if (isCleared(rec)) {
      this.drop(rec.queue);
      this.cleared.set(rec.queue, rec);
      return { changed: true, policy: null };
    }
    this.cleared.delete(rec.queue);
    let p = this.byQueue.get(rec.queue);
    if (p === undefined) {
      p = new QueuePolicy(rec);
      this.byQueue.set(rec.queue, p);
      if (alloc !== null) p.applyAlloc(alloc, myId);
    } else {
      p.replace(rec, alloc, myId);
    }
    // Jobs in flight stay counted only while the queue keeps a concurrency limit.
    if (rec.concurrency === null && p.inflight > 0) this.untrack(p);
    return { changed: true, policy: p };
  }

  private drop(queue: string): void {
    const p = this.byQueue.get(queue);
    if (p === undefined) return;
    this.byQueue.delete(queue);
    this.untrack(p);
  }

  private untrack(p: QueuePolicy): void {
    for (const [rec, q] of this.inflightJobs) if (q === p) this.inflightJobs.delete(rec);
    p.inflight = 0;
  }

  /** A job of the policy's queue was delivered (record `rec`). */
  delivered(p: QueuePolicy, rec: number, now: number): void {
    p.delivered(now);
    if (p.record.concurrency !== null) this.inflightJobs.set(rec, p);
  }

  /** The delivered job is done here (acked, NACKed, re-queued, deleted): frees its slot. Returns its policy. */
  release(rec: number): QueuePolicy | undefined {
    const p = this.inflightJobs.get(rec);
    if (p === undefined) return undefined;
    this.inflightJobs.delete(rec);
    if (p.inflight > 0) p.inflight--;
    return p;
  }

  /** Forgets tombstones older than POLICY_TOMBSTONE_MS (Unix ms `nowUnix`). */
  expireTombstones(nowUnix: number): void {
    for (const [q, r] of this.cleared) {
      if (nowUnix - r.time > POLICY_TOMBSTONE_MS) {
        this.cleared.delete(q);
        this.digestCache = null;
      }
    }
  }

  /**
   * A number that differs when two nodes hold different records (32-bit
   * FNV-1a over every version, in queue order): nodes compare it in PING
   * and exchange their records when it differs. 0 when there are none.
   */
  digest(): number {
    if (this.digestCache !== null) return this.digestCache;
    const recs = this.records().sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
    let h = 0x811c9dc5;
    const mix = (s: string): void => {
      for (let i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
      }
      h ^= 0xff;
      h = Math.imul(h, 0x01000193);
    };
    for (const r of recs) {
      mix(r.queue);
      mix(String(r.time));
      mix(r.origin);
    }
    this.digestCache = recs.length === 0 ? 0 : h >>> 0 || 1;
    return this.digestCache;
  }

  /** DEBUG FLUSHALL, CLUSTER RESET: forget everything. */
  clear(): void {
    this.byQueue.clear();
    this.cleared.clear();
    this.inflightJobs.clear();
    this.digestCache = null;
  }
}

/** The limits of a record as QPOLICY GET lists them (flat key/value pairs). */
export function policyFields(r: PolicyRecord | undefined): (string | number)[] {
  if (r === undefined || isCleared(r)) return [];
  const out: (string | number)[] = [];
  if (r.rate !== null) out.push('rate-jobs', r.rate.jobs, 'rate-seconds', r.rate.seconds);
  if (r.concurrency !== null) out.push('concurrency', r.concurrency);
  return out;
}

/** A record as QPOLICY messages and persistence carry it (msgpack-able; the allocation only in messages). */
export function policyToWire(r: PolicyRecord, alloc: Allocation | null): Record<string, unknown> {
  return {
    q: Buffer.from(r.queue, 'latin1'),
    t: r.time,
    o: r.origin,
    r: r.rate === null ? undefined : [r.rate.jobs, r.rate.seconds],
    c: r.concurrency ?? undefined,
    al: alloc ?? undefined,
  };
}

function latin1(x: unknown): string | null {
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('latin1');
  if (typeof x === 'string') return x;
  return null;
}

const posInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0;
const count = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** A record (and allocation) from a message or the persisted state, or null when malformed. */
export function policyFromWire(raw: unknown): { rec: PolicyRecord; alloc: Allocation | null } | null {
  if (raw === null || typeof raw !== 'object') return null;
  const w = raw as Record<string, unknown>;
  const queue = latin1(w.q);
  if (queue === null || typeof w.t !== 'number' || !Number.isSafeInteger(w.t) || typeof w.o !== 'string') return null;
  let rate: RateLimit | null = null;
  if (w.r !== undefined && w.r !== null) {
    if (!Array.isArray(w.r) || !posInt(w.r[0]) || !posInt(w.r[1])) return null;
    rate = { jobs: w.r[0], seconds: w.r[1] };
  }
  let concurrency: number | null = null;
  if (w.c !== undefined && w.c !== null) {
    if (!posInt(w.c)) return null;
    concurrency = w.c;
  }
  let alloc: Allocation | null = null;
  if (w.al !== undefined && w.al !== null) {
    if (typeof w.al !== 'object') return null;
    alloc = {};
    for (const [id, v] of Object.entries(w.al as Record<string, unknown>)) {
      if (!Array.isArray(v) || !count(v[0]) || !count(v[1])) return null;
      alloc[id] = [v[0], v[1]];
    }
  }
  return { rec: { queue, time: w.t, origin: w.o, rate, concurrency }, alloc };
}
