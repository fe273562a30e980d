// Producers and consumers of a fault run, through the bundled client. Each
// starts on its own node and moves to another one when its node stops
// answering (a paused node never closes the connection, so only a command
// timeout tells). Every outcome goes into the History.
import { Disque, stringCodec } from '../src/client/index.js';
import { errorKind, type History } from './checker.js';

export interface WorkloadOptions {
  /** `host:port` of every node; worker i starts on node i % n. */
  nodes: string[];
  producers: number;
  consumers: number;
  queue: string;
  replicate: number;
  /** RETRY, seconds: at-least-once. */
  retrySec: number;
  /** ADDJOB's replication timeout, ms. */
  addTimeoutMs: number;
  /** A command with no reply by then failed (and the worker moves on). */
  commandTimeoutMs: number;
  /** Bodies start with it, so runs never mix. */
  tag: string;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Workload {
  private producing = true;
  private consuming = true;
  private readonly clients: Disque<string>[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly producerLoops: Promise<void>[] = [];

  constructor(
    private readonly o: WorkloadOptions,
    private readonly history: History,
  ) {}

  private client(i: number): Disque<string> {
    const n = this.o.nodes.length;
    const own = this.o.nodes[i % n]!;
    const c = new Disque<string>({
      nodes: [own, ...this.o.nodes.filter((a) => a !== own)],
      codec: stringCodec,
      preferBestNode: false,
      failoverTimeout: 5000,
      redis: { commandTimeout: this.o.commandTimeoutMs, connectTimeout: 2000 },
    });
    c.on('error' as never, () => {});
    this.clients.push(c);
    return c;
  }

  /** After a timeout: try another node the client knows. */
  private async moveOn(c: Disque<string>): Promise<void> {
    const here = c.node?.id;
    const others = c.knownNodes().filter((n) => n.id !== here && n.host !== '');
    if (others.length === 0) return;
    await c.moveTo(others[Math.floor(Math.random() * others.length)]!.id).catch(() => false);
  }

  start(): void {
    for (let i = 0; i < this.o.producers; i++) {
      const p = this.produce(i, this.client(i));
      this.producerLoops.push(p);
      this.loops.push(p);
    }
    for (let i = 0; i < this.o.consumers; i++) this.loops.push(this.consume(this.client(i)));
  }

  private async produce(i: number, c: Disque<string>): Promise<void> {
    const h = this.history;
    for (let seq = 0; this.producing; seq++) {
      const body = `${this.o.tag}:p${i}:${seq}`;
      h.sent.add(body);
      const t0 = performance.now();
      try {
        const id = await c.addJob(this.o.queue, body, {
          replicate: this.o.replicate,
          retry: this.o.retrySec,
          timeout: this.o.addTimeoutMs,
        });
        h.addAcked(id, body, performance.now() - t0, c.node?.port.toString());
      } catch (e) {
        const kind = errorKind(e);
        h.addFailed(kind);
        if (kind === 'client-timeout') await this.moveOn(c);
        // Errors that come at once (-MISCONF, refused connections) must not spin.
        await pause(100);
      }
    }
  }

  private async consume(c: Disque<string>): Promise<void> {
    const h = this.history;
    while (this.consuming) {
      try {
        const jobs = await c.getJob(this.o.queue, { count: 50, timeout: 200 });
        if (jobs.length === 0) continue;
        const node = c.node?.port.toString();
        for (const j of jobs) h.delivered(j.id, j.body, node);
        const ids = jobs.map((j) => j.id);
        try {
          await c.ackJob(ids);
          if (h.trace !== null) for (const id of ids) h.note(id, `acked on ${c.node?.port}`);
        } catch (e) {
          if (h.trace !== null) for (const id of ids) h.note(id, `ACKJOB on ${c.node?.port} failed: ${(e as Error).message}`);
          throw e;
        }
      } catch (e) {
        const kind = errorKind(e);
        h.consumerFailed(kind);
        if (kind === 'client-timeout') await this.moveOn(c);
        await pause(100);
      }
    }
  }

  /** Producers stop after their command in flight. */
  async stopProducers(): Promise<void> {
    this.producing = false;
    await Promise.all(this.producerLoops);
  }

  async stop(): Promise<void> {
    this.producing = false;
    this.consuming = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }
}
