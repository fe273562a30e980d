// Cancelling a running task call from another node: the handler runs on a
// worker connected to node A, the call is revoked through node B; the
// worker notices, aborts the handler's signal (JobRevokedError), sends no
// result and no next chain step, and the caller's handle throws
// TaskRevokedError.
import { describe, it, expect } from 'vitest';
import { waitFor } from '../helpers/server.js';
import { FETCH, clusterWithProcesses, trackWorkers, unique } from '../helpers/tasks.js';
import { JobRevokedError, TaskRevokedError, task } from '../../src/client/index.js';

const c = clusterWithProcesses(2);
const track = trackWorkers();

describe('revoke a running call across nodes', () => {
  it.each(['handle', 'task by ID'] as const)('revoked through node B (%s) while its handler runs on node A', async (how) => {
    const name = unique('revoke-running');
    const nextName = unique('revoke-next');
    const a = c.at(0);
    const b = c.at(1);
    let reason: unknown;
    let handlerNode: string | undefined;
    let nextRuns = 0;
    const worker = track(
      task<number, number>(a, name).process(
        (n, ctx) =>
          new Promise<number>((resolve) => {
            handlerNode = ctx.nodeId;
            // Returns a value anyway: the worker must not deliver it.
            ctx.signal.addEventListener('abort', () => ((reason = ctx.signal.reason), resolve(n)));
          }),
        { ...FETCH, revocationCheck: 300 },
      ),
    );
    track(task<number, number>(a, nextName).process((n) => (nextRuns++, n), FETCH));
    // REPLICATE 2: node B holds a copy, so the revoker reads the call there.
    const caller = task<number, number>(b, name, { defaults: { replicate: 2 } });
    const r = await caller.then(task<number, number>(b, nextName)).enqueue(7, { result: { ttl: 60 } });
    await waitFor(() => handlerNode !== undefined, 'the handler runs', 10_000);
    expect(handlerNode).toBe(c.cluster().nodes[0]!.id);
    const t0 = Date.now();
    if (how === 'handle') await r.revoke();
    else expect(await task(b, name).revoke(r.id)).toBe(1);
    await expect(r.result({ timeout: 10_000 })).rejects.toBeInstanceOf(TaskRevokedError);
    await waitFor(() => reason !== undefined, "the handler's signal is aborted", 5000);
    expect(Date.now() - t0).toBeLessThan(300 + 1500);
    expect(reason).toBeInstanceOf(JobRevokedError);
    await waitFor(() => worker.stats().revoked === 1 && worker.stats().inFlight === 0, 'the worker lets the job go', 5000);
    expect(worker.stats()).toMatchObject({ completed: 0, failed: 0 });
    // No next step: give it the time a chain step would take.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(nextRuns).toBe(0);
  }, 30_000);
});
