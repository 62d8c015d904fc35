// The SDK against a real embedded node: a conversation's whole cycle over both
// subprotocols, typed errors, events as callbacks and as an async iterator, the offline
// send queue, request timeouts and a refused token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChathubClient, ChathubError, FATAL_CLOSE_CODES } from '../dist/index.js';
import { WebSocket, eventually, sleep, startHub, token } from './support.mjs';

const client = (url, role, subject, extra = {}) =>
  new ChathubClient({ url, token: token(role, subject), WebSocket, ...extra });

test('a conversation from first message to finish, on both subprotocols', async (t) => {
  const hub = await startHub(t);
  const ann = client(hub.wsUrl, 'end-user', 'ann').start();
  const bob = client(hub.wsUrl, 'agent', 'bob', { codec: 'msgpack' }).start();
  t.after(() => {
    ann.close();
    bob.close();
  });
  await Promise.all([ann.whenOpen(), bob.whenOpen()]);
  assert.equal(ann.welcome.role, 'end_user');
  assert.equal(bob.welcome.role, 'agent');

  const queue = [];
  bob.on('queue', (q) => queue.push(q));
  await bob.followQueue();
  const annEvents = [];
  ann.on('event', (e) => annEvents.push(e));
  await ann.subscribe('ann');

  const first = await ann.send({ text: 'My coupon does not work' });
  assert.equal(first.status, 'unanswered');
  await eventually(() => queue.some((q) => q.conversation === 'ann' && q.status === 'unanswered'), 10_000, 'the queue');

  // The agent reads the conversation through the iterator, and takes it by answering.
  const frames = bob.frames();
  const sub = await bob.subscribe('ann', 0);
  assert.ok(sub.replayed >= 2, `replayed ${sub.replayed}`);
  const seen = [];
  for await (const frame of frames) {
    if (frame.type === 'event') seen.push(frame);
    if (seen.some((e) => e.event === 'message')) break;
  }
  assert.equal(seen.find((e) => e.event === 'message').content.text, 'My coupon does not work');
  const taken = await bob.send({ conversation: 'ann', text: 'Let me check.', epoch: sub.epoch });
  assert.equal(taken.status, 'active');
  assert.equal(taken.owner, 'bob');

  // A stale epoch: a typed conflict naming the owner and epoch.
  await assert.rejects(bob.send({ conversation: 'ann', text: 'again', epoch: 0 }), (e) => {
    assert.ok(e instanceof ChathubError);
    assert.equal(e.code, 'conflict');
    assert.equal(e.frame.owner, 'bob');
    assert.equal(e.frame.epoch, taken.epoch);
    assert.equal(e.retryable, false);
    return true;
  });
  const finished = await bob.request('finish', { conversation: 'ann', epoch: taken.epoch });
  assert.equal(finished.status, 'finished');

  // The end user saw every event once, in order, without gaps.
  await eventually(() => annEvents.some((e) => e.event === 'status' && e.status === 'finished'), 10_000, 'the finish');
  const seqs = annEvents.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  assert.equal(seqs.at(-1) - seqs[0] + 1, seqs.length);
  const history = await ann.request('history', { limit: 50 });
  assert.deepEqual(
    history.events.filter((e) => e.event === 'message').map((e) => e.content.text),
    ['My coupon does not work', 'Let me check.'],
  );

  ann.close();
  assert.equal(ann.state, 'closed');
  await assert.rejects(ann.send({ text: 'after close' }), (e) => e.code === 'closed');
});

test('sends made offline wait, go out in order once connected, and are recorded once', async (t) => {
  const hub = await startHub(t);
  const cid = client(hub.wsUrl, 'end-user', 'cid');
  // Not started yet: the sends queue.
  const acks = Promise.all(['one', 'two', 'three'].map((text) => cid.send({ text, client_msg_id: `m-${text}` })));
  await sleep(100);
  cid.start();
  t.after(() => cid.close());
  const done = await acks;
  assert.deepEqual(done.map((a) => a.seq), [...done.map((a) => a.seq)].sort((a, b) => a - b));
  // The same client_msg_id again: the same acknowledgement, no second message.
  const again = await cid.send({ text: 'two', client_msg_id: 'm-two' });
  assert.equal(again.seq, done[1].seq);
  const history = await cid.request('history', { limit: 50 });
  assert.deepEqual(
    history.events.filter((e) => e.event === 'message').map((e) => e.content.text),
    ['one', 'two', 'three'],
  );
});

test('a refused token ends in `refused`; requests time out; bad input is a typed error', async (t) => {
  const hub = await startHub(t);
  const bad = new ChathubClient({ url: hub.wsUrl, token: 'not-a-token', WebSocket }).start();
  const states = [];
  bad.on('state', (s) => states.push(s.state));
  await eventually(() => bad.state === 'refused', 10_000, 'the refusal');
  await assert.rejects(bad.whenOpen(), (e) => e.code === 'closed');

  const dee = client(hub.wsUrl, 'agent', 'dee', { requestTimeoutMs: 300 }).start();
  t.after(() => dee.close());
  await dee.whenOpen();
  // The node frozen: no reply comes within the timeout.
  await hub.pause();
  try {
    await assert.rejects(dee.request('agents', {}), (e) => e.code === 'timeout' && e.retryable);
  } finally {
    hub.resume();
  }
  const eve = client(hub.wsUrl, 'agent', 'eve').start();
  t.after(() => eve.close());
  await eve.whenOpen();
  await assert.rejects(eve.request('list', { status: 'nonsense' }), (e) => e.code === 'bad_request');
  await assert.rejects(eve.request('finish', { conversation: 'nobody', epoch: 0 }), (e) => e instanceof ChathubError);
  assert.ok(FATAL_CLOSE_CODES.has(4101));
  assert.ok(!FATAL_CLOSE_CODES.has(1001));
});
