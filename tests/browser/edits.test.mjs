// Edit, unsend and redact seen from the screens: ana fixes a typo from her app and
// unsends a message; alice edits her own reply from the console; carol (admin) redacts
// the message where ana typed a card number. Every screen shows the current state live —
// the edited text marked "edited", tombstones in place of removed messages — and the same
// after a reload (history), and the card number is nowhere on any page.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubAndBrowser, waitForText } from './support.mjs';

const session = hubAndBrowser('edits');
const { open } = session;

async function openConversation(page, id) {
  const item = page.locator(`.queue-item[data-conversation="${id}"]`);
  await item.waitFor();
  await item.click();
}

/** The message whose text contains `text`, in `page`'s thread. */
function message(page, text) {
  return page.locator('.messages li.msg', { hasText: text }).first();
}

async function act(page, text, button) {
  const m = message(page, text);
  await m.hover();
  await m.locator(button).click();
}

const CARD = '4111 1111 1111 1111';

test('edits and unsends reach every screen, live and after a reload', async () => {
  const ana = await open('/demo/', 'u-ana');
  for (const text of ['My parcle is late', `card ${CARD}`, 'wrong chat, sorry']) {
    await ana.locator('#composer').fill(text);
    await ana.locator('#send').click();
    await waitForText(ana, '.messages', text);
  }
  const alice = await open('/console/', 'alice');
  const carol = await open('/console/', 'carol');
  await openConversation(alice, 'u-ana');
  await openConversation(carol, 'u-ana');
  await waitForText(alice, '.messages', 'wrong chat, sorry');
  await alice.locator('#composer').fill('Let me chekc');
  await alice.locator('#send').click();
  await waitForText(ana, '.messages', 'Let me chekc');

  // Ana fixes her typo in the app.
  await act(ana, 'My parcle is late', '.edit-msg');
  await ana.locator('.inline-edit').fill('My parcel is late');
  await ana.locator('.edit-form button[type=submit]').click();
  for (const page of [ana, alice, carol]) {
    await waitForText(page, '.messages', 'My parcel is late');
    assert.match(await message(page, 'My parcel is late').innerText(), /edited/);
  }
  // Alice edits her reply in the console; she cannot edit ana's messages.
  assert.equal(await message(alice, 'My parcel is late').locator('.edit-msg').count(), 0);
  await act(alice, 'Let me chekc', '.edit-msg');
  await alice.locator('.inline-edit').fill('Let me check');
  await alice.locator('.edit-form button[type=submit]').click();
  await waitForText(ana, '.messages', 'Let me check');
  assert.ok(!(await ana.locator('.messages').innerText()).includes('chekc'), 'the old text is gone');

  // Ana unsends a message.
  await act(ana, 'wrong chat, sorry', '.unsend-msg');
  await waitForText(ana, '.messages [data-removed="unsent"]', 'You unsent this message');
  await waitForText(alice, '.messages [data-removed="unsent"]', 'Message unsent by');
  assert.ok(!(await alice.locator('.messages').innerText()).includes('wrong chat'));

  // Carol redacts the card number, with a reason both sides read.
  await act(carol, CARD, '.redact-msg');
  await carol.locator('.inline-redact').fill('card number removed');
  await carol.locator('.redact-form button[type=submit]').click();
  await waitForText(ana, '.messages [data-removed="redacted"]', 'card number removed');
  await waitForText(alice, '.messages [data-removed="redacted"]', 'card number removed');
  // Only admins have Redact.
  assert.equal(await alice.locator('.redact-msg').count(), 0);

  // After a reload, history shows the same.
  for (const page of [ana, alice]) {
    await page.reload();
    await page.locator('#conn-status[data-state="open"]').waitFor();
  }
  // Alice owns it now: it is under Active.
  await alice.locator('#tab-active').click();
  await openConversation(alice, 'u-ana');
  for (const page of [ana, alice, carol]) {
    await waitForText(page, '.messages', 'My parcel is late');
    await waitForText(page, '.messages', 'Let me check');
    await waitForText(page, '.messages [data-removed="redacted"]', 'card number removed');
    await page.locator('.messages [data-removed="unsent"]').waitFor();
    const text = await page.locator('body').innerText();
    for (const gone of ['4111', 'parcle', 'chekc', 'wrong chat']) assert.ok(!text.includes(gone), `${gone} is gone`);
  }
});
