// The topology issue: "the session's namespaces, bridges, veth pairs ... drawn
// live; clicking a container shows its interfaces." A person starts the
// `networks` lab, runs step 2 (a bridge network `lan`) and step 3 (`web` and
// `client` on it) from the steps' Run buttons, and the Network tab, which the
// lab opens on, draws bridge gt-lan with both containers and their addresses;
// clicking web (and pressing Enter on client) shows its interfaces. The
// Storage tab then shows web's layers. Last, an overlay network `ov` and a
// container `far` on the second lab host, typed into the terminal: the Network
// tab draws labhost2 with far under it, the overlay driver and the VXLAN tunnel.

import path from 'node:path';
import { run, typeLine, waitForScreen } from './helpers.mjs';

async function waitFor(page, what, fn, arg) {
  await page.waitForFunction(fn, arg, { timeout: 20000 }).catch(() => {
    throw new Error(`${what} did not happen within 20 s`);
  });
}

async function clickRun(page, step, command) {
  const button = page.locator(`#step-${step} .code-block`, { hasText: command }).locator('button.run-code');
  if ((await button.count()) !== 1) throw new Error(`step ${step} has no Run button for "${command}"`);
  await button.click();
}

run('lab_network', async ({ page, baseUrl, outDir }) => {
  await page.goto(`${baseUrl}/labs/networks`);
  await page.locator('#start-lab').click();
  await page.waitForURL(/\/labs\/networks\?session=/).catch(() => {
    throw new Error(`"Start this lab" did not lead to /labs/networks?session=<id> (now at ${page.url()})`);
  });
  const sessionId = new URL(page.url()).searchParams.get('session');
  console.log(`session: ${sessionId}`);

  await page.waitForSelector('.xterm');
  await waitForScreen(page, '# ', 'a shell prompt (# )');

  // The lab opens its pictures on the Network tab, with no network yet.
  if ((await page.locator('#tab-network').getAttribute('aria-selected')) !== 'true') {
    throw new Error('the networks lab does not open its pictures on the Network tab');
  }
  await waitFor(page, 'the Network tab saying there is no network yet', () =>
    (document.getElementById('net-table')?.textContent ?? '').includes('No networks yet'));

  await clickRun(page, 2, 'gantry network create lan');
  await waitForScreen(page, '10.88.1.1/24', "gt-lan's address (ip addr show gt-lan)", 'ip addr show gt-lan');

  await clickRun(page, 3, 'gantry run -d --name web');
  // The output of wget, not the echo of the typed httpd command: look after the wget line.
  await waitForScreen(page, 'hello-from-web', "web's page fetched by client", 'http://web/');

  await waitFor(page, 'the drawing and the table showing gt-lan with web and client in 10.88.1.0/24', () => {
    const view = document.getElementById('view-network');
    if (!view || view.hidden) return false;
    const svg = document.querySelector('#net-drawing svg');
    if (!svg || !svg.textContent.includes('gt-lan')) return false;
    if (!svg.querySelector('[data-name="web"]') || !svg.querySelector('[data-name="client"]')) return false;
    const rows = [...document.querySelectorAll('#net-table tbody tr')].map((tr) => tr.textContent);
    const has = (name) => rows.some((r) => r.includes('gt-lan') && r.includes(name) && /10\.88\.1\.\d+\/24/.test(r));
    return has('web') && has('client') && /10\.88\.1\.\d+\/24/.test(svg.textContent);
  });
  await page.screenshot({ path: path.join(outDir, 'lab-network.png') });

  // Clicking web's box shows its interfaces.
  await page.locator('#net-drawing [data-name="web"]').click();
  await waitFor(page, "web's details showing eth0 and its 10.88.1.x address", () => {
    const d = document.getElementById('net-details');
    return d && !d.hidden && d.dataset.container === 'web'
      && d.textContent.includes('eth0') && d.textContent.includes('10.88.1.')
      && /net:\[\d+\]/.test(d.textContent);
  });
  await page.screenshot({ path: path.join(outDir, 'lab-network-web.png') });

  // The boxes are buttons for the keyboard too.
  await page.locator('#net-drawing [data-name="client"]').focus();
  await page.keyboard.press('Enter');
  await waitFor(page, "client's details after Enter on its box", () => {
    const d = document.getElementById('net-details');
    return d && !d.hidden && d.dataset.container === 'client' && d.textContent.includes('10.88.1.');
  });

  // Storage: web's overlay, its upper folder in the lab host.
  await page.locator('#tab-storage').click();
  await waitFor(page, "the Storage tab showing web's layers", () => {
    const card = document.querySelector('#st-containers .st-card[data-container="web"]');
    const text = card?.textContent ?? '';
    return text.includes('merged') && /upper:\s*\/\S+\/upper/.test(text) && text.includes('the image busybox');
  });
  await page.screenshot({ path: path.join(outDir, 'lab-storage.png') });

  // An overlay network starts the second lab host; a container run there is drawn in
  // labhost2's box, and the tunnel between the two hosts' bars carries its VNI.
  await page.locator('#tab-network').click();
  await page.locator('.xterm-helper-textarea').focus();
  // The marker is computed by the shell, so the typed line itself does not show it.
  await typeLine(page, 'gantry network create --driver overlay ov && '
    + 'gantry run -d --name far --node labhost2 --network ov busybox sleep 600 && echo far-$((40+2))');
  await page.waitForFunction(
    () => (document.querySelector('.xterm-rows')?.textContent ?? '').includes('far-42'),
    undefined,
    { timeout: 90000 },
  ).catch(() => {
    throw new Error('the terminal did not show far-42 (overlay ov and container far on labhost2) within 90 s');
  });
  await waitFor(page, 'the Network tab drawing labhost2 with far on it, the overlay driver and the tunnel', () => {
    const svg = document.querySelector('#net-drawing svg');
    if (!svg) return false;
    const host2 = svg.querySelector('[data-host="labhost2"]');
    const far = svg.querySelector('[data-name="far"] rect');
    if (!host2 || !far || !svg.textContent.includes('labhost2')) return false;
    // far's box stands under labhost2's box, not the lab host's.
    const hx = Number(host2.getAttribute('x'));
    const hw = Number(host2.getAttribute('width'));
    const fx = Number(far.getAttribute('x'));
    if (fx < hx || fx > hx + hw) return false;
    if (!svg.textContent.includes('overlay')) return false;
    const tunnel = svg.querySelector('.net-tunnel[data-network="ov"]');
    if (!tunnel || !tunnel.querySelector('line')) return false;
    if (!(tunnel.querySelector('title')?.textContent ?? '').includes('VNI')) return false;
    const table = document.getElementById('net-table')?.textContent ?? '';
    // Network, Driver, Container, Node, ... cell by cell.
    const rows = [...document.querySelectorAll('#net-table tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent));
    const tunnelRow = [...document.querySelectorAll('#net-table .net-tunnel-row')].map((tr) => tr.textContent);
    return table.includes('VNI') && tunnelRow.some((t) => t.includes('VNI') && t.includes('labhost2 192.168.200.2'))
      && rows.some((r) => r[0].includes('gt-ov') && r[1].startsWith('overlay') && r[2] === 'far' && r[3] === 'labhost2')
      && rows.some((r) => r[0].includes('gt-lan') && r[1] === 'bridge' && r[2] === 'web' && r[3] === 'labhost');
  });
  await page.screenshot({ path: path.join(outDir, 'lab-network-overlay.png') });
  await page.locator('#net-drawing svg').screenshot({ path: path.join(outDir, 'lab-network-overlay-drawing.png') });
  await page.locator('#net-drawing [data-name="far"]').click();
  await waitFor(page, "far's details naming its node, labhost2", () => {
    const d = document.getElementById('net-details');
    return d && !d.hidden && d.dataset.container === 'far' && d.textContent.includes('labhost2');
  });

  const status = await page.evaluate(
    (id) => fetch(`/api/v1/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }).then((r) => r.status),
    sessionId,
  );
  if (status >= 300) throw new Error(`deleting the session answered HTTP ${status}`);
});
