// Starts a server inside the test process (faster than a child process) on
// free ports, for tests that do not need to kill or restart it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { Config } from '../../src/config/config.js';
import { Node } from '../../src/server/node.js';
import { getFreePort, startServer } from './server.js';

export interface InProcessServer {
  /** The node, or null when DISQUE_SERVER_BIN runs another server (to compare replies). */
  node: Node | null;
  port: number;
  dir: string;
  /** A new ioredis client (closed by close()). */
  client(opts?: Record<string, unknown>): Redis;
  close(): Promise<void>;
}

export async function startInProcess(directives: Record<string, string> = {}): Promise<InProcessServer> {
  if (process.env.DISQUE_SERVER_BIN) return startExternal(directives);
  const port = await getFreePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-inproc-'));
  const overrides: string[][] = [
    ['port', String(port)],
    ['dir', dir],
    ['cluster-config-file', path.join(dir, 'nodes.conf')],
    ['logfile', path.join(dir, 'log.txt')],
    ['loglevel', 'notice'],
    ['http-port', '0'],
  ];
  for (const [k, v] of Object.entries(directives)) overrides.push([k, v]);
  const config = Config.load(null, overrides);
  const node = new Node(config, { embedded: true });
  await node.start();
  const clients: Redis[] = [];
  return {
    node,
    port,
    dir,
    client(opts = {}) {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, ...opts });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await node.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same interface over a separate server process (another implementation). */
async function startExternal(directives: Record<string, string>): Promise<InProcessServer> {
  const h = await startServer({ config: directives });
  const clients: Redis[] = [];
  return {
    node: null,
    port: h.port,
    dir: h.dir,
    client(opts = {}) {
      const c = new Redis({ port: h.port, host: '127.0.0.1', maxRetriesPerRequest: 1, protocol: 2, ...opts });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await h.destroy();
    },
  };
}
