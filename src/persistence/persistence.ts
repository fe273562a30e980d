// Persistence of this node's jobs to Redis (snapshots plus a journal),
// turned on by `appendonly yes`. This file is the interface the node uses;
// see the persistence issue for the behaviour it implements.
import type { Node } from '../server/node.js';
import type { StoreHooks } from '../core/store.js';

export class Persistence {
  constructor(private readonly node: Node) {}

  /** Journal hooks for the job store. */
  storeHooks(): StoreHooks {
    return {};
  }

  /** Loads the persisted state (if enabled) before the node serves clients. */
  async start(): Promise<void> {}

  /** Periodic work: flushing, snapshot triggers, reconnection. */
  cron(): void {}

  /** With `rewrite`, writes a full snapshot (SHUTDOWN REWRITE-AOF) before exiting. */
  async shutdown(_rewrite: boolean): Promise<void> {}

  /** DEBUG FLUSHALL: forget what is persisted for this node. */
  flushAll(): void {}

  /** BGREWRITEAOF: write a snapshot now; returns an error text or null. */
  startRewrite(): string | null {
    return 'ERR persistence to Redis is off (appendonly no)';
  }

  /**
   * A promise that resolves once every journal record produced so far is
   * confirmed by Redis, or null when nothing is pending (or appendfsync is
   * no). Client replies produced now wait for it.
   */
  replyGate(): Promise<void> | null {
    return null;
  }

  /** The reason writes currently fail, or null: write commands answer -MISCONF meanwhile. */
  writeError(): string | null {
    return null;
  }

  /** INFO Persistence fields. */
  info(): [string, string | number][] {
    return [
      ['loading', this.node.loading ? 1 : 0],
      ['aof_enabled', 0],
      ['aof_state', 'off'],
    ];
  }
}
