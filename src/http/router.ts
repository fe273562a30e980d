// Routes (method + path pattern -> handler), the request context handlers
// get, and the few ways a handler answers: a value (JSON), an HttpError
// (JSON {"error"}), or its own response (files, text, redirects).
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An answer other than 200: thrown by handlers, written as {"error": message}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** How the request proved it may use the node. */
export type AuthKind = 'none' | 'session' | 'bearer';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** Path parameters, URL-decoded. */
  readonly params: Record<string, string>;
  readonly auth: AuthKind;
  /** The session's ID when auth is 'session'. */
  readonly session: string | null;
  /** The peer's address, for logs and MONITOR. */
  readonly addr: string;
}

/** A handler returns what to send as JSON, or undefined when it answered itself. */
export type Handler = (ctx: RequestContext) => unknown | Promise<unknown>;

interface Route {
  method: string;
  re: RegExp;
  names: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  /**
   * `pattern` like /api/job/:id/ack; a parameter matches one path segment,
   * or what `shapes[name]` (a regular expression source) matches.
   */
  on(method: 'GET' | 'POST', pattern: string, handler: Handler, shapes: Record<string, string> = {}): void {
    const names: string[] = [];
    const re = new RegExp(
      '^' +
        pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:([a-zA-Z]+)/g, (_, n: string) => {
          names.push(n);
          return `(${shapes[n] ?? '[^/]+'})`;
        }) +
        '$',
    );
    this.routes.push({ method, re, names, handler });
  }

  /** The handler and parameters for a request; 'method' when only the method is wrong. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | 'method' | null {
    let other = false;
    for (const r of this.routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) {
        other = true;
        continue;
      }
      const params: Record<string, string> = {};
      for (let i = 0; i < r.names.length; i++) {
        try {
          params[r.names[i]!] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new HttpError(400, 'Bad escape in the path');
        }
      }
      return { handler: r.handler, params };
    }
    return other ? 'method' : null;
  }
}

/**
 * A job ID in a path: its base64 part may hold '/', which clients should
 * send as %2F but a hand-typed URL will not; the ID's fixed shape tells
 * where it ends.
 */
export const JOB_ID_SHAPE = 'D-[^/]{8}-[^-]{24}-[^/]{4}|[^/]+';

const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { ...JSON_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { Location: location, 'Cache-Control': 'no-store', 'Content-Length': 0, ...headers });
  res.end();
}

/** Reads the request body, up to `limit` bytes (413 beyond). */
export async function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const chunk = c as Buffer;
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `Request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A JSON object body ({} when empty). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req);
  if (body.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'The body is not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'The body must be a JSON object');
  return v as Record<string, unknown>;
}
