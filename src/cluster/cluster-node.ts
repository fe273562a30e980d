// One node of the cluster as this node knows it (the reference's clusterNode):
// its ID, address, flags, PING/PONG times, failure reports, our link to it
// and the job messages to it not sent yet. Every other cluster file builds
// on this one; it imports nothing of theirs.
import { randomBytes } from 'node:crypto';
import type { Link } from './bus.js';

export const NodeFlag = {
  PFAIL: 1 << 0,
  FAIL: 1 << 1,
  MYSELF: 1 << 2,
  HANDSHAKE: 1 << 3,
  NOADDR: 1 << 4,
  MEET: 1 << 5,
  LEAVING: 1 << 7,
} as const;

/** Flag names of CLUSTER NODES and the nodes file, in the order they are printed. */
export const NODE_FLAG_NAMES: readonly (readonly [number, string])[] = [
  [NodeFlag.MYSELF, 'myself'],
  [NodeFlag.PFAIL, 'fail?'],
  [NodeFlag.FAIL, 'fail'],
  [NodeFlag.HANDSHAKE, 'handshake'],
  [NodeFlag.NOADDR, 'noaddr'],
  [NodeFlag.LEAVING, 'leaving'],
];

export class ClusterNode {
  readonly ctime = Date.now();
  flags: number;
  pingSent = 0;
  pongReceived = 0;
  /** Last time any message came from it, on any link. */
  dataReceived = 0;
  /**
   * When we asked it something (PING, REPLJOB wanting GOTJOB) that is still
   * unanswered: it has said nothing since. Replication prefers nodes that
   * are not silent this way (a partition shows here long before PFAIL).
   */
  askedAt = 0;
  failTime = 0;
  ip = '';
  port = 0;
  /** Its TLS client port (0: none), as its PINGs say. */
  tlsPort = 0;
  /** Its HTTP port (0: none), as its PINGs say: the dashboard asks peers there. */
  httpPort = 0;
  /** Our outbound link to it (messages we send go here). */
  link: Link | null = null;
  /** Nodes that reported it failing: reporter ID -> time of the report. */
  readonly failReports = new Map<string, number>();
  /** Reconnection backoff. */
  reconnectAt = 0;
  reconnectDelay = 0;

  constructor(
    public id: string,
    flags: number,
  ) {
    this.flags = flags;
  }

  /** We sent it a message that wants an answer. */
  asked(now: number): void {
    if (this.askedAt <= this.dataReceived) this.askedAt = now;
  }

  /** Asked something more than `ms` ago and silent since. */
  silent(now: number, ms: number): boolean {
    return this.askedAt > this.dataReceived && now - this.askedAt > ms;
  }

  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  flagString(): string {
    if (this.flags === 0) return 'noflags';
    const out: string[] = [];
    for (const [f, name] of NODE_FLAG_NAMES) if (this.flags & f) out.push(name);
    return out.length ? out.join(',') : 'noflags';
  }

  /** Closes our link to it, if any; the cluster cron connects again later. */
  freeLink(): void {
    const l = this.link;
    this.link = null;
    if (l) {
      l.node = null;
      l.close();
    }
  }
}

export function randomNodeId(): string {
  return randomBytes(20).toString('hex');
}
