// ADDJOB, SHOW, DELJOB (and LOADJOB, which only the reference's AOF loader
// may run). See the reference's README, "Main API" and "Job replication
// strategy".
import type { Call, CommandSpec } from './context.js';
import type { ReplyBuffer } from '../protocol/reply.js';
import { errors, parseInteger } from '../protocol/errors.js';
import { Job, JobState, JOB_STATE_NAMES, NEVER, newJobFields } from '../core/job.js';
import { generateJobId, isValidJobId } from '../core/job-id.js';
import { UNIQUE_KEY_MAX } from '../core/unique-index.js';
import { validateJobIds, timeoutArg, eq, checkedRetry } from './util.js';

const MAX_REPLICATE = 65535;

function addjob(call: Call): void {
  const { node, argv, reply } = call;
  const { store, cluster } = node;
  let replicate = cluster.size > 3 ? 3 : cluster.size;
  let ttl = 3600 * 24;
  let retry = -1;
  let delay = 0;
  let maxlen = 0;
  let async = false;
  let unique: string | null = null;
  const leaving = cluster.leaving;
  // Under memory pressure, or when leaving the cluster, the job is
  // replicated to other nodes only ("external replication").
  const extrepl = store.memoryWarningLevel() > 0 || leaving;

  for (let j = 4; j < argv.length; j++) {
    const opt = argv[j]!;
    const last = j === argv.length - 1;
    if (eq(opt, 'replicate') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n <= 0 || n > MAX_REPLICATE) return reply.error('ERR REPLICATE must be between 1 and 65535');
      replicate = n;
    } else if (eq(opt, 'ttl') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n <= 0) return reply.error('ERR TTL must be a number > 0');
      ttl = n;
    } else if (eq(opt, 'retry') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n < 0) return reply.error('ERR RETRY time must be a non negative number');
      retry = n;
    } else if (eq(opt, 'delay') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n < 0) return reply.error('ERR DELAY time must be a non negative number');
      delay = n;
    } else if (eq(opt, 'maxlen') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n <= 0) return reply.error('ERR MAXLEN must be a positive number');
      maxlen = n;
    } else if (eq(opt, 'async')) {
      async = true;
    } else if (eq(opt, 'unique') && !last) {
      unique = argv[++j]!;
      if (unique.length === 0 || unique.length > UNIQUE_KEY_MAX) return reply.error(`ERR UNIQUE key must be 1 to ${UNIQUE_KEY_MAX} bytes`);
    } else {
      return reply.error(errors.syntax);
    }
  }

  const timeout = timeoutArg(call, argv[3]!);
  if (timeout === undefined) return;

  const retryUsed = checkedRetry(reply, replicate, retry, delay, ttl);
  if (retryUsed === undefined) return;
  retry = retryUsed;

  const qname = argv[1]!;
  // UNIQUE: while a job of this queue with this key is held here and not
  // acknowledged, nothing is added and its ID is the answer (docs/unique.md).
  if (unique !== null) {
    const existing = store.lookupUnique(qname, unique);
    if (existing !== undefined) return reply.status(existing.id);
  }

  const additional = extrepl ? replicate : replicate - 1;
  if (additional > cluster.reachableCount) {
    if (extrepl && additional - 1 === cluster.reachableCount) {
      return reply.error(
        `NOREPL Not enough reachable nodes for the requested replication level, since I'm unable to hold a copy of the message for the following reason: ${leaving ? "I'm leaving the cluster" : "I'm out of memory"}`,
      );
    }
    return reply.error(errors.noreplNotEnough);
  }

  const q = store.lookupQueue(qname);
  if (maxlen && q && q.length >= maxlen) return reply.error(errors.maxlen);
  if (q && q.pausedIn) return reply.error(errors.paused);

  // Asynchronous and external: this node keeps no copy at all.
  const discardLocal = async && extrepl;
  const now = store.clock.now();
  const fields = newJobFields(generateJobId(cluster.myself.id, ttl, retry), JobState.WaitRepl, extrepl ? [] : store.selfOnly());
  fields.queue = qname;
  fields.body = call.body ?? argv[2]!;
  fields.repl = replicate;
  if (unique !== null) fields.unique = unique;
  store.nextCtime(fields);
  fields.etime = now + ttl * 1000;
  fields.delay = delay;
  fields.retry = retry;
  // enqueueJob() sets the real re-queue time; delayed jobs wait for DELAY.
  fields.qtime = delay ? now + delay * 1000 : now + retry * 1000;

  if (discardLocal) {
    // Replicated from its fields, then forgotten: one receiver is asked to queue it.
    cluster.replication.replicateJob(fields, additional, true);
    const target = fields.delivered[Math.floor(Math.random() * fields.delivered.length)];
    if (target !== undefined) cluster.sendEnqueue(target, fields.id, fields.delay);
    reply.status(fields.id);
    return;
  }

  const job = store.addJob(fields, true);
  if (job === null) {
    node.log.warning('ID already existing in ADDJOB command!');
    return reply.error('ERR Internal error creating the job, check server logs');
  }

  if ((replicate > 1 || extrepl) && !async) {
    // Synchronous replication: the client waits for GOTJOB confirmations.
    cluster.replication.waitForReplication(call.client, job, timeout, !extrepl);
  } else {
    if (delay === 0) {
      if (!extrepl) store.enqueueJob(job, false);
    } else {
      job.state = JobState.Active;
      store.updateAwakeTime(job);
    }
    reply.status(fields.id);
    if (!extrepl) store.hooks.persistJob?.(job);
  }

  if (additional > 0) cluster.replication.replicateJob(job, additional, async);
}

