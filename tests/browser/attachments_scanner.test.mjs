// With a scanner hook, the console shows a file as being checked until the scanner's
// verdict arrives, then the picture; a file the scanner blocks shows as blocked on both
// sides and has no link. The scanner here is a tiny Node HTTP server.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, screenshot, signedIn, startHub, waitForText } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PNG = readFileSync(path.join(here, '..', '..', 'docs', 'demo-client.png'));

let scanner;
let release;
const released = new Promise((r) => {
  release = r;
});
let hub;
let browser;
let alice;
let ana;

before(async () => {
  // Answers once the test releases it: `blocked` for files named virus*, else `clean`.
  scanner = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      await released;
      const virus = JSON.parse(body).name.startsWith('virus');
      // Slow on purpose: the file is sent (pending) before its verdict.
      if (virus) await new Promise((r) => setTimeout(r, 1500));
      const verdict = virus ? 'blocked' : 'clean';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ verdict }));
    });
  });
  await new Promise((r) => scanner.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${scanner.address().port}/scan`;
  hub = await startHub({ args: ['--attachment-scanner', url, '--attachment-scan-retry-secs', '1'] });
  browser = await launchBrowser();
  alice = await signedIn(browser, hub, '/console/', 'alice');
  ana = await signedIn(browser, hub, '/demo/', 'u-ana');
});

after(async () => {
  for (const [name, page] of [['alice', alice], ['ana', ana]]) if (page) await screenshot(page, `scanner-last-${name}`).catch(() => {});
  for (const page of [alice, ana]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
  scanner?.close();
});

test('a photo is shown as being checked until the scanner says clean', async () => {
  await ana.locator('#attach-input').setInputFiles({ name: 'receipt.png', mimeType: 'image/png', buffer: PNG });
  await alice.locator('.queue-item[data-conversation="u-ana"]').click();
  await waitForText(alice, '.messages .attachment[data-status="pending"] figcaption', 'being checked');
  release();
  await alice.waitForFunction(
    () => [...document.querySelectorAll('.messages .attachment[data-status="clean"] img')].some((i) => i.complete && i.naturalWidth > 0),
    null,
    { timeout: 20000 },
  );
});

test('a blocked file shows as blocked on both sides, with no link', async () => {
  await ana.locator('#attach-input').setInputFiles({ name: 'virus.txt', mimeType: 'text/plain', buffer: Buffer.from('not really a virus\n') });
  for (const page of [ana, alice]) {
    await waitForText(page, '.attachment[data-kind="blocked"]', 'virus.txt');
    assert.equal(await page.locator('.attachment[data-kind="blocked"] a').count(), 0);
  }
  await screenshot(alice, 'scanner-01-blocked');
});
