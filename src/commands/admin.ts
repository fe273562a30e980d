// Server commands: AUTH, PING, INFO, TIME, COMMAND, CONFIG, CLIENT, DEBUG,
// SHUTDOWN, MONITOR, SLOWLOG, LATENCY, BGREWRITEAOF.
import os from 'node:os';
import type { Call, CommandSpec, CommandEntry } from './context.js';
import { largeBuffers, type ReplyBuffer } from '../protocol/reply.js';
import { errors } from '../protocol/errors.js';
import { VERSION, SERVER_NAME } from '../config/version.js';
import { DIRECTIVE_BY_NAME } from '../config/directives.js';
import { intArg, eq, checkPassword } from './util.js';
import { QUEUE_MEMORY_OVERHEAD } from '../core/queue-table.js';
import { JOB_RECORD_BYTES } from '../core/records.js';

function auth(call: Call): void {
  const pass = call.node.config.str('requirepass');
  if (pass === '') return call.reply.error('ERR Client sent AUTH, but no password is set');
  if (checkPassword(call, call.argv[1]!, 'AUTH')) {
    call.client.authenticated = true;
    call.reply.ok();
  } else {
    call.client.authenticated = false;
    call.reply.error('ERR invalid password');
  }
}

function ping(call: Call): void {
  if (call.argv.length > 2) return call.reply.error("ERR wrong number of arguments for 'ping' command");
  if (call.argv.length === 1) call.reply.status('PONG');
  else call.reply.bulk(call.argv[1]!);
}

function time(call: Call): void {
  const us = BigInt(Date.now()) * 1000n + (process.hrtime.bigint() / 1000n) % 1000n;
  call.reply.arrayLen(2);
  call.reply.bulk(String(us / 1000000n));
  call.reply.bulk(String(us % 1000000n));
}

// ------------------------------------------------------------------ INFO

function bytesToHuman(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(2)}K`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)}M`;
  if (n < 1024 ** 4) return `${(n / 1024 ** 3).toFixed(2)}G`;
  return `${(n / 1024 ** 4).toFixed(2)}T`;
}

type Fields = [string, string | number][];

