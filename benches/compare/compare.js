// Side-by-side load run: chathub against Socket.IO 4.8 with its Redis adapter and
// socketioxide 0.18 (Rust) with its Redis adapter, on the same machine, with this one
// Node.js driver for all (so the driver's own cost is the
// same on every line). The shape: conversations spread over tenants, each with one end
// user on node 1 writing and `--agents` agents on node 2 watching; 2 nodes + one Redis
// per system, restarted for every point; systems interleaved at every rate.
//
// For every (rate, system): p50 / p99 / max latency from the end user's send to each
// agent's receipt, lost and duplicated deliveries, the nodes' CPU per delivery and
// Redis's CPU per message in (from /proc, over the measured window). Then each system's
// knee: the highest rate run with p99 under 10 ms and nothing lost. Last line: JSON.
//
//   cd benches/compare && npm ci && node compare.js --rates 3000,5000,7500,10000
//
// Options: --rates a,b,c  --duration S (15)  --conversations N (500)  --tenants N (25)
//          --agents N (2)  --systems chathub,socketio,socketioxide  --chathub PATH
//          (default ../../target/release/chathub; build it with
//          `cargo build --release -p chathub`)  --socketioxide PATH (default
//          socketioxide-server/target/release/socketioxide-server; build it with
//          `cargo build --release --manifest-path socketioxide-server/Cargo.toml`)
//          --redis-server PATH (redis-server)
'use strict';

const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');
const WebSocket = require('ws');
const { io: ioClient } = require('socket.io-client');

function options() {
  const o = {
    rates: [3000, 5000, 7500, 10000],
    duration: 15,
    conversations: 500,
    tenants: 25,
    agents: 2,
    systems: ['chathub', 'socketio', 'socketioxide'],
    chathub: path.join(__dirname, '..', '..', 'target', 'release', 'chathub'),
    socketioxide: path.join(__dirname, 'socketioxide-server', 'target', 'release', 'socketioxide-server'),
    redisServer: 'redis-server',
  };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const v = a[i + 1];
    if (v === undefined) throw new Error(`${a[i]} needs a value`);
    switch (a[i]) {
      case '--rates': o.rates = v.split(',').map(Number); break;
      case '--duration': o.duration = Number(v); break;
      case '--conversations': o.conversations = Number(v); break;
      case '--tenants': o.tenants = Number(v); break;
      case '--agents': o.agents = Number(v); break;
      case '--systems': o.systems = v.split(','); break;
      case '--chathub': o.chathub = v; break;
      case '--socketioxide': o.socketioxide = v; break;
      case '--redis-server': o.redisServer = v; break;
      default: throw new Error(`unknown option ${a[i]}`);
    }
  }
  for (const s of o.systems) {
    if (!['chathub', 'socketio', 'socketioxide'].includes(s)) throw new Error(`unknown system ${s}`);
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free loopback port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** CPU time (user + system) of a process, in µs. */
function cpuUs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second).
  return (Number(f[11]) + Number(f[12])) * 1e4;
}

/** Starts `cmd`, resolving with the child once a stdout line matches `ready`. */
function start(cmd, args, env, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start`)), 20000);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}) before it was ready`)));
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = line.match(ready);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, match: m });
      }
    });
  });
}

