// Schedules against a real node, in compressed time (ticks every second):
// two scheduler processes enqueue each tick once, also when one is killed -9;
// parallel chains converge; a changed spec replaces the chain; after a
// downtime only the last missed tick is enqueued. Needs `npm run build`
// (the scheduler processes run dist/).
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { Disque, Scheduler, jsonCodec, bufferCodec } from '../../src/client/index.js';
import { spawnScheduler, TickConsumer, sleep, type SchedulerProcess } from '../fixtures/schedule-helpers.js';

let server: ServerHandle;
let client: Disque;
const procs: SchedulerProcess[] = [];
const schedulers: Scheduler[] = [];
const consumers: TickConsumer[] = [];

let n = 0;
const unique = (s: string) => `${s}-${process.pid}-${++n}`;

beforeAll(async () => {
  server = await startServer();
  client = new Disque({ nodes: server.port });
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill9()));
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
  await Promise.all(consumers.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  client?.disconnect();
  await server?.destroy();
});

/** Live tokens of a schedule on the node. */
async function tokens(queue: string): Promise<{ id: string; body: { lineage: string; tick: number; spec: unknown } }[]> {
  const out = [];
  for await (const j of client.jscan({ queue, reply: 'all', codec: bufferCodec })) {
    if (j.state !== 'acked') out.push({ id: j.id, body: JSON.parse(j.body.toString()) });
  }
  return out;
}

describe('two scheduler processes, one node', () => {
  it('a cron schedule: each tick exactly once over 30 s, the active process killed -9 half way', async () => {
    const name = unique('cron');
    const queue = unique('ticks');
    const consumer = new TickConsumer([server.port], queue);
    consumers.push(consumer);
    const cfg = { nodes: [server.port], name, queue, spec: { cron: '* * * * * *', tz: 'UTC' }, scheduler: { retry: 2 } };
    // Started together: both look for a chain at the same time.
    const a = spawnScheduler(cfg);
    const b = spawnScheduler(cfg);
    procs.push(a, b);
    await Promise.all([a.ready, b.ready]);
    const from = Date.now() + 3000;
    await sleep(15_000);
    // Kill the one enqueueing (the node hands tokens to either).
    const [killed, survivor] = a.ticks() >= b.ticks() ? [a, b] : [b, a];
    const byKilled = killed.ticks();
    await killed.kill9();
    const before = survivor.ticks();
    await sleep(15_000);
    const to = Date.now() - 4000; // ticks within RETRY of the end may still be on their way
    await waitFor(() => consumer.missing(from, to).length === 0, 'every tick of the window to arrive', 15_000).catch(() => {});
    const missing = consumer.missing(from, to);
    const dup = consumer.duplicates();
    console.log(
      `cron, 2 processes, 1 node: ${Math.floor((to - from) / 1000) + 1} ticks expected in the window, ` +
        `${consumer.ticks.size} seen in all, missing ${missing.length}, duplicates ${dup.extra}; ` +
        `killed process enqueued ${byKilled}, survivor ${before} before the kill and ${survivor.ticks() - before} after`,
    );
    expect(missing).toEqual([]);
    // A process killed between enqueueing a tick and passing its token on
    // makes one duplicate (Disque's at least once); killed anywhere else, none.
    expect(dup.extra).toBeLessThanOrEqual(1);
    expect(survivor.ticks() - before).toBeGreaterThan(10);
    // Both may have started a chain; one survived.
    expect((await tokens(`schedule:${name}`)).length).toBe(1);
  }, 60_000);

  it('killed in the crash window (tick enqueued, token not passed on): the other process enqueues that tick again, once', async () => {
    const name = unique('window');
    const queue = unique('ticks');
    const consumer = new TickConsumer([server.port], queue);
    consumers.push(consumer);
    const cfg = { nodes: [server.port], name, queue, spec: { every: 1 }, scheduler: { retry: 2 } };
    const a = spawnScheduler({ ...cfg, dieAtTick: 3 });
    procs.push(a);
    await a.ready;
    const from = Date.now() + 2500;
    // B starts once A is dead: started earlier, B (blocked on the token queue
    // first) could be handed the tokens and A would never reach its third tick.
    await a.exited;
    expect(a.ticks()).toBe(3);
    const b = spawnScheduler(cfg);
    procs.push(b);
    await b.ready;
    const last = a.events.filter((e) => e.event === 'tick').at(-1)!.tick as string;
    const bBefore = b.ticks();
    await waitFor(() => b.ticks() >= bBefore + 5, 'the other process goes on', 30_000);
    const to = Date.now() - 1500;
    const dup = consumer.duplicates();
    console.log(`crash window: ticks ${consumer.ticks.size}, missing ${consumer.missing(from, to).length}, duplicates ${dup.extra} (${dup.ticks.join(' ')})`);
    expect(consumer.missing(from, to)).toEqual([]);
    expect(dup.ticks).toEqual([last]);
    expect(dup.extra).toBe(1);
  }, 90_000);
});

