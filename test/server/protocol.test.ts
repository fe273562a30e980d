// The wire protocol: inline and multibulk requests, pipelining, requests
// split across reads, protocol errors, and hostile input. Afterwards the
// server must still serve other clients.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { RawClient, resp } from '../helpers/raw.js';
import { waitFor } from '../helpers/server.js';

let srv: InProcessServer;
let r: Redis;

beforeAll(async () => {
  srv = await startInProcess({ 'client-query-buffer-limit': '2mb' });
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

async function exchange(bytes: string | Buffer, done: (t: string) => boolean): Promise<string> {
  const c = await RawClient.connect(srv.port);
  try {
    c.send(bytes);
    return await c.until(done);
  } finally {
    c.close();
  }
}

describe('requests', () => {
  it('accepts inline commands, with quotes, as redis-cli and telnet send them', async () => {
    expect(await exchange('PING\r\n', (t) => t.endsWith('\r\n'))).toBe('+PONG\r\n');
    expect(await exchange('PING "hello world"\n', (t) => t.endsWith('\r\n') && t.length > 5)).toBe('$11\r\nhello world\r\n');
    expect(await exchange('\r\n  \r\nQLEN nosuchqueue\r\n', (t) => t.endsWith('\r\n'))).toBe(':0\r\n');
  });

  it('answers pipelined requests in order, mixing inline and multibulk', async () => {
    const reqs = Buffer.concat([
      resp('PING', 'one'),
      Buffer.from('PING two\r\n'),
      resp('QLEN', 'x'),
      Buffer.from('*0\r\n'),
      resp('PING', 'three'),
    ]);
    const expected = '$3\r\none\r\n$3\r\ntwo\r\n:0\r\n$5\r\nthree\r\n';
    expect(await exchange(reqs, (t) => t.length >= expected.length)).toBe(expected);
  });

  it('a job served to a client as it closes its side reaches it, or stays queued', async () => {
    // The client's FIN and another client's ADDJOB reach the server in the
    // same pass of its event loop, in either order; repeated for both.
    const adder = await RawClient.connect(srv.port);
    try {
      for (let i = 0; i < 20; i++) {
        const q = `halfclosed${i}`;
        const c = await RawClient.connect(srv.port);
        c.send(resp('GETJOB', 'TIMEOUT', '5000', 'FROM', q));
        await waitFor(async () => String(await r.call('CLIENT', 'LIST')).includes('flags=b'), 'GETJOB blocks', 2000);
        c.socket.end();
        adder.send(resp('ADDJOB', q, 'x', '0'));
        await c.closedByServer();
        await adder.until((t) => (t.match(/\+D-/g) ?? []).length === i + 1);
        const got = c.text.includes('$1\r\nx\r\n');
        expect(await r.call('QLEN', q), `round ${i}: delivered ${got}`).toBe(got ? 0 : 1);
      }
    } finally {
      adder.close();
    }
  });

  it('waits behind a blocking GETJOB in a pipeline, then answers the rest in order', async () => {
    const c = await RawClient.connect(srv.port);
    c.send(Buffer.concat([resp('GETJOB', 'TIMEOUT', '300', 'FROM', 'pipeq'), resp('PING', 'after')]));
    const t = await c.until((x) => x.includes('after'));
    expect(t).toBe('*-1\r\n$5\r\nafter\r\n');
    c.close();
  });

  it('keeps every byte value of job bodies and queue names, in one read and split across reads', async () => {
    const all = Buffer.alloc(256 * 3);
    for (let i = 0; i < all.length; i++) all[i] = i & 0xff;
    const large = Buffer.concat([all, randomBytes(70_000), all]); // over 16 KiB: a buffer of its own in the store
    const queue = Buffer.from([0x71, 0xe9, 0x00, 0xff, 0x0d, 0x0a]);
    for (const body of [all, large]) {
      const id = (await r.callBuffer('ADDJOB', queue, body, '0')) as Buffer;
      const shown = (await r.callBuffer('SHOW', id)) as Buffer[];
      expect(shown[shown.length - 1]).toEqual(body);
      const [[q, gotId, got]] = (await r.callBuffer('GETJOB', 'FROM', queue)) as Buffer[][];
      expect(q).toEqual(queue);
      expect(gotId).toEqual(id);
      expect(got).toEqual(body);
      expect(await r.call('ACKJOB', id.toString('latin1'))).toBe(1);
    }
    // The same request split in two writes: the reader usually gets two
    // reads and holds the first part (the pause makes that likely; the test
    // holds either way).
    const c = await RawClient.connect(srv.port);
    const req = resp('ADDJOB', 'splitq', all.toString('latin1'), '0');
    c.send(req.subarray(0, 300));
    await new Promise((done) => setTimeout(done, 20));
    c.send(req.subarray(300));
    await c.until((t) => t.endsWith('\r\n'));
    c.close();
    const [[, , got]] = (await r.callBuffer('GETJOB', 'FROM', 'splitq')) as Buffer[][];
    expect(got).toEqual(all);
  });

  it('reassembles requests sent one byte at a time', async () => {
    const c = await RawClient.connect(srv.port);
    const body = Buffer.from('binary\r\n\0body');
    const req = Buffer.concat([resp('ADDJOB', 'bytewise', body, '0'), Buffer.from('QLEN bytewise\r\n')]);
    for (const byte of req) {
      c.send(Buffer.from([byte]));
      await new Promise((res) => setImmediate(res));
    }
    const t = await c.until((x) => x.endsWith(':1\r\n'));
    expect(t).toMatch(/^\+D-[0-9a-f]{8}-\S{24}-05a1\r\n:1\r\n$/);
    c.close();
    const [[, , got]] = (await r.callBuffer('GETJOB', 'FROM', 'bytewise')) as Buffer[][];
    expect(Buffer.compare(got!, body)).toBe(0);
  });
});

describe('protocol errors close the connection after answering what came before', () => {
  const cases: [string, string | Buffer, string][] = [
    ['bad multibulk length', '*abc\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
    ['too many arguments', '*99999999\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
    ['negative bulk length', '*1\r\n$-5\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
    ['huge bulk length', '*2\r\n$4\r\nPING\r\n$999999999999\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
    ['missing $', '*1\r\nPING\r\n', "-ERR Protocol error: expected '$', got 'P'\r\n"],
    ['unbalanced quotes', 'PING "oops\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
  ];
  for (const [name, input, reply] of cases) {
    it(name, async () => {
      const c = await RawClient.connect(srv.port);
      c.send(Buffer.concat([Buffer.from('PING\r\n'), Buffer.from(input)]));
      await c.closedByServer();
      expect(c.text).toBe('+PONG\r\n' + reply);
    });
  }

  it('an inline request over 64 KiB', async () => {
    const c = await RawClient.connect(srv.port);
    c.send('PING ' + 'x'.repeat(70 * 1024));
    await c.closedByServer();
    expect(c.text).toBe('-ERR Protocol error: too big inline request\r\n');
  });

  it('a request larger than client-query-buffer-limit', async () => {
    const c = await RawClient.connect(srv.port);
    c.send(`*3\r\n$6\r\nADDJOB\r\n$1\r\nq\r\n$${4 * 1024 * 1024}\r\n`);
    c.send(Buffer.alloc(3 * 1024 * 1024, 0x61));
    await c.closedByServer();
    expect(c.text).toBe('');
  });
});

describe('hostile input', () => {
  it('random bytes, half-sent frames and dropped connections do not stop the server', async () => {
    const conns: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      conns.push(
        new Promise<void>((resolve) => {
          const s = net.connect(srv.port, '127.0.0.1');
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.on('connect', () => {
            const kind = i % 4;
            if (kind === 0) s.write(randomBytes(1 + (i % 512)));
            else if (kind === 1) s.write(`*3\r\n$6\r\nADDJOB\r\n$1\r\nq\r\n$100\r\nhalf`);
            else if (kind === 2) s.write(Buffer.concat([Buffer.from('*'), randomBytes(64)]));
            else s.write(`*2\r\n$6\r\nGETJOB\r\n$4\r\nFROM`);
            setTimeout(() => s.destroy(), 20 + (i % 30));
          });
        }),
      );
    }
    await Promise.all(conns);
    expect(await r.call('PING')).toBe('PONG');
    const id = await r.call('ADDJOB', 'after-storm', 'x', '0');
    expect(await r.call('GETJOB', 'FROM', 'after-storm')).toEqual([['after-storm', id, 'x']]);
  });

  it('thousands of connections opened and dropped', async () => {
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from(
          { length: 200 },
          () =>
            new Promise<void>((resolve) => {
              const s = net.connect(srv.port, '127.0.0.1', () => s.destroy());
              s.on('close', () => resolve());
              s.on('error', () => resolve());
            }),
        ),
      );
    }
    expect(await r.call('PING')).toBe('PONG');
    const clients = (await r.call('CLIENT', 'LIST')) as string;
    expect(clients.trim().split('\n').length).toBeLessThan(20);
  });
});
