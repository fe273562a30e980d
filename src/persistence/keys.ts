// The Redis keys of one node: `<prefix>{<node ID>}:<name>`. The node ID
// keeps nodes sharing a Redis apart; the braces put all keys of a node in
// one hash slot, so the MULTI that swaps snapshots also works on a Redis
// Cluster.
//
//   meta         hash: v (layout version), snap (seq of the committed
//                snapshot, absent before the first one), pending (seq of a
//                snapshot being written), time, jobs, bytes, chunks
//   snap:<seq>   list of snapshot chunks; it holds the state as of journal
//                entry <seq>
//   journal      sorted set of journal entries scored by their seq; entries
//                with seq <= meta.snap are already in the snapshot
//   policies     hash: queue name -> its newest QPOLICY record (policies.ts)
export class NodeKeys {
  readonly meta: string;
  readonly journal: string;
  readonly policies: string;
  private readonly base: string;

  constructor(prefix: string, nodeId: string) {
    this.base = `${prefix}{${nodeId}}:`;
    this.meta = `${this.base}meta`;
    this.journal = `${this.base}journal`;
    this.policies = `${this.base}policies`;
  }

  snap(seq: number): string {
    return `${this.base}snap:${seq}`;
  }

}
