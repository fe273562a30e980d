// Who may use the HTTP port (docs/http-api.md, "Access"). With requirepass
// set: a browser logs in once and carries a session cookie; scripts and
// scrapers send the password as a Bearer token or Basic auth. Actions
// (POSTs) of browsers also need a CSRF token: from the session, or, with
// no requirepass, one per process. Passwords are compared in constant time
// (src/config/access.ts) and failures logged rate-limited, never the
// password. Sessions live in memory: a restart logs everyone out, and so
// does a new requirepass.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { passwordMatches } from '../config/access.js';
import type { AuthKind } from './router.js';

export const SESSION_COOKIE = 'disque_session';
/** A session unused this long is gone. */
export const SESSION_IDLE_MS = 12 * 3600 * 1000;
/** At most this many sessions; the least recently used goes first. */
const MAX_SESSIONS = 10_000;

interface Session {
  csrf: string;
  lastUsed: number;
  /** Digest of the requirepass it logged in with: a new password ends it. */
  pass: string;
}

export interface Identity {
  auth: AuthKind;
  session: string | null;
}

function token(): string {
  return randomBytes(32).toString('hex');
}

function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a, 'utf8').digest();
  const y = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(x, y);
}

export class Auth {
  /** In insertion order = least recently used first (touch re-inserts). */
  private readonly sessions = new Map<string, Session>();
  /** The CSRF token of requests without a session (no requirepass). */
  private readonly processCsrf = token();
  private passDigestOf = '';
  private passDigest = '';

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** requirepass is set: every request must prove it knows it. */
  get required(): boolean {
    return this.config.str('requirepass') !== '';
  }

  private currentPassDigest(): string {
    const pass = this.config.str('requirepass');
    if (pass !== this.passDigestOf) {
      this.passDigestOf = pass;
      this.passDigest = createHash('sha256').update(pass, 'latin1').digest('hex');
    }
    return this.passDigest;
  }

  /**
   * Who the request is: a live session (cookie), the password (Bearer or
   * Basic), or nobody. Null when requirepass is set and neither was shown
   * (a wrong password is logged).
   */
  identify(req: IncomingMessage, addr: string): Identity | null {
    const session = this.liveSession(req);
    if (session !== null) return { auth: 'session', session };
    const given = credentials(req.headers.authorization);
    if (!this.required) return { auth: given !== null ? 'bearer' : 'none', session: null };
    if (given === null) return null;
    if (passwordMatches(this.config, given, 'utf8')) return { auth: 'bearer', session: null };
    this.log.limited('warning', 'http-auth', `Failed HTTP authentication from ${addr}`);
    return null;
  }

  private liveSession(req: IncomingMessage): string | null {
    const id = cookie(req.headers.cookie, SESSION_COOKIE);
    if (id === null) return null;
    const s = this.sessions.get(id);
    if (s === undefined) return null;
    const now = this.now();
    if (now - s.lastUsed > SESSION_IDLE_MS || s.pass !== this.currentPassDigest() || !this.required) {
      this.sessions.delete(id);
      return null;
    }
    s.lastUsed = now;
    this.sessions.delete(id);
    this.sessions.set(id, s);
    return id;
  }

  /** The CSRF token the request's POSTs must carry. */
  csrfFor(session: string | null): string {
    if (session !== null) {
      const s = this.sessions.get(session);
      if (s !== undefined) return s.csrf;
    }
    return this.processCsrf;
  }

  /** Whether a POST carries the right X-CSRF-Token (Bearer/Basic requests need none). */
  csrfOk(req: IncomingMessage, id: Identity): boolean {
    if (id.auth === 'bearer') return true;
    const given = req.headers['x-csrf-token'];
    if (typeof given !== 'string' || given === '') return false;
    return sameSecret(given, this.csrfFor(id.session));
  }

  /** POST /login: a new session's ID, or null for a wrong password (logged). */
  login(password: string, addr: string): string | null {
    if (!this.required) return null;
    if (!passwordMatches(this.config, password, 'utf8')) {
      this.log.limited('warning', 'http-auth', `Failed HTTP login from ${addr}`);
      return null;
    }
    const id = token();
    this.sessions.set(id, { csrf: token(), lastUsed: this.now(), pass: this.currentPassDigest() });
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.log.verbose(`HTTP login from ${addr}`);
    return id;
  }

  logout(session: string | null): void {
    if (session !== null) this.sessions.delete(session);
  }

  /** Drops expired sessions (the node's cron, about once a second). */
  sweep(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) {
      if (now - s.lastUsed <= SESSION_IDLE_MS) break; // the rest were used later
      this.sessions.delete(id);
    }
  }

  get sessionCount(): number {
    return this.sessions.size;
  }
}

/** The Set-Cookie value for a session ('' ends it). */
export function sessionCookie(id: string): string {
  const base = `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/`;
  return id === '' ? `${base}; Max-Age=0` : base;
}

/** The password of "Bearer <password>" or "Basic base64(user:password)". */
export function credentials(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^(\S+)\s+(.*)$/.exec(header.trim());
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return m[2]!;
  if (scheme === 'basic') {
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? null : decoded.slice(colon + 1);
  }
  return null;
}

function cookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
