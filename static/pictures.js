// The lab page's "What the kernel did" panel: live pictures of the session's lab
// host and the containers started in it.
//
// One EventSource per page reads GET /api/v1/sessions/<id>/picture/stream, a
// sample a second (see src/session/picture.rs for its fields). The samples
// carry no launch trace, which never changes for a running container; it is
// fetched once from /picture?trace=1, and again when a sample says the set of
// containers changed. While the page is hidden the stream is closed, so a
// forgotten tab costs the server nothing.
//
// Five views, one per lab: the launch trace (lab `run`), the namespace map
// (lab `namespaces`), the cgroup charts (lab `cgroups`), the network topology
// (lab `networks`) and the layers and mounts (lab `storage`). Each is text
// first (a list, a table, a line of numbers under each chart); colours and
// drawings only picture the text. Only the visible view is drawn, and only when
// what it shows changed.

import { CgroupView } from './cgroup_view.js';
import { NetworkView } from './network_view.js';
import { StorageView } from './storage_view.js';

const NAMESPACE_TYPES = ['mnt', 'uts', 'ipc', 'pid', 'net', 'user', 'cgroup'];

const panel = document.getElementById('pictures');
const sessionId = panel.dataset.sessionId;
const base = `/api/v1/sessions/${encodeURIComponent(sessionId)}`;
const statusLine = document.getElementById('pictures-status');
const traceSelect = document.getElementById('trace-node');
const traceList = document.getElementById('trace-steps');
const nsTable = document.getElementById('ns-map');
const pidList = document.getElementById('pid-map');

const cgroups = new CgroupView(
  document.getElementById('cg-containers'),
  document.getElementById('cg-events'),
  base,
);
const network = new NetworkView(
  document.getElementById('net-drawing'),
  document.getElementById('net-details'),
  document.getElementById('net-table'),
);
const storage = new StorageView(document.getElementById('st-containers'));

let view = panel.dataset.view || 'namespaces';
let latest = null; // the last sample
const traces = new Map(); // node id → its launch trace
let knownIds = null; // the container ids of the last sample (null before the first)
let newestId = null; // the container that appeared last
let traceChoice = null; // the process tree the student picked, if they did
let drawnTrace = ''; // what the trace list shows now, to draw it only when it changes
let drawnOptions = '';
let drawnNamespaces = '';

