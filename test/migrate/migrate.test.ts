// disque-migrate as an operator runs it: a source cluster of 3 nodes (ours,
// standing in for the reference, which npm test does not have) and a target
// cluster of 3, real processes; the migration is the package's second bin.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { startCluster, client, pairs, type TestCluster } from '../helpers/cluster.js';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { err } from '../helpers/replies.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'dist/src/bin/disque-migrate.js');

let src: TestCluster;
let dst: TestCluster;

beforeAll(async () => {
  [src, dst] = await Promise.all([startCluster(3), startCluster(3)]);
}, 90_000);
afterAll(async () => {
  await Promise.all([src?.destroy(), dst?.destroy()]);
});

interface Run {
  /** SIGINT, as Ctrl-C. */
  interrupt(): void;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stderr(): string;
}

function migrate(args: string[], env: Record<string, string> = {}): Run {
  const proc = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return {
    interrupt: () => proc.kill('SIGINT'),
    stderr: () => stderr,
    done: new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr }))),
  };
}

const from = () => `127.0.0.1:${src.nodes[0]!.server.port}`;
const to = () => `127.0.0.1:${dst.nodes[1]!.server.port}`;

/** IDs of jobs still to deliver (queued or active) on the source, per node. */
async function sourceJobs(queue?: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const n of src.nodes) {
    let cursor = '0';
    do {
      const args = [cursor, 'COUNT', '1000', 'STATE', 'queued', 'STATE', 'active', ...(queue ? ['QUEUE', queue] : [])];
      const [next, page] = (await n.r.call('JSCAN', ...args)) as [string, string[]];
      for (const id of page) ids.add(id);
      cursor = next;
    } while (cursor !== '0');
  }
  return [...ids];
}

/** The job's copies on the target: node index -> SHOW. */
async function targetCopies(id: string): Promise<Map<number, Record<string, unknown>>> {
  const out = new Map<number, Record<string, unknown>>();
  for (let i = 0; i < dst.nodes.length; i++) {
    const show = await dst.nodes[i]!.r.call('SHOW', id);
    if (show !== null) out.set(i, pairs(show));
  }
  return out;
}

async function totalQlen(c: TestCluster, queue: string): Promise<number> {
  let n = 0;
  for (const node of c.nodes) n += (await node.r.call('QLEN', queue)) as number;
  return n;
}