function infoSections(call: Call): Record<string, () => Fields> {
  const node = call.node;
  const { store } = node;
  return {
    server: () => [
      ['disque_version', VERSION],
      ['disque_git_sha1', '00000000'],
      ['disque_git_dirty', 0],
      ['disque_build_id', '0'],
      ['server_implementation', SERVER_NAME],
      ['os', `${os.type()} ${os.release()} ${os.arch()}`],
      ['arch_bits', process.arch.includes('64') ? 64 : 32],
      ['multiplexing_api', 'libuv'],
      ['node_version', process.versions.node],
      ['process_id', process.pid],
      ['run_id', node.runId],
      ['tcp_port', node.port],
      ['uptime_in_seconds', node.uptimeSeconds],
      ['uptime_in_days', Math.floor(node.uptimeSeconds / 86400)],
      ['hz', node.config.int('hz')],
      ['executable', process.argv[1] ?? ''],
      ['config_file', node.config.file ?? ''],
    ],
    clients: () => [
      ['connected_clients', node.clients.size],
      ['client_longest_output_list', 0],
      ['client_biggest_input_buf', Math.max(0, ...[...node.clients].map((c) => c.pendingInput))],
      ['blocked_clients', [...node.clients].filter((c) => c.blocked).length],
    ],
    memory: () => {
      const rss = process.memoryUsage.rss();
      const m = store.memory();
      const gc = node.gcStats;
      return [
        ['used_memory', m.used],
        ['used_memory_human', bytesToHuman(m.used)],
        ['used_memory_rss', rss],
        ['used_memory_peak', store.peakMemory],
        ['used_memory_peak_human', bytesToHuman(store.peakMemory)],
        ['mem_fragmentation_ratio', m.used > 0 ? (rss / m.used).toFixed(2) : '0.00'],
        ['mem_allocator', 'disque-ts-arena'],
        // What used_memory is made of (jobs live off the V8 heap, see DESIGN.md).
        ['used_memory_records', m.records],
        ['used_memory_arena', m.arenaUsed],
        ['used_memory_index', m.index],
        ['used_memory_schedule', m.schedule],
        ['used_memory_queues', m.queues],
        ['arena_allocated', m.arenaAllocated],
        ['arena_free', m.arenaFree],
        ['arena_rounding', m.arenaRounding],
        // Large reply buffers kept for reuse (see reply.ts), free for the next large reply.
        ['reply_buffers_idle', largeBuffers.idleBytes],
        ['used_memory_v8_heap', process.memoryUsage().heapUsed],
        ['gc_count', gc.count],
        ['gc_pause_total_ms', gc.totalMs.toFixed(1)],
        ['gc_pause_max_ms', gc.maxMs.toFixed(1)],
        ['maxmemory', store.maxmemory],
        ['maxmemory_human', bytesToHuman(store.maxmemory)],
      ];
    },
    jobs: () => [['registered_jobs', store.jobCount]],
    queues: () => [['registered_queues', store.queueCount]],
    persistence: () => node.persistence.info(),
    stats: () => [
      ['total_connections_received', node.stats.connectionsReceived],
      ['total_commands_processed', node.stats.commandsProcessed],
      ['instantaneous_ops_per_sec', node.instantaneousOps()],
      ['total_net_input_bytes', node.stats.netInputBytes],
      ['total_net_output_bytes', node.stats.netOutputBytes],
      ['instantaneous_input_kbps', '0.00'],
      ['instantaneous_output_kbps', '0.00'],
      ['rejected_connections', node.stats.rejectedConnections],
      ['latest_fork_usec', 0],
    ],
    cpu: () => {
      const u = process.cpuUsage();
      return [
        ['used_cpu_sys', (u.system / 1e6).toFixed(2)],
        ['used_cpu_user', (u.user / 1e6).toFixed(2)],
        ['used_cpu_sys_children', '0.00'],
        ['used_cpu_user_children', '0.00'],
      ];
    },
    commandstats: () =>
      node.commands
        .all()
        .filter((c) => c.calls > 0)
        .map((c): [string, string] => [
          `cmdstat_${c.name}`,
          `calls=${c.calls},usec=${Math.round(c.usec)},usec_per_call=${(c.usec / c.calls).toFixed(2)}`,
        ]),
  };
}

const DEFAULT_SECTIONS = ['server', 'clients', 'memory', 'jobs', 'queues', 'persistence', 'stats', 'cpu'];

function info(call: Call): void {
  if (call.argv.length > 2) return call.reply.error(errors.syntax);
  const section = (call.argv[1] ?? 'default').toLowerCase();
  const sections = infoSections(call);
  const names =
    section === 'all' ? [...DEFAULT_SECTIONS, 'commandstats'] : section === 'default' ? DEFAULT_SECTIONS : [section];
  const parts: string[] = [];
  for (const name of names) {
    const gen = sections[name];
    if (!gen) continue;
    const title = name === 'cpu' ? 'CPU' : name[0]!.toUpperCase() + name.slice(1);
    parts.push(`# ${title}\r\n` + gen().map(([k, v]) => `${k}:${v}\r\n`).join(''));
  }
  call.reply.bulk(parts.join('\r\n'));
}

// --------------------------------------------------------------- COMMAND

function replyCommand(out: ReplyBuffer, cmd: CommandEntry | undefined): void {
  if (!cmd) return out.nullBulk();
  out.arrayLen(6);
  out.bulk(cmd.name);
  out.int(cmd.arity);
  const flags = ['write', 'readonly', 'denyoom', 'admin', 'random', 'loading', 'skip_monitor', 'fast'].filter((f) =>
    cmd.flags.has(f as never),
  );
  out.arrayLen(flags.length);
  for (const f of flags) out.status(f);
  out.int(0);
  out.int(0);
  out.int(0);
}

