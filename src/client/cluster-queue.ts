// A queue across the cluster: how many of its jobs are in each state, and
// emptying it. A job lives on the nodes that hold its copies, one of which
// queues it, and QLEN, JSCAN and DEQUEUE answer for one node: so these ask
// every node HELLO lists, each on a connection of its own, at the same time.
import type { Connection } from './connection.js';
import { ReplyError, UnreachableNodesError } from './errors.js';
import { bufferCodec } from './codec.js';
import { num, parseJobDetails, parseScanPage, text } from './replies.js';
import type { NodeInfo, QueueCounts } from './types.js';

/** How these reach the nodes (the client provides it). */
export interface NodeAccess {
  /** The nodes as HELLO lists them now. */
  nodes(): Promise<NodeInfo[]>;
  /** A connection to that node only: no failover to others. */
  connect(node: NodeInfo): Connection;
}

/** JSCAN and SHOW work per page, DEQUEUE and SHOW per pipelined batch. */
const PAGE = 1000;

interface Failure {
  id: string;
  error: unknown;
}

interface NodeLink {
  node: NodeInfo;
  conn: Connection;
}

/** Connections to every node HELLO lists, and the nodes that could not be reached or failed midway. */
class NodeLinks {
  readonly failures: Failure[] = [];
  private links: NodeLink[] = [];

  /** Connects to every node at once. */
  async open(access: NodeAccess): Promise<void> {
    await Promise.all(
      (await access.nodes()).map(async (node) => {
        if (node.host === '') {
          this.failures.push({ id: node.id, error: new Error('no address known') });
          return;
        }
        const conn = access.connect(node);
        try {
          const reached = await conn.connect();
          if (reached.id !== node.id) throw new Error(`${node.host}:${node.port} is now node ${reached.id}`);
          this.links.push({ node, conn });
        } catch (error) {
          conn.disconnect();
          this.failures.push({ id: node.id, error });
        }
      }),
    );
  }

  /** Runs `fn` on every node still linked, at once; a node whose `fn` throws is dropped as failed. */
  async each(fn: (conn: Connection, node: NodeInfo) => Promise<void>): Promise<void> {
    const failed = new Set<NodeLink>();
    await Promise.all(
      this.links.map(async (link) => {
        try {
          await fn(link.conn, link.node);
        } catch (error) {
          failed.add(link);
          this.failures.push({ id: link.node.id, error });
        }
      }),
    );
    for (const link of failed) link.conn.disconnect();
    this.links = this.links.filter((l) => !failed.has(l));
  }

  async close(): Promise<void> {
    await Promise.all(this.links.map((l) => l.conn.quit().catch(() => l.conn.disconnect())));
    this.links = [];
  }

