// A job as the source's nodes describe it (SHOW, JSCAN REPLY all), and how
// it is moved: the copies of one job on several nodes are merged into the
// job's state in the source cluster, and that state into the IMPORTJOB
// arguments that recreate it in the target cluster.
//
// Disque's states seen from outside: a job is queued on some node, or it is
// active everywhere, which means one of three things:
//   - delayed: DELAY not over yet (creation time + DELAY is ahead), never
//     queued: it is first queued when the delay ends;
//   - delivered: a consumer got it and has not acknowledged it yet; a node
//     queues it again at its re-queue time unless the ACK comes first;
//   - at-most-once and delivered (RETRY 0): never queued again.
// Acknowledged jobs are being collected and are not moved.
import { text } from '../client/replies.js';

export interface JobInfo {
  id: string;
  /** Queue name bytes, as the source has them. */
  queue: Buffer;
  state: string;
  repl: number;
  /** Seconds left to live. */
  ttl: number;
  /** Creation time as SHOW reports it (Unix ms * 1e6 + counter), as digits. */
  ctime: string;
  delay: number;
  retry: number;
  nacks: number;
  deliveries: number;
  nodesDelivered: string[];
  /** Milliseconds until this node would queue it (again), null when never. */
  requeueWithin: number | null;
  body: Buffer;
}

function int(v: unknown): number {
  const n = Number(Buffer.isBuffer(v) ? v.toString('latin1') : v);
  return Number.isFinite(n) ? n : 0;
}

/** A SHOW / JSCAN REPLY all entry read with Buffers (and integers as strings), or null. */
export function parseJobInfo(reply: unknown): JobInfo | null {
  if (!Array.isArray(reply)) return null;
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(text(reply[i]), reply[i + 1]);
  const id = m.get('id');
  const queue = m.get('queue');
  const body = m.get('body');
  if (!Buffer.isBuffer(id) || !Buffer.isBuffer(queue) || !Buffer.isBuffer(body)) return null;
  const requeue = m.get('next-requeue-within');
  const nodes = m.get('nodes-delivered');
  return {
    id: id.toString('latin1'),
    queue,
    state: text(m.get('state')),
    repl: int(m.get('repl')),
    ttl: int(m.get('ttl')),
    ctime: text(m.get('ctime')),
    delay: int(m.get('delay')),
    retry: int(m.get('retry')),
    nacks: int(m.get('nacks')),
    deliveries: int(m.get('additional-deliveries')),
    nodesDelivered: Array.isArray(nodes) ? nodes.map((n) => text(n)) : [],
    requeueWithin: requeue === null || requeue === undefined ? null : int(requeue),
    body,
  };
}

/** Milliseconds of the creation time in a SHOW ctime (ms * 1e6 + counter). */
export function ctimeMs(ctime: string): number {
  if (!/^\d+$/.test(ctime)) return 0;
  return Number(BigInt(ctime) / 1000000n);
}

export type MoveKind = 'queued' | 'delayed' | 'delivered';

/** What to do with a job, from all the copies the source nodes have. */
export type Plan =
  | { kind: MoveKind; args: (string | Buffer)[]; queuedOn: string[] }
  /** Acknowledged somewhere: being collected, not moved. */
  | { kind: 'acked' }
  /** No node has it any more (acknowledged and collected meanwhile). */
  | { kind: 'gone' }
  /** Still waiting for ADDJOB's replication, or changed while we looked: look again later. */
  | { kind: 'unsettled'; why: string }
  /** Its TTL ends before it could be moved (or before its delay ends). */
  | { kind: 'expiring' };

/**
 * Merges the copies of one job (`copies`: node ID -> its SHOW, null where
 * the node does not have it) into a plan. `sourceNow`: the source's clock,
 * Unix ms. `timeout`: IMPORTJOB's ms-timeout.
 */
export function planMove(copies: Map<string, JobInfo | null>, sourceNow: number, timeout: number): Plan {
  const held = [...copies.entries()].filter((e): e is [string, JobInfo] => e[1] !== null);
  if (held.length === 0) return { kind: 'gone' };
  const infos = held.map((e) => e[1]);
  if (infos.some((j) => j.state === 'acked')) return { kind: 'acked' };
  if (infos.some((j) => j.state === 'wait-repl')) return { kind: 'unsettled', why: 'being added (waiting for replication)' };
  if (infos.some((j) => j.state !== 'queued' && j.state !== 'active')) {
    return { kind: 'unsettled', why: `unknown state ${infos.map((j) => j.state).join(',')}` };
  }
  const first = infos[0]!;
  // The copy that knows the most: counters only grow, TTLs only shrink.
  const ttl = Math.min(...infos.map((j) => j.ttl));
  const nacks = Math.max(...infos.map((j) => j.nacks));
  const deliveries = Math.max(...infos.map((j) => j.deliveries));
  if (ttl <= 1) return { kind: 'expiring' };
  const args: (string | Buffer)[] = [
    first.id,
    first.queue,
    first.body,
    String(timeout),
    'REPLICATE',
    String(Math.max(1, first.repl)),
    'TTL',
    String(ttl),
    'RETRY',
    String(first.retry),
  ];
  if (/^\d+$/.test(first.ctime) && first.ctime !== '0') args.push('CTIME', first.ctime);
  if (nacks > 0) args.push('NACKS', String(nacks));
  if (deliveries > 0) args.push('ADDITIONAL-DELIVERIES', String(deliveries));

  const queuedOn = held.filter((e) => e[1].state === 'queued').map((e) => e[0]);
  if (queuedOn.length > 0) return { kind: 'queued', args, queuedOn };

  const delayLeft = first.delay > 0 ? ctimeMs(first.ctime) + first.delay * 1000 - sourceNow : 0;
  if (delayLeft > 0) {
    // Whole seconds, rounded up: never delivered before its time.
    const delay = Math.ceil(delayLeft / 1000);
    if (delay >= ttl) return { kind: 'expiring' };
    args.push('DELAY', String(delay));
    return { kind: 'delayed', args, queuedOn };
  }
  args.push('STATE', 'active');
  if (first.retry > 0) {
    // The first node to re-queue it decides when it comes back.
    const within = infos.map((j) => j.requeueWithin).filter((v): v is number => v !== null);
    if (within.length > 0) args.push('REQUEUE', String(Math.max(0, Math.min(...within))));
  }
  return { kind: 'delivered', args, queuedOn };
}
