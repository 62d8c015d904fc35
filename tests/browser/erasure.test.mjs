// An erasure seen from the screens: an admin erases the end user ana while alice's
// console has her conversation open and ana's demo app is connected. The console drops
// the conversation (queue and thread) and says why; ana's app clears the thread and says
// her data was erased (closed with 4102, no reconnect); nothing of her messages is left
// on either screen.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, signedIn, startHub, waitForText } from './support.mjs';

let hub;
let browser;
let alice;
let ana;

before(async () => {
  hub = await startHub();
  browser = await launchBrowser();
  alice = await signedIn(browser, hub, '/console/', 'alice');
  ana = await signedIn(browser, hub, '/demo/', 'u-ana');
});

after(async () => {
  for (const [name, page] of [['alice', alice], ['ana', ana]]) if (page) await screenshot(page, `erasure-last-${name}`).catch(() => {});
  for (const page of [alice, ana]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
});

test('an erased end user disappears from the console and from her own app', async () => {
  await ana.locator('#composer').fill('My address is 12 Rose Lane');
  await ana.locator('#send').click();
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await waitForText(alice, '.messages', '12 Rose Lane');

  // An admin's token (carol's, from her console) erases ana over the admin API.
  const carol = await signedIn(browser, hub, '/console/', 'carol');
  const token = await carol.evaluate(() => sessionStorage.getItem('chathub.console.token'));
  await carol.context().close();
  const answer = await fetch(`${hub.http}/admin/v1/users/u-ana`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}` },
  });
  const receipt = await answer.json();
  assert.equal(answer.status, 200, JSON.stringify(receipt));
  assert.equal(receipt.removed_anything, true);

  await alice.locator('[data-erased="u-ana"]').waitFor();
  await alice.locator('.queue-item[data-conversation="u-ana"]').waitFor({ state: 'detached' });
  assert.ok(!(await alice.locator('body').innerText()).includes('Rose Lane'), 'nothing of it on the console');
  await ana.locator('#conn-status[data-state="closed"]').waitFor();
  await waitForText(ana, '#conn-status', 'erased');
  assert.ok(!(await ana.locator('body').innerText()).includes('Rose Lane'), 'nothing of it in her app');
  await screenshot(alice, 'erasure-console');
  await screenshot(ana, 'erasure-demo');
});
