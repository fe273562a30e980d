// What the cluster needs from the node that runs it. The server's Node
// implements this; the cluster never imports the server (docs/architecture.md).
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { JobStore } from '../core/store.js';

export interface ClusterHost {
  readonly config: Config;
  readonly log: Logger;
  readonly store: JobStore;
  /** The client port, once the node listens (the bus listens on it plus cluster-port-offset). */
  readonly port: number;
  /** The TLS client port (0: none), told to peers so HELLO can give it to TLS clients. */
  readonly tlsPort: number;
  /** The HTTP port (0: none), told to peers so a dashboard can ask every node. */
  readonly httpPort: number;
  /** After bus input was handled: serve blocked clients and write their replies. */
  afterEvent(): void;
  /** CLUSTER RESET drops the node's persisted jobs along with its memory. */
  dropPersistedJobs(): void;
}
