// #/job/<id>: every SHOW field of a job, its body (pretty JSON, text or hex),
// the progress a task handler reported (refreshed while the job runs) and
// the actions ACK, NACK, DEQUEUE, ENQUEUE and DELJOB, each confirmed first.
import { h, badge, message, queueLink } from './dom.js';
import { getJSON, post, ApiError, describeError } from './api.js';
import { confirmDialog, runAction, flash } from './ui.js';
import { fmtDuration, fmtTime, ctimeMs, shortId } from './format.js';
import { JOB_STATE_KIND } from './view-queue.js';

const ACTIONS = [
  { name: 'ack', label: 'ACK', command: 'ACKJOB', kind: 'primary', ok: 'Acknowledge',
    text: (id) => `Acknowledge job ${id}? It is done: every node holding it drops it (ACKJOB).` },
  { name: 'nack', label: 'NACK', command: 'NACK', ok: 'NACK job',
    text: (id) => `Put job ${id} back in its queue now, counting a failed delivery (NACK)?` },
  { name: 'enqueue', label: 'ENQUEUE', command: 'ENQUEUE', ok: 'Enqueue',
    text: (id) => `Put job ${id} into its queue on this node now (ENQUEUE)?` },
  { name: 'dequeue', label: 'DEQUEUE', command: 'DEQUEUE', ok: 'Dequeue',
    text: (id) => `Take job ${id} out of its queue on this node (DEQUEUE)? It stays active and is queued again after its RETRY time.` },
  { name: 'deljob', label: 'DELJOB', command: 'DELJOB', kind: 'danger', ok: 'Delete', danger: true,
    text: (id) => `Delete job ${id} from this node, whatever its state (DELJOB)? Copies on other nodes are kept.` },
];

/** The node a job ID names: D-<first 8 hex digits of the node ID>-... */
function idNodePrefix(id) {
  const m = /^D-([0-9a-f]{8})-/i.exec(id);
  return m ? m[1].toLowerCase() : null;
}

export function jobView(el, { signal, params: [id] }) {
  const head = h('div', { class: 'title-row' }, h('h1', { class: 'mono' }, id));
  const status = h('div');
  const body = h('div');
  const progress = h('div', { dataset: { role: 'progress' } });
  el.replaceChildren(h('div', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' / Job'), head, status, progress, body);

  // ctx.progress() of a task handler: GET /api/job/<id>/progress, every 2 s while the page is open.
  async function loadProgress() {
    try {
      const res = await getJSON(`/api/job/${encodeURIComponent(id)}/progress`, { signal });
      progress.replaceChildren(res.progress ? progressCard(res.progress) : '');
    } catch (e) {
      if (e?.name !== 'AbortError') progress.replaceChildren();
    }
  }
  loadProgress();
  const timer = setInterval(loadProgress, 2000);
  signal?.addEventListener('abort', () => clearInterval(timer), { once: true });

  let remoteNode = null; // the node the job was read from, when not this one

  async function fetchJob() {
    try {
      return await getJSON(`/api/job/${encodeURIComponent(id)}${remoteNode ? `?node=${encodeURIComponent(remoteNode)}` : ''}`, { signal });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404 || remoteNode) throw e;
      // Not here: ask the node the ID names, if it is another one.
      const prefix = idNodePrefix(id);
      const cluster = prefix ? await getJSON('/api/cluster', { signal }) : null;
      const owner = cluster?.nodes?.find((n) => n.id.toLowerCase().startsWith(prefix) && !n.myself);
      if (!owner) throw e;
      remoteNode = owner.id;
      try {
        return await getJSON(`/api/job/${encodeURIComponent(id)}?node=${encodeURIComponent(owner.id)}`, { signal });
      } catch (e2) {
        if (e2 instanceof ApiError && e2.status === 404) {
          throw new ApiError(404, `job ${id} is neither on this node nor on the node that created it (${owner.addr ?? shortId(owner.id)})`);
        }
        throw e2;
      }
    }
  }

  async function load({ after } = {}) {
    try {
      const job = await fetchJob();
      status.replaceChildren(after ? message('ok', after) : '');
      render(job);
    } catch (e) {
      if (e?.name === 'AbortError') return;
      body.replaceChildren();
      head.replaceChildren(h('h1', { class: 'mono' }, id));
      if (after && e instanceof ApiError && e.status === 404) {
        status.replaceChildren(message('ok', `${after} The job is no longer on this node.`, { closable: false }));
      } else if (e instanceof ApiError && e.status === 404) {
        status.replaceChildren(message('error', `Job not found: ${e.message.startsWith('job ') ? e.message : `no job ${id} on this node`}. It may have been acknowledged, deleted or expired.`, { closable: false }));
      } else if (e instanceof ApiError && e.status === 400) {
        // The node's text names the ID and the expected shape: keep only the shape.
        const detail = e.message.replace(/^Not a job ID: "(?:[^"\\]|\\.)*"\s*/, '');
        status.replaceChildren(message('error', `Not a valid job ID: ${id}${detail ? ` ${detail}` : ''}`, { closable: false }));
      } else {
        status.replaceChildren(message('error', describeError(e), { closable: false }));
      }
    }
  }

  function render(job) {
    const buttons = [];
    const act = async (action, button) => {
      const yes = await confirmDialog({ title: `${action.label} job`, text: action.text(id), ok: action.ok, danger: action.danger });
      if (!yes) return;
      const res = await runAction(button, () => post(`/api/job/${encodeURIComponent(id)}/${action.name}${remoteNode ? `?node=${encodeURIComponent(remoteNode)}` : ''}`), { also: buttons });
      if (res === undefined) return;
      const done = `${action.command} answered ${JSON.stringify(res.result)}.`;
      flash('ok', `${action.command} ${id}: ${JSON.stringify(res.result)}`);
      await load({ after: done });
    };
    for (const a of ACTIONS) {
      const b = h('button', { type: 'button', class: `btn${a.kind ? ` ${a.kind}` : ''}`, dataset: { action: a.name }, title: a.command },
        a.label);
      b.addEventListener('click', () => act(a, b));
      buttons.push(b);
    }
    head.replaceChildren(h('h1', { class: 'mono' }, id), badge(job.state ?? 'unknown', JOB_STATE_KIND[job.state] ?? 'grey'),
      h('span', { class: 'actions' }, buttons));

    const fields = h('dl', { class: 'fields' });
    for (const [key, value] of Object.entries(job)) {
      if (key === 'body') continue;
      fields.append(h('dt', {}, key), h('dd', {}, fieldValue(key, value)));
    }
    body.replaceChildren(
      remoteNode ? message('warn', `Read from node ${shortId(remoteNode)}, the node that created this job: this node holds no copy.`, { closable: false }) : '',
      h('section', { class: 'card' }, h('h2', {}, 'Fields (SHOW)'), fields),
      bodyCard(job.body),
    );
  }

  load();
}

