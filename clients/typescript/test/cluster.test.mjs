// The SDK against a 2-node cluster (one Redis): the node under a client is killed while
// messages flow, and the client moves to the other node and resumes — every event once,
// no gap, no duplicate — and sends in flight when the node died are retried there with
// their client_msg_id and recorded once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChathubClient } from '../dist/index.js';
import { WebSocket, eventually, sleep, startHub, startRedis, token } from './support.mjs';

async function cluster(t) {
  const redis = await startRedis(t);
  const a = await startHub(t, ['--redis', redis, '--redis-timeout-ms', '1000']);
  const b = await startHub(t, ['--redis', redis, '--redis-timeout-ms', '1000']);
  return { a, b };
}

const client = (urls, role, subject) =>
  new ChathubClient({ url: urls, token: token(role, subject), WebSocket, reconnectDelayMs: 50 }).start();

test('a node killed under the client: it resumes on the other with no gap and no duplicate', async (t) => {
  const { a, b } = await cluster(t);
  // The end user starts on node a (the first URL); the agent writes through node b.
  const ann = client([a.wsUrl, b.wsUrl], 'end-user', 'ann');
  const bob = client([b.wsUrl], 'agent', 'bob');
  t.after(() => {
    ann.close();
    bob.close();
  });
  await Promise.all([ann.whenOpen(), bob.whenOpen()]);
  const received = [];
  ann.on('event', (e) => received.push(e.seq));
  const resumed = [];
  ann.on('resumed', (r) => resumed.push(r));
  await ann.subscribe('ann');
  await ann.send({ text: 'hello' });
  const sub = await bob.subscribe('ann', 0);
  let { epoch } = await bob.send({ conversation: 'ann', text: 'answer 0', epoch: sub.epoch });

  // 60 messages from the agent; node a dies after the 20th.
  const total = 60;
  for (let i = 1; i < total; i++) {
    const ack = await bob.send({ conversation: 'ann', text: `answer ${i}`, epoch });
    epoch = ack.epoch;
    if (i === 20) a.kill();
  }
  const last = (await bob.request('open', { conversation: 'ann' })).seq;
  await eventually(() => ann.lastSeq('ann') === last, 20_000, 'the end user to catch up');
  assert.ok(resumed.length >= 1, 'the client resumed');
  const first = received[0];
  assert.deepEqual(
    received,
    Array.from({ length: last - first + 1 }, (_, i) => first + i),
    'every seq once, in order',
  );
});

test('sends in flight when their node dies are retried on the other node and recorded once', async (t) => {
  const { a, b } = await cluster(t);
  const cid = client([a.wsUrl, b.wsUrl], 'end-user', 'cid');
  t.after(() => cid.close());
  await cid.whenOpen();
  await cid.send({ text: 'before' });
  // Freeze node a with sends in flight (unanswered), then kill it.
  const texts = Array.from({ length: 30 }, (_, i) => `m${i}`);
  const acks = texts.map((text) => cid.send({ text, client_msg_id: `id-${text}` }));
  await sleep(5);
  await a.pause();
  await sleep(300);
  a.kill();
  const done = await Promise.all(acks);
  assert.equal(new Set(done.map((d) => d.seq)).size, texts.length, 'one seq per send');
  const history = await cid.request('history', { limit: 200 });
  const messages = history.events.filter((e) => e.event === 'message');
  const ids = messages.map((e) => e.client_msg_id).filter((id) => id?.startsWith('id-'));
  assert.deepEqual(ids, texts.map((t) => `id-${t}`), 'each recorded once, in the order sent');
});

test('an agent following the queue catches up on what changed while its node was down', async (t) => {
  const { a, b } = await cluster(t);
  // Slow to come back (0.5–1 s), so the changes below surely happen while it is away.
  const bob = new ChathubClient({
    url: [a.wsUrl, b.wsUrl],
    token: token('agent', 'bob'),
    WebSocket,
    reconnectDelayMs: 1000,
  }).start();
  t.after(() => bob.close());
  await bob.whenOpen();
  const queued = new Map();
  bob.on('queue', (q) => queued.set(q.conversation, q.status));
  const resumed = [];
  bob.on('resumed', (r) => resumed.push(r));
  await bob.followQueue();
  // A change seen live, then node a dies, then three end users write through node b.
  const early = client([b.wsUrl], 'end-user', 'early');
  t.after(() => early.close());
  await early.send({ text: 'first' });
  await eventually(() => queued.get('early') === 'unanswered', 10_000, 'the live change');
  a.kill();
  const late = ['late-1', 'late-2', 'late-3'].map((id) => client([b.wsUrl], 'end-user', id));
  t.after(() => late.forEach((c) => c.close()));
  await Promise.all(late.map((c) => c.send({ text: 'while you were away' })));
  // Resumed on node b from its inbox cursor: every missed change arrives.
  await eventually(() => resumed.length > 0, 20_000, 'the resume');
  await eventually(() => late.every((_, i) => queued.get(`late-${i + 1}`) === 'unanswered'), 10_000, 'the missed changes');
  assert.ok(resumed[0].replayed >= 3, `replayed ${resumed[0].replayed}`);
  assert.equal(resumed[0].inboxTruncated, false);
});
