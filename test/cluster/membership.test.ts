// Nodes forming a cluster over the gossip bus: MEET and gossip, failure
// detection across kill -9 and restart, FORGET, LEAVING, a hostile bus
// peer, and the cluster secret. Real processes on ephemeral ports.
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import net from 'node:net';
import { startCluster, clusterNodes, infoField, client, type TestCluster } from '../helpers/cluster.js';
import { startServer, waitFor, getFreePort } from '../helpers/server.js';
import { encodeFrame } from '../../src/cluster/bus.js';
import { MsgType, BUS_PROTOCOL_VERSION } from '../../src/cluster/messages.js';

describe('membership', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await startCluster(3);
  });
  afterAll(async () => {
    await c?.destroy();
  });

  it('meets into a full mesh where every node knows every other', async () => {
    const ids = c.nodes.map((n) => n.id).sort();
    expect(new Set(ids).size).toBe(3);
    for (const n of c.nodes) {
      const nodes = await clusterNodes(n.r);
      expect(nodes.map((x) => x.id).sort()).toEqual(ids);
      expect(nodes.filter((x) => x.flags.includes('myself')).map((x) => x.id)).toEqual([n.id]);
      expect(nodes.every((x) => x.link === 'connected')).toBe(true);
      const info = (await n.r.call('CLUSTER', 'INFO')) as string;
      expect(infoField(info, 'cluster_known_nodes')).toBe('3');
      expect(infoField(info, 'cluster_size')).toBe('3');
      const hello = (await n.r.call('HELLO')) as unknown[];
      expect(hello.slice(2).map((e) => (e as string[])[3])).toEqual(['1', '1', '1']);
    }
  });

  it('flags a node killed with kill -9 as FAIL and clears it when it restarts with the same ID', async () => {
    const victim = c.nodes[2]!;
    await c.kill9(2);
    for (const i of [0, 1]) {
      await waitFor(
        async () => (await clusterNodes(c.nodes[i]!.r)).find((x) => x.id === victim.id)!.flags.includes('fail'),
        `node ${i} flags the killed node FAIL`,
        20000,
      );
    }
    const hello = (await c.nodes[0]!.r.call('HELLO')) as unknown[];
    expect(hello.slice(2).find((e) => (e as string[])[0] === victim.id)).toEqual([victim.id, '127.0.0.1', String(victim.server.port), '100']);
    await c.restart(2);
    expect(await victim.r.call('CLUSTER', 'MYID')).toBe(victim.id);
    for (const i of [0, 1]) {
      await waitFor(
        async () => {
          const n = (await clusterNodes(c.nodes[i]!.r)).find((x) => x.id === victim.id)!;
          return !n.flags.includes('fail') && !n.flags.includes('fail?');
        },
        `node ${i} clears FAIL`,
        20000,
      );
    }
    // The restarted node found its peers again by itself.
    await waitFor(
      async () => Number(infoField((await victim.r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === 2,
      'restarted node reaches its peers',
    );
  });

  it('spreads LEAVING by gossip and gives the leaving node priority 100 in HELLO', async () => {
    const leaving = c.nodes[1]!;
    expect(await leaving.r.call('CLUSTER', 'LEAVING', 'yes')).toBe('OK');
    await waitFor(
      async () => (await clusterNodes(c.nodes[0]!.r)).find((x) => x.id === leaving.id)!.flags.includes('leaving'),
      'LEAVING reaches node 0',
    );
    const hello = (await c.nodes[0]!.r.call('HELLO')) as unknown[];
    expect((hello.slice(2).find((e) => (e as string[])[0] === leaving.id) as string[])[3]).toBe('100');
    expect(Number(infoField((await c.nodes[0]!.r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes'))).toBe(1);
    await leaving.r.call('CLUSTER', 'LEAVING', 'no');
    await waitFor(
      async () => !(await clusterNodes(c.nodes[0]!.r)).find((x) => x.id === leaving.id)!.flags.includes('leaving'),
      'LEAVING cleared on node 0',
    );
  });

  it('keeps serving after garbage, oversized and bad-version frames on the bus port', async () => {
    const port = c.nodes[0]!.server.port + 10000;
    const send = (bytes: Buffer) =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write(bytes);
          setTimeout(() => s.destroy(), 50);
        });
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    await send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await send(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    const bogus = Buffer.from([0x85, 0xa1, 0x76, 0x63, 0xa1, 0x74, 0x00, 0xa1, 0x73, 0xa1, 0x78, 0xa1, 0x70, 0x01, 0xa1, 0x66, 0x00]);
    const frame = Buffer.alloc(4 + bogus.length);
    frame.writeUInt32BE(bogus.length, 0);
    bogus.copy(frame, 4);
    await send(frame); // protocol version 99
    await send(Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('abcde')]));
    expect(await c.nodes[0]!.r.call('PING')).toBe('PONG');
    expect(c.nodes[0]!.server.log()).toMatch(/Closing cluster bus link with 127\.0\.0\.1: (oversized frame|undecodable|unknown protocol version|malformed)/);
    // Still a working cluster member.
    await waitFor(
      async () => Number(infoField((await c.nodes[0]!.r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === 2,
      'node 0 still reaches its peers',
    );
  });

  it('FORGET removes a node and keeps gossip from adding it back at once', async () => {
    const gone = c.nodes[2]!;
    for (const i of [0, 1]) expect(await c.nodes[i]!.r.call('CLUSTER', 'FORGET', gone.id)).toBe('OK');
    await gone.server.kill9();
    for (let k = 0; k < 10; k++) {
      for (const i of [0, 1]) {
        const ids = (await clusterNodes(c.nodes[i]!.r)).map((x) => x.id);
        expect(ids).not.toContain(gone.id);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(Number(infoField((await c.nodes[0]!.r.call('CLUSTER', 'INFO')) as string, 'cluster_known_nodes'))).toBe(2);
  });
});

describe('cluster-secret and cluster-meet', () => {
  it('forms a cluster from cluster-meet directives and refuses a peer with the wrong secret', async () => {
    const a = await startServer({ config: { 'cluster-secret': 'right', 'cluster-node-timeout': '2000' } });
    const b = await startServer({
      config: { 'cluster-secret': 'right', 'cluster-meet': `127.0.0.1:${a.port}`, 'cluster-node-timeout': '2000' },
    });
    const intruder = await startServer({
      config: { 'cluster-secret': 'wrong', 'cluster-meet': `127.0.0.1:${a.port}`, 'cluster-node-timeout': '2000' },
    });
    const ra = client(a.port);
    const rb = client(b.port);
    const ri = client(intruder.port);
    try {
      await waitFor(
        async () => Number(infoField((await rb.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === 1,
        'b joins a through cluster-meet',
      );
      const idI = await ri.call('CLUSTER', 'MYID');
      await waitFor(() => /cluster-secret handshake failed/.test(a.log() + intruder.log()), 'handshake refusal logged');
      await new Promise((r) => setTimeout(r, 500));
      expect((await clusterNodes(ra)).map((x) => x.id)).not.toContain(idI);
      expect(Number(infoField((await ri.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes'))).toBe(0);
    } finally {
      ra.disconnect();
      rb.disconnect();
      ri.disconnect();
      await Promise.all([a.destroy(), b.destroy(), intruder.destroy()]);
    }
  });
});

describe('failure detection', () => {
  it('does not flag a peer that keeps talking to it as failing, even when its PING goes unanswered', async () => {
    // A fake peer that completes the MEET handshake, then never answers this
    // node's PINGs (as a node that restarted before answering on the new
    // link), while it keeps sending PINGs of its own.
    // 1 s rather than less: on a loaded CI machine our own 50 ms pinger can
    // stall for a few hundred ms, which the node rightly reads as silence.
    const timeout = 1000;
    const a = await startServer({ config: { 'cluster-node-timeout': String(timeout) } });
    const ra = client(a.port);
    const fakePort = await getFreePort();
    const fakeId = 'f'.repeat(40);
    const frame = (t: number) => encodeFrame({ v: BUS_PROTOCOL_VERSION, s: fakeId, p: fakePort, f: 0, t });
    const accepted: net.Socket[] = [];
    const bus = net.createServer((s) => {
      accepted.push(s);
      s.on('error', () => {});
      // Only the MEET gets its PONG (the first frame A sends on its first link).
      if (accepted.length === 1) s.once('data', () => s.write(frame(MsgType.PONG)));
    });
    await new Promise<void>((r) => bus.listen(fakePort + 10000, '127.0.0.1', r));
    const out = net.connect(a.port + 10000, '127.0.0.1');
    out.on('error', () => {});
    out.on('data', () => {});
    const pinger = setInterval(() => out.write(frame(MsgType.PING)), 50);
    const fakeLine = async () => {
      const lines = ((await ra.call('CLUSTER', 'NODES')) as string).split('\n');
      const f = lines.find((l) => l.startsWith(fakeId))?.split(' ');
      return f ? { flags: f[2]!.split(','), pingSent: Number(f[3]) } : null;
    };
    try {
      expect(await ra.call('CLUSTER', 'MEET', '127.0.0.1', String(fakePort))).toBe('OK');
      await waitFor(async () => (await fakeLine()) !== null, 'the fake peer joins');
      // Its PING has gone unanswered for several timeouts, yet it is not failing.
      let flagged: string[] = [];
      await waitFor(
        async () => {
          const f = (await fakeLine())!;
          flagged = f.flags.filter((x) => x.startsWith('fail'));
          return flagged.length > 0 || (f.pingSent > 0 && Date.now() - f.pingSent > 4 * timeout);
        },
        'an unanswered PING older than 4 node timeouts',
      );
      expect(flagged).toEqual([]);
      // Once it falls silent, it is flagged at once.
      clearInterval(pinger);
      await waitFor(async () => (await fakeLine())!.flags.includes('fail?'), 'the silent peer flagged fail?');
    } finally {
      clearInterval(pinger);
      out.destroy();
      for (const s of accepted) s.destroy();
      bus.close();
      ra.disconnect();
      await a.destroy();
    }
  });
});

describe('bind', () => {
  it('links leave from the first bind address, so nodes on their own loopback addresses form a mesh', async () => {
    // A peer learns our address from the link we open to it; leaving from
    // 127.0.0.1 while listening on 127.0.0.x would make us unreachable.
    const hosts = ['127.0.0.31', '127.0.0.32', '127.0.0.33'];
    const servers = await Promise.all(hosts.map((host) => startServer({ host, config: { 'cluster-node-timeout': '2000' } })));
    const rs = servers.map((s) => client(s.port, s.host));
    try {
      await rs[0]!.call('CLUSTER', 'MEET', hosts[1]!, String(servers[1]!.port));
      await rs[1]!.call('CLUSTER', 'MEET', hosts[2]!, String(servers[2]!.port));
      const addresses = async (r: (typeof rs)[number]): Promise<string[]> =>
        (await clusterNodes(r)).map((n) => n.addr.split(':')[0]!).sort();
      for (const [i, r] of rs.entries()) {
        // A node learns its own address from the first links, so wait for that too.
        await waitFor(
          async () =>
            Number(infoField((await r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')) === 2 &&
            (await addresses(r)).join() === hosts.join(),
          `node on ${hosts[i]} reaches the other two and knows every address`,
          15000,
        ).catch(() => {});
        expect(await addresses(r)).toEqual(hosts);
        expect(infoField((await r.call('CLUSTER', 'INFO')) as string, 'cluster_reachable_nodes')).toBe('2');
      }
    } finally {
      for (const r of rs) r.disconnect();
      await Promise.all(servers.map((s) => s.destroy()));
    }
  });
});
