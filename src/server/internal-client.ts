// A client inside the node: the HTTP API (src/http) runs its actions through
// the command table with one of these, so they get exactly the replies,
// errors and checks (OOM, MISCONF, LOADING) a connected client gets, show
// in MONITOR, and count in the command statistics. It is authenticated
// (HTTP checked the password) and not listed by CLIENT LIST. Its reply is
// read back once the command is done, after a blocked wait (synchronous
// ADDJOB) and after persistence confirmed it, as for a connection.
import { ReplyBuffer } from '../protocol/reply.js';
import { readReply, type RespValue } from '../protocol/reply-reader.js';
import type { Blocker } from '../protocol/client.js';
import type { Queue } from '../core/queue.js';
import type { Job } from '../core/job.js';
import type { Call, CommandClient } from '../commands/context.js';
import type { Command } from './command-table.js';
import { replyJob } from '../commands/util.js';
import type { ConnectionHost } from './connection.js';

/** Internal clients' IDs count down from here, apart from connections'. */
let nextInternalId = 1_000_000_000;

export class InternalClient implements CommandClient {
  readonly id = nextInternalId++;
  readonly out = new ReplyBuffer();
  name: string | null = 'http';
  authenticated = true;
  readonly tls = false;
  withCounters = false;
  blockedOn: Queue[] | null = null;
  readonly pendingInput = 0;
  lastCommand = 'NULL';
  lastCmd: Command | undefined = undefined;
  lastCmdName = '';
  readonly call: Call;
  private blocker: Blocker | null = null;
  /** Its reply reports a journaled change (see Connection.flush). */
  private gateNeeded = false;
  private blockTimer: NodeJS.Timeout | null = null;
  private settle: ((v: RespValue) => void) | null = null;
  private fail: ((e: Error) => void) | null = null;

  constructor(
    private readonly node: ConnectionHost,
    /** Shown in MONITOR and the log: the HTTP peer's address. */
    readonly addr: string,
  ) {
    this.call = { node, client: this, argv: [], body: null, reply: this.out };
  }

  get blocked(): boolean {
    return this.blocker !== null;
  }

  /** Runs one command; resolves with its reply. One command per client. */
  run(argv: string[]): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
      this.node.execute(this, argv);
      this.node.afterEvent();
      if (this.blocker === null) this.finish();
    });
  }

  private finish(): void {
    const settle = this.settle;
    const fail = this.fail;
    if (settle === null || fail === null) return;
    this.settle = this.fail = null;
    const bytes = this.out.take();
    const read = () => {
      try {
        settle(readReply(bytes));
      } catch (e) {
        fail(e as Error);
      }
    };
    const gate = this.gateNeeded ? this.node.persistence.replyGate() : 0;
    if (gate === 0 || this.node.persistence.isReleased(gate)) read();
    else
      this.node.waitForRelease({
        releaseReplies: () => {
          if (!this.node.persistence.isReleased(gate)) return false;
          read();
          return true;
        },
      });
  }

  journaled(): void {
    this.gateNeeded = true;
  }

  markDirty(): void {
    // Replies are read when the command is done (finish).
  }

  block(blocker: Blocker, timeoutAt: number): void {
    this.blocker = blocker;
    if (timeoutAt > 0) {
      this.blockTimer = setTimeout(() => {
        this.blockTimer = null;
        if (this.blocker !== blocker) return;
        blocker.timedOut();
        this.node.afterEvent();
      }, Math.max(0, timeoutAt - Date.now()));
    }
  }

  unblock(): void {
    if (this.blocker === null) return;
    this.blocker = null;
    if (this.blockTimer !== null) {
      clearTimeout(this.blockTimer);
      this.blockTimer = null;
    }
    this.finish();
  }

  serve(job: Job): void {
    this.out.arrayLen(1);
    replyJob(this.out, job, this.withCounters);
    this.unblock();
  }

  flushed(): void {
    this.out.nullArray();
    this.unblock();
  }

  refuse(error: string): void {
    this.out.error(error);
    this.unblock();
  }

  closeAfterReplies(): void {}

  close(): void {
    if (this.blocker !== null) {
      const b = this.blocker;
      this.blocker = null;
      if (this.blockTimer !== null) clearTimeout(this.blockTimer);
      b.disconnected();
    }
  }

  info(): string {
    return `id=${this.id} addr=${this.addr} name=http cmd=${this.lastCommand}`;
  }
}
