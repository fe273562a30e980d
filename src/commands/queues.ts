// Queue commands: QLEN, QPEEK, QSTAT, ENQUEUE, NACK, DEQUEUE, WORKING, PAUSE
// (the reference's README, "Other commands").
import type { Call, CommandSpec } from './context.js';
import { errors } from '../protocol/errors.js';
import { JobState, JOB_FLAG_BCAST_WILLQUEUE } from '../core/job.js';
import { QUEUE_FLAG_PAUSED_IN, QUEUE_FLAG_PAUSED_OUT, QUEUE_FLAG_PAUSED_ALL, pausedStateName } from '../core/queue.js';
import { TIME_ERROR } from '../core/store.js';
import { validateJobIds, intArg, eq, replyJob } from './util.js';

function qlen(call: Call): void {
  call.reply.int(call.node.store.lookupQueue(call.argv[1]!)?.length ?? 0);
}

/** QPEEK queue count: without consuming; a negative count shows the newest first. */
function qpeek(call: Call): void {
  let count = intArg(call, call.argv[2]!);
  if (count === undefined) return;
  const newest = count < 0;
  if (newest) count = -count;
  const q = call.node.store.lookupQueue(call.argv[1]!);
  const jobs = q ? call.node.store.peekJobs(q, count, newest) : [];
  call.reply.arrayLen(jobs.length);
  for (const job of jobs) replyJob(call.reply, job, false);
}

function qstat(call: Call): void {
  const { store } = call.node;
  const q = store.lookupQueue(call.argv[1]!);
  if (!q) return call.reply.nullArray();
  const now = store.clock.now();
  const out = call.reply;
  out.arrayLen(20);
  out.bulk('name');
  out.bulk(q.name);
  out.bulk('len');
  out.int(q.length);
  out.bulk('age');
  out.int(Math.max(0, Math.floor((now - q.ctime) / 1000)));
  out.bulk('idle');
  out.int(Math.max(0, Math.floor((now - q.atime) / 1000)));
  out.bulk('blocked');
  out.int(q.blockedCount);
  out.bulk('import-from');
  const from = q.responders ? [...q.responders.keys()] : [];
  out.arrayLen(from.length);
  for (const id of from) out.bulk(id);
  out.bulk('import-rate');
  out.int(q.importRate(now));
  out.bulk('jobs-in');
  out.int(q.jobsIn);
  out.bulk('jobs-out');
  out.int(q.jobsOut);
  out.bulk('pause');
  out.bulk(pausedStateName(q.flags));
}

/**
 * ENQUEUE and NACK: queue active jobs again (even at-most-once ones, as the
 * reference warns). NACK counts a negative acknowledge, ENQUEUE an
 * additional delivery, on every copy. Replies how many were queued.
 */
function enqueueGeneric(call: Call, nack: boolean): void {
  if (!validateJobIds(call, 1)) return;
  const { store } = call.node;
  let enqueued = 0;
  for (let i = 1; i < call.argv.length; i++) {
    const job = store.lookupJob(call.argv[i]!);
    if (job && job.state === JobState.Active && store.enqueueJob(job, nack)) enqueued++;
  }
  call.reply.int(enqueued);
}

function dequeue(call: Call): void {
  if (!validateJobIds(call, 1)) return;
  const { store } = call.node;
  let dequeued = 0;
  for (let i = 1; i < call.argv.length; i++) {
    const job = store.lookupJob(call.argv[i]!);
    if (job && job.state === JobState.Queued && store.dequeueJob(job)) dequeued++;
  }
  call.reply.int(dequeued);
}

/**
 * WORKING: postpones the next delivery by the retry time, here and on the
 * other copies. Refused once half of the TTL has passed, so a broken worker
 * cannot hold a job forever. Replies the retry time in seconds.
 */
function working(call: Call): void {
  if (!validateJobIds(call, 1, 2)) return;
  const { store, cluster } = call.node;
  const job = store.lookupJob(call.argv[1]!);
  if (!job) return call.reply.error(errors.noJob);
  const now = store.clock.now();
  const ttl = job.etime - job.ctime;
  const elapsed = now - job.ctime;
  if (ttl > 0 && elapsed > ttl / 2) return call.reply.error(errors.tooLate);
  if (job.state === JobState.Queued) store.dequeueJob(job);
  job.flags |= JOB_FLAG_BCAST_WILLQUEUE;
  store.updateRequeueTime(job, now + job.retry * 1000 + store.timeError(TIME_ERROR));
  cluster.broadcastWorking(job);
  call.reply.int(job.retry);
}

/** PAUSE queue in|out|all|none|state [bcast]: replies the resulting state. */
function pause(call: Call): void {
  const { store, cluster } = call.node;
  const name = call.argv[1]!;
  let q = store.lookupQueue(name);
  const oldFlags = q ? q.flags : 0;
  let newFlags = 0;
  let update = false;
  let bcast = false;
  for (let j = 2; j < call.argv.length; j++) {
    const opt = call.argv[j]!;
    if (eq(opt, 'none')) {
      newFlags = 0;
      update = true;
    } else if (eq(opt, 'in')) {
      newFlags |= QUEUE_FLAG_PAUSED_IN;
      update = true;
    } else if (eq(opt, 'out')) {
      newFlags |= QUEUE_FLAG_PAUSED_OUT;
      update = true;
    } else if (eq(opt, 'all')) {
      newFlags |= QUEUE_FLAG_PAUSED_ALL;
      update = true;
    } else if (eq(opt, 'state')) {
      // Only report.
    } else if (eq(opt, 'bcast')) {
      bcast = true;
    } else {
      return call.reply.error(errors.syntax);
    }
  }
  if (!q && update && oldFlags !== newFlags) q = store.queueFor(name);
  if (q && update) {
    store.changePausedState(q, QUEUE_FLAG_PAUSED_IN, (newFlags & QUEUE_FLAG_PAUSED_IN) !== 0);
    store.changePausedState(q, QUEUE_FLAG_PAUSED_OUT, (newFlags & QUEUE_FLAG_PAUSED_OUT) !== 0);
  }
  const state = (q ? q.flags : 0) & QUEUE_FLAG_PAUSED_ALL;
  if (bcast) cluster.broadcastPause(name, state);
  call.reply.status(pausedStateName(state));
}

export const queueCommands: CommandSpec[] = [
  { name: 'qlen', arity: 2, flags: ['readonly', 'fast'], handler: qlen },
  { name: 'qpeek', arity: 3, flags: ['readonly'], handler: qpeek },
  { name: 'qstat', arity: 2, flags: ['readonly', 'fast'], handler: qstat },
  { name: 'enqueue', arity: -1, flags: ['denyoom', 'write', 'fast'], handler: (c) => enqueueGeneric(c, false) },
  { name: 'nack', arity: -1, flags: ['denyoom', 'write', 'fast'], handler: (c) => enqueueGeneric(c, true) },
  { name: 'dequeue', arity: -1, flags: ['write', 'fast'], handler: dequeue },
  { name: 'working', arity: 2, flags: ['write', 'fast'], handler: working },
  { name: 'pause', arity: -3, flags: ['readonly', 'fast'], handler: pause },
];
