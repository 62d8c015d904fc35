// The product description played in a real browser: two agents race for a waiting
// conversation in the console, the loser sees who won; the winner finishes; the end user
// (demo client) writes again and it is back in the queue; an engagement is sent and
// redeemed; an admin disables chat and the end user sees it. Screenshots go to
// artifacts/.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
  // The last state of every page, for whoever reads a failure.
  for (const [name, page] of [['alice', alice], ['bob', bob], ['ana', ana]]) if (page) await screenshot(page, `last-${name}`).catch(() => {});
  for (const page of [alice, bob, ana]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
});

const conversation = (page) => page.locator('.queue-item[data-conversation="u-ana"]');

test('both agents see the waiting conversation in the live queue', async () => {
  for (const page of [alice, bob]) {
    await conversation(page).waitFor();
    assert.equal(await conversation(page).getAttribute('data-status'), 'unanswered');
    await waitForText(page, '.queue-item[data-conversation="u-ana"] .waiting', 'waiting');
    // The profile gives the customer's name.
    await waitForText(page, '.queue-item[data-conversation="u-ana"] .who', 'Ana Silva');
  }
  await screenshot(alice, '01-queue');
});

test('two agents race to take it: exactly one wins, the other sees who took it', async () => {
  for (const page of [alice, bob]) {
    await conversation(page).click();
    await waitForText(page, '.messages', "spring coupon doesn't work");
  }
  await alice.locator('#composer').fill('Hi Ana, Alice here. Let me check that coupon.');
  await bob.locator('#composer').fill('Hello Ana, this is Bob!');
  await Promise.all([alice.locator('#send').click(), bob.locator('#send').click()]);

  // Each console ends with the conversation active; one says "you".
  for (const page of [alice, bob]) await page.locator('#conv-owner').waitFor();
  const owners = await Promise.all([alice, bob].map((p) => p.locator('#conv-owner').textContent()));
  const winners = owners.filter((o) => o.includes('you'));
  assert.equal(winners.length, 1, `exactly one winner, got owners ${JSON.stringify(owners)}`);
  const [winner, loser, winnerId, loserText] = owners[0].includes('you')
    ? [alice, bob, 'alice', 'Hello Ana, this is Bob!']
    : [bob, alice, 'bob', 'Hi Ana, Alice here. Let me check that coupon.'];

  // The loser is told who took it first, the message was not sent, and the draft is kept.
  const notice = loser.locator('#notice[data-kind="conflict"]');
  await notice.waitFor();
  assert.equal(await notice.getAttribute('data-owner'), winnerId);
  assert.match(await notice.textContent(), new RegExp(`${winnerId}.*first`, 'i'));
  assert.equal(await loser.locator('#composer').inputValue(), loserText);
  await loser.locator('#take-over').waitFor();
  await screenshot(loser, '02-race-lost');

  // The end user got exactly the winner's message.
  await waitForText(ana, '#messages', winnerId);
  const fromAgents = await ana.locator('.msg.in').count();
  assert.equal(fromAgents, 1, 'the losing message was not delivered');
  assert.equal(await ana.locator('.msg.in .text').textContent(), winnerId === 'alice' ? 'Hi Ana, Alice here. Let me check that coupon.' : 'Hello Ana, this is Bob!');
  // The other console's queue shows the owner live.
  await loser.locator('#tab-active').click();
  // …with the owner's display name (from the token's `name` claim).
  const winnerName = winnerId === 'alice' ? 'Alice' : 'Bob';
  await waitForText(loser, '.queue-item[data-conversation="u-ana"] .owner', winnerName);
  await waitForText(loser, '#conv-owner', winnerName);
  globalThis.winner = winner;
  globalThis.winnerId = winnerId;
  await screenshot(winner, '03-race-won');
});

test('the loser takes over deliberately; the previous owner is told', async () => {
  const [previous, next] = [globalThis.winner, globalThis.winner === alice ? bob : alice];
  const nextId = next === alice ? 'alice' : 'bob';
  await next.locator('#take-over').click();
  await waitForText(next, '#conv-owner', 'you');
  // The draft that lost the race is what was sent.
  assert.equal(await next.locator('#composer').inputValue(), '');
  const notice = previous.locator('#notice[data-kind="lost"]');
  await notice.waitFor();
  assert.equal(await notice.getAttribute('data-owner'), nextId);
  await waitForText(ana, '#messages', 'took over the chat');
  assert.equal(await ana.locator('.msg.in').count(), 2);
  globalThis.winner = next;
  globalThis.winnerId = nextId;
});

