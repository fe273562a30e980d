// Queue policies (QPOLICY) in Redis: one hash per node (keys.ts `policies`),
// a field per queue holding the newest record (msgpack, the form QPOLICY
// messages carry, core/policy.ts policyToWire), cleared policies included
// so an older version heard later cannot bring one back.
//
// They are not journal entries: a policy changes rarely and each write is
// the whole record, so an HSET per change is all it takes, and the journal
// keeps one kind of record. The HSET goes over the journal's connection as
// an extra command of its next write (Journal.recordCommand), so a QPOLICY
// reply waits for it exactly as a job's reply waits for its journal entry.
// Snapshots rewrite the hash whole (snapshot.ts), which also covers changes
// captured while Redis was failing (a resync drops the pending HSETs).
import { Packr } from 'msgpackr';
import type { PersistenceHost } from './host.js';
import type { Journal } from './journal.js';
import { policyFromWire, policyToWire, type PolicyRecord } from '../core/policy.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

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
  constructor(private readonly journal: Journal) {}

  /** Store hook: a policy record changed; its HSET goes with the next journal write. */
  record(rec: PolicyRecord): void {
    const fields = policyFields([rec]);
    this.journal.recordCommand((keys) => ['HSET', keys.policies, ...fields]);
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
