// Batches with callbacks: t.batch(argsList, { onSuccess, onComplete }).
//
// What makes the callback run exactly once, with no process watching:
// - Each callback is added when the batch is created, before any call of
//   the batch, as a *parked* job: DELAY of the batch's TTL, a copy on every
//   node. It is one job with one ID whatever happens later. Releasing it is
//   ENQUEUE on a node holding a copy, done only while it is still parked
//   (SHOW first), so a second release finds it queued, running or acked and
//   does nothing. onSuccess is cancelled (ACKJOB) when a call failed.
// - The batch's tally, which calls finished and how, is a job in queue
//   `disque-ts-batch:<id>`. The worker that finishes a call (before it
//   acknowledges the call) takes the tally with GETJOB (any node: federation
//   brings it), adds its outcome, ADDJOBs the new tally and ACKs the old one.
//   A worker killed in between leaves the old tally to be queued again after
//   its retry and its own call to run again: the outcome is then recorded by
//   the next run. A tally left twice is merged by whoever takes both (the
//   outcomes of a tally only grow). The worker whose outcome completes the
//   tally releases the callbacks; the final tally stays, marked complete,
//   until its TTL, so a call run again late finds the batch done.
import { randomBytes } from 'node:crypto';
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { assertJson, type BatchRef, type ChainStep, type TaskEnvelope } from './envelope.js';
import { DisqueError } from './errors.js';
import { addRecord, type GroupHandle, type WaitOptions } from './results.js';

/** How a call of a batch ended. */
export type BatchOutcome = 'ok' | 'failed' | 'revoked';

/** The body of a tally job. */
interface Tally {
  batch: string;
  size: number;
  /** Outcome by call index. */
  done: Record<string, BatchOutcome>;
  complete?: boolean;
}

/** Retry time of a callback job, unless its task's defaults set one. */
const CALLBACK_RETRY = 60;

/** Seconds before a tally taken by a worker that died is queued again. */
const TALLY_RETRY = 5;

export function tallyQueue(batchId: string): string {
  return `disque-ts-batch:${batchId}`;
}

export function newBatchId(): string {
  return randomBytes(12).toString('base64url');
}

/** Adds a parked callback (see above); returns its job ID. */
export async function parkCallback(client: Disque<unknown>, step: ChainStep, args: unknown, ref: { id: string; ttl: number }): Promise<string> {
  assertJson(args, 'callback args');
  // Short: the batch must finish at least this long before its TTL (see releaseOn).
  const retry = step.options?.retry ?? Math.max(1, Math.min(CALLBACK_RETRY, Math.floor(ref.ttl / 4)));
  if (retry * 1000 + PARKED_MARGIN_MS >= ref.ttl * 1000) {
    throw new RangeError(`batch ttl (${ref.ttl} s) must be longer than its callback's retry time (${retry} s) and a few seconds`);
  }
  const envelope: TaskEnvelope<unknown> = { task: step.task, args, batchCallback: { batch: ref.id, parkedUntil: Date.now() + ref.ttl * 1000 } };
  // A copy on every node: ENQUEUE only acts on a node that holds the job.
  return addRecord(client, step.queue, JSON.stringify(envelope), ref.ttl + 3600, {
    delay: ref.ttl,
    retry,
    replicate: Math.max(1, client.knownNodes().length),
  });
}

/** Adds the batch's first tally. */
export async function openTally(client: Disque<unknown>, ref: BatchRef): Promise<void> {
  const tally: Tally = { batch: ref.id, size: ref.size, done: {} };
  await addRecord(client, tallyQueue(ref.id), JSON.stringify(tally), ref.ttl, { retry: TALLY_RETRY });
}

/** Records how call `index` of a batch ended (and releases the callbacks when it was the last). */
export function recordOutcome(client: Disque<unknown>, ref: BatchRef, index: number, outcome: BatchOutcome): Promise<void> {
  let w = writers.get(client);
  if (!w) writers.set(client, (w = new TallyWriter(client)));
  return w.add(ref, index, outcome);
}

const writers = new WeakMap<object, TallyWriter>();

interface PendingOutcomes {
  ref: BatchRef;
  outcomes: Map<number, BatchOutcome>;
  waiters: { resolve(): void; reject(e: unknown): void }[];
}

/**
 * Per client, one tally update at a time per batch, on a connection of its
 * own (GETJOB blocks): outcomes of the batch that arrive meanwhile go in
 * the next update together. Batches do not wait for each other.
 */
class TallyWriter {
  private readonly pending = new Map<string, PendingOutcomes>();
  private readonly loops = new Map<string, Promise<void>>();

  constructor(private readonly client: Disque<unknown>) {}

