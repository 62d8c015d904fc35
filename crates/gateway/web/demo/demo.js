// The end-user demo client: stands in for the brand's mobile app. One conversation (the
// end user's own): write, receive, see and redeem engagements, send and receive photos and
// documents (the camera or the file picker, with progress), see when chat is disabled,
// rate the conversation when it is finished (and get the brand's thank-you).
// Same protocol and same client module as the console.

import { ChathubClient, newClientMsgId, uploadAttachment } from '/assets/chathub-client.js';
import { attachmentView, h, loadClientConfig, noteVerdict, putAmended, timeOf, tokenClaims, wsUrlFor } from '/assets/ui.js';
import { signIn, signOut } from '/assets/signin.js';

const STORAGE_KEY = 'chathub.demo.token';
const root = document.getElementById('app');
const config = await loadClientConfig();
const token = await signIn(root, { roles: ['end_user'], storageKey: STORAGE_KEY, config, title: 'Customer chat (demo app)' });
const claims = tokenClaims(token);
const me = claims.sub;
const conn = new ChathubClient({ url: wsUrlFor(config), token });

const state = {
  events: new Map(),
  tenantDisabled: false,
  disabled: false,
  /** engagement id → 'redeemed' | error text, for the cards' buttons. */
  redeemed: new Map(),
  agentReadUpTo: 0,
  typing: null,
  notice: null,
  connection: 'connecting',
  lastReadSent: 0,
  loaded: false,
  /** The seq of my message being edited, if any. */
  editing: null,
  /** survey seq → the rating picked (before sending). */
  ratings: new Map(),
  /** survey seq → a refusal shown under it. */
  surveyErrors: new Map(),
};

const el = {
  status: h('p', { id: 'conn-status', class: 'conn', role: 'status', 'aria-live': 'polite' }),
  disabled: h('div', { id: 'chat-disabled', class: 'banner warn', role: 'status', hidden: true }, 'Chat is currently unavailable. Please come back later.'),
  notice: h('div', { id: 'notice', class: 'banner error', role: 'alert', hidden: true }),
  messages: h('ol', { id: 'messages', class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' }),
  typing: h('div', { id: 'typing', class: 'typing muted', 'aria-live': 'polite' }),
  input: h('textarea', { id: 'composer', rows: 2, 'aria-label': 'Message', placeholder: 'Write a message…' }),
  send: h('button', { type: 'submit', id: 'send', class: 'primary' }, 'Send'),
  // On a phone `accept` with images offers the camera as well as the files.
  attachInput: h('input', { type: 'file', id: 'attach-input', hidden: true, accept: 'image/*,application/pdf,.txt,.csv,.docx,.xlsx,video/mp4,audio/*' }),
  attach: h('button', { type: 'button', id: 'attach', class: 'attach', 'aria-label': 'Send a photo or a file', title: 'Send a photo or a file' }, 'Photo / file'),
  upload: h('div', { id: 'upload', class: 'upload', role: 'status', 'aria-live': 'polite', hidden: true }),
  closed: h('div', { id: 'closed', class: 'banner warn', role: 'status', hidden: true }),
  place: h('div', { id: 'queue-place', class: 'banner info', role: 'status', 'aria-live': 'polite', hidden: true }),
};
el.attach.addEventListener('click', () => el.attachInput.click());
el.attachInput.addEventListener('change', () => {
  for (const file of el.attachInput.files) sendFile(file);
  el.attachInput.value = '';
});

root.replaceChildren(
  h(
    'main',
    { class: 'phone' },
    h(
      'header',
      { class: 'topbar' },
      h('strong', {}, 'Customer care'),
      h('span', { class: 'spacer' }),
      h('span', { class: 'me' }, claims.name || me),
      h('button', { type: 'button', class: 'link', onclick: () => signOut(STORAGE_KEY) }, 'Sign out'),
    ),
    el.status,
    el.disabled,
    el.notice,
    el.closed,
    el.place,
    el.messages,
    el.typing,
    el.upload,
    h(
      'form',
      {
        class: 'composer',
        onsubmit: (e) => {
          e.preventDefault();
          send();
        },
      },
      el.input,
      h('div', { class: 'composer-actions' }, el.attach, el.attachInput, el.send),
    ),
  ),
);

el.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    send();
  }
});
let typingSentAt = 0;
let typingIdle = null;
el.input.addEventListener('input', () => {
  if (el.input.value && Date.now() - typingSentAt > 3000) {
    typingSentAt = Date.now();
    conn.request('typing', { typing: true, conversation: me }).catch(() => {});
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => {
    typingSentAt = 0;
    conn.request('typing', { typing: false, conversation: me }).catch(() => {});
  }, 4000);
});