describe('chains', () => {
  it('parallel chains converge on the smallest lineage; ticks go on with at most one duplicate', async () => {
    const name = unique('converge');
    const queue = unique('ticks');
    const consumer = new TickConsumer([server.port], queue);
    consumers.push(consumer);
    const s = new Scheduler(client, { retry: 2, reconcileInterval: 1, settle: 300 });
    schedulers.push(s);
    s.add(name, { every: 1 }, { queue });
    const dropped: string[] = [];
    s.on('chain', (c) => c.action === 'dropped' && dropped.push(c.lineage));
    await s.start();
    const [mine] = await tokens(`schedule:${name}`);
    // A rogue chain, as a partition would leave: same spec, smaller lineage, same ticks.
    await client.addJob(`schedule:${name}`, { ...mine!.body, lineage: '0000000000000000' }, {
      codec: jsonCodec(),
      delay: Math.max(0, Math.ceil((mine!.body.tick - Date.now()) / 1000)),
      retry: 2,
    });
    await waitFor(async () => dropped.length > 0, 'the scheduler drops the larger lineage', 5000);
    expect(dropped).toEqual([mine!.body.lineage]);
    const from = Date.now() + 2000;
    await sleep(5000);
    const live = await tokens(`schedule:${name}`);
    expect(live.map((t) => t.body.lineage)).toEqual(['0000000000000000']);
    expect(consumer.missing(from, Date.now() - 1500)).toEqual([]);
    expect(consumer.duplicates().extra).toBeLessThanOrEqual(1); // the tick both chains may have reached before the drop
  }, 40_000);

  it('a changed spec replaces the chain; the most recently started spec wins', async () => {
    const name = unique('respec');
    const queue = unique('ticks');
    const consumer = new TickConsumer([server.port], queue);
    consumers.push(consumer);
    const old = new Scheduler(client, { retry: 2 }).add(name, { every: 2 }, { queue });
    schedulers.push(old);
    await old.start();
    expect((await tokens(`schedule:${name}`))[0]!.body.spec).toEqual({ every: 2 });
    await sleep(50); // started strictly after the old chain
    // A new deploy: every 3 s. The old scheduler still runs (a rolling deploy).
    const fresh = new Scheduler(client, { retry: 2 }).add(name, { every: 3 }, { queue });
    schedulers.push(fresh);
    const replaced: string[] = [];
    fresh.on('chain', (c) => replaced.push(c.action));
    await fresh.start();
    expect(replaced[0]).toBe('replaced');
    const live = await tokens(`schedule:${name}`);
    expect(live.map((t) => t.body.spec)).toEqual([{ every: 3 }]);
    const since = Date.now();
    const after = () => [...consumer.ticks.keys()].map(Date.parse).filter((t) => t > since);
    await waitFor(() => after().length >= 3, 'three ticks of the new spec', 15_000);
    // Ticks since: multiples of 3 s only, whichever scheduler took the token.
    expect(after().every((t) => t % 3000 === 0)).toBe(true);
    expect(consumer.duplicates().extra).toBe(0);
  }, 30_000);

  it('after every scheduler was down, only the last missed tick is enqueued', async () => {
    const name = unique('missed');
    const queue = unique('ticks');
    const consumer = new TickConsumer([server.port], queue);
    consumers.push(consumer);
    const opts = { retry: 2, grace: 2 };
    const first = new Scheduler(client, opts).add(name, { every: 1 }, { queue });
    await first.start();
    await waitFor(() => consumer.ticks.size >= 2, 'two ticks', 6000);
    await first.stop();
    const downFrom = Date.now();
    await sleep(7000); // 7 ticks go by with nobody to take their token
    const second = new Scheduler(client, opts).add(name, { every: 1 }, { queue });
    schedulers.push(second);
    const missed: { from: string; to: string }[] = [];
    second.on('missed', (m) => missed.push(m));
    const restart = Date.now();
    await second.start();
    await waitFor(() => missed.length === 1, 'the missed ticks are reported', 10_000);
    const m = missed[0]!;
    // From the last missed tick on, ticks go on: wait until 3 s after the restart are in.
    const end = restart + 3000;
    await waitFor(() => Date.now() > end + 1500 && consumer.missing(Date.parse(m.to), end).length === 0, 'ticks after the restart', 15_000).catch(() => {});
    // The token waiting since the downtime was for tick `from`; nothing was
    // enqueued strictly between it and `to` (the last tick older than the
    // grace), and from `to` on every tick is there.
    const ticks = [...consumer.ticks.keys()].map(Date.parse).sort((x, y) => x - y);
    const from = Date.parse(m.from);
    const to = Date.parse(m.to);
    expect(from).toBeLessThan(downFrom + 1500);
    expect(to).toBeLessThanOrEqual(restart - 2000);
    expect(ticks.filter((t) => t >= from && t < to)).toEqual([]);
    expect(consumer.missing(to, end)).toEqual([]);
    expect(consumer.duplicates().extra).toBe(0);
  }, 60_000);
});
