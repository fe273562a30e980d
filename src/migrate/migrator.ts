// Moves the jobs of one Disque cluster (the reference's or ours) into
// another of ours, keeping each job's ID and state (README, "Moving from
// Disque"). For each job a source node lists (JSCAN REPLY all):
//
//   1. look at its other copies (SHOW on the nodes that may have one) and
//      merge them into the job's state (job-info.ts);
//   2. a queued job is first taken out of its queue (DEQUEUE), so no source
//      consumer gets it while it moves; if that finds it gone, the job
//      changed under us and is looked at again later;
//   3. IMPORTJOB on one target node, which answers once the job has its
//      copies there (-EXISTS: it is there already, from an earlier run);
//   4. only then DELJOB on every source node that has a copy.
//
// Copy first, delete after: a job is in one cluster or both, never neither.
// If the import fails, a job taken out of its queue is queued again.
//
// With follow, jobs delivered to a consumer of the source are left there
// while that consumer may still acknowledge them (the source would not hear
// of an ACK sent to the target); they are moved, as delivered jobs, by the
// last pass after stop(). Without follow, one pass moves everything.
import type { Redis } from 'ioredis';
import { text } from '../client/replies.js';
import { parseJobInfo, planMove, type JobInfo, type MoveKind, type Plan } from './job-info.js';
import { clockOffset, clusterOf, connectNode, endpointName, type ClusterNodeInfo, type Endpoint } from './endpoints.js';

export interface MigrateOptions {
  from: Endpoint;
  to: Endpoint;
  /** Only these queues (all when null). */
  queues: string[] | null;
  follow: boolean;
  dryRun: boolean;
  /** JSCAN COUNT: jobs looked at per batch. Default 500. */
  batch?: number;
  /** Connections per target node (imports wait for replication one at a time per connection). Default 8. */
  parallel?: number;
  /** IMPORTJOB ms-timeout: how long a target node waits for the job's copies. Default 10000. */
  timeout?: number;
  /** With follow: how long to wait after a pass that found nothing to move. Default 250 ms. */
  idleMs?: number;
  /** Log lines (warnings). */
  log?: (line: string) => void;
}

export interface Counts {
  /** Jobs found to move (each counted once; not those a source consumer acknowledged meanwhile). */
  found: number;
  /** Moved, by the state they had (dry run: would be moved). */
  moved: Record<MoveKind, number>;
  /** Already on the target (same ID): removed from the source only. */
  skipped: number;
  /** Acknowledged on the source (being collected there): not moved. */
  acked: number;
  /** TTL over (or about to be) before it could be moved: left to expire. */
  expiring: number;
  /** With follow: delivered jobs left with their source consumer until stop. */
  waiting: number;
  /** Failed attempts (import, DEQUEUE, DELJOB...), by message. */
  errors: number;
  errorMessages: Map<string, number>;
  /** Moved (or would be moved) per queue. */
  perQueue: Map<string, number>;
  /** Copies of moved jobs that could not be deleted from a source node. */
  copiesLeft: number;
  passes: number;
}

interface SourceNode {
  id: string;
  name: string;
  redis: Redis;
  /** Its clock minus ours, ms. */
  offset: number;
}

interface TargetNode {
  id: string;
  name: string;
  pool: Redis[];
  next: number;
}

