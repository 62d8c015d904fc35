// Test support for the browser tests: a real `chathub serve --demo` on free loopback
// ports, Debian's Chromium driven by playwright-core, and small wait helpers (the tests
// use node:test, not Playwright's runner, so nothing downloads a browser).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

/** Screenshots land here (kept by CI as artifacts; not committed). */
export const ARTIFACTS = path.join(here, 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

/** The chathub binary: `CHATHUB_BIN`, or the debug build (`cargo build` first). */
export const CHATHUB_BIN = process.env.CHATHUB_BIN || path.join(repo, 'target', 'debug', 'chathub');

/**
 * Starts `chathub serve --demo` (on free ports unless `listen`/`http` say otherwise);
 * resolves once it printed its addresses.
 */
export function startHub({ listen = '127.0.0.1:0', http = '127.0.0.1:0', args = [] } = {}) {
  // Each hub keeps its data in a fresh directory of its own, removed when it stops.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'chathub-browser-data-'));
  const serve = ['serve', '--demo', '--listen', listen, '--http', http, '--data-dir', dataDir];
  const child = spawn(CHATHUB_BIN, [...serve, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    // CHATHUB_HUB_STDERR=1 shows the node's log (RUST_LOG filters it) while debugging.
    if (process.env.CHATHUB_HUB_STDERR) process.stderr.write(d);
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`chathub did not start within 20 s; stderr:\n${stderr}`));
    }, 20000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/chathub listening ws=(\S+) http=(\S+)/);
      if (m && out.includes('admin api:')) {
        clearTimeout(timer);
        resolve({
          ws: m[1],
          http: m[2],
          stop: (signal = 'SIGTERM') =>
            new Promise((done) => {
              const cleanUp = () => {
                rmSync(dataDir, { recursive: true, force: true });
                done();
              };
              if (child.exitCode !== null) return cleanUp();
              child.once('exit', cleanUp);
              child.kill(signal);
            }),
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chathub exited with ${code}; stderr:\n${stderr}`));
    });
  });
}

/**
 * Headless Debian Chromium with the flags this kind of machine needs. Playwright's
 * `launch` gives it a fresh, empty user-data-dir of its own each time (it refuses an
 * explicit `--user-data-dir`).
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A page in its own browser context (own sessionStorage: one signed-in person each),
 * signed in through the one-click demo sign-in as `person`.
 */
export async function signedIn(browser, hub, pagePath, person, { permissions = [], initScript } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 }, permissions });
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.errors = errors;
  await page.goto(`${hub.http}${pagePath}`);
  await page.locator(`button[data-person="${person}"]`).click();
  await page.locator('#conn-status[data-state="open"]').waitFor();
  return page;
}

/** Saves a full-page screenshot under artifacts/. */
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Waits until `selector` on `page` has text containing `text`. */
export async function waitForText(page, selector, text, timeout = 10000) {
  await page.waitForFunction(
    ([sel, t]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
    [selector, text],
    { timeout },
  );
}

/** A free loopback TCP port (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A throwaway redis-server on a free loopback port, no persistence. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'chathub-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          done();
        });
        child.kill('SIGKILL');
      }),
  };
}

/**
 * One hub (`startHub(hubOptions)`) and one browser for a test file: started before its
 * tests, stopped after them, when every page opened through `open` gets its last
 * screenshot (`<name>-last-<person>`) and must have had no script error. `hub` and
 * `pages` are read once the tests run.
 */
export function hubAndBrowser(name, hubOptions) {
  const session = {
    hub: null,
    browser: null,
    /** [person, page] of every page opened. */
    pages: [],
    /** Opens `pagePath` signed in as `person` (see `signedIn`). */
    open: async (pagePath, person) => {
      const page = await signedIn(session.browser, session.hub, pagePath, person);
      session.pages.push([person, page]);
      return page;
    },
  };
  before(async () => {
    session.hub = await startHub(hubOptions);
    session.browser = await launchBrowser();
  });
  after(async () => {
    for (const [person, page] of session.pages) await screenshot(page, `${name}-last-${person}`).catch(() => {});
    for (const [, page] of session.pages) assert.deepEqual(page.errors, [], 'no script errors in the page');
    await session.browser?.close();
    await session.hub?.stop();
  });
  return session;
}

/**
 * An init script (`signedIn(..., { initScript })`) that records every Notification the
 * page makes in `window.__notifications` (the real one still shows).
 */
export function recordNotifications() {
  window.__notifications = [];
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push({ title, body: options?.body, tag: options?.tag });
    }
  }
  window.Notification = Recorded;
}
