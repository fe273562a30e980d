// Micro-benchmarks of the in-process core (benny): what one ADDJOB, GETJOB,
// ACKJOB and re-queue cost the job store with 1 thousand and with 1 million
// jobs registered, and what parsing requests and encoding replies cost.
// No sockets: the store runs on a fake clock, as in test/core.
//
//   node dist/bench/core.js [--quick] [--sizes 1000,1000000] [--json FILE]
//   npm run bench -- --core [--quick]
//
// Every case leaves the store as it found it (same jobs registered, same
// queue length), so a case measures one operation plus the inverse that
// restores the state; docs/bench.md lists what each one does. The goal the
// table is read against (not asserted): 1M registered jobs cost no more than
// 20% of throughput compared with 1K.
import b from 'benny';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import { FakeClock } from '../src/core/clock.js';
import { JobStore } from '../src/core/store.js';
import {
  type Job,
  newJobFields,
  JobState,
  JOB_DEFAULT_RETRY_MAX,
  JOB_FLAG_BCAST_QUEUED,
  JOB_FLAG_BCAST_WILLQUEUE,
  JOB_FLAG_DELIVERED,
} from '../src/core/job.js';
import { generateJobId } from '../src/core/job-id.js';
import type { Queue } from '../src/core/queue.js';
import { RequestReader } from '../src/protocol/request.js';
import { ReplyBuffer } from '../src/protocol/reply.js';

const MY_ID = 'c0ffee00'.repeat(5);
const QUEUE = 'bench-queue';
const BODY_SIZE = 64;
const DAY = 24 * 3600;

/** A 64-byte body, different per job (as bench/load.ts sends). */
function body(n: number): string {
  const s = `J${String(n).padStart(10, '0')}:`;
  return s + 'x'.repeat(BODY_SIZE - s.length);
}

/**
 * The store part of ADDJOB q body 0 (single node, TTL 1 day, default RETRY),
 * as src/commands/jobs.ts does it.
 */
function addJob(store: JobStore, qname: string, jobBody: string): Job {
  const ttl = DAY;
  const retry = Math.min(JOB_DEFAULT_RETRY_MAX, Math.floor(ttl / 10));
  const now = store.clock.now();
  const fields = newJobFields(generateJobId(MY_ID, ttl, retry), JobState.WaitRepl, store.selfOnly());
  fields.queue = qname;
  fields.body = jobBody;
  fields.repl = 1;
  store.nextCtime(fields);
  fields.etime = now + ttl * 1000;
  fields.retry = retry;
  fields.qtime = now + retry * 1000;
  const job = store.addJob(fields, true);
  if (job === null) throw new Error('duplicate job ID');
  store.enqueueJob(job, false);
  return job;
}

/** The store part of ACKJOB id on a single node: ack, then tryJobGC collects it at once. */
function ackJob(store: JobStore, id: string): Job {
  const job = store.lookupJob(id)!;
  store.acknowledgeJob(job);
  // src/cluster/acks.ts tryJobGC: every owner (only us) confirmed.
  if (job.gcRetry !== 10) job.gcRetry++;
  if (job.confirmed === null) job.confirmed = new Set([MY_ID]);
  if (job.delivered.length === job.confirmed.size) store.unregisterJob(job);
  return job;
}

