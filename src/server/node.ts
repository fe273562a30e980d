// One running Disque node: wires the config, the job store, the cluster, the
// persistence layer and the client server together, and runs the periodic
// tasks (the reference's serverCron and processJobs timers). Nothing else
// holds global state.
import net from 'node:net';
import os from 'node:os';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { writeFileSync, unlinkSync } from 'node:fs';
import { Config } from '../config/config.js';
import { Logger } from '../config/log.js';
import { VERSION, SERVER_NAME } from '../config/version.js';
import { SystemClock, type Clock } from '../core/clock.js';
import { JobStore, PROCESS_JOBS_BUDGET_MS } from '../core/store.js';
import { Connection, type Requester, type ReleaseWaiter } from './connection.js';
import { holdableMemory, maxmemoryError } from './memory-limit.js';
import { AcceptBurst } from './accept-burst.js';
import { ClientListeners } from './listeners.js';
import { refuseInProtectedMode } from './protected-mode.js';
import { refuseConnection } from './refuse.js';
import { warmUpSteps } from './warmup.js';
import { CommandTable, type Command } from './command-table.js';
import type { CommandNode, SlowlogEntry, Stats } from '../commands/context.js';
import type { ClusterHost } from '../cluster/host.js';
import type { PersistenceHost } from '../persistence/host.js';
import type { ArgBytes, RequestLimits } from '../protocol/request.js';
import { ALL_COMMANDS } from '../commands/index.js';
import { Cluster } from '../cluster/cluster.js';
import { Persistence } from '../persistence/persistence.js';
import type { HttpServer } from '../http/server.js';
import { errors } from '../protocol/errors.js';

export interface NodeOptions {
  clock?: Clock;
  /** Compile the hot paths before taking clients (see warmup.ts); the bin does. */
  warmUp?: boolean;
  /** Skip process-wide effects (chdir, signal handlers, pid file) for in-process tests. */
  embedded?: boolean;
}

export class Node implements CommandNode, ClusterHost, PersistenceHost {
  readonly log = new Logger();
  readonly clock: Clock;
  readonly store: JobStore;
  readonly cluster: Cluster;
  readonly persistence: Persistence;
  readonly commands: CommandTable;
  readonly clients = new Set<Connection>();
  /** Clients that ran MONITOR: they see every command. */
  readonly monitors = new Set<Connection>();
  readonly slowlog: SlowlogEntry[] = [];
  private slowlogNextId = 0;
  /** LATENCY: samples per event over latency-monitor-threshold. */
  readonly latencyEvents = new Map<string, { time: number; ms: number }[]>();
  /** How the process ends after SHUTDOWN (the bin exits; tests do not). */
  exit: (code: number) => void = () => {};
  readonly stats: Stats = {
    connectionsReceived: 0,
    commandsProcessed: 0,
    netInputBytes: 0,
    netOutputBytes: 0,
    rejectedConnections: 0,
    opsSamples: [],
    lastSampleCommands: 0,
    lastSampleTime: Date.now(),
  };
  /** Garbage-collection pauses seen since start (INFO memory). */
  readonly gcStats = { count: 0, totalMs: 0, maxMs: 0 };
  private gcObserver: PerformanceObserver | null = null;
  readonly startTime = Date.now();
  readonly runId: string;
  readonly requestLimits: RequestLimits;
  outputHardLimit = 0;
  /** Date.now(), as of the last cron tick (client idle times need no more). */
  coarseNow = Date.now();
  /** Directives read on every command, kept here (CONFIG SET updates them). */
  private slowlogSlowerThan: number;
  private latencyThreshold: number;
  /** Set while reloading persisted jobs: most commands answer -LOADING. */
  loading = false;
  port = 0;
  get tlsPort(): number {
    return this.listeners.tlsPort;
  }
  /** The dashboard, /metrics and health checks (docs/http-api.md); null with http-port 0. */
  private http: HttpServer | null = null;
  /** The HTTP port bound, 0 for none. */
  get httpPort(): number {
    return this.http?.port ?? 0;
  }
  /** The client listeners are up. */
  listening = false;
  private readonly listeners: ClientListeners;
  private readonly acceptBurst = new AcceptBurst(() => this.clients);
  private cronTimer: NodeJS.Timeout | null = null;
  private jobsTimer: NodeJS.Timeout | null = null;
  /**
   * Connections with replies to write at the end of this turn (see
   * Connection.markDirty; one flushed early may be listed twice, and its
   * second flush finds nothing to write). An array emptied in place: a
   * Set's clear() made a new table every turn.
   */
  private readonly dirty: Connection[] = [];
  private flushScheduled = false;
  private cronLoops = 0;
  private shuttingDown = false;

