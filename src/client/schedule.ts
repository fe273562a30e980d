// Periodic and cron jobs, agreed through Disque itself (docs/schedules.md).
//
// Each schedule has one token job circulating in queue `<prefix>:<name>`,
// added with DELAY until its tick. Every scheduler blocks on the token
// queues; the one that gets token(T) enqueues tick T's job, adds token(next
// tick), then ACKs token(T). A scheduler that dies in between leaves token(T)
// to be queued again after its RETRY, so another one enqueues the tick: late,
// not lost. Parallel chains (simultaneous starts, partitions) are found by
// JSCAN on every node and all but one are acknowledged away.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Disque } from './client.js';
import { bufferCodec, jsonCodec } from './codec.js';
import { ClientClosedError, NoReplError } from './errors.js';
import {
  normalizeSpec,
  nextTick,
  planTick,
  specKey,
  type NormalizedSpec,
  type ScheduleSpec,
} from './schedule-spec.js';
import type { Task } from './task.js';
import type { AddJobOptions, Job, NodeInfo } from './types.js';

export { nextTick, lastTickAtOrBefore, planTick, type ScheduleSpec, type EverySpec, type CronSpec, type TickPlan } from './schedule-spec.js';

/** The tick a scheduled job is for; the default arguments of a scheduled task. */
export interface ScheduleTick {
  /** Schedule name. */
  schedule: string;
  /** The tick time, ISO 8601 (UTC). */
  tick: string;
}

/** The body of a job a schedule adds to a plain queue (JSON). */
export interface ScheduledJobBody<D = unknown> extends ScheduleTick {
  /** The schedule's `data`, if given. */
  data?: D;
}

/** What a schedule enqueues at each tick: a task call, or a JSON job on a queue. */
export type ScheduleTarget<A = unknown> =
  | {
      task: Task<A, any>;
      /** The call's arguments, or a function of the tick. Default: the ScheduleTick itself. */
      args?: A | ((tick: ScheduleTick) => A);
      /** ADDJOB options of each call (over the task's defaults). */
      options?: Omit<AddJobOptions, 'codec'>;
    }
  | {
      queue: string;
      /** Put in the body's `data`, or a function of the tick. */
      data?: unknown;
      options?: Omit<AddJobOptions, 'codec'>;
    };

export interface SchedulerOptions {
  /** Token queues are `<prefix>:<schedule name>`. Default `'schedule'`. */
  prefix?: string;
  /**
   * RETRY of the tokens, seconds: how late a tick is when the scheduler that
   * took its token dies before finishing. Default 10.
   */
  retry?: number;
  /** Copies of each token (fewer when fewer nodes are reachable). Default 2. */
  replicate?: number;
  /** Seconds a tick may be late and still be enqueued; later ones are missed (see planTick). Default 60. */
  grace?: number;
  /** Seconds between scans of every node for parallel or lost chains. 0: only at start(). Default 60. */
  reconcileInterval?: number;
  /** Milliseconds a new chain waits before looking again for a parallel one made at the same time. Default 1000. */
  settle?: number;
  /** Milliseconds each blocking GETJOB on the token queues waits; stop() may wait this long. Default 1000. */
  fetchTimeout?: number;
}

export interface SchedulerEvents {
  /** A tick's job was added. */
  tick: [tick: ScheduleTick, jobId: string];
  /** Ticks from `from` to before `to` were missed; `to` was enqueued in their place. */
  missed: [info: { schedule: string; from: string; to: string }];
  /** This scheduler started a chain, replaced one with another spec, or acknowledged a parallel one away. */
  chain: [info: { schedule: string; action: 'created' | 'replaced' | 'dropped'; lineage: string }];
  error: [error: unknown];
  stopped: [];
}

/** What a token carries: enough for any scheduler to act on it. */
interface TokenBody {
  v: 1;
  schedule: string;
  spec: NormalizedSpec;
  /** When this spec started its chain (ms): the most recently started spec wins. */
  specAt: number;
  /** Tick time, ms. */
  tick: number;
  /** Random ID of the chain: of parallel chains, the smallest lineage survives. */
  lineage: string;
}

interface LiveToken {
  id: string;
  body: TokenBody;
}

interface Entry {
  name: string;
  queue: string;
  spec: NormalizedSpec;
  key: string;
  target: ScheduleTarget<any>;
}

/** Tokens wait at most this long at once; a later tick is handed on to a new token. */
const MAX_TOKEN_DELAY = 30 * 24 * 3600;
/** How long a due token stays alive with no scheduler running. */
const TOKEN_KEEP = 7 * 24 * 3600;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

