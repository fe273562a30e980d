// Per-connection workload drivers.
//
// Each driver owns one Conn and runs a closed loop: write a batch of
// `pipeline` requests in one write, wait for all their replies, decide, write
// the next batch. pipeline=1 is the plain request/response client. Latency of
// a request = time its reply was read minus time its batch was written (what
// a pipelining client observes).
//
// Drivers never stop mid-batch: stop() only prevents the next batch, so a
// consumer always ACKs what it fetched and a producer always learns whether
// its last ADDJOBs succeeded; that is what makes the final count exact.
import { performance } from 'node:perf_hooks';
import type { Conn } from './conn.js';
import { Histogram, type HistogramData } from './histogram.js';
import { encode, RespError, type Reply } from './resp.js';
import type { ServerKind } from './conn.js';
import { makeBody, PID_DIGITS, seqOffsetInBody, SEQ_DIGITS, writeDigits, type ProducedData, type Tracker } from './tracker.js';

/**
 * Backlog cap for cycle/cross: producers park when the jobs they added minus
 * the jobs consumers took exceed `max`, and consumers wake them as they catch
 * up. Without it, producers (one round trip per job) outrun consumers (two:
 * GETJOB and ACKJOB) and the "cycle" would measure an ever-growing queue;
 * with it, the rate reported is the one the server sustains end to end.
 */
export class Flow {
  added = 0;
  taken = 0;
  private readonly parked: (() => void)[] = [];

  constructor(readonly max: number) {}

  /** True if the producer must wait; `wake` is called when it may go on. */
  mustWait(wake: () => void): boolean {
    if (this.max <= 0 || this.added - this.taken < this.max) return false;
    this.parked.push(wake);
    return true;
  }

  took(n: number): void {
    this.taken += n;
    while (this.parked.length > 0 && this.added - this.taken < this.max) this.parked.pop()!();
  }
}

/** Counters of one thread. Histograms are reset when measurement starts. */
export class Stats {
  produced = 0;
  consumed = 0;
  pings = 0;
  cmds = 0;
  errors = 0;
  /** Consume replies with no job (NOHANG poll or blocking timeout). */
  empty = 0;
  errorSamples: string[] = [];
  readonly add = new Histogram();
  readonly get = new Histogram();
  readonly ack = new Histogram();
  readonly ping = new Histogram();
  /** Never reset: for the progress display. */
  progress = 0;
  /** Set by consumers on the first empty reply while the queue was expected to be full. */
  onEmpty: (() => void) | null = null;

  error(e: RespError): void {
    this.errors++;
    if (this.errorSamples.length < 5 && !this.errorSamples.includes(e.message)) this.errorSamples.push(e.message);
  }

  reset(): void {
    this.produced = this.consumed = this.pings = this.cmds = this.errors = this.empty = 0;
    this.add.reset();
    this.get.reset();
    this.ack.reset();
    this.ping.reset();
  }

  snapshot(): StatsData {
    return {
      produced: this.produced,
      consumed: this.consumed,
      pings: this.pings,
      cmds: this.cmds,
      errors: this.errors,
      empty: this.empty,
      errorSamples: this.errorSamples.slice(),
      add: this.add.toData(),
      get: this.get.toData(),
      ack: this.ack.toData(),
      ping: this.ping.toData(),
    };
  }
}

export interface StatsData {
  produced: number;
  consumed: number;
  pings: number;
  cmds: number;
  errors: number;
  empty: number;
  errorSamples: string[];
  add: HistogramData;
  get: HistogramData;
  ack: HistogramData;
  ping: HistogramData;
}

export abstract class Driver {
  protected stopping = false;
  protected pending = 0;
  protected t0 = 0;
  private resolveDone: (() => void) | null = null;
  readonly done: Promise<void>;

  constructor(
    protected readonly conn: Conn,
    protected readonly stats: Stats,
    protected readonly pipeline: number,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    conn.onReply = (r) => this.reply(r);
    conn.onClose = (err) => {
      if (!this.stopping) this.stats.error(new RespError(`connection closed: ${err?.message ?? 'by server'}`));
      this.finish();
    };
  }

  start(): void {
    this.next();
  }

  /** Stops after the batch in flight. */
  stop(): void {
    this.stopping = true;
    // Idle (backoff timer or parked): finish now; the timer/wake sees `stopping`.
    if (this.pending === 0) this.finish();
  }

  protected send(buf: Buffer, n: number): void {
    this.pending = n;
    this.t0 = performance.now();
    this.conn.write(buf);
  }

