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
// A macvlan network's bar is its parent device (`gt-<name>`, a veth in the lab
// host) and each container's interface is a macvlan of it rather than a veth
// pair. When there is an overlay network (or a container runs on the second lab
// host), a second box, labhost2, stands beside the lab host with its own bar for
// each overlay network, its containers under it, and the VXLAN tunnel between
// the two bars of a network drawn as a dashed line.
//
// The SVG only pictures the table under it, which says the same in text; a
// container's box (or its name in the table) is a button that shows its
// interfaces and its network namespace below the drawing.

const SVG = 'http://www.w3.org/2000/svg';
const W = 720; // the SVG's own width; CSS scales it to the panel
const PAD = 8;
const BAR_H = 50;
const TUNNEL_GAP = 140; // between the two lab hosts, for the tunnels' labels
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
      links.get(l.container_id)?.push({
        ...l, network: n.name, bridge: n.bridge, driver: n.driver || 'bridge', bridgeIndex,
      });
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
  const nodeOf = (c) => (c.node === 'labhost2' ? 'labhost2' : 'labhost');
  const twoHosts = running.some((c) => nodeOf(c) === 'labhost2') || networks.some((n) => n.driver === 'overlay');
  return { sample, networks, running, byId, links, target, owner, kind, nodeOf, twoHosts };
}

/** What a network's driver is, in a few words (for its bar and the table). */
function driverText(n) {
  if (n.driver === 'macvlan') return `macvlan parent ${n.bridge}`;
  if (n.driver === 'overlay') return 'overlay (VXLAN to labhost2)';
  return n.driver || 'bridge';
}

/** The lab host's end of a link: a veth, or for macvlan the parent device. */
function hostEnd(l) {
  return l.driver === 'macvlan' ? `macvlan of ${l.bridge}` : l.veth;
}

