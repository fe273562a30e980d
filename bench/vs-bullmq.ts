// `npm run bench -- --only vs-bullmq`: our client and Worker against BullMQ,
// the queue most Node users run, both in memory: our node (started here, no
// persistence) against BullMQ 5 on a redis-server started here (--save '',
// no AOF), or on a Redis given with --bullmq-redis (keys under a dedicated
// prefix, deleted afterwards). Same process, same ~64-byte JSON bodies,
// the sides alternating round by round; every row counts lost and
// duplicated jobs, and the CPU of every process involved per 1000 jobs.
import { performance } from 'node:perf_hooks';
import { Queue, Worker as BullWorker } from 'bullmq';
import { Disque } from '../src/client/client.js';
import { jsonCodec } from '../src/client/codec.js';
import { Worker } from '../src/client/worker.js';
import type { Address } from './conn.js';
import { procCpuMs, selfCpuMs } from './procstat.js';
import { deleteKeys, externalServer, findOnPath, freePort, OUR_SERVER, startServer, type ServerHandle } from './servers.js';

export interface VsBullmqOptions {
  /** Jobs per throughput row. */
  jobs: number;
  rounds: number;
  /** Approximate JSON body size in bytes. */
  body: number;
  /** Jobs per second of the latency row, and how long it runs. */
  rate: number;
  latencySeconds: number;
  basePort: number;
  /** A Redis for BullMQ instead of starting one. */
  bullmqRedis?: Address;
  status(line: string): void;
  log(line: string): void;
}

interface Body {
  i: number;
  /** performance.now() when added (latency row). */
  t: number;
  pad: string;
}

type SideName = 'ours' | 'bullmq';

/** What a row needs from one side. */
interface Side {
  name: SideName;
  /** The server process: our node, or BullMQ's Redis. */
  serverPid: number | undefined;
  addOne(queue: string, body: Body): Promise<void>;
  addBulk(queue: string, bodies: Body[]): Promise<void>;
  /** Jobs waiting in the queue. */
  waiting(queue: string): Promise<number>;
  /** Starts a worker; `started` runs in each handler, `completed` once each job is acknowledged. */
  work(queue: string, concurrency: number, started: (b: Body) => void, completed: () => void): Promise<() => Promise<void>>;
  /** Removes what the row left in the queue. */
  clean(queue: string): Promise<void>;
  close(): Promise<void>;
}

async function oursSide(server: ServerHandle): Promise<Side> {
  const client = new Disque<Body>({ nodes: [server.addr], codec: jsonCodec<Body>() });
  await client.connect();
  return {
    name: 'ours',
    serverPid: server.pid,
    async addOne(queue, body) {
      await client.addJob(queue, body);
    },
    async addBulk(queue, bodies) {
      const r = await client.addJobs(queue, bodies, { batchSize: 1000 });
      if (r.failed.length > 0) throw r.failed[0]!.error;
    },
    waiting: (queue) => client.qlen(queue),
    async work(queue, concurrency, started, completed) {
      const w = new Worker<Body>(client, queue, (job) => started(job.body), { concurrency, fetchTimeout: 200 });
      w.on('completed', completed);
      w.on('error', (e) => process.stderr.write(`ours worker: ${String(e)}\n`));
      await w.waitUntilReady();
      return () => w.close();
    },
    async clean(queue) {
      await client.drain(queue);
    },
    close: () => client.quit(),
  };
}

