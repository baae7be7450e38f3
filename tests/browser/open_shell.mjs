// A person opens a shell from the start page, runs a command and sees its
// output, with the isolation panel filled in beside it.

import path from 'node:path';
import { run, openShell, typeLine, waitForScreen } from './helpers.mjs';

run('open_shell', async ({ page, baseUrl, outDir }) => {
  await openShell(page, baseUrl);

  // The typed line does not contain "gantry-42": only the shell's arithmetic does.
  await typeLine(page, 'echo gantry-$((6*7))');
  await waitForScreen(page, 'gantry-42', 'the output "gantry-42" of echo gantry-$((6*7))');

  await page
    .waitForFunction(() =>
      [...document.querySelectorAll('#namespaces tbody tr')].some((tr) => /\d/.test(tr.textContent)),
    )
    .catch(() => {
      throw new Error('the namespace table (#namespaces) never showed a row with an inode number');
    });

  await page.screenshot({ path: path.join(outDir, 'shell.png') });
});
