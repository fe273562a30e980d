// Building the page from data without innerHTML: every server-provided string
// becomes a text node (or an attribute value), so it can never become markup.

/**
 * h('a', { href: '#/x', class: 'link', onclick: fn }, 'text', child, [more])
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` handlers,
 * boolean `true` sets an empty attribute, `false`/null/undefined are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'disabled' || key === 'hidden' || key === 'selected' || key === 'checked') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** A table: columns [{ label, num?: true }], rows = arrays of cells (nodes or text) or <tr> elements. */
export function table(columns, rows, emptyText = 'Nothing to show') {
  const head = h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : undefined, title: c.title }, c.label)));
  const body = rows.length === 0
    ? [h('tr', {}, h('td', { class: 'empty', colspan: String(columns.length) }, emptyText))]
    : rows.map((row) => (row instanceof HTMLElement ? row : h('tr', {}, row.map((cell, i) => td(cell, columns[i])))));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data' }, h('thead', {}, head), h('tbody', {}, body)));
}

function td(cell, column) {
  if (cell instanceof HTMLTableCellElement) return cell;
  return h('td', { class: column?.num ? 'num' : column?.cls }, cell);
}

/** A coloured pill. kind: ok | warn | fail | leave | grey | self */
export function badge(text, kind = 'grey', title) {
  return h('span', { class: `badge ${kind}`, title }, text);
}

/** A message box (error | warn | ok) with a close button. */
export function message(kind, text, { closable = true } = {}) {
  const box = h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'text' }, text));
  if (closable) box.append(h('button', { class: 'close', type: 'button', 'aria-label': 'Dismiss', onclick: () => box.remove() }, '×'));
  return box;
}

/** Route link for a queue, a job, ... (names are URI-encoded into the hash). */
export function queueLink(name) {
  return h('a', { href: `#/queue/${encodeURIComponent(name)}`, class: 'mono' }, name);
}
export function jobLink(id, text = id) {
  return h('a', { href: `#/job/${encodeURIComponent(id)}`, class: 'mono' }, text);
}
