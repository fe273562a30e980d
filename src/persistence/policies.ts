// Queue policies (QPOLICY) in Redis: one hash per node (keys.ts `policies`),
// a field per queue holding the newest record (msgpack, the form QPOLICY
// messages carry, core/policy.ts policyToWire), cleared policies included
// so an older version heard later cannot bring one back.
//
// They are not in the journal: a policy changes rarely and each write is
// the whole record, so an HSET per change (gathered per event-loop turn)
// is all it takes, and the journal keeps one kind of record. Snapshots
// rewrite the hash whole (snapshot.ts), which also covers changes captured
// while Redis was failing. A QPOLICY reply waits for its write as a job's
// does for the journal (replyGate).
import { Packr } from 'msgpackr';
import type { PersistenceHost } from './host.js';
import type { RedisHealth } from './health.js';
import { policyFromWire, policyToWire, type PolicyRecord } from '../core/policy.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A record as stored in the hash. */
export function packPolicy(rec: PolicyRecord): Buffer {
  return packr.pack(policyToWire(rec, null));
}

/** A stored record, or null when it is not one of ours. */
export function unpackPolicy(buf: Buffer): PolicyRecord | null {
  try {
    return policyFromWire(packr.unpack(buf))?.rec ?? null;
  } catch {
    return null;
  }
}

/** HSET arguments after the key: a field per queue (its name's bytes) and the packed record. */
export function policyFields(recs: Iterable<PolicyRecord>): Buffer[] {
  const out: Buffer[] = [];
  for (const r of recs) out.push(Buffer.from(r.queue, 'latin1'), packPolicy(r));
  return out;
}

export class PolicyWriter {
  /** Records captured and not written yet, newest per queue. */
  private pending = new Map<string, PolicyRecord>();
  private pendingGate: Deferred | null = null;
  private inflight: Deferred[] = [];
  /** Replies whose write failed: released once a resync snapshot (which rewrites the hash) committed. */
  private held: Deferred[] = [];
  private scheduled = false;

  constructor(
    private readonly node: PersistenceHost,
    private readonly health: RedisHealth,
    private readonly capturing: () => boolean,
  ) {}

  /** Store hook: a policy record changed. */
  record(rec: PolicyRecord): void {
    if (!this.capturing()) return;
    this.pending.set(rec.queue, rec);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Writes what was captured, when Redis takes writes (else the cron tries again). */
  readonly flush = (): void => {
    this.scheduled = false;
    const health = this.health;
    if (this.held.length > 0 && !health.resyncWanted && health.failure === null) this.releaseHeld();
    if (this.pending.size === 0) return;
    // A resync snapshot rewrites the whole hash: wait for it, then write on top.
    if (health.resyncWanted || health.failure !== null || health.redis === null || health.keys === null) return;
    const recs = [...this.pending.values()];
    this.pending.clear();
    const gate = this.pendingGate ?? deferred();
    this.pendingGate = null;
    this.inflight.push(gate);
    const epoch = health.epoch;
    health.redis.call('HSET', [health.keys.policies, ...policyFields(recs)]).then(
      () => {
        this.settled(gate);
        if (epoch === health.epoch) health.lastWriteStatus = 'ok';
        gate.resolve();
      },
      (e: Error) => {
        this.settled(gate);
        if (epoch !== health.epoch) {
          gate.resolve();
          return;
        }
        this.held.push(gate);
        health.fail(e);
      },
    );
  };

  private settled(gate: Deferred): void {
    const i = this.inflight.indexOf(gate);
    if (i >= 0) this.inflight.splice(i, 1);
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const g of held) g.resolve();
  }

  /** Settles when the policy changes made so far are in Redis; null when none waits. */
  replyGate(fsyncNo: boolean): Promise<void> | null {
    if (fsyncNo) return null;
    if (this.pending.size > 0) return (this.pendingGate ??= deferred()).promise;
    const last = this.inflight[this.inflight.length - 1];
    if (last !== undefined) return last.promise;
    const held = this.held[this.held.length - 1];
    return held?.promise ?? null;
  }

  /** appendonly no: nothing will reach Redis; release every waiting reply. */
  clear(): void {
    const gates = [...this.held, ...this.inflight, ...(this.pendingGate ? [this.pendingGate] : [])];
    this.pending.clear();
    this.pendingGate = null;
    this.inflight = [];
    this.held = [];
    for (const g of gates) g.resolve();
  }

  /** Loads the stored records into the store; returns how many, and how many did not decode. */
  static apply(node: PersistenceHost, stored: Buffer[]): { loaded: number; bad: number } {
    let loaded = 0;
    let bad = 0;
    for (const buf of stored) {
      const rec = unpackPolicy(buf);
      if (rec === null) {
        bad++;
        continue;
      }
      // Loaded records hold no share: the cluster gives this node its part again (docs/policies.md).
      node.store.applyPolicy(rec, null);
      loaded++;
    }
    return { loaded, bad };
  }
}