function command(call: Call): void {
  const { argv, reply } = call;
  const table = call.node.commands;
  if (argv.length === 1) {
    const all = table.all();
    reply.arrayLen(all.length);
    for (const c of all) replyCommand(reply, c);
  } else if (eq(argv[1]!, 'info')) {
    reply.arrayLen(argv.length - 2);
    for (let i = 2; i < argv.length; i++) replyCommand(reply, table.lookup(argv[i]!.toLowerCase()));
  } else if (eq(argv[1]!, 'count') && argv.length === 2) {
    reply.int(table.size);
  } else {
    reply.error('ERR Unknown subcommand or wrong number of arguments.');
  }
}

// ---------------------------------------------------------------- CONFIG

function config(call: Call): void {
  const { argv, reply } = call;
  const cfg = call.node.config;
  const sub = argv[1]!.toLowerCase();
  const arity = (n: number) => {
    if (argv.length !== n) {
      reply.error(`ERR Wrong number of arguments for CONFIG ${argv[1]}`);
      return false;
    }
    return true;
  };
  if (sub === 'get') {
    if (!arity(3)) return;
    const pairs = cfg.matching(argv[2]!);
    reply.arrayLen(pairs.length * 2);
    for (const [k, v] of pairs) {
      reply.bulk(k);
      reply.bulk(v);
    }
  } else if (sub === 'set') {
    if (argv.length < 4 || argv.length % 2 !== 0) {
      return reply.error(`ERR Wrong number of arguments for CONFIG ${argv[1]}`);
    }
    const pairs: [string, string][] = [];
    for (let j = 2; j < argv.length; j += 2) pairs.push([argv[j]!, argv[j + 1]!]);
    const err = cfg.setMany(pairs);
    if (err !== undefined) return reply.error(err.startsWith('ERR ') ? err : `ERR ${err}`);
    reply.ok();
  } else if (sub === 'resetstat') {
    if (!arity(2)) return;
    const s = call.node.stats;
    s.connectionsReceived = 0;
    s.commandsProcessed = 0;
    s.netInputBytes = 0;
    s.netOutputBytes = 0;
    s.rejectedConnections = 0;
    for (const c of call.node.commands.all()) {
      c.calls = 0;
      c.usec = 0;
    }
    reply.ok();
  } else if (sub === 'rewrite') {
    if (!arity(2)) return;
    if (cfg.file === null) return reply.error('ERR The server is running without a config file');
    try {
      cfg.rewrite();
      call.node.log.notice('CONFIG REWRITE executed with success.');
      reply.ok();
    } catch (e) {
      call.node.log.warning(`CONFIG REWRITE failed: ${(e as Error).message}`);
      reply.error(`ERR Rewriting config file: ${(e as Error).message}`);
    }
  } else {
    reply.error('ERR CONFIG subcommand must be one of GET, SET, RESETSTAT, REWRITE');
  }
}

/** CONFIG SET values of sensitive directives (passwords), whatever the rest of the call. */
function configSecretArgs(argv: readonly string[]): number[] {
  const out: number[] = [];
  if (argv.length < 3 || !eq(argv[1]!, 'set')) return out;
  for (let j = 2; j + 1 < argv.length; j += 2) {
    if (DIRECTIVE_BY_NAME.get(argv[j]!.toLowerCase())?.sensitive) out.push(j + 1);
  }
  return out;
}

// ---------------------------------------------------------------- CLIENT

