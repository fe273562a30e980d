// IMPORTJOB: takes a job made by another cluster (or node) with its own ID
// and its state there, for disque-migrate (README, "Moving from Disque").
// Not a command of the reference: clients that never send it see nothing
// change. The job is replicated like an ADDJOB job (same path, same NOREPL
// replies): the reply comes once REPLICATE copies exist in this cluster.
//
//   IMPORTJOB <id> <queue> <body> <ms-timeout> [REPLICATE <count>] [TTL <sec>]
//             [RETRY <sec>] [DELAY <sec>] [STATE queued|active] [REQUEUE <ms>]
//             [NACKS <count>] [ADDITIONAL-DELIVERIES <count>] [CTIME <ctime>]
//
// What state the job arrives in:
//   - STATE queued (the default without DELAY): queued here once replicated.
//   - DELAY <sec> (without STATE): not delivered yet; first queued after
//     DELAY seconds, the delay the job had left where it came from.
//   - STATE active: delivered to a consumer there and not acknowledged. Here
//     it is queued again after REQUEUE ms (default: RETRY seconds), counted as
//     an additional delivery, as the source would have re-queued it. The
//     consumer that holds it may still ACK it where it got it; this cluster
//     does not hear of that ACK, so the job is delivered once more here. An
//     at-most-once job (RETRY 0) already delivered is never queued again.
import type { Call, CommandSpec } from './context.js';
import { errors, parseInteger } from '../protocol/errors.js';
import {
  JobState,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_BCAST_WILLQUEUE,
  JOB_FLAG_DELIVERED,
  NEVER,
  newJobFields,
} from '../core/job.js';
import { isValidJobId, isAtMostOnceJobId } from '../core/job-id.js';
import { timeoutArg, eq, checkedRetry } from './util.js';

const MAX_REPLICATE = 65535;
/** NACK and delivery counters are 16 bits, as in the reference. */
const MAX_COUNTER = 0xffff;

export const importErrors = {
  exists: 'EXISTS Job already known in the context of this node',
  state: 'ERR STATE must be queued or active',
  delayWithState: 'ERR DELAY is for jobs never queued yet: use it without STATE',
  requeueWithoutActive: 'ERR REQUEUE is only valid with STATE active',
  requeueAtMostOnce: 'ERR REQUEUE needs RETRY > 0: an at-most-once job already delivered is never queued again',
  retryNotId: 'ERR RETRY does not match the job ID: its TTL field is odd for RETRY > 0 and even for RETRY 0',
  ctime: 'ERR CTIME must be a creation time as SHOW reports it (milliseconds * 1000000)',
} as const;

/** CTIME as SHOW gives it: Unix ms * 1e6 plus a same-millisecond counter. */
function parseCtime(s: string): { ms: number; seq: number } | undefined {
  if (!/^[1-9][0-9]{0,19}$/.test(s)) return undefined;
  const v = BigInt(s);
  const ms = Number(v / 1000000n);
  // Before 2000 or after 2200: not a Disque creation time.
  if (ms < 946684800000 || ms > 7258118400000) return undefined;
  return { ms, seq: Number(v % 1000000n) };
}