/** `text` in at most `lines` lines of at most `width` characters, "…" if cut. */
function wrap(text, width, lines) {
  const out = [];
  let line = '';
  const words = text.split(' ');
  for (let i = 0; i < words.length; i += 1) {
    const next = line ? `${line} ${words[i]}` : words[i];
    if (next.length <= width || !line) {
      line = next;
      continue;
    }
    out.push(line);
    line = words[i];
    if (out.length === lines) {
      out[lines - 1] = `${out[lines - 1].slice(0, width - 1)}…`;
      return out;
    }
  }
  out.push(line.length > width ? `${line.slice(0, width - 1)}…` : line);
  return out;
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
      const drivers = [...new Set(m.links.get(c.id).map((l) => l.driver))].join('/') || 'bridge';
      return `${drivers}: on ${names.length ? names.join(', ') : c.network_mode}`;
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
      m.running.map((c) => [c.id, c.name, c.network_mode, c.namespaces?.net, c.node]),
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
    const tunnels = svg('g', { class: 'net-tunnels' }); // with <title>s: not hidden
    const wires = svg('g', { class: 'net-wires', 'aria-hidden': 'true' });
    const front = svg('g'); // the containers: buttons

    // The lab hosts: one across the width, or two side by side with the tunnels between.
    const hostW = m.twoHosts ? (W - 2 * PAD - TUNNEL_GAP) / 2 : W - 2 * PAD;
    const overlays = m.networks.filter((n) => n.driver === 'overlay');
    const hosts = [{
      name: 'labhost', x: PAD, w: hostW,
      // With two hosts, the overlays first, level with their bars in labhost2.
      networks: m.twoHosts ? [...overlays, ...m.networks.filter((n) => n.driver !== 'overlay')] : m.networks,
    }];
    if (m.twoHosts) hosts.push({ name: 'labhost2', x: W - PAD - hostW, w: hostW, networks: overlays });
    const hostOf = (c) => hosts.find((h) => h.name === m.nodeOf(c)) || hosts[0];

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

    // Each lab host: a title, its host-mode containers, its bars.
    const top = PAD;
    const bars = new Map(); // `${host}|${network}` → {x, y, w}
    let hostBottom = top;
    // The bars start at one height in both hosts, so that a tunnel runs level.
    const anyHosted = hosted.length > 0;
    for (const h of hosts) {
      const inner = h.w - 20;
      let inY = top + 22;
      const title = h.name === 'labhost'
        ? `lab host${m.twoHosts ? ' (labhost)' : ''}${m.sample.labhost?.namespaces?.net ? ` · net ns ${m.sample.labhost.namespaces.net}` : ''}`
        : 'labhost2 · the second lab host (overlay)';
      back.append(svg('text', { x: h.x + 10, y: top + 16, class: 'net-title' }, title));
      const mine = hosted.filter((c) => hostOf(m.owner(c)) === h);
      if (mine.length) {
        const bw = Math.min(MAX_BOX_W + 60, (inner - GAP * (mine.length - 1)) / mine.length);
        mine.forEach((c, i) => {
          const text = m.kind(c) === 'host' ? "shares the lab host's network" : `shares ${m.target(c).name}'s network`;
          front.append(this.box(c, h.x + 10 + i * (bw + GAP), inY, bw, c.name, text, 'net-hosted'));
        });
      }
      if (anyHosted) inY += BOX_H + 8;
      if (h.networks.length === 0) {
        back.append(svg('text', { x: h.x + 10, y: inY + 16, class: 'net-empty' },
          h.name === 'labhost' ? 'No networks yet: try gantry network create lan' : 'No overlay network'));
        inY += 26;
      } else {
        const perRow = m.twoHosts ? 1 : Math.min(BRIDGES_PER_ROW, h.networks.length);
        const rows = Math.ceil(h.networks.length / perRow);
        const bw = (inner - GAP * (perRow - 1)) / perRow;
        h.networks.forEach((n, i) => {
          const bx = h.x + 10 + (i % perRow) * (bw + GAP);
          const by = inY + Math.floor(i / perRow) * (BAR_H + 8);
          bars.set(`${h.name}|${n.name}`, { x: bx, y: by, w: bw });
          const driver = n.driver || 'bridge';
          back.append(
            svg('rect', { x: bx, y: by, width: bw, height: BAR_H, rx: 3, class: `net-bar net-bar-${driver}` }),
            svg('text', { x: bx + 8, y: by + 14, class: 'net-bar-name' }, `${n.bridge} (network ${n.name})`),
            svg('text', { x: bx + 8, y: by + 29, class: 'net-bar-addr' },
              driver === 'macvlan' ? `${n.subnet} (no gateway in the lab host)`
                // labhost2's side of an overlay carries no address: the gateway is in labhost.
                : h.name === 'labhost2' ? `${n.subnet}, gateway ${n.gateway} in labhost`
                  : `${n.subnet}, gateway ${n.gateway}`),
            svg('text', { x: bx + 8, y: by + 43, class: 'net-bar-driver' }, `driver: ${driverText(n)}`),
          );
        });
        inY += rows * (BAR_H + 8) - 8 + 4;
      }
      h.bottom = inY + 8;
      hostBottom = Math.max(hostBottom, h.bottom);
    }
    for (const h of hosts) {
      back.prepend(svg('rect', {
        x: h.x, y: top, width: h.w, height: hostBottom - top, rx: 6, class: 'net-host', 'data-host': h.name,
      }));
    }
    let y = hostBottom;

    // Each overlay's tunnel: a dashed line between its two bars, in the gap.
    for (const n of overlays) {
      const a = bars.get(`labhost|${n.name}`);
      const b = bars.get(`labhost2|${n.name}`);
      if (!a || !b) continue;
      const ly = a.y + BAR_H / 2;
      const text = n.tunnel || `VXLAN tunnel of ${n.name}`;
      const g = svg('g', { class: 'net-tunnel', 'data-network': n.name });
      g.append(svg('title', {}, text));
      g.append(svg('line', { x1: a.x + a.w, y1: ly, x2: b.x, y2: ly, class: 'net-tunnel-line' }));
      const mid = (a.x + a.w + b.x) / 2;
      const lines = wrap(text, 22, 2);
      lines.forEach((t, i) => {
        g.append(svg('text', {
          x: mid, y: ly - 5 - 11 * (lines.length - 1 - i), 'text-anchor': 'middle', class: 'net-tunnel-label',
        }, t));
      });
      g.append(svg('text', { x: mid, y: ly + 13, 'text-anchor': 'middle', class: 'net-tunnel-label' }, 'VXLAN, UDP 4789'));
      tunnels.append(g);
    }

    // The containers on networks: rows under their lab host.
    const maxLinks = Math.max(0, ...bridged.map((c) => m.links.get(c.id).length));
    const placeRow = (list, rowsTop, x0, width) => {
      if (!list.length) return rowsTop;
      const per = Math.max(1, Math.floor((width + GAP) / (MIN_BOX_W + GAP)));
      let rowTop = rowsTop;
      for (let start = 0; start < list.length; start += per) {
        const row = list.slice(start, start + per);
        const bw = Math.min(MAX_BOX_W, (width - GAP * (row.length - 1)) / row.length);
        let bottom = rowTop;
        row.forEach((c, i) => {
          const bx = x0 + i * (bw + GAP);
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
      const rowsTop = y;
      for (const h of hosts) {
        y = Math.max(y, placeRow(bridged.filter((c) => hostOf(c) === h), rowsTop, h.x, h.w));
      }
    }

    // Each link: a line from the bar to the box, named at both ends.
    const onBar = new Map(); // bar key → links in the order of the boxes
    for (const c of bridged) {
      for (const l of m.links.get(c.id)) {
        let key = `${hostOf(c).name}|${l.network}`;
        if (!bars.has(key)) key = `labhost|${l.network}`;
        if (!onBar.has(key)) onBar.set(key, []);
        onBar.get(key).push(l);
      }
    }
    for (const [key, list] of onBar) {
      const bar = bars.get(key);
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
        const macvlan = l.driver === 'macvlan';
        wires.append(svg('line', { x1: ax, y1: ay, x2: ex, y2: ey, class: macvlan ? 'net-veth net-macvlan' : 'net-veth' }));
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
        label(wiresTop + 13 + 12 * (j % 2), hostEnd(l), 'net-veth-name');
        label(ey - 4 - 13 * (mine.length - 1 - k), `${l.interface} ${l.address}`, 'net-if');
      });
    }

    // Containers with no network: apart, under a line of their own.
    if (apart.length) {
      y += 6;
      back.append(svg('text', { x: PAD, y: y + 10, class: 'net-title' }, '--network none: a network namespace of its own with only lo'));
      y = placeRow(apart, y + 18, PAD, W - 2 * PAD);
    }
    if (!m.running.length) {
      back.append(svg('text', { x: PAD, y: y + 22, class: 'net-empty' }, 'No container is running: start one in the terminal.'));
      y += 32;
    }
    root.setAttribute('viewBox', `0 0 ${W} ${Math.ceil(y + PAD)}`);
    root.append(back, tunnels, wires, front);
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
    const columns = ['Network', 'Driver', 'Container', 'Node', 'Interface', 'Address', 'Lab host end (veth)'];
    for (const h of columns) {
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
      if (n.tunnel) {
        const tr = el('tr', 'net-tunnel-row');
        const td = el('td');
        td.colSpan = columns.length;
        td.append(el('strong', '', `${n.name}'s tunnel: `), el('code', '', n.tunnel));
        tr.append(td);
        body.append(tr);
      }
      const netCell = () => {
        const span = el('span');
        const gateway = n.driver === 'macvlan' ? 'no gateway in the lab host' : `gateway ${n.gateway}`;
        span.append(el('strong', '', n.bridge), ` (${n.name}) ${n.subnet}, ${gateway}`);
        return span;
      };
      const live = (n.links || []).filter((l) => m.byId.has(l.container_id));
      const driver = driverText(n);
      if (!live.length) row([netCell(), driver, 'no container yet', '', '', '', '']);
      for (const l of live) {
        const c = m.byId.get(l.container_id);
        const end = hostEnd({ ...l, driver: n.driver, bridge: n.bridge });
        row([netCell(), driver, name(c), m.nodeOf(c), el('code', '', l.interface), el('code', '', l.address), el('code', '', end)]);
      }
    }
    for (const c of m.running) {
      const kind = m.kind(c);
      if (kind === 'bridge') continue;
      const what = kind === 'none' ? 'lo only'
        : kind === 'host' ? "the lab host's"
          : kind === 'shares' ? `${m.target(c).name}'s` : 'a container that is gone';
      row([c.network_mode, '', name(c), m.nodeOf(c), what, '', '']);
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
    const node = m.nodeOf(c);
    const facts = [
      ['Container', c.name],
      ['Node', node === 'labhost2' ? 'labhost2 (the second lab host)' : 'labhost (the lab host)'],
      ['Network mode', modeText(m, c)],
    ];
    const ifaces = ['lo 127.0.0.1/8'];
    if (kind === 'host') ifaces.push("the lab host's own: every bridge above and its veth ends");
    else if (kind === 'bridge' || kind === 'shares') {
      for (const l of m.links.get(owner.id)) {
        const end = l.driver === 'macvlan' ? `a macvlan of ${l.bridge}` : `lab host end ${l.veth}`;
        ifaces.push(`${l.interface} ${l.address} on ${l.network} (${l.driver} ${l.bridge}), ${end}`
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