/** A string equal to `s` but not the same object: IDs arrive from the network as new strings. */
function copyOf(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

interface Fixture {
  size: number;
  store: JobStore;
  clock: FakeClock;
  q: Queue;
}

/** A store with `size` jobs queued in one queue (a backlog), as ADDJOB leaves them. */
function buildStore(size: number): Fixture {
  const clock = new FakeClock();
  const store = new JobStore({ clock, myId: () => MY_ID, maxmemory: 64 * 1024 * 1024 * 1024 });
  for (let i = 0; i < size; i++) {
    addJob(store, QUEUE, body(i));
    // Spread creation times over the day like a real backlog (1M jobs in ~17 min).
    if (i % 1000 === 999) clock.advance(1);
  }
  store.processJobs(); // nothing due: settles the schedule
  return { size, store, clock, q: store.lookupQueue(QUEUE)! };
}

// ---------------------------------------------------------------------------
// Job store cases. Each returns the function benny times; one call is one
// operation and its inverse. The clock never moves during a case, so nothing
// of the backlog becomes due (its re-queue times are 5 minutes away).

/** ADDJOB then DELJOB of the new job. */
function caseAdd(f: Fixture): () => void {
  const { store } = f;
  let n = 0;
  return () => {
    const job = addJob(store, QUEUE, body(n++));
    store.unregisterJob(job);
  };
}

/** GETJOB from the queue head, then the job goes back to the tail (plain append, ~free). */
function caseDequeue(f: Fixture): () => void {
  const { store, q } = f;
  return () => {
    const job = store.fetchJob(q)!;
    // GETJOB asks for more jobs when it emptied the queue: one length check.
    if (q.length === 0) throw new Error('queue ran empty');
    // Back at the tail with a new creation time: the queue rotates, so every
    // job of the backlog is fetched in turn (as real consumers would).
    store.nextCtime(job);
    job.state = JobState.Queued;
    q.jobs.insert(job.rec);
  };
}

/**
 * Retry re-queue, as processJobs does it when a delivered job's RETRY time
 * comes: GETJOB takes the head job, its re-queue time is made due
 * (updateRequeueTime to now), processJobs puts it back in its place (its
 * creation time keeps it at the head).
 */
function caseRequeue(f: Fixture): () => void {
  const { store, q, clock } = f;
  return () => {
    const job = store.fetchJob(q)!;
    store.updateRequeueTime(job, clock.now());
    store.processJobs();
    if (job.state !== JobState.Queued) throw new Error('not re-queued');
  };
}

/** GETJOB, then NACK: the job goes back to its place at the head, nacks counted. */
function caseNack(f: Fixture): () => void {
  const { store, q } = f;
  return () => {
    const job = store.fetchJob(q)!;
    store.enqueueJob(job, true);
  };
}

/**
 * ACKJOB of a delivered job (all `size` jobs delivered, acked in turn by a
 * fresh copy of their ID), then a copy of the job is registered again as
 * delivered (a new Job object, as a replica receiving it by REPLJOB would
 * make), so the registry stays at `size`.
 */
function caseAck(f: Fixture): () => void {
  const { store, q } = f;
  // Consumers took every job: the queue is drained, the jobs wait for ACKs.
  const ids: string[] = [];
  for (let job = store.fetchJob(q); job; job = store.fetchJob(q)) ids.push(copyOf(job.id));
  let i = 0;
  return () => {
    const id = ids[i]!;
    if (++i === ids.length) i = 0;
    // The copy is taken first: once acked and collected, the job is gone.
    const old = store.lookupJob(id)!;
    const job = newJobFields(id, JobState.Active, old.delivered);
    job.queue = old.queue;
    job.body = old.body;
    job.ctime = old.ctime;
    job.cseq = old.cseq;
    job.etime = old.etime;
    job.retry = old.retry;
    job.qtime = old.qtime;
    job.flags = JOB_FLAG_DELIVERED | JOB_FLAG_BCAST_QUEUED | JOB_FLAG_BCAST_WILLQUEUE;
    ackJob(store, id);
    store.addJob(job);
  };
}

// ---------------------------------------------------------------------------
// Protocol cases.

const PIPELINE = 16;

function respRequest(args: string[]): Buffer {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a, 'latin1')}\r\n${a}\r\n`;
  return Buffer.from(s, 'latin1');
}

/**
 * A request reader as a Connection uses it: RequestReader (the scanner) in
 * front of redis-parser, each request's arguments as latin1 strings.
 */
function requestReader(): { reader: RequestReader; count: () => number } {
  let n = 0;
  const reader = new RequestReader(
    {
      request(argv) {
        if (argv[0]!.length !== 6) throw new Error('not ADDJOB');
        n++;
      },
      protocolError(message) {
        throw new Error(message);
      },
      overLimit() {
        throw new Error('over limit');
      },
    },
    { maxQueryBuffer: 1024 * 1024 * 1024, maxBulkLen: 512 * 1024 * 1024 },
  );
  return { reader, count: () => n };
}

function caseParse(depth: number): () => void {
  const reqs: Buffer[] = [];
  for (let i = 0; i < depth; i++) reqs.push(respRequest(['ADDJOB', QUEUE, body(i), '0']));
  const chunk = Buffer.concat(reqs);
  const { reader, count } = requestReader();
  return () => {
    const before = count();
    reader.feed(chunk);
    if (count() - before !== depth) throw new Error('parse mismatch');
  };
}

/** An ADDJOB reply (+<id>), written and handed to a no-op socket write. */
function caseEncodeAdd(): () => void {
  const out = new ReplyBuffer();
  const id = generateJobId(MY_ID, DAY, 300);
  const write = (_: Buffer): boolean => true;
  return () => {
    out.status(id);
    out.flushTo(write);
  };
}

/** A GETJOB reply for one job, as Node.replyJob writes it (src/server/node.ts). */
function caseEncodeGet(): () => void {
  const out = new ReplyBuffer();
  const id = generateJobId(MY_ID, DAY, 300);
  const jobBody = body(1);
  const write = (_: Buffer): boolean => true;
  return () => {
    out.arrayLen(1);
    out.arrayLen(3);
    out.bulk(QUEUE);
    out.bulk(id);
    out.bulk(jobBody);
    out.flushTo(write);
  };
}

// ---------------------------------------------------------------------------

export interface CoreOptions {
  quick: boolean;
  sizes: number[];
  /** Case names (or prefixes: "re-queue") to run; all when absent. */
  only?: string[];
}

export interface CoreResult {
  op: string;
  /** What one operation is (benny's ops/s count these). */
  unit: string;
  /** Size (jobs registered) -> ops/s, for the store operations. */
  bySize: Record<string, number>;
  /** For protocol cases: ops/s and margin. */
  opsPerSec?: number;
  marginPct: Record<string, number>;
  /** Share of the case's wall time spent in garbage collection, %. */
  gcPct: Record<string, number>;
}

const fmtSize = (n: number): string => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}K` : String(n));
const fmtOps = (n: number): string =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : n.toFixed(0);

