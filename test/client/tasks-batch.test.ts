// Batches with callbacks: onSuccess / onComplete enqueued once, b.result();
// on one node, and on a 3-node cluster where the process that created the
// batch and worked on it is killed -9 with the batch half done.
import { describe, it, expect } from 'vitest';
import { waitFor } from '../helpers/server.js';
import { FETCH, clusterWithProcesses, gate, oneNodeClients, trackWorkers, unique } from '../helpers/tasks.js';
import { Disque, task, TaskFailedError } from '../../src/client/index.js';
import { release } from '../../src/client/batch.js';

const track = trackWorkers();

/** Resolves once no node of `clients` holds job `id` any more, or holds it only acknowledged. */
async function goneEverywhere(clients: Disque[], id: string): Promise<boolean> {
  for (const c of clients) {
    const job = await c.show(id);
    if (job !== null && job.state !== 'acked') return false;
  }
  return true;
}

describe('batches on one node', () => {
  const s = oneNodeClients();

  it('every call succeeds: b.result() has the results; onSuccess and onComplete each run once, after the last call', async () => {
    const square = task<number, number>(s.producer, unique('square'));
    const onSuccess = task<{ tag: string }, void>(s.producer, unique('on-success'));
    const onComplete = task<{ tag: string }, void>(s.producer, unique('on-complete'));
    const finishedCalls: number[] = [];
    const callbacks: string[] = [];
    track(task<number, number>(s.consumer, square.name).process((x) => (finishedCalls.push(x), x * x), { ...FETCH, concurrency: 3 }));
    track(task<{ tag: string }, void>(s.consumer, onSuccess.name).process((a) => void callbacks.push(`success ${a.tag} after ${finishedCalls.length}`), FETCH));
    track(task<{ tag: string }, void>(s.consumer, onComplete.name).process((a) => void callbacks.push(`complete ${a.tag} after ${finishedCalls.length}`), FETCH));
    const b = await square.batch([1, 2, 3, 4, 5], { onSuccess: { task: onSuccess, args: { tag: 's' } }, onComplete: { task: onComplete, args: { tag: 'c' } } });
    expect(b.ids).toHaveLength(5);
    expect(await b.result({ timeout: 15_000 })).toEqual([1, 4, 9, 16, 25]);
    await waitFor(() => callbacks.length === 2, 'both callbacks run', 15_000);
    expect(callbacks.sort()).toEqual(['complete c after 5', 'success s after 5']);
    // Once run, the callbacks are acknowledged: nothing can release them again.
    await waitFor(async () => (await goneEverywhere([s.producer], b.callbacks.onSuccess!)) && (await goneEverywhere([s.producer], b.callbacks.onComplete!)), 'the callbacks are acknowledged', 5000);
    expect(callbacks).toHaveLength(2);
  });

  it('a call fails: onComplete runs once, onSuccess is cancelled; b.result() throws TaskFailedError', async () => {
    const check = task<number, number>(s.producer, unique('check'));
    const onSuccess = task<null, void>(s.producer, unique('on-success'));
    const onComplete = task<null, void>(s.producer, unique('on-complete'));
    const callbacks: string[] = [];
    track(
      task<number, number>(s.consumer, check.name).process((x) => {
        if (x === 2) throw new Error('two is bad');
        return x;
      }, { ...FETCH, concurrency: 2 }),
    );
    track(task<null, void>(s.consumer, onSuccess.name).process(() => void callbacks.push('success'), FETCH));
    track(task<null, void>(s.consumer, onComplete.name).process(() => void callbacks.push('complete'), FETCH));
    const b = await check.batch([1, 2, 3], { onSuccess: { task: onSuccess, args: null }, onComplete: { task: onComplete, args: null } });
    await expect(b.result({ timeout: 15_000 })).rejects.toBeInstanceOf(TaskFailedError);
    const settled = await b.settled({ timeout: 15_000 });
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    await waitFor(() => callbacks.length === 1, 'onComplete runs', 15_000);
    expect(callbacks).toEqual(['complete']);
    expect(await goneEverywhere([s.producer], b.callbacks.onSuccess!)).toBe(true);
  });

  it('a revoked call counts as finished: onComplete runs, onSuccess is cancelled, its handle throws TaskRevokedError', async () => {
    const work = task<number, number>(s.producer, unique('work'));
    const onSuccess = task<null, void>(s.producer, unique('on-success'));
    const onComplete = task<null, void>(s.producer, unique('on-complete'));
    const callbacks: string[] = [];
    const ran: number[] = [];
    const b = await work.batch([1, 2], { onSuccess: { task: onSuccess, args: null }, onComplete: { task: onComplete, args: null } });
    // No worker yet: the first call is revoked while still queued.
    expect(await work.revoke(b.group.handles[0]!)).toBe(1);
    track(task<number, number>(s.consumer, work.name).process((x) => (ran.push(x), x), FETCH));
    track(task<null, void>(s.consumer, onSuccess.name).process(() => void callbacks.push('success'), FETCH));
    track(task<null, void>(s.consumer, onComplete.name).process(() => void callbacks.push('complete'), FETCH));
    const settled = await b.settled({ timeout: 15_000 });
    expect(settled[0]).toMatchObject({ status: 'rejected', reason: { name: 'TaskRevokedError' } });
    expect(settled[1]).toEqual({ status: 'fulfilled', value: 2 });
    await waitFor(() => callbacks.length === 1, 'onComplete runs', 15_000);
    expect(callbacks).toEqual(['complete']);
    expect(ran).toEqual([2]);
    expect(await goneEverywhere([s.producer], b.callbacks.onSuccess!)).toBe(true);
  });

  it('releasing a callback again while it runs, or after, does not deliver it again', async () => {
    const one = task<number, number>(s.producer, unique('one'));
    const onComplete = task<null, void>(s.producer, unique('on-complete'));
    const hold = gate();
    let runs = 0;
    const b = await one.batch([1], { onComplete: { task: onComplete, args: null } });
    track(
      task<null, void>(s.consumer, onComplete.name).process(async () => {
        runs++;
        await hold.promise;
      }, FETCH),
    );
    track(task<number, number>(s.consumer, one.name).process((x) => x, FETCH));
    await waitFor(() => runs === 1, 'the callback starts', 15_000);
    const id = b.callbacks.onComplete!;
    await release(s.producer, id); // as a worker completing the tally a second time would
    expect(await s.producer.show(id)).toMatchObject({ state: 'active' });
    expect(await s.producer.qlen(onComplete.queue)).toBe(0);
    hold.open();
    await waitFor(async () => goneEverywhere([s.producer], id), 'the callback is acknowledged', 5000);
    await release(s.producer, id).catch(() => {}); // gone: found on no node
    expect(await s.producer.qlen(onComplete.queue)).toBe(0);
    expect(runs).toBe(1);
  });

  it('refuses an empty batch and arguments JSON cannot carry before adding anything', async () => {
    const t = task<unknown, unknown>(s.producer, unique('refused'));
    await expect(t.batch([])).rejects.toThrow(/at least one call/);
    await expect(t.batch([1, new Date()])).rejects.toThrow(/args is a Date/);
    expect(await s.producer.qlen(t.queue)).toBe(0);
  });
});