conn.addEventListener('state', (e) => {
  state.connection = e.detail.state;
  const text = {
    connecting: 'Connecting…',
    open: 'Connected',
    reconnecting: 'Connection lost: reconnecting…',
    refused: 'Sign-in refused: the token was not accepted.',
    closed:
      e.detail.code === 1008
        ? 'Your session expired: sign in again.'
        : e.detail.code === 4102
          ? 'Your conversation and data were erased, as requested.'
          : 'Disconnected.',
  }[e.detail.state];
  el.status.textContent = text;
  el.status.dataset.state = e.detail.state;
});
// Our data was erased (the 4102 close follows), or our old conversation expired under
// the brand's retention policy (the connection stays): nothing of it stays on screen.
conn.addEventListener('erased', (e) => {
  state.events.clear();
  state.redeemed.clear();
  state.typing = null;
  state.notice = null;
  render();
  if (e.detail.reason === 'retention') showNotice('Earlier messages were deleted under the retention policy.');
});
conn.addEventListener('welcome', async (e) => {
  state.tenantDisabled = e.detail.chat_disabled;
  showHours(e.detail.hours);
  render();
  if (state.loaded) return;
  state.loaded = true;
  await loadConversation();
});

/** Loads the newest page of the conversation and follows it from there. */
async function loadConversation() {
  state.events.clear();
  try {
    const page = await conn.request('history', { conversation: me, limit: 50 });
    for (const ev of page.events) putAmended(state.events, ev);
    const last = page.events.length ? page.events[page.events.length - 1].seq : 0;
    const sub = await conn.subscribe(me, last);
    state.disabled = sub.disabled;
    const opened = await conn.request('open', { conversation: me });
    for (const r of opened.reads || []) if (r.by.role !== 'end_user') state.agentReadUpTo = Math.max(state.agentReadUpTo, r.seq);
    render();
    markRead();
  } catch (err) {
    showNotice(`Could not load the conversation: ${err.message}`);
  }
}
conn.addEventListener('resumed', (e) => {
  // History trimmed or lost on the server while away: start over from what it has.
  if (e.detail.truncated.includes(me)) loadConversation();
  else render();
});
conn.addEventListener('event', (e) => {
  const ev = e.detail;
  putAmended(state.events, ev);
  if (ev.event === 'status') state.disabled = ev.disabled;
  // Out of the queue: no place in it any more.
  if (ev.event === 'status' && ev.status !== 'unanswered') el.place.hidden = true;
  if (ev.event === 'message' && ev.author.role !== 'end_user') state.typing = null;
  render();
  markRead();
});
// The team's business hours: closed, and when it opens.
conn.addEventListener('hours', (e) => showHours(e.detail));

function showHours(hours) {
  const closed = hours && !hours.open;
  el.closed.hidden = !closed;
  if (closed) {
    const back = hours.until ? ` We are back ${new Date(hours.until).toLocaleString([], { weekday: 'long', hour: '2-digit', minute: '2-digit' })}.` : '';
    el.closed.textContent = `We are closed right now.${back} Leave us a message and we will answer then.`;
  }
}

// While I wait for an agent: my place in the queue and the estimated wait.
conn.addEventListener('queue_position', (e) => {
  const p = e.detail;
  if (p.conversation !== me) return;
  const eta = p.eta_secs === undefined ? '' : p.eta_secs < 60 ? ' · an agent is with you any moment' : ` · about ${Math.round(p.eta_secs / 60)} min`;
  el.place.textContent = p.position === 1 ? `You are next in line${eta}` : `You are number ${p.position} in line${eta}`;
  el.place.dataset.position = String(p.position);
  el.place.hidden = false;
});

