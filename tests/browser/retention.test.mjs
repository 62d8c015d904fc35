// The retention policy seen from the screens, on nodes whose retention day lasts 3
// seconds (`--retention-day-secs`, for tests):
// - carol (admin) sets "keep 1 day" in her console's header; the admin API then says so;
// - with an hourly sweep (not yet run), alice opens a conversation whose first messages
//   are past the policy: the thread starts with "earlier messages were removed by the
//   retention policy" and shows none of them;
// - with a sweep every second, ben's conversation, idle past the policy, is deleted:
//   alice's console drops it and says why, ben's app clears its thread and stays
//   connected.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, signedIn, startHub, waitForText } from './support.mjs';

let browser;
const hubs = [];
const pages = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  for (const [name, page] of pages) await screenshot(page, `retention-last-${name}`).catch(() => {});
  for (const [, page] of pages) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  for (const hub of hubs) await hub.stop();
});

async function open(hub, path, person) {
  const page = await signedIn(browser, hub, path, person);
  pages.push([person, page]);
  return page;
}

// Carol keeps conversations one (3-second) day, from her console.
async function keepOneDay(hub) {
  const carol = await open(hub, '/console/', 'carol');
  await carol.locator('#retention').waitFor();
  await carol.locator('#retention-days').fill('1');
  await carol.locator('#retention button[type="submit"]').click();
  await waitForText(carol, '#retention-note', 'Saved: kept 1 day').catch(async (e) => {
    throw new Error(`${e.message}; the note says ${JSON.stringify(await carol.locator('#retention-note').textContent())}`);
  });
  const token = await carol.evaluate(() => sessionStorage.getItem('chathub.console.token'));
  const answer = await fetch(`${hub.http}/admin/v1/settings`, { headers: { authorization: `Bearer ${token}` } });
  const settings = await answer.json();
  assert.equal(settings.retention_days, 1, JSON.stringify(settings));
  return carol;
}

async function write(page, text) {
  await page.locator('#composer').fill(text);
  await page.locator('#send').click();
  await waitForText(page, '.messages', text);
}

test('a thread shows where the policy removed its earlier messages', async () => {
  const hub = await startHub({ args: ['--retention-day-secs', '3', '--retention-sweep-secs', '3600'] });
  hubs.push(hub);
  const ana = await open(hub, '/demo/', 'u-ana');
  await write(ana, 'My old card number');
  const carol = await keepOneDay(hub);
  assert.ok(!(await carol.locator('#retention').isHidden()), 'admins see the setting');
  await new Promise((r) => setTimeout(r, 3500));
  await write(ana, 'A new question');

  const alice = await open(hub, '/console/', 'alice');
  assert.ok(await alice.locator('#retention').isHidden(), 'agents do not');
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await waitForText(alice, '.messages', 'A new question');
  await waitForText(alice, '[data-earlier-removed]', 'removed by the retention policy');
  assert.ok(!(await alice.locator('.messages').innerText()).includes('old card'), 'nothing past the policy is shown');
  await screenshot(alice, 'retention-earlier-removed');
});

test('an idle conversation past the policy leaves the console, and the app stays connected', async () => {
  const hub = await startHub({ args: ['--retention-day-secs', '3', '--retention-sweep-secs', '1'] });
  hubs.push(hub);
  const ben = await open(hub, '/demo/', 'u-ben');
  await write(ben, 'Where is my parcel');
  const alice = await open(hub, '/console/', 'alice');
  const item = alice.locator('.queue-item[data-conversation="u-ben"]');
  await item.waitFor();
  await item.click();
  await waitForText(alice, '.messages', 'Where is my parcel');
  await keepOneDay(hub);

  await waitForText(alice, '[data-erased="u-ben"]', 'deleted by the retention policy', 20000);
  await alice.locator('.queue-item[data-conversation="u-ben"]').waitFor({ state: 'detached' });
  await waitForText(ben, '#notice', 'retention policy', 20000);
  assert.ok(!(await ben.locator('.messages').innerText()).includes('parcel'), 'the app cleared its thread');
  assert.equal(await ben.locator('#conn-status').getAttribute('data-state'), 'open', 'still connected');
  await screenshot(alice, 'retention-console');
  await screenshot(ben, 'retention-demo');
});
