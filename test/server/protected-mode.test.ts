// Protected mode: with no requirepass and no bind, only loopback clients are
// served. Clients from elsewhere connect from a network namespace of their
// own (test/helpers/netns.ts), so no real network is involved.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, waitFor, type ServerHandle } from '../helpers/server.js';
import { RawClient, resp } from '../helpers/raw.js';
import { infoField } from '../helpers/replies.js';
import { NetNs } from '../helpers/netns.js';
import { isLoopback, PROTECTED_MODE_ERROR } from '../../src/server/protected-mode.js';

let ns: NetNs;
/** Started with: nothing (protected), requirepass, protected-mode no, bind 0.0.0.0. */
let plain: ServerHandle;
let withPass: ServerHandle;
let unprotected: ServerHandle;
let bound: ServerHandle;

beforeAll(async () => {
  ns = await NetNs.create();
  [plain, withPass, unprotected, bound] = await Promise.all([
    startServer(),
    startServer({ config: { requirepass: 'pm-pass' } }),
    startServer({ config: { 'protected-mode': 'no' } }),
    startServer({ config: { bind: '0.0.0.0' } }),
  ]);
});

afterAll(async () => {
  await Promise.all([plain, withPass, unprotected, bound].map((h) => h?.destroy()));
  await ns?.remove();
});

const PING_QUIT = Buffer.concat([resp('PING'), resp('QUIT')]);

/** Runs commands on a loopback connection, one reply line each. */
async function loopback(h: ServerHandle, ...cmds: string[][]): Promise<string> {
  const c = await RawClient.connect(h.port);
  try {
    for (const cmd of cmds) c.send(resp(...cmd));
    return await c.until((t) => t.split('\r\n').length > cmds.length);
  } finally {
    c.close();
  }
}

describe('protected mode', () => {
  it('knows loopback addresses as sockets show them', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::FFFF:127.9.9.9']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['10.0.0.1', '169.254.1.2', '::ffff:10.0.0.1', '128.0.0.1', '::2', 'fe80::1', '1127.0.0.1', '', undefined]) {
      expect(isLoopback(a), String(a)).toBe(false);
    }
  });

  it('serves loopback clients with the defaults', async () => {
    expect(await loopback(plain, ['PING'])).toBe('+PONG\r\n');
  });

  it('refuses a client from another address with the DENIED error and closes it before any command runs', async () => {
    const before = Number(infoField(await loopback(plain, ['INFO', 'stats']), 'total_commands_processed'));
    const r = await ns.send(ns.hostAddr, plain.port, PING_QUIT);
    expect(r).toEqual({ data: PROTECTED_MODE_ERROR, how: 'closed' });
    expect(PROTECTED_MODE_ERROR).toMatch(/^-DENIED Disque is running in protected mode because protected mode is enabled/);
    const stats = await loopback(plain, ['INFO', 'stats']);
    expect(infoField(stats, 'rejected_connections')).toBe('1');
    // Only the two INFO calls ran: not the refused client's PING.
    expect(Number(infoField(stats, 'total_commands_processed'))).toBe(before + 1);
    await waitFor(() => /Protected mode: refused a client from (::ffff:)?169\.254\./.test(plain.log()), 'the refusal in the log', 5000);
    expect(plain.log()).toContain(ns.nsAddr);
  });

  it('lets the client in when a password is set: NOAUTH until it authenticates', async () => {
    const r = await ns.send(ns.hostAddr, withPass.port, Buffer.concat([resp('PING'), resp('AUTH', 'pm-pass'), PING_QUIT]));
    expect(r).toEqual({ data: '-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n+OK\r\n', how: 'closed' });
  });

  it('lets the client in with protected-mode no, or with a bind address', async () => {
    expect(await ns.send(ns.hostAddr, unprotected.port, PING_QUIT)).toEqual({ data: '+PONG\r\n+OK\r\n', how: 'closed' });
    expect(await ns.send(ns.hostAddr, bound.port, PING_QUIT)).toEqual({ data: '+PONG\r\n+OK\r\n', how: 'closed' });
  });

  it('CONFIG SET of protected-mode and requirepass applies to the next connection', async () => {
    const admin = await RawClient.connect(plain.port);
    try {
      const set = async (name: string, value: string) => {
        const before = admin.text.length;
        admin.send(resp('CONFIG', 'SET', name, value));
        await admin.until((t) => t.length > before && t.endsWith('\r\n'));
        expect(admin.text.slice(before)).toBe('+OK\r\n');
      };
      await set('protected-mode', 'no');
      expect(await ns.send(ns.hostAddr, plain.port, PING_QUIT)).toEqual({ data: '+PONG\r\n+OK\r\n', how: 'closed' });
      await set('protected-mode', 'yes');
      expect((await ns.send(ns.hostAddr, plain.port, PING_QUIT)).data).toBe(PROTECTED_MODE_ERROR);
      await set('requirepass', 'now-set');
      expect(await ns.send(ns.hostAddr, plain.port, Buffer.concat([resp('PING'), resp('AUTH', 'now-set'), PING_QUIT]))).toEqual({
        data: '-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n+OK\r\n',
        how: 'closed',
      });
      // The admin connection authenticated when no password was needed.
      await set('requirepass', '');
      expect((await ns.send(ns.hostAddr, plain.port, PING_QUIT)).data).toBe(PROTECTED_MODE_ERROR);
    } finally {
      admin.close();
    }
  });
});
