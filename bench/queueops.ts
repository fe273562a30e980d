// Unmeasured bulk queue operations: fill a queue fast (preload for the consume
// workload, the memory workload) and drain it (the final lost/duplicate check,
// which also leaves the server empty for the next run).
import { performance } from 'node:perf_hooks';
import { Client, openClients, type Address, type ServerKind } from './conn.js';
import { AddTemplate } from './drivers.js';
import { RespError, type Reply } from './resp.js';
import type { Tracker } from './tracker.js';

export interface FillOptions {
  kind: ServerKind;
  queue: string;
  /** Jobs to add (a cap when forMs is given). */
  total: number;
  /** Stop adding after this many ms even if `total` is not reached. */
  forMs?: number;
  bodySize: number;
  /** Producer ids pidBase.. pidBase+conns-1 (must not clash with the load's producers). */
  pidBase: number;
  conns?: number;
  pipeline?: number;
  addTimeoutMs?: number;
  replicate?: number;
  tracker?: Tracker;
  onProgress?: (done: number) => void;
}

export interface FillResult {
  added: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
}

/** Adds `total` jobs with unique bodies, pipelined over a few connections. */
export async function fill(addr: Address, o: FillOptions): Promise<FillResult> {
  const conns = Math.max(1, Math.min(o.conns ?? 4, o.total));
  const pipeline = o.pipeline ?? 256;
  const t0 = performance.now();
  let added = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const clients = await openClients(addr, conns);
  try {
    await Promise.all(
      clients.map(async (c, i) => {
        const pid = o.pidBase + i;
        const share = Math.floor(o.total / conns) + (i < o.total % conns ? 1 : 0);
        const t = new AddTemplate({
          kind: o.kind,
          queue: o.queue,
          pid,
          bodySize: o.bodySize,
          addTimeoutMs: o.addTimeoutMs ?? 0,
          replicate: o.replicate ?? 0,
        });
        const failed: number[] = [];
        const deadline = o.forMs === undefined ? Infinity : t0 + o.forMs;
        let seq = 0;
        while (seq < share && performance.now() < deadline) {
          const n = Math.min(pipeline, share - seq);
          const replies = await c.raw(t.batch(seq, n), n);
          for (let k = 0; k < n; k++) {
            const r = replies[k];
            if (r instanceof RespError) {
              errors++;
              failed.push(seq + k);
              if (errorSamples.length < 5 && !errorSamples.includes(r.message)) errorSamples.push(r.message);
            } else added++;
          }
          seq += n;
          o.onProgress?.(added + errors);
        }
        o.tracker?.addProduced({ pid, n: seq, failed });
      }),
    );
  } finally {
    for (const c of clients) c.close();
  }
  return { added, errors, errorSamples, elapsedMs: performance.now() - t0 };
}

export interface DrainResult {
  drained: number;
  errors: number;
  elapsedMs: number;
}

/**
 * Empties `queue` on each address, marking every body in the tracker.
 * Disque: GETJOB NOHANG COUNT n, then one ACKJOB with all the ids (the ack
 * also frees replicas on a cluster). Redis: RPOP key n.
 */
export async function drain(
  addrs: Address[],
  kind: ServerKind,
  queue: string,
  tracker: Tracker | null,
  onProgress?: (drained: number) => void,
): Promise<DrainResult> {
  const t0 = performance.now();
  let drained = 0;
  let errors = 0;
  const COUNT = 500;
  const CONNS = 4;
  for (const addr of addrs) {
    const clients = await openClients(addr, CONNS);
    try {
      await Promise.all(
        clients.map(async (c) => {
          for (;;) {
            const r: Reply =
              kind === 'redis' ? await c.call('RPOP', queue, COUNT) : await c.call('GETJOB', 'NOHANG', 'COUNT', COUNT, 'FROM', queue);
            if (r instanceof RespError) {
              errors++;
              return;
            }
            if (!Array.isArray(r) || r.length === 0) return;
            if (kind === 'redis') {
              for (const body of r) tracker?.markSeen(body as string);
              drained += r.length;
            } else {
              const ids: string[] = [];
              for (const job of r as Reply[][]) {
                tracker?.markSeen(job[2] as string);
                ids.push(job[1] as string);
              }
              const a = await c.call('ACKJOB', ...ids);
              if (a instanceof RespError) errors++;
              drained += ids.length;
            }
            onProgress?.(drained);
          }
        }),
      );
    } finally {
      for (const c of clients) c.close();
    }
  }
  return { drained, errors, elapsedMs: performance.now() - t0 };
}

/**
 * Deletes every job of `queue`, queued or delivered and not acknowledged
 * (what redis-benchmark's GETJOB NOHANG leaves), and returns how many:
 * JSCAN QUEUE + ACKJOB (on a cluster the ack frees the replicas too). Redis:
 * UNLINK of the key.
 */
export async function purgeQueue(addr: Address, kind: ServerKind, queue: string): Promise<number> {
  const c = await Client.open(addr);
  try {
    if (kind === 'redis') return Number(await c.ok('UNLINK', queue));
    let n = 0;
    // Jobs not acknowledged yet: on a cluster an acked job stays until its
    // replicas confirm. Whole passes until one finds none: disque-ts's JSCAN
    // was seen to miss a few jobs (4 of 50,000) while the scan itself
    // deleted jobs, which the reference's does not.
    const states = ['STATE', 'wait-repl', 'STATE', 'active', 'STATE', 'queued'];
    for (let pass = 0; pass < 10; pass++) {
      let found = 0;
      let cursor = '0';
      do {
        const [next, ids] = (await c.ok('JSCAN', cursor, 'QUEUE', queue, ...states, 'COUNT', 1000, 'REPLY', 'ID')) as [string, string[]];
        cursor = next;
        found += ids.length;
        if (ids.length > 0) n += Number(await c.ok('ACKJOB', ...ids));
      } while (cursor !== '0');
      if (found === 0) return n;
    }
    throw new Error(`jobs of ${queue} still found after 10 JSCAN passes`);
  } finally {
    c.close();
  }
}