test('typing and read indicators reach the other side', async () => {
  const winner = globalThis.winner;
  await ana.locator('#composer').pressSequentially('thanks', { delay: 20 });
  await waitForText(winner, '#typing', 'typing');
  await ana.locator('#send').click();
  await waitForText(winner, '.messages', 'thanks');
  // The console marked it read; the end user sees "Seen" under their message.
  await waitForText(ana, '.msg.out .seen', 'Seen');
});

test('canned responses: picked by shortcut, placeholders filled by the server', async () => {
  const winner = globalThis.winner;
  await winner.locator('#composer').fill('/poi');
  await winner.locator('#canned [data-canned="points"]').waitFor();
  await winner.locator('#composer').press('Enter');
  await waitForText(ana, '#messages', 'You have 340 points, Ana.');
});

test('an engagement is sent from the console and redeemed in the app', async () => {
  const winner = globalThis.winner;
  await winner.locator('#engagement-type').selectOption('coupon');
  await winner.locator('#available li[data-engagement="spring-10"] .send-engagement').waitFor();
  // History preview filtered to coupons: Ana redeemed an autumn coupon before.
  await waitForText(winner, '#engagement-history', '15% autumn coupon');
  assert.equal(await winner.locator('#engagement-history li[data-type="points"]').count(), 0);
  await screenshot(winner, '04-engagements');
  await winner.locator('#available li[data-engagement="spring-10"] .send-engagement').click();

  const card = ana.locator('.engagement-card[data-engagement="spring-10"]');
  await card.waitFor();
  await card.locator('button.redeem').click();
  await waitForText(ana, '.engagement-card[data-engagement="spring-10"] .redeem-outcome', 'Redeemed');
  await screenshot(ana, '05-redeemed');
  // Redeemed once per user: no longer offered to the agent.
  await winner.locator('#engagement-type').selectOption('');
  await winner.locator('#engagement-type').selectOption('coupon');
  await winner.waitForFunction(() => !document.querySelector('#available li[data-engagement="spring-10"]'));
});

test('finish; the end user writes again and it is back in the queue', async () => {
  const winner = globalThis.winner;
  await winner.locator('#finish').click();
  await waitForText(winner, '#conv-status', 'finished');
  await waitForText(ana, '#messages', 'The conversation was closed');
  await ana.locator('#composer').fill('One more question, please');
  await ana.locator('#send').click();
  for (const page of [alice, bob]) {
    await page.locator('#tab-unanswered').click();
    await page.locator('.queue-item[data-conversation="u-ana"][data-status="unanswered"]').waitFor();
    await waitForText(page, '.queue-item[data-conversation="u-ana"] .preview', 'One more question');
  }
  await screenshot(bob, '06-back-in-queue');
});

test('the Transcript action downloads the conversation, ownership timeline included', async () => {
  const winner = globalThis.winner;
  const [download] = await Promise.all([winner.waitForEvent('download'), winner.locator('#transcript').click()]);
  assert.equal(download.suggestedFilename(), 'transcript-u-ana.html');
  const file = await download.path();
  const html = readFileSync(file, 'utf8');
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /Transcript of conversation u-ana/);
  assert.match(html, /One more question, please/);
  assert.match(html, /taken over by/);
  assert.match(html, /finished by/);
});

test('search finds a message and opens its conversation', async () => {
  const winner = globalThis.winner;
  await winner.locator('#search').fill('"one more question"');
  await winner.locator('#search').press('Enter');
  const hit = winner.locator('.search-hit[data-conversation="u-ana"]');
  await hit.first().waitFor();
  assert.match(await hit.first().locator('mark').first().textContent(), /^One more question$/);
  await hit.first().click();
  await waitForText(winner, '#conv-title', 'Ana');
  await winner.locator('#search-clear').click();
  await winner.locator('#queue-list').waitFor();
  // A query with nothing to find says so.
  await winner.locator('#search').fill('!!!');
  await winner.locator('#search').press('Enter');
  await waitForText(winner, '#search-error', 'search query');
  await winner.locator('#search-clear').click();
});

