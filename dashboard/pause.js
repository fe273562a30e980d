// Pause and resume a queue (PAUSE <queue> <state> BCAST through the node).
import { h, badge } from './dom.js';
import { post } from './api.js';
import { runAction, flash } from './ui.js';

const STATES = [
  ['none', 'Resume', 'Not paused: ADDJOB and GETJOB work'],
  ['in', 'Pause in', 'ADDJOB is refused (new jobs cannot enter)'],
  ['out', 'Pause out', 'GETJOB gets nothing (no job leaves)'],
  ['all', 'Pause all', 'Both in and out'],
];

/** Queues with a pause request in flight: re-rendered rows keep their buttons disabled. */
const pending = new Set();

export function pausedBadge(state) {
  const kind = { none: 'ok', in: 'warn', out: 'warn', all: 'fail' }[state] ?? 'grey';
  return badge(state === 'none' ? 'running' : `paused ${state}`, kind);
}

/** Four buttons, the current state pressed; onChange(newState) after the node answered. */
export function pauseControls(queue, current, onChange) {
  const group = h('span', { class: 'seg', role: 'group', 'aria-label': `Pause ${queue}` });
  const buttons = STATES.map(([state, label, title]) => h('button', {
    type: 'button',
    class: 'btn',
    title,
    'aria-pressed': String(state === current),
    dataset: { action: `pause-${state}`, queue },
    disabled: pending.has(queue),
    onclick: (ev) => setPause(ev.currentTarget, state),
  }, label));
  group.append(...buttons);

  async function setPause(button, state) {
    if (pending.has(queue)) return;
    pending.add(queue);
    try {
      await runAction(button, async () => {
        const res = await post(`/api/queue/${encodeURIComponent(queue)}/pause`, { state });
        const now = res?.paused ?? state;
        for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.action === `pause-${now}`));
        flash('ok', now === 'none' ? `Queue ${queue} resumed` : `Queue ${queue} paused (${now})`);
        onChange?.(now);
      }, { also: buttons });
    } finally {
      pending.delete(queue);
    }
  }
  return group;
}