/** The newest progress: a bar when it is a number from 0 to 100 (or has `percent`), and the value as JSON. */
function progressCard(p) {
  const pct = typeof p.value === 'number' ? p.value : typeof p.value?.percent === 'number' ? p.value.percent : null;
  const bar = pct !== null && pct >= 0 && pct <= 100
    ? h('progress', { max: '100', value: String(pct) }) : '';
  return h('section', { class: 'card' },
    h('h2', {}, 'Progress', h('span', { class: 'spacer' }), h('span', { class: 'muted' }, `reported ${fmtTime(p.at)}`)),
    bar, h('pre', { class: 'body mono', dataset: { view: 'progress' } }, JSON.stringify(p.value, null, 2)));
}

function fieldValue(key, value) {
  const k = key.toLowerCase().replace(/[-_]/g, '');
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '–');
  if (Array.isArray(value)) {
    return value.length === 0 ? h('span', { class: 'muted' }, 'none') : h('span', { class: 'mono' }, value.join(', '));
  }
  if (k === 'queue') return queueLink(String(value));
  if (k === 'ctime') return [fmtTime(ctimeMs(value)), ' ', h('span', { class: 'muted mono' }, `(${value})`)];
  if (k === 'ttl' || k === 'retry' || k === 'delay') return `${fmtDuration(value)} (${value} s)`;
  if (k.endsWith('within')) return `${fmtDuration(Number(value) / 1000)} (${value} ms)`;
  if (typeof value === 'object') return h('span', { class: 'mono' }, JSON.stringify(value));
  return h('span', { class: typeof value === 'string' ? 'mono' : undefined }, String(value));
}

/** The body as pretty JSON (when it parses), text (valid UTF-8) or a hex dump (always). */
function bodyCard(b) {
  const card = h('section', { class: 'card' });
  if (!b) {
    card.append(h('h2', {}, 'Body'), h('p', { class: 'muted' }, 'No body (a placeholder for an acknowledgement).'));
    return card;
  }
  const views = [];
  if (b.json !== undefined) views.push(['json', 'JSON', JSON.stringify(b.json, null, 2)]);
  if (typeof b.text === 'string') views.push(['text', 'Text', b.text]);
  const hex = typeof b.hex === 'string' ? b.hex : typeof b.text === 'string' ? textToHex(b.text) : null;
  if (hex !== null) views.push(['hex', 'Hex', hexDump(hex)]);
  const pre = h('pre', { class: 'body mono', dataset: { view: views[0]?.[0] ?? '' } }, views[0]?.[2] ?? '');
  const tabs = h('span', { class: 'seg tabs' }, views.map(([name, label, content], i) => h('button', {
    type: 'button', class: 'btn', 'aria-pressed': String(i === 0), dataset: { view: name },
    onclick: (ev) => {
      pre.textContent = content;
      pre.dataset.view = name;
      for (const t of tabs.children) t.setAttribute('aria-pressed', String(t === ev.currentTarget));
    },
  }, label)));
  const size = hex !== null ? hex.length / 2 : null;
  card.append(h('h2', {}, 'Body', tabs, h('span', { class: 'spacer' }), size === null ? '' : h('span', { class: 'muted' }, `${size} bytes`)), pre);
  return card;
}

function textToHex(text) {
  return [...new TextEncoder().encode(text)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** "00000000  48 65 6c 6c 6f ...  |Hello...|" lines. */
function hexDump(hex) {
  const bytes = hex.match(/../g) ?? [];
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.slice(off, off + 16);
    const hexPart = row.map((x, i) => (i === 8 ? ` ${x}` : x)).join(' ').padEnd(16 * 3, ' ');
    const ascii = row.map((x) => { const c = parseInt(x, 16); return c >= 32 && c < 127 ? String.fromCharCode(c) : '.'; }).join('');
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hexPart} |${ascii}|`);
  }
  return lines.join('\n');
}
