// What the core tests share: fake time that runs the store's scheduler.
import type { FakeClock } from '../../src/core/clock.js';
import type { JobStore } from '../../src/core/store.js';

/** Advances fake time in small steps, running the scheduler like the node does. */
export function run(store: JobStore, clock: FakeClock, ms: number, step = 10): void {
  const end = clock.now() + ms;
  while (clock.now() < end) {
    clock.advance(Math.min(step, end - clock.now()));
    store.processJobs();
  }
}
