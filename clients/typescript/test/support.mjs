// Real chathub processes (and a real Redis for the cluster) on free loopback ports for
// the SDK's tests; each is killed when the test that started it ends.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The `chathub` binary: `CHATHUB_BIN`, or the workspace's debug build (built if missing). */
export function chathubBinary() {
  if (process.env.CHATHUB_BIN) return process.env.CHATHUB_BIN;
  const bin = join(root, 'target', 'debug', 'chathub');
  if (!existsSync(bin)) execFileSync('cargo', ['build', '-q', '-p', 'chathub'], { cwd: root, stdio: 'inherit' });
  return bin;
}

/** A token of `tenant` signed with the development secret. */
export function token(role, subject, tenant = 'acme') {
  return execFileSync(chathubBinary(), ['token', '--tenant', tenant, '--role', role, '--subject', subject], {
    encoding: 'utf8',
  }).trim();
}

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A `chathub serve` process; `stop()` (or the test's end) kills it. */
export async function startHub(t, args = []) {
  const scratch = args.includes('--redis') ? null : mkdtempSync(join(tmpdir(), 'chathub-sdk-'));
  const storage = scratch ? ['--data-dir', scratch] : [];
  const child = spawn(chathubBinary(), ['serve', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', ...storage, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.CHATHUB_TEST_LOG || 'warn' },
  });
  const lines = createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`chathub exited with ${code} before listening`)));
  });
  lines.on('line', () => {}); // keep reading: a full pipe would stall the node
  const field = (key) => line.split(/\s+/).find((w) => w.startsWith(key))?.slice(key.length);
  const hub = {
    child,
    wsUrl: field('ws='),
    httpUrl: field('http='),
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    // SIGSTOP takes effect asynchronously: resolved once the kernel shows the process
    // stopped (state `T` in /proc), so nothing it does can race the caller's next step.
    async pause() {
      child.kill('SIGSTOP');
      for (let i = 0; i < 200; i++) {
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
        await new Promise((r) => setTimeout(r, 5));
      }
      throw new Error('the node did not stop');
    },
    resume: () => child.kill('SIGCONT'),
    stop() {
      hub.kill();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    },
  };
  t.after(() => hub.stop());
  return hub;
}

/** A `redis-server` on a free port, without persistence. */
export async function startRedis(t) {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  t.after(() => child.kill('SIGKILL'));
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const s = new Socket();
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
    }).catch(() => false);
    if (up) return url;
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

/** Resolves after `ms`. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it is truthy (or fails after `ms`). */
export async function eventually(check, ms = 15_000, what = 'the condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The `ws` package's WebSocket (Node.js 20 has no global one). */
export { WebSocket };
