// The terminal's WebSocket drops; the page reconnects by itself to the same
// shell, which still has the variable set before the drop.

import { run, openShell, typeLine, waitForScreen } from './helpers.mjs';

run('reconnect', async ({ page, baseUrl }) => {
  await openShell(page, baseUrl);

  await typeLine(page, 'export GANTRY_MARK=kept');
  // A new prompt after the command means the shell has run it.
  await waitForScreen(page, '#', 'a prompt after the export', 'GANTRY_MARK=kept');

  await page.evaluate(() => {
    window.gantryTestOldSocket = window.gantryTerminalSocket;
    window.gantryTerminalSocket.close();
  });
  await page
    .waitForFunction(() => {
      const status = document.getElementById('status');
      return (
        window.gantryTerminalSocket !== window.gantryTestOldSocket &&
        status.dataset.state === 'connected' &&
        status.textContent.includes('connected')
      );
    })
    .catch(async () => {
      const status = await page.locator('#status').innerText().catch(() => '?');
      throw new Error(`the terminal did not reconnect after its socket closed (status: "${status}")`);
    });

  await typeLine(page, 'echo $GANTRY_MARK-again');
  await waitForScreen(page, 'kept-again', '"kept-again": the variable did not survive the reconnect');
});
