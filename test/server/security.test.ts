// Password hygiene: a wrong password is logged with the client's address but
// never shown anywhere (log, INFO, CLIENT LIST, SLOWLOG, MONITOR, replies);
// MONITOR and SLOWLOG show AUTH, HELLO ... AUTH and CONFIG SET requirepass
// arguments as "(redacted)"; failed attempts cannot flood the log.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { RawClient, resp } from '../helpers/raw.js';
import { LIMITED_BURST } from '../../src/config/log.js';

const GOOD = 'correct-horse-7e4a91';
const WRONG = 'wrong-guess-b3c5d7e9';
const WRONG_HELLO = 'hello-guess-a1f0c2d4';
const ROTATED = 'rotated-pass-58d2e6f0';
const SECRETS = [GOOD, WRONG, WRONG_HELLO, ROTATED];

let h: ServerHandle;

beforeAll(async () => {
  h = await startServer({ config: { requirepass: GOOD } });
});
afterAll(async () => {
  await h?.destroy();
});

/** Sends one command and waits for its reply to be complete (`done` on the new text). */
async function call(c: RawClient, done: (reply: string) => boolean, ...args: string[]): Promise<string> {
  const before = c.text.length;
  c.send(resp(...args));
  await c.until((t) => done(t.slice(before)));
  return c.text.slice(before);
}
const line = (r: string) => r.endsWith('\r\n');

function expectNoSecret(where: string, text: string): void {
  for (const s of SECRETS) expect(text.includes(s), `${where} shows ${s}`).toBe(false);
}

describe('passwords', () => {
  it('a wrong AUTH or HELLO AUTH is logged with the address, and no password shows anywhere', async () => {
    const admin = await RawClient.connect(h.port);
    const monitor = await RawClient.connect(h.port);
    const guesser = await RawClient.connect(h.port);
    try {
      expect(await call(admin, line, 'AUTH', GOOD)).toBe('+OK\r\n');
      expect(await call(admin, line, 'CONFIG', 'SET', 'slowlog-log-slower-than', '0')).toBe('+OK\r\n');
      expect(await call(admin, line, 'SLOWLOG', 'RESET')).toBe('+OK\r\n');
      expect(await call(monitor, line, 'AUTH', GOOD)).toBe('+OK\r\n');
      expect(await call(monitor, line, 'MONITOR')).toBe('+OK\r\n');

      expect(await call(guesser, line, 'AUTH', WRONG)).toBe('-ERR invalid password\r\n');
      expect(await call(guesser, line, 'HELLO', '2', 'AUTH', 'default', WRONG_HELLO)).toBe(
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n',
      );
      // A user name forgotten: the password is still not echoed, nor shown by MONITOR.
      expect(await call(guesser, line, 'HELLO', '2', 'AUTH', WRONG_HELLO)).toBe("-ERR Syntax error in HELLO option 'AUTH'\r\n");
      expect(await call(guesser, (r) => r.includes('master'), 'HELLO', '2', 'AUTH', 'default', GOOD)).toMatch(/^\*14\r\n/);
      expect(await call(guesser, line, 'PING')).toBe('+PONG\r\n');
      expect(await call(admin, line, 'CONFIG', 'SET', 'requirepass', ROTATED)).toBe('+OK\r\n');
      expect(await call(admin, line, 'CONFIG', 'SET', 'requirepass', GOOD)).toBe('+OK\r\n');
      await call(admin, line, 'PING', 'end-of-test');
      await monitor.until((t) => t.includes('end-of-test'));

      // MONITOR: the commands are there, their secrets are not.
      expect(monitor.text).toContain('"AUTH" "(redacted)"');
      expect(monitor.text).toContain('"HELLO" "2" "AUTH" "(redacted)" "(redacted)"');
      expect(monitor.text).toContain('"CONFIG" "SET" "requirepass" "(redacted)"');
      expect(monitor.text).toContain('"HELLO" "2" "AUTH" "(redacted)"\r\n');
      expectNoSecret('MONITOR', monitor.text);

      // SLOWLOG (every command is slow now) has the same view.
      const slowlog = await call(admin, (r) => r.includes('SLOWLOG'), 'SLOWLOG', 'GET', '-1');
      expect(slowlog).toContain('$4\r\nAUTH\r\n$10\r\n(redacted)\r\n');
      expect(slowlog).toContain('$5\r\nHELLO\r\n$1\r\n2\r\n$4\r\nAUTH\r\n$10\r\n(redacted)\r\n$10\r\n(redacted)\r\n');
      expect(slowlog).toContain('$11\r\nrequirepass\r\n$10\r\n(redacted)\r\n');
      expectNoSecret('SLOWLOG', slowlog);

      expectNoSecret('INFO', await call(admin, (r) => r.includes('# CPU') && r.endsWith('\r\n\r\n'), 'INFO', 'all'));
      expectNoSecret('CLIENT LIST', await call(admin, (r) => r.endsWith('\n\r\n'), 'CLIENT', 'LIST'));
      expectNoSecret('replies to the guesser', guesser.text);

      // The log names the client's address and port, never the password.
      const from = `(::ffff:)?127\\.0\\.0\\.1:${guesser.socket.localPort}`;
      await waitFor(
        () => new RegExp(` # Failed AUTH from ${from} `).test(h.log()) && new RegExp(` # Failed HELLO AUTH from ${from} `).test(h.log()),
        'both failures in the log',
        5000,
      );
      expectNoSecret('the log', h.log());
    } finally {
      for (const c of [admin, monitor, guesser]) c.close();
    }
  });

  it('a client guessing passwords in a loop cannot flood the log', async () => {
    const failures = () => h.log().split('\n').filter((l) => / # Failed (HELLO )?AUTH from /.test(l)).length;
    const before = failures();
    const c = await RawClient.connect(h.port);
    try {
      for (let i = 0; i < 200; i++) c.send(resp('AUTH', `${WRONG}-${i}`));
      await c.until((t) => t.split('-ERR invalid password\r\n').length > 200);
    } finally {
      c.close();
    }
    // The burst (shared with the test above) and at most one more line for time passing.
    const after = failures();
    expect(after).toBeGreaterThan(before);
    expect(after).toBeLessThanOrEqual(LIMITED_BURST + 1);
    expectNoSecret('the log', h.log());
  });
});
