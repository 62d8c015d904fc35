// The satisfaction survey from the screens: carol (admin) sets the tenant's survey with a
// thank-you coupon over the admin API; ana writes from her app, alice answers and
// finishes in the console; ana's app shows the survey, she picks 4 stars, adds a comment
// and sends it; she gets the coupon and redeems it; alice's console shows the rating and
// the comment live, and the day's figures count it; after a reload ana's app shows her
// rating (from history), not the form again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubAndBrowser, screenshot, waitForText } from './support.mjs';

const session = hubAndBrowser('survey');
const { open } = session;

/** Calls the admin API with carol's token (from her console). */
async function adminApi(carol, method, path, body) {
  const token = await carol.evaluate(() => sessionStorage.getItem('chathub.console.token'));
  const answer = await fetch(`${session.hub.http}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  assert.ok(answer.ok, `${method} ${path}: ${answer.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

test('the end user rates a finished conversation and gets the thank-you', async () => {
  const carol = await open('/console/', 'carol');
  await carol.locator('#conn-status').waitFor();
  await adminApi(carol, 'PUT', '/admin/v1/catalogue/thanks-10', {
    id: 'thanks-10',
    type: 'coupon',
    name: '10% off, thank you',
    description: 'For your feedback',
  });
  const settings = await adminApi(carol, 'PUT', '/admin/v1/settings', {
    survey: { prompt: 'How did we do today?', reward: 'thanks-10' },
  });
  assert.equal(settings.survey.reward, 'thanks-10');

  const ana = await open('/demo/', 'u-ana');
  await ana.locator('#composer').fill('Where is my parcel?');
  await ana.locator('#send').click();
  await waitForText(ana, '.messages', 'Where is my parcel?');
  const alice = await open('/console/', 'alice');
  const item = alice.locator('.queue-item[data-conversation="u-ana"]');
  await item.waitFor();
  await item.click();
  await alice.locator('#composer').fill('It arrives tomorrow.');
  await alice.locator('#send').click();
  await waitForText(ana, '.messages', 'It arrives tomorrow.');
  await alice.locator('#finish').click();
  await waitForText(alice, '#conv-status', 'finished');

  // Ana's app asks the survey; nothing can be sent before a rating is picked.
  const survey = ana.locator('.messages li.survey');
  await survey.waitFor();
  await waitForText(ana, '.messages li.survey', 'How did we do today?');
  assert.equal(await survey.locator('.survey-send').isDisabled(), true);
  await waitForText(alice, '.messages', 'Survey sent to the customer');
  await survey.locator('.star[aria-label="4 out of 5"]').click();
  await survey.locator('.survey-comment').fill('Quick and kind');
  await survey.locator('.survey-send').click();

  // She sees her rating and the coupon, and redeems it.
  await waitForText(ana, '.messages li.survey', 'Thanks for your rating');
  assert.match(await survey.innerText(), /★★★★☆/);
  const card = survey.locator('.engagement-card[data-engagement="thanks-10"]');
  await card.waitFor();
  await card.locator('.redeem').click();
  await waitForText(ana, '.messages li.survey', 'Redeemed');
  await screenshot(ana, 'survey-demo-answered');

  // Alice's console shows the answer live.
  const result = alice.locator('.messages li.survey-result');
  await result.waitFor();
  assert.equal(await result.getAttribute('data-rating'), '4');
  const shown = await result.innerText();
  assert.match(shown, /4\/5/);
  assert.match(shown, /Quick and kind/);
  assert.match(shown, /10% off, thank you/);
  await screenshot(alice, 'survey-console-result');

  // After a reload: the rating from history, not the form; the day's figures count it.
  await ana.reload();
  await waitForText(ana, '.messages li.survey', 'Thanks for your rating');
  assert.equal(await ana.locator('.messages li.survey .survey-form').count(), 0);
  await alice.reload();
  await waitForText(alice, '#today', 'rated 4.0/5 (1)');
});
