// A person opens the catalog, picks the first lab, and reads its steps: the
// text, the commands with their Run buttons, the Check buttons and the hints
// render, and the page offers to start the lab. (Clicking Check needs the
// session's check endpoint; this test stops before that.)

import path from 'node:path';
import { run } from './helpers.mjs';

run('lab_page', async ({ page, baseUrl, outDir }) => {
  await page.goto(`${baseUrl}/labs`);
  const link = page.locator('a[href="/labs/run"]');
  if ((await link.count()) !== 1) throw new Error('the catalog (/labs) has no link to /labs/run');
  await link.click();
  await page.waitForURL(/\/labs\/run$/);

  const steps = page.locator('li.step');
  if ((await steps.count()) < 5) throw new Error(`the lab page shows ${await steps.count()} steps, expected at least 5`);
  const body = await page.locator('#lab').innerText();
  if (!body.includes('gantry run -d --name web busybox sleep 3600')) {
    throw new Error('the command that starts web is not shown as text');
  }
  const runButtons = await page.locator('button.run-code[data-command-index]').count();
  if (runButtons < 5) throw new Error(`only ${runButtons} Run buttons`);
  if ((await page.locator('button.check-step').count()) < 1) throw new Error('no Check button');
  if ((await page.locator('.step-status[data-state="pending"]').count()) !== (await steps.count())) {
    throw new Error('not every step has a pending status line');
  }
  if ((await page.locator('details.hints').count()) < 1) throw new Error('no hints');
  if ((await page.locator('#start-lab').count()) !== 1) throw new Error('no "Start this lab" button');

  // Without a session, Run explains what to do instead of failing silently.
  await page.locator('button.run-code').first().click();
  await page.waitForFunction(() =>
    /Start the lab/.test(document.querySelector('li.step .step-status')?.textContent ?? ''),
  );
  await page.screenshot({ path: path.join(outDir, 'lab.png') });
});