/** A consumer: GETJOB from its queues on one node, ACKJOB each job, record what it got. */
class Consumer {
  readonly got = new Map<string, { at: number; body: string; queue: string; nacks: number; deliveries: number; times: number }>();
  private stopped = false;
  private readonly loop: Promise<void>;
  constructor(
    private readonly r: Redis,
    queues: string[],
    opts: { count?: number; pauseMs?: number } = {},
  ) {
    this.loop = (async () => {
      while (!this.stopped) {
        if (opts.pauseMs) await new Promise((res) => setTimeout(res, opts.pauseMs));
        const jobs = (await r.call('GETJOB', 'TIMEOUT', '100', 'COUNT', String(opts.count ?? 20), 'WITHCOUNTERS', 'FROM', ...queues)) as
          | unknown[][]
          | null;
        if (!jobs) continue;
        for (const j of jobs) {
          const id = j[1] as string;
          const seen = this.got.get(id);
          this.got.set(id, {
            at: seen?.at ?? Date.now(),
            queue: j[0] as string,
            body: j[2] as string,
            nacks: j[4] as number,
            deliveries: j[6] as number,
            times: (seen?.times ?? 0) + 1,
          });
        }
        await r.call('ACKJOB', ...jobs.map((j) => j[1] as string));
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.r.disconnect();
  }
}

/** A producer adding a job every few ms to one node, until switched or stopped. */
class Producer {
  readonly bodies = new Map<string, string>();
  private r: Redis;
  private stopped = false;
  private n = 0;
  private readonly loop: Promise<void>;
  constructor(
    r: Redis,
    private readonly queue: string,
  ) {
    this.r = r;
    this.loop = (async () => {
      while (!this.stopped) {
        const body = `produced-${++this.n}`;
        const id = (await this.r.call('ADDJOB', this.queue, body, '5000', 'RETRY', '5', 'TTL', '300')) as string;
        this.bodies.set(id, body);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
  }
  /** Producers move to the target: the next ADDJOB goes there. */
  switchTo(r: Redis): void {
    const old = this.r;
    this.r = r;
    setTimeout(() => old.disconnect(), 1000);
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.r.disconnect();
  }
}

describe('IMPORTJOB in a cluster, with an ID whose node part names no node of it', () => {
  const foreign = () => `D-0badc0de-${randomBytes(18).toString('base64')}-05a1`;

  it('answers once the copies exist; federation serves it to another node, and an ACK there collects every copy', async () => {
    const q = 'imp-fed';
    const id = foreign();
    expect(await dst.nodes[0]!.r.call('IMPORTJOB', id, q, 'far away', '5000', 'REPLICATE', '2')).toBe(id);
    const copies = await targetCopies(id);
    expect(copies.size).toBe(2);
    const other = [0, 1, 2].find((i) => !copies.has(i))!;
    const got = (await dst.nodes[other]!.r.call('GETJOB', 'TIMEOUT', '10000', 'FROM', q)) as string[][];
    expect(got[0]!.slice(1)).toEqual([id, 'far away']);
    expect(await dst.nodes[other]!.r.call('ACKJOB', id)).toBe(1);
    await waitFor(async () => (await targetCopies(id)).size === 0, 'every copy is collected');
  });

  it('an ACK sent to a node without a copy (a dummy ack) reaches the holders and collects the job', async () => {
    const q = 'imp-dummy';
    const id = foreign();
    expect(await dst.nodes[1]!.r.call('IMPORTJOB', id, q, 'ack elsewhere', '5000', 'REPLICATE', '2')).toBe(id);
    const copies = await targetCopies(id);
    const other = [0, 1, 2].find((i) => !copies.has(i))!;
    // Queued where it was imported.
    expect(copies.get(1)!.state).toBe('queued');
    expect(((await dst.nodes[1]!.r.call('GETJOB', 'NOHANG', 'FROM', q)) as string[][])[0]![1]).toBe(id);
    expect(await dst.nodes[other]!.r.call('ACKJOB', id)).toBe(0);
    await waitFor(async () => (await targetCopies(id)).size === 0, 'the holders hear of the ACK and collect the job');
  });
});

describe('disque-migrate', () => {
  it('moves queued, delayed and delivered jobs with their IDs while producers and consumers switch over (--follow, Ctrl-C)', async () => {
    const work = 'mig-work';
    const later = 'mig-later';
    const bodies = new Map<string, string>();
    // Queued jobs on every source node, some with fewer copies.
    for (let i = 0; i < 150; i++) {
      const n = src.nodes[i % 3]!;
      const repl = i % 5 === 0 ? ['REPLICATE', '1'] : i % 5 === 1 ? ['REPLICATE', '2'] : [];
      const id = (await n.r.call('ADDJOB', work, `seed-${i}`, '5000', 'RETRY', '5', 'TTL', '300', ...repl)) as string;
      bodies.set(id, `seed-${i}`);
    }
    // Delayed jobs: none may be delivered before its delay ends.
    const delayedAt = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const at = Date.now();
      const id = (await src.nodes[i % 3]!.r.call('ADDJOB', later, `later-${i}`, '5000', 'DELAY', '6', 'RETRY', '5', 'TTL', '300')) as string;
      bodies.set(id, `later-${i}`);
      delayedAt.set(id, at);
    }

    // Two jobs being processed by consumers of the source: one will
    // acknowledge its job there, the other crashed and never will.
    const held = 'mig-held-follow';
    const slow = (await src.nodes[0]!.r.call('ADDJOB', held, 'slow', '5000', 'RETRY', '12', 'TTL', '300')) as string;
    const crashed = (await src.nodes[0]!.r.call('ADDJOB', held, 'crashed', '5000', 'RETRY', '12', 'TTL', '300')) as string;
    bodies.set(crashed, 'crashed');
    const taken = (await src.nodes[0]!.r.call('GETJOB', 'COUNT', '2', 'FROM', held)) as string[][];
    const takenAt = Date.now();
    expect(taken.map((j) => j[1]).sort()).toEqual([slow, crashed].sort());

    const producer = new Producer(client(src.nodes[2]!.server.port), work);
    // A slow consumer: most seeded jobs are still queued when the migration starts.
    const sourceConsumer = new Consumer(client(src.nodes[1]!.server.port), [work], { count: 1, pauseMs: 20 });
    const run = migrate(['--from', from(), '--to', to(), '--follow']);
    try {
      // Moving: the delayed jobs leave the source (and stay delayed on the target).
      await waitFor(async () => (await sourceJobs(later)).length === 0, 'the delayed jobs are moved', 20_000);
      for (const id of delayedAt.keys()) {
        const copies = await targetCopies(id);
        expect(copies.size).toBe(3);
        for (const show of copies.values()) {
          expect(show.state).toBe('active');
          expect(show.body).toBe(bodies.get(id));
        }
      }
      // Jobs being processed wait on the source for their consumer's ACK.
      expect((await sourceJobs(held)).sort()).toEqual([slow, crashed].sort());
      expect((await targetCopies(slow)).size).toBe(0);
      expect(await src.nodes[0]!.r.call('ACKJOB', slow)).toBe(1);

      // Switch producers, then consumers, to the target.
      producer.switchTo(client(dst.nodes[0]!.server.port));
      await sourceConsumer.stop();
      const targetConsumer = new Consumer(client(dst.nodes[2]!.server.port), [work, later, held]);
      try {
        await waitFor(async () => (await sourceJobs()).join() === crashed, 'the source has only the crashed job left', 20_000);
        run.interrupt();
        const { code, stdout } = await run.done;
        expect(code, stdout + run.stderr()).toBe(0);
        expect(stdout).toMatch(/^Moved \d+ of \d+ jobs found/);
        expect(stdout).toMatch(/delayed\s+10\b/);
        expect(stdout).toMatch(/delivered\s+1\b/);
        expect(Number(/queued\s+(\d+)/.exec(stdout)?.[1])).toBeGreaterThanOrEqual(50);
        await producer.stop();
        expect(await sourceJobs()).toEqual([]);
        // Acknowledged on the source while it waited there: never moved.
        expect((await targetCopies(slow)).size).toBe(0);

        for (const [id, body] of producer.bodies) bodies.set(id, body);
        await waitFor(
          () => [...bodies.keys()].every((id) => targetConsumer.got.has(id) || sourceConsumer.got.has(id)),
          'every job is delivered at least once',
          25_000,
        );
      } finally {
        await targetConsumer.stop();
      }
      // IDs unchanged: consumers got only the IDs producers were given, with their bodies.
      for (const c of [sourceConsumer, targetConsumer]) {
        for (const [id, got] of c.got) expect(got.body, id).toBe(bodies.get(id));
      }
      // The crashed consumer's job comes back on the target when the source
      // would have re-queued it; the job acknowledged on the source does not.
      const back = targetConsumer.got.get(crashed)!;
      expect(back.at - takenAt).toBeGreaterThanOrEqual(12_000 - 600);
      expect(back.deliveries).toBe(1);
      expect(targetConsumer.got.has(slow)).toBe(false);
      for (const [id, at] of delayedAt) {
        const got = targetConsumer.got.get(id);
        expect(got, id).toBeDefined();
        expect(got!.at - at, 'delivered after its delay').toBeGreaterThanOrEqual(6000 - 50);
      }
    } finally {
      run.interrupt();
      await producer.stop().catch(() => {});
      await sourceConsumer.stop().catch(() => {});
    }
  }, 90_000);

  it('moves a delivered job as delivered: it comes back on the target when the source would have re-queued it, counters kept', async () => {
    const q = 'mig-held';
    const consumer = client(src.nodes[0]!.server.port);
    // NACKed twice: nacks 2, queued again.
    const nacked = (await src.nodes[0]!.r.call('ADDJOB', q, 'nacked', '5000', 'RETRY', '6', 'TTL', '300')) as string;
    for (let k = 0; k < 2; k++) {
      expect(((await consumer.call('GETJOB', 'NOHANG', 'FROM', q)) as string[][])[0]![1]).toBe(nacked);
      expect(await consumer.call('NACK', nacked)).toBe(1);
    }
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await src.nodes[0]!.r.call('ADDJOB', q, `held-${i}`, '5000', 'RETRY', '6', 'TTL', '300')) as string);
    // The consumer takes every job and acknowledges none (it crashed).
    const taken = (await consumer.call('GETJOB', 'NOHANG', 'COUNT', '10', 'FROM', q)) as string[][];
    const deliveredAt = Date.now();
    expect(taken.map((j) => j[1]).sort()).toEqual([nacked, ...ids].sort());
    consumer.disconnect();

    const { code, stdout } = await migrate(['--from', from(), '--to', to(), '--queues', q]).done;
    expect(code, stdout).toBe(0);
    expect(stdout).toMatch(/delivered\s+4\b/);
    expect(await sourceJobs(q)).toEqual([]);
    for (const id of [...ids, nacked]) {
      const copies = await targetCopies(id);
      expect(copies.size, id).toBe(3);
      const within = Math.min(...[...copies.values()].map((s) => s['next-requeue-within'] as number));
      expect(within).toBeGreaterThan(0);
      expect(within).toBeLessThanOrEqual(6000);
    }
    expect(Math.max(...[...(await targetCopies(nacked)).values()].map((s) => s.nacks as number))).toBe(2);

    const target = client(dst.nodes[0]!.server.port);
    try {
      const got = new Map<string, unknown[]>();
      await waitFor(async () => {
        const jobs = (await target.call('GETJOB', 'TIMEOUT', '200', 'COUNT', '10', 'WITHCOUNTERS', 'FROM', q)) as unknown[][] | null;
        for (const j of jobs ?? []) {
          got.set(j[1] as string, j);
          await target.call('ACKJOB', j[1] as string);
        }
        return got.size === 4;
      }, 'the delivered jobs come back on the target', 20_000);
      // Not before the source would have re-queued them, one more delivery counted.
      expect(Date.now() - deliveredAt).toBeGreaterThanOrEqual(6000 - 600);
      expect(got.get(nacked)!.slice(2)).toEqual(['nacked', 'nacks', 2, 'additional-deliveries', 1]);
      for (const id of ids) expect(got.get(id)![6], id).toBe(1);
    } finally {
      target.disconnect();
    }
  }, 60_000);

  it('a rerun skips the jobs a stopped run had already copied, and the target ends with one of each', async () => {
    const q = 'mig-rerun';
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await src.nodes[i % 3]!.r.call('ADDJOB', q, `rerun-${i}`, '5000')) as string);
    // A run that stopped after copying 10 jobs and before deleting them from the source.
    for (const id of ids.slice(0, 10)) {
      let show: Record<string, unknown> | null = null;
      for (const n of src.nodes) {
        const s = await n.r.call('SHOW', id);
        if (s !== null) show = pairs(s);
      }
      expect(await dst.nodes[0]!.r.call('IMPORTJOB', id, q, show!.body as string, '5000', 'TTL', String(show!.ttl))).toBe(id);
    }

    const { code, stdout } = await migrate(['--from', from(), '--to', to(), '--queues', q]).done;
    expect(code, stdout).toBe(0);
    expect(stdout).toMatch(/Moved 20 of 30 jobs found/);
    expect(stdout).toMatch(/already on the target: 10/);
    expect(await sourceJobs(q)).toEqual([]);
    expect(await totalQlen(dst, q)).toBe(30);
    for (const id of ids) {
      const copies = [...(await targetCopies(id)).values()];
      expect(copies.filter((s) => s.state === 'queued'), id).toHaveLength(1);
    }
    // Once more: nothing left to move.
    const again = await migrate(['--from', from(), '--to', to(), '--queues', q]).done;
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Moved 0 of 0 jobs found/);
    expect(await totalQlen(dst, q)).toBe(30);
  }, 60_000);

  it('--dry-run counts what would move, per state and queue, and changes nothing', async () => {
    const q = 'mig-dry';
    const other = 'mig-dry-other';
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await src.nodes[i % 3]!.r.call('ADDJOB', q, `dry-${i}`, '5000')) as string);
    ids.push((await src.nodes[1]!.r.call('ADDJOB', q, 'dry-later', '5000', 'DELAY', '120')) as string);
    const otherId = (await src.nodes[1]!.r.call('ADDJOB', other, 'not asked for', '5000')) as string;
    const got = (await src.nodes[2]!.r.call('GETJOB', 'FROM', q)) as string[][];
    expect(got).toHaveLength(1);
    const before = (await sourceJobs()).sort();

    const { code, stdout } = await migrate(['--from', from(), '--to', to(), '--queues', q, '--dry-run']).done;
    expect(code, stdout).toBe(0);
    expect(stdout).toMatch(/^Dry run: 6 of 6 jobs found would be moved/);
    expect(stdout).toMatch(/queued\s+4\b/);
    expect(stdout).toMatch(/delayed\s+1\b/);
    expect(stdout).toMatch(/delivered\s+1\b/);
    expect(stdout).toMatch(/6\s+mig-dry\n/);
    expect((await sourceJobs()).sort()).toEqual(before);
    for (const id of [...ids, otherId]) expect((await targetCopies(id)).size, id).toBe(0);

    // Leave the source as the other tests expect it: empty.
    const { code: moved } = await migrate(['--from', from(), '--to', to(), '--queues', `${q},${other}`]).done;
    expect(moved).toBe(0);
    expect(await sourceJobs()).toEqual([]);
  }, 60_000);

  describe('into a target with requirepass', () => {
    let locked: ServerHandle;
    beforeAll(async () => {
      locked = await startServer({ config: { requirepass: 'wt28-pass' } });
    });
    afterAll(async () => {
      await locked?.destroy();
    });

    it('IMPORTJOB is refused without AUTH; the migration needs the password, and a job the target cannot replicate stays on the source', async () => {
      const q = 'mig-locked';
      const one = (await src.nodes[0]!.r.call('ADDJOB', q, 'single copy', '5000', 'REPLICATE', '1')) as string;
      const three = (await src.nodes[1]!.r.call('ADDJOB', q, 'three copies', '5000', 'REPLICATE', '3')) as string;
      const anonymous = client(locked.port);
      try {
        expect(await err(anonymous.call('IMPORTJOB', one, q, 'x', '0'))).toBe('NOAUTH Authentication required.');
      } finally {
        anonymous.disconnect();
      }
      const lockedAddr = `127.0.0.1:${locked.port}`;
      const refused = await migrate(['--from', from(), '--to', lockedAddr, '--queues', q]).done;
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/target: .*NOAUTH/);
      expect((await sourceJobs(q)).sort()).toEqual([one, three].sort());

      // The target has one node: REPLICATE 3 cannot be honoured there.
      const run = await migrate(['--from', from(), '--to', lockedAddr, '--queues', q], { DISQUE_TO_PASSWORD: 'wt28-pass' }).done;
      expect(run.code, run.stdout).toBe(1);
      expect(run.stdout).toMatch(/Moved 1 of 2 jobs found/);
      expect(run.stdout).toMatch(/NOREPL Not enough reachable nodes/);
      expect(run.stdout).toMatch(/Not moved, still on the source: 1 jobs/);
      expect(await sourceJobs(q)).toEqual([three]);
      const owner = new Redis({ port: locked.port, host: '127.0.0.1', protocol: 2, password: 'wt28-pass', maxRetriesPerRequest: 1 });
      try {
        expect(pairs(await owner.call('SHOW', one)).body).toBe('single copy');
      } finally {
        owner.disconnect();
      }
      // Clean up for the other tests.
      for (const n of src.nodes) await n.r.call('DELJOB', three);
    }, 60_000);
  });
});
