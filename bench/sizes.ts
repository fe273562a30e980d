// --only sizes: ADDJOB and GETJOB NOHANG with job bodies from 64 B to 1 MB,
// on a fresh server per body size (ours and the reference alternating):
// throughput, p99 and RSS growth per job held.
//
// redis-benchmark drives bodies up to 64 KB. Larger ones cannot sit in its
// argv (Linux caps one argument at 128 KiB), so a small driver here sends
// them: one request at a time per connection as redis-benchmark does, the
// replies skipped by length (no parsing of the body, so the generator costs
// little per byte).
import net from 'node:net';
import type { Address } from './conn.js';
import { encode } from './resp.js';
import { parseBenchCsv, plainBody, runRedisBenchmark } from './redis-benchmark.js';
import { procRssBytes } from './procstat.js';
import { freePort, startServer, type Flavor } from './servers.js';
import { FLAVOR_TITLE } from './report.js';

export const SIZE_ROWS = [64, 1024, 4096, 16384, 65536, 262144, 1048576];
/** Largest body redis-benchmark is given in its argv. */
const ARGV_BODY_MAX = 65536;
const CONNS = 20;

export interface SizeResult {
  flavor: Flavor;
  size: number;
  jobs: number;
  addRps: number;
  addP99Ms: number;
  getRps: number;
  getP99Ms: number;
  /** RSS growth while the jobs were added, per job; NaN when unknown. */
  rssPerJob: number;
  generator: 'redis-benchmark' | 'own';
}

/** Jobs per run: about 512 MB of bodies, between 1,024 and 100,000 jobs (runs of a second or more). */
export function jobsFor(size: number): number {
  return Math.max(1024, Math.min(100_000, Math.floor((512 << 20) / size)));
}

export interface SizesOptions {
  flavors: [Flavor, string][];
  sizes: number[];
  rounds: number;
  basePort: number;
  redisBenchmark: string;
  status: (line: string) => void;
  log: (line: string) => void;
}

export async function runSizes(o: SizesOptions): Promise<SizeResult[]> {
  const best = new Map<string, SizeResult>();
  const ports = new Set<number>();
  for (const size of o.sizes) {
    for (let round = 0; round < o.rounds; round++) {
      for (const [flavor, bin] of o.flavors) {
        o.status(`sizes · ${size} B · ${FLAVOR_TITLE[flavor]} · round ${round + 1}/${o.rounds}`);
        try {
          const r = await oneRun(o, flavor, bin, size, ports);
          const key = `${flavor}/${size}`;
          const b = best.get(key);
          best.set(
            key,
            b === undefined
              ? r
              : {
                  ...b,
                  addRps: Math.max(b.addRps, r.addRps),
                  addP99Ms: Math.min(b.addP99Ms, r.addP99Ms),
                  getRps: Math.max(b.getRps, r.getRps),
                  getP99Ms: Math.min(b.getP99Ms, r.getP99Ms),
                  rssPerJob: Math.min(b.rssPerJob, r.rssPerJob),
                },
          );
        } catch (e) {
          o.log(`sizes · ${size} B · ${FLAVOR_TITLE[flavor]}: FAILED: ${(e as Error).message}`);
        }
      }
    }
  }
  return [...best.values()];
}

async function oneRun(o: SizesOptions, flavor: Flavor, bin: string, size: number, ports: Set<number>): Promise<SizeResult> {
  const port = await freePort(o.basePort, ports);
  const server = await startServer(flavor, { bin, port, args: ['--maxmemory', '4gb'] });
  try {
    const jobs = jobsFor(size);
    const body = plainBody(size);
    const own = size > ARGV_BODY_MAX;
    // Warm up (our server compiles its hot paths as they run): a tenth of the jobs, in and out.
    const warm = Math.max(100, Math.floor(jobs / 10));
    if (own) await drive(server.addr, encode(['ADDJOB', 'warmup', body, '0']), warm);
    else await benchmark(o.redisBenchmark, server.addr, warm, ['ADDJOB', 'warmup', body, '0']);
    if (own) await drive(server.addr, encode(['GETJOB', 'NOHANG', 'FROM', 'warmup']), warm);
    else await benchmark(o.redisBenchmark, server.addr, warm, ['GETJOB', 'NOHANG', 'FROM', 'warmup']);
    const rss0 = server.pid ? procRssBytes(server.pid) : null;
    const add = own
      ? await drive(server.addr, encode(['ADDJOB', 'sizes', body, '0']), jobs)
      : await benchmark(o.redisBenchmark, server.addr, jobs, ['ADDJOB', 'sizes', body, '0']);
    // Let the allocator settle before reading RSS.
    await new Promise((r) => setTimeout(r, 300));
    const rss1 = server.pid ? procRssBytes(server.pid) : null;
    const get = own
      ? await drive(server.addr, encode(['GETJOB', 'NOHANG', 'FROM', 'sizes']), jobs)
      : await benchmark(o.redisBenchmark, server.addr, jobs, ['GETJOB', 'NOHANG', 'FROM', 'sizes']);
    return {
      flavor,
      size,
      jobs,
      addRps: add.rps,
      addP99Ms: add.p99Ms,
      getRps: get.rps,
      getP99Ms: get.p99Ms,
      rssPerJob: rss0 !== null && rss1 !== null ? (rss1 - rss0) / jobs : NaN,
      generator: own ? 'own' : 'redis-benchmark',
    };
  } finally {
    await server.stop();
  }
}

