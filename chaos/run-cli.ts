// npm run chaos -- [options]: fault runs against our server, and with
// --reference-bin against the reference on the same seeds, side by side.
// Exits 1 when any run of ours lost a job or delivered a phantom.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { findOnPath } from '../bench/servers.js';
import { runOnce, type RunOptions, type RunResult } from './run.js';
import { isMode, MODES, type Mode } from './schedule.js';
import { resultLine, summaryTable } from './report.js';

const USAGE = `npm run chaos -- [options]
  --mode M           none (no faults), kill, pause, partition, redis, mixed, or all (default mixed)
  --seed N           first seed (default: from the clock, printed)
  --runs K           runs per mode, seeds N, N+1, ... (default 1)
  --duration S       seconds of faults per run (default 60)
  --nodes N          cluster size (default 5)
  --replicate R      ADDJOB REPLICATE; at most R-1 nodes are faulty at once (default 3)
  --retry S          ADDJOB RETRY seconds (default 5)
  --node-timeout MS  cluster-node-timeout (default 3000)
  --producers N      (default 5)   --consumers N (default 5)
  --no-persist       appendonly no on every node (ours and the reference); not with Redis faults
  --reference-bin P  also run the reference's disque-server on the same seeds
  --markdown         the summary as a Markdown table (for README)
  --json FILE        every run's result as JSON
  --quiet            no progress lines, only results
  --trace-dups N     print the history of N duplicated jobs per run, with the faults
  --trace-slow N     print the replication trace of the N slowest ADDJOBs per run of ours
                     (nodes picked, added, each GOTJOB, the reply), with the faults
  --from-json F,...  no runs: the summary of results saved with --json
  --ours-only        with --from-json: leave the reference's runs out
Needs root and iptables for partitions, and redis-server on PATH.`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string', default: 'mixed' },
      seed: { type: 'string' },
      runs: { type: 'string', default: '1' },
      duration: { type: 'string', default: '60' },
      nodes: { type: 'string', default: '5' },
      replicate: { type: 'string', default: '3' },
      retry: { type: 'string', default: '5' },
      'node-timeout': { type: 'string', default: '3000' },
      producers: { type: 'string', default: '5' },
      consumers: { type: 'string', default: '5' },
      'reference-bin': { type: 'string' },
      markdown: { type: 'boolean', default: false },
      json: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'from-json': { type: 'string' },
      'ours-only': { type: 'boolean', default: false },
      'trace-dups': { type: 'string', default: '0' },
      'trace-slow': { type: 'string', default: '0' },
      'no-persist': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values['from-json'] !== undefined) {
    const saved = values['from-json']
      .split(',')
      .flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as RunResult[])
      .filter((r) => !values['ours-only'] || r.flavor === 'ours');
    console.log(summaryTable(saved, values.markdown));
    return 0;
  }
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
    return n;
  };
  const modes: Mode[] = values.mode === 'all' ? (Object.keys(MODES) as Mode[]).filter((m) => m !== 'none') : [];
  if (modes.length === 0) {
    if (!isMode(values.mode)) throw new Error(`--mode must be one of ${Object.keys(MODES).join(', ')} or all`);
    modes.push(values.mode);
  }
  const redisBin = findOnPath('redis-server');
  if (redisBin === null) throw new Error('redis-server is not on PATH (Debian: apt-get install redis-server)');
  const firstSeed = values.seed !== undefined ? int('seed', values.seed, 0) : Date.now() % 100_000;
  const runs = int('runs', values.runs, 1);
  const base: Omit<RunOptions, 'flavor' | 'mode' | 'seed'> = {
    redisBin,
    ...(values['reference-bin'] !== undefined ? { referenceBin: values['reference-bin'] } : {}),
    durationMs: int('duration', values.duration, 5) * 1000,
    nodes: int('nodes', values.nodes, 2),
    replicate: int('replicate', values.replicate, 1),
    retrySec: int('retry', values.retry, 1),
    nodeTimeoutMs: int('node-timeout', values['node-timeout'], 500),
    producers: int('producers', values.producers, 1),
    consumers: int('consumers', values.consumers, 1),
    drainTimeoutMs: 120_000,
    traceDups: int('trace-dups', values['trace-dups'], 0),
    traceSlow: int('trace-slow', values['trace-slow'], 0),
    noPersist: values['no-persist'],
    log: values.quiet ? () => {} : (l) => console.log(l),
  };
  if (base.replicate > base.nodes) throw new Error('--replicate cannot exceed --nodes');
  if (base.noPersist && modes.some((m) => m === 'redis' || m === 'mixed')) throw new Error('--no-persist: the redis and mixed modes fault Redis, which then takes nothing');
  base.drainTimeoutMs = Math.max(60_000, base.retrySec * 12_000);
  console.log(`chaos: modes ${modes.join(',')}, seeds ${firstSeed}..${firstSeed + runs - 1}, ${base.durationMs / 1000}s each, ${base.nodes} nodes, REPLICATE ${base.replicate}, RETRY ${base.retrySec}`);

  const results: RunResult[] = [];
  const flavors = base.referenceBin !== undefined ? (['ours', 'reference'] as const) : (['ours'] as const);
  for (const mode of modes) {
    for (let seed = firstSeed; seed < firstSeed + runs; seed++) {
      for (const flavor of flavors) {
        // The reference has no Redis: every fault of this mode is one it cannot have.
        if (flavor === 'reference' && mode === 'redis') continue;
        const r = await runOnce({ ...base, flavor, mode, seed });
        results.push(r);
        console.log(resultLine(r));
        for (const l of r.lostWhere) console.log(`  lost ${l}`);
        if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(results, null, 1));
      }
    }
  }
  console.log('');
  console.log(summaryTable(results, values.markdown));
  const bad = results.filter((r) => r.flavor === 'ours' && (r.verdict.lost > 0 || r.verdict.phantom > 0));
  return bad.length > 0 ? 1 : 0;
}

// Exit through process.exit on Ctrl-C, so the 'exit' handlers stop the
// servers and remove the iptables chain.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\nchaos: got ${sig}, stopping what the run started\n`);
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`chaos: ${e.message}`);
    process.exit(2);
  },
);
