// The Storage view of the lab page's pictures: each running container's root
// filesystem as overlayfs builds it, and what is mounted over it.
//
// Three layers, top to bottom: the merged view the container sees as /, the
// upper folder that takes its writes (a file of the image it changes is first
// copied up there), and the image below, read-only and shared by every
// container made from it. Then the volumes, lab host folders and tmpfs mounted
// in. All of it is text; the borders only stack the layers.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function layer(className, name, ...rest) {
  const li = el('li', `st-layer ${className}`);
  li.append(el('strong', 'st-layer-name', name), ' ', ...rest);
  return li;
}

export class StorageView {
  constructor(root) {
    this.root = root;
    this.drawn = '';
  }

  /** Draws the sample if what the view shows of it changed. */
  draw(sample) {
    if (!sample) return;
    const running = (sample.containers || []).filter((c) => c.status === 'running');
    const key = JSON.stringify(running.map((c) => [c.id, c.name, c.image, c.upper, c.mounts, c.changes]));
    if (key === this.drawn) return;
    this.drawn = key;
    if (!running.length) {
      this.root.replaceChildren(el('p', 'empty', 'No container is running: start one in the terminal.'));
      return;
    }
    this.root.replaceChildren(...running.map((c) => this.card(c, running)));
  }

  card(c, running) {
    const card = el('article', 'st-card');
    card.dataset.container = c.name;
    const head = el('h4', '', c.name);
    head.append(el('span', 'st-image', ` image ${c.image}`));
    card.append(head);

    const upper = c.upper || null;
    const sharing = running.filter((o) => o !== c && o.image === c.image).map((o) => o.name);
    const layers = el('ol', 'st-layers');
    layers.setAttribute('aria-label', `${c.name}'s root filesystem, top to bottom`);
    layers.append(
      layer('st-merged', 'merged', '(what the container sees: ', el('code', '', '/'), ')'),
      layer('st-upper', 'upper:', upper ? el('code', 'st-path', upper) : 'not known',
        ' (its writes; copy-up lands here)'),
      layer('st-lower', 'lower:', `the image ${c.image} (read-only, shared`
        + `${sharing.length ? ` with ${sharing.join(', ')}` : ''})`),
    );
    card.append(layers);

    const mounts = c.mounts || [];
    const list = el('ul', 'st-mounts');
    if (mounts.length) {
      list.append(...mounts.map((m) => {
        const li = el('li');
        const kind = m.startsWith('tmpfs') ? 'tmpfs, in memory: '
          : m.startsWith('/') ? 'lab host folder: ' : 'volume: ';
        li.append(kind, el('code', '', m));
        return li;
      }));
    } else {
      list.append(el('li', 'empty', 'nothing mounted over it: every write lands in the upper layer'));
    }
    const mountsHead = el('h5', '', 'Mounted over it');
    card.append(mountsHead, list);

    // What the writable layer holds now (gantry diff), updated with every sample: a file
    // of the image appears here (C) the moment it is copied up.
    const changes = c.changes || [];
    const diffHead = el('h5', '', 'In its writable layer now (gantry diff)');
    const diff = el('ul', 'st-changes');
    diff.setAttribute('aria-live', 'polite');
    if (changes.length) {
      diff.append(...changes.map((line) => {
        const li = el('li', `st-change st-change-${line[0]}`);
        const word = { A: 'added', C: 'changed', D: 'deleted' }[line[0]] || '';
        li.append(el('code', '', line), word ? ` (${word})` : '');
        return li;
      }));
    } else {
      diff.append(el('li', 'empty', 'nothing yet: it has written nothing outside its mounts'));
    }
    card.append(diffHead, diff);

    if (upper) {
      const watch = el('p', 'hint st-watch');
      watch.append(
        'Watch copy-up live: in the terminal, ',
        el('code', '', `ls ${upper}/etc`),
        ` before and after the container changes a file of /etc (e.g. gantry exec ${c.name} sh -c 'echo x >> /etc/group').`,
      );
      card.append(watch);
    }
    return card;
  }
}
