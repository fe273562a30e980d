// CLUSTER subcommands and HELLO.
import type { Call, CommandSpec } from './context.js';
import { errors, parseInteger } from '../protocol/errors.js';
import { eq, checkPassword } from './util.js';
import { VERSION } from '../config/version.js';

function cluster(call: Call): void {
  const { argv, reply } = call;
  const c = call.node.cluster;
  const sub = argv[1]!.toLowerCase();
  const argc = argv.length;

  if (sub === 'meet' && argc === 4) {
    const port = parseInteger(argv[3]!);
    if (port === undefined) return reply.error(`ERR Invalid TCP port specified: ${argv[3]}`);
    // A handshake already under way for the address is fine: still OK.
    if (c.startHandshake(argv[2]!, port) === 'invalid') {
      return reply.error(`ERR Invalid node address specified: ${argv[2]}:${argv[3]}`);
    }
    return reply.ok();
  }
  if (sub === 'nodes' && argc === 2) return reply.bulk(c.nodesDescription(false));
  if (sub === 'myid' && argc === 2) return reply.bulk(c.myself.id);
  if (sub === 'info' && argc === 2) {
    return reply.bulk(
      `cluster_state:ok\r\n` +
        `cluster_known_nodes:${c.nodes.size}\r\n` +
        `cluster_reachable_nodes:${c.reachableCount}\r\n` +
        `cluster_size:${c.size}\r\n` +
        `cluster_stats_messages_sent:${c.messagesSent}\r\n` +
        `cluster_stats_messages_received:${c.messagesReceived}\r\n`,
    );
  }
  if (sub === 'saveconfig' && argc === 2) {
    if (c.saveNodesFile()) return reply.ok();
    return reply.error('ERR error saving the cluster node config, see the server log');
  }
  if (sub === 'forget' && argc === 3) {
    const err = c.forget(argv[2]!);
    return err ? reply.error(err) : reply.ok();
  }
  if (sub === 'reset' && (argc === 2 || argc === 3)) {
    let hard = false;
    if (argc === 3) {
      if (eq(argv[2]!, 'hard')) hard = true;
      else if (!eq(argv[2]!, 'soft')) return reply.error(errors.syntax);
    }
    c.reset(hard);
    return reply.ok();
  }
  if (sub === 'leaving' && (argc === 2 || argc === 3)) {
    if (argc === 2) return reply.status(c.leaving ? 'yes' : 'no');
    if (eq(argv[2]!, 'yes')) c.setLeaving(true);
    else if (eq(argv[2]!, 'no')) c.setLeaving(false);
    else return reply.error("ERR Wrong argument for CLUSTER LEAVING. Use 'yes' or 'no'");
    return reply.ok();
  }
  reply.error('ERR Wrong CLUSTER subcommand or number of arguments');
}

/**
 * HELLO: [version, my ID, [id, ip, port, priority]...]; lower priority is
 * better. With arguments it is Redis 6's handshake (HELLO protover [AUTH
 * user pass] [SETNAME name]), which clients such as ioredis 6 send first:
 * RESP3 is answered -NOPROTO so they fall back to RESP2 (the reference
 * answers a wrong-arity error, which such clients treat as fatal).
 */
function hello(call: Call): void {
  if (call.argv.length > 1) return redisHello(call);
  if (!call.client.authenticated) return call.reply.error(errors.noauth);
  const c = call.node.cluster;
  const entries = c.helloEntries();
  const out = call.reply;
  out.arrayLen(2 + entries.length);
  out.int(1);
  out.bulk(c.myself.id);
  for (const e of entries) {
    out.arrayLen(4);
    out.bulk(e.id);
    out.bulk(e.ip);
    // A TLS client is given the TLS ports, so it can reach the other nodes the same way.
    out.bulkInt(call.client.tls && e.tlsPort !== 0 ? e.tlsPort : e.port);
    out.bulkInt(e.priority);
  }
}

function redisHello(call: Call): void {
  const { argv, reply, client } = call;
  const ver = parseInteger(argv[1]!);
  if (ver === undefined) return reply.error('ERR Protocol version is not an integer or out of range');
  if (ver !== 2) return reply.error('NOPROTO sorry, this protocol version is not supported');
  let name: string | null | undefined;
  for (let j = 2; j < argv.length; j++) {
    const opt = argv[j]!.toLowerCase();
    if (opt === 'auth' && j + 2 < argv.length) {
      // The user name is not checked: Disque has one user (Redis's "default").
      if (!checkPassword(call, argv[j + 2]!, 'HELLO AUTH')) {
        return reply.error('WRONGPASS invalid username-password pair or user is disabled.');
      }
      client.authenticated = true;
      j += 2;
    } else if (opt === 'setname' && j + 1 < argv.length) {
      name = argv[++j]!;
    } else {
      return reply.error(`ERR Syntax error in HELLO option '${argv[j]}'`);
    }
  }
  if (!client.authenticated) return reply.error(errors.noauth);
  if (name !== undefined) client.name = name === '' ? null : name;
  reply.arrayLen(14);
  reply.bulk('server');
  reply.bulk('disque');
  reply.bulk('version');
  reply.bulk(VERSION);
  reply.bulk('proto');
  reply.int(2);
  reply.bulk('id');
  reply.int(client.id);
  reply.bulk('mode');
  reply.bulk('cluster');
  reply.bulk('role');
  reply.bulk('master');
  reply.bulk('modules');
  reply.arrayLen(0);
}

/** HELLO ... AUTH user pass: both words, as Redis redacts them (also when the call is malformed). */
function helloSecretArgs(argv: readonly string[]): number[] {
  const out: number[] = [];
  for (let j = 2; j < argv.length; j++) {
    const opt = argv[j]!.toLowerCase();
    if (opt === 'auth') {
      for (let k = j + 1; k <= j + 2 && k < argv.length; k++) out.push(k);
      j += 2;
    } else if (opt === 'setname') {
      j++;
    }
  }
  return out;
}

export const clusterCommands: CommandSpec[] = [
  { name: 'cluster', arity: -2, flags: ['admin', 'readonly'], handler: cluster },
  { name: 'hello', arity: -1, flags: ['readonly', 'fast', 'noauth'], handler: hello, secretArgs: helloSecretArgs },
];
