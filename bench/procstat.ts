// Reading a local server's CPU time and resident memory from /proc.
import { readFileSync } from 'node:fs';

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
