// #/queue/<name>: one queue: its figures across the cluster, pause controls,
// its delivery limits (QPOLICY), its length over time, this node's scheduled
// jobs of it and this node's jobs of it, paged (JSCAN QUEUE).
import { h, table, badge, jobLink, message } from './dom.js';
import { getJSON } from './api.js';
import { poll } from './ui.js';
import { fmtInt, fmtRate, fmtDuration, fmtTime, ctimeMs } from './format.js';
import { pauseControls, pausedBadge } from './pause.js';
import { liveChart, lastSeconds } from './charts.js';
import { policyCard, policyBadge } from './policy.js';
import { scheduledCard } from './scheduled.js';

export const JOB_STATE_KIND = { queued: 'ok', active: 'leave', acked: 'grey', 'wait-repl': 'warn' };

export function queueView(el, { signal, params: [name] }) {
  const status = h('div');
  const stats = h('div', { class: 'tiles' });
  const pauseBox = h('span');
  const jobsStatus = h('div');
  const jobsBox = h('div');
  const lengthCard = h('section', { class: 'card' }, h('h2', {}, 'Length over the last 5 minutes'));
  const pageInfo = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', class: 'btn', onclick: () => go(page - 1) }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'btn', onclick: () => go(page + 1) }, 'Next ›');
  const first = h('button', { type: 'button', class: 'btn', onclick: () => go(0) }, 'First page');
  const countSelect = h('select', { 'aria-label': 'Jobs per page', onchange: () => { cursors = ['0']; go(0); } },
    [25, 50, 100, 200].map((n) => h('option', { value: String(n), selected: n === 50 }, `${n} per page`)));
  const nodeNote = h('span', { class: 'muted' });

  el.replaceChildren(
    h('div', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' / '),
    h('div', { class: 'title-row' }, h('h1', { class: 'mono' }, name), pauseBox),
    status,
    stats,
    policyCard(name, signal),
    h('div', { class: 'section-gap' }),
    lengthCard,
    h('div', { class: 'section-gap' }),
    scheduledCard(name, signal),
    h('div', { class: 'section-gap' }),
    h('section', { class: 'card' },
      h('h2', {}, 'Jobs', nodeNote),
      h('div', { class: 'toolbar' }, first, prev, next, pageInfo, h('span', { class: 'spacer' }), countSelect),
      jobsStatus, jobsBox),
  );
  const chart = liveChart(lengthCard, signal, { integer: true, height: 180, empty: 'No samples for this queue (the node samples the 20 longest queues)' });

  // Cluster-wide figures and the pause state.
  let shownPause = null;
  poll(signal, 2000, async () => {
    const data = await getJSON('/api/queues', { signal });
    const q = (data.queues ?? []).find((x) => x.name === name);
    const tile = (label, value) => h('div', { class: 'tile' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
    const paused = q?.paused ?? 'none';
    stats.replaceChildren(
      tile('Jobs queued (cluster)', fmtInt(q?.total ?? 0)),
      tile('Added/s', fmtRate(q?.addedPerSec ?? 0)),
      tile('Acked/s', fmtRate(q?.ackedPerSec ?? 0)),
      tile('Oldest job', q?.oldestAge === null || q?.oldestAge === undefined ? '–' : fmtDuration(q.oldestAge)),
      tile('Delayed (cluster)', fmtInt(q?.delayed ?? 0)),
      h('div', { class: 'tile' }, h('div', { class: 'label' }, 'Limits'), h('div', { class: 'value' }, policyBadge(q?.policy ?? null))),
      h('div', { class: 'tile' }, h('div', { class: 'label' }, 'State'), h('div', { class: 'value' }, pausedBadge(paused))),
    );
    if (paused !== shownPause) {
      shownPause = paused;
      pauseBox.replaceChildren(pauseControls(name, paused, (p) => { shownPause = p; }));
    }
  }, status);

  poll(signal, 2000, async () => {
    const rates = await getJSON('/api/rates', { signal });
    const r = lastSeconds(rates, 300);
    chart.update(r.t, r.queues[name] ? [{ label: name, values: r.queues[name] }] : []);
  });

  getJSON('/api/node', { signal }).then((n) => {
    nodeNote.textContent = ` held by this node (${n.addr}); other nodes list theirs on their own dashboards`;
  }).catch(() => {});

  // Paging: cursors[i] is the JSCAN cursor that starts page i.
  let cursors = ['0'];
  let page = 0;
  let shown = '';
  let loading = false;

  async function load(index, { quiet = false } = {}) {
    if (loading) return;
    loading = true;
    for (const b of [first, prev, next]) b.disabled = true;
    try {
      const count = Number(countSelect.value);
      const res = await getJSON(`/api/queue/${encodeURIComponent(name)}/jobs?cursor=${encodeURIComponent(cursors[index])}&count=${count}`, { signal });
      page = index;
      cursors[index + 1] = res.cursor;
      cursors.length = index + 2;
      jobsStatus.replaceChildren();
      render(res.jobs ?? []);
    } catch (e) {
      if (e?.name === 'AbortError') return;
      if (quiet) jobsStatus.replaceChildren(message('warn', `Could not refresh the jobs: ${e.message} (retrying)`, { closable: false }));
      else { jobsBox.replaceChildren(); jobsStatus.replaceChildren(message('error', `Could not list the jobs of ${name}: ${e.message}`, { closable: false })); }
    } finally {
      loading = false;
      first.disabled = page === 0;
      prev.disabled = page === 0;
      next.disabled = !cursors[page + 1] || cursors[page + 1] === '0';
      pageInfo.textContent = `Page ${page + 1}`;
    }
  }

  function go(index) {
    if (index < 0 || index >= cursors.length) return;
    shown = '';
    load(index);
  }

  function render(jobs) {
    // Redrawn only when something other than the TTL countdown changed.
    const sig = JSON.stringify(jobs.map((j) => [j.id, j.state, j.nacks, j.additionalDeliveries]));
    if (sig === shown) return;
    shown = sig;
    const columns = [
      { label: 'Job ID' }, { label: 'State' }, { label: 'Created' }, { label: 'TTL', num: true },
      { label: 'Retry', num: true }, { label: 'Nacks', num: true }, { label: 'Add. deliveries', num: true }, { label: 'Body' },
    ];
    const rows = jobs.map((j) => h('tr', { dataset: { job: j.id } },
      h('td', {}, jobLink(j.id)),
      h('td', {}, badge(j.state, JOB_STATE_KIND[j.state] ?? 'grey')),
      h('td', {}, fmtTime(ctimeMs(j.ctime))),
      h('td', { class: 'num' }, fmtDuration(j.ttl)),
      h('td', { class: 'num' }, j.retry ? fmtDuration(j.retry) : 'none'),
      h('td', { class: 'num' }, fmtInt(j.nacks)),
      h('td', { class: 'num' }, fmtInt(j.additionalDeliveries)),
      h('td', { class: 'preview mono', title: j.bodyPreview ?? '' }, j.bodyPreview ?? ''),
    ));
    jobsBox.replaceChildren(table(columns, rows, page === 0 ? `This node holds no jobs of ${name}` : 'No more jobs'));
  }

  load(0);
  // The first page follows the queue live; later pages stay as they were read.
  const timer = setInterval(() => { if (page === 0 && !document.hidden) load(0, { quiet: true }); }, 2000);
  signal.addEventListener('abort', () => clearInterval(timer));
}
