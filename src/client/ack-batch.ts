// Acknowledging in batches: the jobs whose handlers returned during one turn
// of the event loop are acknowledged together, one ACKJOB with all their IDs
// per node, sent at the end of the turn (setImmediate). A job only joins a
// batch once its handler has returned, so at-least-once holds: a worker that
// dies before the ACKJOB leaves its jobs to be delivered again.

interface Batch {
  ids: string[];
  done: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

export class AckBatch {
  private readonly pending = new Map<string | undefined, Batch>();
  private scheduled = false;

  /** `send` acknowledges `ids` delivered by node `nodeId`; it rejects if none could be. */
  constructor(private readonly send: (nodeId: string | undefined, ids: string[]) => Promise<unknown>) {}

  /** Adds a job to this turn's ACKJOB for its node; resolves once that ACKJOB replied. */
  add(nodeId: string | undefined, id: string): Promise<void> {
    let b = this.pending.get(nodeId);
    if (!b) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      b = { ids: [], done, resolve, reject };
      this.pending.set(nodeId, b);
    }
    b.ids.push(id);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return b.done;
  }

  /** Sends every pending batch now. */
  flush(): void {
    this.scheduled = false;
    const batches = [...this.pending];
    this.pending.clear();
    for (const [nodeId, b] of batches) this.send(nodeId, b.ids).then(b.resolve, b.reject);
  }
}
