// The node's HTTP port (docs/http-api.md): the dashboard, its JSON API,
// /metrics and the health checks. Every request goes through the same
// steps: protected mode, authentication (session cookie, Bearer or Basic,
// when requirepass is set), for POSTs the Origin and CSRF checks, then the
// route. Errors are JSON {"error": "..."}; a handler's failure costs that
// request, never the node.
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import type { Socket } from 'node:net';
import type { HttpHost } from './host.js';
import { Router, HttpError, sendJson, sendText, redirect, readBody, type RequestContext } from './router.js';
import { Auth, sessionCookie, type Identity } from './auth.js';
import { Api } from './api.js';
import { Rates } from './rates.js';
import type { Metrics } from './metrics.js';
import { registerNodeRoutes } from './api-node.js';
import { registerQueueRoutes } from './api-queues.js';
import { registerJobRoutes } from './api-jobs.js';
import { registerScheduledRoutes } from './api-scheduled.js';
import { registerDeadLetterRoutes } from './dead-letters.js';
import { sendAsset, sendIndex, sendLoginPage } from './static.js';
import { protectedModeRefuses } from '../config/access.js';

/** Served without authentication (the login page and what it needs). */
const PUBLIC = new Set(['GET /login', 'POST /login', 'HEAD /login', 'GET /assets/login.css', 'HEAD /assets/login.css']);
/** Pages a browser opens: without a session they go to /login instead of a 401. */
const PAGES = new Set(['/', '/index.html']);

export class HttpServer {
  private servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly router = new Router();
  readonly auth: Auth;
  readonly rates: Rates;
  /** Made at the first scrape: prom-client takes ~100 ms to load, which a restarting node should not wait for. */
  private metrics: Promise<{ m: Metrics; contentType: string }> | null = null;
  /** The port bound (0 until listening). */
  port = 0;

  constructor(private readonly host: HttpHost) {
    this.auth = new Auth(host.config, host.log);
    this.rates = new Rates(host.store);
    const api = new Api(host, this.rates, () => this.port);
    this.routes();
    registerNodeRoutes(this.router, api);
    registerQueueRoutes(this.router, api);
    registerJobRoutes(this.router, api);
    registerScheduledRoutes(this.router, api);
    registerDeadLetterRoutes(this.router, api);
  }

  private routes(): void {
    const r = this.router;
    r.on('GET', '/', ({ res, req }) => sendIndex(res, req.method === 'HEAD'));
    r.on('GET', '/index.html', ({ res, req }) => sendIndex(res, req.method === 'HEAD'));
    r.on('GET', '/assets/:name', ({ res, req, params }) => sendAsset(res, params.name!, req.method === 'HEAD'));
    r.on('GET', '/metrics', async ({ res }) => {
      this.metrics ??= import('./metrics.js').then((mod) => ({ m: new mod.Metrics(this.host), contentType: mod.METRICS_CONTENT_TYPE }));
      const { m, contentType } = await this.metrics;
      const start = performance.now();
      const cpu = process.cpuUsage();
      const body = await m.exposition();
      const ms = (performance.now() - start).toFixed(1);
      const used = process.cpuUsage(cpu);
      // Server-Timing: what building the exposition took (what a scrape costs the node), wall and CPU time.
      const timing = `build;dur=${ms}, cpu;dur=${((used.user + used.system) / 1000).toFixed(1)}`;
      res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': body.length, 'Server-Timing': timing });
      res.end(body);
    });
    r.on('GET', '/api/session', ({ session }) => ({ csrf: this.auth.csrfFor(session), authRequired: this.auth.required }));
    r.on('GET', '/login', ({ res }) => (this.auth.required ? sendLoginPage(res, 200, null) : redirect(res, '/')));
    r.on('POST', '/login', async ({ req, res, addr }) => {
      if (!this.auth.required) return redirect(res, '/');
      const password = await formPassword(req);
      const id = password === null ? null : this.auth.login(password, addr);
      if (id === null) return sendLoginPage(res, 401, 'Wrong password');
      redirect(res, '/', { 'Set-Cookie': sessionCookie(id) });
    });
    r.on('POST', '/logout', ({ res, session }) => {
      this.auth.logout(session);
      sendJson(res, 200, { ok: true }, { 'Set-Cookie': sessionCookie('') });
    });
  }

  /** Listens on `port` on each bind address (all interfaces when none); returns the port bound. */
  async listen(port: number, binds: string[]): Promise<number> {
    const addrs = binds.length > 0 ? binds : [undefined];
    let p = port;
    try {
      for (const host of addrs) {
        const srv = http.createServer((req, res) => void this.handle(req, res));
        srv.on('connection', (s: Socket) => {
          this.sockets.add(s);
          s.once('close', () => this.sockets.delete(s));
        });
        srv.headersTimeout = 10_000;
        srv.requestTimeout = 30_000;
        srv.keepAliveTimeout = 5_000;
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen({ port: p, host }, () => {
            srv.removeListener('error', reject);
            resolve();
          });
        });
        srv.on('error', (e) => this.host.log.warning(`HTTP listener error: ${e.message}`));
        this.servers.push(srv);
        const a = srv.address();
        if (a !== null && typeof a === 'object') p = a.port;
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.port = p;
    return p;
  }

