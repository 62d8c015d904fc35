// The server's alert schedule, seen from the console: carol (admin) sets it with the
// console's form (remind available agents every 2 s, a breach at 3 s); bob closes his
// console; chen writes and nobody answers. Alice's console shows the alert (the header's
// line, the badge, the queue row), chimes and makes a desktop notification; bob, with
// no console open, gets the signed push webhook; chen sees his place in the queue. Then alice takes the conversation, and
// no further alert of it arrives — not in her console, not by push.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { launchBrowser, recordNotifications, screenshot, signedIn, startHub, waitForText } from './support.mjs';

let receiver;
/** Every push the webhook got (parsed bodies). */
const pushes = [];
let hub;
let browser;
const pages = [];

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      try {
        pushes.push({ body: JSON.parse(body), signature: req.headers['x-chathub-signature'] });
      } catch {
        pushes.push({ body: null });
      }
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${receiver.address().port}/push`;
  hub = await startHub({ args: ['--webhook-url', url, '--webhook-secret', 'webhook-secret-0123'] });
  browser = await launchBrowser();
});

after(async () => {
  for (const [who, page] of pages) await screenshot(page, `alert-schedule-last-${who}`).catch(() => {});
  for (const [, page] of pages) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
  receiver?.close();
});

async function open(pagePath, who, options) {
  const page = await signedIn(browser, hub, pagePath, who, options);
  pages.push([who, page]);
  return page;
}

/** Waits (bounded) for a push matching `pred`. */
async function pushed(pred, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = pushes.find((p) => p.body && pred(p.body));
    if (found) return found;
    assert.ok(Date.now() < deadline, `no such push: ${JSON.stringify(pushes.map((p) => p.body))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const aboutChen = (p) => p.conversation === 'u-chen' && (p.type === 'alert' || p.type === 'breach');

test('an unanswered customer alerts the console and the push webhook until taken', async () => {
  const carol = await open('/console/', 'carol');
  await carol.locator('#alert-schedule').waitFor();
  await carol.locator('#alert-remind').fill('2');
  await carol.locator('#alert-breach').fill('3');
  await carol.locator('#alert-schedule button[type="submit"]').click();
  await waitForText(carol, '#alert-note', 'Saved');

  // bob has been here, and is gone: his alerts go by push.
  const bob = await signedIn(browser, hub, '/console/', 'bob');
  await bob.context().close();

  const alice = await open('/console/', 'alice', { permissions: ['notifications'], initScript: recordNotifications });
  const chen = await open('/demo/', 'u-chen');
  await chen.locator('#composer').fill('Hello, my card was charged twice');
  await chen.locator('#send').click();

  // Chen sees his place in the queue (Ana waits already: he is second).
  await chen.locator('#queue-place[data-position="2"]').waitFor({ timeout: 20000 });
  await waitForText(chen, '#queue-place', 'number 2 in line');
  await alice.locator('#alert[data-conversation="u-chen"]').waitFor({ timeout: 20000 });
  await alice.locator('#alert-badge:not([hidden])').waitFor();
  await alice.locator('.queue-item[data-conversation="u-chen"][data-alert]').waitFor();
  await alice.waitForFunction(() => window.__notifications.some((n) => n.tag === 'alert-u-chen'));
  const note = (await alice.evaluate(() => window.__notifications)).find((n) => n.tag === 'alert-u-chen');
  assert.equal(note.body, 'Hello, my card was charged twice');

  // The breach step reaches bob by push (signed), and the tenant's breach delivery.
  const bobs = await pushed((p) => p.type === 'alert' && p.agent === 'bob' && p.conversation === 'u-chen');
  assert.match(bobs.signature, /^sha256=[0-9a-f]{64}$/);
  assert.equal(bobs.body.alert.level, 'breach');
  await pushed((p) => p.type === 'breach' && p.conversation === 'u-chen');
  await alice.locator('#alert[data-conversation="u-chen"][data-level="breach"]').waitFor();
  await screenshot(alice, 'alert-schedule-alerted');

  // alice takes it: the alerts stop.
  await alice.locator('#alert button').click();
  await alice.locator('#composer').fill('Hello Chen, I am on it.');
  await alice.locator('#send').click();
  await waitForText(chen, '.messages', 'I am on it');
  await chen.locator('#queue-place').waitFor({ state: 'hidden' });
  const before = await alice.evaluate(() => window.__notifications.filter((n) => n.tag === 'alert-u-chen').length);
  const pushedBefore = pushes.filter((p) => p.body && aboutChen(p.body)).length;
  // Past two more reminders and rounds.
  await alice.waitForTimeout(4500);
  const afterCount = await alice.evaluate(() => window.__notifications.filter((n) => n.tag === 'alert-u-chen').length);
  assert.equal(afterCount, before, 'no alert in the console after the take');
  assert.equal(pushes.filter((p) => p.body && aboutChen(p.body)).length, pushedBefore, 'no push after the take');
  assert.equal(await alice.locator('.queue-item[data-conversation="u-chen"][data-alert]').count(), 0);
  assert.equal(await alice.locator('#alert[data-conversation="u-chen"]').isHidden(), true);
});