  describeFailures(): string {
    return this.failures.map((f) => `${f.id.slice(0, 8)}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; ');
  }
}

async function withNodes<R>(access: NodeAccess, fn: (nodes: NodeLinks) => Promise<R>): Promise<R> {
  const nodes = new NodeLinks();
  try {
    await nodes.open(access);
    return await fn(nodes);
  } finally {
    await nodes.close();
  }
}

/** JSCAN of one node, a page of job IDs at a time. */
async function* scanIds(conn: Connection, queue: string, states: readonly string[]): AsyncIterableIterator<string[]> {
  const filter = ['COUNT', PAGE, 'QUEUE', queue, ...states.flatMap((s) => ['STATE', s]), 'REPLY', 'id'];
  let cursor = '0';
  do {
    const page = parseScanPage((await conn.send('JSCAN', [cursor, ...filter])).reply);
    yield page.items.map(text);
    cursor = page.cursor;
  } while (cursor !== '0');
}

/** A pipelined command per ID; a lost connection fails the node, error replies count as no answer. */
async function batch(conn: Connection, command: string, ids: string[], buffer = false): Promise<unknown[]> {
  const outcomes = await conn.sendBatch(command, ids.map((id) => [id]), buffer);
  return outcomes.map((o) => {
    if (o.error && !(o.error instanceof ReplyError)) throw o.error;
    return o.reply;
  });
}

async function allIds(conn: Connection, queue: string, states: readonly string[]): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of scanIds(conn, queue, states)) ids.push(...page);
  return ids;
}

/**
 * Deletes every job queued in `queue`, on every node: each is taken out of
 * its queue (DEQUEUE, so a job a worker got meanwhile is left alone) and
 * acknowledged (ACKJOB, which every node holding a copy honours). Returns
 * how many jobs were deleted. Throws UnreachableNodesError, after draining
 * the other nodes, when a node could not be asked.
 */
export async function drainQueue(access: NodeAccess, queue: string): Promise<number> {
  const drained = new Set<string>();
  return withNodes(access, async (nodes) => {
    await nodes.each(async (conn) => {
      for await (const ids of scanIds(conn, queue, ['queued'])) {
        if (ids.length === 0) continue;
        const dequeued = await batch(conn, 'DEQUEUE', ids);
        const taken = ids.filter((_, i) => num(dequeued[i]) === 1);
        if (taken.length === 0) continue;
        // Dequeued and not yet acknowledged, a job is queued again after its retry time: not lost.
        await conn.send('ACKJOB', taken);
        for (const id of taken) drained.add(id);
      }
    });
    if (nodes.failures.length > 0) {
      throw new UnreachableNodesError(
        `drain ${queue}: ${nodes.failures.length} node(s) could not be drained (${nodes.describeFailures()}); ` +
          `${drained.size} jobs were deleted on the others`,
        nodes.failures.map((f) => f.id),
        drained.size,
      );
    }
    return drained.size;
  });
}

/**
 * Counts `queue`'s jobs across the cluster, each job once however many
 * copies it has. Queued: queued on some node. Delayed and active: held by
 * nodes but queued on none, told apart by SHOW (still within its DELAY, or
 * not). Dead-lettered: queued in `deadLetterQueue`, when given.
 */
export async function queueCounts(access: NodeAccess, queue: string, deadLetterQueue?: string): Promise<QueueCounts> {
  const queued = new Set<string>();
  const dead = new Set<string>();
  /** Copies not queued where they are held, by job ID: the node to SHOW each on. */
  const held = new Map<string, Connection>();
  let active = 0;
  let delayed = 0;
  return withNodes(access, async (nodes) => {
    await nodes.each(async (conn) => {
      const [q, others, d] = await Promise.all([
        allIds(conn, queue, ['queued']),
        allIds(conn, queue, ['active', 'wait-repl']),
        deadLetterQueue === undefined ? [] : allIds(conn, deadLetterQueue, ['queued']),
      ]);
      for (const id of q) queued.add(id);
      for (const id of d) dead.add(id);
      for (const id of others) if (!held.has(id)) held.set(id, conn);
    });
    // Only now, with every node scanned: a copy not queued where it is held
    // is often the replica of a job queued on another node.
    const now = Date.now();
    await nodes.each(async (conn) => {
      const ids = [...held].filter(([id, c]) => c === conn && !queued.has(id)).map(([id]) => id);
      for (let i = 0; i < ids.length; i += PAGE) {
        const page = ids.slice(i, i + PAGE);
        const shown = await batch(conn, 'SHOW', page, true);
        shown.forEach((reply, k) => {
          const job = parseJobDetails(reply, bufferCodec);
          // Gone or acknowledged since the scan: not counted.
          if (!job || job.state === 'acked') return;
          if (job.state === 'queued') queued.add(page[k]!);
          else if (job.createdAt.getTime() + job.delay * 1000 > now) delayed++;
          else active++;
        });
      }
    });
    return {
      queued: queued.size,
      active,
      delayed,
      ...(deadLetterQueue === undefined ? {} : { deadLettered: dead.size }),
      unreachable: nodes.failures.map((f) => f.id),
    };
  });
}
