// Revoke, reschedule and kick: acting on jobs already added.
//
// What stops a job cluster-wide: DELJOB and DEQUEUE act on one node only;
// the other nodes holding a copy would queue the job again after its retry
// time. ACKJOB is what the whole cluster honours (the ack is propagated, and
// remembered by a "dummy ack" on a node that does not know the job), so
// revoking is an ACKJOB. FASTACK would do too, but is best effort.
import type { Disque } from './client.js';
import { bufferCodec } from './codec.js';
import { parseDeadLetter } from './dead-letter.js';
import { DisqueError, NoJobError } from './errors.js';
import type { AddJobOptions } from './types.js';

/** The job cannot be rescheduled: a worker may already be running it. */
export class AlreadyDeliveredError extends DisqueError {
  override name = 'AlreadyDeliveredError';
}

/**
 * Revokes a job: ACKJOB, so no node delivers it again. A Worker running it
 * notices at its next check (WORKING, or every `revocationCheck` ms) and
 * aborts the handler's signal with a JobRevokedError; a chain step whose
 * handler finishes anyway still enqueues the next step. Returns true if the
 * node knew the job (false: unknown here, or already acknowledged; the ACK
 * is still propagated in a cluster).
 */
export async function revokeJob(client: Disque<any>, id: string): Promise<boolean> {
  return (await client.ackJob(id)) > 0;
}

/**
 * Runs a job `delay` seconds from now instead: the same body, queue, retry
 * and replication under a new job ID; the old job is revoked. Only a job not
 * delivered yet can be moved: one that is queued (it is taken out of its
 * queue first, DEQUEUE) or still waiting for its own delay. Returns the new
 * job ID.
 */
export async function rescheduleJob(client: Disque<any>, id: string, delay: number): Promise<string> {
  if (!Number.isInteger(delay) || delay < 0) throw new RangeError(`delay must be a non-negative integer (seconds), got ${delay}`);
  const job = await client.show(id, { codec: bufferCodec });
  if (!job || job.state === 'acked') throw new NoJobError(`NOJOB job ${id} is not known to the node (or already acknowledged)`, 'SHOW');
  const now = Date.now();
  const waitingForDelay = job.state !== 'queued' && job.createdAt.getTime() + job.delay * 1000 > now;
  const dequeued = job.state === 'queued' && (await client.dequeue(id)) > 0;
  if (!dequeued && !waitingForDelay) {
    throw new AlreadyDeliveredError(`job ${id} was already delivered (state ${job.state}); revoke it, or let it run`);
  }
  const remaining = Math.ceil((job.createdAt.getTime() + job.ttl * 1000 - now) / 1000);
  await client.ackJob(id);
  return client.addJob<Buffer>(job.queue, job.body, {
    codec: bufferCodec,
    delay,
    retry: job.retry,
    replicate: job.replicate,
    ttl: Math.max(remaining, delay + job.retry + 60),
  });
}

export interface KickOptions {
  /** Most dead letters to move. Default: all. */
  count?: number;
  /** Milliseconds each GETJOB on the dead-letter queue waits (jobs may have to come from other nodes). Default 200. */
  timeout?: number;
  /** ADDJOB options of the jobs added back. Default: the server's. */
  options?: Omit<AddJobOptions, 'codec'>;
}

/**
 * Moves dead letters back to the queue they died in: each envelope's body
 * is added there again as a new job (attempt counters start over), then
 * the dead letter is acknowledged. Returns how many were moved.
 */
export async function kick(client: Disque<any>, deadLetterQueue: string, options: KickOptions = {}): Promise<number> {
  const max = options.count ?? Infinity;
  let moved = 0;
  while (moved < max) {
    const jobs = await client.getJob(deadLetterQueue, {
      count: Math.min(100, max - moved),
      timeout: options.timeout ?? 200,
      codec: bufferCodec,
    });
    if (jobs.length === 0) break;
    for (const dead of jobs) {
      const letter = parseDeadLetter(dead.body);
      await client.addJob<Buffer>(letter.queue, letter.body, { ...options.options, codec: bufferCodec });
      await client.ackJob(dead.id);
      moved++;
    }
  }
  return moved;
}
