// QSCAN and JSCAN: stateless cursor iteration over this node's queues and
// jobs. Every element present for a whole iteration is returned (some maybe
// twice). The cursor may appear anywhere among the options.
import type { Call, CommandSpec } from './context.js';
import { errors } from '../protocol/errors.js';
import { jobStateFromName, type Job } from '../core/job.js';
import type { Queue } from '../core/queue.js';
import { intArg, cursorArg, eq } from './util.js';
import { replyJobInfo } from './jobs.js';

const DEFAULT_COUNT = 100;

/** Bounded work per call unless BUSYLOOP: COUNT results or COUNT*10 steps. */
function stepper(busyloop: boolean, count: number, found: () => number): () => boolean {
  let budget = count * 10;
  return () => busyloop || (budget-- > 0 && found() < count);
}

function qscan(call: Call): void {
  const { argv, reply } = call;
  const { store } = call.node;
  let count = DEFAULT_COUNT;
  let busyloop = false;
  let minlen = -1;
  let maxlen = -1;
  let importrate = -1;
  let cursor = 0;
  let cursorSet = false;
  for (let j = 1; j < argv.length; j++) {
    const opt = argv[j]!;
    const more = j < argv.length - 1;
    let n: number | undefined;
    if (eq(opt, 'count') && more) {
      if ((n = intArg(call, argv[++j]!)) === undefined) return;
      count = n;
    } else if (eq(opt, 'busyloop')) {
      busyloop = true;
    } else if (eq(opt, 'minlen') && more) {
      if ((n = intArg(call, argv[++j]!)) === undefined) return;
      minlen = n;
    } else if (eq(opt, 'maxlen') && more) {
      if ((n = intArg(call, argv[++j]!)) === undefined) return;
      maxlen = n;
    } else if (eq(opt, 'importrate') && more) {
      if ((n = intArg(call, argv[++j]!)) === undefined) return;
      importrate = n;
    } else {
      if (cursorSet) return reply.error(errors.syntax);
      if ((n = cursorArg(call, opt)) === undefined) return;
      cursor = n;
      cursorSet = true;
    }
  }
  const now = store.clock.now();
  const found: Queue[] = [];
  const next = store.scanQueues(
    cursor,
    (q) => {
      const len = q.length;
      if (minlen !== -1 && len < minlen) return;
      if (maxlen !== -1 && len > maxlen) return;
      if (importrate !== -1 && q.importRate(now) < importrate) return;
      found.push(q);
    },
    stepper(busyloop, count, () => found.length),
  );
  reply.arrayLen(2);
  reply.bulkInt(next);
  reply.arrayLen(found.length);
  for (const q of found) reply.bulk(q.name);
}

function jscan(call: Call): void {
  const { argv, reply } = call;
  const { store } = call.node;
  let count = DEFAULT_COUNT;
  let busyloop = false;
  let queue: string | null = null;
  const states = new Set<number>();
  let replyAll = false;
  let cursor = 0;
  let cursorSet = false;
  for (let j = 1; j < argv.length; j++) {
    const opt = argv[j]!;
    const more = j < argv.length - 1;
    if (eq(opt, 'count') && more) {
      const n = intArg(call, argv[++j]!);
      if (n === undefined) return;
      count = n;
    } else if (eq(opt, 'busyloop')) {
      busyloop = true;
    } else if (eq(opt, 'queue') && more) {
      queue = argv[++j]!;
    } else if (eq(opt, 'state') && more) {
      const s = jobStateFromName(argv[++j]!);
      if (s < 0) return reply.error('ERR Invalid job state name');
      states.add(s);
    } else if (eq(opt, 'reply') && more) {
      const t = argv[++j]!.toLowerCase();
      if (t === 'id') replyAll = false;
      else if (t === 'all') replyAll = true;
      else return reply.error('ERR Invalid REPLY type, try ID or ALL');
    } else {
      if (cursorSet) return reply.error(errors.syntax);
      const n = cursorArg(call, opt);
      if (n === undefined) return;
      cursor = n;
      cursorSet = true;
    }
  }
  const found: Job[] = [];
  const next = store.scanJobs(
    cursor,
    (job) => {
      if (job.delivered.length === 0) return; // dummy acks are not jobs
      if (queue !== null && job.queue !== queue) return;
      if (states.size > 0 && !states.has(job.state)) return;
      found.push(job);
    },
    stepper(busyloop, count, () => found.length),
  );
  reply.arrayLen(2);
  reply.bulkInt(next);
  reply.arrayLen(found.length);
  for (const job of found) {
    if (replyAll) replyJobInfo(call, reply, job);
    else reply.status(job.id);
  }
}

export const scanCommands: CommandSpec[] = [
  { name: 'qscan', arity: -1, flags: ['readonly'], handler: qscan },
  { name: 'jscan', arity: -1, flags: ['readonly'], handler: jscan },
];