test("the top bar shows today's figures", async () => {
  const winner = globalThis.winner;
  // Loaded at sign-in (Ana's conversation was waiting then); a reload shows the cycles so far.
  await winner.reload();
  await waitForText(winner, '#today', 'Today: ');
  const today = await winner.locator('#today').textContent();
  assert.match(today, /Today: [1-9]\d* opened · [1-9]\d* answered · [1-9]\d* finished/);
});

test('an admin disables chat and the end user sees it', async () => {
  const carol = await signedIn(browser, hub, '/console/', 'carol');
  try {
    await conversation(carol).click();
    await carol.locator('#toggle-chat').click();
    await carol.locator('#conv-disabled').waitFor();
    await ana.locator('#chat-disabled:not([hidden])').waitFor();
    assert.equal(await ana.locator('#composer').isDisabled(), true);
    await screenshot(ana, '07-chat-disabled');
    // The tenant-wide switch too: enable the conversation, disable the tenant.
    await carol.locator('#toggle-chat').click();
    await ana.locator('#chat-disabled[hidden]').waitFor({ state: 'attached' });
    await carol.locator('#tenant-toggle').click();
    await carol.locator('#tenant-banner:not([hidden])').waitFor();
    await ana.locator('#chat-disabled:not([hidden])').waitFor();
    await alice.locator('#tenant-banner:not([hidden])').waitFor();
    await screenshot(carol, '08-tenant-disabled');
    await carol.locator('#tenant-toggle').click();
    await ana.locator('#chat-disabled[hidden]').waitFor({ state: 'attached' });
    assert.deepEqual(carol.errors, []);
  } finally {
    await carol.context().close();
  }
});

test('history scrolls back page by page, each event once', async () => {
  const chen = await signedIn(browser, hub, '/demo/', 'u-chen');
  try {
    // 45 messages straight over the protocol, from the app's own page.
    await chen.evaluate(async (ws) => {
      const token = sessionStorage.getItem('chathub.demo.token');
      const sock = new WebSocket(`${ws}/?token=${encodeURIComponent(token)}`, 'chathub.v1.json');
      await new Promise((r) => (sock.onopen = r));
      await new Promise((done) => {
        let acks = 0;
        sock.onmessage = (m) => {
          const f = JSON.parse(m.data);
          if (f.type === 'ok' && ++acks === 45) done();
        };
        for (let i = 1; i <= 45; i++) sock.send(JSON.stringify({ id: i, op: 'send', client_msg_id: `bulk-${i}`, text: `bulk ${i}` }));
      });
      sock.close();
    }, hub.ws);
    await alice.locator('#tab-unanswered').click();
    await alice.locator('.queue-item[data-conversation="u-chen"]').click();
    await waitForText(alice, '.messages', 'bulk 45');
    const firstPage = await alice.locator('.messages .msg').count();
    assert.ok(firstPage < 45, `a first page, not everything (${firstPage})`);
    // Scrolling to the top loads the page before (infinite scroll); the "Load older
    // messages" button is the keyboard path to the same.
    for (let i = 0; i < 10 && !(await alice.locator('.messages .msg', { hasText: /^.*bulk 1$/ }).count()); i++) {
      await alice.locator('.messages').evaluate((el) => {
        el.scrollTop = 100;
        el.scrollTop = 0;
      });
      await alice.waitForTimeout(300);
      if (i >= 3 && (await alice.locator('.messages .older button').count())) await alice.locator('.messages .older button').click();
    }
    const texts = await alice.locator('.messages .msg .text').allTextContents();
    assert.deepEqual(texts, Array.from({ length: 45 }, (_, i) => `bulk ${i + 1}`));
    const seqs = await alice.locator('.messages [data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'each event once, in order');
  } finally {
    await chen.context().close();
  }
});

test('a bad token is refused and says so', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${hub.http}/console/`);
  await page.locator('#token').fill('eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWdlbnQiLCJzdWIiOiJ4In0.bad-signature');
  await page.locator('form.signin-form button[type=submit]').click();
  await page.locator('#conn-status[data-state="refused"]').waitFor();
  await context.close();
});
