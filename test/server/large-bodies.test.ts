// Job bodies of every size go in and come out byte for byte, across the
// arena's and the reply buffer's size boundaries, and a large reply does not
// hold back the replies other clients are due.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { RawClient, resp } from '../helpers/raw.js';

/** Deterministic bytes of every value (no RNG needed to reproduce a failure). */
function pseudoRandomBytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

let srv: InProcessServer;
let r: Redis;

beforeAll(async () => {
  srv = await startInProcess();
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

const SIZES = [1, 16383, 16384, 16385, 65535, 65536, 65537, 131072, 1 << 20, (1 << 20) + 1, 5 << 20];

describe('large job bodies', () => {
  it('round-trip byte-exact at every size boundary (ADDJOB, GETJOB, SHOW)', async () => {
    for (const size of SIZES) {
      const body = pseudoRandomBytes(size, size);
      const id = (await r.call('ADDJOB', `lb${size}`, body, '0')) as string;
      const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', `lb${size}`)) as Buffer[][];
      expect(got[0]![1]!.toString()).toBe(id);
      expect(got[0]![2]!.equals(body), `body of ${size} bytes`).toBe(true);
      const show = (await r.callBuffer('SHOW', id)) as Buffer[];
      const at = show.findIndex((f) => f.toString() === 'body');
      expect(show[at + 1]!.equals(body), `SHOW body of ${size} bytes`).toBe(true);
      await r.call('ACKJOB', id);
    }
  });

  it('a large body split across reads at every kind of boundary arrives intact', async () => {
    const body = pseudoRandomBytes(70000, 5);
    const req = resp('ADDJOB', 'lbsplit', body, '0');
    const c = await RawClient.connect(srv.port);
    try {
      // Cuts inside the header, right after it, inside the body and inside its CRLF.
      const header = req.indexOf('$70000\r\n') + 8;
      let from = 0;
      for (const cut of [header - 5, header, header + 1, header + 40000, req.length - 1, req.length]) {
        c.send(req.subarray(from, cut));
        from = cut;
        await new Promise((res) => setImmediate(res));
      }
      await c.until((t) => t.endsWith('\r\n'));
    } finally {
      c.close();
    }
    const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', 'lbsplit')) as Buffer[][];
    expect(got[0]![2]!.equals(body)).toBe(true);
  });

  it('long arguments of other commands are read as text, and MONITOR shows a large body', async () => {
    const msg = 'm'.repeat(100_000);
    expect(await r.call('PING', msg)).toBe(msg);
    const qname = 'q'.repeat(20_000);
    const id = (await r.call('ADDJOB', qname, 'small', '0')) as string;
    expect(await r.call('QLEN', qname)).toBe(1);
    expect(((await r.call('GETJOB', 'NOHANG', 'FROM', qname)) as string[][])[0]![1]).toBe(id);
    const monitor = await RawClient.connect(srv.port);
    try {
      monitor.send(resp('MONITOR'));
      await monitor.until((t) => t.startsWith('+OK\r\n'));
      const body = 'b'.repeat(30_000);
      await r.call('ADDJOB', 'lbmon', body, '0');
      await monitor.until((t) => t.includes(`"ADDJOB" "lbmon" "${body}" "0"`));
    } finally {
      monitor.close();
    }
  });

  it('long bodies pipelined between short requests, in one read, run in order and arrive intact', async () => {
    const small = pseudoRandomBytes(100, 11);
    const long4k = pseudoRandomBytes(4096, 12);
    const long1k = pseudoRandomBytes(1024, 13);
    const c = await RawClient.connect(srv.port);
    try {
      c.send(
        Buffer.concat([
          resp('PING', 'a'),
          resp('ADDJOB', 'lbpipe', small, '0'),
          resp('ADDJOB', 'lbpipe', long4k, '0'),
          resp('PING', 'b'),
          resp('ADDJOB', 'lbpipe', long1k, '0'),
          resp('QLEN', 'lbpipe'),
        ]),
      );
      const text = await c.until((t) => t.endsWith(':3\r\n'));
      expect(text.startsWith('$1\r\na\r\n+D-')).toBe(true);
      expect(text).toMatch(/^\$1\r\na\r\n\+D-\S+\r\n\+D-\S+\r\n\$1\r\nb\r\n\+D-\S+\r\n:3\r\n$/);
    } finally {
      c.close();
    }
    for (const body of [small, long4k, long1k]) {
      const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', 'lbpipe')) as Buffer[][];
      expect(got[0]![2]!.equals(body)).toBe(true);
    }
  });

  it('a long body waiting behind a blocked GETJOB is kept while other clients write over the read buffer', async () => {
    const bodies = [pseudoRandomBytes(4096, 21), pseudoRandomBytes(70000, 22)];
    const c = await RawClient.connect(srv.port);
    try {
      c.send(Buffer.concat([resp('GETJOB', 'TIMEOUT', '300', 'FROM', 'lbwaitfor'), ...bodies.map((b) => resp('ADDJOB', 'lbwait', b, '0'))]));
      // Other requests, with other long bodies, while those wait.
      for (let i = 0; i < 20; i++) await r.call('ADDJOB', 'lbother', pseudoRandomBytes(70000, 100 + i), '0');
      await c.until((t) => t.startsWith('*-1\r\n') && (t.match(/\+D-/g) ?? []).length === 2);
    } finally {
      c.close();
    }
    for (const body of bodies) {
      const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', 'lbwait')) as Buffer[][];
      expect(got[0]![2]!.equals(body)).toBe(true);
    }
  });

  it('pipelined GETJOBs of mixed sizes come back in order and intact', async () => {
    const sizes = [100, 70000, 20, 300000, 16385, 5, 2 << 20, 64];
    const bodies = sizes.map((s, i) => pseudoRandomBytes(s, i + 7));
    for (const b of bodies) await r.call('ADDJOB', 'lbmix', b, '0');
    const p = r.pipeline();
    for (let i = 0; i < sizes.length; i++) p.callBuffer('GETJOB', 'NOHANG', 'FROM', 'lbmix');
    const res = (await p.exec())!;
    res.forEach(([err, reply], i) => {
      expect(err).toBeNull();
      expect((reply as Buffer[][])[0]![2]!.equals(bodies[i]!), `job ${i}`).toBe(true);
    });
  });

  it('the arena reuses what a drain freed, and INFO memory shows what is free', async () => {
    const info = async (): Promise<Record<string, number>> => {
      const text = (await r.call('INFO', 'memory')) as string;
      return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.split(':')[0], Number(l.split(':')[1])]));
    };
    const fill = async (size: number, n: number): Promise<void> => {
      const p = r.pipeline();
      for (let i = 0; i < n; i++) p.call('ADDJOB', `lbarena${size}`, pseudoRandomBytes(size, i), '0');
      await p.exec();
    };
    const drain = async (size: number): Promise<void> => {
      for (;;) {
        const got = (await r.call('GETJOB', 'NOHANG', 'COUNT', '50', 'FROM', `lbarena${size}`)) as string[][] | null;
        if (got === null) return;
        await r.call('FASTACK', ...got.map((j) => j[1]!));
      }
    };
    const base = await info();
    for (const size of [4096, 70000]) {
      await fill(size, 300);
      const full = await info();
      await drain(size);
      const drained = await info();
      // What the drain freed is free in the arena (slab slots, and blocks kept for their large class).
      expect(drained.arena_allocated! - drained.arena_free!).toBeLessThanOrEqual(base.arena_allocated! - base.arena_free! + 64 * 1024);
      await fill(size, 300);
      const refilled = await info();
      expect(refilled.arena_allocated, `${size}-byte bodies`).toBeLessThanOrEqual(full.arena_allocated!);
      await drain(size);
    }
    // The large GETJOB replies left a pooled buffer for the next one.
    expect((await info()).reply_buffers_idle).toBeGreaterThan(0);
  });

  it('a reply sent while a large one is still going out comes after all of it', async () => {
    const big = pseudoRandomBytes(5 << 20, 77);
    await r.call('ADDJOB', 'lborder', big, '0');
    const c = await RawClient.connect(srv.port);
    try {
      c.send(resp('GETJOB', 'NOHANG', 'FROM', 'lborder'));
      // Ask again as soon as the first bytes of the large reply arrive.
      await c.until((t) => t.length > 0);
      c.send(resp('PING', 'after'));
      const text = await c.until((t) => t.endsWith('$5\r\nafter\r\n'));
      const bodyAt = text.indexOf(`$${big.length}\r\n`) + `$${big.length}\r\n`.length;
      expect(Buffer.from(text.slice(bodyAt, bodyAt + big.length), 'latin1').equals(big)).toBe(true);
      expect(text.slice(bodyAt + big.length)).toBe('\r\n$5\r\nafter\r\n');
    } finally {
      c.close();
    }
  });

  it('a client not reading its large replies does not hold back other clients', async () => {
    const big = pseudoRandomBytes(4 << 20, 99);
    for (let i = 0; i < 4; i++) await r.call('ADDJOB', 'lbslow', big, '0');
    const slow = await RawClient.connect(srv.port);
    slow.socket.pause(); // it never reads: its replies pile up in the kernel and in our buffers
    try {
      for (let i = 0; i < 4; i++) slow.send(resp('GETJOB', 'NOHANG', 'FROM', 'lbslow'));
      const other = srv.client();
      // Small requests of another client are answered meanwhile.
      for (let i = 0; i < 20; i++) expect(await other.call('PING')).toBe('PONG');
    } finally {
      slow.close();
    }
  });
});
