// A node filled to its maxmemory refuses with the reference's errors and
// nothing else: it keeps serving, keeps every job it accepted, and its store
// stays within the limit. A maxmemory the machine cannot hold is refused at
// start-up and by CONFIG SET.
import { describe, it, expect, afterEach } from 'vitest';
import Redis from 'ioredis';
import os from 'node:os';
import { startServer, type ServerHandle } from '../helpers/server.js';
import { err, infoField } from '../helpers/replies.js';

const OUT_OF_MEMORY =
  "NOREPL Not enough reachable nodes for the requested replication level, since I'm unable to hold a copy of the message for the following reason: I'm out of memory";
const OOM = "OOM command not allowed when used memory > 'maxmemory'.";

let srv: ServerHandle | null = null;
let r: Redis | null = null;
afterEach(async () => {
  r?.disconnect();
  await srv?.destroy();
  srv = null;
  r = null;
});

describe('memory limits', () => {
  it('filling a node to maxmemory gives the reference errors and keeps what it accepted', async () => {
    const maxmemory = 4 * 1024 * 1024;
    srv = await startServer({ config: { maxmemory: String(maxmemory) } });
    r = new Redis({ port: srv.port, maxRetriesPerRequest: 1 });
    const body = 'x'.repeat(1000);
    const accepted: string[] = [];
    const errors = new Set<string>();
    // Pipelined batches until the node refuses a whole batch.
    for (let round = 0; round < 100; round++) {
      const p = r.pipeline();
      for (let i = 0; i < 200; i++) p.call('ADDJOB', 'fill', body, '0');
      const res = (await p.exec())!;
      let refused = 0;
      for (const [e, id] of res) {
        if (e) {
          errors.add(e.message);
          refused++;
        } else accepted.push(id as string);
      }
      if (refused === res.length) break;
    }
    // Refused with the reference's words, and only those.
    expect([...errors]).toEqual([OUT_OF_MEMORY]);
    expect(accepted.length).toBeGreaterThan(1000);
    const info = (await r.call('INFO', 'memory')) as string;
    expect(Number(infoField(info, 'used_memory'))).toBeLessThanOrEqual(maxmemory);
    expect(Number(infoField(info, 'used_memory'))).toBeGreaterThan(maxmemory * 0.7);
    // Still serving, with every accepted job.
    expect(await r.call('PING')).toBe('PONG');
    expect(await r.call('QLEN', 'fill')).toBe(accepted.length);
    const [[queue, id, got]] = (await r.call('GETJOB', 'FROM', 'fill')) as [string, string, string][];
    expect(queue).toBe('fill');
    expect(id).toBe(accepted[0]);
    expect(got).toBe(body);
    expect(await r.call('ACKJOB', id)).toBe(1);

    // Under a lowered limit, commands that need memory get -OOM; reads still work.
    expect(await r.call('CONFIG', 'SET', 'maxmemory', String(maxmemory / 2))).toBe('OK');
    expect(await err(r.call('ADDJOB', 'fill', body, '0'))).toBe(OOM);
    expect(await err(r.call('NACK', accepted[1]!))).toBe(OOM);
    expect(await r.call('QLEN', 'fill')).toBe(accepted.length - 1);
    expect(await r.call('CONFIG', 'SET', 'maxmemory', String(maxmemory * 4))).toBe('OK');
    expect(typeof (await r.call('ADDJOB', 'fill', body, '0'))).toBe('string');
  });

  it('refuses a maxmemory the machine cannot hold, naming the most it can', async () => {
    const tooMuch = os.totalmem() * 2;
    srv = await startServer();
    r = new Redis({ port: srv.port, maxRetriesPerRequest: 1 });
    const e = await err(r.call('CONFIG', 'SET', 'maxmemory', String(tooMuch)));
    expect(e).toMatch(/^ERR maxmemory \d+ is more than this node can hold: at most (\d+) bytes/);
    const most = Number(/at most (\d+) bytes/.exec(e)![1]);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThan(os.totalmem());
    expect(await r.call('CONFIG', 'SET', 'maxmemory', String(most))).toBe('OK');
    expect(await r.call('CONFIG', 'GET', 'maxmemory')).toEqual(['maxmemory', String(most)]);
    r.disconnect();
    r = null;
    await srv.destroy();
    srv = null;
    await expect(startServer({ config: { maxmemory: String(tooMuch) } })).rejects.toThrow(/more than this node can hold/);
  });
});
