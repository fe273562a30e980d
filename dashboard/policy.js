// A queue's QPOLICY on the queue page: the limits (cluster-wide), this
// node's share of them and what it uses, and a form to change or clear them
// (POST /api/queue/<name>/policy, which runs QPOLICY through the node).
import { h, badge } from './dom.js';
import { getJSON, post } from './api.js';
import { poll, runAction, flash, confirmDialog } from './ui.js';
import { fmtInt, fmtDuration } from './format.js';

/** "10 / 1 s, 4 at once" or "none". */
export function policySummary(p) {
  if (!p) return 'none';
  const parts = [];
  if (p.rate) parts.push(`${fmtInt(p.rate.jobs)} per ${fmtDuration(p.rate.seconds)}`);
  if (p.concurrency) parts.push(`${fmtInt(p.concurrency)} at once`);
  return parts.join(', ') || 'none';
}

export function policyBadge(p) {
  return p ? badge(policySummary(p), 'leave', 'Delivery limits (QPOLICY), cluster-wide') : badge('no limit', 'grey');
}

export function policyCard(name, signal) {
  const summary = h('div', { class: 'policy-summary' });
  const here = h('div', { class: 'muted policy-here' });
  const rateJobs = h('input', { type: 'number', min: '1', step: '1', name: 'rate-jobs', 'aria-label': 'Jobs per window', placeholder: 'jobs' });
  const rateSeconds = h('input', { type: 'number', min: '1', step: '1', name: 'rate-seconds', 'aria-label': 'Window in seconds', placeholder: 'seconds' });
  const concurrency = h('input', { type: 'number', min: '1', step: '1', name: 'concurrency', 'aria-label': 'Jobs at once', placeholder: 'jobs' });
  const save = h('button', { type: 'submit', class: 'btn primary', dataset: { action: 'policy-save' } }, 'Set policy');
  const clear = h('button', { type: 'button', class: 'btn danger', dataset: { action: 'policy-clear' }, onclick: () => clearPolicy() }, 'Clear');
  const form = h('form', { class: 'policy-form', onsubmit: (ev) => { ev.preventDefault(); setPolicy(); } },
    h('label', {}, 'Rate: at most ', rateJobs, ' jobs per ', rateSeconds, ' s'),
    h('label', {}, 'Concurrency: at most ', concurrency, ' jobs at once'),
    save, clear,
    h('div', { class: 'muted' }, 'Empty fields remove that limit. The policy applies to every node of the cluster.'));
  const card = h('section', { class: 'card', id: 'policy' }, h('h2', {}, 'Delivery limits (QPOLICY)'), summary, here, form);

  let filled = false;
  let current = null;
  function fill(p) {
    rateJobs.value = p?.rate ? String(p.rate.jobs) : '';
    rateSeconds.value = p?.rate ? String(p.rate.seconds) : '';
    concurrency.value = p?.concurrency ? String(p.concurrency) : '';
  }

  function show(data) {
    current = data.policy;
    summary.replaceChildren('Policy: ', policyBadge(data.policy));
    const u = data.here;
    here.textContent = u
      ? `This node's share: rate ${fmtInt(u.rateShare)} (used ${fmtInt(u.rateUsed)} in the window), concurrency ${fmtInt(u.concurrencyShare)} (${fmtInt(u.inFlight)} in flight); held back here: ${fmtInt(u.heldByRate)} by rate, ${fmtInt(u.heldByConcurrency)} by concurrency.`
      : '';
    // The form follows the policy until the user edits it.
    if (!filled || !form.contains(document.activeElement)) { fill(data.policy); filled = true; }
  }

  poll(signal, 3000, async () => show(await getJSON(`/api/queue/${encodeURIComponent(name)}/policy`, { signal })));

  function number(input, what) {
    if (input.value.trim() === '') return null;
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a whole number of at least 1`);
    return n;
  }

  async function setPolicy() {
    let body;
    try {
      const jobs = number(rateJobs, 'Jobs per window');
      const seconds = number(rateSeconds, 'The window');
      if ((jobs === null) !== (seconds === null)) throw new Error('Give both the jobs and the window of the rate, or neither');
      body = { rate: jobs === null ? null : { jobs, seconds }, concurrency: number(concurrency, 'Concurrency') };
    } catch (e) {
      flash('error', e.message);
      return;
    }
    const res = await runAction(save, () => post(`/api/queue/${encodeURIComponent(name)}/policy`, body), { also: [clear] });
    if (res === undefined) return;
    show(res);
    fill(res.policy);
    flash('ok', res.policy ? `Policy of ${name}: ${policySummary(res.policy)}` : `Policy of ${name} cleared`);
  }

  async function clearPolicy() {
    if (!current) { fill(null); return; }
    const yes = await confirmDialog({ title: 'Clear the policy', ok: 'Clear', danger: true,
      text: `Remove every delivery limit of ${name} on all nodes?` });
    if (!yes) return;
    const res = await runAction(clear, () => post(`/api/queue/${encodeURIComponent(name)}/policy`, { rate: null, concurrency: null }), { also: [save] });
    if (res === undefined) return;
    show(res);
    fill(null);
    flash('ok', `Policy of ${name} cleared`);
  }

  return card;
}