  constructor(
    readonly config: Config,
    readonly opts: NodeOptions = {},
  ) {
    this.clock = opts.clock ?? new SystemClock();
    this.runId = randomHex(40);
    this.requestLimits = {
      maxQueryBuffer: config.int('client-query-buffer-limit'),
      maxBulkLen: config.int('proto-max-bulk-len'),
    };
    this.listeners = new ClientListeners(config, this.log, (s) => this.accept(s));
    this.cluster = new Cluster(this);
    this.store = new JobStore({
      clock: this.clock,
      myId: () => this.cluster.myself.id,
      maxmemory: config.int('maxmemory'),
    });
    this.store.evictOnPressure = config.str('maxmemory-policy') === 'acks';
    this.persistence = new Persistence(this);
    this.store.hooks = {
      ...this.cluster.storeHooks(),
      ...this.persistence.storeHooks(),
    };
    this.commands = new CommandTable(ALL_COMMANDS);
    for (const entry of config.list('rename-command')) {
      const [from, to] = entry.split(' ').map((w) => w.replace(/^"|"$/g, ''));
      this.commands.rename(from!, to ?? '');
    }
    this.slowlogSlowerThan = config.int('slowlog-log-slower-than');
    this.latencyThreshold = config.int('latency-monitor-threshold');
    this.watchConfig();
  }

  // -------------------------------------------------------------- startup

  async start(): Promise<void> {
    const cfg = this.config;
    this.log.setLevel(cfg.str('loglevel'));
    this.log.setFile(cfg.str('logfile'));
    this.log.notice(`${SERVER_NAME} ${VERSION} (Disque-compatible) starting, pid=${process.pid}`);
    this.outputHardLimit = this.parseOutputLimit();
    this.checkMaxmemory();

    this.cluster.init();
    // Address space for the jobs maxmemory allows, taken now (see blocks.ts).
    if (this.opts.warmUp) this.store.blocks.reserve(cfg.int('maxmemory'));
    // With jobs to load, HTTP first: /readyz answers (503, loading) meanwhile.
    // Else the clients' port opens first, and HTTP right after it.
    const loads = cfg.bool('appendonly') || cfg.bool('aof-enqueue-jobs-once');
    if (loads) await this.startHttp();
    try {
      await this.persistence.start();
    } catch (e) {
      this.http?.close();
      throw e;
    }

    try {
      await this.listeners.listen();
    } catch (e) {
      this.listeners.close();
      this.http?.close();
      throw e;
    }
    this.port = this.listeners.clientPort;
    this.listening = true;
    await this.cluster.listen();
    if (!loads) await this.startHttp();

    if (!this.opts.embedded) {
      const pidfile = cfg.str('pidfile');
      if (pidfile !== '') writeFileSync(pidfile, `${process.pid}\n`);
    }
    this.watchGc();
    this.scheduleCron();
    this.scheduleJobs(1);
    if (this.opts.warmUp) this.warmUpInSlices();
    const tlsPort = this.listeners.tlsPort;
    const ports = [this.listeners.plainPort !== 0 ? `port ${this.listeners.plainPort}` : '', tlsPort !== 0 ? `TLS port ${tlsPort}` : ''];
    this.log.notice(`Ready to accept connections on ${ports.filter((p) => p !== '').join(' and ')}`);
  }

