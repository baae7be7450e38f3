// The cgroups view of the lab page's pictures: for each running container, the
// last minute of its cgroup's memory, CPU and process counts against their
// limits (cgroups(7)), the kernel's OOM kills and CPU throttling as marks and
// as a list of events, and buttons that pause a container and change its
// limits (what `gantry pause` and `gantry update` do).
//
// Each chart is a small inline SVG drawn here; the line of text under it says
// the same numbers. A container's card is made once and then only updated, so
// a half-typed limit survives the next sample.

const HISTORY = 60; // samples kept per container: a minute at one a second
const WINDOW_MS = 60_000;
const MAX_EVENTS = 20;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 300; // the SVG's own units; CSS scales it to the card
const HEIGHT = 60;

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function isNumber(x) {
  return typeof x === 'number' && Number.isFinite(x);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** One chart: a line of use, a dashed limit, red marks at events, and its text. */
class Chart {
  constructor(name) {
    this.root = el('div', `cg-chart cg-${name}`);
    this.svg = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    this.marks = svg('g', { class: 'marks' });
    this.limit = svg('line', { class: 'limit', x1: 0, x2: WIDTH });
    this.line = svg('polyline', { class: 'use' });
    this.svg.append(this.marks, this.limit, this.line);
    this.text = el('p', 'cg-text');
    this.root.append(this.svg, this.text);
  }

  /**
   * `points`: [{t, v}] with v null where unknown; `limit`: a number or null;
   * `marks`: [{t, kind}] events; `now`: the right edge's time; `floor`: the
   * smallest top of the scale, so that a flat line near zero stays near zero.
   */
  draw(points, limit, marks, now, floor, text) {
    const known = points.filter((p) => isNumber(p.v));
    const top = Math.max(floor, isNumber(limit) ? limit : 0, ...known.map((p) => p.v)) * 1.15;
    const x = (t) => (WIDTH * (t - (now - WINDOW_MS))) / WINDOW_MS;
    const y = (v) => HEIGHT - (HEIGHT * v) / top;
    this.line.setAttribute('points', known.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '));
    if (isNumber(limit)) {
      this.limit.setAttribute('y1', y(limit).toFixed(1));
      this.limit.setAttribute('y2', y(limit).toFixed(1));
      this.limit.style.display = '';
    } else {
      this.limit.style.display = 'none';
    }
    // An OOM kill is rare and drastic: a line through the chart. Throttling
    // repeats every second while it lasts: a tick along the bottom.
    this.marks.replaceChildren(
      ...marks.filter((m) => m.t >= now - WINDOW_MS).map((m) => svg('line', {
        class: m.kind, x1: x(m.t), x2: x(m.t), y1: m.kind === 'oom' ? 0 : HEIGHT - 10, y2: HEIGHT,
      })),
    );
    this.text.textContent = text;
  }
}

/** A container's card: its charts, its pause button and its limits form. */
class Card {
  constructor(base, name) {
    this.base = base;
    this.name = name;
    this.root = el('article', 'cg-card');
    this.root.dataset.container = name;
    const head = el('header', 'cg-head');
    this.title = el('h4', '', name);
    this.pause = el('button', 'cg-pause', 'Pause');
    this.pause.type = 'button';
    this.pause.addEventListener('click', () => this.togglePause());
    head.append(this.title, this.pause);

    this.memory = new Chart('memory');
    this.cpu = new Chart('cpu');
    this.pids = new Chart('pids');

    this.form = el('form', 'cg-limits');
    this.inputs = {};
    for (const [field, text, example] of [['memory', 'memory', '64m'], ['cpus', 'cpus', '0.5'], ['pids', 'pids', '20']]) {
      const labelEl = el('label', '', `${text} `);
      const input = el('input');
      input.name = field;
      input.size = 5;
      input.placeholder = example;
      input.autocomplete = 'off';
      labelEl.append(input);
      this.form.append(labelEl);
      this.inputs[field] = input;
    }
    const apply = el('button', '', 'Set limits');
    apply.type = 'submit';
    this.form.append(apply);
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.setLimits();
    });

    head.append(this.form);
    const charts = el('div', 'cg-charts');
    charts.append(this.memory.root, this.cpu.root, this.pids.root);
    this.message = el('p', 'cg-message');
    this.message.setAttribute('role', 'status');
    this.root.append(head, charts, this.message);
  }

  say(state, text) {
    this.message.dataset.state = state;
    this.message.textContent = text;
  }

  async send(method, path, body) {
    const url = `${this.base}/containers/${encodeURIComponent(this.name)}/${path}`;
    const init = { method, credentials: 'same-origin' };
    if (body) {
      init.headers = { 'Content-Type': 'application/json' };
      init.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(url, init);
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        this.say('error', answer.error || `the server answered ${response.status}`);
        return false;
      }
      return true;
    } catch (error) {
      this.say('error', `could not reach the server: ${error.message}`);
      return false;
    }
  }

  async togglePause() {
    const resume = this.pause.dataset.paused === 'true';
    this.pause.disabled = true;
    if (await this.send('POST', resume ? 'unpause' : 'pause')) {
      this.say('ok', resume ? `${this.name} resumed` : `${this.name} paused: its processes are frozen`);
    }
    this.pause.disabled = false; // the next sample shows the new state
  }

  async setLimits() {
    const body = {};
    for (const [field, input] of Object.entries(this.inputs)) {
      if (input.value.trim()) body[field] = input.value.trim();
    }
    if (Object.keys(body).length === 0) {
      this.say('error', 'type a limit first, e.g. 64m for memory');
      return;
    }
    if (await this.send('PUT', 'limits', body)) {
      this.say('ok', `limits changed: ${Object.entries(body).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      for (const input of Object.values(this.inputs)) input.value = '';
    }
  }

  draw(history, now) {
    const last = history.points[history.points.length - 1];
    this.pause.dataset.paused = String(last.paused);
    this.pause.textContent = last.paused ? 'Resume' : 'Pause';
    this.title.textContent = last.paused ? `${this.name} (paused)` : this.name;
    const series = (key) => history.points.map((p) => ({ t: p.t, v: p[key] }));
    const marksOf = (kind) => history.marks.filter((m) => m.kind === kind);

    const mem = last.memLimit;
    this.memory.draw(series('mem'), mem, marksOf('oom'), now, 1024 * 1024,
      `memory ${bytes(last.mem)}${isNumber(mem) ? ` of ${bytes(mem)}` : ', no limit'}, `
      + `${plural(last.oomKills, 'OOM kill', 'OOM kills')}`);

    const quota = last.quota;
    const cpuNow = isNumber(last.cpu) ? `${last.cpu.toFixed(1)}% of one CPU` : 'measuring';
    this.cpu.draw(series('cpu'), quota, marksOf('throttle'), now, 10,
      `CPU ${cpuNow}${isNumber(quota) ? `, quota ${quota.toFixed(0)}%` : ', no quota'}, `
      + `throttled in ${plural(last.throttled, 'period', 'periods')}`);

    const pl = last.pidsLimit;
    this.pids.draw(series('pids'), pl, [], now, 4,
      `pids ${last.pids}${isNumber(pl) ? ` of ${pl}` : ', no limit'}`);
  }
}

/** The view: history of every container's samples, and the cards that show them. */
export class CgroupView {
  constructor(root, eventList, base) {
    this.root = root;
    this.eventList = eventList;
    this.base = base;
    this.history = new Map(); // container id → { name, points, marks, prev }
    this.cards = new Map(); // container id → Card
    this.events = []; // newest first: { t, kind, name, count, text }
    this.now = 0;
  }

  /** Records a sample (whether or not the view is shown, so its charts have a past). */
  add(sample) {
    const t = sample.sampled_at_ms;
    this.now = t;
    const running = new Set();
    for (const c of sample.containers || []) {
      if (c.status !== 'running' || !c.cgroup) continue;
      running.add(c.id);
      let h = this.history.get(c.id);
      if (!h) {
        h = { name: c.name, points: [], marks: [], prev: null };
        this.history.set(c.id, h);
      }
      this.record(h, c, t);
    }
    for (const id of this.history.keys()) {
      if (!running.has(id)) this.history.delete(id);
    }
  }

  record(h, c, t) {
    const { memory, cpu, pids } = c.cgroup;
    const prev = h.prev;
    let cpuPct = null;
    // usage_ns is a counter; its rate over the time between samples is the use.
    if (prev && t > prev.t && cpu.usage_ns >= prev.usageNs) {
      cpuPct = ((cpu.usage_ns - prev.usageNs) / ((t - prev.t) * 1e6)) * 100;
    }
    if (prev && memory.oom_kills > prev.oomKills) {
      const n = memory.oom_kills - prev.oomKills;
      h.marks.push({ t, kind: 'oom' });
      const limit = isNumber(memory.limit_bytes) ? ` at its ${bytes(memory.limit_bytes)} limit` : '';
      this.event(t, 'oom', c.name, n, (count) =>
        `${c.name}: the OOM killer ended ${plural(count, 'process', 'processes')}${limit}`);
    }
    if (prev && cpu.nr_throttled > prev.throttled) {
      const n = cpu.nr_throttled - prev.throttled;
      h.marks.push({ t, kind: 'throttle' });
      this.event(t, 'throttle', c.name, n, (count) =>
        `${c.name}: CPU throttled in ${plural(count, 'period', 'periods')} (it wanted more than its quota)`);
    }
    h.marks = h.marks.filter((m) => m.t >= t - WINDOW_MS);
    h.points.push({
      t,
      mem: memory.usage_bytes,
      memLimit: memory.limit_bytes ?? null,
      oomKills: memory.oom_kills,
      cpu: cpuPct,
      quota: isNumber(cpu.quota_cpus) ? cpu.quota_cpus * 100 : null,
      throttled: cpu.nr_throttled,
      pids: pids.current,
      pidsLimit: pids.limit ?? null,
      paused: c.paused,
    });
    if (h.points.length > HISTORY) h.points.shift();
    h.prev = { t, usageNs: cpu.usage_ns, oomKills: memory.oom_kills, throttled: cpu.nr_throttled };
  }

  // Throttling goes on every second while a process wants more CPU than its
  // quota: one line that counts on, rather than a line a second.
  event(t, kind, name, count, text) {
    const top = this.events.find((e) => e.name === name && e.kind === kind);
    if (kind === 'throttle' && top && top === this.events.find((e) => e.name === name) && t - top.last <= 5000) {
      top.count += count;
      top.last = t;
      top.text = text(top.count);
    } else {
      this.events.unshift({ t, last: t, kind, name, count, text: text(count) });
      this.events.length = Math.min(this.events.length, MAX_EVENTS);
    }
    this.eventsChanged = true;
  }

  draw() {
    for (const [id, card] of this.cards) {
      if (!this.history.has(id)) {
        card.root.remove();
        this.cards.delete(id);
      }
    }
    for (const [id, h] of this.history) {
      let card = this.cards.get(id);
      if (!card) {
        card = new Card(this.base, h.name);
        this.cards.set(id, card);
      }
      card.draw(h, this.now);
    }
    // Cards in the order of their names, as the picture lists them.
    const wanted = [...this.cards.values()].sort((a, b) => a.name.localeCompare(b.name)).map((c) => c.root);
    if (wanted.length === 0) {
      if (!this.root.querySelector('.empty')) {
        this.root.replaceChildren(el('p', 'empty', 'No container is running: start one in the terminal.'));
      }
    } else if (wanted.some((node, i) => this.root.children[i] !== node) || this.root.children.length !== wanted.length) {
      this.root.replaceChildren(...wanted);
    }
    if (this.eventsChanged || !this.eventList.dataset.drawn) {
      this.eventsChanged = false;
      this.eventList.dataset.drawn = 'true';
      this.eventList.replaceChildren(
        ...(this.events.length
          ? this.events.map((e) => {
            const li = el('li', `cg-event cg-event-${e.kind}`);
            li.append(el('time', '', clock(e.t)), ` ${e.text}`);
            return li;
          })
          : [el('li', 'empty', 'none yet')]),
      );
    }
  }
}
