// Progress of running task calls. ctx.progress(value) in a handler sends
// the value two ways, both ordinary jobs (no new server state):
// - to the caller, like started/result replies: a `progress` reply in the
//   caller's reply queue, when the call asked for its result, which
//   r.on('progress') streams;
// - as the job's progress record: a job in queue `disque-ts-progress:<id>`
//   that nobody consumes, replacing the previous record (ACKJOB), which
//   r.progress(), Task.progress(id) and the dashboard's job page read.
// Reports made faster than they travel are coalesced: while one is being
// sent only the newest waiting value is kept.
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { assertJson, type ReplyTo } from './envelope.js';
import { addRecord, sendReply, type Progress } from './results.js';

/** The queue holding the progress record of job `id`. */
export function progressQueue(id: string): string {
  return `disque-ts-progress:${id}`;
}

/** Seconds a progress record lives when the call has no result TTL. */
const DEFAULT_PROGRESS_TTL = 3600;

/** A progress record's body. */
interface ProgressBody {
  jobId: string;
  value: unknown;
  seq: number;
  at: number;
}

/** Worker side: the progress of one delivery of a job. */
export class ProgressReporter {
  // Above the previous delivery's numbers: a retry's reports supersede the failed attempt's.
  private seq = Date.now() * 1000;
  private waiting: ProgressBody | undefined;
  private sending: Promise<void> | undefined;
  private record: string | undefined;

  constructor(
    private readonly client: Disque<unknown>,
    private readonly jobId: string,
    private readonly reply: ReplyTo | undefined,
  ) {}

  /** Sends `value` (any JSON value); resolves once it, or a newer value, was sent. */
  report(value: unknown): Promise<void> {
    assertJson(value, 'progress');
    this.waiting = { jobId: this.jobId, value, seq: ++this.seq, at: Date.now() };
    this.sending ??= this.flush().finally(() => {
      this.sending = undefined;
    });
    return this.sending;
  }

  /** Waits for reports in flight (before the result is sent, so progress never follows it). */
  async settle(): Promise<void> {
    await this.sending?.catch(() => {});
  }

  private async flush(): Promise<void> {
    while (this.waiting) {
      const p = this.waiting;
      this.waiting = undefined;
      const ttl = this.reply?.ttl ?? DEFAULT_PROGRESS_TTL;
      const sends: Promise<unknown>[] = [this.store(p, ttl)];
      const to = this.reply;
      if (to) sends.push(sendReply(this.client, to, { key: to.key, kind: 'progress', jobId: p.jobId, value: p.value, seq: p.seq, at: p.at }));
      await Promise.all(sends);
    }
  }

  private async store(p: ProgressBody, ttl: number): Promise<void> {
    const id = await addRecord(this.client, progressQueue(this.jobId), JSON.stringify(p), ttl);
    const old = this.record;
    this.record = id;
    if (old !== undefined) await this.client.ackJob(old);
  }
}

/**
 * The newest progress record of job `id` queued on the node `client` talks
 * to (records are replicated like jobs; a node holding no copy knows none).
 */
export async function readProgress(client: Disque<unknown>, id: string): Promise<Progress | undefined> {
  const jobs = await client.qpeek<Buffer>(progressQueue(id), -10, { codec: bufferCodec });
  return newestRecord(jobs.map((j) => j.body));
}

/** The record with the highest sequence number among `bodies` (unreadable ones skipped). */
export function newestRecord(bodies: Buffer[]): Progress | undefined {
  let best: ProgressBody | undefined;
  for (const b of bodies) {
    try {
      const p = JSON.parse(b.toString('utf8')) as ProgressBody;
      if (typeof p.seq === 'number' && (best === undefined || p.seq > best.seq)) best = p;
    } catch {
      // not a progress record
    }
  }
  return best === undefined ? undefined : { value: best.value, seq: best.seq, at: new Date(best.at) };
}
