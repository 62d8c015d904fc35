// Nobody left unnoticed in the console: when a customer starts waiting, the console of
// an available agent counts it in the tab's title, chimes, and (with the agent's consent)
// shows a desktop notification; an agent who set themselves away is not disturbed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, recordNotifications, screenshot, signedIn, startHub } from './support.mjs';

let hub;
let browser;
let alice;
let bob;
let ben;

before(async () => {
  hub = await startHub();
  browser = await launchBrowser();
  const consent = { permissions: ['notifications'], initScript: recordNotifications };
  alice = await signedIn(browser, hub, '/console/', 'alice', consent);
  bob = await signedIn(browser, hub, '/console/', 'bob', consent);
  ben = await signedIn(browser, hub, '/demo/', 'u-ben');
});

after(async () => {
  for (const [name, page] of [['alice', alice], ['bob', bob], ['ben', ben]]) if (page) await screenshot(page, `alerts-last-${name}`).catch(() => {});
  for (const page of [alice, bob, ben]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
});

test('a customer who starts waiting is announced to available agents only', async () => {
  // The demo tenant has one conversation waiting already: the title counts it.
  await alice.waitForFunction(() => document.title.startsWith('(1)'));
  // Bob steps away; alice stays available.
  await bob.locator('#my-presence').selectOption('away');
  await bob.waitForTimeout(300);

  await ben.locator('#composer').fill('Where is my parcel?');
  await ben.locator('#send').click();

  await alice.waitForFunction(() => document.title.startsWith('(2)'));
  await alice.waitForFunction(() => window.__notifications.length === 1);
  const [note] = await alice.evaluate(() => window.__notifications);
  assert.match(note.title, /is waiting/);
  assert.equal(note.body, 'Where is my parcel?');
  assert.equal(note.tag, 'waiting-u-ben');
  assert.equal(await alice.locator('body').getAttribute('data-alerts'), '1');
  // Consent given: no "Notify me" button.
  assert.equal(await alice.locator('#notify').isHidden(), true);

  // Bob, away, counts it in his title but is not alerted.
  await bob.waitForFunction(() => document.title.startsWith('(2)'));
  assert.deepEqual(await bob.evaluate(() => window.__notifications), []);
  await screenshot(alice, 'alerts-waiting');
});
