// The node's JSON API (docs/http-api.md). Every POST carries the CSRF token
// from GET /api/session; a 401 sends the browser to the login page.

export class ApiError extends Error {
  /** status: the HTTP status, 0 when the node could not be reached at all. */
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let session = null;

/** { csrf, authRequired }; fetched once, again after a refused token. */
export async function getSession(refresh = false) {
  if (!session || refresh) session = await request('GET', '/api/session');
  return session;
}

export function getJSON(path, options = {}) {
  return request('GET', path, undefined, options);
}

/** POST with the CSRF token; a 403 about the token is retried once with a fresh one. */
export async function post(path, body = {}) {
  const { csrf } = await getSession();
  try {
    return await request('POST', path, body, { csrf });
  } catch (e) {
    if (e instanceof ApiError && e.status === 403 && /csrf/i.test(e.message)) {
      const fresh = await getSession(true);
      return request('POST', path, body, { csrf: fresh.csrf });
    }
    throw e;
  }
}

async function request(method, path, body, { csrf, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, `Cannot reach the node at ${location.host}: it may have stopped or the network is down`);
  }
  if (res.status === 401) {
    location.assign('/login');
    throw new ApiError(401, 'Your session has ended: log in again');
  }
  const text = await res.text();
  let data = null;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : `${res.status} ${res.statusText || 'error'}`.trim();
    throw new ApiError(res.status, msg);
  }
  if (data === null && text !== '') throw new ApiError(res.status, `Unexpected answer from ${path}`);
  return data;
}

/** A readable sentence for an error thrown by getJSON/post (or anything else). */
export function describeError(e) {
  if (e instanceof ApiError) {
    switch (e.status) {
      case 0: return e.message;
      case 400: return `Bad input: ${e.message}`;
      case 404: return `Not found: ${e.message}`;
      case 409: return `Refused by Disque: ${e.message}`;
      case 502: return `A node could not be reached: ${e.message}`;
      default: return e.message;
    }
  }
  return e instanceof Error ? e.message : String(e);
}
