// npm run cluster: a local 3-node cluster (ports 7711, 7712, 7713) from
// cluster.conf.example, which makes the nodes meet each other on their own.
// Data goes to cluster-data/<port>/; Ctrl-C stops every node.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const server = path.join(root, 'dist/src/bin/disque-server.js');
const config = path.join(root, 'cluster.conf.example');
const ports = (process.env.DISQUE_CLUSTER_PORTS ?? '7711,7712,7713').split(',').map(Number);

const children: ChildProcess[] = [];
for (const port of ports) {
  const dir = path.join(root, 'cluster-data', String(port));
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [server, config, '--port', String(port), '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (chunk: Buffer) =>
    chunk
      .toString()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => `[${port}] ${l}\n`)
      .join('');
  child.stdout!.on('data', (d: Buffer) => process.stdout.write(prefix(d)));
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(prefix(d)));
  child.on('exit', (code, signal) => {
    process.stdout.write(`[${port}] exited (${signal ?? code})\n`);
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(0);
  });
  children.push(child);
}
process.stdout.write(`Started nodes on ports ${ports.join(', ')}; try: redis-cli -p ${ports[0]} hello\n`);

const stop = () => {
  for (const c of children) c.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
