// Page-level pieces shared by the views: flash messages, the confirm dialog,
// actions that cannot run twice, and polling tied to the current view.
import { message } from './dom.js';
import { describeError } from './api.js';

const flashEl = () => document.getElementById('flash');

/** Shows a message above the view; success messages fade after a while. */
export function flash(kind, text) {
  const box = message(kind, text);
  flashEl().replaceChildren(box);
  if (kind === 'ok') setTimeout(() => box.remove(), 8000);
  return box;
}

export function flashError(e) {
  return flash('error', describeError(e));
}

export function clearFlash() {
  flashEl().replaceChildren();
}

/**
 * The in-page confirm dialog (not window.confirm, so tests can click it).
 * Resolves true when the user confirms.
 */
export function confirmDialog({ title, text, ok = 'OK', danger = false }) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = text;
  const okButton = document.getElementById('confirm-ok');
  okButton.textContent = ok;
  okButton.classList.toggle('danger', danger);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

/**
 * Runs an action started by `button`: the button (and `also`) stay disabled
 * while it runs, so a double click does not act twice. Errors are flashed;
 * the result (or undefined after an error) is returned.
 */
export async function runAction(button, fn, { also = [] } = {}) {
  const buttons = [button, ...also].filter(Boolean);
  if (buttons.some((b) => b.disabled && b.dataset.busy === '1')) return undefined;
  for (const b of buttons) { b.disabled = true; b.dataset.busy = '1'; }
  try {
    return await fn();
  } catch (e) {
    flashError(e);
    return undefined;
  } finally {
    for (const b of buttons) { b.disabled = false; delete b.dataset.busy; }
  }
}

/**
 * Calls fn now and then every intervalMs after the previous call finished,
 * until signal aborts. An error is shown in `statusEl` (the data on screen is
 * then older than it looks) and cleared by the next success.
 */
export function poll(signal, intervalMs, fn, statusEl) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
      if (statusEl) statusEl.replaceChildren();
    } catch (e) {
      if (signal.aborted || e?.name === 'AbortError') return;
      if (statusEl) statusEl.replaceChildren(message('warn', `${describeError(e)} (retrying)`, { closable: false }));
    }
    if (!signal.aborted) timer = setTimeout(tick, intervalMs);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  tick();
}