conn.addEventListener('tenant', (e) => {
  state.tenantDisabled = e.detail.chat_disabled;
  render();
});
conn.addEventListener('typing', (e) => {
  const f = e.detail;
  if (f.from.role === 'end_user') return;
  clearTimeout(state.typingTimer);
  state.typing = f.typing ? f.from.id : null;
  if (f.typing) state.typingTimer = setTimeout(() => ((state.typing = null), renderTyping()), 6000);
  renderTyping();
});
conn.addEventListener('read', (e) => {
  const f = e.detail;
  if (f.by.role !== 'end_user' && f.seq > state.agentReadUpTo) {
    state.agentReadUpTo = f.seq;
    render();
  }
});

function markRead() {
  if (document.visibilityState !== 'visible' || !state.events.size) return;
  const last = Math.max(...state.events.keys());
  if (last <= state.lastReadSent) return;
  state.lastReadSent = last;
  conn.request('read', { conversation: me, seq: last }).catch(() => {
    state.lastReadSent = 0;
  });
}
document.addEventListener('visibilitychange', markRead);

function showNotice(text) {
  el.notice.textContent = text;
  el.notice.hidden = !text;
}

async function send() {
  const text = el.input.value.trim();
  if (!text) return;
  el.send.disabled = true;
  try {
    // The same client_msg_id on every retry: a message is never recorded twice.
    await conn.send({ conversation: me, text, client_msg_id: newClientMsgId() });
    el.input.value = '';
    showNotice('');
  } catch (err) {
    if (err.code === 'chat_disabled') {
      state.disabled = true;
      showNotice('Chat is currently unavailable: your message was not sent.');
    } else showNotice(`Your message was not sent: ${err.message}`);
  } finally {
    render();
  }
}

/** Uploads a photo or file (resuming after a lost connection) and sends it. */
async function sendFile(file) {
  const clientMsgId = newClientMsgId();
  const bar = h('progress', { max: 1, value: 0 });
  const row = h('div', { class: 'upload-row' }, h('span', {}, `Sending ${file.name}`), bar);
  el.upload.hidden = false;
  el.upload.append(row);
  try {
    const card = await uploadAttachment(conn, {
      conversation: me,
      file,
      clientMsgId,
      onProgress: (sent, total) => {
        bar.value = total ? sent / total : 1;
      },
    });
    await conn.send({ conversation: me, attachment: card.id, client_msg_id: clientMsgId });
    showNotice('');
  } catch (err) {
    const why = {
      too_large: 'it is too large',
      unsupported_type: 'this kind of file cannot be sent',
      chat_disabled: 'chat is currently unavailable',
    }[err.code];
    showNotice(`${file.name} was not sent: ${why || err.message}`);
  } finally {
    row.remove();
    el.upload.hidden = !el.upload.childElementCount;
    render();
  }
}

async function redeem(engagement) {
  try {
    await conn.request('redeem', { engagement });
    state.redeemed.set(engagement, 'Redeemed ✓');
  } catch (err) {
    const text = {
      already_redeemed: 'Already redeemed',
      expired: 'This offer has expired',
      out_of_stock: 'Sold out',
      not_found: 'No longer available',
    }[err.code];
    state.redeemed.set(engagement, text || `Could not redeem: ${err.message}`);
  }
  render();
}

function statusLine(ev) {
  switch (ev.cause) {
    case 'opened':
    case 'reopened':
      // With the brand's bot answering first, it owns the conversation from the start.
      if (ev.status === 'active') return 'Our assistant is answering: ask for a person any time.';
      return 'We got your message: an agent will be with you shortly.';
    case 'handed_off':
      return 'Connecting you to a person: an agent will be with you shortly.';
    case 'taken':
      return `${ev.owner} joined the chat`;
    case 'released':
      return 'We are finding another agent for you.';
    case 'taken_over':
      return `${ev.owner} took over the chat`;
    case 'transferred':
      return `${ev.owner} is helping you now`;
    case 'finished':
      return 'The conversation was closed. Write again any time.';
    case 'disabled':
      return 'Chat was paused by the team.';
    case 'enabled':
      return 'Chat is available again.';
    default:
      return null;
  }
}

