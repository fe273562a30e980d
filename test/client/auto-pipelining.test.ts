// The client's whole command set, and a Worker, on a client whose ioredis
// connections use enableAutoPipelining, and on one without. ioredis (5.x,
// 6.x) drops the command name of callBuffer() commands under
// auto-pipelining; the client must send every command whole either way.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { Disque, Worker, type Job } from '../../src/client/index.js';

let server: ServerHandle;

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.destroy();
});

for (const autoPipelining of [false, true]) {
  describe(`enableAutoPipelining ${autoPipelining}`, () => {
    let client: Disque;
    let qn = 0;
    const queue = () => `ap-${autoPipelining ? 'on' : 'off'}-${++qn}`;

    beforeAll(async () => {
      client = new Disque({ nodes: server.port, redis: { enableAutoPipelining: autoPipelining } });
      await client.connect();
    });
    afterAll(async () => {
      await client?.quit();
    });

    it('every command of the client', async () => {
      const q = queue();
      expect(await client.ping()).toBe('PONG');
      expect(await client.ping('hi')).toBe('hi');
      const hello = await client.hello();
      expect(hello.id).toBe(client.node?.id);
      expect((await client.info('server')).server?.tcp_port).toBe(server.port);
      expect(await client.call('QLEN', q)).toBe(0);

      const a = await client.addJob(q, 'a', { retry: 30 });
      const b = await client.addJob(q, Buffer.from([0, 255, 1]), { retry: 30 });
      expect(await client.qlen(q)).toBe(2);
      expect((await client.qstat(q))?.len).toBe(2);
      expect((await client.qpeek(q, 10)).map((j) => j.id)).toEqual([a, b]);
      expect((await client.qpeek(q, -1)).map((j) => j.body)).toEqual([Buffer.from([0, 255, 1])]);
      const shown = await client.show(a);
      expect(shown).toMatchObject({ id: a, queue: q, state: 'queued' });
      expect(shown?.body).toEqual(Buffer.from('a'));

      const queues: string[] = [];
      for await (const name of client.qscan({ busyLoop: true })) queues.push(name);
      expect(queues).toContain(q);
      const ids: string[] = [];
      for await (const id of client.jscan({ queue: q })) ids.push(id);
      expect(ids.sort()).toEqual([a, b].sort());
      const details: string[] = [];
      for await (const d of client.jscan({ queue: q, reply: 'all' })) details.push(d.body.toString('hex'));
      expect(details.sort()).toEqual(['00ff01', Buffer.from('a').toString('hex')].sort());

      expect(await client.pause(q, 'in')).toBe('in');
      expect(await client.pause(q, 'state')).toBe('in');
      expect(await client.pause(q, 'none')).toBe('none');

      const got = await client.getJob(q, { noHang: true, count: 1, withCounters: true });
      expect(got.map((j) => [j.id, j.nacks])).toEqual([[a, 0]]);
      expect(await client.working(a)).toBe(30);
      expect(await client.nack(a)).toBe(1);
      // Queues are ordered by creation time: the NACKed job comes first again.
      const again = await client.getJob(q, { timeout: 1000, count: 2 });
      expect(again.map((j) => j.id)).toEqual([a, b]);
      expect(await client.enqueue(b)).toBe(1);
      expect(await client.dequeue(b)).toBe(1);
      expect(await client.ackJob(a)).toBe(1);
      expect(await client.fastAck(b)).toBe(1);
      const c = await client.addJob(q, 'c');
      expect(await client.delJob(c)).toBe(1);
      expect(await client.qlen(q)).toBe(0);

      const bulk = await client.addJobs(q, ['d', 'e', 'f'], { delay: 0 });
      expect(bulk.failed).toEqual([]);
      const peeked = await client.qpeek(q, 3, { withCreatedAt: true });
      expect(peeked.map((j) => j.id)).toEqual(bulk.ids);
      expect(peeked.every((j) => j.createdAt instanceof Date)).toBe(true);
      const [d] = await client.getJob(q, { noHang: true, withCreatedAt: true });
      expect(d?.createdAt).toBeInstanceOf(Date);
      expect(await client.counts(q, { deadLetterQueue: `${q}-dead` })).toEqual({
        queued: 2,
        active: 1,
        delayed: 0,
        deadLettered: 0,
        unreachable: [],
      });
      expect(await client.drain(q)).toBe(2);
      expect(await client.ackJob(d!.id)).toBe(1);

      const blocked = client.duplicate();
      const waiting = blocked.getJob(q).catch((e: Error) => e.name);
      await waitFor(async () => (await client.qstat(q))?.blocked === 1, 'the duplicate blocks in GETJOB', 5000);
      blocked.interrupt();
      expect(await waiting).toBe('InterruptedError');
      expect(await blocked.ping()).toBe('PONG');
      await blocked.quit();
    });

    it('commands issued in the same tick (one auto-pipeline) get their own replies', async () => {
      const q = queue();
      const id = await client.addJob(q, 'x');
      const [shown, len, peeked, jobs, pong] = await Promise.all([
        client.show(id),
        client.qlen(q),
        client.qpeek(q, 1),
        client.getJob(q, { noHang: true }),
        client.ping(),
      ]);
      expect(shown?.id).toBe(id);
      expect(len).toBe(1);
      expect(peeked.map((j) => j.id)).toEqual([id]);
      expect(jobs.map((j) => j.id)).toEqual([id]);
      expect(pong).toBe('PONG');
      await client.ackJob(id);
    });

    it('a Worker processes jobs, pauses, resumes and closes', async () => {
      const q = queue();
      const seen: Job[] = [];
      const w = new Worker(client, q, (job) => void seen.push(job), { fetchTimeout: 200, concurrency: 2, withCreatedAt: true });
      const errors: unknown[] = [];
      w.on('error', (e) => errors.push(e));
      await w.waitUntilReady();
      const added = [await client.addJob(q, '1'), await client.addJob(q, '2'), await client.addJob(q, '3')];
      await waitFor(() => w.stats().completed === 3, 'the worker completes three jobs', 10000);
      await w.pause();
      const later = (await client.addJobs(q, ['4'])).ids[0]!;
      w.resume();
      await waitFor(() => w.stats().completed === 4, 'the worker completes the fourth job', 10000);
      await w.close();
      expect(seen.map((j) => j.id).sort()).toEqual([...added, later].sort());
      expect(seen.every((j) => j.createdAt instanceof Date)).toBe(true);
      expect(errors).toEqual([]);
      for (const id of [...added, later]) expect(await client.show(id)).toBeNull();
    });
  });
}