// ---- small helpers ----

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(state, text) {
  if (statusLine.dataset.state === state && statusLine.textContent === text) return;
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

/** `clone(2)` → the page of man7.org that shows it, or null if it is not "name(section)". */
export function manUrl(man) {
  const m = /^([A-Za-z0-9_.:-]+)\(([1-8])[a-z]*\)$/.exec(man || '');
  if (!m) return null;
  return `https://man7.org/linux/man-pages/man${m[2]}/${m[1]}.${m[2]}.html`;
}

function ms(value) {
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

// The lab host and every container, the lab host first.
function nodes(sample) {
  return [...(sample.labhost ? [sample.labhost] : []), ...(sample.containers || [])];
}

function label(node, sample) {
  return sample && node === sample.labhost ? 'lab host' : node.name;
}

// ---- tabs ----

const tabs = [...panel.querySelectorAll('[role="tab"]')];

function showView(name) {
  view = name;
  for (const tab of tabs) {
    const selected = tab.dataset.view === name;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute('aria-controls')).hidden = !selected;
  }
  drawnTrace = '';
  drawnNamespaces = '';
  draw();
}

for (const tab of tabs) {
  tab.addEventListener('click', () => showView(tab.dataset.view));
  // Arrow keys move between tabs, as in every tab list.
  tab.addEventListener('keydown', (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
    next.focus();
    showView(next.dataset.view);
    event.preventDefault();
  });
}

// ---- the trace ----

traceSelect.addEventListener('change', () => {
  traceChoice = traceSelect.value;
  drawTrace();
});

function traceTarget(sample) {
  const all = nodes(sample);
  const has = (id) => id && all.some((n) => n.id === id);
  if (has(traceChoice)) return traceChoice;
  if (has(newestId)) return newestId;
  return sample.labhost ? sample.labhost.id : all[0]?.id ?? null;
}

function drawTraceOptions(sample, selected) {
  const all = nodes(sample);
  const key = all.map((n) => `${n.id}:${n.status}`).join(',') + `=${selected}`;
  if (key === drawnOptions) return;
  drawnOptions = key;
  traceSelect.replaceChildren(
    ...all.map((n) => {
      const option = el('option', '', `${label(n, sample)} (${n.status})`);
      option.value = n.id;
      option.selected = n.id === selected;
      return option;
    }),
  );
}

function traceRow(step, previousMs, widest) {
  const delta = Math.max(0, step.ms - previousMs);
  const li = el('li', 'trace-step');
  // The bar's track is as wide for every step: the longest step fills it.
  const track = el('span', 'trace-track');
  track.setAttribute('aria-hidden', 'true');
  const bar = el('span', 'trace-bar');
  bar.style.width = `${widest > 0 ? Math.max(1, (delta / widest) * 100) : 1}%`;
  track.append(bar);
  li.append(el('span', 'trace-ms', `${ms(step.ms)} ms`), el('span', 'trace-delta', `+${ms(delta)}`), track);
  const what = el('div', 'trace-what');
  what.append(el('span', 'trace-name', step.step));
  if (step.shell) what.append(el('code', 'trace-shell', step.shell));
  li.append(what);
  const url = manUrl(step.man);
  if (url) {
    const link = el('a', 'trace-man', step.man);
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener';
    li.append(link);
  } else {
    li.append(el('span', 'trace-man', step.man || ''));
  }
  return li;
}

function drawTrace() {
  if (!latest) return;
  const target = traceTarget(latest);
  drawTraceOptions(latest, target);
  const steps = traces.get(target);
  const key = `${target}:${steps ? steps.length : 'none'}`;
  if (key === drawnTrace) return;
  drawnTrace = key;
  if (!target) {
    traceList.replaceChildren(el('li', 'empty', 'Nothing runs yet.'));
    return;
  }
  if (!steps) {
    traceList.replaceChildren(el('li', 'empty', 'loading the trace…'));
    return;
  }
  if (steps.length === 0) {
    traceList.replaceChildren(el('li', 'empty', 'No trace was saved for this process tree.'));
    return;
  }
  let previous = 0;
  const deltas = steps.map((s) => {
    const d = Math.max(0, s.ms - previous);
    previous = s.ms;
    return d;
  });
  const widest = Math.max(...deltas);
  previous = 0;
  traceList.replaceChildren(
    ...steps.map((s) => {
      const li = traceRow(s, previous, widest);
      previous = s.ms;
      return li;
    }),
  );
}

// ---- the namespace map ----

// Columns: the real host, the lab host, and each running container.
function namespaceColumns(sample) {
  const columns = [{ name: 'host', ns: sample.host_namespaces || {} }];
  for (const n of nodes(sample)) {
    if (n.status !== 'running') continue;
    columns.push({ name: label(n, sample), ns: n.namespaces || {}, node: n });
  }
  return columns;
}

function drawNamespaces() {
  if (!latest) return;
  const columns = namespaceColumns(latest);
  const key = JSON.stringify(columns.map((c) => [c.name, c.ns, c.node?.pids]));
  if (key === drawnNamespaces) return;
  drawnNamespaces = key;

  const head = el('tr');
  head.append(el('th', '', 'Type'));
  for (const c of columns) {
    const th = el('th', 'ns-column', c.name);
    th.scope = 'col';
    head.append(th);
  }
  head.append(el('th', '', 'Shared by'));
  head.querySelectorAll('th').forEach((th) => { th.scope = 'col'; });

  const rows = NAMESPACE_TYPES.map((type) => {
    const tr = el('tr');
    const th = el('th', 'ns-type', type);
    th.scope = 'row';
    tr.append(th);
    // Equal inodes are one namespace: give each group of sharers a colour.
    const groups = new Map();
    for (const c of columns) {
      const ino = c.ns[type];
      if (ino === undefined) continue;
      if (!groups.has(ino)) groups.set(ino, []);
      groups.get(ino).push(c.name);
    }
    const shared = [...groups.entries()].filter(([, names]) => names.length > 1);
    for (const c of columns) {
      const ino = c.ns[type];
      const td = el('td', 'num', ino === undefined ? '–' : String(ino));
      const group = shared.findIndex(([i]) => i === ino);
      if (group >= 0) {
        td.classList.add('ns-shared', `ns-group-${group % 6}`);
        td.title = `one namespace: ${shared[group][1].join(', ')}`;
      } else if (ino !== undefined) {
        td.classList.add('ns-own');
        td.title = `${c.name} alone`;
      }
      tr.append(td);
    }
    tr.append(el('td', 'ns-sharing', shared.length
      ? shared.map(([, names]) => names.join(' = ')).join('; ')
      : 'nobody: each its own'));
    return tr;
  });
  nsTable.tHead.replaceChildren(head);
  nsTable.tBodies[0].replaceChildren(...rows);

  const items = columns.filter((c) => c.node).map((c) => {
    const p = c.node.pids || {};
    const num = (v) => (v === null || v === undefined ? '?' : String(v));
    const parts = c.node === latest.labhost
      ? [`${num(p.labhost)} in the lab host`, `${num(p.host)} on the host`]
      : [`${num(p.container)} in the container`, `${num(p.labhost)} in the lab host`, `${num(p.host)} on the host`];
    const li = el('li');
    li.append(el('strong', '', `${c.name}: `), parts.join(' ↔ '));
    return li;
  });
  pidList.replaceChildren(...(items.length ? items : [el('li', 'empty', 'Nothing runs yet.')]));
}

// ---- samples ----

function draw() {
  if (view === 'trace') drawTrace();
  else if (view === 'namespaces') drawNamespaces();
  else if (view === 'cgroups') cgroups.draw();
  else if (view === 'network') network.draw(latest);
  else if (view === 'storage') storage.draw(latest);
}

// Which container is the newest: the picture lists them by name, so the page
// remembers the order in which they appeared. Before that it can only guess:
// the last one listed.
function noteContainers(sample) {
  const ids = (sample.containers || []).map((c) => c.id);
  if (knownIds === null) {
    newestId = ids[ids.length - 1] ?? null;
  } else {
    const fresh = ids.filter((id) => !knownIds.includes(id));
    if (fresh.length) newestId = fresh[fresh.length - 1];
  }
  knownIds = ids;
}

let traceFetch = null;
let traceAgain = false;

async function fetchTraces() {
  if (traceFetch) {
    traceAgain = true;
    return;
  }
  traceFetch = (async () => {
    try {
      const response = await fetch(`${base}/picture?trace=1`, { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) return;
      const sample = await response.json();
      for (const n of nodes(sample)) traces.set(n.id, n.trace || []);
      if (!latest) {
        noteContainers(sample);
        latest = sample;
      }
      drawnTrace = '';
      draw();
    } catch {
      // The next change of containers asks again.
    }
  })();
  await traceFetch;
  traceFetch = null;
  if (traceAgain) {
    traceAgain = false;
    fetchTraces();
  }
}

function onSample(sample) {
  noteContainers(sample);
  latest = sample;
  cgroups.add(sample);
  if (sample.containers_changed) fetchTraces();
  draw();
  setStatus('live', 'live');
}

// ---- the stream ----

let source = null;

function openStream() {
  if (source) return;
  const es = new EventSource(`${base}/picture/stream`);
  source = es;
  es.addEventListener('picture', (event) => {
    let sample;
    try {
      sample = JSON.parse(event.data);
    } catch {
      return;
    }
    onSample(sample);
  });
  es.onerror = () => {
    if (source !== es) return;
    // CLOSED: the server refused (the session ended); otherwise the browser
    // reconnects by itself, as it does when a stream reaches its time limit.
    if (es.readyState === EventSource.CLOSED) {
      source = null;
      setStatus('stopped', 'stopped: the session has ended or cannot be reached (reload to retry)');
    } else {
      setStatus('reconnecting', 'reconnecting…');
    }
  };
}

function closeStream() {
  if (!source) return;
  source.close();
  source = null;
  setStatus('paused', 'paused while the page is hidden');
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') closeStream();
  else openStream();
});

fetchTraces();
if (document.visibilityState !== 'hidden') openStream();
