// Reconnect with resume, shown to the agent: two nodes on one Redis; the agent's node is
// killed (SIGKILL) while the end user, on the other node, keeps writing; the node comes
// back on the same ports, the console reconnects by itself, says it caught up, and shows
// every message once, in order.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort, launchBrowser, screenshot, signedIn, startHub, startRedis, waitForText } from './support.mjs';

let redis;
let nodeA;
let nodeB;
let browser;
let addrA;

before(async () => {
  redis = await startRedis();
  addrA = { listen: `127.0.0.1:${await freePort()}`, http: `127.0.0.1:${await freePort()}` };
  nodeA = await startHub({ ...addrA, args: ['--redis', redis.url] });
  nodeB = await startHub({ args: ['--redis', redis.url] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await nodeA?.stop('SIGKILL');
  await nodeB?.stop('SIGKILL');
  await redis?.stop();
});

test('the console resumes after its node dies: nothing missed, nothing twice', async () => {
  const alice = await signedIn(browser, nodeA, '/console/', 'alice');
  const ben = await signedIn(browser, nodeB, '/demo/', 'u-ben');
  await ben.locator('#composer').fill('message 1');
  await ben.locator('#send').click();
  await alice.locator('.queue-item[data-conversation="u-ben"]').click();
  await waitForText(alice, '.messages', 'message 1');
  await alice.locator('#composer').fill('Hi Ben!');
  await alice.locator('#send').click();
  await waitForText(ben, '#messages', 'Hi Ben!');

  await nodeA.stop('SIGKILL');
  await alice.locator('#conn-status[data-state="reconnecting"]').waitFor();
  await screenshot(alice, '09-reconnecting');
  for (const text of ['message 2', 'message 3']) {
    await ben.locator('#composer').fill(text);
    await ben.locator('#send').click();
    await waitForText(ben, '#messages', text);
  }

  nodeA = await startHub({ ...addrA, args: ['--redis', redis.url] });
  await alice.locator('#conn-status[data-state="open"]').waitFor({ timeout: 20000 });
  await waitForText(alice, '#conn-status', 'caught up', 10000);
  await waitForText(alice, '.messages', 'message 3');
  await screenshot(alice, '10-resumed');
  const texts = await alice.locator('.messages .msg .text').allTextContents();
  assert.deepEqual(texts, ['message 1', 'Hi Ben!', 'message 2', 'message 3']);
  // The console still works on the new node: a reply reaches the end user.
  await alice.locator('#composer').fill('Back again.');
  await alice.locator('#send').click();
  await waitForText(ben, '#messages', 'Back again.');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(ben.errors, []);
});