  protected finish(): void {
    this.pending = 0;
    this.resolveDone?.();
    this.resolveDone = null;
  }

  /** Writes the next batch, or finishes if stopping. */
  protected abstract next(): void;
  protected abstract reply(r: Reply): void;
}

/** A batch of the same pre-encoded command repeated n times. */
function repeat(cmd: Buffer, n: number): Buffer {
  const b = Buffer.allocUnsafe(cmd.length * n);
  for (let i = 0; i < n; i++) cmd.copy(b, i * cmd.length);
  return b;
}

export class PingDriver extends Driver {
  private readonly batch: Buffer;
  constructor(conn: Conn, stats: Stats, pipeline: number) {
    super(conn, stats, pipeline);
    this.batch = repeat(encode(['PING']), pipeline);
  }
  protected next(): void {
    if (this.stopping) return this.finish();
    this.send(this.batch, this.pipeline);
  }
  protected reply(r: Reply): void {
    this.stats.cmds++;
    this.stats.ping.recordMs(this.conn.now - this.t0);
    if (r instanceof RespError) this.stats.error(r);
    else {
      this.stats.pings++;
      this.stats.progress++;
    }
    if (--this.pending === 0) this.next();
  }
}

export interface ProducerOptions {
  kind: ServerKind;
  queue: string;
  pid: number;
  bodySize: number;
  /** Disque ADDJOB <ms-timeout>. */
  addTimeoutMs: number;
  /** Disque REPLICATE n; 0 leaves the server default. */
  replicate: number;
  flow?: Flow;
}

/**
 * A pre-encoded ADDJOB/LPUSH whose body's seq digits are patched per copy:
 * building a batch is a memcpy plus 10 digit writes per job.
 */
export class AddTemplate {
  private readonly cmd: Buffer;
  private readonly seqAt: number;

  constructor(o: ProducerOptions) {
    const body = makeBody(o.pid, 0, o.bodySize);
    const args: (string | number)[] =
      o.kind === 'redis'
        ? ['LPUSH', o.queue, body]
        : ['ADDJOB', o.queue, body, o.addTimeoutMs, ...(o.replicate > 0 ? ['REPLICATE', o.replicate] : [])];
    this.cmd = encode(args);
    const bodyAt = this.cmd.indexOf(Buffer.from(body.slice(0, 1 + PID_DIGITS + 1), 'latin1'));
    this.seqAt = bodyAt + seqOffsetInBody;
  }

  /** n commands for seqs seq0..seq0+n-1, in one fresh buffer (never reused: the socket may still hold it). */
  batch(seq0: number, n: number): Buffer {
    const len = this.cmd.length;
    const b = Buffer.allocUnsafe(len * n);
    for (let i = 0; i < n; i++) {
      this.cmd.copy(b, i * len);
      writeDigits(b, i * len + this.seqAt, seq0 + i, SEQ_DIGITS);
    }
    return b;
  }
}

/**
 * ADDJOB q body timeout [REPLICATE n]   (Disque)
 * LPUSH q body                          (Redis baseline)
 * The command is encoded once; per batch we copy it and overwrite the seq
 * digits of each body in place.
 */
export class ProducerDriver extends Driver {
  private readonly template: AddTemplate;
  private seq = 0;
  private batchSeq = 0;
  private readonly failed: number[] = [];

  constructor(
    conn: Conn,
    stats: Stats,
    pipeline: number,
    private readonly o: ProducerOptions,
  ) {
    super(conn, stats, pipeline);
    this.template = new AddTemplate(o);
  }

  private readonly wake = (): void => this.next();

  protected next(): void {
    if (this.stopping) return this.finish();
    const flow = this.o.flow;
    if (flow !== undefined && flow.mustWait(this.wake)) return;
    const n = this.pipeline;
    if (flow !== undefined) flow.added += n;
    const b = this.template.batch(this.seq, n);
    this.batchSeq = this.seq;
    this.seq += n;
    this.send(b, n);
  }

  protected reply(r: Reply): void {
    const s = this.stats;
    s.cmds++;
    s.add.recordMs(this.conn.now - this.t0);
    if (r instanceof RespError) {
      s.error(r);
      this.failed.push(this.batchSeq + this.pipeline - this.pending);
      this.o.flow?.took(1); // never queued: do not count it as backlog
    } else {
      s.produced++;
      s.progress++;
    }
    if (--this.pending === 0) this.next();
  }

