// IMPORTJOB on one real server: a job made elsewhere arrives with its own ID
// (a node prefix this cluster never had), its counters and its state there.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { startInProcess, type InProcessServer } from '../helpers/inprocess.js';
import { waitFor } from '../helpers/server.js';
import { err, pairs } from '../helpers/replies.js';

let srv: InProcessServer;
let r: Redis;

/** An ID another cluster's node 0badc0de made: odd TTL field for RETRY > 0. */
function foreignId(atMostOnce = false): string {
  return `D-0badc0de-${randomBytes(18).toString('base64')}-05a${atMostOnce ? '0' : '1'}`;
}

let qn = 0;
const queue = () => `imp${++qn}-${Date.now()}`;

beforeAll(async () => {
  srv = await startInProcess();
  r = srv.client();
});
afterAll(async () => {
  await srv.close();
});

describe('IMPORTJOB', () => {
  it('keeps a body of kilobytes byte for byte', async () => {
    const q = queue();
    const id = foreignId();
    const body = randomBytes(5000);
    expect(await r.call('IMPORTJOB', id, q, body, '0')).toBe(id);
    const got = (await r.callBuffer('GETJOB', 'NOHANG', 'FROM', q)) as Buffer[][];
    expect(got[0]![2]!.equals(body)).toBe(true);
  });

  it('takes a queued job with its ID, body, TTL, retry, creation time and counters', async () => {
    const q = queue();
    const id = foreignId();
    const ctime = '1700000000123000007';
    const reply = await r.call('IMPORTJOB', id, q, 'the body', '0', 'TTL', '600', 'RETRY', '30', 'NACKS', '2', 'ADDITIONAL-DELIVERIES', '3', 'CTIME', ctime);
    expect(reply).toBe(id);
    const show = pairs(await r.call('SHOW', id));
    expect(show).toMatchObject({ id, queue: q, state: 'queued', repl: 1, retry: 30, delay: 0, nacks: 2, 'additional-deliveries': 3, body: 'the body' });
    expect(show.ttl).toBeGreaterThanOrEqual(599);
    expect(show.ttl).toBeLessThanOrEqual(600);
    // As digits: ctime does not fit a double.
    const exact = srv.client({ stringNumbers: true });
    expect(String(pairs(await exact.call('SHOW', id)).ctime)).toBe(ctime);
    expect(await r.call('GETJOB', 'NOHANG', 'WITHCOUNTERS', 'FROM', q)).toEqual([[q, id, 'the body', 'nacks', 2, 'additional-deliveries', 3]]);
  });

  it('an older creation time puts the job before newer ones in its queue', async () => {
    const q = queue();
    const added = (await r.call('ADDJOB', q, 'new', '0')) as string;
    const old = foreignId();
    await r.call('IMPORTJOB', old, q, 'old', '0', 'CTIME', '1700000000000000000');
    const peek = (await r.call('QPEEK', q, '2')) as string[][];
    expect(peek.map((j) => j[1])).toEqual([old, added]);
  });

  it('replies -EXISTS for an ID this node has, and leaves that job as it was', async () => {
    const q = queue();
    const id = foreignId();
    await r.call('IMPORTJOB', id, q, 'first', '0');
    expect(await err(r.call('IMPORTJOB', id, q, 'second', '0'))).toBe('EXISTS Job already known in the context of this node');
    expect(pairs(await r.call('SHOW', id)).body).toBe('first');
    expect(await r.call('QLEN', q)).toBe(1);
  });

  it('DELAY: a job not delivered yet is queued when the delay it had left ends', async () => {
    const q = queue();
    const id = foreignId();
    const start = Date.now();
    await r.call('IMPORTJOB', id, q, 'later', '0', 'DELAY', '1', 'TTL', '60');
    const show = pairs(await r.call('SHOW', id));
    expect(show.state).toBe('active');
    expect(show.delay).toBe(1);
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', q)).toBeNull();
    const got = (await r.call('GETJOB', 'TIMEOUT', '5000', 'FROM', q)) as string[][];
    expect(got[0]![1]).toBe(id);
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
  });

  it('STATE active: a delivered job is queued again after REQUEUE ms, counting an additional delivery', async () => {
    const q = queue();
    const id = foreignId();
    await r.call('IMPORTJOB', id, q, 'in progress', '0', 'STATE', 'active', 'RETRY', '30', 'REQUEUE', '300', 'ADDITIONAL-DELIVERIES', '1');
    const show = pairs(await r.call('SHOW', id));
    expect(show.state).toBe('active');
    expect(show['next-requeue-within']).toBeLessThanOrEqual(300);
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', q)).toBeNull();
    const got = (await r.call('GETJOB', 'TIMEOUT', '5000', 'WITHCOUNTERS', 'FROM', q)) as unknown[][];
    expect(got[0]!.slice(1)).toEqual([id, 'in progress', 'nacks', 0, 'additional-deliveries', 2]);
  });

  it('STATE active without REQUEUE waits a whole RETRY period', async () => {
    const id = foreignId();
    await r.call('IMPORTJOB', id, queue(), 'x', '0', 'STATE', 'active', 'RETRY', '30');
    const within = pairs(await r.call('SHOW', id))['next-requeue-within'] as number;
    expect(within).toBeGreaterThan(29_000);
    expect(within).toBeLessThanOrEqual(30_000);
  });

  it('an at-most-once job already delivered is never queued again', async () => {
    const q = queue();
    const id = foreignId(true);
    await r.call('IMPORTJOB', id, q, 'once', '0', 'STATE', 'active', 'RETRY', '0', 'REPLICATE', '1');
    const show = pairs(await r.call('SHOW', id));
    expect(show.state).toBe('active');
    expect(show['next-requeue-within']).toBeNull();
    expect(await r.call('GETJOB', 'NOHANG', 'FROM', q)).toBeNull();
  });

  it('ACKJOB acknowledges an imported job whose ID names a node this cluster never had', async () => {
    const q = queue();
    const id = foreignId();
    await r.call('IMPORTJOB', id, q, 'ack me', '0');
    expect(((await r.call('GETJOB', 'FROM', q)) as string[][])[0]![1]).toBe(id);
    expect(await r.call('ACKJOB', id)).toBe(1);
    await waitFor(async () => (await r.call('SHOW', id)) === null, 'the acked job is collected');
  });

  it('refuses bad input with a clear error and changes nothing', async () => {
    const q = queue();
    const id = foreignId();
    expect(await err(r.call('IMPORTJOB', 'D-nope', q, 'b', '0'))).toBe('BADID Invalid Job ID format.');
    expect(await err(r.call('IMPORTJOB', id, q, 'b'))).toBe("ERR wrong number of arguments for 'importjob' command");
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'STATE', 'acked'))).toBe('ERR STATE must be queued or active');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'STATE', 'active', 'DELAY', '5'))).toMatch(/^ERR DELAY is for jobs never queued yet/);
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'REQUEUE', '5'))).toBe('ERR REQUEUE is only valid with STATE active');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'RETRY', '0', 'REPLICATE', '1'))).toMatch(/^ERR RETRY does not match the job ID/);
    expect(await err(r.call('IMPORTJOB', foreignId(true), q, 'b', '0', 'RETRY', '0', 'REPLICATE', '1', 'STATE', 'active', 'REQUEUE', '1'))).toMatch(
      /^ERR REQUEUE needs RETRY > 0/,
    );
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'CTIME', 'yesterday'))).toMatch(/^ERR CTIME must be/);
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'TTL', '0'))).toBe('ERR TTL must be a number > 0');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'TTL', '10', 'DELAY', '10'))).toMatch(/^ERR The specified DELAY is greater than TTL/);
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'NACKS'))).toBe('ERR syntax error');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'COLOR', 'blue'))).toBe('ERR syntax error');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '-1'))).toBe('ERR timeout is negative');
    expect(await err(r.call('IMPORTJOB', id, q, 'b', '0', 'REPLICATE', '2'))).toBe('NOREPL Not enough reachable nodes for the requested replication level');
    expect(await r.call('SHOW', id)).toBeNull();
    expect(await r.call('QLEN', q)).toBe(0);
  });

  it('refuses a queue paused in input, as ADDJOB does', async () => {
    const q = queue();
    await r.call('PAUSE', q, 'in');
    expect(await err(r.call('IMPORTJOB', foreignId(), q, 'b', '0'))).toBe('PAUSED Queue paused in input, try later');
  });

  it('is in the command table as a write, admin command', async () => {
    expect(await r.call('COMMAND', 'INFO', 'importjob')).toEqual([['importjob', -5, ['write', 'denyoom', 'admin'], 0, 0, 0]]);
  });
});

describe('IMPORTJOB with requirepass', () => {
  let locked: InProcessServer;
  beforeAll(async () => {
    locked = await startInProcess({ requirepass: 'wt28-secret' });
  });
  afterAll(async () => {
    await locked?.close();
  });

  it('is refused before AUTH and accepted after', async () => {
    const anonymous = locked.client({ protocol: 2, enableReadyCheck: false });
    const id = foreignId();
    expect(await err(anonymous.call('IMPORTJOB', id, 'lq', 'b', '0'))).toBe('NOAUTH Authentication required.');
    const c = locked.client({ protocol: 2, password: 'wt28-secret' });
    expect(await c.call('SHOW', id)).toBeNull();
    expect(await c.call('IMPORTJOB', id, 'lq', 'b', '0')).toBe(id);
  });
});
