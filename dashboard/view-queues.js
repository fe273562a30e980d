// #/queues: every queue across the cluster, live.
import { h, table, queueLink, message } from './dom.js';
import { getJSON } from './api.js';
import { poll } from './ui.js';
import { fmtInt, fmtRate, fmtDuration, shortId } from './format.js';
import { pauseControls, pausedBadge } from './pause.js';
import { policySummary } from './policy.js';

export function queuesView(el, { signal }) {
  const status = h('div');
  const errors = h('div');
  const box = h('div');
  const filter = h('input', { type: 'search', placeholder: 'Filter queues', 'aria-label': 'Filter queues', oninput: () => render() });
  el.replaceChildren(
    h('div', { class: 'title-row' }, h('h1', {}, 'Queues')),
    status,
    errors,
    h('section', { class: 'card' }, h('div', { class: 'toolbar' }, filter, h('span', { class: 'spacer' }),
      h('span', { class: 'muted' }, 'Lengths per node, live')), box),
  );

  let data = null;
  let lastShape = null;
  let rows = new Map();
  let addrs = new Map();
  // Node addresses for the column headings; refreshed now and then.
  const loadAddrs = async () => {
    try {
      const c = await getJSON('/api/cluster', { signal });
      addrs = new Map((c.nodes ?? []).map((n) => [n.id, n.addr]));
    } catch { /* headings fall back to node ID prefixes */ }
  };

  let tick = 0;
  poll(signal, 2000, async () => {
    if (tick++ % 10 === 0) await loadAddrs();
    data = await getJSON('/api/queues', { signal });
    render();
  }, status);

  function render() {
    if (!data) return;
    errors.replaceChildren(...(data.errors ?? []).map((e) =>
      message('warn', `Node ${shortId(e.node)}${addrs.get(e.node) ? ` (${addrs.get(e.node)})` : ''} did not answer: ${e.error}`, { closable: false })));
    const needle = filter.value.trim().toLowerCase();
    const queues = (data.queues ?? []).filter((q) => needle === '' || q.name.toLowerCase().includes(needle))
      .sort((a, b) => a.name.localeCompare(b.name));
    const nodeIds = [...new Set([...addrs.keys(), ...(data.queues ?? []).flatMap((q) => Object.keys(q.perNode ?? {}))])].sort();
    const columns = [
      { label: 'Queue' }, { label: 'Total', num: true },
      ...nodeIds.map((id) => ({ label: addrs.get(id) ?? shortId(id), num: true, title: `Jobs queued on node ${id}` })),
      { label: 'Added/s', num: true }, { label: 'Acked/s', num: true }, { label: 'Oldest', num: true, title: 'Age of the oldest queued job' },
      { label: 'Delayed', num: true, title: 'Jobs scheduled for later (ADDJOB DELAY, NACK DELAY)' },
      { label: 'Limits', title: 'Delivery limits (QPOLICY)' },
      { label: 'State' }, { label: 'Pause' },
    ];
    // Rows are updated in place while the table's shape stays the same, so a
    // refresh never swaps a button out from under the pointer.
    const shape = [nodeIds.map((id) => `${id}=${addrs.get(id) ?? ''}`).join(','), queues.map((q) => q.name).join('\u0000'), needle].join('|');
    if (shape !== lastShape) {
      lastShape = shape;
      rows = new Map(queues.map((q) => [q.name, queueRow(q, nodeIds)]));
      box.replaceChildren(table(columns, [...rows.values()].map((r) => r.tr),
        needle ? 'No queue matches the filter' : 'No queues: a queue exists while it holds jobs, scheduled jobs or a policy, or is paused'));
    }
    for (const q of queues) rows.get(q.name)?.update(q);
  }


  function queueRow(q, nodeIds) {
    const cells = {
      total: h('td', { class: 'num total' }),
      perNode: nodeIds.map(() => h('td', { class: 'num' })),
      added: h('td', { class: 'num' }),
      acked: h('td', { class: 'num' }),
      oldest: h('td', { class: 'num' }),
      delayed: h('td', { class: 'num delayed' }),
      policy: h('td', { class: 'policy' }),
      paused: h('td', { class: 'paused' }),
      pause: h('td', {}),
    };
    const tr = h('tr', { dataset: { queue: q.name } }, h('td', {}, queueLink(q.name)), cells.total, cells.perNode,
      cells.added, cells.acked, cells.oldest, cells.delayed, cells.policy, cells.paused, cells.pause);
    let shownPause = null;
    return {
      tr,
      update(next) {
        cells.total.textContent = fmtInt(next.total);
        nodeIds.forEach((id, i) => { cells.perNode[i].textContent = fmtInt(next.perNode?.[id] ?? 0); });
        cells.added.textContent = fmtRate(next.addedPerSec);
        cells.acked.textContent = fmtRate(next.ackedPerSec);
        cells.oldest.textContent = next.oldestAge === null || next.oldestAge === undefined ? '–' : fmtDuration(next.oldestAge);
        cells.delayed.textContent = fmtInt(next.delayed ?? 0);
        cells.policy.textContent = next.policy ? policySummary(next.policy) : '–';
        if (next.paused !== shownPause) {
          shownPause = next.paused;
          cells.paused.replaceChildren(pausedBadge(next.paused));
          cells.pause.replaceChildren(pauseControls(next.name, next.paused, (paused) => { next.paused = paused; shownPause = paused; cells.paused.replaceChildren(pausedBadge(paused)); }));
        }
      },
    };
  }
}
