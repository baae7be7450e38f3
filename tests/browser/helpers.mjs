// Shared steps of the browser tests: launch Debian's chromium through
// playwright-core, open a shell from the start page, type, read the screen.
//
// Each test is `node tests/browser/<name>.mjs <base-url> <output-dir>`; it
// prints `session: <id>` as soon as it knows the session (so the caller can
// delete it even after a failure) and ends with `browser: ok` and exit 0, or
// a reason, the page's visible text and exit 1.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const STEP_MS = 15000;

// The flags keep chromium from reaching for the network (updates, sync,
// QUIC probes) and from needing a GPU or a user namespace sandbox in CI.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Runs `body({ page, baseUrl, outDir })` in a fresh browser and exits the process. */
export async function run(name, body) {
  const [baseUrl, outDir] = process.argv.slice(2);
  if (!baseUrl || !outDir) {
    console.error(`usage: node tests/browser/${name}.mjs <base-url> <output-dir>`);
    process.exit(2);
  }
  fs.mkdirSync(outDir, { recursive: true });

  let browser;
  let page;
  const pageErrors = [];
  let code = 0;
  try {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.setDefaultTimeout(STEP_MS);
    page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
    page.on('console', (msg) => {
      // Failed loads are reported with their address by the listener below.
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
        pageErrors.push(`console error: ${msg.text()}`);
      }
    });
    page.on('response', (response) => {
      const url = new URL(response.url());
      if (response.status() >= 400 && url.pathname !== '/favicon.ico') {
        pageErrors.push(`HTTP ${response.status()} for ${url.pathname}`);
      }
    });
    await body({ page, baseUrl: baseUrl.replace(/\/$/, ''), outDir });
    console.log('browser: ok');
  } catch (error) {
    code = 1;
    console.log(`browser: FAILED in ${name}: ${error.message.split('\n')[0]}`);
    for (const line of pageErrors) console.log(line);
    if (page) await reportPage(page, outDir);
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  process.exit(code);
}

async function reportPage(page, outDir) {
  console.log(`url: ${page.url()}`);
  const text = await page
    .locator('body')
    .innerText({ timeout: 2000 })
    .catch(() => '(no page to read: it did not load)');
  console.log('--- visible text of the page ---');
  console.log(text);
  console.log('--- end of page ---');
  await page.screenshot({ path: path.join(outDir, 'failure.png') }).catch(() => {});
}

/** From the start page to a session page whose shell shows a prompt. Returns the session id. */
export async function openShell(page, baseUrl) {
  await page.goto(`${baseUrl}/`);
  const button = page.locator('#open-shell');
  if ((await button.count()) !== 1 || (await button.innerText()).trim() !== 'Open a shell') {
    throw new Error('the start page has no "Open a shell" button (#open-shell)');
  }
  await button.click();
  await page.waitForURL(/\/sessions\/[^/?#]+$/).catch(() => {
    throw new Error(`clicking "Open a shell" did not lead to /sessions/<id> (now at ${page.url()})`);
  });
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  console.log(`session: ${id}`);

  await page.waitForSelector('.xterm').catch(() => {
    throw new Error('the session page shows no xterm terminal (.xterm)');
  });
  await waitForScreen(page, '#', 'a shell prompt (#)');
  await page.click('.xterm');
  return id;
}

/** Types a command and presses Enter, as a person would. */
export async function typeLine(page, text) {
  await page.keyboard.type(text, { delay: 10 });
  await page.keyboard.press('Enter');
}

/** Waits until the terminal's rows contain `needle` (after `after`, when given). */
export async function waitForScreen(page, needle, what = needle, after = '') {
  await page
    .waitForFunction(
      ([n, a]) => {
        const text = document.querySelector('.xterm-rows')?.textContent ?? '';
        const start = a ? text.indexOf(a) : 0;
        return start >= 0 && text.indexOf(n, start + a.length) >= 0;
      },
      [needle, after],
      { timeout: STEP_MS },
    )
    .catch(() => {
      throw new Error(`the terminal did not show ${what} within ${STEP_MS / 1000} s`);
    });
}
