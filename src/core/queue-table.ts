// The queues of this node by name, the clients blocked on them, and which
// queues got jobs while clients wait (the reference's queue.c and the
// blocking part of its GETJOB). Queues are made on first use and dropped
// when idle and empty. Moving jobs in and out of a queue is the store's.
import type { Clock } from './clock.js';
import { Queue, type QueueWaiter, QUEUE_FLAG_PAUSED_ALL, QUEUE_FLAG_PAUSED_IN, QUEUE_FLAG_PAUSED_OUT } from './queue.js';
import { ChunkPool, type RecordOrder } from './job-list.js';

/** An idle empty queue is dropped after this many seconds (less under memory pressure). */
export const QUEUE_MAX_IDLE_SECONDS = 300;
/** Estimated bytes of a queue beyond its name (the Queue object and its Map entry). */
export const QUEUE_MEMORY_OVERHEAD = 400;

export class QueueTable {
  private readonly byName = new Map<string, Queue>();
  /** Every queue in a dense array, for random sampling and QSCAN. */
  private readonly slots: Queue[] = [];
  /** Queues that received jobs while clients wait on them. */
  private ready = new Set<Queue>();
  private spare = new Set<Queue>();
  private readonly waiters = new Set<QueueWaiter>();
  private readonly chunks = new ChunkPool();
  private nameBytes = 0;

  constructor(
    private readonly clock: Clock,
    private readonly order: RecordOrder,
  ) {}

  get size(): number {
    return this.byName.size;
  }

  /** Bytes of the queues: their job lists and an estimate per queue. */
  get memoryBytes(): number {
    return this.chunks.chunkBytes + this.nameBytes;
  }

  lookup(name: string): Queue | undefined {
    return this.byName.get(name);
  }

  /** The queue by name, created if missing. */
  queueFor(name: string): Queue {
    let q = this.byName.get(name);
    if (!q) {
      q = new Queue(name, this.clock.now(), this.order, this.chunks);
      this.byName.set(name, q);
      q.slot = this.slots.length;
      this.slots.push(q);
      this.nameBytes += QUEUE_MEMORY_OVERHEAD + name.length;
    }
    return q;
  }

  destroy(q: Queue): void {
    if (q.slot < 0 || this.byName.get(q.name) !== q) return;
    this.byName.delete(q.name);
    const slots = this.slots;
    const last = slots.pop()!;
    if (last !== q) {
      slots[q.slot] = last;
      last.slot = q.slot;
    }
    q.slot = -1;
    q.jobs.clear();
    this.ready.delete(q);
    this.nameBytes -= QUEUE_MEMORY_OVERHEAD + q.name.length;
  }

  /** Drops the queue if empty, idle for `maxIdleSeconds`, unpaused and with nobody blocked. */
  gc(q: Queue, maxIdleSeconds: number): boolean {
    const idle = this.clock.now() - q.atime;
    if (idle < maxIdleSeconds * 1000) return false;
    if (q.waiters !== null && q.waiters.length !== 0) return false;
    if (q.jobs.size) return false;
    if (q.flags & QUEUE_FLAG_PAUSED_ALL) return false;
    this.destroy(q);
    return true;
  }

  /** Samples random queues and drops those idle for `maxIdleSeconds`; returns how many. */
  evictIdle(maxIdleSeconds: number, random: () => number): number {
    const start = this.clock.now();
    let sampled = 0;
    let evicted = 0;
    while (this.slots.length !== 0) {
      const q = this.slots[Math.floor(random() * this.slots.length)]!;
      sampled++;
      if (this.gc(q, maxIdleSeconds)) evicted++;
      // Stop when less than 10% of the sample could go, or after ~1 ms.
      if (sampled > 10 && evicted * 10 < sampled) break;
      if ((sampled + 1) % 1000 === 0 && this.clock.now() - start > 1) break;
    }
    return evicted;
  }

  /** Sets or clears pause flags; unpausing output serves blocked clients. */
  changePausedState(q: Queue, flag: number, set: boolean): void {
    const orig = q.flags;
    if (set) q.flags |= flag;
    else q.flags &= ~flag;
    if (orig & QUEUE_FLAG_PAUSED_OUT && !(q.flags & QUEUE_FLAG_PAUSED_OUT)) this.signalReady(q);
  }

  /** Applies a full pause state (the PAUSE message of another node). */
  setPausedState(name: string, flags: number): void {
    let q = this.byName.get(name);
    if (!q) {
      if ((flags & QUEUE_FLAG_PAUSED_ALL) === 0) return;
      q = this.queueFor(name);
    }
    this.changePausedState(q, QUEUE_FLAG_PAUSED_IN, (flags & QUEUE_FLAG_PAUSED_IN) !== 0);
    this.changePausedState(q, QUEUE_FLAG_PAUSED_OUT, (flags & QUEUE_FLAG_PAUSED_OUT) !== 0);
  }

  // ------------------------------------------------------- blocked clients

  /** Blocks the waiter on the named queues (creating them), in arrival order. */
  block(waiter: QueueWaiter, names: string[]): void {
    const on: Queue[] = [];
    for (const name of names) {
      const q = this.queueFor(name);
      if (on.includes(q)) continue;
      on.push(q);
      if (q.waiters === null) q.waiters = [];
      q.waiters.push(waiter);
    }
    waiter.blockedOn = on;
    this.waiters.add(waiter);
  }

  /** Removes the waiter from every queue it waits on. */
  unblock(waiter: QueueWaiter): void {
    const on = waiter.blockedOn;
    if (on === null) return;
    waiter.blockedOn = null;
    this.waiters.delete(waiter);
    for (const q of on) {
      const list = q.waiters;
      if (list === null) continue;
      const i = list.indexOf(waiter);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) {
        q.waiters = null;
        this.gc(q, QUEUE_MAX_IDLE_SECONDS);
      }
    }
  }

  /** Every blocked waiter (for LEAVING, which turns them away). */
  blockedWaiters(): QueueWaiter[] {
    return [...this.waiters];
  }

  get blockedCount(): number {
    return this.waiters.size;
  }

  /** The queue got jobs: clients blocked on it are served at the end of the event. */
  signalReady(q: Queue): void {
    if (q.waiters !== null && q.waiters.length !== 0) this.ready.add(q);
  }

  /**
   * Calls `serve` for each queue (still existing) signalled since the last
   * call. Queues signalled meanwhile wait for the next call.
   */
  eachReady(serve: (q: Queue) => void): void {
    if (this.ready.size === 0) return;
    const ready = this.ready;
    this.ready = this.spare;
    this.spare = ready;
    for (const q of ready) if (q.slot >= 0) serve(q);
    ready.clear();
  }

  // ------------------------------------------------------------------ scan

  /**
   * Cursor iteration over queues (QSCAN). The cursor counts down through the
   * dense array of queues: a removal moves the last queue into the hole, and
   * that one was already visited, so every queue present for a whole
   * iteration is returned (some maybe twice); new queues land past the cursor.
   */
  scan(cursor: number, visit: (q: Queue) => void, steps: () => boolean): number {
    const items = this.slots;
    let i = cursor === 0 || cursor > items.length ? items.length : cursor;
    while (i > 0) {
      if (!steps()) return i;
      i--;
      visit(items[i]!);
    }
    return 0;
  }

  all(): readonly Queue[] {
    return this.slots;
  }

  /** Drops every queue; blocked clients are answered as on timeout. */
  flushAll(): void {
    for (const waiter of [...this.waiters]) {
      this.unblock(waiter);
      waiter.flushed();
    }
    for (const q of [...this.slots]) this.destroy(q);
    this.ready.clear();
  }
}
