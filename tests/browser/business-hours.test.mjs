// Outside business hours, seen from both sides: carol (admin) sets hours that are closed
// now; alice's console says so in its top bar, Ana's app says the team is closed and
// when it is back; Ana writes anyway and gets the automatic reply, which alice sees in
// the thread too. Then the hours are lifted and both sides are told at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubAndBrowser, screenshot, waitForText } from './support.mjs';

const session = hubAndBrowser('business-hours');
const { open } = session;

async function setHours(carol, hours) {
  const token = await carol.evaluate(() => sessionStorage.getItem('chathub.console.token'));
  const answer = await fetch(`${session.hub.http}/admin/v1/settings`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hours }),
  });
  assert.equal(answer.status, 200, await answer.text());
}

test('closed now: both sides are told, and a customer who writes gets the automatic reply', async () => {
  const carol = await open('/console/', 'carol');
  const alice = await open('/console/', 'alice');
  const ana = await open('/demo/', 'u-ana');
  // Open only the day after tomorrow (UTC).
  const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
  const openDay = days[(new Date().getUTCDay() + 2) % 7];
  await setHours(carol, { time_zone: 'UTC', weekly: { [openDay]: ['09:00-17:00'] } });

  await alice.locator('#hours-state:not([hidden])').waitFor();
  await waitForText(alice, '#hours-state', 'Outside business hours');
  await ana.locator('#closed:not([hidden])').waitFor();
  await waitForText(ana, '#closed', 'We are closed right now');

  await ana.locator('#composer').fill('Is anyone there tonight?');
  await ana.locator('#send').click();
  await ana.locator('.messages .auto-reply').waitFor({ timeout: 20000 });
  await waitForText(ana, '.messages .auto-reply', 'We are back at');
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await alice.locator('.messages [data-auto-reply]').waitFor();
  await waitForText(alice, '.messages [data-auto-reply]', 'Outside business hours, the customer was told');
  await screenshot(ana, 'business-hours-demo');
  await screenshot(alice, 'business-hours-console');

  // Always open again: both sides are told at once.
  await setHours(carol, null);
  await alice.locator('#hours-state').waitFor({ state: 'hidden' });
  await ana.locator('#closed').waitFor({ state: 'hidden' });
});