  /** Runs the warm-up (warmup.ts) a slice per event-loop turn, clients served in between. */
  private warmUpInSlices(): void {
    const steps = warmUpSteps();
    const t0 = performance.now();
    const step = (): void => {
      if (this.shuttingDown) return;
      if (steps.next().done) this.log.verbose(`Warm-up done in ${Math.round(performance.now() - t0)} ms`);
      else setImmediate(step);
    };
    setImmediate(step);
  }

  /**
   * HTTP on http-port, or by default on the client port + 1000: an explicit
   * port that cannot be bound stops start-up (as the client port does); the
   * default one is skipped with a warning, so a port clash on something the
   * operator never asked for does not keep the queue from starting.
   */
  private async startHttp(): Promise<void> {
    const cfg = this.config;
    const configured = cfg.int('http-port');
    if (configured === 0) return;
    const derived = configured === -1;
    // The client port as configured (the TLS one when that is all); 0: the kernel picks it, no default HTTP port then.
    const clientPort = cfg.int('port') !== 0 ? cfg.int('port') : cfg.int('tls-port');
    if (derived && clientPort === 0) return;
    const port = derived ? clientPort + 1000 : configured;
    if (port > 65535) {
      this.log.warning(`No HTTP port: the client port + 1000 (${port}) is out of range; set http-port`);
      return;
    }
    // Loaded here, not at start-up: the node answers its clients sooner.
    const [{ HttpServer }, { NodeHttpView }] = await Promise.all([import('../http/server.js'), import('./http-view.js')]);
    const http = new HttpServer(new NodeHttpView(this));
    try {
      await http.listen(port, cfg.list('bind'));
    } catch (e) {
      if (!derived) throw new Error(`HTTP port ${port}: ${(e as Error).message}`);
      this.log.warning(`No dashboard: HTTP port ${port} (the client port + 1000) is not available (${(e as Error).message}); set http-port`);
      return;
    }
    this.http = http;
    const bind = cfg.list('bind')[0];
    const host = bind === undefined ? 'localhost' : bind === '0.0.0.0' || bind === '::' ? os.hostname() : bind.includes(':') ? `[${bind}]` : bind;
    this.log.notice(`Dashboard at http://${host}:${http.port}/ (metrics at /metrics)`);
  }

