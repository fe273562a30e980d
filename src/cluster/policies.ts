// Queue policies across the cluster (QPOLICY; docs/policies.md). Three
// things travel, all as msgpack messages of their own:
//   - QPOLICY: policy records. A new version goes to every node with its
//     allocation (each node's share of the limits); nodes that missed it
//     (down, partitioned, joined later) get it through gossip: PING and
//     PONG carry a digest of the records (`pd`), and a node whose digest
//     differs is sent ours, without the allocation (its share starts at 0).
//   - QSHARE requests and grants: a node that held a delivery back asks the
//     others for more; one that does not use its share gives it, once its
//     own use fits what it keeps (src/core/policy.ts, decideGive).
//   - QSHARE reports: every second, each node's shares. The smallest node ID
//     not flagged FAIL checks that the shares add up to the limit; when a
//     part stays lost (a node that failed or restarted, a grant lost) it
//     makes a new version, split among the nodes not failing ("rebase").
import type { ClusterContext, NodeTableView, MessageSender } from './context.js';
import { NodeFlag, type ClusterNode } from './cluster-node.js';
import { MsgType, type BusMessage } from './messages.js';
import {
  allocate,
  isCleared,
  RATE,
  CONCURRENCY,
  POLICY_ASK_PERIOD_MS,
  type Allocation,
  type PolicyRecord,
  type QueuePolicy,
  type RateLimit,
  type ShareKind,
  policyToWire,
  policyFromWire,
} from '../core/policy.js';

/** Reports older than this do not count (the node may be gone). */
const REPORT_TTL_MS = 3000;
/** The shares must stay short this long before a rebase (grants on the way make short dips). */
const REBASE_SETTLE_MS = 3000;
/** At most one rebase per window (plus this), and per minute at most, see docs/policies.md. */
const REBASE_MARGIN_MS = 1000;
const REBASE_MAX_INTERVAL_MS = 60_000;
/** A node is sent our records at most this often when its digest differs. */
const SYNC_PERIOD_MS = 1000;

interface Report {
  at: number;
  time: number;
  origin: string;
  share: [number, number];
}

export class PolicySync {
  private readonly table: NodeTableView;
  private readonly links: MessageSender;
  /** Shares other nodes reported, by queue then node ID. */
  private readonly reports = new Map<string, Map<string, Report>>();
  /** When each node was last sent our records. */
  private readonly synced = new Map<string, number>();
  private lastReport = 0;

  constructor(private readonly cluster: ClusterContext) {
    this.table = cluster.table;
    this.links = cluster.links;
  }

  register(): void {
    this.cluster.on(MsgType.QPOLICY, (s, m) => this.onPolicy(s, m));
    this.cluster.on(MsgType.QSHARE, (s, m) => this.onShare(s, m));
  }

  private get store() {
    return this.cluster.store;
  }

  /** Nodes of the cluster not flagged FAIL, myself included: who gets a share of a new version. */
  private upIds(): string[] {
    const out: string[] = [];
    for (const n of this.table.nodes.values()) if (!n.has(NodeFlag.HANDSHAKE) && !n.has(NodeFlag.FAIL)) out.push(n.id);
    return out;
  }

  /** Peers that take messages now (linked, past the handshake, not failing). */
  private peers(): ClusterNode[] {
    const me = this.table.myself;
    return [...this.table.nodes.values()].filter((n) => n !== me && n.link !== null && !n.has(NodeFlag.HANDSHAKE) && !n.has(NodeFlag.FAIL));
  }

  // ---------------------------------------------------------------- records

  /** QPOLICY SET/CLEAR here: a new version, split among the nodes, sent to all. */
  publish(queue: string, rate: RateLimit | null, concurrency: number | null): void {
    const store = this.store;
    const current = store.policies.record(queue);
    const now = store.clock.base + store.clock.now();
    const rec: PolicyRecord = {
      queue,
      time: current !== undefined && current.time >= now ? current.time + 1 : now,
      origin: this.table.myself.id,
      rate,
      concurrency,
    };
    const alloc = isCleared(rec) ? null : allocate(rec, this.upIds());
    store.applyPolicy(rec, alloc);
    this.links.broadcast(this.links.frame(MsgType.QPOLICY, { ps: [policyToWire(rec, alloc)], a: 1 }));
  }

