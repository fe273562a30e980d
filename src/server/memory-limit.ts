// How much memory this process can give the job store (maxmemory). Jobs live
// off the V8 heap, so the heap limit no longer caps what a node holds; what
// does is the memory the machine (or the process's cgroup) has, and the
// arena's addressing. A maxmemory above this would let the node grow until
// the kernel kills it, losing every job: it is refused instead.
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { ARENA_MAX_SMALL_BYTES } from '../core/arena.js';

/** Memory kept for the process itself (V8 heap, buffers, sockets). */
const PROCESS_RESERVE = 512 * 1024 * 1024;
/** Share of the memory that may hold store bytes: the rest absorbs arena fragmentation. */
const STORE_SHARE = 0.9;

/** The cgroup memory limit of this process in bytes, or Infinity when there is none. */
function cgroupLimit(): number {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = readFileSync(file, 'utf8').trim();
      if (text === 'max') return Infinity;
      const n = Number(text);
      // cgroup v1 reports "no limit" as a huge number.
      if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
    } catch {
      // Not there: try the next one.
    }
  }
  return Infinity;
}

/** The largest maxmemory this node accepts, in bytes. */
export function holdableMemory(): number {
  const physical = Math.min(os.totalmem(), cgroupLimit());
  const room = Math.floor(physical * STORE_SHARE) - PROCESS_RESERVE;
  return Math.max(0, Math.min(room, ARENA_MAX_SMALL_BYTES));
}

/** Why `bytes` cannot be maxmemory here, or null when it can. */
export function maxmemoryError(bytes: number): string | null {
  const most = holdableMemory();
  if (bytes <= most) return null;
  return (
    `maxmemory ${bytes} is more than this node can hold: at most ${most} bytes (${Math.floor(most / 1024 / 1024)}mb), ` +
    `90% of the ${Math.floor(Math.min(os.totalmem(), cgroupLimit()) / 1024 / 1024)}mb available less 512mb for the process`
  );
}
