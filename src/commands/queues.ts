// Queue commands: QLEN, QPEEK, QSTAT, ENQUEUE, NACK, DEQUEUE, WORKING, PAUSE
// (the reference's README, "Other commands"), and QPOLICY (ours: rate
// limits and concurrency caps, docs/policies.md).
import type { Call, CommandSpec } from './context.js';
import { errors, parseInteger } from '../protocol/errors.js';
import {
  policyFields,
  POLICY_CONCURRENCY_MAX,
  POLICY_RATE_MAX_JOBS,
  POLICY_RATE_MAX_SECONDS,
  RATE,
  CONCURRENCY,
  type RateLimit,
} from '../core/policy.js';
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
  out.arrayLen(store.policies.get(q.name) === undefined ? 22 : 24);
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
  // Ours, after the reference's fields: jobs scheduled here (ADDJOB DELAY,
  // NACK DELAY) and, with a QPOLICY, this node's share of it and its use.
  out.bulk('delayed');
  out.int(store.scheduledCount(q.name));
  const p = store.policies.get(q.name);
  if (p === undefined) return;
  out.bulk('policy');
  out.arrayLen(12);
  out.bulk('rate-share');
  out.int(p.share[RATE]!);
  out.bulk('rate-used');
  out.int(p.used(now));
  out.bulk('concurrency-share');
  out.int(p.share[CONCURRENCY]!);
  out.bulk('in-flight');
  out.int(p.inflight);
  out.bulk('held-by-rate');
  out.int(p.held[RATE]!);
  out.bulk('held-by-concurrency');
  out.int(p.held[CONCURRENCY]!);
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

/** A DELAY in seconds, decimals allowed (ms precision): milliseconds, or undefined after replying the error. */
function delayArg(call: Call, s: string): number | undefined {
  const ms = /^\d{1,9}(\.\d{1,3})?$/.test(s) ? Math.round(Number(s) * 1000) : NaN;
  if (Number.isNaN(ms)) {
    call.reply.error('ERR DELAY time must be a non negative number');
    return undefined;
  }
  return ms;
}

/**
 * NACK id ... [DELAY seconds]: without DELAY (or DELAY 0) the reference's
 * NACK. With it, each active job goes back to its queue after the delay,
 * not before, keeping its ID and counting one NACK; the other owners are
 * told (NACKDELAY), so they wait for the delay plus their retry before
 * they would queue it. Replies how many jobs were NACKed.
 */
function nack(call: Call): void {
  const { argv } = call;
  let end = argv.length;
  let delayMs = 0;
  if (end >= 2 && eq(argv[end - 1]!, 'delay')) return call.reply.error(errors.syntax);
  if (end >= 3 && eq(argv[end - 2]!, 'delay')) {
    const ms = delayArg(call, argv[end - 1]!);
    if (ms === undefined) return;
    delayMs = ms;
    end -= 2;
  }
  if (!validateJobIds(call, 1, end)) return;
  if (delayMs === 0) {
    if (end !== argv.length) call.argv = argv.slice(0, end);
    return enqueueGeneric(call, true);
  }
  const { store, cluster } = call.node;
  let nacked = 0;
  for (let i = 1; i < end; i++) {
    const job = store.lookupJob(argv[i]!);
    if (!job || !store.nackWithDelay(job, delayMs)) continue;
    cluster.broadcastNackDelay(job, delayMs);
    nacked++;
  }
  call.reply.int(nacked);
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

/** RATE <jobs> <seconds> | RATE NONE, from argv[j]: [limit, next index], or undefined after replying. */
function rateArg(call: Call, j: number): [RateLimit | null, number] | undefined {
  const { argv } = call;
  if (j < argv.length && eq(argv[j]!, 'none')) return [null, j + 1];
  if (j + 1 >= argv.length) {
    call.reply.error(errors.syntax);
    return undefined;
  }
  const jobs = parseInteger(argv[j]!);
  if (jobs === undefined || jobs < 1 || jobs > POLICY_RATE_MAX_JOBS) {
    call.reply.error(`ERR RATE jobs must be between 1 and ${POLICY_RATE_MAX_JOBS}`);
    return undefined;
  }
  const seconds = parseInteger(argv[j + 1]!);
  if (seconds === undefined || seconds < 1 || seconds > POLICY_RATE_MAX_SECONDS) {
    call.reply.error(`ERR RATE seconds must be between 1 and ${POLICY_RATE_MAX_SECONDS}`);
    return undefined;
  }
  return [{ jobs, seconds }, j + 2];
}

/**
 * QPOLICY queue SET [RATE jobs seconds | RATE NONE] [CONCURRENCY n | CONCURRENCY NONE]
 * QPOLICY queue GET | CLEAR
 *
 * A queue's delivery limits, cluster-wide (docs/policies.md): SET changes
 * the limits it names and keeps the other; the new policy is sent to every
 * node and reaches later ones through gossip. GET: the policy as flat
 * field/value pairs (rate-jobs, rate-seconds, concurrency), empty when none.
 */
function qpolicy(call: Call): void {
  const { argv, reply } = call;
  const { store, cluster } = call.node;
  const name = argv[1]!;
  const sub = argv[2]!;
  const current = store.policies.record(name);
  if (eq(sub, 'get') && argv.length === 3) {
    const fields = policyFields(current);
    reply.arrayLen(fields.length);
    for (const f of fields) {
      if (typeof f === 'number') reply.int(f);
      else reply.bulk(f);
    }
    return;
  }
  if (eq(sub, 'clear') && argv.length === 3) {
    cluster.publishPolicy(name, null, null);
    return reply.ok();
  }
  if (!eq(sub, 'set') || argv.length === 3) return reply.error(errors.syntax);
  let rate = current?.rate ?? null;
  let concurrency = current?.concurrency ?? null;
  for (let j = 3; j < argv.length; ) {
    const opt = argv[j]!;
    if (eq(opt, 'rate')) {
      const r = rateArg(call, j + 1);
      if (r === undefined) return;
      [rate, j] = r;
    } else if (eq(opt, 'concurrency') && j + 1 < argv.length) {
      const v = argv[j + 1]!;
      if (eq(v, 'none')) {
        concurrency = null;
      } else {
        const n = parseInteger(v);
        if (n === undefined || n < 1 || n > POLICY_CONCURRENCY_MAX) {
          return reply.error(`ERR CONCURRENCY must be between 1 and ${POLICY_CONCURRENCY_MAX}`);
        }
        concurrency = n;
      }
      j += 2;
    } else {
      return reply.error(errors.syntax);
    }
  }
  cluster.publishPolicy(name, rate, concurrency);
  reply.ok();
}

export const queueCommands: CommandSpec[] = [
  { name: 'qlen', arity: 2, flags: ['readonly', 'fast'], handler: qlen },
  { name: 'qpeek', arity: 3, flags: ['readonly'], handler: qpeek },
  { name: 'qstat', arity: 2, flags: ['readonly', 'fast'], handler: qstat },
  { name: 'enqueue', arity: -1, flags: ['denyoom', 'write', 'fast'], handler: (c) => enqueueGeneric(c, false) },
  { name: 'nack', arity: -1, flags: ['denyoom', 'write', 'fast'], handler: nack },
  { name: 'dequeue', arity: -1, flags: ['write', 'fast'], handler: dequeue },
  { name: 'working', arity: 2, flags: ['write', 'fast'], handler: working },
  { name: 'pause', arity: -3, flags: ['readonly', 'fast'], handler: pause },
  { name: 'qpolicy', arity: -3, flags: ['write', 'fast'], handler: qpolicy },
];
