// The dashboard API and /metrics for queue policies and scheduled jobs (issue 26) on one node: a queue's
// QPOLICY read and set (errors as Disque's), its scheduled jobs listed by
// due time and paged, run now and delete through the job actions, the
// delayed count and policy in the queue list, and the /metrics families.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { client } from '../helpers/cluster.js';
import { get, parseExposition, postWithCsrf, startHttpServer } from '../helpers/http.js';
import type { ServerHandle } from '../helpers/server.js';

let h: ServerHandle & { http: number };
let r: Redis;

beforeAll(async () => {
  h = await startHttpServer();
  r = client(h.port);
});
afterAll(async () => {
  r?.disconnect();
  await h?.destroy();
});

describe('policy API', () => {
  it('reads, sets, changes and clears a queue policy through QPOLICY', async () => {
    const path = '/api/queue/limited/policy';
    expect((await get(h.http, path)).json).toMatchObject({ policy: null, here: null });
    const set = await postWithCsrf(h.http, path, { rate: { jobs: 5, seconds: 10 }, concurrency: 2 });
    expect(set.status).toBe(200);
    expect(set.json.policy).toMatchObject({ rate: { jobs: 5, seconds: 10 }, concurrency: 2 });
    expect(await r.call('QPOLICY', 'limited', 'GET')).toEqual(['rate-jobs', 5, 'rate-seconds', 10, 'concurrency', 2]);
    // Consumers use it; the API shows this node's share and use.
    for (let i = 0; i < 4; i++) await r.call('ADDJOB', 'limited', `j${i}`, '0');
    await r.call('GETJOB', 'NOHANG', 'COUNT', '4', 'FROM', 'limited');
    const details = (await get(h.http, path)).json;
    expect(details.here).toMatchObject({ rateShare: 5, rateUsed: 2, concurrencyShare: 2, inFlight: 2, heldByConcurrency: 1 });
    // null removes one limit.
    expect((await postWithCsrf(h.http, path, { concurrency: null })).json.policy).toMatchObject({ rate: { jobs: 5, seconds: 10 }, concurrency: null });
    const queues = (await get(h.http, '/api/queues')).json.queues as { name: string; policy: unknown }[];
    expect(queues.find((q) => q.name === 'limited')?.policy).toMatchObject({ rate: { jobs: 5, seconds: 10 } });
    expect((await postWithCsrf(h.http, path, { rate: null, concurrency: null })).json.policy).toBeNull();
    expect(await r.call('QPOLICY', 'limited', 'GET')).toEqual([]);
  });

  it('answers 400 for bad input', async () => {
    const path = '/api/queue/limited2/policy';
    expect((await postWithCsrf(h.http, path, {})).status).toBe(400);
    expect((await postWithCsrf(h.http, path, { rate: { jobs: 0, seconds: 1 } })).status).toBe(400);
    expect((await postWithCsrf(h.http, path, { concurrency: 'lots' })).status).toBe(400);
    expect((await postWithCsrf(h.http, path, { rate: { jobs: 5, seconds: 1e9 } })).json.error).toBe('ERR RATE seconds must be between 1 and 86400');
  });
});

describe('scheduled jobs API', () => {
  it('lists a queue\'s delayed jobs by due time, paged, with run now and delete', async () => {
    const ids: string[] = [];
    for (const delay of [300, 100, 200, 400]) ids.push((await r.call('ADDJOB', 'sched', `in ${delay}`, '0', 'DELAY', String(delay))) as string);
    await r.call('ADDJOB', 'sched', 'now', '0');
    const page = (await get(h.http, '/api/queue/sched/scheduled?count=2')).json;
    expect(page.total).toBe(4);
    expect(page.jobs.map((j: { id: string }) => j.id)).toEqual([ids[1], ids[2]]);
    expect(page.jobs[0]).toMatchObject({ kind: 'delayed', nacks: 0, bodyPreview: 'in 100' });
    expect(page.jobs[0].dueIn).toBeGreaterThan(95_000);
    expect(Math.abs(page.jobs[0].dueAt - (Date.now() + 100_000))).toBeLessThan(5000);
    const next = (await get(h.http, '/api/queue/sched/scheduled?count=2&offset=2')).json;
    expect(next.jobs.map((j: { id: string }) => j.id)).toEqual([ids[0], ids[3]]);
    // Run now: queued at once, no longer scheduled.
    expect((await postWithCsrf(h.http, `/api/job/${encodeURIComponent(ids[1]!)}/enqueue`)).json).toMatchObject({ ok: true, result: 1 });
    expect(await r.call('QLEN', 'sched')).toBe(2);
    // Delete: acknowledged (every node honours it), gone from the list.
    expect((await postWithCsrf(h.http, `/api/job/${encodeURIComponent(ids[2]!)}/ack`)).json).toMatchObject({ ok: true, result: 1 });
    const after = (await get(h.http, '/api/queue/sched/scheduled')).json;
    expect(after.jobs.map((j: { id: string }) => j.id)).toEqual([ids[0], ids[3]]);
    const row = ((await get(h.http, '/api/queues')).json.queues as { name: string; delayed: number }[]).find((q) => q.name === 'sched');
    expect(row?.delayed).toBe(2);
    expect((await get(h.http, '/api/queue/sched/scheduled?offset=x')).status).toBe(400);
  });

  it('lists a queue that holds only scheduled jobs, and NACK DELAY retries', async () => {
    await r.call('ADDJOB', 'onlylater', 'x', '0', 'DELAY', '60');
    const row = ((await get(h.http, '/api/queues')).json.queues as { name: string; delayed: number; total: number }[]).find((q) => q.name === 'onlylater');
    expect(row).toMatchObject({ total: 0, delayed: 1 });
    const retried = (await r.call('ADDJOB', 'retries', 'y', '0', 'UNIQUE', 'k-1')) as string;
    await r.call('GETJOB', 'FROM', 'retries');
    await r.call('NACK', retried, 'DELAY', '30');
    const page = (await get(h.http, '/api/queue/retries/scheduled')).json;
    expect(page.jobs).toEqual([expect.objectContaining({ id: retried, kind: 'retry', nacks: 1, unique: 'k-1' })]);
  });
});

describe('/metrics', () => {
  it('has the delayed count per queue and the policy families', async () => {
    await r.call('ADDJOB', 'mq', 'later', '0', 'DELAY', '100');
    await r.call('QPOLICY', 'mq', 'SET', 'RATE', '1', '60');
    await r.call('ADDJOB', 'mq', 'a', '0');
    await r.call('ADDJOB', 'mq', 'b', '0');
    await r.call('GETJOB', 'NOHANG', 'FROM', 'mq');
    await r.call('GETJOB', 'NOHANG', 'FROM', 'mq');
    const res = await get(h.http, '/metrics');
    const m = parseExposition(res.text);
    expect(m.types.get('disque_queue_delayed')).toBe('gauge');
    expect(m.value('disque_queue_delayed', { queue: 'mq' })).toBe(1);
    expect(m.types.get('disque_queue_policy_held_total')).toBe('counter');
    expect(m.value('disque_queue_policy_held_total', { queue: 'mq', policy: 'rate' })).toBe(1);
    expect(m.value('disque_queue_policy_limit', { queue: 'mq', policy: 'rate' })).toBe(1);
    expect(m.value('disque_queue_policy_share', { queue: 'mq', policy: 'rate' })).toBe(1);
    expect(m.value('disque_queue_policy_used', { queue: 'mq', policy: 'rate' })).toBe(1);
    expect(m.value('disque_queue_policy_held_total', { queue: 'mq', policy: 'concurrency' })).toBeUndefined();
  });
});
