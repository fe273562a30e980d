// The dashboard's entry: hash routes, the top bar, one view at a time.
import { h, message } from './dom.js';
import { getJSON, getSession, post, describeError } from './api.js';
import { clearFlash, flashError } from './ui.js';
import { clusterView } from './view-cluster.js';
import { queuesView } from './view-queues.js';
import { queueView } from './view-queue.js';
import { jobView } from './view-job.js';
import { deadLettersView, deadLetterQueueView } from './view-dead-letters.js';

const routes = [
  { re: /^\/?(?:cluster)?$/, nav: 'cluster', title: 'Cluster', view: clusterView },
  { re: /^\/queues$/, nav: 'queues', title: 'Queues', view: queuesView },
  { re: /^\/queue\/(.+)$/, nav: 'queues', title: 'Queue', view: queueView },
  { re: /^\/job\/(.+)$/, nav: 'queues', title: 'Job', view: jobView },
  { re: /^\/dead-letters$/, nav: 'dead-letters', title: 'Dead letters', view: deadLettersView },
  { re: /^\/dead-letters\/(.+)$/, nav: 'dead-letters', title: 'Dead letters', view: deadLetterQueueView },
];

const viewEl = document.getElementById('view');
let current = null; // AbortController of the view on screen

function route() {
  current?.abort();
  current = new AbortController();
  clearFlash();
  const path = location.hash.replace(/^#/, '');
  let match = null;
  const r = routes.find((x) => (match = x.re.exec(path)));
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.route === r?.nav);
  if (!r) {
    document.title = 'Not found · disque-ts';
    viewEl.replaceChildren(h('h1', {}, 'Page not found'), message('error', `No page at #${path}`, { closable: false }),
      h('p', {}, h('a', { href: '#/cluster' }, 'Go to the cluster')));
    return;
  }
  let params;
  try {
    params = match.slice(1).map((p) => decodeURIComponent(p));
  } catch {
    viewEl.replaceChildren(message('error', `Malformed address: #${path}`, { closable: false }));
    return;
  }
  document.title = `${params[0] ?? r.title} · disque-ts`;
  try {
    r.view(viewEl, { signal: current.signal, params });
  } catch (e) {
    viewEl.replaceChildren(message('error', describeError(e), { closable: false }));
  }
}

async function topBar() {
  const info = document.getElementById('node-info');
  try {
    const node = await getJSON('/api/node');
    info.textContent = `${node.addr} · ${String(node.id).slice(0, 8)} · v${node.version}`;
    info.title = `Node ${node.id}`;
  } catch (e) {
    info.textContent = '';
    flashError(e);
  }
  try {
    const session = await getSession();
    const logout = document.getElementById('logout');
    logout.hidden = !session.authRequired;
    logout.addEventListener('click', async () => {
      logout.disabled = true;
      try {
        await post('/logout');
      } catch { /* the session is gone either way */ }
      location.assign('/login');
    });
  } catch (e) {
    flashError(e);
  }
  document.getElementById('job-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = new FormData(ev.currentTarget).get('id')?.toString().trim();
    if (id) location.hash = `#/job/${encodeURIComponent(id)}`;
  });
}

window.addEventListener('hashchange', route);
topBar();
route();
