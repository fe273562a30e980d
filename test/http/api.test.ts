// The dashboard's JSON API on one node (docs/http-api.md): actions run
// through the command table (ack removes the job, pause stops GETJOB,
// requeue of a dead letter puts the original body back), job show with the
// body as text, JSON or hex, queue pages, and the errors of a double click.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { client } from '../helpers/cluster.js';
import { get, postWithCsrf, startHttpServer } from '../helpers/http.js';
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

const addJob = async (queue: string, body: string | Buffer) => (await r.call('ADDJOB', queue, body, '0')) as string;
const jobPath = (id: string) => `/api/job/${encodeURIComponent(id)}`;

describe('JSON API', () => {
  it('describes this node', async () => {
    await addJob('nodeq', 'x');
    const n = (await get(h.http, '/api/node')).json;
    expect(n.id).toBe(await r.call('CLUSTER', 'MYID'));
    expect(n.addr).toBe(`127.0.0.1:${h.port}`);
    expect(n.httpPort).toBe(h.http);
    expect(n.state).toBe('ok');
    expect(n.jobs).toBeGreaterThanOrEqual(1);
    expect(n.memory.max).toBeGreaterThan(0);
    expect(n.persistence.enabled).toBe(false);
    expect(n.totals.added).toBeGreaterThanOrEqual(1);
    const s = (await get(h.http, '/readyz')).json;
    expect(s).toMatchObject({ ready: true });
  });

  it('shows a job with every SHOW field and its body as text, JSON or hex', async () => {
    const id = await addJob('showq', '{"n":1,"s":"é"}');
    const job = (await get(h.http, jobPath(id))).json;
    expect(job.id).toBe(id);
    expect(job.queue).toBe('showq');
    expect(job.state).toBe('queued');
    for (const f of ['repl', 'ttl', 'ctime', 'delay', 'retry', 'nacks', 'additional-deliveries', 'nodes-delivered', 'nodes-confirmed', 'next-requeue-within', 'next-awake-within']) {
      expect(job, f).toHaveProperty(f);
    }
    expect(job.body).toEqual({ text: '{"n":1,"s":"é"}', json: { n: 1, s: 'é' }, hex: null });
    const bin = await addJob('showq', Buffer.from([0, 0xff, 0x10, 0x80]));
    expect((await get(h.http, jobPath(bin))).json.body).toEqual({ text: null, hex: '00ff1080' });
    // A raw '/' in the ID (unencoded) is understood too.
    expect((await get(h.http, `/api/job/${id}`)).json.id).toBe(id);
    expect((await get(h.http, '/api/job/not-a-job-id')).status).toBe(400);
    const gone = id.slice(0, -4) + (id.endsWith('0000') ? '0001' : '0000');
    expect((await get(h.http, jobPath(gone))).status).toBe(404);
  });

  it('ACK removes the job (SHOW nil); a second ACK is 404, not a crash', async () => {
    const id = await addJob('ackq', 'done soon');
    const res = await postWithCsrf(h.http, `${jobPath(id)}/ack`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ ok: true, result: 1 });
    expect(await r.call('SHOW', id)).toBeNull();
    const again = await postWithCsrf(h.http, `${jobPath(id)}/ack`);
    expect(again.status).toBe(404);
    expect(again.json.error).toMatch(/No job/);
    expect((await postWithCsrf(h.http, `${jobPath(id)}/frobnicate`)).status).toBe(404);
  });

  it('NACK, DEQUEUE, ENQUEUE and DELJOB answer as the commands do', async () => {
    const id = await addJob('actq', 'work');
    expect((await postWithCsrf(h.http, `${jobPath(id)}/dequeue`)).json).toEqual({ ok: true, result: 1 });
    expect(await r.call('QLEN', 'actq')).toBe(0);
    expect((await postWithCsrf(h.http, `${jobPath(id)}/enqueue`)).json).toEqual({ ok: true, result: 1 });
    expect(await r.call('QLEN', 'actq')).toBe(1);
    // Already queued: ENQUEUE does nothing, as the command says.
    expect((await postWithCsrf(h.http, `${jobPath(id)}/enqueue`)).json).toEqual({ ok: true, result: 0 });
    await r.call('GETJOB', 'NOHANG', 'FROM', 'actq');
    expect((await postWithCsrf(h.http, `${jobPath(id)}/nack`)).json).toEqual({ ok: true, result: 1 });
    expect(((await get(h.http, jobPath(id))).json).nacks).toBe(1);
    expect((await postWithCsrf(h.http, `${jobPath(id)}/deljob`)).json).toEqual({ ok: true, result: 1 });
    expect(await r.call('SHOW', id)).toBeNull();
  });

  it('PAUSE out makes GETJOB NOHANG return nothing; none lets it through', async () => {
    await addJob('pauseq', 'waiting');
    const p = await postWithCsrf(h.http, '/api/queue/pauseq/pause', { state: 'out' });
    expect(p.json).toEqual({ ok: true, paused: 'out' });
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', 'pauseq')).toBeNull();
    const listed = (await get(h.http, '/api/queues?local=1')).json.queues.find((q: { name: string }) => q.name === 'pauseq');
    expect(listed).toMatchObject({ name: 'pauseq', total: 1, paused: 'out' });
    expect((await postWithCsrf(h.http, '/api/queue/pauseq/pause', { state: 'sideways' })).status).toBe(400);
    expect((await postWithCsrf(h.http, '/api/queue/pauseq/pause', { state: 'none' })).json.paused).toBe('none');
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', 'pauseq')).toHaveLength(1);
  });

  it("pages a queue's jobs with JSCAN", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add(await addJob('pageq', `body ${i}`));
    const seen = new Set<string>();
    let cursor = '0';
    let pages = 0;
    do {
      const page = (await get(h.http, `/api/queue/pageq/jobs?cursor=${cursor}&count=3`)).json;
      for (const j of page.jobs) {
        expect(j).toMatchObject({ state: 'queued', nacks: 0, additionalDeliveries: 0 });
        expect(j.bodyPreview).toMatch(/^body \d$/);
        seen.add(j.id);
      }
      cursor = page.cursor;
      pages++;
    } while (cursor !== '0' && pages < 50);
    expect(seen).toEqual(ids);
    expect((await get(h.http, '/api/queue/pageq/jobs?cursor=x')).status).toBe(400);
  });

  it('requeues a dead letter: the original body goes back to the original queue, the letter is acked', async () => {
    const original = Buffer.from([0x01, 0x02, 0xfe]);
    const envelope = {
      id: 'D-00000000-AAAAAAAAAAAAAAAAAAAAAAAA-05a1',
      queue: 'emails',
      body: original.toString('base64'),
      bodyEncoding: 'base64',
      error: { name: 'Error', message: 'SMTP said no' },
      nacks: 3,
      additionalDeliveries: 0,
      attempts: 4,
      failedAt: '2026-01-01T00:00:00.000Z',
    };
    const dead = await addJob('emails-failed', JSON.stringify(envelope));
    await addJob('not-dead', '{"bodyEncoding": 1}');
    const queues = (await get(h.http, '/api/dead-letters')).json.queues;
    expect(queues).toEqual([{ name: 'emails-failed', count: 1 }]);
    const letters = (await get(h.http, '/api/dead-letters/emails-failed')).json.letters;
    expect(letters).toEqual([
      { id: dead, originalId: envelope.id, originalQueue: 'emails', error: 'SMTP said no', attempts: 4, failedAt: envelope.failedAt },
    ]);

    const res = await postWithCsrf(h.http, `/api/dead-letters/emails-failed/${encodeURIComponent(dead)}/requeue`);
    expect(res.status).toBe(200);
    expect(res.json.ok).toBe(true);
    const fresh = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', 'emails')) as [Buffer, Buffer, Buffer][];
    expect(fresh).toHaveLength(1);
    expect(fresh[0]![1].toString()).toBe(res.json.newId);
    expect(fresh[0]![2]).toEqual(original);
    expect(await r.call('SHOW', dead)).toBeNull();
    const twice = await postWithCsrf(h.http, `/api/dead-letters/emails-failed/${encodeURIComponent(dead)}/requeue`);
    expect(twice.status).toBe(404);
  });

  it('gives Disque errors as 409 with their text', async () => {
    await r.call('PAUSE', 'closedq', 'in');
    const id = await addJob('openq', 'x');
    await r.call('GETJOB', 'NOHANG', 'FROM', 'openq');
    await r.call('CONFIG', 'SET', 'maxmemory', '1');
    try {
      const res = await postWithCsrf(h.http, `${jobPath(id)}/nack`);
      expect(res.status).toBe(409);
      expect(res.json.error).toMatch(/^OOM /);
    } finally {
      await r.call('CONFIG', 'SET', 'maxmemory', '1gb');
    }
  });
});
