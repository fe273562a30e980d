// One fault run: a cluster with persistence, producers and consumers, a
// seeded schedule of faults, then healing, draining and the checker's
// verdict. run-cli.ts runs many of them (npm run chaos); the test suite runs
// a short one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, History, type Verdict } from './checker.js';
import { Partitions } from './partition.js';
import { adminCall, ChaosCluster, ChaosRedis, type Flavor } from './processes.js';
import { describeFault, makeSchedule, type Fault, type Mode } from './schedule.js';
import { Workload } from './workload.js';

export interface RunOptions {
  flavor: Flavor;
  referenceBin?: string;
  redisBin: string;
  mode: Mode;
  seed: number;
  durationMs: number;
  nodes: number;
  replicate: number;
  retrySec: number;
  nodeTimeoutMs: number;
  producers: number;
  consumers: number;
  /** appendonly no on every node (ours then needs no Redis); modes with Redis faults refuse it. */
  noPersist?: boolean;
  /** Longest wait, after healing, for every acknowledged job to be delivered. */
  drainTimeoutMs: number;
  /** Print the history of this many duplicated jobs, with the faults, to see where duplicates come from. */
  traceDups?: number;
  /** Print the replication trace of this many of the slowest ADDJOBs (ours: repl-trace-slower-than). */
  traceSlow?: number;
  /** Progress lines (the schedule, each fault as it happens). */
  log: (line: string) => void;
}

export interface RunResult {
  flavor: Flavor;
  mode: Mode;
  seed: number;
  faults: number;
  /** Faults not applicable to the flavor (Redis faults for the reference). */
  skipped: number;
  verdict: Verdict;
  /** Where each lost job still is, per node (SHOW), for the log. */
  lostWhere: string[];
}

/** --trace-slow: replications slower than this are logged by the nodes. */
const TRACE_SLOWER_THAN_MS = 20;

const sleepUntil = (t0: number, at: number): Promise<void> =>
  new Promise((r) => setTimeout(r, Math.max(0, t0 + at - performance.now())));

interface Action {
  at: number;
  what: string;
  run: () => Promise<void> | void;
}

