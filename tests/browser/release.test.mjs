// A stalled conversation goes back to the queue, seen from the console: carol (admin)
// sets a 2-second no-reply limit over the admin API; alice takes ana's conversation and
// then leaves ana's next message unanswered; alice's console says the conversation went
// back to the queue and why, the thread shows the release, the queue has it unanswered
// again, and ana's app tells her another agent is being found. Then carol (admin)
// releases ben's conversation with the console's Release button (alice, no admin, has
// none), and alice is told it was an admin.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubAndBrowser, screenshot, waitForText } from './support.mjs';

const session = hubAndBrowser('release');
const { open, pages } = session;

test('an unanswered customer goes back to the queue, and the owner is told why', async () => {
  const carol = await open('/console/', 'carol');
  await carol.locator('#conn-status').waitFor();
  const token = await carol.evaluate(() => sessionStorage.getItem('chathub.console.token'));
  const answer = await fetch(`${session.hub.http}/admin/v1/settings`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ release: { no_reply_secs: 2 } }),
  });
  assert.equal(answer.status, 200, await answer.text());

  const ana = await open('/demo/', 'u-ana');
  await ana.locator('#composer').fill('Is anyone there?');
  await ana.locator('#send').click();
  const alice = await open('/console/', 'alice');
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await alice.locator('#composer').fill('Yes, one moment.');
  await alice.locator('#send').click();
  await waitForText(ana, '.messages', 'Yes, one moment.');
  await ana.locator('#composer').fill('Still waiting…');
  await ana.locator('#send').click();

  await alice.locator('#notice[data-kind="released"][data-reason="no_reply"]').waitFor({ timeout: 20000 });
  await waitForText(alice, '#notice', 'went back to the queue');
  await waitForText(alice, '.messages', 'Back in the queue from');
  await alice.locator('#tab-unanswered').click();
  await alice.locator('.queue-item[data-conversation="u-ana"][data-status="unanswered"]').waitFor();
  await waitForText(ana, '.messages', 'finding another agent');
  await screenshot(alice, 'release-console');
});

test('an admin releases a conversation from the console', async () => {
  const ben = await open('/demo/', 'u-ben');
  await ben.locator('#composer').fill('Hello from Ben');
  await ben.locator('#send').click();
  const alice = pages.find(([who]) => who === 'alice')[1];
  await alice.locator('#tab-unanswered').click();
  const item = alice.locator('.queue-item[data-conversation="u-ben"]');
  await item.waitFor();
  await item.click();
  await alice.locator('#composer').fill('Hi Ben, one moment');
  await alice.locator('#send').click();
  await waitForText(ben, '.messages', 'Hi Ben, one moment');
  // Alice is no admin: no Release button for her.
  assert.equal(await alice.locator('#release').count(), 0);
  const carol = pages.find(([who]) => who === 'carol')[1];
  await carol.locator('#tab-active').click();
  const active = carol.locator('.queue-item[data-conversation="u-ben"]');
  await active.waitFor();
  await active.click();
  await carol.locator('#release').click();
  await waitForText(carol, '#conv-status', 'unanswered');
  await alice.locator('#notice[data-kind="released"][data-reason="admin"]').waitFor();
  await waitForText(alice, '.messages', 'released by an admin');
});