/** An engagement in the thread, with its redeem button (or how redeeming went). */
function engagementCard(e) {
  const outcome = state.redeemed.get(e.id);
  return h(
    'div',
    { class: 'engagement-card', dataset: { engagement: e.id } },
    h('span', { class: 'tag' }, e.type),
    h('strong', {}, e.name),
    h('p', {}, e.description),
    outcome
      ? h('p', { class: 'redeem-outcome', role: 'status' }, outcome)
      : h('button', { type: 'button', class: 'redeem primary', onclick: () => redeem(e.id) }, e.type === 'coupon' ? 'Redeem coupon' : 'Redeem'),
  );
}

/** The survey a finish asked: the form while it is open, my rating once answered. */
function renderSurvey(ev) {
  const answer = [...state.events.values()].find((e) => e.event === 'survey_answered' && e.survey === ev.seq);
  // Open until answered, or until the conversation moved on (I wrote again).
  const closed = [...state.events.values()].some((e) => e.event === 'status' && e.seq > ev.seq);
  let body;
  if (answer) {
    body = h(
      'div',
      { class: 'survey-thanks', role: 'status' },
      h('p', { 'aria-label': `You rated ${answer.rating} out of 5` }, 'Thanks for your rating: ', h('span', { class: 'stars' }, '★'.repeat(answer.rating) + '☆'.repeat(5 - answer.rating))),
      answer.comment ? h('p', { class: 'muted' }, `“${answer.comment}”`) : null,
      answer.reward ? h('div', { class: 'survey-reward' }, h('p', {}, 'A thank-you from us:'), engagementCard(answer.reward)) : null,
    );
  } else if (closed) {
    body = h('p', { class: 'muted' }, 'This survey has closed.');
  } else {
    const picked = state.ratings.get(ev.seq) || 0;
    const comment = h('textarea', { class: 'survey-comment', rows: 2, 'aria-label': 'Anything to add? (optional)', placeholder: 'Anything to add? (optional)' });
    const starButtons = [1, 2, 3, 4, 5].map((n) =>
      h(
        'button',
        {
          type: 'button',
          class: `star${n <= picked ? ' on' : ''}`,
          'aria-label': `${n} out of 5`,
          'aria-pressed': String(n === picked),
          onclick: () => {
            state.ratings.set(ev.seq, n);
            // Keep what was typed across the redraw.
            const typed = comment.value;
            render();
            const again = el.messages.querySelector(`li[data-seq="${ev.seq}"] .survey-comment`);
            if (again) again.value = typed;
          },
        },
        n <= picked ? '★' : '☆',
      ),
    );
    const error = state.surveyErrors.get(ev.seq);
    body = h(
      'form',
      { class: 'survey-form', onsubmit: (e) => { e.preventDefault(); answerSurvey(ev.seq, comment.value); } },
      h('div', { class: 'stars', role: 'group', 'aria-label': 'Your rating' }, ...starButtons),
      comment,
      h('button', { type: 'submit', class: 'primary survey-send', disabled: !picked }, 'Send rating'),
      error ? h('p', { class: 'error', role: 'alert' }, error) : null,
    );
  }
  return h('li', { class: 'survey', dataset: { seq: ev.seq } }, h('strong', {}, ev.prompt), body);
}

/** Sends my rating of the survey `seq`. */
async function answerSurvey(seq, comment) {
  const rating = state.ratings.get(seq);
  if (!rating) return;
  try {
    await conn.request('survey_answer', { conversation: me, rating, ...(comment.trim() ? { comment } : {}) });
    state.surveyErrors.delete(seq);
  } catch (err) {
    state.surveyErrors.set(seq, err.code === 'invalid_state' ? 'This survey has closed.' : `Your rating was not sent: ${err.message}`);
  }
  render();
}

