// A queue's scheduled jobs on this node (ADDJOB DELAY, NACK DELAY), soonest
// first, paged; each can run now (ENQUEUE) or be deleted (ACKJOB, which
// every node honours: a copy elsewhere would otherwise queue it later).
import { h, table, badge, jobLink, message } from './dom.js';
import { getJSON, post, describeError } from './api.js';
import { runAction, flash, confirmDialog } from './ui.js';
import { fmtInt, fmtDuration, fmtTime } from './format.js';

export function scheduledCard(name, signal) {
  const status = h('div');
  const box = h('div');
  const info = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', class: 'btn', onclick: () => go(offset - PAGE) }, '‹ Sooner');
  const next = h('button', { type: 'button', class: 'btn', onclick: () => go(offset + PAGE) }, 'Later ›');
  const card = h('section', { class: 'card', id: 'scheduled' },
    h('h2', {}, 'Scheduled jobs', h('span', { class: 'muted' }, ' held by this node, by due time')),
    h('div', { class: 'toolbar' }, prev, next, info), status, box);

  const PAGE = 25;
  let offset = 0;
  let shown = '';
  const gone = new Set();

  async function load() {
    try {
      const res = await getJSON(`/api/queue/${encodeURIComponent(name)}/scheduled?offset=${offset}&count=${PAGE}`, { signal });
      status.replaceChildren();
      if (offset > 0 && offset >= res.total) { offset = Math.max(0, Math.floor((res.total - 1) / PAGE) * PAGE); return load(); }
      info.textContent = res.total === 0 ? '' : `${fmtInt(offset + 1)}–${fmtInt(Math.min(res.total, offset + PAGE))} of ${fmtInt(res.total)}`;
      prev.disabled = offset === 0;
      next.disabled = offset + PAGE >= res.total;
      render(res.jobs ?? []);
    } catch (e) {
      if (e?.name === 'AbortError') return;
      status.replaceChildren(message('warn', `Could not list the scheduled jobs: ${describeError(e)} (retrying)`, { closable: false }));
    }
  }

  function go(to) {
    offset = Math.max(0, to);
    shown = '';
    load();
  }

  function render(jobs) {
    const visible = jobs.filter((j) => !gone.has(j.id));
    const sig = JSON.stringify(visible.map((j) => [j.id, j.dueAt, j.nacks]));
    if (sig === shown) {
      // Only the countdowns move.
      for (const j of visible) {
        const cell = box.querySelector(`tr[data-job="${CSS.escape(j.id)}"] .due-in`);
        if (cell) cell.textContent = fmtDuration(Math.ceil(j.dueIn / 1000));
      }
      return;
    }
    shown = sig;
    // The unique key column only when some job here has one.
    const keys = visible.some((j) => j.unique);
    const columns = [{ label: 'Job ID' }, { label: 'Kind' }, { label: 'Due at' }, { label: 'Due in', num: true },
      { label: 'Nacks', num: true }, ...(keys ? [{ label: 'Unique key' }] : []), { label: 'Body' }, { label: '' }];
    const rows = visible.map((j) => {
      const runNow = h('button', { type: 'button', class: 'btn primary', dataset: { action: 'run-now', job: j.id } }, 'Run now');
      const del = h('button', { type: 'button', class: 'btn danger', dataset: { action: 'delete', job: j.id } }, 'Delete');
      runNow.addEventListener('click', async () => {
        const res = await runAction(runNow, () => post(`/api/job/${encodeURIComponent(j.id)}/enqueue`), { also: [del] });
        if (res === undefined) return;
        gone.add(j.id);
        flash('ok', `Job ${j.id} queued now`);
        shown = '';
        load();
      });
      del.addEventListener('click', async () => {
        const yes = await confirmDialog({ title: 'Delete the job', ok: 'Delete', danger: true,
          text: `Acknowledge job ${j.id} on every node, so it is never delivered?` });
        if (!yes) return;
        const res = await runAction(del, () => post(`/api/job/${encodeURIComponent(j.id)}/ack`), { also: [runNow] });
        if (res === undefined) return;
        gone.add(j.id);
        flash('ok', `Job ${j.id} deleted`);
        shown = '';
        load();
      });
      return h('tr', { dataset: { job: j.id } },
        h('td', {}, jobLink(j.id)),
        h('td', {}, badge(j.kind === 'retry' ? 'retry (NACK delay)' : 'delayed', j.kind === 'retry' ? 'warn' : 'leave')),
        h('td', {}, fmtTime(j.dueAt)),
        h('td', { class: 'num due-in' }, fmtDuration(Math.ceil(j.dueIn / 1000))),
        h('td', { class: 'num' }, fmtInt(j.nacks)),
        keys ? h('td', { class: 'mono' }, j.unique ?? '') : null,
        h('td', { class: 'preview mono', title: j.bodyPreview ?? '' }, j.bodyPreview ?? ''),
        h('td', {}, h('span', { class: 'seg' }, runNow, del)));
    });
    box.replaceChildren(table(columns, rows, offset === 0 ? `This node holds no scheduled jobs of ${name}` : 'No more scheduled jobs'));
  }

  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 2000);
  signal.addEventListener('abort', () => clearInterval(timer));
  return card;
}