export async function runOnce(o: RunOptions): Promise<RunResult> {
  const schedule = makeSchedule({
    seed: o.seed,
    mode: o.mode,
    durationMs: o.durationMs,
    nodes: o.nodes,
    replicate: o.replicate,
    nodeTimeoutMs: o.nodeTimeoutMs,
  });
  const ours = o.flavor === 'ours';
  const applicable = schedule.filter((f) => ours || !f.kind.startsWith('redis-'));
  o.log(`${o.flavor} ${o.mode} seed ${o.seed}: ${applicable.length} faults${applicable.length < schedule.length ? ` (${schedule.length - applicable.length} Redis faults do not apply)` : ''}`);
  for (const f of applicable) o.log(`  ${describeFault(f)}`);

  const workDir = mkdtempSync(join(tmpdir(), `disque-chaos-${o.flavor}-`));
  const history = new History();
  if ((o.traceDups ?? 0) > 0) history.trace = new Map();
  const faultLog: string[] = [];
  let redis: ChaosRedis | null = null;
  let cluster: ChaosCluster | null = null;
  let partitions: Partitions | null = null;
  let workload: Workload | null = null;
  try {
    if (ours && !o.noPersist) redis = await ChaosRedis.start(o.redisBin, workDir);
    if (applicable.some((f) => f.kind === 'partition')) partitions = Partitions.create();
    cluster = await ChaosCluster.start({
      flavor: o.flavor,
      ...(o.referenceBin !== undefined ? { referenceBin: o.referenceBin } : {}),
      nodes: o.nodes,
      hostPrefix: `127.77.${(process.pid % 250) + 1}.`,
      nodeTimeoutMs: o.nodeTimeoutMs,
      ...(redis !== null ? { redisUrl: redis.url } : {}),
      ...(o.noPersist ? { noPersist: true } : {}),
      ...((o.traceSlow ?? 0) > 0 ? { replTraceMs: TRACE_SLOWER_THAN_MS } : {}),
      workDir,
    });
    await cluster.join();
    const c = cluster;
    const addresses = c.nodes.map((n) => `${n.host}:${n.port}`);
    workload = new Workload(
      {
        nodes: addresses,
        producers: o.producers,
        consumers: o.consumers,
        queue: 'chaos',
        replicate: o.replicate,
        retrySec: o.retrySec,
        addTimeoutMs: 2000,
        commandTimeoutMs: Math.max(2000, o.nodeTimeoutMs),
        tag: `s${o.seed}`,
      },
      history,
    );
    workload.start();

    const actions = toActions(applicable, c, redis, partitions);
    const t0 = performance.now();
    history.faultsFrom = history.now();
    for (const a of actions) {
      await sleepUntil(t0, a.at);
      o.log(`  ${(a.at / 1000).toFixed(1)}s ${a.what}`);
      faultLog.push(`${(history.now() / 1000).toFixed(3)}s (${new Date().toISOString().slice(11, 23)}) ${a.what}`);
      await a.run();
    }
    await sleepUntil(t0, o.durationMs);
    // Whatever is still faulty heals now (a restart may have run late).
    partitions?.heal();
    await redis?.heal();
    await c.healAll();
    history.faultsUntil = history.now();
    await workload.stopProducers();
    o.log(`  healed at ${(history.faultsUntil / 1000).toFixed(1)}s; draining`);

    const drainDeadline = performance.now() + o.drainTimeoutMs;
    while (history.undelivered().length > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 200));
    // A little longer, for the duplicates a lost ACK brings (one retry period).
    if (history.undelivered().length === 0) await new Promise((r) => setTimeout(r, (o.retrySec + 1) * 1000));
    await workload.stop();
    workload = null;
    const verdict = check(history);
    const lostWhere = verdict.lost > 0 ? await locate(c, verdict.lostIds) : [];
    if ((o.traceSlow ?? 0) > 0 && ours) {
      o.log(`  faults:\n    ${faultLog.join('\n    ')}`);
      const slow = c.slowReplications(o.traceSlow!);
      o.log(
        `  ADDJOBs replicated in ${TRACE_SLOWER_THAN_MS} ms or more: ${slow.replied} answered, ${slow.norepl} NOREPL; the slowest answered (ms since the ADDJOB arrived):`,
      );
      for (const l of slow.slowest) o.log(`    ${l}`);
      if (slow.median !== null) o.log(`  the median of them:\n    ${slow.median}`);
    }
    if (history.trace !== null) {
      o.log(`  nodes: ${c.nodes.map((n) => `${n.index}=${n.port}`).join(' ')}`);
      o.log(`  faults:\n    ${faultLog.join('\n    ')}`);
      const dups = [...history.deliveries].filter(([, n]) => n > 1).slice(0, o.traceDups);
      for (const [id] of dups) o.log(`  duplicate ${id}:\n    ${history.trace.get(id)!.join('\n    ')}`);
    }
    return { flavor: o.flavor, mode: o.mode, seed: o.seed, faults: applicable.length, skipped: schedule.length - applicable.length, verdict, lostWhere };
  } catch (e) {
    if (cluster !== null) for (const n of cluster.nodes) o.log(`--- node ${n.index} log tail ---\n${cluster.logTail(n)}`);
    throw e;
  } finally {
    await workload?.stop().catch(() => {});
    await cluster?.stop();
    await redis?.stop();
    partitions?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Each fault as two actions, in time order: inject, heal. */
function toActions(faults: Fault[], c: ChaosCluster, redis: ChaosRedis | null, partitions: Partitions | null): Action[] {
  const out: Action[] = [];
  const label = (f: Fault): string => describeFault(f).replace(/^\S+ /, '');
  for (const f of faults) {
    const inject = (run: Action['run']): number => out.push({ at: f.at, what: `inject ${label(f)}`, run });
    const heal = (run: Action['run']): number => out.push({ at: f.heal, what: `heal ${label(f)}`, run });
    switch (f.kind) {
      case 'kill':
        inject(() => c.kill9(f.nodes[0]!));
        heal(() => c.restart(f.nodes[0]!));
        break;
      case 'pause':
        inject(() => c.pause(f.nodes[0]!));
        heal(() => c.resume(f.nodes[0]!));
        break;
      case 'partition': {
        const side = f.nodes.map((i) => c.nodes[i]!.host);
        const others = c.nodes.filter((n) => !f.nodes.includes(n.index)).map((n) => n.host);
        inject(() => partitions!.split(side, others));
        heal(() => partitions!.heal());
        break;
      }
      case 'redis-pause':
        inject(() => redis!.pause());
        heal(() => redis!.heal());
        break;
      case 'redis-restart':
        inject(() => redis!.shutdownSaving());
        heal(() => redis!.heal());
        break;
      case 'redis-empty':
        inject(() => redis!.killEmptying());
        heal(() => redis!.heal());
        break;
    }
  }
  // Heals first at equal times, so a node is back before the next fault takes it.
  return out.sort((a, b) => a.at - b.at || Number(b.what.startsWith('heal')) - Number(a.what.startsWith('heal')));
}

/** SHOW of each lost job on every node: which nodes still hold it, and in what state. */
async function locate(c: ChaosCluster, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) {
    const where: string[] = [];
    for (const n of c.nodes) {
      try {
        const r = await adminCall(n.host, n.port, ['SHOW', id], 2000);
        if (Array.isArray(r)) {
          const state = r[r.indexOf('state') + 1];
          where.push(`node ${n.index}: ${String(state)}`);
        }
      } catch (e) {
        where.push(`node ${n.index}: ${(e as Error).message}`);
      }
    }
    out.push(`${id}: ${where.length > 0 ? where.join(', ') : 'on no node'}`);
  }
  return out;
}
