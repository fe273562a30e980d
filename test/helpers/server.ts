// Starts real disque-server processes for process-level tests.
//
// By default the project's own build (dist/src/bin/disque-server.js, made by
// `npm run build`, which `npm test` runs first) is started. Set
// DISQUE_SERVER_BIN to the path of another server binary (for instance the
// reference Disque) to run the same tests against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const serverEntry = path.join(root, 'dist/src/bin/disque-server.js');

export interface ServerOptions {
  /** Extra directives written to the config file, e.g. { 'cluster-node-timeout': '2000' }. */
  config?: Record<string, string | string[]>;
  /** Data directory; a fresh temporary one by default. */
  dir?: string;
  /** Client port; a free port (whose bus port +10000 is free too) by default. */
  port?: number;
  /** A loopback address other than 127.0.0.1 to bind (written as `bind`). */
  host?: string;
}

export interface ServerHandle {
  host: string;
  port: number;
  dir: string;
  configFile: string;
  proc: ChildProcess | null;
  /** SIGTERM and wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. */
  kill9(): Promise<void>;
  /** Start again with the same config file and dir. */
  restart(): Promise<void>;
  /** The server's log file contents so far. */
  log(): string;
  /** Stop (if running) and remove the data directory. */
  destroy(): Promise<void>;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

let nextPort = 20000 + ((process.pid * 37) % 20000);

/** A port P such that P and P+10000 (the cluster bus port) are both free. */
export async function getFreePort(): Promise<number> {
  for (let i = 0; i < 2000; i++) {
    nextPort++;
    if (nextPort > 45000) nextPort = 20000;
    const p = nextPort;
    if ((await portIsFree(p)) && (await portIsFree(p + 10000))) return p;
  }
  throw new Error('no free port pair found');
}

let nextHttpPort = 10000 + ((process.pid * 53) % 9000);

/**
 * A free port for http-port: 10000-19999, below the client ports (20000-45000)
 * and their bus ports (+10000), and below the ephemeral range (32768 up) the
 * kernel hands to outgoing connections.
 */
export async function getFreeHttpPort(): Promise<number> {
  for (let i = 0; i < 2000; i++) {
    nextHttpPort++;
    if (nextHttpPort > 19999) nextHttpPort = 10000;
    const p = nextHttpPort;
    if (await portIsFree(p)) return p;
  }
  throw new Error('no free HTTP port found');
}

function serverCommand(configFile: string): [string, string[]] {
  const bin = process.env.DISQUE_SERVER_BIN;
  if (bin) return [bin, [configFile]];
  if (!existsSync(serverEntry)) {
    throw new Error(`${serverEntry} is missing: run npm run build first`);
  }
  return [process.execPath, [serverEntry, configFile]];
}

async function waitForPort(host: string, port: number, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`server exited early (code ${proc.exitCode}, signal ${proc.signalCode})`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server on port ${port} did not start in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function waitExit(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

export async function startServer(opts: ServerOptions = {}): Promise<ServerHandle> {
  const port = opts.port ?? (await getFreePort());
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'disque-test-'));
  const configFile = path.join(dir, 'disque.conf');
  if (!existsSync(configFile)) {
    const lines = [`port ${port}`, `dir ${dir}`, 'logfile log.txt', 'loglevel verbose'];
    if (opts.host !== undefined) lines.push(`bind ${opts.host}`);
    // No HTTP unless a test asks (getFreeHttpPort): the default, port + 1000,
    // could take a port another test has just picked as free.
    if (!process.env.DISQUE_SERVER_BIN && opts.config?.['http-port'] === undefined) lines.push('http-port 0');
    for (const [k, v] of Object.entries(opts.config ?? {})) {
      for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k} ${one}`);
    }
    writeFileSync(configFile, lines.join('\n') + '\n');
  }

  const host = opts.host ?? '127.0.0.1';
  const httpSetting = opts.config?.['http-port'];
  const httpPort = Number(Array.isArray(httpSetting) ? httpSetting[httpSetting.length - 1] : (httpSetting ?? 0));
  const handle: ServerHandle = {
    host,
    port,
    dir,
    configFile,
    proc: null,
    async stop() {
      const p = handle.proc;
      if (!p) return;
      p.kill('SIGTERM');
      await waitExit(p);
      handle.proc = null;
    },
    async kill9() {
      const p = handle.proc;
      if (!p) return;
      p.kill('SIGKILL');
      await waitExit(p);
      handle.proc = null;
    },
    async restart() {
      if (handle.proc) await handle.stop();
      await launch();
    },
    log() {
      const f = path.join(dir, 'log.txt');
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    },
    async destroy() {
      await handle.kill9();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  async function launch(): Promise<void> {
    const [cmd, args] = serverCommand(configFile);
    const proc = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => { stderr += d; });
    handle.proc = proc;
    try {
      await waitForPort(host, port, proc, 15000);
      // Without jobs to load, HTTP opens just after the clients' port (node.ts):
      // a test that asked for it may use it as soon as this returns.
      if (httpPort > 0) await waitForPort(host, httpPort, proc, 15000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nstderr: ${stderr}\nlog: ${handle.log().slice(-2000)}`);
    }
  }

  await launch();
  return handle;
}

/** Polls `cond` until it is true or the deadline passes; then throws `what`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await cond();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
