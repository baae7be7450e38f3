// The Network view of the lab page's pictures: the session's topology.
//
// The lab host is a box holding one bar per bridge (`gt-<name>`, its subnet and
// the gateway address it carries). Each running container is a box under it,
// joined to every bridge it is on by a line: a veth pair, labelled with the lab
// host's end (on the bridge) and the container's interface and address (at the
// box). A container started with `--network none` stands apart ("lo only"), one
// with `--network host` is drawn inside the lab host, and one with
// `--network container:<name>` hangs under the container whose network it shares.
//
// The SVG only pictures the table under it, which says the same in text; a
// container's box (or its name in the table) is a button that shows its
// interfaces and its network namespace below the drawing.

const SVG = 'http://www.w3.org/2000/svg';
const W = 720; // the SVG's own width; CSS scales it to the panel
const PAD = 8;
const BAR_H = 36;
const BOX_H = 40;
const GAP = 12;
const MIN_BOX_W = 130;
const MAX_BOX_W = 200;
const BRIDGES_PER_ROW = 3;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** What the drawing and the table are made from, out of one sample. */
function model(sample) {
  const networks = sample.networks || [];
  const running = (sample.containers || []).filter((c) => c.status === 'running');
  const byId = new Map(running.map((c) => [c.id, c]));
  const links = new Map(running.map((c) => [c.id, []]));
  networks.forEach((n, bridgeIndex) => {
    for (const l of n.links || []) {
      links.get(l.container_id)?.push({ ...l, network: n.name, bridge: n.bridge, bridgeIndex });
    }
  });
  // `container:<id12>` → the running container with that id, if there is one.
  const target = (c) => {
    const mode = c.network_mode || '';
    if (!mode.startsWith('container:')) return null;
    const prefix = mode.slice('container:'.length);
    return running.find((o) => o !== c && o.id.startsWith(prefix)) || null;
  };
  // The container whose own namespace a chain of sharers ends at.
  const owner = (c) => {
    const seen = new Set();
    let at = c;
    while (target(at) && !seen.has(at.id)) {
      seen.add(at.id);
      at = target(at);
    }
    return at;
  };
  const kind = (c) => {
    const mode = c.network_mode || 'none';
    if (mode === 'none') return 'none';
    if (mode === 'host') return 'host';
    if (mode.startsWith('container:')) return target(c) ? 'shares' : 'lost';
    return 'bridge';
  };
  return { sample, networks, running, byId, links, target, owner, kind };
}

/** One line of what a container's network is, in words. */
function modeText(m, c) {
  switch (m.kind(c)) {
    case 'none': return 'none: lo only';
    case 'host': return "host: shares the lab host's network";
    case 'shares': return `${c.network_mode}: shares ${m.target(c).name}'s network`;
    case 'lost': return `${c.network_mode}: shares the network of a container that is gone`;
    default: {
      const names = m.links.get(c.id).map((l) => l.network);
      return `bridge: on ${names.length ? names.join(', ') : c.network_mode}`;
    }
  }
}