  /** Counts GC pauses: jobs live off the heap, so these should stay short whatever the node holds. */
  private watchGc(): void {
    const gc = this.gcStats;
    this.gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gc.count++;
        gc.totalMs += e.duration;
        if (e.duration > gc.maxMs) gc.maxMs = e.duration;
        if (e.duration >= 15) this.log.verbose(`Garbage collection paused the node for ${e.duration.toFixed(1)} ms`);
      }
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });
  }

  /** A maxmemory this process could not hold stops start-up (the default is lowered instead). */
  private checkMaxmemory(): void {
    const cfg = this.config;
    const tooMuch = maxmemoryError(cfg.int('maxmemory'));
    if (tooMuch === null) return;
    if (!cfg.isDefault('maxmemory')) throw new Error(tooMuch);
    const most = holdableMemory();
    this.log.warning(`The default maxmemory is more than this machine can hold: maxmemory set to ${most} bytes`);
    cfg.setValue('maxmemory', most);
  }

  private parseOutputLimit(): number {
    let hard = 0;
    for (const entry of this.config.list('client-output-buffer-limit')) {
      const w = entry.split(' ');
      if (w[0] === 'normal') hard = Number(w[1]) || 0;
    }
    return hard;
  }

  /** Runtime effects of CONFIG SET. */
  private watchConfig(): void {
    const cfg = this.config;
    cfg.onChange('loglevel', (v) => this.log.setLevel(v as string));
    cfg.onChange('maxmemory', (v) => {
      const tooMuch = maxmemoryError(v as number);
      if (tooMuch !== null) throw new Error(tooMuch);
      this.store.maxmemory = v as number;
      if (this.store.usedMemory > (v as number)) {
        this.log.warning('WARNING: the new maxmemory value set via CONFIG SET is smaller than the current memory usage.');
      }
      this.store.freeMemoryIfNeeded();
    });
    cfg.onChange('maxmemory-policy', (v) => {
      this.store.evictOnPressure = v === 'acks';
    });
    cfg.onChange('dir', (v) => {
      try {
        process.chdir(v as string);
      } catch (e) {
        throw new Error(`Changing directory: ${(e as NodeJS.ErrnoException).message}`);
      }
    });
    cfg.onChange('client-query-buffer-limit', (v) => {
      this.requestLimits.maxQueryBuffer = v as number;
    });
    cfg.onChange('proto-max-bulk-len', (v) => {
      this.requestLimits.maxBulkLen = v as number;
    });
    cfg.onChange('client-output-buffer-limit', () => {
      this.outputHardLimit = this.parseOutputLimit();
    });
    cfg.onChange('hz', () => this.scheduleCron());
    cfg.onChange('slowlog-log-slower-than', (v) => {
      this.slowlogSlowerThan = v as number;
    });
    cfg.onChange('latency-monitor-threshold', (v) => {
      this.latencyThreshold = v as number;
    });
  }

  // -------------------------------------------------------------- clients

  private accept(socket: net.Socket): void {
    this.stats.connectionsReceived++;
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    if (refuseInProtectedMode(this, socket)) return;
    if (this.clients.size >= this.config.int('maxclients')) {
      this.stats.rejectedConnections++;
      refuseConnection(socket, '-ERR max number of clients reached\r\n');
      return;
    }
    const keepalive = this.config.int('tcp-keepalive');
    if (keepalive > 0) socket.setKeepAlive(true, keepalive * 1000);
    const conn = new Connection(this, socket);
    this.clients.add(conn);
    this.acceptBurst.accepted(conn);
  }

  clientClosed(conn: Connection): void {
    this.clients.delete(conn);
    this.acceptBurst.forget(conn);
    this.monitors.delete(conn);
    this.releaseWaiters.delete(conn);
  }

  /** Runs one request of a client (the reference's processCommand). */
  execute(conn: Requester, argv: string[], bytes: ArgBytes | null = null): void {
    const out = conn.out;
    // A client mostly repeats one command: comparing its name with the last
    // one's costs less than hashing a new string for the table.
    const name = argv[0]!;
    let cmd = conn.lastCmd;
    if (cmd === undefined || name !== conn.lastCmdName) {
      cmd = this.commands.lookup(name);
      conn.lastCmd = cmd;
      conn.lastCmdName = name;
    }
    if (cmd === undefined && argv[0]!.toLowerCase() === 'quit') {
      out.ok();
      conn.closeAfterReplies();
      return;
    }
    if (!cmd) {
      out.error(`ERR unknown command '${argv[0]}'`);
      return;
    }
    conn.lastCommand = cmd.name;
    if (!cmd.arityOk(argv.length)) {
      out.error(`ERR wrong number of arguments for '${cmd.name}' command`);
      return;
    }
    if (!conn.authenticated && !cmd.isNoAuth) {
      out.error(errors.noauth);
      return;
    }
    // Over 95% of maxmemory, try to evict; refuse commands that need memory if that fails.
    if (!this.store.freeMemoryIfNeeded() && cmd.isDenyOom) {
      out.error(errors.oom);
      return;
    }
    const misconf = cmd.isWrite ? this.persistence.writeError(cmd.name) : null;
    if (misconf !== null) {
      out.error(`MISCONF Errors writing to Redis: ${misconf}`);
      return;
    }
    if (this.loading && !cmd.isLoading) {
      out.error(errors.loading);
      return;
    }
    // Long arguments came as bytes: the command's body stays bytes, any
    // other becomes a string as usual.
    const body = bytes === null ? null : takeBytes(argv, bytes, cmd.spec.bodyArg);
    if (this.monitors.size > 0) this.feedMonitors(conn, cmd.shown(withBody(argv, cmd, body)));
    const start = performance.now();
    const call = conn.call;
    call.argv = argv;
    call.body = body;
    const recorded = this.persistence.capturedRecords;
    try {
      cmd.spec.handler(call);
      // Its reply reports a change Redis must have first (see Connection.flush).
      if (this.persistence.capturedRecords !== recorded) conn.journaled();
    } catch (e) {
      this.log.warning(`Error running ${cmd.name}: ${(e as Error).stack ?? e}`);
      out.error('ERR internal error executing the command, see the server log');
    }
    call.body = null;
    const usec = (performance.now() - start) * 1000;
    cmd.calls++;
    cmd.usec += usec;
    cmd.latency.observe(usec);
    this.stats.commandsProcessed++;
    this.recordSlow(cmd, argv, body, usec);
    this.store.serveBlockedClients();
  }

  private feedMonitors(conn: Requester, argv: string[]): void {
    const now = Date.now();
    const line =
      `${Math.floor(now / 1000)}.${String((now % 1000) * 1000).padStart(6, '0')} [${conn.addr}] ` +
      argv.map((a) => JSON.stringify(a)).join(' ');
    for (const m of this.monitors) {
      if (m === conn) continue;
      m.out.status(line.replace(/[\r\n]/g, ' '));
      m.markDirty();
    }
  }

  /** SLOWLOG and LATENCY bookkeeping for one command. */
  private recordSlow(cmd: Command, argv: string[], body: Buffer | null, usec: number): void {
    const slower = this.slowlogSlowerThan;
    if (slower >= 0 && usec >= slower) {
      this.slowlog.unshift({
        id: this.slowlogNextId++,
        time: Math.floor(Date.now() / 1000),
        usec: Math.round(usec),
        argv: cmd.shown(withBody(argv, cmd, body)).slice(0, 32).map((a) => (a.length > 128 ? `${a.slice(0, 128)}... (${a.length - 128} more bytes)` : a)),
      });
      const max = this.config.int('slowlog-max-len');
      if (this.slowlog.length > max) this.slowlog.length = max;
    }
    const threshold = this.latencyThreshold;
    if (threshold > 0 && usec / 1000 >= threshold) this.latencySample(cmd.isFast ? 'fast-command' : 'command', Math.round(usec / 1000));
  }

  latencySample(event: string, ms: number): void {
    let samples = this.latencyEvents.get(event);
    if (!samples) this.latencyEvents.set(event, (samples = []));
    samples.push({ time: Math.floor(Date.now() / 1000), ms });
    if (samples.length > 160) samples.shift();
  }

  /** After any event (client data, bus message, timer): serve blocked clients and write out replies. */
  afterInput(): void {
    this.store.serveBlockedClients();
    this.store.flushSchedule();
  }

  afterEvent(): void {
    this.afterInput();
    const dirty = this.dirty;
    if (dirty.length > 0) {
      // A flush may mark others (appended, and flushed in this loop).
      for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
      dirty.length = 0;
    }
  }

  /** Clients holding replies until the journal releases their gate. */
  private readonly releaseWaiters = new Set<ReleaseWaiter>();

  waitForRelease(w: ReleaseWaiter): void {
    this.releaseWaiters.add(w);
  }

  /** PersistenceHost: journal writes were confirmed; held replies may go. */
  repliesReleased(): void {
    for (const w of this.releaseWaiters) if (w.releaseReplies()) this.releaseWaiters.delete(w);
  }

  private readonly flushDirty = (): void => {
    this.flushScheduled = false;
    this.afterEvent();
  };

  /** Output for a client produced outside its own request: write it this turn. */
  scheduleFlush(conn: Connection): void {
    this.dirty.push(conn);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushDirty);
  }

  /** ClusterHost: CLUSTER RESET drops persisted jobs too. */
  dropPersistedJobs(): void {
    this.persistence.flushAll();
  }

  // ----------------------------------------------------------------- cron

  private scheduleCron(): void {
    if (this.cronTimer !== null) clearInterval(this.cronTimer);
    const hz = this.config.int('hz');
    this.cronTimer = setInterval(() => this.cron(), Math.max(1, Math.floor(1000 / hz)));
    this.cronTimer.unref?.();
  }

  private everyMs(ms: number): boolean {
    const period = Math.max(1, Math.floor(1000 / this.config.int('hz')));
    return ms <= period || this.cronLoops % Math.floor(ms / period) === 0;
  }

  /** The reference's serverCron: stats, client timeouts, queue eviction, cluster cron. */
  private cron(): void {
    this.cronLoops++;
    const now = Date.now();
    this.coarseNow = now;
    if (this.everyMs(100)) {
      const elapsed = now - this.stats.lastSampleTime;
      if (elapsed > 0) {
        const ops = ((this.stats.commandsProcessed - this.stats.lastSampleCommands) * 1000) / elapsed;
        this.stats.opsSamples.push(ops);
        if (this.stats.opsSamples.length > 16) this.stats.opsSamples.shift();
      }
      this.stats.lastSampleCommands = this.stats.commandsProcessed;
      this.stats.lastSampleTime = now;
      this.store.evictIdleQueues();
      this.cluster.cron();
    }
    if (this.everyMs(1000)) {
      this.clientsCron(now);
      this.http?.cron(now);
    }
    this.persistence.cron();
    this.afterEvent();
  }

  private clientsCron(now: number): void {
    const timeout = this.config.int('timeout') * 1000;
    if (timeout > 0) {
      for (const c of this.clients) {
        if (!c.blocked && now - c.lastInteraction > timeout) {
          this.log.verbose(`Closing idle client id=${c.id}`);
          c.close();
        }
      }
    }
    this.cluster.clientsCron();
  }

  /** processJobs runs again after the delay it asks for (1-100 ms). */
  private scheduleJobs(delay: number): void {
    this.jobsTimer = setTimeout(() => {
      const next = this.store.processJobs(10_000, PROCESS_JOBS_BUDGET_MS);
      this.afterEvent();
      if (!this.shuttingDown) this.scheduleJobs(next);
    }, delay);
    this.jobsTimer.unref?.();
  }

  instantaneousOps(): number {
    const s = this.stats.opsSamples;
    if (s.length === 0) return 0;
    return Math.round(s.reduce((a, b) => a + b, 0) / s.length);
  }

  // ------------------------------------------------------------- shutdown

  /** Stops serving; with rewrite, writes a full snapshot first (SHUTDOWN REWRITE-AOF). */
  async shutdown(opts: { rewrite?: boolean } = {}): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.log.warning('User requested shutdown...');
    if (this.cronTimer !== null) clearInterval(this.cronTimer);
    if (this.jobsTimer !== null) clearTimeout(this.jobsTimer);
    this.gcObserver?.disconnect();
    this.listeners.close();
    this.listening = false;
    this.http?.close();
    await this.persistence.shutdown(opts.rewrite ?? false);
    await this.cluster.shutdown();
    for (const c of [...this.clients]) {
      c.flush();
      c.socket.destroy();
      c.close();
    }
    if (!this.opts.embedded) {
      const pidfile = this.config.str('pidfile');
      if (pidfile !== '') {
        try {
          unlinkSync(pidfile);
        } catch {
          /* already gone */
        }
      }
    }
    this.log.warning(`${SERVER_NAME} is now ready to exit, bye bye...`);
  }

  get uptimeSeconds(): number {
    return Math.floor((Date.now() - this.startTime) / 1000);
  }

  get hostname(): string {
    return os.hostname();
  }
}

function randomHex(n: number): string {
  let s = '';
  while (s.length < n) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

/** Turns arguments that came as bytes into strings, except the command's body argument, whose bytes it returns. */
function takeBytes(argv: string[], bytes: ArgBytes, bodyArg: number | undefined): Buffer | null {
  let body: Buffer | null = null;
  for (let i = 1; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === undefined) continue;
    if (i === bodyArg) body = b;
    else argv[i] = b.latin1Slice(0, b.length);
  }
  return body;
}

/** argv as MONITOR and SLOWLOG show it: with the body argument's bytes as a string. */
function withBody(argv: string[], cmd: Command, body: Buffer | null): string[] {
  if (body === null) return argv;
  const shown = argv.slice();
  shown[cmd.spec.bodyArg!] = body.latin1Slice(0, body.length);
  return shown;
}
