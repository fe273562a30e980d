// Memory workload: resident bytes per queued job.
//
// RSS is read before and after adding N jobs (pipelined, unique 64-byte
// bodies by default) to one queue; (after - before) / N is what a queued job
// costs, all overheads included (allocator, hash tables, V8 heap slack for
// our server). RSS comes from /proc/<pid>/status VmRSS when the server is on
// this machine, else from INFO used_memory_rss.
//
//   node dist/bench/memory.js --addr 127.0.0.1:7711 --jobs 1000000
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Client, detectKind, fmtAddr, parseAddress, type Address, type ServerKind } from './conn.js';
import { procRssBytes, isLocalHost, procCpuMs } from './procstat.js';
import { drain, fill } from './queueops.js';
import { sleep } from './load.js';

export interface MemoryResult {
  kind: ServerKind;
  addr: string;
  jobs: number;
  bodySize: number;
  rssSource: 'proc' | 'info';
  rssBeforeBytes: number;
  rssAfterBytes: number;
  bytesPerJob: number;
  /** INFO used_memory delta per job (allocator's view), when reported. */
  usedMemoryPerJob?: number;
  /** Pipelined add rate while filling, jobs/s. */
  addPerSec: number;
  errors: number;
}

export interface MemoryOptions {
  kind: ServerKind;
  addr: Address;
  pid?: number;
  jobs: number;
  bodySize: number;
  /** Remove the jobs afterwards (not needed when the server is thrown away). */
  cleanup: boolean;
  onProgress?: (done: number) => void;
}

async function readRss(addr: Address, pid: number | undefined): Promise<{ rss: number; used?: number; source: 'proc' | 'info' }> {
  const c = await Client.open(addr);
  try {
    const info = await c.info('memory');
    const used = Number(info.get('used_memory'));
    const fromProc = pid !== undefined ? procRssBytes(pid) : null;
    if (fromProc !== null) return { rss: fromProc, ...(used > 0 ? { used } : {}), source: 'proc' };
    const rss = Number(info.get('used_memory_rss'));
    if (!(rss > 0)) throw new Error(`${fmtAddr(addr)}: no pid and INFO has no used_memory_rss`);
    return { rss, ...(used > 0 ? { used } : {}), source: 'info' };
  } finally {
    c.close();
  }
}

async function localPid(addr: Address): Promise<number | undefined> {
  if (!isLocalHost(addr.host)) return undefined;
  const c = await Client.open(addr);
  try {
    const pid = Number((await c.info('server')).get('process_id'));
    return pid > 0 && procCpuMs(pid) !== null ? pid : undefined;
  } finally {
    c.close();
  }
}

export async function measureMemory(o: MemoryOptions): Promise<MemoryResult> {
  const pid = o.pid ?? (await localPid(o.addr));
  const queue = `bench-memory-${randomBytes(4).toString('hex')}`;
  // Let the server settle (connections from earlier steps closed, timers run).
  await sleep(500);
  const before = await readRss(o.addr, pid);
  const r = await fill(o.addr, {
    kind: o.kind,
    queue,
    total: o.jobs,
    bodySize: o.bodySize,
    pidBase: 0,
    conns: 4,
    pipeline: 256,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  // RSS lags the allocations a little (lazy page faults, V8 finishing a GC).
  await sleep(1000);
  const after = await readRss(o.addr, pid);
  if (o.cleanup) {
    if (o.kind === 'redis') {
      const c = await Client.open(o.addr);
      await c.call('DEL', queue);
      c.close();
    } else {
      await drain([o.addr], o.kind, queue, null);
    }
  }
  return {
    kind: o.kind,
    addr: fmtAddr(o.addr),
    jobs: r.added,
    bodySize: o.bodySize,
    rssSource: before.source,
    rssBeforeBytes: before.rss,
    rssAfterBytes: after.rss,
    bytesPerJob: r.added > 0 ? Math.round((after.rss - before.rss) / r.added) : 0,
    // Only when INFO's used_memory tracks job memory (it grew by at least a byte per job).
    ...(before.used !== undefined && after.used !== undefined && after.used - before.used > r.added
      ? { usedMemoryPerJob: Math.round((after.used - before.used) / r.added) }
      : {}),
    addPerSec: Math.round(r.added / (r.elapsedMs / 1000)),
    errors: r.errors,
  };
}

export function describeMemory(m: MemoryResult): string {
  const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;
  return (
    `memory on ${m.kind} ${m.addr}: ${m.jobs.toLocaleString('en-US')} jobs of ${m.bodySize} bytes\n` +
    `  RSS (${m.rssSource}) ${mb(m.rssBeforeBytes)} -> ${mb(m.rssAfterBytes)}: ${m.bytesPerJob} bytes per job` +
    (m.usedMemoryPerJob !== undefined ? ` (used_memory: ${m.usedMemoryPerJob} bytes per job)` : '') +
    `\n  added at ${m.addPerSec.toLocaleString('en-US')} jobs/s, errors ${m.errors}`
  );
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      addr: { type: 'string', default: '127.0.0.1:7711' },
      kind: { type: 'string', default: 'auto' },
      pid: { type: 'string' },
      jobs: { type: 'string', default: '1000000' },
      body: { type: 'string', default: '64' },
      'no-cleanup': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const addr = parseAddress(a.addr);
  const kind = a.kind === 'auto' ? await detectKind(addr) : (a.kind as ServerKind);
  const m = await measureMemory({
    kind,
    addr,
    ...(a.pid ? { pid: Number(a.pid) } : {}),
    jobs: Number(a.jobs),
    bodySize: Number(a.body),
    cleanup: !a['no-cleanup'],
  });
  process.stdout.write(a.json ? JSON.stringify(m, null, 2) + '\n' : describeMemory(m) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