function client(call: Call): void {
  const { argv, reply, node } = call;
  const sub = argv[1]!.toLowerCase();
  if (sub === 'list' && argv.length === 2) {
    const now = Date.now();
    let s = '';
    for (const c of node.clients) s += c.info(now) + '\n';
    return reply.bulk(s);
  }
  if (sub === 'kill') {
    let addr: string | null = null;
    let id = 0;
    let skipme = true;
    const oldStyle = argv.length === 3;
    if (oldStyle) {
      addr = argv[2]!;
      skipme = false;
    } else if (argv.length > 3) {
      for (let i = 2; i < argv.length; i += 2) {
        const opt = argv[i]!.toLowerCase();
        const val = argv[i + 1];
        if (val === undefined) return reply.error(errors.syntax);
        if (opt === 'id') {
          const n = intArg(call, val);
          if (n === undefined) return;
          id = n;
        } else if (opt === 'type') {
          if (val.toLowerCase() !== 'normal') return reply.error(`ERR Unknown client type '${val}'`);
        } else if (opt === 'addr') {
          addr = val;
        } else if (opt === 'skipme') {
          if (eq(val, 'yes')) skipme = true;
          else if (eq(val, 'no')) skipme = false;
          else return reply.error(errors.syntax);
        } else {
          return reply.error(errors.syntax);
        }
      }
    } else {
      return reply.error(errors.syntax);
    }
    let killed = 0;
    let killMe = false;
    for (const c of [...node.clients]) {
      if (addr !== null && c.addr !== addr) continue;
      if (id !== 0 && c.id !== id) continue;
      if (c === call.client && skipme) continue;
      if (c === call.client) killMe = true;
      else c.close();
      killed++;
    }
    if (oldStyle) {
      if (killed === 0) reply.error('ERR No such client');
      else reply.ok();
    } else {
      reply.int(killed);
    }
    if (killMe) call.client.closeAfterReplies();
    return;
  }
  if (sub === 'setname' && argv.length === 3) {
    const name = argv[2]!;
    if (name === '') {
      call.client.name = null;
      return reply.ok();
    }
    if (!/^[!-~]+$/.test(name)) {
      return reply.error('ERR Client names cannot contain spaces, newlines or special characters.');
    }
    call.client.name = name;
    return reply.ok();
  }
  if (sub === 'getname' && argv.length === 2) return reply.bulk(call.client.name);
  reply.error('ERR Syntax error, try CLIENT (LIST | KILL ip:port | GETNAME | SETNAME connection-name)');
}

// ----------------------------------------------------------------- DEBUG

function debug(call: Call): void {
  const { argv, reply, node } = call;
  const sub = argv[1]!.toLowerCase();
  if (sub === 'flushall') {
    node.store.flushAll();
    node.persistence.flushAll();
    return reply.ok();
  }
  if (sub === 'sleep' && argv.length === 3) {
    // Blocks the whole server, as the reference does: a testing aid.
    const seconds = Number(argv[2]);
    const ms = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
    if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    return reply.ok();
  }
  if (sub === 'error' && argv.length === 3) return reply.error(argv[2]!);
  if (sub === 'structsize' && argv.length === 2) {
    return reply.bulk(`bits:64 job-record:${JOB_RECORD_BYTES} queue-accounted:${QUEUE_MEMORY_OVERHEAD}`);
  }
  reply.error(`ERR Unknown DEBUG subcommand or wrong number of arguments for '${argv[1]}'`);
}

// -------------------------------------------------------------- SHUTDOWN

function shutdown(call: Call): void {
  const { argv, reply, node } = call;
  let rewrite = false;
  if (argv.length > 2) return reply.error(errors.syntax);
  if (argv.length === 2) {
    if (eq(argv[1]!, 'rewrite-aof')) rewrite = true;
    else return reply.error(errors.syntax);
  }
  if (node.loading) rewrite = false;
  node.shutdown({ rewrite }).then(
    () => node.exit(0),
    (e: Error) => {
      node.log.warning(`Errors trying to SHUTDOWN: ${e.message}`);
      call.client.out.error('ERR Errors trying to SHUTDOWN. Check logs.');
      call.client.markDirty();
    },
  );
}

// ----------------------------------------------- MONITOR, SLOWLOG, LATENCY

function monitor(call: Call): void {
  call.node.monitors.add(call.client);
  call.reply.ok();
}