/** redis-server prints nothing when quiet: start it and wait for its port instead. */
async function redis(o) {
  const port = await freePort();
  const child = spawn(o.redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return { child, port };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

const SECRET = 'compare-secret-not-for-production';

/** An HS256 JWT as `chathub token` mints it. */
function token(tenant, sub, role) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ tenant, sub, role, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

async function startNodes(system, o, redisPort) {
  const nodes = [];
  for (let n = 0; n < 2; n++) {
    if (system === 'chathub') {
      const { child, match } = await start(
        o.chathub,
        ['serve', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--secret', SECRET,
          '--redis', `redis://127.0.0.1:${redisPort}`,
          '--max-connections', '1000000', '--rate-per-sec', '1000000', '--rate-burst', '1000000',
          '--max-handshakes-per-address', '1000000'],
        { RUST_LOG: 'error' },
        /ws=(\S+)/,
      );
      nodes.push({ child, url: match[1] });
    } else if (system === 'socketioxide') {
      const { child, match } = await start(
        o.socketioxide,
        [],
        { PORT: '0', REDIS_URL: `redis://127.0.0.1:${redisPort}` },
        /listening (\d+)/,
      );
      nodes.push({ child, url: `http://127.0.0.1:${match[1]}` });
    } else {
      const { child, match } = await start(
        process.execPath,
        [path.join(__dirname, 'socketio-server.js')],
        { PORT: '0', REDIS_URL: `redis://127.0.0.1:${redisPort}` },
        /listening (\d+)/,
      );
      nodes.push({ child, url: `http://127.0.0.1:${match[1]}` });
    }
  }
  return nodes;
}

/** One client of either system: connect, follow, send, and report what arrives. */
class Client {
  constructor(system, url, tenant, conversation, role, subject, onMessage) {
    this.system = system;
    this.pending = new Map();
    this.nextId = 1;
    this.onMessage = onMessage;
    if (system === 'chathub') {
      this.ws = new WebSocket(url, 'chathub.v1.json', {
        headers: { Authorization: `Bearer ${token(tenant, subject, role)}` },
        perMessageDeflate: false,
      });
      this.ready = new Promise((resolve, reject) => {
        this.ws.once('error', reject);
        this.ws.on('message', (data) => {
          const f = JSON.parse(data);
          if (f.type === 'welcome') resolve();
          else if (f.type === 'ok' || f.type === 'err') {
            const done = this.pending.get(f.id);
            this.pending.delete(f.id);
            if (done) done(f);
          } else if (f.type === 'event' && f.event === 'message') {
            this.onMessage(f.content.text);
          }
        });
      });
    } else {
      this.socket = ioClient(url, {
        transports: ['websocket'], query: { tenant, conversation }, forceNew: true, reconnection: false,
      });
      this.socket.on('message', (m) => this.onMessage(m.text));
      this.ready = new Promise((resolve, reject) => {
        this.socket.once('connect', resolve);
        this.socket.once('connect_error', reject);
      });
    }
  }

  request(frame) {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, ...frame }));
    });
  }

  async follow(conversation) {
    if (this.system === 'chathub') {
      const r = await this.request({ op: 'subscribe', conversation });
      if (r.type !== 'ok') throw new Error(`subscribe: ${JSON.stringify(r)}`);
    }
  }

  /** Sends `text`; `done(ok)` when acknowledged. */
  send(text, msgId, done) {
    if (this.system === 'chathub') {
      this.request({ op: 'send', client_msg_id: msgId, text }).then((r) => done(r.type === 'ok'));
    } else {
      this.socket.emit('send', { text }, (r) => done(Boolean(r && r.ok)));
    }
  }

  close() {
    if (this.ws) this.ws.terminate();
    if (this.socket) this.socket.disconnect();
  }
}

