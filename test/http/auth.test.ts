// Access to the HTTP port (docs/http-api.md, "Access"): with requirepass,
// 401 without credentials, Bearer and Basic work, the login form sets a
// session cookie that works, a wrong password is refused and logged without
// the password; POSTs need the CSRF token and a same-origin Origin; without
// requirepass, protected mode refuses other addresses (403).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http from 'node:http';
import os from 'node:os';
import { request, get, startHttpServer } from '../helpers/http.js';
import { NetNs } from '../helpers/netns.js';
import { waitFor, type ServerHandle } from '../helpers/server.js';

const PASS = 'http-pass-4f2a9c';
const WRONG = 'http-wrong-8d1e7b';

let secured: ServerHandle & { http: number };
let open: ServerHandle & { http: number };

beforeAll(async () => {
  [secured, open] = await Promise.all([startHttpServer({ config: { requirepass: PASS } }), startHttpServer()]);
});
afterAll(async () => {
  await Promise.all([secured?.destroy(), open?.destroy()]);
});

const bearer = { Authorization: `Bearer ${PASS}` };

/** Logs in with the form; the session cookie's name=value. */
async function login(password = PASS): Promise<{ status: number; cookie: string | null; location: string | null; text: string }> {
  const res = await request(secured.http, 'POST', '/login', { form: { password } });
  const set = res.headers.get('set-cookie');
  return { status: res.status, cookie: set === null ? null : set.split(';')[0]!, location: res.headers.get('location'), text: res.text };
}

describe('with requirepass', () => {
  it('refuses requests without credentials: 401 for the API, a redirect to /login for the page', async () => {
    for (const path of ['/api/node', '/metrics', '/healthz', '/readyz', '/api/queues?local=1']) {
      const res = await get(secured.http, path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate'), path).toBe('Bearer');
      expect(typeof res.json.error, path).toBe('string');
    }
    const page = await get(secured.http, '/');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login');
    const form = await get(secured.http, '/login');
    expect(form.status).toBe(200);
    expect(form.text).toContain('name="password"');
    expect((await get(secured.http, '/assets/login.css')).status).toBe(200);
  });

  it('takes the password as a Bearer token or with Basic auth (any user)', async () => {
    expect((await get(secured.http, '/api/node', bearer)).status).toBe(200);
    const basic = `Basic ${Buffer.from(`scraper:${PASS}`).toString('base64')}`;
    const m = await get(secured.http, '/metrics', { Authorization: basic });
    expect(m.status).toBe(200);
    expect(m.text).toContain('disque_up 1');
    expect((await get(secured.http, '/api/node', { Authorization: `Bearer ${WRONG}` })).status).toBe(401);
    expect((await get(secured.http, '/api/node', { Authorization: `Basic ${Buffer.from(`x:${WRONG}`).toString('base64')}` })).status).toBe(401);
  });

  it('logs a browser in with the form: the session cookie works until logout', async () => {
    const l = await login();
    expect(l.status).toBe(303);
    expect(l.location).toBe('/');
    expect(l.cookie).toMatch(/^disque_session=[0-9a-f]{64}$/);
    const set = (await request(secured.http, 'POST', '/login', { form: { password: PASS } })).headers.get('set-cookie')!;
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
    expect(set).toMatch(/Path=\//);

    const cookie = { Cookie: l.cookie! };
    const session = await get(secured.http, '/api/session', cookie);
    expect(session.status).toBe(200);
    expect(session.json.authRequired).toBe(true);
    expect(session.json.csrf).toMatch(/^[0-9a-f]{64}$/);
    expect((await get(secured.http, '/api/node', cookie)).status).toBe(200);
    expect((await get(secured.http, '/', cookie)).status).not.toBe(303);

    const out = await request(secured.http, 'POST', '/logout', { headers: { ...cookie, 'X-CSRF-Token': session.json.csrf } });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/Max-Age=0/);
    expect((await get(secured.http, '/api/node', cookie)).status).toBe(401);
  });

  it('refuses a wrong password on the form, logs it without the password', async () => {
    const l = await login(WRONG);
    expect(l.status).toBe(401);
    expect(l.cookie).toBeNull();
    expect(l.text).toContain('Wrong password');
    expect(l.text).toContain('name="password"');
    await waitFor(() => secured.log().includes('Failed HTTP login from 127.0.0.1'), 'the failed login in the log', 5000);
    expect(secured.log()).not.toContain(WRONG);
    expect(secured.log()).not.toContain(PASS);
  });

  it('needs the CSRF token for a POST with a session, and refuses a foreign Origin', async () => {
    const { cookie } = await login();
    const headers = { Cookie: cookie! };
    const { csrf } = (await get(secured.http, '/api/session', headers)).json;
    const body = { state: 'none' };
    const none = await request(secured.http, 'POST', '/api/queue/csrfq/pause', { headers, body });
    expect(none.status).toBe(403);
    expect(none.json.error).toMatch(/CSRF/);
    const wrong = await request(secured.http, 'POST', '/api/queue/csrfq/pause', { headers: { ...headers, 'X-CSRF-Token': 'f'.repeat(64) }, body });
    expect(wrong.status).toBe(403);
    const foreign = await request(secured.http, 'POST', '/api/queue/csrfq/pause', {
      headers: { ...headers, 'X-CSRF-Token': csrf, Origin: 'http://evil.example' },
      body,
    });
    expect(foreign.status).toBe(403);
    expect(foreign.json.error).toMatch(/Cross-origin/);
    const ok = await request(secured.http, 'POST', '/api/queue/csrfq/pause', {
      headers: { ...headers, 'X-CSRF-Token': csrf, Origin: `http://127.0.0.1:${secured.http}` },
      body,
    });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ ok: true, paused: 'none' });
    // Scripts with the password need no token, but a foreign Origin is refused all the same.
    expect((await request(secured.http, 'POST', '/api/queue/csrfq/pause', { headers: bearer, body })).status).toBe(200);
    expect((await request(secured.http, 'POST', '/api/queue/csrfq/pause', { headers: { ...bearer, Origin: 'http://evil.example' }, body })).status).toBe(403);
  });

  it('ends sessions when requirepass changes', async () => {
    const { cookie } = await login();
    expect((await get(secured.http, '/api/node', { Cookie: cookie! })).status).toBe(200);
    const { csrf } = (await get(secured.http, '/api/session', { Cookie: cookie! })).json;
    expect(csrf).toMatch(/^[0-9a-f]{64}$/);
    const { default: Redis } = await import('ioredis');
    const r = new Redis({ port: secured.port, host: '127.0.0.1', password: PASS, maxRetriesPerRequest: 1 });
    try {
      await r.call('CONFIG', 'SET', 'requirepass', `${PASS}-2`);
      expect((await get(secured.http, '/api/node', { Cookie: cookie! })).status).toBe(401);
      await r.call('CONFIG', 'SET', 'requirepass', PASS);
    } finally {
      r.disconnect();
    }
  });
});