  private onPolicy(_sender: ClusterNode, msg: BusMessage): void {
    if (!Array.isArray(msg.ps)) return;
    const fresh = msg.a === 1;
    for (const raw of msg.ps) {
      const decoded = policyFromWire(raw);
      if (decoded === null) {
        this.cluster.log.warning(`Ignoring a malformed queue policy from ${msg.s}`);
        continue;
      }
      this.store.applyPolicy(decoded.rec, fresh ? decoded.alloc : null);
    }
  }

  /** PING/PONG/MEET told the sender's digest: if it differs from ours, send it our records. */
  digestSeen(sender: ClusterNode, theirs: unknown): void {
    const ours = this.store.policies.digest();
    if (ours === 0 || ours === theirs) return;
    const now = Date.now();
    if (now - (this.synced.get(sender.id) ?? 0) < SYNC_PERIOD_MS) return;
    this.synced.set(sender.id, now);
    const ps = this.store.policies.records().map((r) => policyToWire(r, null));
    this.links.send(sender, this.links.frame(MsgType.QPOLICY, { ps }));
  }

  /** Our digest, for PING and PONG (undefined when we know no policy). */
  digest(): number | undefined {
    const d = this.store.policies.digest();
    return d === 0 ? undefined : d;
  }

  // ----------------------------------------------------------------- shares

  /** Store hook: a delivery was held back; ask the others for more (throttled). */
  held(p: QueuePolicy): void {
    const now = this.store.clock.now();
    if (now - p.lastAsk < POLICY_ASK_PERIOD_MS) return;
    const kind = p.blockedBy(now);
    if (kind < 0 || p.want(kind as ShareKind) <= 0) return;
    const peers = this.peers();
    if (peers.length === 0) return;
    p.lastAsk = now;
    // Each peer is asked for its part of what we want, so they do not all give it.
    const w = Math.ceil(p.want(kind as ShareKind) / peers.length);
    const frame = this.links.frame(MsgType.QSHARE, { ...this.versionOf(p), k: kind, w });
    for (const n of peers) this.links.send(n, frame);
  }

  private versionOf(p: QueuePolicy): { q: Buffer; vt: number; vo: string } {
    return { q: Buffer.from(p.queue, 'latin1'), vt: p.record.time, vo: p.record.origin };
  }

  private onShare(sender: ClusterNode, msg: BusMessage): void {
    const queue = queueName(msg.q);
    if (queue === null || typeof msg.vt !== 'number' || typeof msg.vo !== 'string') return;
    const store = this.store;
    const p = store.policies.get(queue);
    // Shares of different versions are different things: a request, grant or report of another is ignored.
    const same = p !== undefined && p.record.time === msg.vt && p.record.origin === msg.vo;
    if (typeof msg.rr === 'number' && typeof msg.rc === 'number') {
      let byNode = this.reports.get(queue);
      if (byNode === undefined) this.reports.set(queue, (byNode = new Map()));
      byNode.set(sender.id, { at: Date.now(), time: msg.vt, origin: msg.vo, share: [msg.rr, msg.rc] });
      return;
    }
    if (!same) return;
    const kind = msg.k === RATE || msg.k === CONCURRENCY ? (msg.k as ShareKind) : null;
    if (kind === null) return;
    if (typeof msg.g === 'number' && Number.isInteger(msg.g) && msg.g > 0) {
      p.receive(kind, msg.g);
      store.policyChanged(p);
    } else if (typeof msg.w === 'number' && Number.isInteger(msg.w) && msg.w > 0) {
      if (p.decideGive(kind, sender.id, msg.w, store.clock.now()) > 0) this.sendReadyGives(p);
    }
  }

