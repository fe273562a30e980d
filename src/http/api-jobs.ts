// One job: GET /api/job/<id> (every SHOW field and the body) and the
// actions ACKJOB, NACK, DEQUEUE, DELJOB and ENQUEUE, run through the node's
// command table so replies and errors are Disque's. With ?node=<id> both
// are asked of that node instead (a job this node holds no copy of).
import type { Router, RequestContext } from './router.js';
import { HttpError, JOB_ID_SHAPE } from './router.js';
import { Api, checkJobId, pairs, plain, describeBody } from './api.js';
import { peerRequest, errorText, askPeers } from './peers.js';
import { fromWire } from './names.js';
import type { RespValue } from '../protocol/reply-reader.js';

const ACTIONS: Record<string, string> = {
  ack: 'ACKJOB',
  nack: 'NACK',
  dequeue: 'DEQUEUE',
  deljob: 'DELJOB',
  enqueue: 'ENQUEUE',
};

/** SHOW's fields as JSON; null when the node does not have the job. */
export async function showJob(api: Api, id: string, addr: string): Promise<Record<string, unknown> | null> {
  const reply = await api.run(['SHOW', id], addr);
  if (reply === null) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of pairs(reply)) out[k] = fieldValue(k, v);
  return out;
}

function fieldValue(key: string, v: RespValue): unknown {
  if (key === 'body') return Buffer.isBuffer(v) ? describeBody(v) : null;
  if (key === 'queue' && Buffer.isBuffer(v)) return fromWire(v.toString('latin1'));
  return plain(v);
}

/** The node named by ?node=, unless it is this one. */
function otherNode(api: Api, ctx: RequestContext): ReturnType<Api['peer']> | null {
  const id = ctx.url.searchParams.get('node');
  if (id === null || id === '' || id === api.host.myId) return null;
  return api.peer(id);
}

/** Asks the peer the same thing; its error statuses are passed on, no answer is 502. */
async function proxy(api: Api, peer: ReturnType<Api['peer']>, method: 'GET' | 'POST', path: string): Promise<unknown> {
  let answer: { status: number; json: unknown };
  try {
    answer = await peerRequest(peer, method, path, api.password, method === 'POST' ? {} : undefined);
  } catch (e) {
    throw new HttpError(502, (e as Error).message);
  }
  if (answer.status !== 200) throw new HttpError(answer.status === 401 || answer.status === 403 ? 502 : answer.status, errorText(answer.json) ?? `HTTP ${answer.status} from the node`);
  return answer.json;
}

/** A task call's progress record (the client's progress.ts): the newest body of queue disque-ts-progress:<id> here. */
interface ProgressRecord {
  value: unknown;
  seq: number;
  at: number;
}

async function localProgress(api: Api, id: string, addr: string): Promise<ProgressRecord | null> {
  const reply = await api.run(['QPEEK', `disque-ts-progress:${id}`, '-10'], addr);
  let best: ProgressRecord | null = null;
  for (const entry of Array.isArray(reply) ? reply : []) {
    const body = Array.isArray(entry) ? entry[2] : undefined;
    if (!Buffer.isBuffer(body)) continue;
    try {
      const p = JSON.parse(body.toString('utf8')) as ProgressRecord;
      if (typeof p.seq === 'number' && (best === null || p.seq > best.seq)) best = { value: p.value, seq: p.seq, at: p.at };
    } catch {
      // not a progress record
    }
  }
  return best;
}

export function registerJobRoutes(router: Router, api: Api): void {
  // Progress a task handler reported (ctx.progress): the record is queued on
  // the node its worker used, so the other nodes are asked when this one has none.
  router.on('GET', '/api/job/:id/progress', async (ctx) => {
    const id = ctx.params.id!;
    checkJobId(id);
    const here = await localProgress(api, id, ctx.addr);
    if (here !== null || ctx.url.searchParams.get('local') === '1') return { progress: here, node: api.host.myId };
    const answers = await askPeers<{ progress: ProgressRecord | null; node: string }>(api.otherNodes(), `/api/job/${encodeURIComponent(id)}/progress?local=1`, api.password);
    let best: { progress: ProgressRecord | null; node: string } = { progress: null, node: api.host.myId };
    for (const a of answers) {
      const p = a.value?.progress;
      if (p && (best.progress === null || p.seq > best.progress.seq)) best = { progress: p, node: a.value!.node };
    }
    return best;
  }, { id: JOB_ID_SHAPE });

  router.on('GET', '/api/job/:id', async (ctx) => {
    const id = ctx.params.id!;
    checkJobId(id);
    const peer = otherNode(api, ctx);
    if (peer !== null) return proxy(api, peer, 'GET', `/api/job/${encodeURIComponent(id)}`);
    const job = await showJob(api, id, ctx.addr);
    if (job === null) throw new HttpError(404, `No job ${id} on this node`);
    return job;
  }, { id: JOB_ID_SHAPE });

  router.on('POST', '/api/job/:id/:action', async (ctx) => {
    const { id, action } = ctx.params as { id: string; action: string };
    const command = ACTIONS[action];
    if (command === undefined) throw new HttpError(404, `Unknown action ${JSON.stringify(action)} (ack, nack, dequeue, deljob, enqueue)`);
    checkJobId(id);
    const peer = otherNode(api, ctx);
    if (peer !== null) return proxy(api, peer, 'POST', `/api/job/${encodeURIComponent(id)}/${action}`);
    // A second click, or another user, may have acted first: say so rather than act on nothing.
    const job = await showJob(api, id, ctx.addr);
    if (job === null) throw new HttpError(404, `No job ${id} on this node: it may have been acknowledged, deleted or expired`);
    if (job.state === 'acked' && command !== 'DELJOB') throw new HttpError(409, `Job ${id} is already acknowledged`);
    const result = await api.run([command, id], ctx.addr);
    return { ok: true, result: plain(result) };
  }, { id: JOB_ID_SHAPE });
}
