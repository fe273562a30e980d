// GETJOB [NOHANG] [TIMEOUT ms] [COUNT n] [WITHCOUNTERS] FROM q1 ... qN
//
// Serves queues left to right, as many rounds as COUNT needs; blocks when
// all are empty (asking other nodes for jobs meanwhile, see federation) or
// held back by their QPOLICY (served when the limit frees, see store.ts).
import type { Call, CommandSpec } from './context.js';
import { errors, parseInteger } from '../protocol/errors.js';
import type { Job } from '../core/job.js';
import type { Queue } from '../core/queue.js';
import { timeoutArg, eq, replyJob } from './util.js';

function getjob(call: Call): void {
  const { node, argv, reply, client } = call;
  const { store, cluster } = node;
  let timeout = 0;
  let count = 1;
  let nohang = false;
  let withCounters = false;
  let from = -1;

  for (let j = 1; j < argv.length; j++) {
    const opt = argv[j]!;
    const last = j === argv.length - 1;
    if (eq(opt, 'nohang')) {
      nohang = true;
    } else if (eq(opt, 'withcounters')) {
      withCounters = true;
    } else if (eq(opt, 'timeout') && !last) {
      const t = timeoutArg(call, argv[++j]!);
      if (t === undefined) return;
      timeout = t;
    } else if (eq(opt, 'count') && !last) {
      const n = parseInteger(argv[++j]!);
      if (n === undefined || n <= 0) return reply.error('ERR COUNT must be a number greater than zero');
      count = n;
    } else if (eq(opt, 'from')) {
      from = j + 1;
      break;
    } else {
      return reply.error(errors.syntax);
    }
  }
  if (from < 0 || from >= argv.length) return reply.error(errors.syntax);

  // Try to serve without blocking, round after round while jobs come.
  const jobs: Job[] = [];
  // Queues their QPOLICY held back: not asked again in later rounds (nothing frees meanwhile).
  let held: Queue[] | null = null;
  for (;;) {
    const before = jobs.length;
    for (let i = from; i < argv.length; i++) {
      const name = argv[i]!;
      const q = store.lookupQueue(name);
      if (held !== null && q !== undefined && held.includes(q)) continue;
      const job = q && !q.pausedOut ? store.deliverJob(q) : undefined;
      // Held back by the queue's QPOLICY: it has jobs, none to ask for.
      if (job === null) {
        (held ??= []).push(q!);
        continue;
      }
      if (!job) {
        cluster.federation.needJobs(q ?? store.queueFor(name), false);
        continue;
      }
      if (q!.length === 0) cluster.federation.needJobs(q!, true);
      jobs.push(job);
      if (--count === 0) break;
    }
    if (count === 0 || jobs.length === before) break;
  }

  if (jobs.length > 0) {
    reply.arrayLen(jobs.length);
    for (const job of jobs) replyJob(reply, job, withCounters);
    return;
  }
  if (nohang) return reply.nullArray();
  // A leaving node must not attract jobs by blocking consumers here.
  if (cluster.leaving) return reply.error(errors.leaving);

  client.withCounters = withCounters;
  store.block(client, argv.slice(from));
  // On timeout a null reply; on disconnect the client is forgotten.
  client.block(
    {
      kind: 'getjob',
      timedOut() {
        store.unblock(client);
        client.out.nullArray();
        client.unblock();
      },
      disconnected: () => store.unblock(client),
    },
    timeout > 0 ? Date.now() + timeout : 0,
  );
}

export const getjobCommands: CommandSpec[] = [
  { name: 'getjob', arity: -2, flags: ['write', 'fast'], handler: getjob },
];