  /** What this producer sent and got answered, for the lost/duplicate check. */
  producedData(): ProducedData {
    // If the connection died mid-batch, the unanswered tail is unknown: count
    // those seqs as failed so they are neither expected nor "unexpected".
    const answered = this.pending === 0 ? this.seq : this.batchSeq + (this.pipeline - this.pending);
    const failed = this.failed.slice();
    for (let s = answered; s < this.seq; s++) failed.push(s);
    return { pid: this.o.pid, n: this.seq, failed };
  }
}

export interface ConsumerOptions {
  kind: ServerKind;
  queue: string;
  /** block: GETJOB TIMEOUT / BRPOP; nohang: GETJOB NOHANG / RPOP with a 1 ms backoff when all come back empty. */
  mode: 'block' | 'nohang';
  /** Blocking timeout; short so that stop() is honoured quickly on an idle queue. */
  blockMs: number;
  tracker: Tracker;
  flow?: Flow;
}

/**
 * Disque: GETJOB x pipeline, then one ACKJOB per fetched job as the next batch.
 * Redis: BRPOP (block) or RPOP (nohang) x pipeline; there is nothing to ack.
 * A job counts as consumed once acknowledged (Disque) or popped (Redis).
 */
export class ConsumerDriver extends Driver {
  private readonly getBatch: Buffer;
  private acking = false;
  private ids: string[] = [];
  private allEmpty = true;

  constructor(
    conn: Conn,
    stats: Stats,
    pipeline: number,
    private readonly o: ConsumerOptions,
  ) {
    super(conn, stats, pipeline);
    let cmd: (string | number)[];
    if (o.kind === 'redis') {
      cmd = o.mode === 'block' ? ['BRPOP', o.queue, (o.blockMs / 1000).toFixed(3)] : ['RPOP', o.queue];
    } else {
      cmd = o.mode === 'block' ? ['GETJOB', 'TIMEOUT', o.blockMs, 'FROM', o.queue] : ['GETJOB', 'NOHANG', 'FROM', o.queue];
    }
    this.getBatch = repeat(encode(cmd), pipeline);
  }

  protected next(): void {
    if (this.ids.length > 0) return this.sendAcks();
    if (this.stopping) return this.finish();
    if (this.o.mode === 'nohang' && this.allEmpty && this.t0 !== 0) {
      // The whole batch came back empty: back off instead of spinning the server.
      setTimeout(() => {
        if (this.stopping) return this.finish();
        this.sendGets();
      }, 1);
      return;
    }
    this.sendGets();
  }

  private sendGets(): void {
    this.acking = false;
    this.allEmpty = true;
    this.send(this.getBatch, this.pipeline);
  }

  private sendAcks(): void {
    // One ACKJOB per job, as a worker acknowledging each job it processed.
    let s = '';
    for (const id of this.ids) s += `*2\r\n$6\r\nACKJOB\r\n$${id.length}\r\n${id}\r\n`;
    const n = this.ids.length;
    this.ids = [];
    this.acking = true;
    this.send(Buffer.from(s, 'latin1'), n);
  }

  protected reply(r: Reply): void {
    const s = this.stats;
    s.cmds++;
    const lat = this.conn.now - this.t0;
    if (this.acking) {
      s.ack.recordMs(lat);
      if (r instanceof RespError) s.error(r);
      else {
        s.consumed++;
        s.progress++;
      }
    } else {
      s.get.recordMs(lat);
      this.gotJobs(r);
    }
    if (--this.pending === 0) this.next();
  }

  private gotJobs(r: Reply): void {
    const s = this.stats;
    if (r instanceof RespError) return s.error(r);
    if (this.o.kind === 'redis') {
      // BRPOP: [key, value] or nil; RPOP: value or nil.
      const body = Array.isArray(r) ? r[1] : r;
      if (typeof body !== 'string') return this.empty();
      this.allEmpty = false;
      this.o.tracker.markSeen(body);
      s.consumed++;
      s.progress++;
      this.o.flow?.took(1);
      return;
    }
    // GETJOB: array of [queue, id, body] or nil (NOHANG / timeout).
    if (!Array.isArray(r) || r.length === 0) return this.empty();
    this.allEmpty = false;
    for (const job of r) {
      const j = job as Reply[];
      this.o.tracker.markSeen(j[2] as string);
      this.ids.push(j[1] as string);
    }
    this.o.flow?.took(r.length);
  }

  private empty(): void {
    this.stats.empty++;
    this.stats.onEmpty?.();
  }
}
