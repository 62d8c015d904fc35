// Private notes seen from the screens: alice writes a note in ana's conversation from
// her console (note mode); carol's console shows it as a note, marked agents-only, and
// tells her when a note mentions her (@carol); carol takes over with a handover note;
// ana's
// app never shows it — live, or after a reload (a replay) — while the message alice sends
// next reaches her.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubAndBrowser, screenshot, waitForText } from './support.mjs';

const session = hubAndBrowser('notes');
const { open } = session;

async function openConversation(page, id) {
  const item = page.locator(`.queue-item[data-conversation="${id}"]`);
  await item.waitFor();
  await item.click();
}

test('a note reaches the agents and never the end user', async () => {
  const ana = await open('/demo/', 'u-ana');
  await ana.locator('#composer').fill('Is my refund coming?');
  await ana.locator('#send').click();
  const alice = await open('/console/', 'alice');
  const carol = await open('/console/', 'carol');
  await openConversation(alice, 'u-ana');
  await openConversation(carol, 'u-ana');
  await waitForText(alice, '.messages', 'Is my refund coming?');

  await alice.locator('#note-toggle').click();
  assert.equal(await alice.locator('#note-toggle').getAttribute('aria-pressed'), 'true');
  assert.equal(await alice.locator('#send').textContent(), 'Add note');
  await alice.locator('#composer').fill('Gold member: approve the refund quietly');
  await alice.locator('#send').click();
  await waitForText(alice, '.messages [data-note]', 'approve the refund quietly');
  await waitForText(carol, '.messages [data-note]', 'approve the refund quietly');
  assert.match(await carol.locator('.messages [data-note]').innerText(), /only agents see this/);
  // A note mentioning carol tells her, on her console.
  await alice.locator('#composer').fill('@carol can you double-check the amount?');
  await alice.locator('#send').click();
  await waitForText(carol, '#mention', 'Alice mentioned you');
  await waitForText(carol, '#mention', 'double-check the amount');
  // The notes took nothing: still in the queue for everyone.
  await alice.locator('.queue-item[data-conversation="u-ana"]').waitFor();

  // Back to messages: this one reaches ana (and takes the conversation).
  await alice.locator('#note-toggle').click();
  await alice.locator('#composer').fill('Your refund is on its way');
  await alice.locator('#send').click();
  await waitForText(ana, '.messages', 'Your refund is on its way');
  assert.ok(!(await ana.locator('body').innerText()).includes('quietly'), 'no note in the app, live');
  // Carol takes over with a handover note: the agents read why; ana gets only the message.
  await carol.locator('#handover-note').waitFor();
  await carol.locator('#handover-note').fill('alice is off shift');
  await carol.locator('#composer').fill('Carol here, I will finish this');
  await carol.locator('#send').click();
  await waitForText(carol, '.messages [data-note]', 'alice is off shift');
  await waitForText(alice, '.messages [data-note]', 'alice is off shift');
  await waitForText(ana, '.messages', 'Carol here, I will finish this');
  assert.ok(await carol.locator('#handover-note').isHidden(), 'no handover note once she owns it');
  assert.ok(!(await ana.locator('body').innerText()).includes('off shift'), 'no handover note in the app');
  await ana.reload();
  await ana.locator('#conn-status[data-state="open"]').waitFor();
  await waitForText(ana, '.messages', 'Your refund is on its way');
  assert.ok(!(await ana.locator('body').innerText()).includes('quietly'), 'no note in the app, replayed');
  assert.ok(!(await ana.locator('body').innerText()).includes('off shift'), 'no handover note, replayed');
  await screenshot(carol, 'notes-console');
  await screenshot(ana, 'notes-demo');
});