async function bullmqSide(redis: ServerHandle, prefix: string): Promise<Side> {
  const connection = { host: redis.addr.host, port: redis.addr.port, maxRetriesPerRequest: null };
  const queues = new Map<string, Queue>();
  const queueOf = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = new Queue(name, { connection, prefix })));
    return q;
  };
  return {
    name: 'bullmq',
    serverPid: redis.pid,
    async addOne(queue, body) {
      await queueOf(queue).add('j', body);
    },
    async addBulk(queue, bodies) {
      const q = queueOf(queue);
      for (let i = 0; i < bodies.length; i += 1000) await q.addBulk(bodies.slice(i, i + 1000).map((data) => ({ name: 'j', data })));
    },
    async waiting(queue) {
      return (await queueOf(queue).getJobCounts('wait'))['wait'] ?? 0;
    },
    async work(queue, concurrency, started, completed) {
      // BullMQ's defaults otherwise (completed jobs are kept, as a user gets).
      const w = new BullWorker<Body>(queue, async (job) => started(job.data), { connection, prefix, concurrency });
      w.on('completed', completed);
      w.on('error', (e) => process.stderr.write(`bullmq worker: ${String(e)}\n`));
      await w.waitUntilReady();
      return () => w.close();
    },
    async clean(queue) {
      const q = queueOf(queue);
      await q.obliterate({ force: true });
      await q.close();
      queues.delete(queue);
    },
    async close() {
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}

interface RowResult {
  side: SideName;
  jobsPerSec: number;
  lost: number;
  duplicated: number;
  /** CPU ms per 1000 jobs: the server process, and this process (client library and worker). */
  serverCpu: number;
  clientCpu: number;
  p50Ms?: number;
  p99Ms?: number;
}

interface Row {
  id: string;
  title: string;
  run(side: Side, queue: string, o: VsBullmqOptions): Promise<RowResult>;
}

function makeBodies(n: number, size: number, t = 0): Body[] {
  const pad = 'x'.repeat(Math.max(0, size - 30));
  return Array.from({ length: n }, (_, i) => ({ i, t, pad }));
}

/** Runs `f` and measures its time and the CPU of the server and this process. */
async function measured(side: Side, jobs: number, f: () => Promise<void>): Promise<{ jobsPerSec: number; serverCpu: number; clientCpu: number }> {
  const s0 = side.serverPid ? (procCpuMs(side.serverPid) ?? 0) : 0;
  const c0 = selfCpuMs();
  const t0 = performance.now();
  await f();
  const secs = (performance.now() - t0) / 1000;
  const s1 = side.serverPid ? (procCpuMs(side.serverPid) ?? 0) : 0;
  const c1 = selfCpuMs();
  return { jobsPerSec: jobs / secs, serverCpu: ((s1 - s0) / jobs) * 1000, clientCpu: ((c1 - c0) / jobs) * 1000 };
}

/** Lost: bodies never seen; duplicated: extra sightings. */
function tally(seen: Uint8Array): { lost: number; duplicated: number } {
  let lost = 0;
  let duplicated = 0;
  for (const n of seen) {
    if (n === 0) lost++;
    else duplicated += n - 1;
  }
  return { lost, duplicated };
}

/** Resolves when `done()` holds; rejects after `ms`. */
function until(done: () => boolean, ms: number, what: string): { check(): void; promise: Promise<void> } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
  return {
    promise,
    check() {
      if (done()) {
        clearTimeout(timer);
        resolve();
      }
    },
  };
}

const addOneRow = (callers: number): Row => ({
  id: `add-one-c${callers}`,
  title: `add, one at a time (${callers} callers)`,
  async run(side, queue, o) {
    const bodies = makeBodies(o.jobs, o.body);
    let next = 0;
    const m = await measured(side, o.jobs, async () => {
      await Promise.all(
        Array.from({ length: callers }, async () => {
          while (next < bodies.length) await side.addOne(queue, bodies[next++]!);
        }),
      );
    });
    const n = await side.waiting(queue);
    return { side: side.name, ...m, lost: Math.max(0, o.jobs - n), duplicated: Math.max(0, n - o.jobs) };
  },
});

const addBulkRow: Row = {
  id: 'add-bulk',
  title: 'add in bulk (1000 per call: BullMQ addBulk, ours addJobs pipelined)',
  async run(side, queue, o) {
    const bodies = makeBodies(o.jobs, o.body);
    const m = await measured(side, o.jobs, () => side.addBulk(queue, bodies));
    const n = await side.waiting(queue);
    return { side: side.name, ...m, lost: Math.max(0, o.jobs - n), duplicated: Math.max(0, n - o.jobs) };
  },
};

const processRow = (concurrency: number): Row => ({
  id: `process-c${concurrency}`,
  title: `process, concurrency ${concurrency} (handler returns at once)`,
  async run(side, queue, o) {
    await side.addBulk(queue, makeBodies(o.jobs, o.body));
    const seen = new Uint8Array(o.jobs);
    let completed = 0;
    const all = until(() => completed >= o.jobs, 300_000, `${side.name} process c${concurrency}`);
    let stop: () => Promise<void> = async () => {};
    const m = await measured(side, o.jobs, async () => {
      stop = await side.work(
        queue,
        concurrency,
        (b) => void seen[b.i]!++,
        () => {
          completed++;
          all.check();
        },
      );
      await all.promise;
    });
    await stop();
    return { side: side.name, ...m, ...tally(seen) };
  },
});

const latencyRow: Row = {
  id: 'latency',
  title: 'latency add → handler start, fixed rate, concurrency 10',
  async run(side, queue, o) {
    const total = Math.round(o.rate * o.latencySeconds);
    const seen = new Uint8Array(total);
    const lat = new Float64Array(total);
    let completed = 0;
    const all = until(() => completed >= total, 120_000, `${side.name} latency`);
    const stop = await side.work(
      queue,
      10,
      (b) => {
        seen[b.i]!++;
        lat[b.i] = performance.now() - b.t;
      },
      () => {
        completed++;
        all.check();
      },
    );
    const pad = 'x'.repeat(Math.max(0, o.body - 30));
    const m = await measured(side, total, async () => {
      const t0 = performance.now();
      const adds: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / o.rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        adds.push(side.addOne(queue, { i, t: performance.now(), pad }));
      }
      await Promise.all(adds);
      await all.promise;
    });
    await stop();
    const sorted = Array.from(lat).sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    return { side: side.name, ...m, ...tally(seen), p50Ms: q(0.5), p99Ms: q(0.99) };
  },
};

