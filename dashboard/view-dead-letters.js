// #/dead-letters and #/dead-letters/<queue>: the queues holding the bundled
// worker's dead-letter envelopes, and moving a dead letter back to the queue
// it came from (ADDJOB of the original body, then ACKJOB of the dead letter).
import { h, table, queueLink, jobLink, message } from './dom.js';
import { getJSON, post, describeError } from './api.js';
import { poll, confirmDialog, runAction, flash } from './ui.js';
import { fmtInt, fmtTime } from './format.js';

export function deadLettersView(el, { signal }) {
  const status = h('div');
  const box = h('div');
  el.replaceChildren(
    h('h1', {}, 'Dead letters'),
    h('p', { class: 'muted' }, 'Queues on this node holding jobs a worker gave up on (the bundled Worker\'s deadLetterQueue option). Open one to move its jobs back to the queue they came from.'),
    status,
    h('section', { class: 'card' }, box),
  );
  poll(signal, 3000, async () => {
    const data = await getJSON('/api/dead-letters', { signal });
    const rows = (data.queues ?? []).map((q) => [
      h('a', { href: `#/dead-letters/${encodeURIComponent(q.name)}`, class: 'mono' }, q.name),
      fmtInt(q.count),
      queueLink(q.name),
    ]);
    box.replaceChildren(table([{ label: 'Dead-letter queue' }, { label: 'Dead letters', num: true }, { label: 'As a queue' }], rows,
      'No dead letters: no queue holds a worker\'s dead-letter envelopes'));
  }, status);
}

export function deadLetterQueueView(el, { signal, params: [queue] }) {
  const status = h('div');
  const box = h('div');
  const more = h('button', { type: 'button', class: 'btn', hidden: true, onclick: () => load(true) }, 'Load more');
  el.replaceChildren(
    h('div', { class: 'crumbs' }, h('a', { href: '#/dead-letters' }, 'Dead letters'), ' / '),
    h('h1', { class: 'mono' }, queue),
    status,
    h('section', { class: 'card' }, box, h('div', { class: 'toolbar' }, more)),
  );

  let cursor = '0';
  let letters = [];
  const gone = new Set();

  async function load(append = false) {
    try {
      more.disabled = true;
      const data = await getJSON(`/api/dead-letters/${encodeURIComponent(queue)}?cursor=${encodeURIComponent(append ? cursor : '0')}`, { signal });
      letters = append ? [...letters, ...(data.letters ?? [])] : (data.letters ?? []);
      cursor = String(data.cursor ?? '0');
      more.hidden = cursor === '0';
      render();
    } catch (e) {
      if (e?.name === 'AbortError') return;
      status.replaceChildren(message('error', `Could not list ${queue}: ${describeError(e)}`, { closable: false }));
    } finally {
      more.disabled = false;
    }
  }

  function render() {
    const columns = [{ label: 'Dead letter' }, { label: 'Original job' }, { label: 'Original queue' }, { label: 'Error' },
      { label: 'Attempts', num: true }, { label: 'Failed at' }, { label: '' }];
    const rows = letters.filter((d) => !gone.has(d.id)).map((d) => {
      const button = h('button', { type: 'button', class: 'btn primary', dataset: { action: 'requeue', job: d.id } }, 'Move back');
      button.addEventListener('click', async () => {
        const yes = await confirmDialog({ title: 'Move the job back', ok: 'Move back',
          text: `Add the original body of ${d.originalId ?? 'this job'} to queue ${d.originalQueue} again, and acknowledge dead letter ${d.id}?` });
        if (!yes) return;
        const res = await runAction(button, () => post(`/api/dead-letters/${encodeURIComponent(queue)}/${encodeURIComponent(d.id)}/requeue`));
        if (res === undefined) return;
        gone.add(d.id);
        flash('ok', `Moved back to ${d.originalQueue} as job ${res.newId}`);
        render();
      });
      const error = typeof d.error === 'object' && d.error !== null ? `${d.error.name ?? 'Error'}: ${d.error.message ?? ''}` : String(d.error ?? '');
      return [
        jobLink(d.id), d.originalId ? h('span', { class: 'mono' }, d.originalId) : '–',
        d.originalQueue ? queueLink(d.originalQueue) : '–',
        h('td', { class: 'wrap', title: error }, error), fmtInt(d.attempts),
        d.failedAt ? fmtTime(Date.parse(d.failedAt)) : '–', button,
      ];
    });
    box.replaceChildren(table(columns, rows, 'No dead letters on this node in this queue'));
  }

  load();
}
