// The labs issue: "A browser test opens a lab, clicks a code block's button, and
// sees the step turn green." A person starts the `run` lab from the catalog,
// clicks step 2's Run button, sees the container's output in the terminal,
// clicks Check and sees the step pass. The pictures under the terminal show
// the launch of that container (its trace has pivot_root) and the namespace
// map has the lab host's inodes; after a reload the step is still passed.

import path from 'node:path';
import { run, waitForScreen } from './helpers.mjs';

const COMMAND = 'gantry run --name hello busybox echo hello from a container';

async function waitFor(page, what, fn, arg) {
  await page.waitForFunction(fn, arg).catch(() => {
    throw new Error(`${what} did not happen within 15 s`);
  });
}

run('lab_click', async ({ page, baseUrl, outDir }) => {
  await page.goto(`${baseUrl}/labs`);
  await page.locator('a[href="/labs/run"]').click();
  await page.waitForURL(/\/labs\/run$/);
  await page.locator('#start-lab').click();
  await page.waitForURL(/\/labs\/run\?session=/).catch(() => {
    throw new Error(`"Start this lab" did not lead to /labs/run?session=<id> (now at ${page.url()})`);
  });
  const sessionId = new URL(page.url()).searchParams.get('session');
  console.log(`session: ${sessionId}`);

  await page.waitForSelector('.xterm');
  await waitForScreen(page, '# ', 'a shell prompt (# )');

  // Step 2's first block is the command; its Run button types it.
  const step = page.locator('#step-2');
  const runButton = step.locator('.code-block', { hasText: COMMAND }).locator('button.run-code');
  if ((await runButton.count()) !== 1) throw new Error(`step 2 has no Run button for "${COMMAND}"`);
  await runButton.click();
  // The output, not the echo of the typed line: look after the line.
  await waitForScreen(page, 'hello from a container', 'the output of the container', `busybox echo hello from a container`);

  await step.locator('button.check-step').click();
  await waitFor(
    page,
    'step 2 turning passed after Check',
    () => document.querySelector('#step-2 .step-status')?.dataset.state === 'passed',
  );
  if (!(await step.evaluate((li) => li.classList.contains('passed')))) {
    throw new Error('the status says passed but li#step-2 has no "passed" class');
  }

  // The run lab opens its pictures on the trace; the newest container is hello.
  if ((await page.locator('#tab-trace').getAttribute('aria-selected')) !== 'true') {
    throw new Error('the run lab does not open its pictures on the Trace tab');
  }
  await waitFor(page, 'the trace showing hello\'s pivot_root step', () => {
    const select = document.getElementById('trace-node');
    const chosen = select?.selectedOptions[0]?.textContent ?? '';
    const steps = [...document.querySelectorAll('#trace-steps li.trace-step')];
    return chosen.startsWith('hello')
      && steps.some((li) => li.textContent.includes('pivot_root')
        && li.querySelector('a[href="https://man7.org/linux/man-pages/man2/pivot_root.2.html"]'));
  });
  await page.screenshot({ path: path.join(outDir, 'lab-trace.png') });

  // Namespaces: hello has exited, so its column is gone; the lab host's inodes are there.
  await page.locator('#tab-namespaces').click();
  await waitFor(page, 'the namespace map showing the lab host\'s inodes', () => {
    const table = document.getElementById('ns-map');
    if (!table || table.closest('[hidden]')) return false;
    const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent);
    const col = heads.indexOf('lab host');
    if (col < 0 || heads.includes('hello')) return false;
    const rows = [...table.tBodies[0].rows];
    return rows.length === 7 && rows.every((r) => /^\d+$/.test(r.cells[col]?.textContent ?? ''));
  });
  await page.screenshot({ path: path.join(outDir, 'lab-namespaces.png') });

  // The server remembers the passed step: a reload shows it passed again.
  await page.reload();
  await waitFor(
    page,
    'step 2 showing as passed after a reload',
    () => document.querySelector('#step-2 .step-status')?.dataset.state === 'passed',
  );

  const status = await page.evaluate(
    (id) => fetch(`/api/v1/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }).then((r) => r.status),
    sessionId,
  );
  if (status >= 300) throw new Error(`deleting the session answered HTTP ${status}`);
});
