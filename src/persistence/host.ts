// What persistence needs from the node that runs it. The server's Node
// implements this; persistence never imports the server (docs/architecture.md).
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { JobStore } from '../core/store.js';

export interface PersistenceHost {
  readonly config: Config;
  readonly log: Logger;
  readonly store: JobStore;
  /** True while persisted jobs are reloaded: commands answer -LOADING. */
  loading: boolean;
  /** This node's ID names its keys; internId shares one string per known node ID. */
  readonly cluster: { readonly myself: { readonly id: string }; internId(id: string): string | null };
  /** After jobs were reloaded: serve blocked clients and write their replies. */
  afterEvent(): void;
  /** Replies held for the journal may go now (see Journal.replyGate). */
  repliesReleased(): void;
}