describe('a batch in a 3-node cluster whose creating process is killed -9 half done', () => {
  const cl = clusterWithProcesses(3);
  const at = cl.at;

  it('the calls it held run again elsewhere; onSuccess and onComplete run exactly once', async () => {
    const suffix = unique('batch');
    const count = 6;
    const fixture = cl.spawnFixture('batch-worker.mjs', [String(cl.cluster().nodes[1]!.server.port), suffix, String(count)]);
    await fixture.waitFor(/^started /m, count, 'the process starts every call', 20_000);
    const [, , onSuccessId, onCompleteId] = /^batch (\S+) (\S+) (\S+)$/m.exec(fixture.output())!;
    await fixture.kill9();

    // Workers on the other nodes: the odd calls come back after their retry time (2 s).
    const rescued: number[] = [];
    const callbacks: string[] = [];
    track(task<number, number>(at(2), `item-${suffix}`).process((x) => (rescued.push(x), x), { ...FETCH, concurrency: count }));
    track(task<{ suffix: string }, void>(at(0), `done-${suffix}`).process((a, ctx) => void callbacks.push(`success ${a.suffix} ${ctx.job.id}`), FETCH));
    track(task<{ suffix: string }, void>(at(0), `finished-${suffix}`).process((a, ctx) => void callbacks.push(`complete ${a.suffix} ${ctx.job.id}`), FETCH));
    await waitFor(() => callbacks.length >= 2, 'both callbacks run', 40_000);
    expect(rescued.filter((x) => x % 2 === 1).sort()).toEqual([1, 3, 5]);
    expect(callbacks.sort()).toEqual([`complete ${suffix} ${onCompleteId}`, `success ${suffix} ${onSuccessId}`]);
    // Acknowledged on every node: no copy is left to be released a second time.
    const all = [at(0), at(1), at(2)];
    await waitFor(async () => (await goneEverywhere(all, onSuccessId!)) && (await goneEverywhere(all, onCompleteId!)), 'the callbacks are acknowledged everywhere', 15_000);
    expect(callbacks).toHaveLength(2);
  });
});
