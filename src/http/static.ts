// The dashboard's files: dashboard/ at the project root (plain HTML, CSS and
// ES modules, no build step) and uPlot from its npm package, both under
// /assets/; the page itself at /. Files are read when asked for (a
// dashboard is opened rarely; nothing is kept in memory).
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { HttpError } from './router.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/**
 * dashboard/ at the package's root: two levels up from src/http (source),
 * three from dist/src/http (tsc's output), four from dist/src/bin/chunks
 * (the bundled server, scripts/bundle-server.ts).
 */
const DASHBOARD_DIR = ['../../dashboard', '../../../dashboard', '../../../../dashboard']
  .map((up) => path.resolve(here, up))
  .find((d) => existsSync(path.join(d, 'index.html')));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Assets that come from npm packages rather than dashboard/. */
const PACKAGE_ASSETS: Record<string, string> = {
  'uplot.iife.min.js': 'uplot/dist/uPlot.iife.min.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

const require = createRequire(import.meta.url);

/** The page never loads anything from elsewhere, and is never framed. */
export const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null`
  // with a form POST, which the CSRF check refuses (the login form).
  'Referrer-Policy': 'same-origin',
};

function assetPath(name: string): string | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return null; // no paths, no dot files
  const pkg = PACKAGE_ASSETS[name];
  if (pkg !== undefined) {
    try {
      return require.resolve(pkg);
    } catch {
      return null;
    }
  }
  return DASHBOARD_DIR === undefined ? null : path.join(DASHBOARD_DIR, name);
}

async function sendFile(res: ServerResponse, file: string, head: boolean): Promise<void> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch {
    throw new HttpError(404, 'Not found');
  }
  res.writeHead(200, {
    ...PAGE_HEADERS,
    'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'Content-Length': data.length,
    'Cache-Control': 'no-cache',
  });
  res.end(head ? undefined : data);
}

/** GET /assets/<name>. */
export async function sendAsset(res: ServerResponse, name: string, head = false): Promise<void> {
  const file = assetPath(name);
  if (file === null) throw new HttpError(404, 'Not found');
  await sendFile(res, file, head);
}

/** GET /: the dashboard. */
export async function sendIndex(res: ServerResponse, head = false): Promise<void> {
  if (DASHBOARD_DIR === undefined) throw new HttpError(404, 'The dashboard files (dashboard/) are not installed');
  await sendFile(res, path.join(DASHBOARD_DIR, 'index.html'), head);
}

const FALLBACK_LOGIN =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · disque-ts</title>' +
  '<link rel="stylesheet" href="/assets/login.css"></head><body><main class="login"><h1>disque-ts</h1>' +
  '<form method="post" action="/login"><label for="password">Password</label>' +
  '<input type="password" id="password" name="password" required autofocus><!--LOGIN-ERROR-->' +
  '<button type="submit">Log in</button></form></main></body></html>';

/** GET /login, and POST /login after a wrong password (`error`). */
export async function sendLoginPage(res: ServerResponse, status: number, error: string | null): Promise<void> {
  let html = FALLBACK_LOGIN;
  if (DASHBOARD_DIR !== undefined) {
    try {
      html = await readFile(path.join(DASHBOARD_DIR, 'login.html'), 'utf8');
    } catch {
      // the built-in page
    }
  }
  if (error !== null) html = html.replace('<!--LOGIN-ERROR-->', `<p class="error" role="alert">${escapeHtml(error)}</p>`);
  const body = Buffer.from(html, 'utf8');
  res.writeHead(status, { ...PAGE_HEADERS, 'Content-Type': TYPES['.html']!, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(body);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
