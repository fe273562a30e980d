// Dead letters: the bundled worker (src/client/worker.ts) ADDJOBs a JSON
// envelope (src/client/dead-letter.ts) to its dead-letter queue for each job
// it gives up on. These endpoints find such queues on this node, list their
// envelopes, and requeue one: ADDJOB of the original body to the original
// queue, then ACKJOB of the dead letter. The envelope's shape is read here
// (src/http may not import the client); keep both in step.
import type { Router } from './router.js';
import { HttpError, JOB_ID_SHAPE } from './router.js';
import { Api, checkJobId, pairs, plain } from './api.js';
import { fromWire, toWire } from './names.js';
import type { Job } from '../core/job.js';
import type { RespValue } from '../protocol/reply-reader.js';

/** The fields of a DeadLetterEnvelope this file uses. */
interface Envelope {
  id: string;
  queue: string;
  body: string;
  bodyEncoding: 'utf8' | 'base64';
  error: { name?: string; message?: string };
  attempts: number;
  failedAt: string;
}

/** The envelope in a job body (latin1 string of its bytes), or null when it is not one. */
export function parseEnvelope(latin1: string): Envelope | null {
  // Most bodies are not envelopes: skip them without parsing.
  if (!latin1.startsWith('{') || !latin1.includes('"bodyEncoding"')) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(latin1, 'latin1').toString('utf8'));
  } catch {
    return null;
  }
  const e = v as Partial<Envelope>;
  if (
    typeof e.id !== 'string' ||
    typeof e.queue !== 'string' ||
    typeof e.body !== 'string' ||
    (e.bodyEncoding !== 'utf8' && e.bodyEncoding !== 'base64') ||
    typeof e.error !== 'object' ||
    e.error === null
  ) {
    return null;
  }
  return e as Envelope;
}

function summary(deadId: string, e: Envelope) {
  return {
    id: deadId,
    originalId: e.id,
    originalQueue: e.queue,
    error: typeof e.error.message === 'string' ? e.error.message : String(e.error.name ?? 'error'),
    attempts: typeof e.attempts === 'number' ? e.attempts : null,
    failedAt: typeof e.failedAt === 'string' ? e.failedAt : null,
  };
}

const LIST_PAGE = 100;

/** A reply field as the node's latin1 string ('' when missing). */
function text(v: RespValue | undefined): string {
  return v === undefined || v === null ? '' : Buffer.isBuffer(v) ? v.toString('latin1') : String(v);
}

export function registerDeadLetterRoutes(router: Router, api: Api): void {
  /** Requeues under way, so a double click does not add the job twice. */
  const requeueing = new Set<string>();

  router.on('GET', '/api/dead-letters', () => {
    const store = api.host.store;
    const queues: { name: string; count: number }[] = [];
    for (const q of store.allQueues()) {
      if (q.length === 0) continue;
      const first: Job | undefined = store.peekJobs(q, 1, false)[0];
      const body = first?.body;
      if (body !== undefined && body !== null && parseEnvelope(body) !== null) queues.push({ name: fromWire(q.name), count: q.length });
    }
    return { queues: queues.sort((a, b) => b.count - a.count) };
  });

  router.on('GET', '/api/dead-letters/:queue', async ({ url, params, addr }) => {
    const queue = toWire(params.queue!);
    let cursor = url.searchParams.get('cursor') ?? '0';
    if (!/^\d+$/.test(cursor)) throw new HttpError(400, `Bad cursor ${JSON.stringify(cursor)}`);
    const letters: ReturnType<typeof summary>[] = [];
    for (let calls = 0; calls < 20 && letters.length < LIST_PAGE; calls++) {
      const reply = await api.run(['JSCAN', cursor, 'COUNT', String(LIST_PAGE), 'QUEUE', queue, 'REPLY', 'all'], addr);
      if (!Array.isArray(reply) || !Array.isArray(reply[1])) throw new HttpError(500, 'Unexpected JSCAN reply');
      cursor = String(plain(reply[0]!));
      for (const info of reply[1] as RespValue[]) {
        const f = pairs(info);
        const body = f.get('body');
        const env = Buffer.isBuffer(body) ? parseEnvelope(body.toString('latin1')) : null;
        if (env !== null && text(f.get('state')) !== 'acked') letters.push(summary(String(plain(f.get('id') ?? null)), env));
      }
      if (cursor === '0') break;
    }
    return { cursor, letters };
  });

  router.on('POST', '/api/dead-letters/:queue/:id/requeue', async ({ params, addr }) => {
    const id = params.id!;
    checkJobId(id);
    const queue = toWire(params.queue!);
    if (requeueing.has(id)) throw new HttpError(409, `Dead letter ${id} is being requeued already`);
    requeueing.add(id);
    try {
      const show = await api.run(['SHOW', id], addr);
      if (show === null) throw new HttpError(404, `No dead letter ${id} on this node: it may have been requeued, acknowledged or expired`);
      const f = pairs(show);
      if (text(f.get('state')) === 'acked') throw new HttpError(409, `Dead letter ${id} was already requeued or acknowledged`);
      if (text(f.get('queue')) !== queue) throw new HttpError(404, `Job ${id} is not in queue ${fromWire(queue)}`);
      const body = f.get('body');
      const env = Buffer.isBuffer(body) ? parseEnvelope(body.toString('latin1')) : null;
      if (env === null) throw new HttpError(409, `Job ${id} is not a dead-letter envelope`);
      const original = Buffer.from(env.body, env.bodyEncoding === 'base64' ? 'base64' : 'utf8').toString('latin1');
      const newId = await api.run(['ADDJOB', toWire(env.queue), original, '5000'], addr);
      await api.run(['ACKJOB', id], addr);
      return { ok: true, newId: plain(newId) };
    } finally {
      requeueing.delete(id);
    }
  }, { id: JOB_ID_SHAPE });
}
