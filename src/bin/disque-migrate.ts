#!/usr/bin/env node
// disque-migrate: moves the jobs of a running Disque cluster into a
// disque-ts cluster with their IDs (README, "Moving from Disque").
import { Migrator, type MigrateOptions } from '../migrate/migrator.js';
import { Progress } from '../migrate/progress.js';
import { parseEndpoint, endpointName } from '../migrate/endpoints.js';

const USAGE = `Usage: disque-migrate --from HOST:PORT --to HOST:PORT [--queues a,b] [--follow] [--dry-run]

Moves every job of the source cluster (the reference Disque or disque-ts)
into the target disque-ts cluster, keeping each job's ID, queue, body,
remaining TTL and delay, retry, replication level and counters. Each job is
copied first (IMPORTJOB, answered once the target has its copies) and only
then deleted from the source nodes (DELJOB). Jobs already on the target are
skipped, so a migration that stopped can be run again.

  --from HOST:PORT   any node of the source cluster (all its nodes are visited)
  --to HOST:PORT     any node of the target cluster
  --queues a,b       only these queues
  --follow           keep moving new jobs until Ctrl-C; jobs delivered to
                     consumers of the source wait there for their ACK until
                     then. Ctrl-C: finish the batch, move what is left, stop.
                     A second Ctrl-C stops after the current batch.
  --dry-run          count what would be moved; change nothing
  --batch N          jobs looked at per JSCAN (default 500)
  --parallel N       connections per target node (default 8)
  --timeout MS       how long the target may take to replicate a job (default 10000)

Addresses may be redis://:password@host:port (rediss:// for TLS); or set
DISQUE_FROM_PASSWORD and DISQUE_TO_PASSWORD.
Exit status: 0 when every job found was moved, 1 otherwise, 2 on bad usage.
`;

function usageError(message: string): never {
  process.stderr.write(`disque-migrate: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function positive(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || n <= 0) usageError(`${name} needs a positive integer`);
  return n;
}

function parseArgs(argv: string[]): MigrateOptions {
  let from: string | undefined;
  let to: string | undefined;
  const opts: Partial<MigrateOptions> = { queues: null, follow: false, dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') usageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--from': from = value(); break;
      case '--to': to = value(); break;
      case '--queues': {
        const qs = value().split(',').filter((q) => q !== '');
        if (qs.length === 0) usageError('--queues needs queue names');
        opts.queues = qs;
        break;
      }
      case '--follow': opts.follow = true; break;
      case '--dry-run': opts.dryRun = true; break;
      case '--batch': opts.batch = positive('--batch', value()); break;
      case '--parallel': opts.parallel = positive('--parallel', value()); break;
      case '--timeout': opts.timeout = positive('--timeout', value()); break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
      default:
        usageError(`unknown option '${a}'`);
    }
  }
  if (from === undefined) usageError('--from is required');
  if (to === undefined) usageError('--to is required');
  if (opts.follow && opts.dryRun) usageError('--dry-run counts once: it cannot --follow');
  try {
    opts.from = parseEndpoint(from, process.env.DISQUE_FROM_PASSWORD);
    opts.to = parseEndpoint(to, process.env.DISQUE_TO_PASSWORD);
  } catch (e) {
    usageError((e as Error).message);
  }
  return opts as MigrateOptions;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const m = new Migrator({ ...opts, log: (line) => process.stderr.write(`disque-migrate: ${line}\n`) });
  try {
    await m.connect();
  } catch (e) {
    process.stderr.write(`disque-migrate: ${(e as Error).message}\n`);
    m.close();
    return 1;
  }
  process.stderr.write(
    `disque-migrate: ${endpointName(opts.from)} (${m.sourceNodes.length} nodes) -> ${endpointName(opts.to)} ` +
      `(${m.targetNodes.length} nodes)${opts.dryRun ? ', dry run' : ''}${opts.follow ? ', following new jobs until Ctrl-C' : ''}\n`,
  );
  const progress = new Progress(m, process.stderr, opts.dryRun);
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    m.stop();
    progress.note(
      opts.follow && signals === 1
        ? 'stopping: finishing the current batch, then moving what is left (Ctrl-C again to stop after the batch)'
        : 'stopping after the current batch',
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  progress.start();
  try {
    await m.run();
  } finally {
    progress.stop();
    m.close();
  }
  process.stdout.write(progress.summary());
  const c = m.counts;
  return m.left === 0 && c.copiesLeft === 0 && !m.interrupted ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`disque-migrate: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
