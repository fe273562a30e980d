// Server commands: PING, INFO, HELLO, TIME, COMMAND, CONFIG, CLIENT, AUTH,
// DEBUG, CLUSTER on one node, SHUTDOWN, and unknown commands.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { readFileSync, readdirSync } from 'node:fs';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { startServer, waitFor } from '../helpers/server.js';
import { RawClient, resp } from '../helpers/raw.js';
import { err, infoField } from '../helpers/replies.js';

let srv: InProcessServer;
let r: Redis;



beforeAll(async () => {
  srv = await startInProcess();
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

describe('server commands', () => {
  it('PING, TIME, unknown commands and wrong arity', async () => {
    expect(await r.call('PING')).toBe('PONG');
    expect(await r.call('PING', 'hi')).toBe('hi');
    const [sec, usec] = (await r.call('TIME')) as string[];
    expect(Math.abs(Number(sec) - Date.now() / 1000)).toBeLessThan(5);
    expect(Number(usec)).toBeLessThan(1_000_000);
    expect(await err(r.call('NOSUCH', 'x'))).toBe("ERR unknown command 'NOSUCH'");
    expect(await err(r.call('QLEN'))).toBe("ERR wrong number of arguments for 'qlen' command");
    expect(await err(r.call('SHOW', 'a', 'b'))).toBe("ERR wrong number of arguments for 'show' command");
  });

  it('INFO has the reference sections and fields', async () => {
    await r.call('DEBUG', 'FLUSHALL');
    await r.call('ADDJOB', 'iq', 'x', '0');
    const info = (await r.call('INFO')) as string;
    for (const section of ['Server', 'Clients', 'Memory', 'Jobs', 'Queues', 'Persistence', 'Stats', 'CPU']) {
      expect(info).toContain(`# ${section}\r\n`);
    }
    expect(infoField(info, 'registered_jobs')).toBe('1');
    expect(infoField(info, 'registered_queues')).toBe('1');
    expect(Number(infoField(info, 'used_memory'))).toBeGreaterThan(0);
    expect(Number(infoField(info, 'used_memory_rss'))).toBeGreaterThan(Number(infoField(info, 'used_memory')));
    expect(infoField(info, 'tcp_port')).toBe(String(srv.port));
    const jobs = (await r.call('INFO', 'jobs')) as string;
    expect(jobs).toBe('# Jobs\r\nregistered_jobs:1\r\n');
    expect(await err(r.call('INFO', 'a', 'b'))).toBe('ERR syntax error');
  });

  it('HELLO lists this node with priority 1; Redis-style HELLO 3 gets NOPROTO', async () => {
    const myid = await r.call('CLUSTER', 'MYID');
    const hello = (await r.call('HELLO')) as unknown[];
    expect(hello[0]).toBe(1);
    expect(hello[1]).toBe(myid);
    expect(hello.slice(2)).toEqual([[myid, expect.any(String), String(srv.port), '1']]);
    expect(await err(r.call('HELLO', '3'))).toMatch(/^NOPROTO/);
    expect(((await r.call('HELLO', '2')) as unknown[]).slice(0, 2)).toEqual(['server', 'disque']);
  });

  it('COMMAND describes the command table', async () => {
    const count = (await r.call('COMMAND', 'COUNT')) as number;
    expect(count).toBeGreaterThan(30);
    expect(await r.call('COMMAND', 'INFO', 'addjob', 'nosuch')).toEqual([
      ['addjob', -4, ['write', 'denyoom', 'fast'], 0, 0, 0],
      null,
    ]);
    expect(((await r.call('COMMAND')) as unknown[]).length).toBe(count);
  });

  it('CONFIG GET and SET validate like the config file', async () => {
    expect(await r.call('CONFIG', 'GET', 'maxmemory')).toEqual(['maxmemory', String(1024 ** 3)]);
    expect(await r.call('CONFIG', 'SET', 'maxmemory', '100mb')).toBe('OK');
    expect(await r.call('CONFIG', 'GET', 'maxmemory')).toEqual(['maxmemory', String(100 * 1024 ** 2)]);
    expect(await r.call('CONFIG', 'SET', 'maxmemory', '1gb')).toBe('OK');
    expect(await err(r.call('CONFIG', 'SET', 'maxmemory', 'lots'))).toBe("ERR Invalid argument 'lots' for CONFIG SET 'maxmemory'");
    expect(await err(r.call('CONFIG', 'SET', 'port', '1'))).toBe('ERR Unsupported CONFIG parameter: port');
    const all = (await r.call('CONFIG', 'GET', '*node-timeout')) as string[];
    expect(all).toEqual(['cluster-node-timeout', '15000']);
    expect(await err(r.call('CONFIG', 'REWRITE'))).toBe('ERR The server is running without a config file');
    expect(await err(r.call('CONFIG', 'GET'))).toBe('ERR Wrong number of arguments for CONFIG GET');
  });

  it('CLIENT SETNAME, GETNAME, LIST and KILL', async () => {
    const c = srv.client();
    expect(await c.call('CLIENT', 'SETNAME', 'worker-1')).toBe('OK');
    expect(await c.call('CLIENT', 'GETNAME')).toBe('worker-1');
    expect(await err(c.call('CLIENT', 'SETNAME', 'has space'))).toBe(
      'ERR Client names cannot contain spaces, newlines or special characters.',
    );
    const list = (await r.call('CLIENT', 'LIST')) as string;
    const line = list.split('\n').find((l) => l.includes('name=worker-1'))!;
    expect(line).toMatch(/^id=\d+ addr=127\.0\.0\.1:\d+ fd=-?\d+ name=worker-1 age=\d+ idle=\d+ flags=N /);
    const addr = /addr=(\S+)/.exec(line)![1]!;
    expect(await r.call('CLIENT', 'KILL', 'ADDR', addr)).toBe(1);
    await waitFor(async () => !((await r.call('CLIENT', 'LIST')) as string).includes('name=worker-1'), 'client gone');
    expect(await err(r.call('CLIENT', 'KILL', '1.2.3.4:5'))).toBe('ERR No such client');
  });

  it('DEBUG FLUSHALL empties the node and answers blocked clients as on timeout', async () => {
    await r.call('ADDJOB', 'fq', 'x', '0');
    const c = srv.client();
    const blocked = c.call('GETJOB', 'FROM', 'empty-q');
    await waitFor(async () => infoField((await r.call('INFO', 'clients')) as string, 'blocked_clients') === '1', 'blocked');
    expect(await r.call('DEBUG', 'FLUSHALL')).toBe('OK');
    expect(await blocked).toBeNull();
    expect(infoField((await r.call('INFO', 'jobs')) as string, 'registered_jobs')).toBe('0');
    expect(await err(r.call('DEBUG', 'NOPE'))).toMatch(/^ERR Unknown DEBUG subcommand/);
  });

  it('CLUSTER on a single node: MYID, NODES, INFO, LEAVING', async () => {
    const myid = (await r.call('CLUSTER', 'MYID')) as string;
    expect(myid).toMatch(/^[0-9a-f]{40}$/);
    const nodes = (await r.call('CLUSTER', 'NODES')) as string;
    expect(nodes).toMatch(new RegExp(`^${myid} [^ ]*:${srv.port} myself 0 0 connected\\n$`));
    const info = (await r.call('CLUSTER', 'INFO')) as string;
    expect(infoField(info, 'cluster_known_nodes')).toBe('1');
    expect(infoField(info, 'cluster_reachable_nodes')).toBe('0');
    expect(infoField(info, 'cluster_size')).toBe('1');
    expect(await r.call('CLUSTER', 'LEAVING')).toBe('no');
    const c = srv.client();
    const blocked = err(c.call('GETJOB', 'FROM', 'leave-q'));
    await waitFor(async () => infoField((await r.call('INFO', 'clients')) as string, 'blocked_clients') === '1', 'blocked');
    expect(await r.call('CLUSTER', 'LEAVING', 'yes')).toBe('OK');
    expect(await blocked).toMatch(/^LEAVING/);
    expect(await err(r.call('GETJOB', 'FROM', 'leave-q'))).toBe(
      'LEAVING This node is leaving the cluster, please connect to a different one',
    );
    expect(await r.call('CLUSTER', 'LEAVING', 'no')).toBe('OK');
    expect(await err(r.call('CLUSTER', 'LEAVING', 'maybe'))).toBe("ERR Wrong argument for CLUSTER LEAVING. Use 'yes' or 'no'");
    expect(await err(r.call('CLUSTER', 'FORGET', myid))).toBe("ERR I tried hard but I can't forget myself...");
    expect(await err(r.call('CLUSTER', 'MEET', 'nohost', '7711'))).toBe('ERR Invalid node address specified: nohost:7711');
    expect(await err(r.call('CLUSTER', 'BOGUS'))).toBe('ERR Wrong CLUSTER subcommand or number of arguments');
  });
});

describe('AUTH with requirepass', () => {
  it('refuses commands until the client authenticates', async () => {
    const s = await startInProcess({ requirepass: 'sekret' });
    try {
      const raw = await RawClient.connect(s.port);
      raw.send(resp('QLEN', 'q'));
      await raw.until((t) => t.includes('\r\n'));
      expect(raw.text).toBe('-NOAUTH Authentication required.\r\n');
      raw.send(resp('AUTH', 'wrong'));
      raw.send(resp('AUTH', 'sekret'));
      raw.send(resp('QLEN', 'q'));
      await raw.until((t) => t.split('\r\n').length >= 5);
      expect(raw.text).toBe('-NOAUTH Authentication required.\r\n-ERR invalid password\r\n+OK\r\n:0\r\n');
      raw.close();
      const c = s.client({ password: 'sekret' });
      expect(await c.call('PING')).toBe('PONG');
    } finally {
      await s.close();
    }
  });

  it('AUTH without requirepass is an error', async () => {
    expect(await err(r.call('AUTH', 'x'))).toBe('ERR Client sent AUTH, but no password is set');
  });
});

describe('process', () => {
  it('SHUTDOWN stops the server; CONFIG REWRITE keeps the file in shape', async () => {
    const h = await startServer({ config: { 'cluster-node-timeout': '15000' } });
    try {
      const raw = await RawClient.connect(h.port);
      raw.send(resp('CONFIG', 'SET', 'cluster-node-timeout', '3000'));
      raw.send(resp('CONFIG', 'REWRITE'));
      await raw.until((t) => t === '+OK\r\n+OK\r\n');
      const conf = readFileSync(h.configFile, 'utf8');
      expect(conf).toContain('cluster-node-timeout 3000\n');
      expect(conf.startsWith(`port ${h.port}\n`)).toBe(true);
      raw.send(resp('SHUTDOWN'));
      await raw.closedByServer();
      await waitFor(() => h.proc === null || h.proc.exitCode !== null, 'process exit');
      expect(h.proc?.exitCode ?? 0).toBe(0);
    } finally {
      await h.destroy();
    }
  });

  it('an unknown directive stops start-up with file, line and reason', async () => {
    await expect(startServer({ config: { 'no-such-directive': 'x' } })).rejects.toThrow(/no-such-directive/);
  });
});

describe('maxclients', () => {
  it('refused clients get the error, and the server lets go of their sockets', async () => {
    const h = await startServer({ config: { maxclients: '2' } });
    const held: RawClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = await RawClient.connect(h.port);
        c.send(resp('PING'));
        await c.until((t) => t === '+PONG\r\n');
        held.push(c);
      }
      const fds = () => readdirSync(`/proc/${h.proc!.pid}/fd`).length;
      const baseline = fds();
      for (let i = 0; i < 10; i++) {
        const c = await RawClient.connect(h.port);
        c.send(resp('PING'));
        await c.closedByServer();
        expect(c.text).toBe('-ERR max number of clients reached\r\n');
      }
      // A refused socket that was never read would stay open for good.
      await waitFor(() => fds() <= baseline, `the server's open files back to ${baseline}`, 5000);
      held[0]!.send(resp('INFO', 'stats'));
      const info = await held[0]!.until((t) => /rejected_connections:\d+\r\n/.test(t));
      expect(infoField(info, 'rejected_connections')).toBe('10');
    } finally {
      for (const c of held) c.close();
      await h.destroy();
    }
  });
});
