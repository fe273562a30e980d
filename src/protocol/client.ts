// A client as the layers above the server see it: somewhere to write replies
// and a wait that can end later (a blocking GETJOB, a synchronous ADDJOB).
// The server's Connection is the one implementation.
import type { ReplyBuffer } from './reply.js';

/** What a blocked client waits for, and how to end the wait. */
export interface Blocker {
  readonly kind: 'getjob' | 'addjob';
  /** The timeout passed: reply as the reference does. */
  timedOut(): void;
  /** The client went away while blocked. */
  disconnected(): void;
}

export interface Client {
  readonly id: number;
  /** Replies are written here, in request order. */
  readonly out: ReplyBuffer;
  /** Output written outside the client's own request: send it this turn. */
  markDirty(): void;
  /** Holds the client's later requests until unblock(); timeoutAt is a Date.now() time, 0 for never. */
  block(blocker: Blocker, timeoutAt: number): void;
  unblock(): void;
  /** The reply just written reports a journaled change: it waits for Redis. */
  journaled(): void;
}