export const VS_BULLMQ_ROWS: Row[] = [addOneRow(10), addBulkRow, processRow(1), processRow(10), processRow(50), latencyRow];

const f1 = (x: number) => x.toFixed(1);
const f0 = (x: number) => x.toFixed(0);

function better(row: Row, a: RowResult, b: RowResult): boolean {
  return row.id === 'latency' ? a.p50Ms! < b.p50Ms! : a.jobsPerSec > b.jobsPerSec;
}

/** Runs every row on both sides, alternating; returns the markdown table. */
export async function runVsBullmq(o: VsBullmqOptions, only?: Set<string>): Promise<string> {
  const ports = new Set<number>();
  const ours = await startServer('ours', { bin: OUR_SERVER, port: await freePort(o.basePort, ports) });
  let redis: ServerHandle;
  if (o.bullmqRedis) redis = await externalServer('redis', o.bullmqRedis);
  else {
    const bin = findOnPath('redis-server');
    if (!bin) throw new Error('redis-server not found on PATH (or give --bullmq-redis host:port)');
    redis = await startServer('redis', { bin, port: await freePort(o.basePort + 100, ports) });
  }
  const prefix = `bench-vs-bullmq-${process.pid}`;
  const sides = [await oursSide(ours), await bullmqSide(redis, prefix)];
  const best = new Map<string, Map<SideName, RowResult>>();
  const rows = VS_BULLMQ_ROWS.filter((r) => !only || only.has(r.id));
  try {
    for (let round = 1; round <= o.rounds; round++) {
      for (const row of rows) {
        for (const side of sides) {
          const queue = `vs-${row.id}-${round}-${Date.now()}`;
          o.status(`vs-bullmq · ${row.id} · ${side.name} · round ${round}/${o.rounds}`);
          let r: RowResult;
          try {
            r = await row.run(side, queue, o);
          } finally {
            await side.clean(queue);
          }
          o.log(
            `vs-bullmq · ${row.id} · ${side.name}: ${f0(r.jobsPerSec)} jobs/s` +
              (r.p50Ms !== undefined ? `, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms!.toFixed(2)} ms` : '') +
              `, lost ${r.lost}, duplicated ${r.duplicated}, CPU/1000 jobs: server ${f1(r.serverCpu)} ms, client ${f1(r.clientCpu)} ms`,
          );
          const m = best.get(row.id) ?? new Map<SideName, RowResult>();
          best.set(row.id, m);
          const prev = m.get(side.name);
          const keep = !prev || better(row, r, prev) ? r : prev;
          m.set(side.name, {
            ...keep,
            // The lowest p99 of any round, as the lowest p50 (noise from the machine hits tails most).
            ...(r.p99Ms !== undefined ? { p99Ms: Math.min(r.p99Ms, prev?.p99Ms ?? Infinity) } : {}),
            // Lost or duplicated jobs in any round are kept visible.
            lost: Math.max(keep.lost, prev?.lost ?? 0),
            duplicated: Math.max(keep.duplicated, prev?.duplicated ?? 0),
          });
        }
      }
    }
  } finally {
    await Promise.all(sides.map((s) => s.close().catch(() => {})));
    if (!redis.owned) await deleteKeys(redis.addr, prefix);
    await Promise.all([ours.stop(), redis.owned ? redis.stop() : Promise.resolve()]);
  }
  const lines = [
    '| | ours | BullMQ | ours ÷ BullMQ | lost / duplicated (ours, BullMQ) | CPU ms per 1000 jobs: our node + client | BullMQ: Redis + client |',
    '| :-- | --: | --: | --: | :-: | --: | --: |',
  ];
  for (const row of rows) {
    const m = best.get(row.id);
    const a = m?.get('ours');
    const b = m?.get('bullmq');
    if (!a || !b) continue;
    const lat = row.id === 'latency';
    const cell = (r: RowResult) => (lat ? `p50 ${r.p50Ms!.toFixed(2)} ms, p99 ${r.p99Ms!.toFixed(2)} ms` : `${f0(r.jobsPerSec)} jobs/s`);
    const ratio = lat ? `p50 ${(b.p50Ms! / a.p50Ms!).toFixed(2)}× lower, p99 ${(b.p99Ms! / a.p99Ms!).toFixed(2)}× lower` : (a.jobsPerSec / b.jobsPerSec).toFixed(2);
    lines.push(
      `| ${row.title} | ${cell(a)} | ${cell(b)} | ${ratio} | ${a.lost}/${a.duplicated}, ${b.lost}/${b.duplicated} | ${f1(a.serverCpu)} + ${f1(a.clientCpu)} | ${f1(b.serverCpu)} + ${f1(b.clientCpu)} |`,
    );
  }
  return lines.join('\n');
}
