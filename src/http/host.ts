// What the HTTP layer sees of the node. The server builds the object that
// implements it (src/server/http-view.ts); src/http never imports the
// server, the cluster or persistence (docs/architecture.md).
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { JobStore } from '../core/store.js';
import type { Log2Histogram } from '../core/histogram.js';
import type { RespValue } from '../protocol/reply-reader.js';

/** A node of the cluster as this node knows it. */
export interface HttpPeer {
  id: string;
  ip: string;
  port: number;
  /** Its HTTP port as its PINGs say (0: none or not known yet). */
  httpPort: number;
  /** The node's state in the dashboard's words (worst flag first). */
  state: 'ok' | 'fail?' | 'fail' | 'leaving' | 'handshake' | 'noaddr';
  myself: boolean;
  /** We have a link to it (always true for myself). */
  connected: boolean;
  /**
   * Its bus link is still connecting, or it has not answered a message for
   * a while: likely cut off (a partition shows here before fail?).
   */
  silent?: boolean;
}

/** One command of the command table, for /metrics. */
export interface HttpCommandStats {
  readonly name: string;
  /** Microseconds per call since start. */
  readonly latency: Log2Histogram;
}

/** Persistence as the server reports it (see PersistenceStatus in src/persistence). */
export interface HttpPersistenceStatus {
  enabled: boolean;
  state: string;
  misconf: boolean;
  backlog: number;
  writesInFlight: number;
  journalRecords: number;
  journalBytes: number;
  lastSnapshotTime: number;
  lastSnapshotBytes: number;
  lastSnapshotJobs: number;
  lastSnapshotMs: number;
}

export interface HttpHost {
  readonly config: Config;
  readonly log: Logger;
  readonly store: JobStore;
  /** This node's ID (CLUSTER RESET HARD changes it). */
  readonly myId: string;
  readonly uptimeSeconds: number;
  /** Reloading persisted jobs (commands answer -LOADING). */
  readonly loading: boolean;
  /** The client listener is up. */
  readonly listening: boolean;
  /** The client port (the plain one, or the TLS one when that is all). */
  readonly port: number;
  readonly clientsConnected: number;
  readonly commandsProcessed: number;
  readonly connectionsReceived: number;
  commandStats(): Iterable<HttpCommandStats>;
  /** Every node of the table, myself included. */
  peers(): HttpPeer[];
  /** Nodes not in handshake, myself included; and peers reachable now (myself excluded). */
  readonly clusterSize: number;
  readonly reachablePeers: number;
  /** Bus messages by type name since start. */
  busMessages(): { type: string; received: number; sent: number }[];
  /** Milliseconds ADDJOB clients waited for replication, and how many timed out. */
  replicationWait(): { waitMs: Log2Histogram; timeouts: number };
  persistence(): HttpPersistenceStatus;
  /**
   * Runs a command through the node's command table as an authenticated
   * client whose address is `addr`, and gives its reply (after persistence
   * confirmed it, as a client's would be). Errors come as RespError values.
   */
  command(argv: string[], addr: string): Promise<RespValue>;
}
