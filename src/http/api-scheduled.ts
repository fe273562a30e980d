// Scheduled jobs of a queue on this node (docs/http-api.md): the jobs it
// will queue for the first time at a set time, ADDJOB DELAY and NACK DELAY
// (JobStore.scheduledJobs), soonest first, paged. Running one now and
// deleting one are the job actions (POST /api/job/<id>/enqueue, /ack).
import type { Router } from './router.js';
import { HttpError } from './router.js';
import type { Api } from './api.js';
import { bodyPreview } from './api.js';
import { fromWire, toWire } from './names.js';

const PAGE_DEFAULT = 50;
const PAGE_MAX = 1000;

function intParam(url: URL, name: string, dflt: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  if (!/^\d+$/.test(raw)) throw new HttpError(400, `Bad ${name} ${JSON.stringify(raw)}`);
  return Math.min(max, Number(raw));
}

export function registerScheduledRoutes(router: Router, api: Api): void {
  router.on('GET', '/api/queue/:name/scheduled', ({ url, params }) => {
    const raw = params.name!;
    if (raw === '') throw new HttpError(400, 'Empty queue name');
    const name = toWire(raw);
    const offset = intParam(url, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const count = Math.max(1, intParam(url, 'count', PAGE_DEFAULT, PAGE_MAX));
    const store = api.host.store;
    const clock = store.clock;
    const now = clock.now();
    const jobs = store.scheduledJobs(name, offset, count).map((job) => {
      const at = job.bodyOffset();
      return {
        id: job.id,
        dueAt: clock.base + job.qtime,
        dueIn: Math.max(0, job.qtime - now),
        // A job NACKed with a delay (or re-queued before) waits for another try; else it was added with DELAY.
        kind: job.nacks > 0 || job.deliveries > 0 ? 'retry' : 'delayed',
        nacks: job.nacks,
        additionalDeliveries: job.deliveries,
        ttl: Math.max(0, Math.ceil((job.etime - now) / 1000)),
        unique: job.unique === null ? null : fromWire(job.unique),
        bodyPreview: bodyPreview(job.bodyBytes().subarray(at, at + job.bodyLength)),
      };
    });
    return { node: api.host.myId, total: store.scheduledCount(name), offset, jobs };
  });
}