function parseToken(job: Job<Buffer>): TokenBody | undefined {
  try {
    const b = JSON.parse(job.body.toString('utf8')) as TokenBody;
    if (b.v !== 1 || typeof b.schedule !== 'string' || typeof b.tick !== 'number' || typeof b.lineage !== 'string') return undefined;
    b.spec = normalizeSpec(b.spec);
    return b;
  } catch {
    return undefined;
  }
}

/** Of two live tokens, the one to keep: newest spec, then smallest lineage, then latest tick. */
function better(a: LiveToken, b: LiveToken): LiveToken {
  if (a.body.specAt !== b.body.specAt) return a.body.specAt > b.body.specAt ? a : b;
  if (a.body.lineage !== b.body.lineage) return a.body.lineage < b.body.lineage ? a : b;
  if (a.body.tick !== b.body.tick) return a.body.tick > b.body.tick ? a : b;
  return a.id < b.id ? a : b;
}

/**
 * Runs schedules: add() them, then start(). Run one in every worker process;
 * each tick is enqueued by one of them.
 */
export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly entries = new Map<string, Entry>();
  private readonly byQueue = new Map<string, Entry>();
  private readonly opts: Required<SchedulerOptions>;
  private readonly stop_ = new AbortController();
  private fetcher: Disque | undefined;
  private readonly scanners = new Map<string, Disque>();
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private startedAt = 0;
  private stopping: Promise<void> | undefined;
  private readonly tokenCodec = jsonCodec<TokenBody>();

  constructor(
    private readonly client: Disque<any>,
    options: SchedulerOptions = {},
  ) {
    super();
    this.opts = {
      prefix: options.prefix ?? 'schedule',
      retry: options.retry ?? 10,
      replicate: options.replicate ?? 2,
      grace: options.grace ?? 60,
      reconcileInterval: options.reconcileInterval ?? 60,
      settle: options.settle ?? 1000,
      fetchTimeout: options.fetchTimeout ?? 1000,
    };
    if (!Number.isInteger(this.opts.retry) || this.opts.retry < 1) throw new RangeError(`retry must be a whole number of seconds >= 1, got ${this.opts.retry}`);
    if (!Number.isInteger(this.opts.replicate) || this.opts.replicate < 1) throw new RangeError(`replicate must be a positive integer, got ${this.opts.replicate}`);
  }

  /** Declares a schedule (before start()). The same name, spec and target go in every process. */
  add<A>(name: string, spec: ScheduleSpec, target: ScheduleTarget<A>): this {
    if (this.loop) throw new Error('add() schedules before start()');
    if (name === '' || this.entries.has(name)) throw new RangeError(`schedule name ${JSON.stringify(name)} is empty or taken`);
    const n = normalizeSpec(spec);
    const e: Entry = { name, queue: `${this.opts.prefix}:${name}`, spec: n, key: specKey(n), target };
    this.entries.set(name, e);
    this.byQueue.set(e.queue, e);
    return this;
  }

  /** The token queue of a schedule. */
  tokenQueue(name: string): string {
    return `${this.opts.prefix}:${name}`;
  }

  /**
   * Makes sure each schedule has one chain (creating or replacing it), then
   * takes tokens until stop(). Resolves once the chains are checked.
   */
  async start(): Promise<void> {
    if (this.loop || this.stop_.signal.aborted) return;
    if (this.entries.size === 0) throw new Error('no schedule added');
    this.startedAt = Date.now();
    this.fetcher = this.client.duplicate({ followProducers: false }).withCodec(bufferCodec);
    this.loop = this.fetchLoop().catch((e) => this.report(e));
    await this.reconcileAll();
    this.plan();
  }

  /** Stops taking tokens. A token being handled is finished first; the chains go on in other schedulers. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stop_.abort();
    clearTimeout(this.timer);
    await Promise.allSettled([this.loop, this.reconciling]);
    const clients = [...this.scanners.values(), ...(this.fetcher ? [this.fetcher] : [])];
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    this.scanners.clear();
    this.emit('stopped');
  }

  // ---- taking tokens ------------------------------------------------------

  private async fetchLoop(): Promise<void> {
    const fetcher = this.fetcher!;
    const queues = [...this.byQueue.keys()];
    let failures = 0;
    while (!this.stop_.signal.aborted) {
      let jobs: Job<Buffer>[];
      try {
        jobs = await fetcher.getJob(queues, { count: 16, timeout: this.opts.fetchTimeout, withCounters: true });
        failures = 0;
      } catch (e) {
        if (this.stop_.signal.aborted || e instanceof ClientClosedError) break;
        this.report(e);
        await sleep(Math.min(5000, 250 * 2 ** failures++), this.stop_.signal);
        continue;
      }
      // Tokens taken are handled even when stopping: each is a tick due now.
      for (const job of jobs) {
        try {
          await this.handle(job);
        } catch (e) {
          // The token stays unacknowledged: queued again after RETRY.
          this.report(e);
        }
      }
    }
  }

  private async handle(job: Job<Buffer>): Promise<void> {
    const entry = this.byQueue.get(job.queue);
    const body = parseToken(job);
    if (!entry || !body || body.schedule !== entry.name) {
      this.report(new Error(`job ${job.id} in token queue ${job.queue} is not a token of this schedule: acknowledged`));
      await this.ack(job.id);
      return;
    }
    // Keep the token while we work on it, should a node or the network be slow.
    const every = Math.max(250, this.opts.retry * 500 - 250);
    const heartbeat = setInterval(() => void this.fetcher!.working(job.id).catch(() => {}), every);
    try {
      await this.handleToken(entry, job, body);
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async handleToken(entry: Entry, job: Job<Buffer>, body: TokenBody): Promise<void> {
    // A deploy changed the spec: the most recently started spec wins.
    if (specKey(body.spec) !== entry.key && body.specAt < this.startedAt) {
      await this.newChain(entry, 'replaced');
      await this.ack(job.id);
      return;
    }
    let now = Date.now();
    if (body.tick > now + 1000) {
      // Taken early: a far tick waits in steps of MAX_TOKEN_DELAY, or clocks differ.
      await this.addToken({ ...body });
      await this.ack(job.id);
      return;
    }
    if (body.tick > now) await sleep(body.tick - now);
    now = Date.now();

    const redelivered = (job.nacks ?? 0) + (job.additionalDeliveries ?? 0) > 0;
    if (redelivered) {
      // The scheduler that had this token before may have gone as far as
      // adding the next one: then this tick was enqueued already.
      const live = await this.liveTokens(entry);
      if (live.some((t) => t.id !== job.id && t.body.lineage === body.lineage && t.body.tick > body.tick)) {
        await this.ack(job.id);
        return;
      }
    } else {
      // Acknowledged by a scheduler that found it in a parallel chain.
      const shown = await this.fetcher!.show(job.id).catch(() => undefined);
      if (shown === null || shown?.state === 'acked') return;
    }

    const plan = planTick(body.spec, body.tick, now, this.opts.grace * 1000);
    const tick: ScheduleTick = { schedule: entry.name, tick: new Date(plan.fire).toISOString() };
    const jobId = await this.fire(entry, tick);
    if (plan.missedFrom !== undefined) {
      this.emit('missed', { schedule: entry.name, from: new Date(plan.missedFrom).toISOString(), to: tick.tick });
    }
    this.emit('tick', tick, jobId);
    await this.addToken({ ...body, tick: plan.next });
    await this.ack(job.id);
  }

  /** Adds the tick's job. */
  private fire(entry: Entry, tick: ScheduleTick): Promise<string> {
    const t = entry.target;
    const value = (v: unknown, dflt: unknown) => (typeof v === 'function' ? v(tick) : v === undefined ? dflt : v);
    if ('task' in t) return t.task.enqueue(value(t.args, tick), t.options ?? {});
    const body: ScheduledJobBody = { ...tick, ...(t.data === undefined ? {} : { data: value(t.data, undefined) }) };
    return this.client.addJob<ScheduledJobBody>(t.queue, body, { ...t.options, codec: jsonCodec<ScheduledJobBody>() });
  }

  // ---- tokens -------------------------------------------------------------

  /** ADDJOB of a token, delayed to its tick, with as many copies as the cluster can hold. */
  private async addToken(body: TokenBody): Promise<string> {
    const delay = Math.min(MAX_TOKEN_DELAY, Math.max(0, Math.ceil((body.tick - Date.now()) / 1000)));
    const reachable = this.client.knownNodes().filter((n) => n.priority < 10).length;
    let replicate = Math.max(1, Math.min(this.opts.replicate, reachable || 1));
    for (;;) {
      try {
        return await this.client.addJob(this.tokenQueue(body.schedule), body, {
          codec: this.tokenCodec,
          delay,
          retry: this.opts.retry,
          ttl: delay + TOKEN_KEEP,
          replicate,
        });
      } catch (e) {
        if (!(e instanceof NoReplError) || replicate === 1) throw e;
        replicate--; // fewer nodes are reachable than HELLO said
      }
    }
  }

  private async ack(id: string): Promise<void> {
    try {
      await this.fetcher!.ackJob(id);
    } catch {
      await this.client.ackJob(id);
    }
  }

  /** Starts a chain with a new lineage at the first tick after the settle time. */
  private async newChain(entry: Entry, action: 'created' | 'replaced'): Promise<void> {
    const now = Date.now();
    const lineage = randomBytes(8).toString('hex');
    await this.addToken({
      v: 1,
      schedule: entry.name,
      spec: entry.spec,
      specAt: now,
      tick: nextTick(entry.spec, now + 2 * this.opts.settle),
      lineage,
    });
    this.emit('chain', { schedule: entry.name, action, lineage });
  }

  // ---- finding chains -----------------------------------------------------

  /** Every live token of the schedule, on every node that answers (JSCAN). */
  private async liveTokens(entry: Entry): Promise<LiveToken[]> {
    // HELLO refreshes the known nodes (with the address of the one answering,
    // which often does not know its own IP).
    await this.client.hello().catch(() => undefined);
    const nodes = this.client.knownNodes();
    const found = new Map<string, LiveToken>();
    const acked = new Set<string>();
    await Promise.all(
      nodes
        .filter((n) => n.host !== '')
        .map(async (n) => {
          try {
            for await (const j of this.scanner(n).jscan({ queue: entry.queue, reply: 'all', codec: bufferCodec })) {
              if (j.state === 'acked') acked.add(j.id);
              const body = parseToken({ id: j.id, queue: j.queue, body: j.body });
              if (body && body.schedule === entry.name) found.set(j.id, { id: j.id, body });
            }
          } catch {
            // An unreachable node: its tokens, if any, have copies elsewhere or
            // show up at the next reconciliation.
          }
        }),
    );
    return [...found.values()].filter((t) => !acked.has(t.id));
  }

  /** A client pinned to one node, for its node-local JSCAN. */
  private scanner(n: NodeInfo): Disque {
    let c = this.scanners.get(n.id);
    if (!c) {
      c = this.client.duplicate({
        nodes: [{ host: n.host, port: n.port }],
        discover: false,
        preferBestNode: false,
        followProducers: false,
        failoverTimeout: 1500,
      }).withCodec(bufferCodec);
      this.scanners.set(n.id, c);
    }
    return c;
  }

  /**
   * One chain per schedule: none found, start one; one with an older spec,
   * replace it; several, acknowledge all but the best (see better()). A new
   * chain looks again after the settle time for one started at the same time.
   */
  private async reconcile(entry: Entry, again = true): Promise<void> {
    const live = await this.liveTokens(entry);
    if (this.stop_.signal.aborted) return;
    const stale = live.filter((t) => specKey(t.body.spec) !== entry.key && t.body.specAt < this.startedAt);
    const current = live.filter((t) => !stale.includes(t));
    if (stale.length > 0) await this.client.ackJob(stale.map((t) => t.id));
    if (current.length === 0) {
      await this.newChain(entry, stale.length > 0 ? 'replaced' : 'created');
      if (again) {
        await sleep(this.opts.settle, this.stop_.signal);
        if (!this.stop_.signal.aborted) await this.reconcile(entry, false);
      }
      return;
    }
    const keep = current.reduce(better);
    const drop = current.filter((t) => t !== keep);
    if (drop.length > 0) {
      await this.client.ackJob(drop.map((t) => t.id));
      for (const l of new Set(drop.map((t) => t.body.lineage))) {
        if (l !== keep.body.lineage) this.emit('chain', { schedule: entry.name, action: 'dropped', lineage: l });
      }
    }
  }

  private reconcileAll(): Promise<void> {
    this.reconciling = Promise.all(
      [...this.entries.values()].map((e) => this.reconcile(e).catch((err) => this.report(err))),
    ).then(() => undefined);
    return this.reconciling;
  }

  /** The next periodic reconciliation, with jitter so schedulers do not scan together. */
  private plan(): void {
    const s = this.opts.reconcileInterval;
    if (s <= 0 || this.stop_.signal.aborted) return;
    this.timer = setTimeout(() => {
      void this.reconcileAll().then(() => this.plan());
    }, s * 1000 * (0.75 + Math.random() / 2));
    this.timer.unref?.();
  }

  private report(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else console.error('[disque-ts scheduler]', error);
  }
}

/**
 * A Scheduler for one schedule: `schedule(client, 'report', { cron: '0 5 * * tue' },
 * { task: report }).start()`.
 */
export function schedule<A>(
  client: Disque<any>,
  name: string,
  spec: ScheduleSpec,
  target: ScheduleTarget<A>,
  options?: SchedulerOptions,
): Scheduler {
  return new Scheduler(client, options).add(name, spec, target);
}