export class NetworkView {
  constructor(drawing, details, table) {
    this.drawing = drawing;
    this.details = details;
    this.table = table;
    this.drawn = '';
    this.selected = null; // the container id whose details are shown
    this.model = null;
    drawing.addEventListener('click', (event) => {
      const box = event.target.closest('[data-container]');
      if (box) this.select(box.dataset.container);
    });
    drawing.addEventListener('keydown', (event) => {
      const box = event.target.closest('[data-container]');
      if (box && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        this.select(box.dataset.container);
      }
    });
    table.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-container]');
      if (button) this.select(button.dataset.container);
    });
  }

  /** Draws the sample if what the view shows of it changed. */
  draw(sample) {
    if (!sample) return;
    const m = model(sample);
    const key = JSON.stringify([
      m.networks,
      m.running.map((c) => [c.id, c.name, c.network_mode, c.namespaces?.net]),
      sample.labhost?.namespaces?.net,
    ]);
    if (key === this.drawn) return;
    this.drawn = key;
    this.model = m;
    this.drawing.replaceChildren(this.picture(m));
    this.table.replaceChildren(...this.text(m));
    this.showDetails();
  }

  select(id) {
    this.selected = id;
    this.showDetails();
    // The panel is short: bring the details into sight.
    if (!this.details.hidden) this.details.scrollIntoView({ block: 'nearest' });
  }

  // ---- the drawing ----

  picture(m) {
    const root = svg('svg', { class: 'net-svg', role: 'group', 'aria-label': 'Network topology (the table below says the same)' });
    const back = svg('g', { 'aria-hidden': 'true' }); // boxes and bars
    const wires = svg('g', { class: 'net-wires', 'aria-hidden': 'true' });
    const front = svg('g'); // the containers: buttons
    const inner = W - 2 * PAD - 20;

    // Who goes where.
    const primaries = m.running.filter((c) => m.kind(c) !== 'shares');
    const hosted = m.running.filter((c) => m.kind(c) === 'host' || (m.kind(c) === 'shares' && m.kind(m.owner(c)) === 'host'));
    const bridged = primaries.filter((c) => m.kind(c) === 'bridge');
    const apart = primaries.filter((c) => m.kind(c) === 'none' || m.kind(c) === 'lost');
    const firstBridge = (c) => Math.min(99, ...m.links.get(c.id).map((l) => l.bridgeIndex));
    bridged.sort((a, b) => firstBridge(a) - firstBridge(b) || a.name.localeCompare(b.name));
    // Sharers hang under the container that owns the namespace (unless that is the lab host's).
    const under = new Map();
    for (const c of m.running) {
      if (m.kind(c) !== 'shares' || hosted.includes(c)) continue;
      const o = m.owner(c);
      if (!under.has(o.id)) under.set(o.id, []);
      under.get(o.id).push(c);
    }

    // The lab host: a title, its host-mode containers, its bridges.
    let y = PAD;
    const hostX = PAD;
    let inY = y + 22;
    const labhostNet = m.sample.labhost?.namespaces?.net;
    back.append(svg('text', { x: hostX + 10, y: y + 16, class: 'net-title' },
      `lab host${labhostNet ? ` · net ns ${labhostNet}` : ''}`));
    if (hosted.length) {
      const bw = Math.min(MAX_BOX_W + 60, (inner - GAP * (hosted.length - 1)) / hosted.length);
      hosted.forEach((c, i) => {
        const text = m.kind(c) === 'host' ? "shares the lab host's network" : `shares ${m.target(c).name}'s network`;
        front.append(this.box(c, hostX + 10 + i * (bw + GAP), inY, bw, c.name, text, 'net-hosted'));
      });
      inY += BOX_H + 8;
    }
    const bars = new Map(); // network name → {x, y, w}
    if (m.networks.length === 0) {
      back.append(svg('text', { x: hostX + 10, y: inY + 16, class: 'net-empty' },
        'No networks yet: try gantry network create lan'));
      inY += 26;
    } else {
      const rows = Math.ceil(m.networks.length / BRIDGES_PER_ROW);
      const perRow = Math.min(BRIDGES_PER_ROW, m.networks.length);
      const bw = (inner - GAP * (perRow - 1)) / perRow;
      m.networks.forEach((n, i) => {
        const bx = hostX + 10 + (i % perRow) * (bw + GAP);
        const by = inY + Math.floor(i / perRow) * (BAR_H + 8);
        bars.set(n.name, { x: bx, y: by, w: bw });
        back.append(
          svg('rect', { x: bx, y: by, width: bw, height: BAR_H, rx: 3, class: 'net-bar' }),
          svg('text', { x: bx + 8, y: by + 14, class: 'net-bar-name' }, `${n.bridge} (network ${n.name})`),
          svg('text', { x: bx + 8, y: by + 29, class: 'net-bar-addr' }, `${n.subnet}, gateway ${n.gateway}`),
        );
      });
      inY += rows * (BAR_H + 8) - 8 + 4;
    }
    const hostH = inY + 8 - y;
    back.prepend(svg('rect', { x: hostX, y, width: W - 2 * PAD, height: hostH, rx: 6, class: 'net-host' }));
    y += hostH;

    // The containers on bridges: one row (or more) under the lab host.
    const maxLinks = Math.max(0, ...bridged.map((c) => m.links.get(c.id).length));
    const placeRow = (list, top) => {
      if (!list.length) return top;
      const per = Math.max(1, Math.floor((W - 2 * PAD + GAP) / (MIN_BOX_W + GAP)));
      let rowTop = top;
      for (let start = 0; start < list.length; start += per) {
        const row = list.slice(start, start + per);
        const bw = Math.min(MAX_BOX_W, (W - 2 * PAD - GAP * (row.length - 1)) / row.length);
        let bottom = rowTop;
        row.forEach((c, i) => {
          const bx = PAD + i * (bw + GAP);
          c.at = { x: bx, y: rowTop, w: bw };
          front.append(this.box(c, bx, rowTop, bw, c.name, this.boxLine(m, c), `net-${m.kind(c)}`));
          let sy = rowTop + BOX_H;
          for (const s of under.get(c.id) || []) {
            back.append(svg('line', { x1: bx + bw / 2, x2: bx + bw / 2, y1: sy, y2: sy + 14, class: 'net-share' }));
            front.append(this.box(s, bx + 10, sy + 14, bw - 10, s.name, `shares ${m.target(s).name}'s network`, 'net-shares'));
            sy += 14 + BOX_H;
          }
          bottom = Math.max(bottom, sy);
        });
        rowTop = bottom + GAP;
      }
      return rowTop;
    };
    const wiresTop = y;
    if (bridged.length) {
      y += 30 + 13 * maxLinks + 10;
      y = placeRow(bridged, y);
    }

    // Each veth pair: a line from the bridge to the box, named at both ends.
    const onBar = new Map(); // network → links in the order of the boxes
    for (const c of bridged) {
      for (const l of m.links.get(c.id)) {
        if (!onBar.has(l.network)) onBar.set(l.network, []);
        onBar.get(l.network).push(l);
      }
    }
    for (const [network, list] of onBar) {
      const bar = bars.get(network);
      if (!bar) continue;
      // Straight down where the bar is over the box; else, or where two ports
      // would crowd each other, spread evenly along the bar.
      const end = (l) => {
        const c = m.byId.get(l.container_id);
        const mine = m.links.get(c.id);
        const k = mine.indexOf(l);
        return { c, mine, k, ex: c.at.x + ((k + 1) * c.at.w) / (mine.length + 1), ey: c.at.y };
      };
      const ends = list.map(end);
      let ports = ends.map((e) => Math.min(bar.x + bar.w - 10, Math.max(bar.x + 10, e.ex)));
      if (ports.some((p, i) => i > 0 && p - ports[i - 1] < 110)) {
        ports = list.map((_, j) => bar.x + ((j + 0.5) * bar.w) / list.length);
      }
      list.forEach((l, j) => {
        const { mine, k, ex, ey } = ends[j];
        const ax = ports[j];
        const ay = bar.y + BAR_H;
        wires.append(svg('line', { x1: ax, y1: ay, x2: ex, y2: ey, class: 'net-veth' }));
        wires.append(svg('circle', { cx: ax, cy: ay, r: 2.5, class: 'net-port' }));
        // The labels sit beside the line: its x at the label's height.
        const xAt = (ly) => ax + ((ex - ax) * (ly - ay)) / (ey - ay || 1);
        const label = (ly, text, className) => {
          const lx = xAt(ly);
          const end = lx > W - 120;
          wires.append(svg('text', {
            x: lx + (end ? -5 : 5), y: ly, 'text-anchor': end ? 'end' : 'start', class: className,
          }, text));
        };
        label(wiresTop + 13 + 12 * (j % 2), l.veth, 'net-veth-name');
        label(ey - 4 - 13 * (mine.length - 1 - k), `${l.interface} ${l.address}`, 'net-if');
      });
    }

    // Containers with no network: apart, under a line of their own.
    if (apart.length) {
      y += 6;
      back.append(svg('text', { x: PAD, y: y + 10, class: 'net-title' }, '--network none: a network namespace of its own with only lo'));
      y = placeRow(apart, y + 18);
    }
    if (!m.running.length) {
      back.append(svg('text', { x: PAD, y: y + 22, class: 'net-empty' }, 'No container is running: start one in the terminal.'));
      y += 32;
    }
    root.setAttribute('viewBox', `0 0 ${W} ${Math.ceil(y + PAD)}`);
    root.append(back, wires, front);
    return root;
  }

  boxLine(m, c) {
    if (m.kind(c) === 'none') return 'lo only';
    if (m.kind(c) === 'lost') return `shares ${c.network_mode.slice(10)}'s network (gone)`;
    return c.namespaces?.net ? `net ns ${c.namespaces.net}` : '';
  }

  box(c, x, y, w, name, line, className) {
    const g = svg('g', {
      class: `net-node ${className}${c.id === this.selected ? ' selected' : ''}`,
      tabindex: '0', role: 'button', 'data-container': c.id, 'data-name': c.name,
      'aria-label': `${c.name}: show its network details`,
    });
    g.append(
      svg('rect', { x, y, width: w, height: BOX_H, rx: 4 }),
      svg('text', { x: x + 8, y: y + 16, class: 'net-node-name' }, name),
      svg('text', { x: x + 8, y: y + 31, class: 'net-node-line' }, line),
    );
    return g;
  }

  // ---- the text ----

  text(m) {
    const out = [];
    if (!m.networks.length) out.push(el('p', 'empty', 'No networks yet: try gantry network create lan'));
    const table = el('table', 'net-table');
    const head = el('tr');
    for (const h of ['Network', 'Container', 'Interface', 'Address', 'Lab host end (veth)']) {
      const th = el('th', '', h);
      th.scope = 'col';
      head.append(th);
    }
    table.createTHead().append(head);
    const body = table.createTBody();
    const name = (c) => {
      const b = el('button', 'net-pick', c.name);
      b.type = 'button';
      b.dataset.container = c.id;
      return b;
    };
    const row = (cells) => {
      const tr = el('tr');
      for (const cell of cells) {
        const td = el('td');
        td.append(cell ?? '');
        tr.append(td);
      }
      body.append(tr);
    };
    for (const n of m.networks) {
      const netCell = () => {
        const span = el('span');
        span.append(el('strong', '', n.bridge), ` (${n.name}) ${n.subnet}, gateway ${n.gateway}`);
        return span;
      };
      const live = (n.links || []).filter((l) => m.byId.has(l.container_id));
      if (!live.length) row([netCell(), 'no container yet', '', '', '']);
      for (const l of live) {
        row([netCell(), name(m.byId.get(l.container_id)), el('code', '', l.interface), el('code', '', l.address), el('code', '', l.veth)]);
      }
    }
    for (const c of m.running) {
      const kind = m.kind(c);
      if (kind === 'bridge') continue;
      const what = kind === 'none' ? 'lo only'
        : kind === 'host' ? "the lab host's"
          : kind === 'shares' ? `${m.target(c).name}'s` : 'a container that is gone';
      row([c.network_mode, name(c), what, '', '']);
    }
    if (body.rows.length) out.push(table);
    else if (m.networks.length) out.push(el('p', 'empty', 'No container is running: start one in the terminal.'));
    return out;
  }

  showDetails() {
    const m = this.model;
    const c = m && this.selected ? m.byId.get(this.selected) : null;
    for (const node of this.drawing.querySelectorAll('[data-container]')) {
      node.classList.toggle('selected', node.dataset.container === this.selected);
    }
    if (!c) {
      this.details.hidden = true;
      this.details.replaceChildren();
      return;
    }
    const owner = m.owner(c);
    const kind = m.kind(c);
    const facts = [['Container', c.name], ['Network mode', modeText(m, c)]];
    const ifaces = ['lo 127.0.0.1/8'];
    if (kind === 'host') ifaces.push("the lab host's own: every bridge above and its veth ends");
    else if (kind === 'bridge' || kind === 'shares') {
      for (const l of m.links.get(owner.id)) {
        ifaces.push(`${l.interface} ${l.address} on ${l.network} (${l.bridge}), lab host end ${l.veth}`
          + (owner !== c ? ` (${owner.name}'s)` : ''));
      }
    }
    facts.push(['Interfaces', ifaces]);
    facts.push(['Network namespace', c.namespaces?.net ? `net:[${c.namespaces.net}]` : 'unknown']);
    const sharers = m.running.filter((o) => o !== c && o.namespaces?.net && o.namespaces.net === c.namespaces?.net);
    if (sharers.length) facts.push(['Shared with', sharers.map((o) => o.name).join(', ')]);
    const items = [];
    for (const [dt, dd] of facts) {
      const d = el('dd');
      if (Array.isArray(dd)) {
        const ul = el('ul', 'net-ifaces');
        ul.append(...dd.map((t) => el('li', '', t)));
        d.append(ul);
      } else {
        d.textContent = dd;
      }
      items.push(el('dt', '', dt), d);
    }
    this.details.replaceChildren(...items);
    this.details.dataset.container = c.name;
    this.details.hidden = false;
  }
}
