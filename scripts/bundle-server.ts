// Rewrites dist/src/bin/disque-server.js (tsc's output) as one bundled file,
// with the lazily loaded parts (HTTP, /metrics) as chunks beside it.
// Why: Node 20 loads an ES module graph file by file through asynchronous
// reads; the server's ~130 files cost a restarting node 30-100 ms before its
// first PONG (more on a busy machine). npm packages stay outside the bundle.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'dist/src/bin');

// Chunk names carry a hash: the last build's chunks would pile up.
rmSync(path.join(bin, 'chunks'), { recursive: true, force: true });

await build({
  entryPoints: [path.join(bin, 'disque-server.js')],
  outdir: bin,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});
