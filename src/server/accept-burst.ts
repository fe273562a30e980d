// New connections first, while they keep coming.
//
// libuv (1.45 and later, so Node 20) accepts one connection per event-loop
// iteration, and an iteration of a busy node first serves every client that
// sent data. Fifty clients connecting at once to a loaded node (a benchmark
// starting, clients reconnecting after a failover) were accepted one
// iteration at a time: the last ones waited hundreds of milliseconds for
// their first reply, where the reference accepts up to a thousand per event.
// So when a connection arrives, reading from the clients is held: the next
// iterations have nothing but the listening socket to serve and accept one
// connection each, quickly. Reading resumes after an iteration that brought
// no new connection, or after BURST_MAX_MS whatever happens.

/** Longest hold, so a steady stream of connections cannot starve clients. */
const BURST_MAX_MS = 20;
/** Above this many clients a hold costs more (two epoll calls each) than it saves. */
const BURST_MAX_CLIENTS = 1024;

export interface Holdable {
  hold(on: boolean): void;
}

export class AcceptBurst {
  private active = false;
  private started = 0;
  private acceptedSince = 0;
  private readonly held = new Set<Holdable>();

  /** `clients`: every connected client (the new one included). */
  constructor(private readonly clients: () => { size: number; [Symbol.iterator](): Iterator<Holdable> }) {}

  /** A connection was just accepted. */
  accepted(conn: Holdable): void {
    const all = this.clients();
    if (all.size < 2 || all.size > BURST_MAX_CLIENTS) return;
    this.acceptedSince++;
    if (!this.active) {
      this.active = true;
      this.started = performance.now();
      for (const c of all) this.holdOne(c);
      setImmediate(this.check);
    } else {
      this.holdOne(conn);
    }
  }

  /** A client went away: nothing to release for it. */
  forget(conn: Holdable): void {
    this.held.delete(conn);
  }

  private holdOne(c: Holdable): void {
    if (this.held.has(c)) return;
    this.held.add(c);
    c.hold(true);
  }

  /** After each iteration of the burst: go on while connections arrive. */
  private readonly check = (): void => {
    if (this.acceptedSince > 0 && performance.now() - this.started < BURST_MAX_MS) {
      this.acceptedSince = 0;
      setImmediate(this.check);
      return;
    }
    this.active = false;
    this.acceptedSince = 0;
    for (const c of this.held) c.hold(false);
    this.held.clear();
  };
}