/** A job being moved in the current batch. */
interface Moving {
  id: string;
  queue: string;
  /** Node ID -> its copy (null: the node does not have it). */
  copies: Map<string, JobInfo | null>;
  /** Other nodes that may have a copy (not asked when the job is queued where it was found). */
  others: string[];
  plan: Plan;
  /** Nodes where we took it out of its queue. */
  dequeued: string[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** FNV-1a: the same ID goes to the same target node, run after run. */
function hashId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Migrator {
  readonly counts: Counts = {
    found: 0,
    moved: { queued: 0, delayed: 0, delivered: 0 },
    skipped: 0,
    acked: 0,
    expiring: 0,
    waiting: 0,
    errors: 0,
    errorMessages: new Map(),
    perQueue: new Map(),
    copiesLeft: 0,
    passes: 0,
  };
  readonly startedAt = Date.now();
  private source: SourceNode[] = [];
  private target: TargetNode[] = [];
  /** Stop after the current batches (then, with follow, one last pass). */
  private stopping = false;
  /** Stop after the current batches, no last pass. */
  private aborted = false;
  private stopWaiter: (() => void) | null = null;
  /** Jobs found in an earlier pass or batch and not settled: counted as found once. */
  private readonly carried = new Set<string>();
  /** With follow: the carried jobs that wait for their source consumer (delivered). */
  private readonly deferred = new Set<string>();
  /** Jobs handled in this pass (a job has copies on several nodes). */
  private passSeen = new Set<string>();
  private readonly batch: number;
  private readonly parallel: number;
  private readonly timeout: number;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: MigrateOptions) {
    this.batch = opts.batch ?? 500;
    this.parallel = opts.parallel ?? 8;
    this.timeout = opts.timeout ?? 10000;
    this.log = opts.log ?? (() => {});
  }

  get sourceNodes(): readonly { id: string; name: string }[] {
    return this.source;
  }

  get targetNodes(): readonly { id: string; name: string }[] {
    return this.target;
  }

  /** Jobs found and not (yet) moved, skipped, acked or expired. */
  get left(): number {
    return this.carried.size;
  }

  get interrupted(): boolean {
    return this.aborted;
  }

  /** First call: finish the current batches (with follow, then move what is left). Second: stop there. */
  stop(): void {
    if (this.stopping || !this.opts.follow) this.aborted = true;
    this.stopping = true;
    this.stopWaiter?.();
  }

  /** Connects to every node of both clusters. Throws with a readable message. */
  async connect(): Promise<void> {
    const seed = await connectNode(this.opts.from).catch((e) => {
      throw new Error(`source: ${errorText(e)}`);
    });
    const src = await clusterOf(seed, this.opts.from).finally(() => seed.disconnect());
    this.source = await Promise.all(src.nodes.map((n) => this.openSource(n)));

    const tseed = await connectNode(this.opts.to).catch((e) => {
      throw new Error(`target: ${errorText(e)}`);
    });
    try {
      const tgt = await clusterOf(tseed, this.opts.to);
      const mine = new Set(this.source.map((n) => n.id));
      if (tgt.nodes.some((n) => mine.has(n.id))) throw new Error('target: the target is the source cluster (same node IDs)');
      const info = (await tseed.call('COMMAND', 'INFO', 'importjob')) as unknown[];
      if (!Array.isArray(info) || info[0] === null || info[0] === undefined) {
        throw new Error(`target: ${endpointName(this.opts.to)} does not know IMPORTJOB: the target must be a disque-ts cluster`);
      }
      // In ID order: the same job goes to the same node on a rerun.
      const nodes = tgt.nodes.filter((n) => n.priority < 100).sort((a, b) => (a.id < b.id ? -1 : 1));
      this.target = (await Promise.all(nodes.map((n) => this.openTarget(n)))).filter((n): n is TargetNode => n !== null);
      if (this.target.length === 0) throw new Error('target: no target node reachable');
    } finally {
      tseed.disconnect();
    }
  }

  private async openSource(n: ClusterNodeInfo): Promise<SourceNode> {
    const name = endpointName(n);
    try {
      const redis = await connectNode({ ...this.opts.from, host: n.host, port: n.port });
      return { id: n.id, name, redis, offset: await clockOffset(redis) };
    } catch (e) {
      // Its jobs could be neither moved nor deleted: refuse to start.
      throw new Error(`source node ${n.id.slice(0, 8)} (${name}) unreachable: ${errorText(e)}`);
    }
  }

  private async openTarget(n: ClusterNodeInfo): Promise<TargetNode | null> {
    const name = endpointName(n);
    const pool: Redis[] = [];
    try {
      for (let i = 0; i < (this.opts.dryRun ? 1 : this.parallel); i++) pool.push(await connectNode({ ...this.opts.to, host: n.host, port: n.port }));
    } catch (e) {
      for (const r of pool) r.disconnect();
      this.log(`target node ${n.id.slice(0, 8)} (${name}) unreachable, not used: ${errorText(e)}`);
      return null;
    }
    return { id: n.id, name, pool, next: 0 };
  }

  /** Runs to the end: one pass, or with follow passes until stop() and a last one. */
  async run(): Promise<void> {
    if (!this.opts.follow) {
      await this.pass(true);
      return;
    }
    while (!this.stopping) {
      const before = this.progressMark();
      await this.pass(false);
      if (!this.stopping && this.progressMark() === before) {
        await new Promise<void>((r) => {
          this.stopWaiter = r;
          setTimeout(r, this.opts.idleMs ?? 250);
        });
        this.stopWaiter = null;
      }
    }
    if (!this.aborted) await this.pass(true);
  }

  close(): void {
    for (const n of this.source) n.redis.disconnect();
    for (const n of this.target) for (const r of n.pool) r.disconnect();
  }

  private progressMark(): number {
    const c = this.counts;
    return c.moved.queued + c.moved.delayed + c.moved.delivered + c.skipped + c.errors;
  }

  /**
   * One pass over every source node: queued jobs first, then the others.
   * `last`: delivered jobs move too, and unsettled ones are retried.
   */
  private async pass(last: boolean): Promise<void> {
    this.counts.passes++;
    this.passSeen = new Set();
    // A queued copy says all that is needed: the job is queued, and its
    // counters are the ones that node keeps up to date. Those move without
    // asking the other copies, most jobs in a busy cluster.
    await Promise.all(this.source.map((n) => this.scanNode(n, ['queued'], last)));
    // Active everywhere (delayed or delivered): the copies together say which.
    await Promise.all(this.source.map((n) => this.scanNode(n, ['active', 'wait-repl'], last)));
    if (last) await this.settle();
    this.passSeen = new Set();
  }

  private async scanNode(node: SourceNode, states: string[], last: boolean): Promise<void> {
    const queues = this.opts.queues ?? [null];
    for (const q of queues) {
      let cursor = '0';
      do {
        if (this.aborted || (this.stopping && !last)) return;
        const args: (string | number)[] = [cursor, 'COUNT', this.batch, 'REPLY', 'all'];
        for (const st of states) args.push('STATE', st);
        if (q !== null) args.push('QUEUE', q);
        let reply: unknown[];
        try {
          reply = (await node.redis.callBuffer('JSCAN', ...args)) as unknown[];
        } catch (e) {
          this.error(`JSCAN on ${node.name}: ${errorText(e)}`);
          return;
        }
        cursor = text(reply[0]);
        const items = Array.isArray(reply[1]) ? reply[1] : [];
        const infos: JobInfo[] = [];
        for (const item of items) {
          const info = parseJobInfo(item);
          if (info !== null) infos.push(info);
        }
        await this.moveBatch(node, infos, last);
      } while (cursor !== '0');
    }
  }

  /** Jobs one node listed: look at the other copies of those not queued there, then move them. */
  private async moveBatch(node: SourceNode, infos: JobInfo[], last: boolean): Promise<void> {
    const jobs: Moving[] = [];
    const known = new Set(this.source.map((n) => n.id));
    for (const info of infos) {
      if (this.passSeen.has(info.id)) continue;
      this.passSeen.add(info.id);
      if (info.state === 'acked') {
        this.counts.acked++;
        continue;
      }
      // Still delivered (active): it waits for its consumer; no need to ask its copies again.
      // Queued again somewhere, it is found queued there first.
      if (!last && info.state === 'active' && this.deferred.has(info.id)) continue;
      const copies = new Map<string, JobInfo | null>([[node.id, info]]);
      const others = info.nodesDelivered.filter((id) => id !== node.id && known.has(id));
      jobs.push({ id: info.id, queue: info.queue.toString('latin1'), copies, others, plan: { kind: 'acked' }, dequeued: [] });
    }
    if (jobs.length === 0) return;
    await this.showCopies(
      jobs.filter((job) => job.copies.get(node.id)!.state !== 'queued'),
      (job) => job.others,
    );
    await this.moveJobs(jobs, node.offset, last);
  }

  /** SHOW on the nodes each job names (pipelined per node); a node that does not answer is an error. */
  private async showCopies(jobs: Moving[], nodesOf: (job: Moving) => string[]): Promise<void> {
    const byId = new Map(this.source.map((n) => [n.id, n]));
    await Promise.all(
      jobs.flatMap((job) =>
        nodesOf(job).map(async (nodeId) => {
          const n = byId.get(nodeId)!;
          job.others = job.others.filter((id) => id !== nodeId);
          try {
            job.copies.set(nodeId, parseJobInfo(await n.redis.callBuffer('SHOW', job.id)));
          } catch (e) {
            this.error(`SHOW on ${n.name}: ${errorText(e)}`);
            // Unknown: its copy, if any, cannot be deleted.
            job.copies.set(nodeId, null);
            this.counts.copiesLeft++;
          }
        }),
      ),
    );
  }

  private async moveJobs(jobs: Moving[], offset: number, last: boolean): Promise<void> {
    const now = Date.now() + offset;
    const toImport: Moving[] = [];
    for (const job of jobs) {
      job.plan = planMove(job.copies, now, this.timeout);
      const kind = job.plan.kind;
      const wasCarried = this.carried.delete(job.id);
      this.deferred.delete(job.id);
      if (kind === 'acked' || kind === 'gone') {
        // Gone: a job we had found was acknowledged and collected meanwhile.
        // Either way a source consumer finished it: nothing to move after all.
        if (kind === 'acked' || wasCarried) this.counts.acked++;
        if (wasCarried) this.counts.found--;
        continue;
      }
      if (!wasCarried) this.counts.found++;
      if (kind === 'expiring') {
        this.counts.expiring++;
      } else if (kind === 'unsettled') {
        this.carried.add(job.id);
      } else if (kind === 'delivered' && this.opts.follow && !last) {
        this.carried.add(job.id);
        this.deferred.add(job.id);
      } else {
        toImport.push(job);
      }
    }
    this.counts.waiting = this.opts.follow && !last ? this.carried.size : 0;
    if (this.opts.dryRun) {
      for (const job of toImport) this.moved(job, false);
      return;
    }

    // Out of their queues first, so no source consumer takes them meanwhile.
    await this.dequeue(toImport);
    const importing = toImport.filter((job) => {
      if (job.plan.kind !== 'queued' || job.dequeued.length === (job.plan as { queuedOn: string[] }).queuedOn.length) return true;
      this.carried.add(job.id); // delivered or moved meanwhile: look again
      return false;
    });
    const results = await Promise.all(importing.map((job) => this.importJob(job)));
    const done: Moving[] = [];
    const failed: Moving[] = [];
    importing.forEach((job, i) => {
      const r = results[i]!;
      if (r === 'imported' || r === 'exists') {
        this.moved(job, r === 'exists');
        done.push(job);
      } else {
        this.error(`IMPORTJOB: ${r}`);
        this.carried.add(job.id);
        failed.push(job);
      }
    });
    const tried = new Set(importing);
    await this.requeue([...failed, ...toImport.filter((j) => j.dequeued.length > 0 && !tried.has(j))]);
    await this.deleteCopies(done);
  }

  private moved(job: Moving, skipped: boolean): void {
    if (skipped) this.counts.skipped++;
    else this.counts.moved[job.plan.kind as MoveKind]++;
    this.counts.perQueue.set(job.queue, (this.counts.perQueue.get(job.queue) ?? 0) + 1);
  }

  private async dequeue(jobs: Moving[]): Promise<void> {
    const byId = new Map(this.source.map((n) => [n.id, n]));
    await Promise.all(
      jobs.flatMap((job) =>
        job.plan.kind !== 'queued'
          ? []
          : job.plan.queuedOn.map(async (nodeId) => {
              const n = byId.get(nodeId)!;
              try {
                if (Number(await n.redis.call('DEQUEUE', job.id)) === 1) job.dequeued.push(nodeId);
              } catch (e) {
                this.error(`DEQUEUE on ${n.name}: ${errorText(e)}`);
              }
            }),
      ),
    );
  }

  /** Jobs we took out of their queue and did not move go back in it. */
  private async requeue(jobs: Moving[]): Promise<void> {
    const byId = new Map(this.source.map((n) => [n.id, n]));
    await Promise.all(
      jobs.flatMap((job) =>
        job.dequeued.map(async (nodeId) => {
          const n = byId.get(nodeId)!;
          try {
            await n.redis.call('ENQUEUE', job.id);
          } catch (e) {
            // Not lost: the node queues it again at its re-queue time.
            this.error(`ENQUEUE on ${n.name}: ${errorText(e)}`);
          }
        }),
      ),
    );
  }

  /** IMPORTJOB on the job's target node (the next one if that one cannot take it). */
  private async importJob(job: Moving): Promise<'imported' | 'exists' | string> {
    if (job.plan.kind !== 'queued' && job.plan.kind !== 'delayed' && job.plan.kind !== 'delivered') return 'not movable';
    const first = hashId(job.id) % this.target.length;
    let last = '';
    for (let k = 0; k < this.target.length; k++) {
      const n = this.target[(first + k) % this.target.length]!;
      const redis = n.pool[n.next++ % n.pool.length]!;
      try {
        await redis.call('IMPORTJOB', ...job.plan.args);
        return 'imported';
      } catch (e) {
        last = errorText(e);
        if (last.startsWith('EXISTS')) return 'exists';
        // Leaving, or gone: another node takes it. Anything else is about the job.
        if (!last.startsWith('LEAVING') && !/connection|closed|ECONN|timed? ?out|reached the max retries/i.test(last)) break;
      }
    }
    return last;
  }

  /** DELJOB on every source node that had (or may have) a copy, once the target has the job. */
  private async deleteCopies(jobs: Moving[]): Promise<void> {
    const perNode = new Map<string, string[]>();
    const add = (nodeId: string, id: string): void => {
      let ids = perNode.get(nodeId);
      if (!ids) perNode.set(nodeId, (ids = []));
      ids.push(id);
    };
    for (const job of jobs) {
      for (const [nodeId, copy] of job.copies) if (copy !== null) add(nodeId, job.id);
      for (const nodeId of job.others) add(nodeId, job.id);
    }
    const byId = new Map(this.source.map((n) => [n.id, n]));
    await Promise.all(
      [...perNode].map(async ([nodeId, ids]) => {
        const n = byId.get(nodeId)!;
        for (let i = 0; i < ids.length; i += 500) {
          const chunk = ids.slice(i, i + 500);
          try {
            await n.redis.call('DELJOB', ...chunk);
          } catch (e) {
            this.error(`DELJOB on ${n.name}: ${errorText(e)}`);
            this.counts.copiesLeft += chunk.length;
          }
        }
      }),
    );
  }

  /** Jobs still unsettled at the end: looked at again on every node, a few times. */
  private async settle(): Promise<void> {
    for (let round = 0; round < 6 && this.carried.size > 0 && !this.aborted; round++) {
      if (round > 0) await sleep(100 * 2 ** round);
      const ids = [...this.carried];
      for (let i = 0; i < ids.length && !this.aborted; i += this.batch) {
        const jobs: Moving[] = ids.slice(i, i + this.batch).map((id) => ({
          id,
          queue: '',
          copies: new Map(),
          others: [],
          plan: { kind: 'acked' },
          dequeued: [],
        }));
        await this.showCopies(jobs, () => this.source.map((n) => n.id));
        for (const job of jobs) {
          const any = [...job.copies.values()].find((c) => c !== null);
          if (any) job.queue = any.queue.toString('latin1');
        }
        await this.moveJobs(jobs, this.source[0]?.offset ?? 0, true);
      }
    }
  }

  private error(message: string): void {
    this.counts.errors++;
    const m = this.counts.errorMessages;
    if (m.size < 50 || m.has(message)) m.set(message, (m.get(message) ?? 0) + 1);
  }
}