function renderEvent(ev, readSeq) {
  // A scanner's verdict redraws its file (noteVerdict); it has no line of its own.
  if (ev.event === 'attachment_checked') return null;
  if (ev.event === 'survey') return renderSurvey(ev);
  // Outside business hours: when the team is back, as a line from the team.
  if (ev.event === 'auto_reply') return h('li', { class: 'msg in auto-reply', dataset: { seq: ev.seq } }, h('p', { class: 'text' }, ev.text));
  // The answer shows on its survey.
  if (ev.event === 'survey_answered') return null;
  // Amendments show on their message (putAmended folded them in).
  if (ev.event === 'edited' || ev.event === 'unsent' || ev.event === 'redacted') return null;
  if (ev.event === 'status') {
    const line = statusLine(ev);
    return line ? h('li', { class: 'system', dataset: { seq: ev.seq, cause: ev.cause } }, line) : null;
  }
  const mine = ev.author.role === 'end_user';
  let body;
  if (ev.content.kind === 'engagement') body = engagementCard(ev.content.engagement);
  else if (ev.content.kind === 'attachment') body = attachmentView(conn, me, ev.content.attachment);
  else if (ev.content.kind === 'removed') {
    const a = ev.amended || {};
    const text = a.change === 'redacted' ? `This message was removed: ${a.reason || ''}` : mine ? 'You unsent this message' : 'This message was unsent';
    body = h('p', { class: 'text tombstone', dataset: { removed: a.change || 'removed' } }, text);
  } else if (state.editing === ev.seq) {
    const input = h('textarea', { class: 'inline-edit', rows: 2, 'aria-label': 'The new text' });
    input.value = ev.content.text;
    setTimeout(() => input.focus());
    body = h(
      'form',
      { class: 'inline-form edit-form', onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) amend('edit', { seq: ev.seq, text: input.value }); } },
      input,
      h('button', { type: 'submit', class: 'primary' }, 'Save'),
      h('button', { type: 'button', onclick: () => { state.editing = null; render(); } }, 'Cancel'),
    );
  } else body = h('p', { class: 'text' }, ev.content.text);
  const edited = ev.amended && ev.amended.change === 'edited' ? h('span', { class: 'edited' }, ' · edited') : null;
  const actions =
    mine && ev.content.kind !== 'removed' && state.editing !== ev.seq
      ? h(
          'span',
          { class: 'msg-actions' },
          ev.content.kind === 'text' ? h('button', { type: 'button', class: 'link edit-msg', onclick: () => { state.editing = ev.seq; render(); } }, 'Edit') : null,
          h('button', { type: 'button', class: 'link unsend-msg', onclick: () => amend('unsend', { seq: ev.seq }) }, 'Unsend'),
        )
      : null;
  return h(
    'li',
    { class: `msg ${mine ? 'out' : 'in'}`, dataset: { seq: ev.seq } },
    h('div', { class: 'meta' }, mine ? 'You' : ev.author.id, ev.author.role === 'bot' ? h('span', { class: 'tag bot-tag' }, 'assistant') : null, ' · ', h('time', {}, timeOf(ev.at)), edited, actions),
    body,
    mine && readSeq === ev.seq ? h('div', { class: 'seen' }, 'Seen') : null,
  );
}

/** Edits or unsends one of my messages; a refusal (past the edit window…) is shown. */
async function amend(op, fields) {
  try {
    await conn.request(op, fields);
    state.editing = null;
    showNotice('');
  } catch (err) {
    showNotice(err.message || String(err));
  }
  render();
}

function render() {
  const off = state.tenantDisabled || state.disabled;
  el.disabled.hidden = !off;
  el.input.disabled = off;
  el.send.disabled = off;
  el.attach.disabled = off;
  el.input.placeholder = off ? 'Chat is currently unavailable' : 'Write a message…';
  const seqs = [...state.events.keys()].sort((a, b) => a - b);
  for (const ev of state.events.values()) if (ev.event === 'attachment_checked') noteVerdict(ev);
  const readSeq = seqs.filter((s) => s <= state.agentReadUpTo && state.events.get(s).event === 'message' && state.events.get(s).author.role === 'end_user').pop();
  const atBottom = el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
  el.messages.replaceChildren(
    ...(seqs.length ? seqs.map((s) => renderEvent(state.events.get(s), readSeq)).filter(Boolean) : [h('li', { class: 'system' }, 'Ask us anything: an agent will answer here.')]),
  );
  if (atBottom) el.messages.scrollTop = el.messages.scrollHeight;
  renderTyping();
}

function renderTyping() {
  el.typing.textContent = state.typing ? `${state.typing} is typing…` : '';
}

render();
conn.start();
