// A transfer in the console: alice takes the waiting conversation and hands it to bob
// with a note; bob's console shows it is his with the note; alice's says whom she handed
// it to; the end user's demo client shows the hand-over but never the note.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, signedIn, startHub, waitForText } from './support.mjs';

let hub;
let browser;
let alice;
let bob;
let ana;

before(async () => {
  hub = await startHub();
  browser = await launchBrowser();
  alice = await signedIn(browser, hub, '/console/', 'alice');
  bob = await signedIn(browser, hub, '/console/', 'bob');
  ana = await signedIn(browser, hub, '/demo/', 'u-ana');
});

after(async () => {
  for (const [name, page] of [['alice', alice], ['bob', bob], ['ana', ana]]) if (page) await screenshot(page, `transfer-last-${name}`).catch(() => {});
  for (const page of [alice, bob, ana]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
});

test('the owner hands the conversation to an available colleague with a note', async () => {
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await waitForText(alice, '.messages', "spring coupon doesn't work");
  await alice.locator('#composer').fill('Hi Ana, one moment please.');
  await alice.locator('#send').click();
  await waitForText(alice, '#conv-owner', 'you');

  await alice.locator('#transfer').click();
  const select = alice.locator('#transfer-to');
  await select.waitFor();
  // Bob is available (his console is open); alice is not offered herself.
  const options = await select.locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(options.includes('bob'), `bob is offered: ${options}`);
  assert.ok(!options.includes('alice'), 'the owner is not offered');
  await select.selectOption('bob');
  await alice.locator('#transfer-note').fill('Gold member: refund approved');
  await alice.locator('#transfer-go').click();
  await alice.locator('#notice[data-kind="transferred"]').waitFor();
  await waitForText(alice, '#conv-owner', 'Bob');
  await waitForText(alice, '.messages', 'handed the conversation to Bob');

  // Bob: the active queue shows it as his; opening it shows the note.
  await bob.locator('#tab-active').click();
  const his = bob.locator('.queue-item[data-conversation="u-ana"]');
  await his.waitFor();
  await his.click();
  await bob.locator('#notice[data-kind="assigned"]').waitFor();
  await waitForText(bob, '#assigned-note', 'Gold member: refund approved');
  await waitForText(bob, '#conv-owner', 'you');
  await bob.locator('#composer').fill('Bob here, your refund is on its way.');
  await bob.locator('#send').click();
  await waitForText(ana, '#messages', 'your refund is on its way');
  await waitForText(ana, '#messages', 'is helping you now');
  await screenshot(bob, 'transfer-assigned');
  // The end user never sees the note.
  assert.ok(!(await ana.locator('body').innerText()).includes('Gold member'));
});
