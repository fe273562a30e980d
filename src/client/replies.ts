// Raw RESP replies (read with Buffers, so bodies stay binary safe) into the
// typed objects of types.ts. Field lists are read by name, not position: the
// reference says clients must not rely on field order or presence.
import type { Codec } from './codec.js';
import type {
  HelloReply,
  InfoReply,
  Job,
  JobDetails,
  JobState,
  NodeInfo,
  PauseState,
  QueuePolicy,
  QueuePolicyUsage,
  QueueStats,
} from './types.js';

/** A reply element as text. */
export function text(v: unknown): string {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v === null || v === undefined) return '';
  return String(v);
}

/** A reply element as a number (integers may arrive as bulk strings, e.g. HELLO ports). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  const n = Number(text(v));
  return Number.isFinite(n) ? n : 0;
}

function asBuffer(v: unknown): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(text(v));
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? v.map(text) : [];
}

/** A flat [field, value, ...] reply as a map from field name to raw value. */
export function fieldMap(reply: unknown): Map<string, unknown> {
  const a = reply as unknown[];
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < a.length; i += 2) m.set(text(a[i]), a[i + 1]);
  return m;
}

/** One GETJOB / QPEEK entry: [queue, id, body, ("nacks", n, "additional-deliveries", m)]. */
export function parseJob<T>(entry: unknown, codec: Codec<T>): Job<T> {
  const e = entry as unknown[];
  const job: Job<T> = { queue: text(e[0]), id: text(e[1]), body: codec.decode(asBuffer(e[2])) };
  for (let i = 3; i + 1 < e.length; i += 2) {
    const k = text(e[i]);
    if (k === 'nacks') job.nacks = num(e[i + 1]);
    else if (k === 'additional-deliveries') job.additionalDeliveries = num(e[i + 1]);
  }
  return job;
}

/** GETJOB / QPEEK reply: an array of jobs, or null (timeout, NOHANG). */
export function parseJobs<T>(reply: unknown, codec: Codec<T>): Job<T>[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((e) => parseJob(e, codec));
}

const JOB_STATES = new Set<string>(['wait-repl', 'active', 'queued', 'acked']);

/** SHOW (and JSCAN REPLY all) job description. */
export function parseJobDetails<T>(reply: unknown, codec: Codec<T>): JobDetails<T> | null {
  if (!Array.isArray(reply)) return null;
  const m = fieldMap(reply);
  const state = text(m.get('state'));
  const ctime = num(m.get('ctime'));
  const body = m.get('body');
  return {
    id: text(m.get('id')),
    queue: text(m.get('queue')),
    state: (JOB_STATES.has(state) ? state : 'unknown') as JobState,
    replicate: num(m.get('repl')),
    ttl: num(m.get('ttl')),
    ctime,
    createdAt: new Date(Math.floor(ctime / 1e6)),
    delay: num(m.get('delay')),
    retry: num(m.get('retry')),
    nacks: num(m.get('nacks')),
    additionalDeliveries: num(m.get('additional-deliveries')),
    nodesDelivered: list(m.get('nodes-delivered')),
    nodesConfirmed: list(m.get('nodes-confirmed')),
    nextRequeueWithin: num(m.get('next-requeue-within')),
    nextAwakeWithin: num(m.get('next-awake-within')),
    unique: m.has('unique') ? text(m.get('unique')) : null,
    // An acknowledged "dummy ACK" job has no body.
    body: codec.decode(body === null || body === undefined ? Buffer.alloc(0) : asBuffer(body)),
  };
}

/** A SHOW reply's creation time, without decoding the body; undefined for null or no ctime. */
export function showCreatedAt(reply: unknown): Date | undefined {
  if (!Array.isArray(reply)) return undefined;
  const ctime = num(fieldMap(reply).get('ctime'));
  return ctime > 0 ? new Date(Math.floor(ctime / 1e6)) : undefined;
}

const PAUSE_STATES = new Set<string>(['none', 'in', 'out', 'all']);

/** A PAUSE reply or QSTAT pause field. */
export function parsePauseState(v: unknown): PauseState {
  const s = text(v);
  return (PAUSE_STATES.has(s) ? s : 'none') as PauseState;
}

/** QSTAT reply, or null for an unknown queue. */
export function parseQueueStats(reply: unknown): QueueStats | null {
  if (!Array.isArray(reply)) return null;
  const m = fieldMap(reply);
  return {
    name: text(m.get('name')),
    len: num(m.get('len')),
    age: num(m.get('age')),
    idle: num(m.get('idle')),
    blocked: num(m.get('blocked')),
    importFrom: list(m.get('import-from')),
    importRate: num(m.get('import-rate')),
    jobsIn: num(m.get('jobs-in')),
    jobsOut: num(m.get('jobs-out')),
    pause: parsePauseState(m.get('pause')),
    ...(m.has('delayed') ? { delayed: num(m.get('delayed')) } : {}),
    ...(Array.isArray(m.get('policy')) ? { policy: parsePolicyUsage(m.get('policy') as unknown[]) } : {}),
  };
}

function parsePolicyUsage(reply: unknown[]): QueuePolicyUsage {
  const m = fieldMap(reply);
  return {
    rateShare: num(m.get('rate-share')),
    rateUsed: num(m.get('rate-used')),
    concurrencyShare: num(m.get('concurrency-share')),
    inFlight: num(m.get('in-flight')),
    heldByRate: num(m.get('held-by-rate')),
    heldByConcurrency: num(m.get('held-by-concurrency')),
  };
}

/** QPOLICY GET: [field, value, ...]; null when the queue has no policy. */
export function parseQueuePolicy(reply: unknown): QueuePolicy | null {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  const m = fieldMap(reply);
  return {
    rate: m.has('rate-jobs') ? { jobs: num(m.get('rate-jobs')), seconds: num(m.get('rate-seconds')) } : null,
    concurrency: m.has('concurrency') ? num(m.get('concurrency')) : null,
  };
}

/** HELLO reply: [version, myid, [id, ip, port, priority], ...]. */
export function parseHello(reply: unknown): HelloReply {
  const a = reply as unknown[];
  const nodes: NodeInfo[] = a.slice(2).map((n) => {
    const e = n as unknown[];
    return { id: text(e[0]), host: text(e[1]), port: num(e[2]), priority: num(e[3]) };
  });
  return { version: num(a[0]), id: text(a[1]), nodes };
}

/** QSCAN / JSCAN reply: [cursor, [items]]. */
export function parseScanPage(reply: unknown): { cursor: string; items: unknown[] } {
  const a = reply as unknown[];
  return { cursor: text(a[0]), items: Array.isArray(a[1]) ? a[1] : [] };
}

/** INFO text: `# Section` headers and `field:value` lines. */
export function parseInfo(info: string): InfoReply {
  const out: InfoReply = {};
  let section: Record<string, string | number> = {};
  for (const raw of info.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      section = {};
      out[line.slice(1).trim().toLowerCase()] = section;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const value = line.slice(colon + 1);
    // Only plain decimals become numbers: versions, hex IDs, "00000000" and "1.00G" stay text.
    section[line.slice(0, colon)] = /^-?(0|[1-9]\d{0,14})(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  return out;
}