function importjob(call: Call): void {
  const { node, argv, reply } = call;
  const { store, cluster } = node;
  const id = argv[1]!;
  if (!isValidJobId(id)) return reply.error(errors.badId);

  let replicate = cluster.size > 3 ? 3 : cluster.size;
  let ttl = 3600 * 24;
  let retry = -1;
  let delay = 0;
  let state = -1;
  let requeue = -1;
  let nacks = 0;
  let deliveries = 0;
  let ctime: { ms: number; seq: number } | undefined;
  for (let j = 5; j < argv.length; j++) {
    const opt = argv[j]!;
    const last = j === argv.length - 1;
    if (last) return reply.error(errors.syntax);
    const val = argv[++j]!;
    const n = parseInteger(val);
    if (eq(opt, 'replicate')) {
      if (n === undefined || n <= 0 || n > MAX_REPLICATE) return reply.error('ERR REPLICATE must be between 1 and 65535');
      replicate = n;
    } else if (eq(opt, 'ttl')) {
      if (n === undefined || n <= 0) return reply.error('ERR TTL must be a number > 0');
      ttl = n;
    } else if (eq(opt, 'retry')) {
      if (n === undefined || n < 0) return reply.error('ERR RETRY time must be a non negative number');
      retry = n;
    } else if (eq(opt, 'delay')) {
      if (n === undefined || n < 0) return reply.error('ERR DELAY time must be a non negative number');
      delay = n;
    } else if (eq(opt, 'state')) {
      const s = val.toLowerCase();
      if (s === 'queued') state = JobState.Queued;
      else if (s === 'active') state = JobState.Active;
      else return reply.error(importErrors.state);
    } else if (eq(opt, 'requeue')) {
      if (n === undefined || n < 0) return reply.error('ERR REQUEUE time must be a non negative number');
      requeue = n;
    } else if (eq(opt, 'nacks')) {
      if (n === undefined || n < 0) return reply.error('ERR NACKS must be a non negative number');
      nacks = Math.min(n, MAX_COUNTER);
    } else if (eq(opt, 'additional-deliveries')) {
      if (n === undefined || n < 0) return reply.error('ERR ADDITIONAL-DELIVERIES must be a non negative number');
      deliveries = Math.min(n, MAX_COUNTER);
    } else if (eq(opt, 'ctime')) {
      ctime = parseCtime(val);
      if (ctime === undefined) return reply.error(importErrors.ctime);
    } else {
      return reply.error(errors.syntax);
    }
  }

  const timeout = timeoutArg(call, argv[4]!);
  if (timeout === undefined) return;

  // The checks and the default RETRY of ADDJOB.
  const retryUsed = checkedRetry(reply, replicate, retry, delay, ttl);
  if (retryUsed === undefined) return;
  retry = retryUsed;
  // Nodes tell at-most-once jobs from the ID alone (a dummy ack is made only
  // for odd TTL fields): the ID and RETRY must agree.
  if (isAtMostOnceJobId(id) !== (retry === 0)) return reply.error(importErrors.retryNotId);
  if (delay > 0 && state !== -1) return reply.error(importErrors.delayWithState);
  if (state === -1) state = delay > 0 ? JobState.Active : JobState.Queued;
  const delivered = state === JobState.Active && delay === 0;
  if (requeue !== -1 && !delivered) return reply.error(importErrors.requeueWithoutActive);
  if (requeue !== -1 && retry === 0) return reply.error(importErrors.requeueAtMostOnce);

  // This node keeps a copy (a rerun finds the job here), so it takes no
  // import while leaving; clients move on to another node on -LEAVING.
  if (cluster.leaving) return reply.error(errors.leaving);
  if (replicate - 1 > cluster.reachableCount) return reply.error(errors.noreplNotEnough);
  const qname = argv[2]!;
  const q = store.lookupQueue(qname);
  if (q && q.pausedIn) return reply.error(errors.paused);
  if (store.lookupJob(id)) return reply.error(importErrors.exists);

  const now = store.clock.now();
  const fields = newJobFields(id, replicate > 1 ? JobState.WaitRepl : JobState.Active, store.selfOnly());
  fields.queue = qname;
  fields.body = call.body ?? argv[3]!;
  fields.repl = replicate;
  if (ctime) {
    fields.ctime = ctime.ms - store.clock.base;
    fields.cseq = ctime.seq;
  } else {
    store.nextCtime(fields);
  }
  fields.etime = now + ttl * 1000;
  fields.delay = delay;
  fields.retry = retry;
  fields.nacks = nacks;
  fields.deliveries = deliveries;
  if (delivered) {
    // Its next queueing is a re-queue: QUEUED to the other copies, one more
    // additional delivery.
    fields.flags = JOB_FLAG_DELIVERED | JOB_FLAG_BCAST_QUEUED;
    if (retry > 0) {
      fields.flags |= JOB_FLAG_BCAST_WILLQUEUE;
      fields.qtime = now + (requeue !== -1 ? requeue : retry * 1000);
    } else {
      fields.qtime = NEVER;
    }
  } else {
    fields.qtime = delay ? now + delay * 1000 : now + retry * 1000;
  }

  const job = store.addJob(fields);
  if (job === null) return reply.error(importErrors.exists);

  if (replicate > 1) {
    // Answered (and queued, unless delayed or delivered) once replicated.
    cluster.replication.waitForReplication(call.client, job, timeout, true);
    cluster.replication.replicateJob(job, replicate - 1, false);
    return;
  }
  if (state === JobState.Queued) store.enqueueJob(job, false);
  else store.updateAwakeTime(job);
  reply.status(id);
  store.hooks.persistJob?.(job);
}

export const importCommands: CommandSpec[] = [
  { name: 'importjob', arity: -5, flags: ['write', 'denyoom', 'admin'], handler: importjob, bodyArg: 3 },
];