interface Rate {
  rps: number;
  p99Ms: number;
}

async function benchmark(bin: string, addr: Address, n: number, cmd: string[]): Promise<Rate> {
  const run = await runRedisBenchmark(
    [bin, '-h', addr.host, '-p', String(addr.port), '-c', String(CONNS), '-n', String(n), '--csv', ...cmd],
    300_000,
    () => {},
  );
  const csv = parseBenchCsv(run.stdout);
  if (!csv || run.code !== 0) throw new Error(`redis-benchmark: ${run.stderr.trim().split('\n').pop() ?? `exit ${run.code}`}`);
  return { rps: csv.rps, p99Ms: csv.p99Ms };
}

/** Sends `request` n times over CONNS connections, one outstanding per connection. */
async function drive(addr: Address, request: Buffer, n: number): Promise<Rate> {
  const latencies: number[] = [];
  let sent = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: CONNS },
      () =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(addr.port, addr.host);
          s.setNoDelay(true);
          const skip = new ReplySkipper();
          let start = 0;
          const next = (): void => {
            if (sent >= n) {
              s.end();
              return resolve();
            }
            sent++;
            start = performance.now();
            s.write(request);
          };
          skip.onReply = (error) => {
            latencies.push(performance.now() - start);
            if (error) errors++;
            next();
          };
          s.on('data', (d: Buffer) => skip.feed(d));
          s.once('error', reject);
          s.once('connect', next);
        }),
    ),
  );
  const sec = (performance.now() - t0) / 1000;
  if (errors > 0) throw new Error(`${errors} error replies`);
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / sec, p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]! };
}

/** Finds where each RESP reply ends, skipping bulk bytes by length; resumable across chunks. */
export class ReplySkipper {
  onReply: (error: boolean) => void = () => {};
  /** Elements still due per open array, innermost last. */
  private readonly open: number[] = [];
  private bulkLeft = 0;
  private line: Buffer[] = [];
  private error = false;

  feed(d: Buffer): void {
    let i = 0;
    while (i < d.length) {
      if (this.bulkLeft > 0) {
        const take = Math.min(this.bulkLeft, d.length - i);
        i += take;
        this.bulkLeft -= take;
        if (this.bulkLeft === 0) this.elementDone();
        continue;
      }
      const nl = d.indexOf(0x0a, i);
      if (nl < 0) {
        this.line.push(d.subarray(i));
        return;
      }
      let line = d.subarray(i, nl);
      if (this.line.length > 0) {
        line = Buffer.concat([...this.line, line]);
        this.line = [];
      }
      i = nl + 1;
      const type = line[0];
      const count = Number(line.toString('latin1', 1, line.length - 1));
      if (type === 0x2d && this.open.length === 0) this.error = true;
      if (type === 0x24 && count >= 0) this.bulkLeft = count + 2;
      else if (type === 0x2a && count > 0) this.open.push(count);
      else this.elementDone();
    }
  }

  private elementDone(): void {
    while (this.open.length > 0) {
      const left = this.open[this.open.length - 1]! - 1;
      if (left > 0) {
        this.open[this.open.length - 1] = left;
        return;
      }
      this.open.pop();
    }
    const error = this.error;
    this.error = false;
    this.onReply(error);
  }
}

const fmtSize = (n: number): string => (n >= 1 << 20 ? `${n / (1 << 20)} MB` : n >= 1024 ? `${n / 1024} KB` : `${n} B`);
const fmtN = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ratio = (a: number | undefined, b: number | undefined): string =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '-';

/** The table: one row per body size, ours and the reference side by side. */
export function sizesMarkdown(results: SizeResult[]): string {
  const rows = [
    '| body | ADDJOB/s ours | ref | ratio | p99 ms ours | ref | GETJOB/s ours | ref | ratio | p99 ms ours | ref | RSS/job ours | ref | ours/body |',
    '| :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |',
  ];
  const sizes = [...new Set(results.map((r) => r.size))].sort((a, b) => a - b);
  for (const size of sizes) {
    const o = results.find((r) => r.size === size && r.flavor === 'ours');
    const f = results.find((r) => r.size === size && r.flavor === 'reference');
    const gen = (o ?? f)?.generator === 'own' ? ' ¹' : '';
    rows.push(
      `| ${fmtSize(size)}${gen} | ${fmtN(o?.addRps ?? NaN)} | ${fmtN(f?.addRps ?? NaN)} | ${ratio(o?.addRps, f?.addRps)} | ` +
        `${o?.addP99Ms.toFixed(2) ?? '-'} | ${f?.addP99Ms.toFixed(2) ?? '-'} | ` +
        `${fmtN(o?.getRps ?? NaN)} | ${fmtN(f?.getRps ?? NaN)} | ${ratio(o?.getRps, f?.getRps)} | ` +
        `${o?.getP99Ms.toFixed(2) ?? '-'} | ${f?.getP99Ms.toFixed(2) ?? '-'} | ` +
        `${fmtN(o?.rssPerJob ?? NaN)} | ${fmtN(f?.rssPerJob ?? NaN)} | ${ratio(o?.rssPerJob, size)} |`,
    );
  }
  rows.push('', '¹ driven by bench/sizes.ts (bodies over 64 KB do not fit in redis-benchmark\'s argv); the other rows by redis-benchmark.');
  return rows.join('\n');
}
