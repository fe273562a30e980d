// #/cluster: every node of the cluster (from any node), live, and the
// cluster's job rates and queue lengths over the last minutes.
import { h, table, badge } from './dom.js';
import { getJSON } from './api.js';
import { poll } from './ui.js';
import { fmtInt, fmtRate, fmtBytes, fmtDuration, shortId } from './format.js';
import { liveChart, lastSeconds, windowSelect, recent } from './charts.js';

export const STATE_KIND = { ok: 'ok', 'fail?': 'warn', fail: 'fail', leaving: 'leave' };

export function stateBadge(state) {
  const titles = {
    ok: 'Reachable', 'fail?': 'This node could not reach it (PFAIL)', fail: 'Failed, agreed by the majority',
    leaving: 'Leaving the cluster: being drained', handshake: 'Meeting the cluster', noaddr: 'No known address',
  };
  return badge(state ?? 'unknown', STATE_KIND[state] ?? 'grey', titles[state]);
}

export function clusterView(el, { signal }) {
  const status = h('div');
  const tiles = h('div', { class: 'tiles' });
  const nodesBox = h('div');
  const ratesCard = h('section', { class: 'card' });
  const queuesCard = h('section', { class: 'card' });
  let windowSec = 300;
  let latest = null;

  ratesCard.append(h('h2', {}, 'Jobs per second', h('span', { class: 'spacer' }),
    windowSelect(windowSec, (s) => { windowSec = s; if (latest) draw(latest); })));
  queuesCard.append(h('h2', {}, 'Queue lengths'));
  el.replaceChildren(
    h('h1', {}, 'Cluster'),
    status,
    tiles,
    h('section', { class: 'card' }, h('h2', {}, 'Nodes'), nodesBox),
    h('div', { class: 'charts' }, ratesCard, queuesCard),
  );
  const ratesChart = liveChart(ratesCard, signal);
  const queuesChart = liveChart(queuesCard, signal, { integer: true, empty: 'No queues yet' });

  function draw(rates) {
    const r = lastSeconds(rates, windowSec);
    ratesChart.update(r.t, [
      { label: 'added/s', values: r.added, color: '#0969da' },
      { label: 'delivered/s', values: r.delivered, color: '#bc4c00' },
      { label: 'acked/s', values: r.acked, color: '#1a7f37' },
    ]);
    const names = Object.keys(r.queues).sort();
    queuesChart.update(r.t, names.map((name) => ({ label: name, values: r.queues[name] })));
  }

  let cluster = null;
  poll(signal, 2000, async () => {
    cluster = await getJSON('/api/cluster', { signal });
    renderNodes(cluster);
    renderTiles();
  }, status);

  const ratesNote = h('p', { class: 'muted' });
  ratesCard.append(ratesNote);
  poll(signal, 1500, async () => {
    latest = await getJSON('/api/rates', { signal });
    draw(latest);
    renderTiles();
    const missing = (latest.errors ?? []).map((e) => shortId(e.node));
    ratesNote.textContent = missing.length === 0 ? '' : `Without node${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: no answer.`;
  });

  function renderTiles() {
    if (!cluster) return;
    const nodes = cluster.nodes ?? [];
    const ok = nodes.filter((n) => n.state === 'ok').length;
    const jobs = nodes.reduce((sum, n) => sum + (n.node?.jobs ?? 0), 0);
    const clients = nodes.reduce((sum, n) => sum + (n.node?.clients?.connected ?? 0), 0);
    const tile = (label, value, kind) => h('div', { class: 'tile' }, h('div', { class: 'label' }, label),
      h('div', { class: `value${kind ? ` ${kind}` : ''}` }, value));
    tiles.replaceChildren(
      tile('Nodes ok', `${ok} / ${nodes.length}`),
      tile('Jobs', fmtInt(jobs)),
      tile('Clients', fmtInt(clients)),
      tile('Added/s', fmtRate(recent(latest?.added))),
      tile('Delivered/s', fmtRate(recent(latest?.delivered))),
      tile('Acked/s', fmtRate(recent(latest?.acked))),
    );
  }

  function renderNodes(data) {
    const columns = [
      { label: 'Node' }, { label: 'Address' }, { label: 'State' }, { label: 'Jobs', num: true },
      { label: 'Queues', num: true }, { label: 'Memory' }, { label: 'Clients', num: true },
      { label: 'Blocked', num: true }, { label: 'Persistence' }, { label: 'Uptime', num: true }, { label: 'Version' },
    ];
    const rows = (data.nodes ?? []).map((n) => {
      const info = n.node;
      const host = typeof n.addr === 'string' ? n.addr.replace(/:\d+$/, '') : '';
      const dash = n.httpPort && host ? `http://${host.includes(':') ? `[${host}]` : host}:${n.httpPort}/` : null;
      const nodeCell = h('td', {}, h('span', { class: 'mono', title: n.id }, shortId(n.id)),
        n.myself ? badge('this node', 'self') : null);
      const addrCell = h('td', { class: 'mono' }, dash && !n.myself ? h('a', { href: dash, title: 'Open this node\'s dashboard' }, n.addr) : (n.addr ?? '–'));
      if (!info) {
        return h('tr', { class: 'unreachable', dataset: { node: n.id } }, nodeCell, addrCell, h('td', {}, stateBadge(n.state)),
          h('td', { colspan: '8', class: 'wrap' }, n.error ? `No figures: ${n.error}` : 'No figures'));
      }
      const used = info.memory?.used ?? 0;
      const max = info.memory?.max ?? 0;
      const pct = max > 0 ? Math.min(100, (used / max) * 100) : null;
      const memCell = h('td', {}, fmtBytes(used), max > 0 ? ` / ${fmtBytes(max)}` : '',
        pct === null ? null : h('span', { class: `bar${pct > 85 ? ' high' : ''}`, title: `${pct.toFixed(0)}% of maxmemory` },
          h('span', { style: `width:${pct.toFixed(1)}%` })));
      const p = info.persistence;
      const persist = !p?.enabled ? badge('off', 'grey')
        : p.ok ? badge(p.backlog ? `ok, ${fmtInt(p.backlog)} pending` : 'ok', 'ok') : badge('MISCONF', 'fail', 'Writes to Redis are failing');
      return h('tr', { dataset: { node: n.id } }, nodeCell, addrCell, h('td', {}, stateBadge(n.state)),
        h('td', { class: 'num' }, fmtInt(info.jobs)), h('td', { class: 'num' }, fmtInt(info.queues)), memCell,
        h('td', { class: 'num' }, fmtInt(info.clients?.connected)), h('td', { class: 'num' }, fmtInt(info.clients?.blocked)),
        h('td', {}, persist), h('td', { class: 'num' }, fmtDuration(info.uptime)), h('td', { class: 'mono' }, info.version ?? '–'));
    });
    nodesBox.replaceChildren(table(columns, rows, 'No nodes'));
  }
}
