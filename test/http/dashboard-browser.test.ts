// The dashboard driven in a real headless Chromium (Debian's /usr/bin/chromium
// through playwright-core) against real server processes: what a user sees and
// clicks must change what Disque clients see, and the reverse.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import Redis from 'ioredis';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, getFreeHttpPort, waitFor, type ServerHandle } from '../helpers/server.js';
import { makeEnvelope } from '../../src/client/dead-letter.js';

const CHROMIUM = '/usr/bin/chromium';
const UI_TIMEOUT = 15000;

let profileDir: string;
let browser: BrowserContext;

async function launchBrowser(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  }
  profileDir = mkdtempSync(path.join(os.tmpdir(), 'disque-chromium-'));
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

interface Node {
  server: ServerHandle;
  httpPort: number;
  url: string;
  redis: Redis;
}

async function startNode(config: Record<string, string> = {}): Promise<Node> {
  const httpPort = await getFreeHttpPort();
  const server = await startServer({ config: { 'http-port': String(httpPort), ...config } });
  const url = `http://127.0.0.1:${httpPort}`;
  // The HTTP listener may come up just after the client port (with
  // requirepass, /healthz answers 401 without the password: any answer will do).
  try {
    await waitFor(async () => (await fetch(`${url}/healthz`)).status > 0, 'the HTTP listener', 15000);
  } catch (e) {
    await server.destroy();
    throw e;
  }
  const redis = new Redis({
    port: server.port, host: '127.0.0.1', maxRetriesPerRequest: 1, protocol: 2,
    ...(config.requirepass ? { password: config.requirepass } : {}),
  });
  redis.on('error', () => undefined); // while a test has stopped the node
  return { server, httpPort, url, redis };
}

async function stopNode(n: Node | undefined): Promise<void> {
  if (!n) return;
  n.redis.disconnect();
  await n.server.destroy();
}

/** Errors thrown in the page (a broken module, a bad DOM call) fail the test that caused them. */
const pageErrors: string[] = [];
async function newPage(): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return page;
}

/** A failed wait says what the page showed then. */
async function withPageText<T>(page: Page, wait: Promise<T>): Promise<T> {
  try {
    return await wait;
  } catch (e) {
    const shown = await page.locator('body').innerText().catch(() => '(page unavailable)');
    throw new Error(`${(e as Error).message}\npage: ${page.url()}\n${shown.slice(0, 2000)}`);
  }
}

/** Prometheus text format: every sample line is `name{labels} value`; returns name{labels} -> value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?\d+)?$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = sample.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return samples;
}

/** Sum of a metric's samples over all label sets (labels matching `filter`, if given). */
function total(samples: Map<string, number>, name: string, filter?: RegExp): number {
  let sum = 0;
  for (const [key, v] of samples) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n === name && (!filter || filter.test(key))) sum += v;
  }
  return sum;
}