/** Connects `items` with at most `width` handshakes in flight. */
async function bounded(items, width, f) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  }));
  return out;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(system, rate, o) {
  const r = await redis(o);
  const nodes = await startNodes(system, o, r.port);
  const sentAt = new Map();
  const seen = new Map();
  const latencies = [];
  let duplicated = 0;
  let measuring = false;
  const onMessage = (text) => {
    if (!measuring) return;
    const id = text.slice(0, text.indexOf(' '));
    const t0 = sentAt.get(id);
    if (t0 === undefined) return;
    const n = (seen.get(id) || 0) + 1;
    seen.set(id, n);
    if (n > o.agents) duplicated++;
    else latencies.push((performance.now() - t0) * 1000);
  };
  const convs = Array.from({ length: o.conversations }, (_, i) => ({ tenant: `t${i % o.tenants}`, id: `u${i}` }));
  const agents = await bounded(
    convs.flatMap((c) => Array.from({ length: o.agents }, (_, j) => ({ c, j }))),
    64,
    async ({ c, j }) => {
      const a = new Client(system, nodes[1].url, c.tenant, c.id, 'agent', `${c.id}-a${j}`, onMessage);
      await a.ready;
      await a.follow(c.id);
      return a;
    },
  );
  const users = await bounded(convs, 64, async (c) => {
    const u = new Client(system, nodes[0].url, c.tenant, c.id, 'end_user', c.id, () => {});
    await u.ready;
    return u;
  });
  // Every conversation opened (chathub: its status change settles before measuring).
  await Promise.all(users.map((u, i) => new Promise((res) => u.send(`warm-${i} hello`, `warm-${i}`, res))));
  await sleep(1000);

  const total = Math.round(rate * o.duration);
  let sent = 0;
  let acked = 0;
  let refused = 0;
  const pids = nodes.map((n) => n.child.pid);
  const cpu0 = pids.map(cpuUs);
  const redis0 = cpuUs(r.child.pid);
  measuring = true;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      while (sent < due) {
        const id = `m${sent}`;
        const user = users[sent % users.length];
        sentAt.set(id, performance.now());
        user.send(`${id} hello there, a message of an ordinary length for a chat`, id, (ok) => {
          if (ok) acked++;
          else refused++;
        });
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  // Drain: until everything arrived, or 5 s.
  const expected = total * o.agents;
  const drainEnd = performance.now() + 5000;
  while (latencies.length < expected && performance.now() < drainEnd) await sleep(20);
  const cpu = pids.map(cpuUs).reduce((s, v, i) => s + v - cpu0[i], 0);
  const redisCpu = cpuUs(r.child.pid) - redis0;
  measuring = false;
  for (const c of [...agents, ...users]) c.close();
  for (const n of nodes) n.child.kill('SIGKILL');
  r.child.kill('SIGKILL');
  await sleep(300);
  latencies.sort((a, b) => a - b);
  return {
    system,
    rate,
    sent: total,
    acked,
    refused,
    delivered: latencies.length,
    expected,
    lost: expected - latencies.length,
    duplicated,
    p50_ms: percentile(latencies, 50) / 1000,
    p99_ms: percentile(latencies, 99) / 1000,
    max_ms: (latencies[latencies.length - 1] || 0) / 1000,
    gateway_cpu_us_per_delivery: cpu / Math.max(1, latencies.length),
    redis_cpu_us_per_message: redisCpu / Math.max(1, total),
    all_cpu_us_per_delivery: (cpu + redisCpu) / Math.max(1, latencies.length),
  };
}

async function main() {
  const o = options();
  if (o.systems.includes('chathub') && !fs.existsSync(o.chathub)) {
    throw new Error(`${o.chathub} not found: cargo build --release -p chathub (or --chathub PATH)`);
  }
  if (o.systems.includes('socketioxide') && !fs.existsSync(o.socketioxide)) {
    throw new Error(
      `${o.socketioxide} not found: cargo build --release --manifest-path socketioxide-server/Cargo.toml (or --socketioxide PATH)`,
    );
  }
  const results = [];
  for (const rate of o.rates) {
    for (const system of o.systems) {
      const r = await run(system, rate, o);
      results.push(r);
      console.error(
        `${system.padEnd(12)} ${String(rate).padStart(6)} msg/s: p50 ${r.p50_ms.toFixed(1)} ms, p99 ${r.p99_ms.toFixed(1)} ms, ` +
          `lost ${r.lost}, dup ${r.duplicated}, nodes ${r.gateway_cpu_us_per_delivery.toFixed(1)} µs/delivery, ` +
          `redis ${r.redis_cpu_us_per_message.toFixed(1)} µs/msg, all ${r.all_cpu_us_per_delivery.toFixed(1)} µs/delivery`,
      );
    }
  }
  const knee = {};
  for (const system of o.systems) {
    const ok = results.filter((r) => r.system === system && r.p99_ms < 10 && r.lost === 0 && r.duplicated === 0);
    knee[system] = ok.length ? Math.max(...ok.map((r) => r.rate)) : 0;
  }
  console.log(`| msg/s in | ${o.systems.map((s) => `${s} p50 / p99 (lost)`).join(' | ')} |`);
  console.log(`|---|${o.systems.map(() => '---').join('|')}|`);
  for (const rate of o.rates) {
    const cells = o.systems.map((s) => {
      const r = results.find((x) => x.system === s && x.rate === rate);
      return `${r.p50_ms.toFixed(1)} / ${r.p99_ms.toFixed(1)} ms${r.lost ? ` (${r.lost} lost)` : ''}`;
    });
    console.log(`| ${rate} | ${cells.join(' | ')} |`);
  }
  console.log('');
  console.log(`| CPU | ${o.systems.join(' | ')} |`);
  console.log(`|---|${o.systems.map(() => '---').join('|')}|`);
  const top = Math.max(...o.rates);
  const row = (name, f) => console.log(`| ${name} | ${o.systems.map((s) => f(results.find((x) => x.system === s && x.rate === top)).toFixed(1)).join(' | ')} |`);
  row(`nodes, µs per delivery at ${top}`, (r) => r.gateway_cpu_us_per_delivery);
  row(`Redis, µs per message in at ${top}`, (r) => r.redis_cpu_us_per_message);
  row(`everything, µs per delivery at ${top}`, (r) => r.all_cpu_us_per_delivery);
  console.log(`\nknee (p99 < 10 ms, nothing lost): ${o.systems.map((s) => `${s} ${knee[s]} msg/s`).join(', ')}`);
  console.log(JSON.stringify({ scenario: 'compare', results, knee }));
  const bad = results.some((r) => r.system === 'chathub' && r.duplicated > 0);
  process.exit(bad ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
