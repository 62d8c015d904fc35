// Attachments in real browsers: the end user sends a photo from the demo client (file
// picker), the agent sees its thumbnail in the console and opens it full size, answers
// with a PDF (Attach button) that the end user downloads, and files dropped on the pane
// or pasted into the composer are sent too. Screenshots go to artifacts/.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, signedIn, startHub, waitForText } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** A real photo-sized PNG from the repository. */
const PNG = readFileSync(path.join(here, '..', '..', 'docs', 'console.png'));
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(20000, 0x41)]);

let hub;
let browser;
let alice;
let ana;

before(async () => {
  hub = await startHub();
  browser = await launchBrowser();
  alice = await signedIn(browser, hub, '/console/', 'alice');
  ana = await signedIn(browser, hub, '/demo/', 'u-ana');
});

after(async () => {
  for (const [name, page] of [['alice', alice], ['ana', ana]]) if (page) await screenshot(page, `attachments-last-${name}`).catch(() => {});
  for (const page of [alice, ana]) if (page) assert.deepEqual(page.errors, [], 'no script errors in the page');
  await browser?.close();
  await hub?.stop();
});

/** Waits until an image of `scope` has loaded (a real decoded picture, not a broken icon). */
async function imageLoaded(page, selector) {
  await page.waitForFunction((sel) => [...document.querySelectorAll(sel)].some((img) => img.complete && img.naturalWidth > 0), selector, { timeout: 15000 });
}

test('the end user sends a photo; the agent sees it and opens it full size', async () => {
  await ana.locator('#attach-input').setInputFiles({ name: 'coupon.png', mimeType: 'image/png', buffer: PNG });
  await imageLoaded(ana, '#messages .attachment[data-kind="image"] img');
  await alice.locator('.queue-item[data-conversation="u-ana"]').click();
  await imageLoaded(alice, '.messages .attachment[data-kind="image"] img');
  await waitForText(alice, '.messages .attachment figcaption', 'coupon.png');
  await alice.locator('.messages .attachment-open').first().click();
  await imageLoaded(alice, '.lightbox img');
  // Full size: the lightbox shows the file itself, not the 320 px thumbnail.
  const width = await alice.locator('.lightbox img').evaluate((img) => img.naturalWidth);
  assert.ok(width > 320, `full-size image, got ${width} px`);
  await screenshot(alice, 'attachments-01-lightbox');
  await alice.keyboard.press('Escape');
  await alice.locator('.lightbox').waitFor({ state: 'detached' });
});

test('the agent answers with a PDF and the end user downloads it', async () => {
  await alice.locator('#attach-input').setInputFiles({ name: 'refund.pdf', mimeType: 'application/pdf', buffer: PDF });
  // Sending a file takes the conversation like any message.
  await waitForText(alice, '#conv-owner', 'you');
  await waitForText(ana, '#messages .attachment[data-kind="file"]', 'refund.pdf');
  await ana.waitForFunction(() => document.querySelector('#messages .attachment[data-kind="file"] a')?.getAttribute('href') !== '#');
  const { status, head, length } = await ana.evaluate(async () => {
    const a = document.querySelector('#messages .attachment[data-kind="file"] a');
    const res = await fetch(a.href);
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, head: String.fromCharCode(...bytes.slice(0, 5)), length: bytes.length };
  });
  assert.equal(status, 200);
  assert.equal(head, '%PDF-');
  assert.equal(length, PDF.length);
  await screenshot(ana, 'attachments-02-pdf-received');
});

test('a file dropped on the conversation or pasted into the composer is sent', async () => {
  const send = (kind, name) =>
    alice.evaluate(
      async ([kind, name, bytes]) => {
        const file = new File([new Uint8Array(bytes)], name, { type: 'image/png' });
        const dt = new DataTransfer();
        dt.items.add(file);
        if (kind === 'drop') document.querySelector('#conversation').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        else document.querySelector('#composer').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      },
      [kind, name, [...PNG]],
    );
  await send('drop', 'dropped.png');
  await waitForText(ana, '#messages .attachment figcaption', 'dropped.png');
  await send('paste', 'pasted.png');
  await waitForText(ana, '#messages .attachment figcaption', 'pasted.png');
});