  /** Grants whose part we no longer use go out now. */
  private sendReadyGives(p: QueuePolicy): void {
    for (const g of p.takeReadyGives(this.store.clock.now())) {
      const n = this.table.nodes.get(g.to);
      if (n === undefined) continue; // forgotten: the part is lost until a rebase
      this.links.send(n, this.links.frame(MsgType.QSHARE, { ...this.versionOf(p), k: g.kind, g: g.amount }));
    }
  }

  /** Every 100 ms (the cluster cron): grants, renewed requests, and every second reports and the rebase check. */
  cron(): void {
    const store = this.store;
    if (store.policies.size === 0) {
      if (this.reports.size !== 0) this.reports.clear();
      return;
    }
    const now = store.clock.now();
    const failed = (id: string): boolean => {
      const n = this.table.nodes.get(id);
      return n === undefined || n.has(NodeFlag.FAIL);
    };
    for (const p of store.policies.all()) {
      // A grant to a node that failed meanwhile comes back to us.
      if (p.pending.length !== 0 && p.cancelGivesTo(failed)) store.policyChanged(p);
      this.sendReadyGives(p);
      if (p.demanding(now)) this.held(p);
    }
    const wall = Date.now();
    if (wall - this.lastReport < 1000) return;
    this.lastReport = wall;
    store.policies.expireTombstones(store.clock.base + now);
    const peers = this.peers();
    for (const p of store.policies.all()) {
      if (peers.length !== 0) {
        const frame = this.links.frame(MsgType.QSHARE, { ...this.versionOf(p), rr: p.holding(RATE), rc: p.holding(CONCURRENCY) });
        for (const n of peers) this.links.send(n, frame);
      }
      this.checkShares(p, wall);
    }
    for (const q of this.reports.keys()) if (store.policies.get(q) === undefined) this.reports.delete(q);
  }

  /**
   * The rebase check, on the smallest node ID not flagged FAIL: when the
   * shares of the nodes not failing (ours and the reports of the others,
   * all of this version and fresh) add up to less than a limit for
   * REBASE_SETTLE_MS, a part is lost for good: make a new version. Nodes
   * flagged PFAIL still count (they may deliver on the other side of a
   * partition); a FAIL flag needs a majority, so only one side rebases.
   */
  private checkShares(p: QueuePolicy, wall: number): void {
    const up = this.upIds();
    const me = this.table.myself.id;
    if (up.some((id) => id < me)) {
      p.shortSince = -1;
      return;
    }
    const reports = this.reports.get(p.queue);
    const sum = [p.holding(RATE), p.holding(CONCURRENCY)];
    for (const id of up) {
      if (id === me) continue;
      const r = reports?.get(id);
      if (r === undefined || wall - r.at > REPORT_TTL_MS || r.time !== p.record.time || r.origin !== p.record.origin) {
        // Not known yet: no judgement (alone, though, there is nobody to wait for).
        p.shortSince = -1;
        return;
      }
      sum[RATE] += r.share[RATE];
      sum[CONCURRENCY] += r.share[CONCURRENCY];
    }
    const short = (p.has(RATE) && sum[RATE]! < p.limit(RATE)) || (p.has(CONCURRENCY) && sum[CONCURRENCY]! < p.limit(CONCURRENCY));
    if (!short) {
      p.shortSince = -1;
      return;
    }
    if (p.shortSince < 0) p.shortSince = wall;
    const alone = up.length === 1;
    if (!alone && wall - p.shortSince < REBASE_SETTLE_MS) return;
    const interval = Math.min(p.windowMs + REBASE_MARGIN_MS, REBASE_MAX_INTERVAL_MS);
    if (wall - p.record.time < interval && !alone) return;
    this.cluster.log.notice(
      `Queue policy of ${p.queue}: shares add up to ${sum[RATE]}/${p.limit(RATE)} (rate), ${sum[CONCURRENCY]}/${p.limit(CONCURRENCY)} (concurrency); splitting the limits again among ${up.length} nodes`,
    );
    this.publish(p.queue, p.record.rate, p.record.concurrency);
  }
}

function queueName(x: unknown): string | null {
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('latin1');
  if (typeof x === 'string') return x;
  return null;
}
