// Live line charts drawn with uPlot (window.uPlot, from /assets/uplot.iife.min.js).
import { h } from './dom.js';
import { fmtRate, fmtInt } from './format.js';

export const PALETTE = ['#0969da', '#1a7f37', '#cf222e', '#8250df', '#bc4c00', '#1b7c83', '#bf3989', '#4d2d00', '#6e7781', '#953800'];

/**
 * A chart in `container` whose series can change (queues come and go): it is
 * rebuilt when the set of labels changes. update(t, [{ label, values, color? }]).
 */
export function liveChart(container, signal, { height = 220, integer = false, empty = 'No data yet' } = {}) {
  const holder = h('div', { class: 'chart', style: `min-height:${height + 50}px` });
  container.append(holder);
  if (typeof window.uPlot !== 'function') {
    holder.append(h('p', { class: 'muted' }, 'Charts are unavailable: uPlot did not load from /assets/uplot.iife.min.js.'));
    return { update() {} };
  }
  let plot = null;
  let key = '';
  const fmt = integer ? (v) => fmtInt(v) : (v) => fmtRate(v);
  const width = () => Math.max(280, holder.clientWidth || container.clientWidth || 600);

  const observer = new ResizeObserver(() => plot?.setSize({ width: width(), height }));
  observer.observe(holder);
  signal.addEventListener('abort', () => { observer.disconnect(); plot?.destroy(); plot = null; });

  function build(series) {
    plot?.destroy();
    holder.replaceChildren();
    const opts = {
      width: width(),
      height,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(integer ? 5 : 1, max * 1.1)] } },
      axes: [
        { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#eaeef2' } },
        { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#eaeef2' }, size: 60,
          values: (u, splits) => splits.map(axisValue) },
      ],
      series: [
        { label: 'time' },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? PALETTE[i % PALETTE.length],
          width: 2,
          fill: series.length <= 3 ? `${s.color ?? PALETTE[i % PALETTE.length]}14` : undefined,
          points: { show: false },
          value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
        })),
      ],
    };
    plot = new window.uPlot(opts, [[], ...series.map(() => [])], holder);
  }

  return {
    update(t, series) {
      if (series.length === 0) {
        plot?.destroy(); plot = null; key = '';
        holder.replaceChildren(h('p', { class: 'muted empty' }, empty));
        return;
      }
      const nextKey = series.map((s) => s.label).join('\u0000');
      if (!plot || nextKey !== key) { build(series); key = nextKey; }
      plot.setData([t, ...series.map((s) => s.values)]);
    },
  };
}

/** Axis ticks: 0, 50, 1.5k, 2M. */
function axisValue(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/**
 * The samples of a /api/rates answer from the last `seconds`. The newest
 * second of a cluster-wide answer is left out: the nodes sample at their own
 * moment in the second, so it may not hold every node's figures yet.
 */
export function lastSeconds(rates, seconds, { newest = false } = {}) {
  if (!newest && (rates.t ?? []).length > 1) rates = dropNewest(rates);
  const t = rates.t ?? [];
  const from = t.length === 0 ? 0 : t[t.length - 1] - seconds;
  let i = 0;
  while (i < t.length && t[i] < from) i++;
  const cut = (a) => (Array.isArray(a) ? a.slice(i) : []);
  const queues = {};
  for (const [name, values] of Object.entries(rates.queues ?? {})) queues[name] = cut(values);
  return { t: cut(t), added: cut(rates.added), delivered: cut(rates.delivered), acked: cut(rates.acked), queues };
}

function dropNewest(rates) {
  const cut = (a) => (Array.isArray(a) ? a.slice(0, -1) : []);
  const queues = {};
  for (const [name, values] of Object.entries(rates.queues ?? {})) queues[name] = cut(values);
  return { t: cut(rates.t), added: cut(rates.added), delivered: cut(rates.delivered), acked: cut(rates.acked), queues };
}

/** The mean of the last `n` complete samples of a series (what a tile shows as "now"). */
export function recent(values, n = 3) {
  if (!Array.isArray(values) || values.length < 2) return null;
  const xs = values.slice(-n - 1, -1).filter((v) => typeof v === 'number');
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** A select for the chart window (1, 5 or 10 minutes); onChange(seconds). */
export function windowSelect(initial, onChange) {
  const select = h('select', { 'aria-label': 'Chart window', onchange: () => onChange(Number(select.value)) },
    [[60, 'Last minute'], [300, 'Last 5 minutes'], [600, 'Last 10 minutes']].map(([v, label]) =>
      h('option', { value: String(v), selected: v === initial }, label)));
  return select;
}
