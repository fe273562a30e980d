// The fault schedule of one run, drawn from its seed before the run starts,
// so the same seed gives the same faults at the same times (against our
// server or the reference). Pure: no processes, no clock.
//
// The promise under test holds while fewer than REPLICATE nodes fail, so at
// no moment are more than replicate-1 nodes faulty: killed, paused, or on
// the minority side of a partition. Redis faults touch no node's memory and
// are not counted, but only one runs at a time (there is one Redis).
import { prng } from './prng.js';

export type FaultKind =
  /** kill -9, restarted at the heal. */
  | 'kill'
  /** SIGSTOP for longer than cluster-node-timeout, then SIGCONT. */
  | 'pause'
  /** `nodes` cannot reach the others (nor they them) until the heal. */
  | 'partition'
  /** The run's Redis is SIGSTOPped: writes hang, then go through. */
  | 'redis-pause'
  /** The run's Redis shuts down (saving), then starts again with its data. */
  | 'redis-restart'
  /** The run's Redis is killed and starts again empty. */
  | 'redis-empty';

export const MODES = {
  /** No faults: the workload alone, to compare throughput. */
  none: [],
  kill: ['kill'],
  pause: ['pause'],
  partition: ['partition'],
  redis: ['redis-pause', 'redis-restart', 'redis-empty'],
  mixed: ['kill', 'pause', 'partition', 'redis-pause', 'redis-restart', 'redis-empty'],
} as const satisfies Record<string, readonly FaultKind[]>;

export type Mode = keyof typeof MODES;

export function isMode(s: string): s is Mode {
  return Object.hasOwn(MODES, s);
}

export interface Fault {
  kind: FaultKind;
  /** Milliseconds from the start of the fault phase. */
  at: number;
  /** When it is healed (restart, SIGCONT, rules removed, Redis back). */
  heal: number;
  /** The nodes it makes faulty (indexes); empty for Redis faults. */
  nodes: number[];
}

export interface ScheduleOptions {
  seed: number;
  mode: Mode;
  /** Length of the fault phase, ms. */
  durationMs: number;
  nodes: number;
  replicate: number;
  /** cluster-node-timeout: pauses last longer than this. */
  nodeTimeoutMs: number;
}

const isRedis = (k: FaultKind): boolean => k.startsWith('redis-');

/** How long each kind of fault lasts: [min, max] ms. */
function lengthRange(kind: FaultKind, nodeTimeoutMs: number): [number, number] {
  switch (kind) {
    case 'kill':
      return [500, 6000];
    case 'pause':
      return [nodeTimeoutMs + 500, nodeTimeoutMs + 4000];
    case 'partition':
      return [2000, 10_000];
    default:
      return [1000, 6000];
  }
}

export function makeSchedule(o: ScheduleOptions): Fault[] {
  const rnd = prng(o.seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const kinds: readonly FaultKind[] = MODES[o.mode];
  if (kinds.length === 0) return [];
  const maxFaulty = Math.max(0, Math.min(o.replicate - 1, o.nodes - 1));
  const faults: Fault[] = [];
  // Faults end before the phase does, so every heal is part of the schedule.
  const end = o.durationMs - 1000;
  for (let at = int(1000, 3000); at < end; at += int(1000, 4000)) {
    const kind = kinds[int(0, kinds.length - 1)]!;
    const [lo, hi] = lengthRange(kind, o.nodeTimeoutMs);
    const heal = Math.min(at + int(lo, hi), end);
    // A pause cut short by the end would no longer outlast the node timeout.
    if (heal - at < lo && kind === 'pause') continue;
    const overlapping = faults.filter((f) => f.at < heal && f.heal > at);
    if (isRedis(kind)) {
      if (overlapping.some((f) => isRedis(f.kind))) continue;
      faults.push({ kind, at, heal, nodes: [] });
      continue;
    }
    if (kind === 'partition' && overlapping.some((f) => f.kind === 'partition')) continue;
    const busy = new Set(overlapping.flatMap((f) => f.nodes));
    const room = maxFaulty - busy.size;
    if (room <= 0) continue;
    const free = [...Array(o.nodes).keys()].filter((i) => !busy.has(i));
    // A partition cuts off a minority of one or more nodes; kill and pause take one node.
    const count = kind === 'partition' ? int(1, Math.min(room, Math.floor(o.nodes / 2))) : 1;
    const picked: number[] = [];
    while (picked.length < count && free.length > 0) picked.push(free.splice(int(0, free.length - 1), 1)[0]!);
    faults.push({ kind, at, heal, nodes: picked.sort((a, b) => a - b) });
  }
  return faults;
}

/** The most nodes faulty at any one moment of the schedule. */
export function maxFaultyAtOnce(faults: readonly Fault[]): number {
  let most = 0;
  for (const f of faults) {
    const at = faults.filter((g) => g.at <= f.at && g.heal > f.at);
    most = Math.max(most, new Set(at.flatMap((g) => g.nodes)).size);
  }
  return most;
}

export function describeFault(f: Fault): string {
  const who = f.nodes.length > 0 ? ` node${f.nodes.length > 1 ? 's' : ''} ${f.nodes.join(',')}` : '';
  return `${(f.at / 1000).toFixed(1)}s-${(f.heal / 1000).toFixed(1)}s ${f.kind}${who}`;
}
