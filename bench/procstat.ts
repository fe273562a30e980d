// Reading a local server's CPU time and resident memory from /proc, and the
// CPU a run used: generator, server, everything else.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat. 100 on every Linux
// build Node runs on (the kernel ABI fixes it), whatever CONFIG_HZ is.
const CLK_TCK = 100;

/** utime + stime of a process in milliseconds, or null if it cannot be read. */
export function procCpuMs(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces: fields are counted after ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}

/** utime and stime of a process in milliseconds, or null if they cannot be read. */
export function procUserSysMs(pid: number): { user: number; sys: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
  } catch {
    return null;
  }
}

/**
 * utime + stime of a process's main thread (the one whose tid is its pid) in
 * milliseconds, or null: for a Node server, what the event loop ran; the rest
 * of the process's CPU is V8's and libuv's helper threads (compilation, GC).
 */
export function procMainThreadMs(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}

/**
 * Time the threads of a process spent runnable but waiting for a CPU, in
 * milliseconds (second field of /proc/<pid>/task/<tid>/schedstat), or null
 * where the kernel does not expose it. With the generator and the servers on
 * the same cores, a high share means the run measured contention as much as
 * the server.
 */
export function procRunWaitMs(pid: number): number | null {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[1]);
      } catch {
        // the thread exited meanwhile
      }
    }
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}

/** VmRSS of a process in bytes, or null if it cannot be read. */
export function procRssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function isLocalHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

/** Total CPU time of this process (all threads), in milliseconds. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * CPU time of this process's children that have exited and been waited for
 * (cutime + cstime of /proc/self/stat), in milliseconds: around one
 * redis-benchmark run, the difference is that run's CPU.
 */
export function childrenCpuMs(): number {
  try {
    const s = readFileSync('/proc/self/stat', 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * CPU time (ms) of every user-space process except `exclude`, by pid. Kernel
 * threads are left out: ksoftirqd and friends mostly carry our own loopback
 * traffic. Diff two snapshots with otherCpuMs() to see whether something else
 * (another benchmark, a build) competed for the CPU during a run.
 */
export function processCpuSnapshot(exclude: Set<number>): Map<number, number> {
  const m = new Map<number, number>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return m;
  }
  for (const n of names) {
    const c = n.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(n);
    if (exclude.has(pid)) continue;
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (pid === 2 || f[1] === '2') continue; // kthreadd and its children
      m.set(pid, ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK);
    } catch {
      // exited meanwhile
    }
  }
  return m;
}

export function otherCpuMs(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0);
  return sum;
}

/** CPU times at one instant, in ms (see cpuUse). */
export interface CpuSample {
  generator: number;
  server: number;
  serverWait: number;
  others: Map<number, number>;
  wall: number;
}

/**
 * Reads the generator's CPU (`generatorMs`: selfCpuMs for ours, childrenCpuMs
 * for redis-benchmark), the servers' CPU and run-queue wait, and every other
 * process's CPU (all but `exclude`).
 */
export function sampleCpu(serverPids: number[], generatorMs: () => number, exclude: Set<number>): CpuSample {
  return {
    generator: generatorMs(),
    server: serverPids.reduce((s, p) => s + (procCpuMs(p) ?? 0), 0),
    serverWait: serverPids.reduce((s, p) => s + (procRunWaitMs(p) ?? 0), 0),
    others: processCpuSnapshot(exclude),
    wall: performance.now(),
  };
}

/** CPU over a window, each as % of one core. */
export interface CpuUse {
  generatorCpuPct: number;
  serverCpuPct?: number;
  /** Time the server's threads were runnable but waiting for a core (Linux). */
  serverWaitPct?: number;
  /** Everything else running on the machine (other benchmarks, builds...). */
  otherCpuPct?: number;
}

export function cpuUse(a: CpuSample, b: CpuSample, serverPids: number[]): CpuUse {
  const wall = b.wall - a.wall;
  if (!(wall > 0)) return { generatorCpuPct: 0 };
  const pct = (ms: number): number => Math.round((ms / wall) * 1000) / 10;
  return {
    generatorCpuPct: pct(b.generator - a.generator),
    // Summed over the servers' processes and threads.
    ...(serverPids.length > 0 ? { serverCpuPct: pct(b.server - a.server), serverWaitPct: pct(b.serverWait - a.serverWait) } : {}),
    ...(b.others.size > 0 ? { otherCpuPct: pct(otherCpuMs(a.others, b.others)) } : {}),
  };
}

/** What makes a run's number less trustworthy, from its CPU use. */
export function cpuWarnings(u: CpuUse, generatorThreads: number): string[] {
  const out: string[] = [];
  const cores = availableParallelism();
  // One thread cannot use more than a core; past ~85% it is likely what limits the rate.
  if (u.generatorCpuPct > 85 * Math.min(generatorThreads, cores)) out.push(`generator used ${u.generatorCpuPct}% CPU: it may be the bottleneck`);
  if (u.serverCpuPct !== undefined && u.generatorCpuPct + u.serverCpuPct > 90 * cores)
    out.push(`machine saturated: generator ${u.generatorCpuPct}% + server ${u.serverCpuPct}% of ${cores} cores`);
  if (u.otherCpuPct !== undefined && u.otherCpuPct > 20) out.push(`other processes used ${u.otherCpuPct}% CPU during the run: noisy`);
  return out;
}