  close(): void {
    for (const s of this.servers) s.close();
    for (const s of this.sockets) s.destroy();
    this.servers = [];
    this.port = 0;
  }

  /** The node's cron, about once a second: a rates sample, expired sessions. */
  cron(now: number): void {
    this.rates.sample(now);
    this.auth.sweep();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const remote = req.socket.remoteAddress;
    const addr = `${(remote ?? '?').replace(/^::ffff:/, '')}:${req.socket.remotePort ?? 0}`;
    try {
      if (protectedModeRefuses(this.host.config, remote)) {
        this.host.log.limited('verbose', 'protected-mode', `Protected mode: refused an HTTP request from ${addr}`);
        throw new HttpError(403, 'Protected mode: with no requirepass and no bind, only clients on this machine are served');
      }
      if (!this.hostAllowed(req.headers.host)) {
        throw new HttpError(403, `Host ${req.headers.host ?? ''} refused: with no requirepass only an IP address, localhost, a bind address or this machine's name is served (DNS rebinding)`);
      }
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://node');
      } catch {
        throw new HttpError(400, 'Bad URL');
      }
      const method = req.method ?? 'GET';
      const path = url.pathname;
      const isPublic = PUBLIC.has(`${method} ${path}`);
      let id: Identity | null = this.auth.identify(req, addr);
      if (id === null) {
        if (!isPublic) return this.unauthorized(res, method, path);
        id = { auth: 'none', session: null };
      }
      if (method === 'POST') this.checkPost(req, id, path);
      const route = this.router.match(method, path);
      if (route === null) throw new HttpError(404, `No such endpoint: ${method} ${path}`);
      if (route === 'method') throw new HttpError(405, `${method} is not allowed on ${path}`);
      const ctx: RequestContext = { req, res, url, params: route.params, auth: id.auth, session: id.session, addr };
      const value = await route.handler(ctx);
      if (value !== undefined && !res.headersSent) sendJson(res, 200, value);
    } catch (e) {
      this.fail(res, e, req);
    }
  }

  /**
   * Without a password, a page from another site that made its own name
   * resolve to this node (DNS rebinding) would pass the Origin check, read a
   * CSRF token and act. Browsers send the name they resolved as Host, so only
   * names that cannot be such an alias are served: IP addresses, localhost,
   * bind addresses, this machine's name. With requirepass the attacker has
   * no credentials, and any name is fine.
   */
  private hostAllowed(header: string | undefined): boolean {
    if (header === undefined || this.host.config.str('requirepass') !== '') return true;
    const name = header.replace(/:\d+$/, '').replace(/^\[|\]$/g, '').toLowerCase();
    if (net.isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return true;
    return name === os.hostname().toLowerCase() || this.host.config.list('bind').some((b) => b.toLowerCase() === name);
  }

  /** 401, or for a page a browser opens, the login page. */
  private unauthorized(res: http.ServerResponse, method: string, path: string): void {
    if ((method === 'GET' || method === 'HEAD') && PAGES.has(path)) return redirect(res, '/login');
    sendJson(res, 401, { error: 'Authentication required: log in, or send the requirepass as a Bearer token' }, { 'WWW-Authenticate': 'Bearer' });
  }

  /** POSTs: no foreign Origin, and (for browsers) the CSRF token. The login form needs neither token nor session. */
  private checkPost(req: http.IncomingMessage, id: Identity, path: string): void {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
      throw new HttpError(403, `Cross-origin request refused (Origin ${origin})`);
    }
    if (path === '/login') return;
    if (!this.auth.csrfOk(req, id)) throw new HttpError(403, 'Missing or wrong CSRF token (X-CSRF-Token, from GET /api/session)');
  }

  private fail(res: http.ServerResponse, e: unknown, req: http.IncomingMessage): void {
    let status = 500;
    let message = 'Internal error, see the server log';
    if (e instanceof HttpError) {
      status = e.status;
      message = e.message;
    } else {
      this.host.log.warning(`HTTP ${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, status, { error: message });
  }
}

/** The password field of the login form (urlencoded), or of a JSON body. */
async function formPassword(req: http.IncomingMessage): Promise<string | null> {
  const body = (await readBody(req, 64 * 1024)).toString('utf8');
  if ((req.headers['content-type'] ?? '').includes('application/json')) {
    try {
      const v = (JSON.parse(body) as { password?: unknown }).password;
      return typeof v === 'string' ? v : null;
    } catch {
      return null;
    }
  }
  return new URLSearchParams(body).get('password');
}
