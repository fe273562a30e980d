// HTTP requests to a node's http-port, and a strict reader of the
// Prometheus text format for the /metrics tests.
import { getFreeHttpPort, startServer, type ServerHandle, type ServerOptions } from './server.js';

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

export async function request(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: unknown; form?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body: string | undefined;
  if (opts.form !== undefined) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export const get = (port: number, path: string, headers: Record<string, string> = {}) => request(port, 'GET', path, { headers });

/** GET /api/session's CSRF token, then the POST with it (no requirepass). */
export async function postWithCsrf(port: number, path: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const s = await get(port, '/api/session', headers);
  return request(port, 'POST', path, { headers: { ...headers, 'X-CSRF-Token': s.json.csrf }, body });
}

/** A server with HTTP on a free port; `http` is that port. */
export async function startHttpServer(opts: ServerOptions = {}): Promise<ServerHandle & { http: number }> {
  const http = await getFreeHttpPort();
  const h = await startServer({ ...opts, config: { ...(opts.config ?? {}), 'http-port': String(http) } });
  return Object.assign(h, { http });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Family name -> TYPE. */
  types: Map<string, string>;
  samples: Sample[];
  /** The value of the one sample with these labels (all of them given), or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Reads the text format (version 0.0.4) and throws at the first line that breaks it. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line.slice(0, 120)}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) return; // other comments are allowed
      if (!NAME.test(m[2]!)) throw new Error(`bad metric name, ${where}`);
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!)) throw new Error(`bad type, ${where}`);
        if (types.has(m[2]!)) throw new Error(`second TYPE for ${m[2]}, ${where}`);
        types.set(m[2]!, m[3]!);
      } else {
        if (helps.has(m[2]!)) throw new Error(`second HELP for ${m[2]}, ${where}`);
        helps.add(m[2]!);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/.exec(line);
    if (!m) throw new Error(`not a sample, ${where}`);
    const labels: Record<string, string> = {};
    let rest = m[3] ?? '';
    while (rest !== '') {
      const lm = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!lm || !LABEL_NAME.test(lm[1]!)) throw new Error(`bad labels, ${where}`);
      if (lm[1]! in labels) throw new Error(`label ${lm[1]} twice, ${where}`);
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(lm[0].length);
    }
    const raw = m[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`bad value, ${where}`);
    const family = familyOf(m[1]!, types);
    if (family === undefined) throw new Error(`sample before its TYPE, ${where}`);
    const key = `${m[1]}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(key)) throw new Error(`the same series twice, ${where}`);
    seen.add(key);
    samples.push({ name: m[1]!, labels, value });
  });
  return {
    types,
    samples,
    value(name, want = {}) {
      const hits = samples.filter(
        (s) => s.name === name && Object.keys(want).length === Object.keys(s.labels).length && Object.entries(want).every(([k, v]) => s.labels[k] === v),
      );
      return hits.length === 1 ? hits[0]!.value : undefined;
    },
  };
}

function familyOf(sample: string, types: Map<string, string>): string | undefined {
  if (types.has(sample)) return sample;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sample.endsWith(suffix)) {
      const base = sample.slice(0, -suffix.length);
      if (types.get(base) === 'histogram' || types.get(base) === 'summary') return base;
    }
  }
  return undefined;
}