/** SHOW and JSCAN REPLY ALL: the job as a flat field/value list. */
export function replyJobInfo(call: Call, out: ReplyBuffer, job: Job): void {
  const { store } = call.node;
  const now = store.clock.now();
  const unique = job.unique;
  out.arrayLen(unique === null ? 30 : 32);
  out.bulk('id');
  out.bulk(job.id);
  out.bulk('queue');
  out.bulk(job.queue);
  out.bulk('state');
  out.bulk(JOB_STATE_NAMES[job.state] ?? 'unknown');
  out.bulk('repl');
  out.int(job.repl);
  out.bulk('ttl');
  out.int(Math.max(0, Math.ceil((job.etime - now) / 1000)));
  out.bulk('ctime');
  // Milliseconds * 1e6 plus the same-millisecond counter, as the reference.
  out.intDigits((BigInt(store.clock.base + job.ctime) * 1000000n + BigInt(job.cseq)).toString());
  out.bulk('delay');
  out.int(job.delay);
  out.bulk('retry');
  out.int(job.retry);
  out.bulk('nacks');
  out.int(job.nacks);
  out.bulk('additional-deliveries');
  out.int(job.deliveries);
  out.bulk('nodes-delivered');
  out.arrayLen(job.delivered.length);
  for (const id of job.delivered) out.bulk(id);
  out.bulk('nodes-confirmed');
  const confirmed = job.confirmed ? [...job.confirmed] : [];
  out.arrayLen(confirmed.length);
  for (const id of confirmed) out.bulk(id);
  out.bulk('next-requeue-within');
  if (job.qtime === NEVER) out.nullBulk();
  else out.int(Math.max(0, job.qtime - now));
  out.bulk('next-awake-within');
  if (job.awake === NEVER) out.nullBulk();
  else out.int(Math.max(0, job.awake - now));
  out.bulk('body');
  if (job.queue === null) out.nullBulk(); // a dummy ack
  else out.bulkBytes(job.bodyBytes(), job.bodyOffset(), job.bodyLength);
  // Ours: only jobs added with ADDJOB UNIQUE carry it.
  if (unique !== null) {
    out.bulk('unique');
    out.bulk(unique);
  }
}

function show(call: Call): void {
  const id = call.argv[1]!;
  if (!isValidJobId(id)) return call.reply.error(errors.badId);
  const job = call.node.store.lookupJob(id);
  if (!job) return call.reply.nullBulk();
  replyJobInfo(call, call.reply, job);
}

/** DELJOB: removes jobs from this node only, whatever their state. */
function deljob(call: Call): void {
  if (!validateJobIds(call, 1)) return;
  const { store } = call.node;
  let evicted = 0;
  for (let i = 1; i < call.argv.length; i++) {
    const job = store.lookupJob(call.argv[i]!);
    if (!job) continue;
    store.unregisterJob(job);
    evicted++;
  }
  call.reply.int(evicted);
}

function loadjob(call: Call): void {
  call.reply.error('ERR LOADJOB is a special command only processed from AOF');
}

export const jobCommands: CommandSpec[] = [
  { name: 'addjob', arity: -4, flags: ['write', 'denyoom', 'fast'], handler: addjob, bodyArg: 2 },
  { name: 'show', arity: 2, flags: ['readonly', 'fast'], handler: show },
  { name: 'deljob', arity: -1, flags: ['write', 'fast'], handler: deljob },
  { name: 'loadjob', arity: 2, flags: ['write'], handler: loadjob },
];