function slowlog(call: Call): void {
  const { argv, reply, node } = call;
  const sub = argv[1]!.toLowerCase();
  if (sub === 'reset' && argv.length === 2) {
    node.slowlog.length = 0;
    return reply.ok();
  }
  if (sub === 'len' && argv.length === 2) return reply.int(node.slowlog.length);
  if (sub === 'get' && (argv.length === 2 || argv.length === 3)) {
    let count = 10;
    if (argv.length === 3) {
      const n = intArg(call, argv[2]!);
      if (n === undefined) return;
      count = n < 0 ? node.slowlog.length : n;
    }
    const entries = node.slowlog.slice(0, count);
    reply.arrayLen(entries.length);
    for (const e of entries) {
      reply.arrayLen(4);
      reply.int(e.id);
      reply.int(e.time);
      reply.int(e.usec);
      reply.arrayLen(e.argv.length);
      for (const a of e.argv) reply.bulk(a);
    }
    return;
  }
  reply.error("ERR Unknown SLOWLOG subcommand or wrong # of args. Try GET, RESET, LEN.");
}

function latency(call: Call): void {
  const { argv, reply, node } = call;
  const sub = argv[1]!.toLowerCase();
  const events = node.latencyEvents;
  if (sub === 'latest' && argv.length === 2) {
    reply.arrayLen(events.size);
    for (const [name, samples] of events) {
      const last = samples[samples.length - 1]!;
      reply.arrayLen(4);
      reply.bulk(name);
      reply.int(last.time);
      reply.int(last.ms);
      reply.int(Math.max(...samples.map((s) => s.ms)));
    }
    return;
  }
  if (sub === 'history' && argv.length === 3) {
    const samples = events.get(argv[2]!) ?? [];
    reply.arrayLen(samples.length);
    for (const s of samples) {
      reply.arrayLen(2);
      reply.int(s.time);
      reply.int(s.ms);
    }
    return;
  }
  if (sub === 'reset') {
    let n = 0;
    if (argv.length === 2) {
      n = events.size;
      events.clear();
    } else {
      for (let i = 2; i < argv.length; i++) if (events.delete(argv[i]!)) n++;
    }
    return reply.int(n);
  }
  if (sub === 'doctor' && argv.length === 2) {
    const threshold = node.config.int('latency-monitor-threshold');
    if (threshold === 0) {
      return reply.bulk(
        'Latency monitoring is disabled in this instance: set latency-monitor-threshold to a number of milliseconds to enable it.\n',
      );
    }
    if (events.size === 0) return reply.bulk('No latency spikes were observed.\n');
    let s = 'Latency spikes observed:\n';
    for (const [name, samples] of events) {
      s += `- ${name}: ${samples.length} samples, worst ${Math.max(...samples.map((x) => x.ms))} ms.\n`;
    }
    return reply.bulk(s);
  }
  reply.error('ERR Unknown LATENCY subcommand or wrong number of arguments');
}

function bgrewriteaof(call: Call): void {
  const err = call.node.persistence.startRewrite();
  if (err !== null) return call.reply.error(err);
  call.reply.status('Background append only file rewriting started');
}

export const adminCommands: CommandSpec[] = [
  { name: 'auth', arity: 2, flags: ['readonly', 'loading', 'fast', 'noauth'], handler: auth, secretArgs: (argv) => argv.slice(1).map((_, i) => i + 1) },
  { name: 'ping', arity: -1, flags: ['readonly', 'fast'], handler: ping },
  { name: 'info', arity: -1, flags: ['readonly', 'loading'], handler: info },
  { name: 'shutdown', arity: -1, flags: ['admin', 'readonly', 'loading'], handler: shutdown },
  { name: 'monitor', arity: 1, flags: ['admin', 'readonly'], handler: monitor },
  { name: 'debug', arity: -2, flags: ['admin'], handler: debug },
  { name: 'config', arity: -2, flags: ['admin', 'readonly'], handler: config, secretArgs: configSecretArgs },
  { name: 'client', arity: -2, flags: ['admin', 'readonly'], handler: client },
  { name: 'slowlog', arity: -2, flags: ['readonly'], handler: slowlog },
  { name: 'time', arity: 1, flags: ['readonly', 'fast'], handler: time },
  { name: 'command', arity: 0, flags: ['readonly', 'loading'], handler: command },
  { name: 'latency', arity: -2, flags: ['admin', 'readonly', 'loading'], handler: latency },
  { name: 'bgrewriteaof', arity: 1, flags: ['admin', 'readonly'], handler: bgrewriteaof },
];