export async function runCore(o: CoreOptions, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<CoreResult[]> {
  const config = b.configure({ cases: o.quick ? { minTime: 0.05, maxTime: 0.5 } : { minTime: 0.1, maxTime: 2 } });
  const fixtures: Fixture[] = [];
  for (const size of o.sizes) {
    const t = Date.now();
    fixtures.push(buildStore(size));
    log(`core: ${size.toLocaleString('en-US')} jobs registered in ${Date.now() - t} ms`);
  }
  // GC time per case: V8's GC profiler, restarted at each of benny's cycle
  // events (benchmark.js runs a case without yielding to the event loop).
  let profiler = new GCProfiler();
  let t0 = 0;
  const startCase = (): void => {
    profiler = new GCProfiler();
    profiler.start();
    t0 = performance.now();
  };
  const gcShares: number[] = [];
  const cycle = b.cycle((res) => {
    const now = performance.now();
    let gcUs = 0;
    for (const st of profiler.stop()?.statistics ?? []) gcUs += st.cost;
    const share = (100 * gcUs) / 1000 / Math.max(1, now - t0);
    gcShares.push(share);
    log(`  ${res.name}: ${fmtOps(res.ops)} ops/s ±${res.margin.toFixed(0)}%, GC ${share.toFixed(0)}% of the time`);
    startCase();
    return undefined;
  });
  const results: CoreResult[] = [];
  const storeOps: [string, string, (f: Fixture) => () => void][] = [
    ['add', 'ADDJOB + DELJOB', caseAdd],
    ['dequeue', 'GETJOB (head) + append back', caseDequeue],
    ['re-queue (retry)', 'GETJOB + retry due + processJobs', caseRequeue],
    ['re-queue (nack)', 'GETJOB + NACK', caseNack],
    // Last: it drains the queues (every job delivered, awaiting its ACK).
    ['ack', 'ACKJOB + register again', caseAck],
  ];
  const wanted = (op: string): boolean => !o.only || o.only.some((w) => op.startsWith(w));
  for (const [op, unit, make] of storeOps) {
    if (!wanted(op)) continue;
    const cases = fixtures.map((f) => b.add(`${op} @ ${fmtSize(f.size)}`, make(f)));
    log(`core: ${op} (${unit})`);
    gcShares.length = 0;
    startCase();
    const summary = await b.suite(`core: ${op}`, config, ...cases, cycle);
    const r: CoreResult = { op, unit, bySize: {}, marginPct: {}, gcPct: {} };
    summary.results.forEach((res, i) => {
      const size = String(fixtures[i]!.size);
      r.bySize[size] = res.ops;
      r.marginPct[size] = res.margin;
      r.gcPct[size] = gcShares[i] ?? 0;
    });
    results.push(r);
  }
  fixtures.length = 0; // let the stores go before the protocol cases

  const protoOps: [string, string, () => () => void, number][] = [
    ['parse ADDJOB', '1 request', () => caseParse(1), 1],
    [`parse ADDJOB ×${PIPELINE}`, `${PIPELINE} pipelined requests`, () => caseParse(PIPELINE), PIPELINE],
    ['encode ADDJOB reply', '+<id>', caseEncodeAdd, 1],
    ['encode GETJOB reply', '1 job: queue, id, 64-byte body', caseEncodeGet, 1],
  ];
  const protoRun = protoOps.filter(([op]) => wanted(op));
  if (protoRun.length > 0) {
    log('protocol: request parsing and reply encoding (ops/s here: buffers fed or replies written)');
    gcShares.length = 0;
    const cases = protoRun.map(([name, , make]) => b.add(name, make()));
    startCase();
    const summary = await b.suite('protocol', config, ...cases, cycle);
    summary.results.forEach((res, i) => {
      const [op, unit, , per] = protoRun[i]!;
      results.push({ op, unit, bySize: {}, opsPerSec: res.ops * per, marginPct: { all: res.margin }, gcPct: { all: gcShares[i] ?? 0 } });
    });
  }
  profiler.stop();
  return results;
}

/** The summary table: ops/s per size and the largest/smallest ratio. */
export function coreTable(results: CoreResult[], sizes: number[]): string {
  const lo = String(Math.min(...sizes));
  const hi = String(Math.max(...sizes));
  const lines: string[] = [];
  const ratioHead = sizes.length > 1 ? ` ${fmtSize(Number(hi))}/${fmtSize(Number(lo))} |` : '';
  const gcHead = sizes.map((s) => ` GC ${fmtSize(s)} |`).join('');
  lines.push(`| store operation | one op is |${sizes.map((s) => ` ${fmtSize(s)} jobs ops/s |`).join('')}${ratioHead}${gcHead}`);
  lines.push(`| :-- | :-- |${sizes.map(() => ' --: |').join('')}${sizes.length > 1 ? ' --: |' : ''}${sizes.map(() => ' --: |').join('')}`);
  for (const r of results.filter((x) => x.opsPerSec === undefined)) {
    const cells = sizes.map((s) => ` ${fmtOps(r.bySize[String(s)] ?? 0)} ±${(r.marginPct[String(s)] ?? 0).toFixed(0)}% |`).join('');
    const ratio = sizes.length > 1 ? ` ${((r.bySize[hi] ?? 0) / (r.bySize[lo] ?? 1)).toFixed(2)} |` : '';
    const gc = sizes.map((s) => ` ${(r.gcPct[String(s)] ?? 0).toFixed(0)}% |`).join('');
    lines.push(`| ${r.op} | ${r.unit} |${cells}${ratio}${gc}`);
  }
  lines.push('');
  lines.push('| protocol | one op is | ops/s | GC |');
  lines.push('| :-- | :-- | --: | --: |');
  for (const r of results.filter((x) => x.opsPerSec !== undefined)) {
    lines.push(`| ${r.op} | ${r.unit} | ${fmtOps(r.opsPerSec!)} ±${(r.marginPct.all ?? 0).toFixed(0)}% | ${(r.gcPct.all ?? 0).toFixed(0)}% |`);
  }
  lines.push('');
  lines.push('protocol ops/s count requests (parse) or replies (encode), not buffers; GC: share of the case\'s time in garbage collection');
  if (sizes.length > 1) lines.push(`goal (not asserted): ${fmtSize(Number(hi))}/${fmtSize(Number(lo))} ≥ 0.80 for every store operation`);
  return lines.join('\n');
}

export function parseSizes(s: string): number[] {
  const sizes = s.split(',').map((x) => Number(x.trim()));
  for (const n of sizes) if (!Number.isSafeInteger(n) || n < 1) throw new Error(`bad size ${n}`);
  return sizes;
}

export const DEFAULT_SIZES = [1000, 1_000_000];

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      json: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (a.help) {
    process.stdout.write('Usage: node dist/bench/core.js [--quick] [--sizes 1000,1000000] [--only add,dequeue,re-queue,ack,parse,encode] [--json FILE]\n');
    return;
  }
  const sizes = a.sizes ? parseSizes(a.sizes) : DEFAULT_SIZES;
  const results = await runCore({ quick: a.quick!, sizes, ...(a.only ? { only: a.only.split(',').map((x) => x.trim()) } : {}) });
  process.stdout.write('\n' + coreTable(results, sizes) + '\n');
  if (a.json) writeFileSync(a.json, JSON.stringify({ date: new Date().toISOString(), node: process.versions.node, sizes, results }, null, 2));
}

// Run as a script, not when imported by bench/run.ts.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: Error) => {
    process.stderr.write(`core bench failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
