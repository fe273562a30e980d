// What the task tests share: short fetches, unique names, a gate a handler
// waits on, workers closed after each test, one node with a producer and a
// consumer client, and a cluster whose worker processes a test may kill -9.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Disque, type Worker } from '../../src/client/index.js';
import { startServer, waitFor, type ServerHandle, type ServerOptions } from './server.js';
import { startCluster, type TestCluster } from './cluster.js';

export const FETCH = { fetchTimeout: 200 } as const;

let n = 0;
/** A queue or task name no other test (or test process) uses. */
export const unique = (what: string): string => `${what}-${process.pid}-${++n}`;

/** A promise a handler awaits until the test opens it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Registers closing, after each test, of the workers passed to the returned function (their errors are expected). */
export function trackWorkers(): <T>(w: Worker<T>) => Worker<T> {
  const workers: Worker<any>[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close(1000)));
  });
  return (w) => {
    workers.push(w);
    w.on('error', () => {});
    return w;
  };
}

/** One node for the file, with a producer and a consumer client (fields set in beforeAll). */
export function oneNodeClients(opts: ServerOptions = {}): { server: ServerHandle; producer: Disque; consumer: Disque } {
  const s = {} as { server: ServerHandle; producer: Disque; consumer: Disque };
  beforeAll(async () => {
    s.server = await startServer(opts);
    s.producer = new Disque({ nodes: s.server.port });
    s.consumer = new Disque({ nodes: s.server.port });
  }, 30_000);
  afterAll(async () => {
    s.producer?.disconnect();
    s.consumer?.disconnect();
    await s.server?.destroy();
  });
  return s;
}

/** A node process running a fixture of test/fixtures, and what it printed so far. */
export interface FixtureProcess {
  proc: ChildProcess;
  output(): string;
  /** Waits until `pattern` occurs `times` times in the output. */
  waitFor(pattern: RegExp, times: number, what: string, timeoutMs: number): Promise<void>;
  kill9(): Promise<void>;
}

/** A cluster for a describe block; `at(i)` clients and fixture processes are ended with it. */
export function clusterWithProcesses(size: number): {
  cluster(): TestCluster;
  at(i: number): Disque;
  spawnFixture(file: string, args: string[]): FixtureProcess;
} {
  let c: TestCluster;
  const clients: Disque[] = [];
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    c = await startCluster(size);
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const d of clients) d.disconnect();
    await c?.destroy();
  });
  return {
    cluster: () => c,
    at(i) {
      const d = new Disque({ nodes: c.nodes[i]!.server.port, preferBestNode: false, failoverTimeout: 10_000 });
      clients.push(d);
      return d;
    },
    spawnFixture(file, args) {
      const proc = spawn(process.execPath, [path.join(import.meta.dirname, '../fixtures', file), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(proc);
      let out = '';
      proc.stdout!.on('data', (d) => (out += d));
      return {
        proc,
        output: () => out,
        waitFor: (pattern, times, what, timeoutMs) =>
          waitFor(() => (out.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`)) ?? []).length >= times, what, timeoutMs),
        async kill9() {
          proc.kill('SIGKILL');
          if (proc.exitCode === null && proc.signalCode === null) await new Promise((resolve) => proc.once('exit', resolve));
        },
      };
    },
  };
}