describe('without requirepass', () => {
  it('serves loopback clients; POSTs still need the per-process CSRF token', async () => {
    expect((await get(open.http, '/healthz')).text).toBe('ok\n');
    const s = await get(open.http, '/api/session');
    expect(s.json.authRequired).toBe(false);
    const body = { state: 'none' };
    expect((await request(open.http, 'POST', '/api/queue/q/pause', { body })).status).toBe(403);
    expect((await request(open.http, 'POST', '/api/queue/q/pause', { body, headers: { 'X-CSRF-Token': s.json.csrf } })).status).toBe(200);
    // Login needs no password here: straight to the dashboard.
    expect((await get(open.http, '/login')).headers.get('location')).toBe('/');
  });

  it('refuses a Host name that could be a rebound DNS name; serves IPs, localhost, this machine', async () => {
    const hostGet = (host: string, port: number) =>
      new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/api/session', headers: { Host: host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
    expect(await hostGet(`attacker.example:${open.http}`, open.http)).toBe(403);
    for (const ok of [`127.0.0.1:${open.http}`, `localhost:${open.http}`, `[::1]:${open.http}`, os.hostname()]) {
      expect(await hostGet(ok, open.http), ok).toBe(200);
    }
    // With a password the name does not matter: a rebinding page has no credentials.
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: secured.http, path: '/api/node', headers: { Host: 'dashboard.example', Authorization: `Bearer ${PASS}` } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(res).toBe(200);
  });

  it('refuses other addresses with 403 in protected mode', async () => {
    const ns = await NetNs.create();
    try {
      const r = await ns.send(ns.hostAddr, open.http, Buffer.from('GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n'));
      expect(r.data).toMatch(/^HTTP\/1\.[01] 403 /);
      expect(r.data).toMatch(/Protected mode/);
    } finally {
      await ns.remove();
    }
  });
});
