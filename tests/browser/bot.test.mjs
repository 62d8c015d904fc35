// The tenant's bot, seen from the console and the demo client: carol (admin) names the
// bot in the console's settings; the bot (the SDK in a page of its own, with a `bot`
// token from `chathub token`) connects; ben writes and his conversation is the bot's
// ("with bot" in alice's queue and thread header); the bot answers (ben sees it as the
// assistant) and hands off with a summary and a field: alice's console pins the summary
// above the thread and the conversation waits in the queue, ben is told a person is
// coming and never sees the summary; alice takes it, the pin stays for her, and the
// bot's late reply is refused with `conflict`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { CHATHUB_BIN, hubAndBrowser, screenshot, waitForText } from './support.mjs';

const session = hubAndBrowser('bot');
const { open } = session;

/** A page that runs the bundled SDK as the tenant's bot; `window.bot` is its client. */
async function startBot() {
  const context = await session.browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${session.hub.http}/assets/ui.js`);
  const token = execFileSync(CHATHUB_BIN, ['token', '--tenant', 'demo', '--role', 'bot', '--subject', 'faq-bot'], { encoding: 'utf8' }).trim();
  const welcome = await page.evaluate(
    async ([url, token]) => {
      const { ChathubClient } = await import('/assets/chathub-client.js');
      window.bot = new ChathubClient({ url, token }).start();
      await window.bot.whenOpen();
      return { role: window.bot.welcome.role, rate: window.bot.welcome.limits.rate_per_sec };
    },
    [session.hub.ws, token],
  );
  assert.equal(welcome.role, 'bot');
  page.errors = errors;
  return page;
}

test('the bot answers first, hands off with a summary, and a human takes over', async () => {
  const carol = await open('/console/', 'carol');
  await carol.locator('#bot-setting:not([hidden])').waitFor();
  await carol.locator('#bot-agent').fill('faq-bot');
  await carol.locator('#bot-setting button[type="submit"]').click();
  await waitForText(carol, '#bot-note', 'Saved');

  const bot = await startBot();
  const alice = await open('/console/', 'alice');
  const ben = await open('/demo/', 'u-ben');
  await ben.locator('#composer').fill('Where is my parcel?');
  await ben.locator('#send').click();
  await waitForText(ben, '.messages', 'Our assistant is answering');

  // With bot: in alice's queue (active tab) and in the thread's header.
  await alice.locator('#tab-active').click();
  const item = alice.locator('.queue-item[data-conversation="u-ben"][data-status="active"]');
  await item.waitFor();
  await waitForText(alice, '.queue-item[data-conversation="u-ben"] .with-bot', 'with bot');
  await item.click();
  await alice.locator('#conv-with-bot').waitFor();
  await alice.locator('#notice[data-kind="bot"]').waitFor();

  // The bot answers on the epoch it owns, then hands off.
  const epoch = await bot.evaluate(async () => {
    const view = await window.bot.request('open', { conversation: 'u-ben' });
    await window.bot.request('send', { conversation: 'u-ben', text: 'Let me look that up for you.', epoch: view.epoch });
    return view.epoch;
  });
  await waitForText(ben, '.messages', 'Let me look that up for you.');
  await waitForText(ben, '.messages .bot-tag', 'assistant');
  await bot.evaluate(
    (epoch) =>
      window.bot.request('handoff', {
        conversation: 'u-ben',
        epoch,
        summary: 'Parcel A-1042 is three days late',
        fields: [{ name: 'order', value: 'A-1042' }],
      }),
    epoch,
  );
  await waitForText(alice, '#handoff-pin .handoff-summary', 'Parcel A-1042 is three days late');
  await waitForText(alice, '#handoff-pin .handoff-fields', 'A-1042');
  await waitForText(alice, '#conv-status', 'unanswered');
  await waitForText(alice, '.messages', 'handed the conversation to the team');
  await waitForText(ben, '.messages', 'Connecting you to a person');
  await screenshot(alice, 'bot-handoff-console');

  // Alice takes it: the pin stays for her; the bot's late reply is refused.
  await alice.locator('#composer').fill('Hi Ben, I have your order here.');
  await alice.locator('#send').click();
  await waitForText(alice, '#conv-owner', 'you');
  await alice.locator('#handoff-pin').waitFor();
  const late = await bot.evaluate(async (epoch) => {
    try {
      await window.bot.request('send', { conversation: 'u-ben', text: 'Anything else?', epoch });
      return 'sent';
    } catch (err) {
      return err.code;
    }
  }, epoch);
  assert.equal(late, 'conflict');
  await waitForText(ben, '.messages', 'Hi Ben, I have your order here.');
  const benText = await ben.locator('body').innerText();
  assert.ok(!benText.includes('Parcel A-1042 is three days late'), 'the end user never sees the summary');
  assert.ok(!benText.includes('Anything else?'), 'the late bot reply was never delivered');
  assert.deepEqual(bot.errors, []);
  await screenshot(ben, 'bot-handoff-demo');
});
