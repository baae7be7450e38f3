// The side panel: what isolates this container, sampled every two seconds
// from GET /api/v1/sessions/<id>/isolation.
//
// Namespaces (namespaces(7)): each one the container is in is a kernel object
// with an inode number, the same one `ls -l /proc/<pid>/ns` shows. If the
// container's inode equals the host's, the two share that namespace.
//
// cgroup (cgroups(7)): the kernel counts memory, processes and CPU time for
// the container's cgroup and enforces its limits. Every number is shown as
// text; the bars only picture the text.

const POLL_MS = 2000;
const SLOW_POLL_MS = 10000; // while the fetch fails or the container is not running

const panel = document.getElementById('isolation');
const sessionId = panel.dataset.sessionId;
const url = `/api/v1/sessions/${encodeURIComponent(sessionId)}/isolation`;
const panelStatus = document.getElementById('panel-status');
const nsBody = document.querySelector('#namespaces tbody');

let previous = null; // the last sample, to turn CPU time into a rate

// ---- formatting ----

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  // "64 MiB" rather than "64.0 MiB", but "12.3 MiB" keeps its decimal.
  const digits = unit === 0 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function isNumber(x) {
  return typeof x === 'number' && Number.isFinite(x);
}

// ---- drawing ----

// Fill one gauge: `fraction` is null when there is no limit to compare with,
// and then the bar is hidden rather than drawn against an arbitrary scale.
function gauge(id, text, fraction) {
  const root = document.getElementById(id);
  root.querySelector('.gauge-text').textContent = text;
  const bar = root.querySelector('.bar');
  bar.hidden = fraction === null;
  if (fraction === null) return;
  const clamped = Math.max(0, Math.min(1, fraction));
  const fill = bar.querySelector('.bar-fill');
  fill.style.width = `${(clamped * 100).toFixed(1)}%`;
  root.dataset.level = clamped >= 0.95 ? 'full' : clamped >= 0.8 ? 'high' : 'ok';
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function drawNamespaces(namespaces) {
  const rows = namespaces.map((ns) => {
    const tr = document.createElement('tr');
    tr.className = ns.shared ? 'shared' : 'private';
    tr.append(
      cell(ns.type, 'ns-type'),
      cell(String(ns.container), 'num'),
      cell(String(ns.host), 'num'),
      cell(ns.shared ? 'shared' : 'private', 'ns-verdict'),
    );
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    tr.append(cell('no namespaces reported'));
    tr.firstChild.colSpan = 4;
    rows.push(tr);
  }
  nsBody.replaceChildren(...rows);
}

function drawMemory(memory) {
  const limit = memory.limit_bytes;
  let text = isNumber(limit)
    ? `${bytes(memory.usage_bytes)} of ${bytes(limit)}`
    : `${bytes(memory.usage_bytes)} (no limit)`;
  if (isNumber(memory.max_usage_bytes)) text += `, peak ${bytes(memory.max_usage_bytes)}`;
  gauge('gauge-memory', text, isNumber(limit) && limit > 0 ? memory.usage_bytes / limit : null);
}

function drawPids(pids) {
  const limit = pids.limit;
  const text = isNumber(limit)
    ? `${pids.current} of ${plural(limit, 'process', 'processes')}`
    : `${plural(pids.current, 'process', 'processes')} (no limit)`;
  gauge('gauge-pids', text, isNumber(limit) && limit > 0 ? pids.current / limit : null);
}

// CPU time is a counter (nanoseconds used since the cgroup was made); its
// rate between two samples, in CPUs, is what the quota limits.
function drawCpu(cpu, sampledAt) {
  const quota = cpu.quota_cpus;
  const quotaText = isNumber(quota) ? `quota ${quota} CPU` : 'no quota';
  const earlier = previous && previous.cgroup && previous.cgroup.cpu;
  const elapsedMs = previous ? sampledAt - previous.sampled_at_ms : 0;
  // A counter that went backwards belongs to a new cgroup: start over.
  if (!earlier || elapsedMs <= 0 || cpu.usage_ns < earlier.usage_ns) {
    gauge('gauge-cpu', `measuring… (${quotaText})`, null);
    return;
  }
  const cpus = (cpu.usage_ns - earlier.usage_ns) / (elapsedMs * 1e6);
  const text = `${(cpus * 100).toFixed(1)}% of one CPU (${quotaText})`;
  gauge('gauge-cpu', text, isNumber(quota) && quota > 0 ? cpus / quota : null);
}

// Rare events are listed only when they happened, so that they stand out.
function drawEvents(cgroup) {
  const events = [];
  const oom = cgroup.memory.oom_kills;
  const failcnt = cgroup.memory.failcnt;
  const throttled = cgroup.cpu.nr_throttled;
  if (oom > 0) events.push(`the OOM killer ended ${plural(oom, 'process', 'processes')}`);
  if (failcnt > 0) events.push(`memory limit reached ${plural(failcnt, 'time', 'times')}`);
  if (throttled > 0) events.push(`CPU throttled in ${plural(throttled, 'period', 'periods')}`);
  document.getElementById('cgroup-events').replaceChildren(
    ...events.map((text) => {
      const li = document.createElement('li');
      li.textContent = text;
      return li;
    }),
  );
}

function draw(sample) {
  drawNamespaces(sample.namespaces || []);
  const cgroup = sample.cgroup;
  document.getElementById('cgroup-path').textContent = cgroup.path;
  drawMemory(cgroup.memory);
  drawPids(cgroup.pids);
  drawCpu(cgroup.cpu, sample.sampled_at_ms);
  drawEvents(cgroup);
}

function setPanelStatus(state, text) {
  panelStatus.dataset.state = state;
  panelStatus.textContent = text;
}

// ---- the session's times ----

function drawTimes() {
  const now = Date.now() / 1000;
  for (const el of document.querySelectorAll('time[data-unix]')) {
    const unix = Number(el.dataset.unix);
    const date = new Date(unix * 1000);
    el.dateTime = date.toISOString();
    const clock = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const minutes = Math.round((unix - now) / 60);
    let relative = '';
    if (el.id === 'expires-at') {
      relative = minutes > 0 ? ` (in ${plural(minutes, 'minute', 'minutes')})` : ' (expired)';
    }
    el.textContent = clock + relative;
  }
}

// ---- polling ----

// A chain of timeouts rather than setInterval: a slow answer never overlaps
// the next request.
async function poll() {
  let delay = POLL_MS;
  try {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const sample = await response.json();
    if (sample.state !== 'running') {
      setPanelStatus('stopped', `container ${sample.state || 'state unknown'}`);
      previous = null;
      delay = SLOW_POLL_MS;
    } else {
      draw(sample);
      previous = sample;
      setPanelStatus('running', `container running, pid ${sample.pid} on the host`);
    }
  } catch (error) {
    // Keep the last picture; say that it is getting old.
    setPanelStatus('error', `could not sample the container: ${error.message}; retrying`);
    delay = SLOW_POLL_MS;
  }
  drawTimes();
  setTimeout(poll, delay);
}

poll();
