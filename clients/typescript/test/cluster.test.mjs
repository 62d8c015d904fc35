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
  a.pause();
  await sleep(300);
  a.kill();
  const done = await Promise.all(acks);
  assert.equal(new Set(done.map((d) => d.seq)).size, texts.length, 'one seq per send');
  const history = await cid.request('history', { limit: 200 });
  const messages = history.events.filter((e) => e.event === 'message');
  const ids = messages.map((e) => e.client_msg_id).filter((id) => id?.startsWith('id-'));
  assert.deepEqual(ids, texts.map((t) => `id-${t}`), 'each recorded once, in the order sent');
});
