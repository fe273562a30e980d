// ACKJOB and FASTACK (the reference's README, "ACKs and retries" and "Fast
// acknowledges").
import type { Call, CommandSpec } from './context.js';
import { JobState, newJobFields } from '../core/job.js';
import { ttlMinutesFromJobId } from '../core/job-id.js';
import { validateJobIds } from './util.js';

/**
 * Acknowledges jobs and starts their collection across the cluster. For an
 * unknown at-least-once job, a "dummy ack" keeps the acknowledgement (in a
 * cluster of several nodes, and unless this node is leaving) so it reaches
 * the owners when they can be reached. Replies how many known jobs changed
 * to acked.
 */
function ackjob(call: Call): void {
  if (!validateJobIds(call, 1)) return;
  const { store, cluster } = call.node;
  let known = 0;
  for (let i = 1; i < call.argv.length; i++) {
    const id = call.argv[i]!;
    let job = store.lookupJob(id);
    if (!job) {
      const ttlMinutes = ttlMinutesFromJobId(id);
      // Odd TTL field: at-least-once; at-most-once jobs need no dummy ack.
      if (cluster.size > 1 && !cluster.leaving && ttlMinutes & 1) {
        const fields = newJobFields(id, JobState.Acked, []);
        fields.etime = store.clock.now() + ttlMinutes * 60_000;
        job = store.addJob(fields) ?? undefined;
      }
    } else if (job.state !== JobState.Acked) {
      store.noteAcked(job);
      store.acknowledgeJob(job);
      known++;
    }
    if (job) cluster.acks.tryJobGC(job);
  }
  call.reply.int(known);
}

/**
 * Deletes jobs here and sends a best-effort DELJOB to the nodes that may have
 * them (to every node for unknown IDs). Replies how many were known here.
 */
function fastack(call: Call): void {
  if (!validateJobIds(call, 1)) return;
  const { store, cluster } = call.node;
  let known = 0;
  for (let i = 1; i < call.argv.length; i++) {
    const id = call.argv[i]!;
    const job = store.lookupJob(id);
    if (!job) {
      cluster.broadcastDelJobId(id);
    } else {
      if (job.state !== JobState.Acked) store.noteAcked(job);
      cluster.broadcastDelJob(job);
      store.unregisterJob(job);
      known++;
    }
  }
  call.reply.int(known);
}

export const ackCommands: CommandSpec[] = [
  { name: 'ackjob', arity: -1, flags: ['write', 'fast'], handler: ackjob },
  { name: 'fastack', arity: -1, flags: ['write', 'fast'], handler: fastack },
];