beforeAll(async () => {
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

afterEach(() => {
  const errors = pageErrors.splice(0);
  expect(errors, 'errors thrown in the page').toEqual([]);
});

describe('dashboard without a password', () => {
  let node: Node;
  let page: Page;

  beforeAll(async () => {
    node = await startNode();
    page = await newPage();
  });
  afterAll(async () => {
    await page?.close();
    await stopNode(node);
  });

  it('shows this node in the cluster view', async () => {
    await page.goto(`${node.url}/#/cluster`);
    const myId = String(await node.redis.call('CLUSTER', 'MYID'));
    const row = page.locator(`tr[data-node="${myId}"]`);
    await row.waitFor();
    await expect.poll(() => row.textContent(), { timeout: UI_TIMEOUT }).toContain(`127.0.0.1:${node.server.port}`);
    expect(await row.textContent()).toContain('ok');
  });

  it('a job added with ioredis appears in the queue view and the queues list', async () => {
    await page.goto(`${node.url}/#/queue/browser-q1`);
    await page.getByText('This node holds no jobs of browser-q1').waitFor();
    const id = String(await node.redis.call('ADDJOB', 'browser-q1', '{"to":"tom@example.net"}', '0'));
    // The first page follows the queue without a reload.
    const row = page.locator(`tr[data-job="${id}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('queued');
    expect(await row.textContent()).toContain('tom@example.net');

    await page.goto(`${node.url}/#/queues`);
    const qrow = page.locator('tr[data-queue="browser-q1"]');
    await qrow.waitFor();
    await expect.poll(() => qrow.locator('td.total').textContent(), { timeout: UI_TIMEOUT }).toBe('1');
  });

  it('pausing a queue with a click makes GETJOB NOHANG on it return nothing', async () => {
    const id = String(await node.redis.call('ADDJOB', 'browser-q2', 'work', '0'));
    await page.goto(`${node.url}/#/queues`);
    const row = page.locator('tr[data-queue="browser-q2"]');
    const pauseOut = row.locator('button[data-action="pause-out"]');
    await pauseOut.click();
    // Pressed once the node answered, so PAUSE has run by then.
    await expect.poll(() => pauseOut.getAttribute('aria-pressed'), { timeout: UI_TIMEOUT }).toBe('true');
    expect(await node.redis.call('GETJOB', 'NOHANG', 'FROM', 'browser-q2')).toBeNull();
    expect(await node.redis.call('PAUSE', 'browser-q2', 'state')).toBe('out');
    await expect.poll(() => row.locator('td.paused').textContent(), { timeout: UI_TIMEOUT }).toBe('paused out');

    const resume = row.locator('button[data-action="pause-none"]');
    await resume.click();
    await expect.poll(() => resume.getAttribute('aria-pressed'), { timeout: UI_TIMEOUT }).toBe('true');
    expect(await node.redis.call('PAUSE', 'browser-q2', 'state')).toBe('none');
    const got = (await node.redis.call('GETJOB', 'NOHANG', 'FROM', 'browser-q2')) as unknown[][] | null;
    expect(got?.[0]?.[1]).toBe(id);
  });

  it('a queue policy set in the queue page is QPOLICY for Disque clients, and clearing it clears it', async () => {
    await node.redis.call('ADDJOB', 'browser-pol', 'x', '0');
    await page.goto(`${node.url}/#/queue/browser-pol`);
    const card = page.locator('section#policy');
    await card.getByText('no limit').waitFor();
    await card.locator('input[name="rate-jobs"]').fill('5');
    await card.locator('input[name="rate-seconds"]').fill('10');
    await card.locator('input[name="concurrency"]').fill('2');
    await card.locator('button[data-action="policy-save"]').click();
    await page.getByText('Policy of browser-pol: 5 per 10s, 2 at once').waitFor();
    expect(await node.redis.call('QPOLICY', 'browser-pol', 'GET')).toEqual(['rate-jobs', 5, 'rate-seconds', 10, 'concurrency', 2]);
    // Set by a client: the page follows.
    await node.redis.call('QPOLICY', 'browser-pol', 'SET', 'CONCURRENCY', '3');
    await card.getByText('5 per 10s, 3 at once').waitFor();
    // A half-given rate is refused in the page, nothing sent.
    await card.locator('input[name="rate-seconds"]').fill('');
    await card.locator('button[data-action="policy-save"]').click();
    await page.getByText('Give both the jobs and the window of the rate, or neither').waitFor();
    expect(await node.redis.call('QPOLICY', 'browser-pol', 'GET')).toEqual(['rate-jobs', 5, 'rate-seconds', 10, 'concurrency', 3]);
    await card.locator('button[data-action="policy-clear"]').click();
    await page.locator('#confirm-ok').click();
    await page.getByText('Policy of browser-pol cleared').waitFor();
    expect(await node.redis.call('QPOLICY', 'browser-pol', 'GET')).toEqual([]);
  });

  it('scheduled jobs are listed by due time; run now queues one, delete acknowledges another', async () => {
    const later = String(await node.redis.call('ADDJOB', 'browser-sched', 'in an hour', '0', 'DELAY', '3600'));
    const soon = String(await node.redis.call('ADDJOB', 'browser-sched', 'in a minute', '0', 'DELAY', '60'));
    await page.goto(`${node.url}/#/queue/browser-sched`);
    const rows = page.locator('section#scheduled tbody tr[data-job]');
    await expect.poll(() => rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.job)), { timeout: UI_TIMEOUT }).toEqual([soon, later]);
    await page.locator(`section#scheduled button[data-action="run-now"][data-job="${soon}"]`).click();
    await page.getByText(`Job ${soon} queued now`).waitFor();
    expect(await node.redis.call('QLEN', 'browser-sched')).toBe(1);
    await page.locator(`section#scheduled button[data-action="delete"][data-job="${later}"]`).click();
    await page.locator('#confirm-ok').click();
    await page.getByText(`Job ${later} deleted`).waitFor();
    // Acknowledged: a node alone collects it at once.
    expect(await node.redis.call('SHOW', later)).toBeNull();
    await page.getByText('This node holds no scheduled jobs of browser-sched').waitFor();
  });

  it('a job acked from its page is gone from the server', async () => {
    const id = String(await node.redis.call('ADDJOB', 'browser-q3', '{"n":1,"tags":["a","b"]}', '0'));
    await page.goto(`${node.url}/#/job/${id}`);
    // Every SHOW field, the body as pretty JSON.
    await page.locator('pre.body[data-view="json"]').waitFor();
    expect(await page.locator('pre.body').textContent()).toBe(JSON.stringify({ n: 1, tags: ['a', 'b'] }, null, 2));
    const fields = await page.locator('dl.fields').textContent();
    for (const f of ['queue', 'state', 'repl', 'ttl', 'ctime', 'retry', 'nacks']) expect(fields).toContain(f);
    expect(fields).toContain('browser-q3');

    await page.locator('button[data-action="ack"]').click();
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor({ state: 'visible' });
    expect(await dialog.textContent()).toContain(id);
    await page.locator('#confirm-ok').click();
    await page.getByText('ACKJOB answered').first().waitFor();
    await waitFor(async () => (await node.redis.call('SHOW', id)) === null, `SHOW ${id} to be nil`, UI_TIMEOUT);
  });

  it('cancelling the confirmation does nothing; NACK from the page counts once', async () => {
    const id = String(await node.redis.call('ADDJOB', 'browser-q4', 'body', '0'));
    await node.redis.call('GETJOB', 'FROM', 'browser-q4');
    await page.goto(`${node.url}/#/job/${id}`);
    await page.locator('button[data-action="deljob"]').click();
    await page.locator('#confirm-cancel').click();
    await page.locator('dialog#confirm').waitFor({ state: 'hidden' });
    expect(await node.redis.call('SHOW', id)).not.toBeNull();

    await page.locator('button[data-action="nack"]').click();
    await page.locator('#confirm-ok').dblclick();
    await page.getByText('NACK answered').first().waitFor();
    const show = (await node.redis.call('SHOW', id)) as unknown[];
    expect(show[show.indexOf('nacks') + 1]).toBe(1);
    expect(show[show.indexOf('state') + 1]).toBe('queued');
  });

  it('bad input gets a clear message in the page', async () => {
    await page.goto(`${node.url}/#/job/not-a-job-id`);
    await page.getByText('Not a valid job ID').waitFor();

    // A well-formed ID of a job that is gone.
    const id = String(await node.redis.call('ADDJOB', 'browser-q5', 'x', '0'));
    await node.redis.call('ACKJOB', id);
    await waitFor(async () => (await node.redis.call('SHOW', id)) === null, 'the acked job to go');
    await page.goto(`${node.url}/#/job/${id}`);
    await page.getByText('Job not found').waitFor();

    await page.goto(`${node.url}/#/nowhere`);
    await page.getByText('Page not found').waitFor();
  });

  it('names and bodies are shown as text, never as markup', async () => {
    const queue = 'x/<img src=x onerror="window.__xss=1">';
    const body = '<b id="injected">bold?</b><script>window.__xss=2</script>';
    const id = String(await node.redis.call('ADDJOB', queue, body, '0'));
    await page.goto(`${node.url}/#/queues`);
    await page.locator('tr[data-queue]', { hasText: queue }).waitFor();
    await page.goto(`${node.url}/#/queue/${encodeURIComponent(queue)}`);
    await page.locator(`tr[data-job="${id}"]`, { hasText: body }).waitFor();
    await page.goto(`${node.url}/#/job/${id}`);
    await page.locator('pre.body', { hasText: body }).waitFor();
    expect(await page.locator('#view img, #view #injected, #view script').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  });

  it('a dead letter is moved back to its original queue', async () => {
    const original = { id: 'D-00000000-000000000000000000000000-0001', queue: 'browser-emails', body: Buffer.from('{"to":"ann@example.net"}') };
    const envelope = makeEnvelope(original, new Error('SMTP 550 mailbox unavailable'), 5, undefined);
    const dl = String(await node.redis.call('ADDJOB', 'browser-emails-failed', JSON.stringify(envelope), '0'));
    await page.goto(`${node.url}/#/dead-letters`);
    await page.locator('a[href="#/dead-letters/browser-emails-failed"]').click();
    const button = page.locator(`button[data-action="requeue"][data-job="${dl}"]`);
    await button.click();
    await page.locator('#confirm-ok').click();
    await page.getByText('Moved back to browser-emails').waitFor();
    await waitFor(async () => (await node.redis.call('QLEN', 'browser-emails')) === 1, 'the job back in its queue', UI_TIMEOUT);
    const got = (await node.redis.call('GETJOB', 'NOHANG', 'FROM', 'browser-emails')) as unknown[][];
    expect(String(got[0]![2])).toBe('{"to":"ann@example.net"}');
    await waitFor(async () => (await node.redis.call('SHOW', dl)) === null, 'the dead letter acknowledged', UI_TIMEOUT);
  });

  it('/metrics parses and its counters move after ADDJOB', async () => {
    const before = parseMetrics(await (await fetch(`${node.url}/metrics`)).text());
    const added = 'disque_jobs_added_total';
    expect(before.size).toBeGreaterThan(0);
    const start = total(before, added);
    for (let i = 0; i < 3; i++) await node.redis.call('ADDJOB', 'browser-metrics', `m${i}`, '0');
    // Fetched from the page too: same origin, no credentials needed here.
    const fromPage = await page.evaluate(async () => (await fetch('/metrics')).text());
    expect(total(parseMetrics(fromPage), added)).toBe(start + 3);
    const after = parseMetrics(await (await fetch(`${node.url}/metrics`)).text());
    expect(total(after, added)).toBe(start + 3);
    expect(total(after, 'disque_queue_length', /queue="browser-metrics"/)).toBe(3);
  });
});

describe('a node that goes away', () => {
  it('the open page says it cannot reach the node, and recovers when it is back', async () => {
    const node = await startNode();
    const page = await newPage();
    try {
      await node.redis.call('ADDJOB', 'away-q', 'x', '0');
      await page.goto(`${node.url}/#/queues`);
      await page.locator('tr[data-queue="away-q"]').waitFor();
      await node.server.stop();
      await withPageText(page, page.getByText('Cannot reach the node').waitFor());
      // The page keeps polling: figures come back with the node.
      await node.server.restart();
      await waitFor(async () => (await fetch(`${node.url}/healthz`)).status === 200, 'HTTP back after the restart', UI_TIMEOUT);
      await withPageText(page, page.getByText('Cannot reach the node').waitFor({ state: 'detached' }));
    } finally {
      await page.close();
      await stopNode(node);
    }
  });

  it('the cluster view marks a peer that stopped answering', async () => {
    const a = await startNode({ 'cluster-node-timeout': '2000' });
    let b: Node | undefined;
    const page = await newPage();
    try {
      b = await startNode({ 'cluster-node-timeout': '2000' });
      await a.redis.call('CLUSTER', 'MEET', '127.0.0.1', String(b.server.port));
      const bId = String(await b.redis.call('CLUSTER', 'MYID'));
      await page.goto(`${a.url}/#/cluster`);
      const row = page.locator(`tr[data-node="${bId}"]`);
      // B's figures come from B's own HTTP port, learned through the bus.
      await expect.poll(async () => (await row.count()) > 0 && !(await row.textContent())!.includes('No figures'),
        { timeout: UI_TIMEOUT }).toBe(true);
      expect(await row.textContent()).toContain(`127.0.0.1:${b.server.port}`);
      await b.server.kill9();
      await row.getByText('No figures').waitFor();
      await row.locator('.badge', { hasText: 'fail' }).waitFor();
    } finally {
      await page.close();
      await stopNode(b);
      await stopNode(a);
    }
  });
});

describe('dashboard with requirepass', () => {
  let node: Node;
  let page: Page;

  beforeAll(async () => {
    node = await startNode({ requirepass: 'dashboard-secret' });
    page = await newPage();
  });
  afterAll(async () => {
    await page?.close();
    await stopNode(node);
  });

  it('asks for the password, refuses a wrong one and accepts the right one', async () => {
    await page.goto(`${node.url}/#/queues`);
    await page.waitForURL(/\/login(#.*)?$/);
    await page.locator('input[name="password"]').fill('not-the-password');
    await page.locator('button[type="submit"]').click();
    await page.getByText('Wrong password').waitFor();
    expect(page.url()).toMatch(/\/login(#.*)?$/);

    await page.locator('input[name="password"]').fill('dashboard-secret');
    await page.locator('button[type="submit"]').click();
    // Back to the page asked for first.
    await page.waitForURL(`${node.url}/#/queues`);
    await page.locator('h1', { hasText: 'Queues' }).waitFor();
    await page.locator('#node-info').getByText(`127.0.0.1:${node.server.port}`).waitFor();
    await expect.poll(() => page.locator('#logout').isVisible(), { timeout: UI_TIMEOUT }).toBe(true);

    // The session works for actions (CSRF token from /api/session).
    await node.redis.call('ADDJOB', 'secret-q', 'x', '0');
    await page.goto(`${node.url}/#/queues`);
    const pauseIn = page.locator('tr[data-queue="secret-q"] button[data-action="pause-in"]');
    await pauseIn.click();
    await expect.poll(() => pauseIn.getAttribute('aria-pressed'), { timeout: UI_TIMEOUT }).toBe('true');
    expect(await node.redis.call('PAUSE', 'secret-q', 'state')).toBe('in');
  });

  it('the API refuses requests without the session or the password', async () => {
    expect((await fetch(`${node.url}/api/node`)).status).toBe(401);
    expect((await fetch(`${node.url}/metrics`)).status).toBe(401);
    const bearer = await fetch(`${node.url}/metrics`, { headers: { Authorization: 'Bearer dashboard-secret' } });
    expect(bearer.status).toBe(200);
    parseMetrics(await bearer.text());
  });
});