  add(ref: BatchRef, index: number, outcome: BatchOutcome): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let p = this.pending.get(ref.id);
      if (!p) this.pending.set(ref.id, (p = { ref, outcomes: new Map(), waiters: [] }));
      if (!p.outcomes.has(index)) p.outcomes.set(index, outcome);
      p.waiters.push({ resolve, reject });
      this.kick(ref.id);
    });
  }

  private kick(batch: string): void {
    if (this.loops.has(batch)) return;
    this.loops.set(
      batch,
      this.run(batch).finally(() => {
        this.loops.delete(batch);
        if (this.pending.has(batch)) this.kick(batch);
      }),
    );
  }

  private async run(batch: string): Promise<void> {
    const conn = this.client.duplicate({ followProducers: false }).withCodec(bufferCodec);
    try {
      for (let p = this.pending.get(batch); p !== undefined; p = this.pending.get(batch)) {
        this.pending.delete(batch);
        try {
          await updateTally(this.client, conn, p.ref, p.outcomes);
          for (const w of p.waiters) w.resolve();
        } catch (e) {
          for (const w of p.waiters) w.reject(e);
        }
      }
    } finally {
      await conn.quit().catch(() => conn.disconnect());
    }
  }
}

async function updateTally(client: Disque<unknown>, conn: Disque<Buffer>, ref: BatchRef, outcomes: Map<number, BatchOutcome>): Promise<void> {
  const queue = tallyQueue(ref.id);
  for (;;) {
    const jobs = await conn.getJob(queue, { count: 100, timeout: 1000 });
    if (jobs.length === 0) {
      if (Date.now() > ref.until) throw new DisqueError(`batch ${ref.id}: its tally expired (the batch did not finish within its ttl)`);
      continue; // another worker holds it now
    }
    const tally: Tally = { batch: ref.id, size: ref.size, done: {} };
    for (const j of jobs) {
      try {
        const t = JSON.parse(j.body.toString('utf8')) as Tally;
        for (const [i, o] of Object.entries(t.done)) tally.done[i] ??= o;
        if (t.complete) tally.complete = true;
      } catch {
        // not a tally: dropped with the ACK below
      }
    }
    if (!tally.complete) {
      for (const [i, o] of outcomes) tally.done[String(i)] ??= o;
      if (Object.keys(tally.done).length >= ref.size) {
        await releaseCallbacks(client, ref, Object.values(tally.done).every((o) => o === 'ok'));
        tally.complete = true;
      }
    }
    const ttl = Math.max(1, Math.ceil((ref.until - Date.now()) / 1000));
    await addRecord(client, queue, JSON.stringify(tally), ttl, { retry: TALLY_RETRY });
    await conn.ackJob(jobs.map((j) => j.id));
    return;
  }
}

async function releaseCallbacks(client: Disque<unknown>, ref: BatchRef, allSucceeded: boolean): Promise<void> {
  if (ref.onSuccess !== undefined) {
    if (allSucceeded) await release(client, ref.onSuccess);
    else await client.ackJob(ref.onSuccess); // cancelled, on every node
  }
  if (ref.onComplete !== undefined) await release(client, ref.onComplete);
}

/** ENQUEUEs a parked job on a node holding it, unless it is no longer parked. Exported for tests. */
export async function release(client: Disque<unknown>, id: string): Promise<void> {
  if (await releaseOn(client, id)) return;
  for (const node of client.knownNodes()) {
    if (node.id === client.node?.id || node.host === '') continue;
    const c = client.duplicate({ nodes: [{ host: node.host, port: node.port }], discover: false, preferBestNode: false, followProducers: false });
    try {
      if (await releaseOn(c, id)) return;
    } catch {
      // unreachable: try the next node
    } finally {
      c.disconnect();
    }
  }
  throw new DisqueError(`batch callback job ${id} was found on no node`);
}

/**
 * True when `client`'s node holds the job (released now, or already
 * released). Parked means due to be queued later than a delivered job can
 * be: delivery and WORKING put its requeue time at most its retry time
 * ahead, the parking delay much further (a second ENQUEUE of a delivered
 * job would deliver it again).
 */
async function releaseOn(client: Disque<unknown>, id: string): Promise<boolean> {
  const job = await client.show(id, { codec: bufferCodec });
  if (job === null) return false;
  const parked = job.state === 'active' && job.nextRequeueWithin > job.retry * 1000 + PARKED_MARGIN_MS;
  if (parked) await client.enqueue(id);
  return true;
}

/** Requeue times this far beyond the retry time are a parking delay's. */
const PARKED_MARGIN_MS = 2000;

/** The calls of a batch: their results like a GroupHandle, and the batch's ID. */
export class BatchHandle<R> {
  constructor(
    /** Batch ID (its tally is queue `disque-ts-batch:<id>`). */
    readonly id: string,
    readonly group: GroupHandle<R>,
    /** Job IDs of the parked callbacks. */
    readonly callbacks: { onSuccess?: string; onComplete?: string },
  ) {}

  /** Job IDs of the calls, in order (undefined for a call that could not be added). */
  get ids(): string[] {
    return this.group.ids;
  }

  /** Every call's result, in order; throws the first failure. */
  result(options?: WaitOptions): Promise<R[]> {
    return this.group.result(options);
  }

  /** Each call's outcome, in order, failures included. */
  settled(options?: WaitOptions): Promise<PromiseSettledResult<R>[]> {
    return this.group.settled(options);
  }
}
