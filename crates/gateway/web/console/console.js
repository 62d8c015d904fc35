// The agent console: the tenant's live queue, one open conversation with its history,
// the composer (with canned responses), the end user's profile and engagements, and the
// agents' availability. Everything goes through the documented protocol
// (protocol/PROTOCOL.md) on one WebSocket; the chathub-client SDK (clients/typescript) keeps it alive and resumes it.

import { ChathubClient, newClientMsgId, uploadAttachment } from '/assets/chathub-client.js';
import { attachmentView, duration, h, loadClientConfig, noteVerdict, putAmended, timeOf, tokenClaims, wsUrlFor } from '/assets/ui.js';
import { signIn, signOut } from '/assets/signin.js';

const STORAGE_KEY = 'chathub.console.token';
const ENGAGEMENT_TYPES = ['coupon', 'points', 'message', 'chatbot', 'promo'];
const STATUSES = [
  ['unanswered', 'Unanswered'],
  ['active', 'Active'],
  ['finished', 'Finished'],
];
const HISTORY_PAGE = 30;
const LIST_PAGE = 100;

const root = document.getElementById('app');
const config = await loadClientConfig();
const token = await signIn(root, {
  roles: ['agent', 'admin'],
  storageKey: STORAGE_KEY,
  config,
  title: 'chathub · agent console',
});
const claims = tokenClaims(token);
const conn = new ChathubClient({ url: wsUrlFor(config), token });

/** Everything the console shows; render functions draw from it. */
const state = {
  me: claims.sub,
  role: claims.role,
  privileges: [],
  tenantDisabled: false,
  /** conversation → queue item (the entry with the highest seq wins). */
  queue: new Map(),
  tab: 'unanswered',
  /** agent id → {presence, last_seen}. */
  agents: new Map(),
  /** agent id → display name (only ours is known from the token). */
  names: new Map([[claims.sub, claims.name || claims.sub]]),
  /** conversation → profile (null: none, or not loaded). */
  profiles: new Map(),
  /** The open conversation. */
  current: null,
  connection: { state: 'connecting' },
  resumeNote: null,
  /** conversation → {by, note}: handed to me (`assigned`), shown when it is opened. */
  assigned: new Map(),
  /** conversation → {level, since, seq}: waiting, and the alert schedule alerted me. */
  alerted: new Map(),
  /** The tenant's bot (`welcome.bot`): it answers first, "with bot". */
  bot: null,
};

const can = (p) => state.privileges.includes(p);
/** Whether `agent` is the tenant's bot. */
const isBot = (agent) => !!agent && agent === state.bot;
const nameOf = (agent) => state.names.get(agent) || agent;
const customerName = (conversation) => {
  const p = state.profiles.get(conversation);
  return p ? `${p.first_name} ${p.last_name}`.trim() || conversation : conversation;
};

// ---------------------------------------------------------------- layout (built once)

const el = {};
function layout() {
  el.status = h('span', { id: 'conn-status', role: 'status', 'aria-live': 'polite' });
  el.presence = h(
    'select',
    { id: 'my-presence', 'aria-label': 'My availability', onchange: () => setPresence(el.presence.value) },
    h('option', { value: 'available' }, 'Available'),
    h('option', { value: 'away' }, 'Away'),
  );
  el.tenantToggle = h('button', { id: 'tenant-toggle', type: 'button', hidden: true, onclick: toggleTenant });
  el.retentionDays = h('input', { id: 'retention-days', type: 'number', min: '1', max: '3650', placeholder: 'forever', 'aria-label': 'Days conversations are kept' });
  el.retentionNote = h('span', { id: 'retention-note', class: 'muted', role: 'status' });
  el.retention = h(
    'form',
    { id: 'retention', class: 'retention', hidden: true, title: 'Conversations are deleted this many days after their last message (empty: kept forever)', onsubmit: (e) => {
      e.preventDefault();
      saveRetention();
    } },
    h('label', {}, 'Keep ', el.retentionDays, ' days'),
    h('button', { type: 'submit' }, 'Save'),
    el.retentionNote,
  );
  el.notify = h('button', { id: 'notify', type: 'button', class: 'link', hidden: true, onclick: askNotifications, title: 'Desktop notifications when a customer starts waiting or the alert schedule alerts you' }, 'Notify me');
  renderNotify();
  el.hours = h('span', { id: 'hours-state', class: 'tag warn', role: 'status', hidden: true, title: 'Customers who write now get an automatic reply saying when you are back' });
  el.alertBadge = h('span', { id: 'alert-badge', class: 'badge', hidden: true, role: 'status', title: 'Waiting conversations you were alerted about' });
  el.alert = h('div', { id: 'alert', class: 'banner warn', role: 'alert', hidden: true });
  el.alertRemind = h('input', { id: 'alert-remind', type: 'number', min: '1', max: '604800', placeholder: 'off', 'aria-label': 'Remind available agents every (seconds)' });
  el.alertEscalate = h('input', { id: 'alert-escalate', type: 'number', min: '0', max: '604800', placeholder: 'off', 'aria-label': 'Escalate to supervisors after (seconds)' });
  el.alertBreach = h('input', { id: 'alert-breach', type: 'number', min: '0', max: '604800', placeholder: 'off', 'aria-label': 'Breach after (seconds)' });
  el.alertNote = h('span', { id: 'alert-note', class: 'muted', role: 'status' });
  el.botAgent = h('input', { id: 'bot-agent', type: 'text', maxlength: 64, size: 10, placeholder: 'none', 'aria-label': 'The bot that answers first (its token subject)' });
  el.botNote = h('span', { id: 'bot-note', class: 'muted', role: 'status' });
  el.botSetting = h(
    'form',
    { id: 'bot-setting', class: 'retention', hidden: true, title: 'While this bot (a token with role bot) is connected, it answers every new or reopened conversation first and hands off to the team (empty: no bot)', onsubmit: (e) => {
      e.preventDefault();
      saveBot();
    } },
    h('label', {}, 'Bot ', el.botAgent),
    h('button', { type: 'submit' }, 'Save'),
    el.botNote,
  );
  el.alertSchedule = h(
    'form',
    { id: 'alert-schedule', class: 'retention', hidden: true, title: 'While a customer waits: alert available agents at once and then every N seconds, escalate to supervisors, and call a breach (empty: off)', onsubmit: (e) => {
      e.preventDefault();
      saveAlertSchedule();
    } },
    h('label', {}, 'Remind every ', el.alertRemind, ' s'),
    h('label', {}, ' escalate at ', el.alertEscalate, ' s'),
    h('label', {}, ' breach at ', el.alertBreach, ' s'),
    h('button', { type: 'submit' }, 'Save'),
    el.alertNote,
  );
  el.today = h('span', { id: 'today', class: 'muted today', hidden: true, title: 'Conversations opened today (UTC)' });
  el.mention = h('div', { id: 'mention', class: 'banner info', role: 'status', hidden: true });
  el.tenantBanner = h('div', { id: 'tenant-banner', class: 'banner warn', role: 'status', hidden: true }, 'Chat is disabled for the whole tenant: end users cannot write and conversations cannot be taken.');
  el.searchInput = h('input', { id: 'search', type: 'search', placeholder: 'Search messages', 'aria-label': 'Search messages', maxlength: '256' });
  el.searchForm = h(
    'form',
    { class: 'search', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      runSearch(el.searchInput.value);
    } },
    el.searchInput,
  );
  el.searchResults = h('ul', { id: 'search-results', class: 'queue-list', 'aria-label': 'Search results', hidden: true });
  el.tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Queue' });
  el.queueList = h('ul', { id: 'queue-list', class: 'queue-list', 'aria-label': 'Conversations' });
  el.conversation = h('section', { id: 'conversation', class: 'conversation', 'aria-label': 'Conversation' });
  el.workspace = h('aside', { id: 'workspace', class: 'workspace', 'aria-label': 'Customer and engagements' });
  el.agents = h('ul', { id: 'agents', class: 'agents', 'aria-label': 'Agents' });
  root.replaceChildren(
    h(
      'header',
      { class: 'topbar' },
      h('strong', { class: 'brand' }, 'chathub'),
      h('span', { class: 'muted' }, ' console'),
      el.status,
      el.today,
      h('span', { class: 'spacer' }),
      el.tenantToggle,
      el.retention,
      el.alertSchedule,
      el.botSetting,
      el.hours,
      el.alertBadge,
      el.notify,
      el.presence,
      h('span', { id: 'me', class: 'me' }, `${nameOf(state.me)} (${state.role})`),
      h('button', { type: 'button', class: 'link', onclick: () => signOut(STORAGE_KEY) }, 'Sign out'),
    ),
    el.tenantBanner,
    el.alert,
    el.mention,
    h(
      'div',
      { class: 'columns' },
      h('nav', { class: 'queue', 'aria-label': 'Queue' }, el.searchForm, el.searchResults, el.tabs, el.queueList, h('h2', { class: 'small' }, 'Agents'), el.agents),
      el.conversation,
      el.workspace,
    ),
  );
  renderConversation();
}

// ---------------------------------------------------------------- connection

conn.addEventListener('state', (e) => {
  state.connection = e.detail;
  renderStatus();
});
conn.addEventListener('welcome', async (e) => {
  const w = e.detail;
  const first = !state.loaded;
  state.privileges = w.privileges;
  state.tenantDisabled = w.chat_disabled;
  state.hours = w.hours || null;
  state.bot = w.bot || null;
  renderHeader();
  if (!first) return;
  state.loaded = true;
  try {
    await conn.followQueue();
    await loadQueue();
    await loadAgents();
  } catch (err) {
    console.warn('initial load failed', err);
  }
  loadToday();
  setInterval(loadToday, TODAY_REFRESH_MS);
  loadRetention();
  loadAlertSchedule();
});
conn.addEventListener('resumed', (e) => {
  const { replayed, truncated, inboxTruncated } = e.detail;
  state.resumeNote = `Reconnected: caught up ${replayed} missed ${replayed === 1 ? 'update' : 'updates'}.`;
  if (inboxTruncated) loadQueue();
  if (state.current && truncated.includes(state.current.id)) openConversation(state.current.id);
  loadAgents();
  renderStatus();
  setTimeout(() => {
    state.resumeNote = null;
    renderStatus();
  }, 6000);
});
conn.addEventListener('queue', (e) => {
  const prev = state.queue.get(e.detail.conversation);
  applyQueueItem(e.detail);
  if (e.detail.status !== 'unanswered') clearAlert(e.detail.conversation);
  // Someone starts waiting: tell this agent (sound, desktop notification) if available.
  if (e.detail.status === 'unanswered' && prev?.status !== 'unanswered' && (!prev || prev.seq < e.detail.seq)) alertWaiting(e.detail);
});
conn.addEventListener('event', (e) => onEvent(e.detail));
conn.addEventListener('typing', (e) => onTyping(e.detail));
conn.addEventListener('read', (e) => onRead(e.detail));
// The team opened or closed (the tenant's business hours).
conn.addEventListener('hours', (e) => {
  state.hours = { open: e.detail.open, until: e.detail.until };
  renderHeader();
});
conn.addEventListener('tenant', (e) => {
  state.tenantDisabled = e.detail.chat_disabled;
  renderHeader();
  renderConversation();
});
conn.addEventListener('presence', (e) => {
  const p = e.detail;
  state.agents.set(p.agent, { presence: p.presence, last_seen: p.last_seen });
  if (p.name) state.names.set(p.agent, p.name);
  renderAgents();
  renderQueue();
});
conn.addEventListener('ownership_lost', (e) => {
  const f = e.detail;
  // A transfer this console made says so already.
  if (state.current?.id === f.conversation && state.current.notice?.kind !== 'transferred') {
    state.current.notice = f.by ? { kind: 'lost', owner: f.by } : { kind: 'released', reason: f.reason };
    renderConversation();
  }
});
// Its end user was erased, or it expired under the retention policy: nothing of it may
// stay on screen.
conn.addEventListener('erased', (e) => {
  const id = e.detail.conversation;
  state.queue.delete(id);
  state.assigned.delete(id);
  if (state.current?.id === id) {
    state.current = null;
    renderConversation();
    el.conversation.replaceChildren(
      h('div', { class: 'placeholder muted', role: 'status', dataset: { erased: id } }, e.detail.reason === 'retention'
        ? 'This conversation was deleted by the retention policy.'
        : 'This conversation was erased at its end user’s request.'),
    );
  }
  renderQueue();
});
// A conversation handed to me: its note waits for me on the conversation.
conn.addEventListener('assigned', (e) => {
  const f = e.detail;
  state.assigned.set(f.conversation, { by: f.by.id, note: f.note || '' });
  if (state.current?.id === f.conversation) {
    Object.assign(state.current, { status: 'active', owner: state.me, epoch: f.epoch, seenEpoch: f.epoch });
    state.current.notice = { kind: 'assigned', ...state.assigned.get(f.conversation) };
    renderConversation();
  }
  renderQueue();
});

// The tenant's alert schedule: somebody has waited past a step. Fenced here too: an
// alert older than what the queue shows of the conversation (taken since) is dropped.
conn.addEventListener('alert', (e) => onAlert(e.detail));

// Another agent's note mentions me: a line in the header (opening the conversation),
// the chime and, with consent, a desktop notification.
conn.addEventListener('mention', (e) => {
  const f = e.detail;
  const text = `${nameOf(f.by.id)} mentioned you in ${customerName(f.conversation)}: ${f.text}`;
  el.mention.replaceChildren(h('button', { type: 'button', class: 'link', onclick: () => {
    el.mention.hidden = true;
    openConversation(f.conversation);
  } }, text));
  el.mention.dataset.conversation = f.conversation;
  el.mention.hidden = false;
  chime();
  if (Notifier?.permission === 'granted') {
    try {
      const notice = new Notifier(`${nameOf(f.by.id)} mentioned you`, { body: f.text, tag: `mention-${f.conversation}-${f.seq}` });
      notice.onclick = () => {
        window.focus();
        openConversation(f.conversation);
        notice.close();
      };
    } catch {
      // Some browsers only notify from a service worker: the line and the chime remain.
    }
  }
});

function renderStatus() {
  const c = state.connection;
  let text;
  let kind = 'ok';
  switch (c.state) {
    case 'open':
      text = state.resumeNote || 'Connected';
      break;
    case 'connecting':
      text = 'Connecting…';
      kind = 'busy';
      break;
    case 'reconnecting':
      text = `Connection lost: reconnecting${c.attempt > 1 ? ` (attempt ${c.attempt})` : ''}…`;
      kind = 'warn';
      break;
    case 'refused':
      text = 'Sign-in refused: the token was not accepted (expired, or for another server). Sign out and use a new one.';
      kind = 'error';
      break;
    default:
      text = c.code === 1008 ? 'Your token expired or was withdrawn: sign in again.' : `Disconnected (code ${c.code ?? '?'}).`;
      kind = 'error';
  }
  el.status.textContent = text;
  el.status.className = `conn ${kind}`;
  el.status.dataset.state = c.state;
}

function renderHeader() {
  const admin = can('chat.disable');
  el.tenantToggle.hidden = !admin;
  el.tenantToggle.textContent = state.tenantDisabled ? 'Enable chat for the tenant' : 'Disable chat for the tenant';
  el.tenantBanner.hidden = !state.tenantDisabled;
  // Outside business hours: said in the top bar, with when the team is back.
  const closed = state.hours && !state.hours.open;
  el.hours.hidden = !closed;
  el.hours.dataset.open = state.hours ? String(state.hours.open) : '';
  el.hours.textContent = closed ? `Outside business hours${state.hours.until ? ` · opens ${new Date(state.hours.until).toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' })}` : ''}` : '';
}

// ---------------------------------------------------------------- today's figures

const TODAY_REFRESH_MS = 60000;

// A mean time, or a dash where there is none yet.
const mean = (ms) => (ms === undefined || ms === null ? '–' : duration(ms));

// The survey answers' mean rating and count (nothing before the first answer).
function ratingSummary(ratings) {
  const counts = ratings || [];
  const n = counts.reduce((a, b) => a + b, 0);
  if (!n) return '';
  const sum = counts.reduce((a, count, i) => a + count * (i + 1), 0);
  return ` · rated ${(sum / n).toFixed(1)}/5 (${n})`;
}

// "★★★★☆" for a rating of 4.
const stars = (rating) => '★'.repeat(rating) + '☆'.repeat(5 - rating);

// The day's figures from the record tier (hidden on a node without one).
async function loadToday() {
  try {
    const t = await conn.request('stats');
    el.today.textContent = `Today: ${t.opened} opened · ${t.answered} answered · ${t.finished} finished · wait ${mean(t.mean_waiting_ms)} · handling ${mean(t.mean_handling_ms)}${ratingSummary(t.ratings)}`;
    el.today.hidden = false;
  } catch {
    el.today.hidden = true;
  }
}

// ---------------------------------------------------------------- retention (admins)

/** The admin API, with this console's token. */
async function adminApi(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.message || `HTTP ${r.status}`);
  return answer;
}

// The tenant's retention policy, for those who may change it.
async function loadRetention() {
  if (!(can('chat.disable') && can('data.erase'))) return;
  try {
    const settings = await adminApi('GET', '/admin/v1/settings');
    el.retentionDays.value = settings.retention_days ?? '';
    el.retention.hidden = false;
  } catch (err) {
    console.warn('cannot read the settings', err);
  }
}

async function saveRetention() {
  const text = el.retentionDays.value.trim();
  const days = text === '' ? null : Number(text);
  try {
    const settings = await adminApi('PUT', '/admin/v1/settings', { retention_days: days });
    el.retentionDays.value = settings.retention_days ?? '';
    const kept = settings.retention_days;
    el.retentionNote.textContent = kept ? `Saved: kept ${kept} ${kept === 1 ? 'day' : 'days'}` : 'Saved: kept forever';
  } catch (err) {
    el.retentionNote.textContent = `Not saved: ${err.message}`;
  }
}

async function toggleTenant() {
  try {
    const r = await conn.request(state.tenantDisabled ? 'enable_tenant' : 'disable_tenant');
    state.tenantDisabled = r.chat_disabled;
    renderHeader();
  } catch (err) {
    alertError(err);
  }
}

async function setPresence(presence) {
  try {
    await conn.request('presence', { presence });
  } catch (err) {
    alertError(err);
  }
}

// ---------------------------------------------------------------- queue

async function loadQueue() {
  for (const [status] of STATUSES) {
    const r = await conn.request('list', { status, limit: LIST_PAGE });
    for (const item of r.items) applyQueueItem(item, false);
  }
  renderQueue();
}

function applyQueueItem(item, render = true) {
  const prev = state.queue.get(item.conversation);
  if (prev && prev.seq > item.seq) return;
  state.queue.set(item.conversation, { ...item, owner_absent: item.owner_absent ?? (prev && prev.owner === item.owner ? prev.owner_absent : false) });
  loadProfile(item.conversation);
  const c = state.current;
  if (c && c.id === item.conversation && item.seq >= c.stateSeq) {
    Object.assign(c, { status: item.status, owner: item.owner, epoch: item.epoch, disabled: item.disabled, stateSeq: item.seq });
    syncSeenEpoch(c);
    renderConversation();
  }
  if (render) renderQueue();
}

function renderQueue() {
  const counts = { unanswered: 0, active: 0, finished: 0 };
  for (const item of state.queue.values()) if (item.status in counts) counts[item.status]++;
  // The waiting count in the tab's title: seen from any other tab or window.
  document.title = counts.unanswered ? `(${counts.unanswered}) chathub console` : 'chathub console';
  el.tabs.replaceChildren(
    ...STATUSES.map(([status, label]) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${status}`,
          'aria-selected': String(state.tab === status),
          onclick: () => {
            state.tab = status;
            renderQueue();
          },
        },
        label,
        h('span', { class: 'count' }, String(counts[status])),
      ),
    ),
  );
  const now = Date.now();
  const items = [...state.queue.values()].filter((i) => i.status === state.tab);
  // Longest waiting first for the queue; most recent first otherwise.
  items.sort((a, b) => (state.tab === 'unanswered' ? a.since - b.since : b.updated - a.updated));
  if (!items.length) {
    el.queueList.replaceChildren(h('li', { class: 'empty muted' }, state.tab === 'unanswered' ? 'Nobody is waiting.' : 'Nothing here.'));
    return;
  }
  el.queueList.replaceChildren(
    ...items.map((i) => {
      let meta;
      if (i.status === 'unanswered') meta = h('span', { class: 'waiting', title: 'Waiting for an agent', dataset: { since: i.since } }, `waiting ${duration(now - i.since)}`);
      else if (i.status === 'active')
        meta =
          isBot(i.owner)
            ? h('span', { class: 'owner with-bot' }, h('span', { class: 'tag bot-tag' }, 'with bot'), ` ${nameOf(i.owner)}`)
            : h('span', { class: 'owner' }, i.owner === state.me ? 'you' : nameOf(i.owner), i.owner_absent ? h('span', { class: 'tag warn' }, 'absent') : null);
      else meta = h('span', { class: 'muted' }, timeOf(i.updated));
      return h(
        'li',
        {},
        h(
          'button',
          {
            type: 'button',
            class: `queue-item${state.current?.id === i.conversation ? ' selected' : ''}`,
            dataset: { conversation: i.conversation, status: i.status, alert: state.alerted.get(i.conversation)?.level },
            'aria-current': state.current?.id === i.conversation ? 'true' : null,
            onclick: () => openConversation(i.conversation),
          },
          h('span', { class: 'who' }, customerName(i.conversation), i.disabled ? h('span', { class: 'tag' }, 'chat off') : null),
          meta,
          h('span', { class: 'preview' }, i.preview || ''),
        ),
      );
    }),
  );
}

// ---------------------------------------------------------------- search

// Full-text search of the tenant's messages (newest first): the hits replace the queue
// until the search is cleared; a hit opens its conversation.
async function runSearch(query) {
  const q = query.trim();
  const showQueue = (visible) => {
    el.searchResults.hidden = visible;
    el.tabs.hidden = !visible;
    el.queueList.hidden = !visible;
  };
  if (!q) {
    showQueue(true);
    return;
  }
  showQueue(false);
  const clear = h('li', {}, h('button', { type: 'button', id: 'search-clear', class: 'link', onclick: () => {
    el.searchInput.value = '';
    showQueue(true);
  } }, 'Back to the queue'));
  try {
    const r = await conn.request('search', { query: q, limit: 20 });
    const hits = r.hits.map((hit) =>
      h(
        'li',
        {},
        h(
          'button',
          { type: 'button', class: 'queue-item search-hit', dataset: { conversation: hit.conversation, seq: hit.seq }, onclick: () => openConversation(hit.conversation) },
          h('span', { class: 'who' }, customerName(hit.conversation)),
          h('span', { class: 'muted' }, timeOf(hit.at)),
          h('span', { class: 'preview' }, ...hit.snippet.map((part) => (part.hit ? h('mark', {}, part.text) : part.text))),
        ),
      ),
    );
    el.searchResults.replaceChildren(clear, ...(hits.length ? hits : [h('li', { class: 'empty muted' }, 'No message matches.')]));
  } catch (err) {
    el.searchResults.replaceChildren(clear, h('li', { class: 'empty muted', id: 'search-error' }, errorText(err)));
  }
}

async function loadProfile(conversation) {
  if (state.profiles.has(conversation)) return;
  state.profiles.set(conversation, null);
  try {
    const r = await conn.request('profile', { conversation });
    state.profiles.set(conversation, r.profile || null);
    renderQueue();
    if (state.current?.id === conversation) {
      renderConversation();
      renderWorkspace();
    }
  } catch {
    // No profile: the id is shown instead.
  }
}

async function loadAgents() {
  try {
    const r = await conn.request('agents');
    state.agents = new Map(r.agents.map((a) => [a.agent, a]));
    for (const a of r.agents) if (a.name) state.names.set(a.agent, a.name);
    renderQueue();
    renderConversation();
    const mine = state.agents.get(state.me);
    if (mine && mine.presence !== 'offline') el.presence.value = mine.presence;
    renderAgents();
  } catch {
    // Availability is informative; the queue works without it.
  }
}

function renderAgents() {
  const list = [...state.agents.entries()].sort(([a], [b]) => a.localeCompare(b));
  el.agents.replaceChildren(
    ...list.map(([id, a]) =>
      h('li', { dataset: { agent: id, presence: a.presence } }, h('span', { class: `dot ${a.presence}`, 'aria-hidden': 'true' }), `${nameOf(id)}${id === state.me ? ' (you)' : ''}`, isBot(id) ? h('span', { class: 'tag bot-tag' }, 'bot') : null, h('span', { class: 'muted' }, ` ${a.presence}`)),
    ),
  );
}

// ---------------------------------------------------------------- one conversation

async function openConversation(id) {
  const previous = state.current;
  if (previous && previous.id !== id) conn.unsubscribe(previous.id);
  const queued = state.queue.get(id);
  state.current = {
    id,
    status: queued?.status ?? 'new',
    owner: queued?.owner ?? null,
    epoch: queued?.epoch ?? 0,
    seenEpoch: queued?.epoch ?? 0,
    disabled: queued?.disabled ?? false,
    stateSeq: -1,
    events: new Map(),
    oldest: null,
    hasMore: false,
    loadingOlder: false,
    reads: new Map(),
    typing: new Map(),
    notice: state.assigned.has(id) ? { kind: 'assigned', ...state.assigned.get(id) } : null,
    lastReadSent: 0,
    draft: '',
    positioned: false,
  };
  const c = state.current;
  renderQueue();
  renderConversation();
  renderWorkspace();
  try {
    const page = await conn.request('history', { conversation: id, limit: HISTORY_PAGE });
    if (state.current !== c) return;
    for (const ev of page.events) putEvent(c, ev);
    c.oldest = page.events.length ? page.events[0].seq : null;
    c.hasMore = page.has_more;
    c.earlierRemoved = page.earlier_removed === true;
    c.retention = page.retention || null;
    const last = page.events.length ? page.events[page.events.length - 1].seq : 0;
    const sub = await conn.subscribe(id, last);
    if (state.current !== c) return;
    if (sub.seq >= c.stateSeq) Object.assign(c, { status: sub.status, owner: sub.owner, epoch: sub.epoch, disabled: sub.disabled, stateSeq: sub.seq });
    syncSeenEpoch(c);
    const opened = await conn.request('open', { conversation: id });
    for (const r of opened.reads || []) c.reads.set(`${r.by.role}:${r.by.id}`, r.seq);
    renderConversation({ stickToBottom: true });
    c.positioned = true;
    markRead();
  } catch (err) {
    c.notice = { kind: 'error', text: `Could not load the conversation: ${err.message}` };
    renderConversation();
  }
  loadWorkspace();
}

/**
 * The epoch a send carries is the one the agent saw when starting to write: a change of
 * owner while a reply is being typed makes that send a `conflict` (shown, with the
 * choice to take over) instead of a silent take-over.
 */
function syncSeenEpoch(c) {
  if (!el.composer || !el.composer.value.trim()) c.seenEpoch = c.epoch;
}

function onEvent(ev) {
  const c = state.current;
  if (!c || ev.conversation !== c.id) return;
  putEvent(c, ev);
  if (ev.event === 'status' && ev.seq >= c.stateSeq) {
    Object.assign(c, { status: ev.status, owner: ev.owner, epoch: ev.epoch, disabled: ev.disabled, stateSeq: ev.seq });
    syncSeenEpoch(c);
  }
  if (ev.event === 'message') c.typing.delete(`${ev.author.role}:${ev.author.id}`);
  renderConversation({ stickToBottom: true });
  markRead();
}

function onTyping(f) {
  const c = state.current;
  if (!c || f.conversation !== c.id || (f.from.role !== 'end_user' && f.from.id === state.me)) return;
  const key = `${f.from.role}:${f.from.id}`;
  clearTimeout(c.typing.get(key));
  if (f.typing) {
    // A client that vanished mid-typing sends no `false`: the indicator fades by itself.
    c.typing.set(
      key,
      setTimeout(() => {
        c.typing.delete(key);
        renderTyping();
      }, 6000),
    );
  } else c.typing.delete(key);
  renderTyping();
}

function onRead(f) {
  const c = state.current;
  if (!c || f.conversation !== c.id) return;
  const key = `${f.by.role}:${f.by.id}`;
  if ((c.reads.get(key) ?? 0) < f.seq) c.reads.set(key, f.seq);
  renderConversation();
}

/** Tells the others this agent has seen the conversation up to its last event. */
function markRead() {
  const c = state.current;
  if (!c || document.visibilityState !== 'visible' || !c.events.size) return;
  const last = Math.max(...c.events.keys());
  if (last <= c.lastReadSent) return;
  c.lastReadSent = last;
  conn.request('read', { conversation: c.id, seq: last }).catch(() => {
    c.lastReadSent = 0;
  });
}
document.addEventListener('visibilitychange', markRead);

async function loadOlder() {
  const c = state.current;
  if (!c || !c.hasMore || c.loadingOlder || c.oldest === null) return;
  c.loadingOlder = true;
  try {
    const page = await conn.request('history', { conversation: c.id, before: c.oldest, limit: HISTORY_PAGE });
    if (state.current !== c) return;
    for (const ev of page.events) putEvent(c, ev);
    if (page.events.length) c.oldest = page.events[0].seq;
    c.hasMore = page.has_more;
    c.earlierRemoved = page.earlier_removed === true;
    c.retention = page.retention || null;
    renderConversation({ keepAnchor: true });
  } catch {
    // Scrolling up again retries.
  } finally {
    c.loadingOlder = false;
  }
}

/** What the top of a conversation says when its older messages are gone. */
function earlierRemovedText(c) {
  if (!c.retention) return 'Earlier messages are no longer kept.';
  return `Earlier messages were removed by the retention policy (kept ${c.retention.days} ${c.retention.days === 1 ? 'day' : 'days'}: nothing before ${new Date(c.retention.cutoff).toLocaleString()}).`;
}

// Why a conversation was released, as agents read it.
const RELEASE_REASONS = {
  owner_absent: 'its owner was away too long',
  no_reply: 'the customer waited too long for a reply',
  admin: 'released by an admin',
};

function describeStatus(ev) {
  const by = ev.by ? (ev.by.role === 'end_user' ? customerName(ev.by.id) : nameOf(ev.by.id)) : 'someone';
  switch (ev.cause) {
    case 'opened':
      return ev.status === 'active' ? `${by} started the conversation: ${nameOf(ev.owner)} (bot) answers first` : `${by} started the conversation`;
    case 'reopened':
      return ev.status === 'active' ? `${by} wrote again: ${nameOf(ev.owner)} (bot) answers first` : `${by} wrote again: back in the queue`;
    case 'handed_off':
      return `${nameOf(ev.previous_owner)} (bot) handed the conversation to the team`;
    case 'taken':
      return `${nameOf(ev.owner)} took the conversation`;
    case 'taken_over':
      return `${nameOf(ev.owner)} took over from ${nameOf(ev.previous_owner)}`;
    case 'transferred':
      return `${by} handed the conversation to ${nameOf(ev.owner)}`;
    case 'finished':
      return `Finished by ${by}`;
    case 'disabled':
      return `Chat disabled by ${by}`;
    case 'enabled':
      return `Chat enabled by ${by}`;
    case 'released':
      return `Back in the queue from ${nameOf(ev.previous_owner)}: ${RELEASE_REASONS[ev.reason] || 'released'}`;
    default:
      return `Now ${ev.status}`;
  }
}

/** Keeps `ev` in the conversation's events, amendments folded in (ui.js). */
function putEvent(c, ev) {
  putAmended(c.events, ev);
}

/** A message's own actions: edit and unsend for its author, redact for admins. */
function messageActions(ev) {
  if (!state.current || ev.content.kind === 'removed') return null;
  const mine = ev.author.role !== 'end_user' && ev.author.id === state.me;
  const buttons = [];
  if (mine && ev.content.kind === 'text') buttons.push(h('button', { type: 'button', class: 'link edit-msg', onclick: () => startEdit(ev) }, 'Edit'));
  if (mine) buttons.push(h('button', { type: 'button', class: 'link unsend-msg', onclick: () => amend('unsend', { seq: ev.seq }) }, 'Unsend'));
  if (can('data.erase')) buttons.push(h('button', { type: 'button', class: 'link redact-msg', onclick: () => startRedact(ev) }, 'Redact'));
  return buttons.length ? h('span', { class: 'msg-actions' }, ...buttons) : null;
}

async function amend(op, fields) {
  const c = state.current;
  try {
    await conn.request(op, { conversation: c.id, ...fields });
    c.editing = null;
    renderConversation({ keepAnchor: true });
  } catch (err) {
    alertError(err);
  }
}

/** An inline form in place of a message's text (edit: its text; redact: a reason). */
function inlineForm(ev, kind, initial, placeholder, submit) {
  const input = h('textarea', { class: `inline-${kind}`, rows: 2, placeholder, 'aria-label': placeholder });
  input.value = initial;
  const form = h(
    'form',
    {
      class: `inline-form ${kind}-form`,
      onsubmit: (e) => {
        e.preventDefault();
        if (input.value.trim()) submit(input.value);
      },
    },
    input,
    h('button', { type: 'submit', class: 'primary' }, kind === 'edit' ? 'Save' : 'Redact'),
    h('button', { type: 'button', onclick: () => { state.current.editing = null; renderConversation({ keepAnchor: true }); } }, 'Cancel'),
  );
  setTimeout(() => input.focus());
  return form;
}

function startEdit(ev) {
  state.current.editing = { seq: ev.seq, kind: 'edit' };
  renderConversation({ keepAnchor: true });
}

function startRedact(ev) {
  state.current.editing = { seq: ev.seq, kind: 'redact' };
  renderConversation({ keepAnchor: true });
}

/** What a removed message shows instead of its content. */
function tombstone(ev) {
  const a = ev.amended || {};
  const by = a.by ? (a.by.role === 'end_user' ? customerName(a.by.id) : a.by.id === state.me ? 'you' : nameOf(a.by.id)) : 'someone';
  const text = a.change === 'redacted' ? `Message redacted by ${by}: ${a.reason || ''}` : `Message unsent by ${by}`;
  return h('p', { class: 'text tombstone', dataset: { removed: a.change || 'removed' } }, text);
}

function renderEvent(ev, seenSeq) {
  // A scanner's verdict redraws its file (noteVerdict); it has no line of its own.
  if (ev.event === 'attachment_checked') return null;
  // Amendments show on their message (putEvent folded them in).
  if (ev.event === 'edited' || ev.event === 'unsent' || ev.event === 'redacted') return null;
  if (ev.event === 'status') {
    return h('li', { class: 'system', dataset: { seq: ev.seq, cause: ev.cause } }, describeStatus(ev), h('time', {}, timeOf(ev.at)));
  }
  if (ev.event === 'survey') {
    return h('li', { class: 'system survey-asked', dataset: { seq: ev.seq, survey: '' } }, `Survey sent to the customer: “${ev.prompt}”`, h('time', {}, timeOf(ev.at)));
  }
  if (ev.event === 'auto_reply') {
    return h('li', { class: 'system auto-reply', dataset: { seq: ev.seq, autoReply: '' } }, `Outside business hours, the customer was told: “${ev.text}”`, h('time', {}, timeOf(ev.at)));
  }
  if (ev.event === 'survey_answered') {
    return h(
      'li',
      { class: 'msg in survey-result', dataset: { seq: ev.seq, rating: ev.rating } },
      h('div', { class: 'meta' }, h('span', { class: 'tag' }, 'Survey'), ` ${customerName(ev.author.id)} · `, h('time', {}, timeOf(ev.at))),
      h('p', { class: 'rating', 'aria-label': `Rated ${ev.rating} out of 5` }, stars(ev.rating), ` ${ev.rating}/5`),
      ev.comment ? h('p', { class: 'text' }, ev.comment) : null,
      ev.reward ? h('p', { class: 'muted reward' }, `Granted “${ev.reward.name}” as a thank-you`) : null,
    );
  }
  if (ev.event === 'handoff') {
    return h(
      'li',
      { class: 'system handoff-line', dataset: { seq: ev.seq, handoff: '' } },
      `${nameOf(ev.author.id)} (bot) handed off: “${ev.summary}”`,
      h('time', {}, timeOf(ev.at)),
    );
  }
  if (ev.event === 'note') {
    const by = ev.author.id === state.me ? 'You' : nameOf(ev.author.id);
    return h(
      'li',
      { class: 'msg note', dataset: { seq: ev.seq, author: ev.author.id, note: '' }, title: 'A private note: only agents see it' },
      h('div', { class: 'meta' }, h('span', { class: 'tag' }, 'Note'), ` ${by} · `, h('time', {}, timeOf(ev.at)), ' · only agents see this'),
      h('p', { class: 'text' }, ev.text),
    );
  }
  const mine = ev.author.role !== 'end_user';
  const who = ev.author.role === 'end_user' ? customerName(ev.author.id) : ev.author.id === state.me ? 'You' : nameOf(ev.author.id);
  let body;
  if (ev.content.kind === 'engagement') {
    const e = ev.content.engagement;
    body = h('div', { class: 'engagement-card' }, h('span', { class: 'tag' }, e.type), h('strong', {}, e.name), h('p', {}, e.description));
  } else if (ev.content.kind === 'attachment') body = attachmentView(conn, state.current.id, ev.content.attachment);
  else if (ev.content.kind === 'removed') body = tombstone(ev);
  else body = h('p', { class: 'text' }, ev.content.text);
  const editing = state.current && state.current.editing && state.current.editing.seq === ev.seq ? state.current.editing : null;
  if (editing && editing.kind === 'edit' && ev.content.kind === 'text')
    body = inlineForm(ev, 'edit', ev.content.text, 'The new text', (text) => amend('edit', { seq: ev.seq, text }));
  else if (editing && editing.kind === 'redact')
    body = h('div', {}, body, inlineForm(ev, 'redact', '', 'Why it is redacted (both sides see this)', (reason) => amend('redact', { seq: ev.seq, reason })));
  const edited = ev.amended && ev.amended.change === 'edited' ? h('span', { class: 'edited', title: `Edited ${timeOf(ev.amended.at)}` }, ' · edited') : null;
  return h(
    'li',
    { class: `msg ${mine ? 'out' : 'in'}`, dataset: { seq: ev.seq, author: ev.author.id } },
    h('div', { class: 'meta' }, who, ev.author.role === 'bot' ? h('span', { class: 'tag bot-tag' }, 'bot') : null, ' · ', h('time', {}, timeOf(ev.at)), edited, editing ? null : messageActions(ev)),
    body,
    seenSeq === ev.seq ? h('div', { class: 'seen', 'aria-label': 'Seen by the customer' }, 'Seen') : null,
  );
}

/**
 * The conversation pane's parts, made once per opened conversation: re-rendering only
 * fills them, so the message list keeps its scroll position and the composer its draft,
 * focus and caret.
 */
function skeleton(c) {
  if (el.skeletonFor === c) return;
  el.skeletonFor = c;
  el.header = h('header', { class: 'conv-header' });
  el.noticeBox = h('div', { class: 'notice-box' });
  el.messages = h('ol', {
    class: 'messages',
    'aria-live': 'polite',
    'aria-label': 'Messages',
    // Only a scroll the agent makes loads older pages (not the positioning below).
    onscroll: (e) => c.positioned && e.target.scrollTop < 60 && loadOlder(),
  });
  el.typing = h('div', { id: 'typing', class: 'typing muted', 'aria-live': 'polite' });
  el.composer = h('textarea', {
    id: 'composer',
    rows: 2,
    'aria-label': 'Message',
    oninput: onComposerInput,
    onkeydown: onComposerKey,
  });
  el.composer.value = c.draft;
  el.canned = h('ul', { id: 'canned', class: 'canned', role: 'listbox', hidden: true, 'aria-label': 'Canned responses' });
  el.send = h('button', { type: 'submit', id: 'send', class: 'primary' });
  // Files: the Attach button's picker, dropped on the pane, or pasted into the composer.
  el.attachInput = h('input', {
    type: 'file',
    id: 'attach-input',
    hidden: true,
    multiple: true,
    onchange: (e) => {
      for (const file of e.target.files) sendFile(file);
      e.target.value = '';
    },
  });
  el.upload = h('div', { id: 'upload', class: 'upload', role: 'status', 'aria-live': 'polite', hidden: true });
  el.composer.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (!files.length) return;
    e.preventDefault();
    for (const file of files) sendFile(file);
  });
  const form = h(
    'form',
    {
      class: 'composer',
      onsubmit: (e) => {
        e.preventDefault();
        sendText();
      },
    },
    el.canned,
    el.composer,
    h(
      'div',
      { class: 'composer-actions' },
      h('button', { type: 'button', id: 'canned-button', onclick: () => showCanned('') }, 'Canned'),
      (el.noteToggle = h('button', { type: 'button', id: 'note-toggle', 'aria-pressed': 'false', title: 'Write a private note: only agents see it', onclick: () => toggleNoteMode(c) }, 'Note')),
      h('button', { type: 'button', id: 'attach', class: 'attach', title: 'Attach a file (or drop it here, or paste it)', onclick: () => el.attachInput.click() }, 'Attach'),
      el.attachInput,
      el.send,
    ),
  );
  // Taking over from a colleague: an optional note for the agents, sent with the message.
  el.handover = h('input', {
    id: 'handover-note',
    type: 'text',
    maxlength: '2000',
    placeholder: 'Handover note for the agents (optional): why you take over',
    'aria-label': 'Handover note, only agents see it',
    hidden: true,
  });
  el.conversation.replaceChildren(el.header, el.noticeBox, el.messages, el.typing, el.upload, el.handover, form);
  if (!el.conversation.dataset.dropReady) {
    el.conversation.dataset.dropReady = '1';
    el.conversation.addEventListener('dragover', (e) => {
      if (!state.current || !e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      el.conversation.classList.add('dropping');
    });
    el.conversation.addEventListener('dragleave', () => el.conversation.classList.remove('dropping'));
    el.conversation.addEventListener('drop', (e) => {
      el.conversation.classList.remove('dropping');
      if (!state.current || !e.dataTransfer?.files.length) return;
      e.preventDefault();
      for (const file of e.dataTransfer.files) sendFile(file);
    });
  }
}

function renderConversation({ stickToBottom = false, keepAnchor = false } = {}) {
  const c = state.current;
  if (!c) {
    el.skeletonFor = null;
    el.composer = null;
    el.conversation.replaceChildren(h('div', { class: 'placeholder muted' }, 'Pick a conversation from the queue.'));
    return;
  }
  skeleton(c);
  const list = el.messages;
  const wasAtBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const oldHeight = list.scrollHeight;
  const oldTop = list.scrollTop;

  const ownedByMe = c.status === 'active' && c.owner === state.me;
  const actions = [];
  if (c.status === 'active' && (ownedByMe || state.role === 'admin') && can('chat.finish'))
    actions.push(h('button', { type: 'button', id: 'finish', onclick: finish }, 'Finish'));
  if (state.role === 'admin' && c.status === 'unanswered' && can('chat.finish'))
    actions.push(h('button', { type: 'button', id: 'finish', onclick: finish }, 'Finish'));
  if ((c.status === 'active' && (ownedByMe || state.role === 'admin')) || (state.role === 'admin' && c.status === 'unanswered'))
    actions.push(h('button', { type: 'button', id: 'transfer', onclick: () => toggleTransfer(c) }, 'Transfer…'));
  if (state.role === 'admin' && c.status === 'active')
    actions.push(h('button', { type: 'button', id: 'release', onclick: release, title: 'Give it back to the queue: any agent may take it' }, 'Release'));
  if (can('chat.disable'))
    actions.push(h('button', { type: 'button', id: 'toggle-chat', onclick: toggleChat }, c.disabled ? 'Enable chat' : 'Disable chat'));
  actions.push(h('button', { type: 'button', id: 'transcript', onclick: downloadTranscript, title: 'Download the transcript (HTML)' }, 'Transcript'));
  el.header.replaceChildren(
    h('div', {}, h('h2', { id: 'conv-title' }, customerName(c.id)), h('span', { class: 'muted' }, c.id)),
    h(
      'div',
      { class: 'conv-state' },
      h('span', { class: `pill ${c.status}`, id: 'conv-status' }, c.status),
      c.owner ? h('span', { id: 'conv-owner' }, 'owner: ', c.owner === state.me ? 'you' : nameOf(c.owner)) : '',
      c.status === 'active' && isBot(c.owner) ? h('span', { class: 'tag bot-tag', id: 'conv-with-bot' }, 'with bot') : '',
      c.disabled ? h('span', { class: 'tag warn', id: 'conv-disabled' }, 'chat disabled') : '',
    ),
    h('div', { class: 'conv-actions' }, actions),
  );
  el.noticeBox.replaceChildren(...[renderHandoffPin(c), renderNotice(c)].filter(Boolean));

  // End users' last read mark: shown under the newest agent message it covers.
  const customerMark = c.reads.get(`end_user:${c.id}`) ?? 0;
  const seqs = [...c.events.keys()].sort((a, b) => a - b);
  for (const ev of c.events.values()) if (ev.event === 'attachment_checked') noteVerdict(ev);
  const seenSeq = seqs
    .filter((s) => s <= customerMark && c.events.get(s).event === 'message' && c.events.get(s).author.role !== 'end_user')
    .pop();
  list.replaceChildren(
    ...[
      c.hasMore ? h('li', { class: 'older muted' }, h('button', { type: 'button', class: 'link', onclick: loadOlder }, 'Load older messages')) : null,
      !c.hasMore && c.earlierRemoved ? h('li', { class: 'older muted', 'data-earlier-removed': '' }, earlierRemovedText(c)) : null,
      ...seqs.map((s) => renderEvent(c.events.get(s), seenSeq)),
    ].filter(Boolean),
  );
  el.composer.placeholder = composerPlaceholder(c);
  el.send.textContent = c.noteMode ? 'Add note' : sendLabel(c);
  el.handover.hidden = c.noteMode || !(c.status === 'active' && c.owner && c.owner !== state.me);
  el.noteToggle.setAttribute('aria-pressed', c.noteMode ? 'true' : 'false');
  el.composer.classList.toggle('note-mode', !!c.noteMode);
  if (c.noteMode) el.composer.placeholder = 'Private note: only agents see it';
  renderTyping();
  if (keepAnchor) list.scrollTop = list.scrollHeight - oldHeight + oldTop;
  else if (stickToBottom && wasAtBottom) list.scrollTop = list.scrollHeight;
  else list.scrollTop = oldTop;
}

/** Note mode: what the composer sends is a private note, and nobody sees typing. */
function toggleNoteMode(c) {
  c.noteMode = !c.noteMode;
  if (c.noteMode) stopTyping();
  renderConversation();
  el.composer.focus();
}

function composerPlaceholder(c) {
  if (c.status === 'active' && c.owner === state.me) return 'Write a message (type / for canned responses)';
  if (c.status === 'active') return `Writing here takes the conversation over from ${nameOf(c.owner)}`;
  return 'Write to take this conversation (type / for canned responses)';
}

function sendLabel(c) {
  if (c.status === 'active' && c.owner !== state.me) return 'Take over & send';
  if (c.status === 'active') return 'Send';
  return 'Take & send';
}

/**
 * The bot's handoff summary, pinned above the thread for whoever takes it: the latest
 * `handoff` of the current cycle (a finish or a new cycle ends it).
 */
function renderHandoffPin(c) {
  let pinned = null;
  for (const s of [...c.events.keys()].sort((a, b) => a - b)) {
    const ev = c.events.get(s);
    if (ev.event === 'handoff') pinned = ev;
    else if (ev.event === 'status' && ['finished', 'opened', 'reopened'].includes(ev.cause)) pinned = null;
  }
  if (!pinned) return null;
  return h(
    'div',
    { id: 'handoff-pin', class: 'banner info handoff', role: 'note', dataset: { seq: pinned.seq } },
    h('strong', {}, `From ${nameOf(pinned.author.id)} (bot): `),
    h('span', { class: 'handoff-summary' }, pinned.summary),
    pinned.fields && pinned.fields.length
      ? h('dl', { class: 'handoff-fields' }, ...pinned.fields.flatMap((f) => [h('dt', {}, f.name), h('dd', {}, f.value)]))
      : null,
    h('span', { class: 'muted' }, ' · only agents see this'),
  );
}

function renderNotice(c) {
  const n = c.notice;
  if (n && n.kind === 'conflict') {
    return h(
      'div',
      { id: 'notice', class: 'banner warn', role: 'alert', dataset: { kind: 'conflict', owner: n.owner || '' } },
      n.owner ? `${nameOf(n.owner)} took this conversation first. Your message was not sent.` : 'The conversation changed before your message arrived; it was not sent.',
      n.owner ? h('button', { type: 'button', id: 'take-over', onclick: () => retryPending() }, `Take over from ${nameOf(n.owner)}`) : null,
    );
  }
  if (n && n.kind === 'released') {
    return h('div', { id: 'notice', class: 'banner warn', role: 'alert', dataset: { kind: 'released', reason: n.reason || '' } }, `This conversation went back to the queue: ${RELEASE_REASONS[n.reason] || 'released'}.`);
  }
  if (n && n.kind === 'lost') {
    return h('div', { id: 'notice', class: 'banner warn', role: 'alert', dataset: { kind: 'lost', owner: n.owner } }, `${nameOf(n.owner)} took this conversation over from you.`);
  }
  if (n && n.kind === 'error') return h('div', { id: 'notice', class: 'banner error', role: 'alert', dataset: { kind: 'error' } }, n.text);
  // The same form across re-renders, so what is typed in it stays.
  if (n && n.kind === 'transfer') return (n.form ||= transferForm(c));
  if (n && n.kind === 'transferred') {
    return h('div', { id: 'notice', class: 'banner info', role: 'status', dataset: { kind: 'transferred', to: n.to } }, `Handed to ${nameOf(n.to)}.`);
  }
  if (n && n.kind === 'assigned') {
    return h(
      'div',
      { id: 'notice', class: 'banner info', role: 'status', dataset: { kind: 'assigned', by: n.by } },
      `${nameOf(n.by)} handed this conversation to you.`,
      n.note ? h('span', { id: 'assigned-note' }, ` Note: ${n.note}`) : null,
    );
  }
  if (c.status === 'active' && isBot(c.owner)) {
    return h('div', { id: 'notice', class: 'banner info', role: 'status', dataset: { kind: 'bot', owner: c.owner } }, `${nameOf(c.owner)} (bot) is answering. Sending a message takes it over; the bot's replies stop.`);
  }
  if (c.status === 'active' && c.owner && c.owner !== state.me) {
    return h('div', { id: 'notice', class: 'banner info', role: 'status', dataset: { kind: 'owned', owner: c.owner } }, `${nameOf(c.owner)} is handling this conversation. Sending a message takes it over.`);
  }
  if (state.tenantDisabled || c.disabled) return h('div', { id: 'notice', class: 'banner warn', role: 'status', dataset: { kind: 'disabled' } }, 'Chat is disabled here: the customer cannot write, and only the owner can reply.');
  return null;
}

function renderTyping() {
  const c = state.current;
  const box = document.getElementById('typing');
  if (!c || !box) return;
  const who = [...c.typing.keys()].map((k) => {
    const [role, id] = k.split(/:(.*)/s);
    return role === 'end_user' ? customerName(id) : nameOf(id);
  });
  box.textContent = who.length ? `${who.join(', ')} ${who.length === 1 ? 'is' : 'are'} typing…` : '';
}

// ---------------------------------------------------------------- composing and sending

let typingSentAt = 0;
let typingIdle = null;
function onComposerInput() {
  const c = state.current;
  const value = el.composer.value;
  c.draft = value;
  if (/^\/\S*$/.test(value)) showCanned(value);
  else hideCanned();
  // A note being written is nobody's business but the agents': no typing frames.
  if (value && !c.noteMode && Date.now() - typingSentAt > 3000) {
    typingSentAt = Date.now();
    conn.request('typing', { conversation: c.id, typing: true }).catch(() => {});
  }
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  clearTimeout(typingIdle);
  if (!typingSentAt || !state.current) return;
  typingSentAt = 0;
  conn.request('typing', { conversation: state.current.id, typing: false }).catch(() => {});
}

function onComposerKey(e) {
  if (!el.canned.hidden) {
    const options = [...el.canned.querySelectorAll('[role=option]')];
    const at = options.findIndex((o) => o.getAttribute('aria-selected') === 'true');
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const next = (at + (e.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
      options.forEach((o, i) => o.setAttribute('aria-selected', String(i === next)));
      return;
    }
    if (e.key === 'Enter' && at >= 0) {
      e.preventDefault();
      options[at].click();
      return;
    }
    if (e.key === 'Escape') {
      hideCanned();
      return;
    }
  }
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    sendText();
  }
}

let cannedQuery = 0;
async function showCanned(query) {
  const mine = ++cannedQuery;
  try {
    const r = await conn.request('canned_list', query ? { query } : {});
    if (mine !== cannedQuery) return;
    el.canned.replaceChildren(
      ...(r.items.length
        ? r.items.map((item, i) =>
            h(
              'li',
              {
                role: 'option',
                'aria-selected': String(i === 0),
                dataset: { canned: item.id },
                onmousedown: (e) => e.preventDefault(),
                onclick: () => sendCanned(item),
              },
              h('strong', {}, item.shortcut),
              ' ',
              h('span', { class: 'muted' }, item.text),
            ),
          )
        : [h('li', { class: 'muted' }, 'No canned response matches.')]),
    );
    el.canned.hidden = false;
  } catch (err) {
    alertError(err);
  }
}

function hideCanned() {
  cannedQuery++;
  if (el.canned) el.canned.hidden = true;
}

/** What the agent last tried to send, kept for "take over" after a conflict. */
let pendingSend = null;

async function sendText() {
  const text = el.composer.value.trim();
  if (!text || !state.current) return;
  if (state.current.noteMode) {
    if (await sendNote(text)) {
      el.composer.value = '';
      state.current.draft = '';
    }
    return;
  }
  const handover = el.handover && !el.handover.hidden ? el.handover.value.trim() : '';
  if (await sendContent(handover ? { text, handover_note: handover } : { text })) {
    el.composer.value = '';
    state.current.draft = '';
    if (el.handover) el.handover.value = '';
  }
}

async function sendCanned(item) {
  hideCanned();
  if (await sendContent({ canned: item.id })) {
    el.composer.value = '';
    state.current.draft = '';
  }
}

async function sendEngagement(item) {
  await sendContent({ engagement: item.id });
  loadWorkspace();
}

/** Writes a private note: it takes nothing, so it carries no epoch and meets no conflict. */
async function sendNote(text) {
  const c = state.current;
  if (el.send) el.send.disabled = true;
  try {
    await conn.send({ conversation: c.id, text, visibility: 'agents' });
    return true;
  } catch (err) {
    alertError(err);
    return false;
  } finally {
    if (el.send) el.send.disabled = false;
  }
}

/** Sends with the epoch this console has seen; a conflict shows who won and keeps the draft. */
async function sendContent(content) {
  const c = state.current;
  pendingSend = content;
  stopTyping();
  if (el.send) el.send.disabled = true;
  try {
    const r = await conn.send({ conversation: c.id, epoch: c.seenEpoch, ...content });
    if (state.current === c) {
      Object.assign(c, { status: r.status, owner: r.owner, epoch: r.epoch, seenEpoch: r.epoch });
      c.notice = null;
    }
    pendingSend = null;
    return true;
  } catch (err) {
    if (err.code === 'conflict') {
      c.owner = err.frame.owner ?? null;
      c.epoch = err.frame.epoch;
      if (c.owner) c.status = 'active';
      c.notice = { kind: 'conflict', owner: c.owner };
    } else c.notice = { kind: 'error', text: errorText(err) };
    return false;
  } finally {
    if (el.send) el.send.disabled = false;
    renderConversation({ stickToBottom: true });
  }
}

/** Uploads a file (progress shown above the composer) and sends it, taking the conversation like any message. */
async function sendFile(file) {
  const c = state.current;
  if (!c) return;
  const clientMsgId = newClientMsgId();
  const name = file.name || `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}.${(file.type.split('/')[1] || 'bin').replace('jpeg', 'jpg')}`;
  const bar = h('progress', { max: 1, value: 0 });
  const row = h('div', { class: 'upload-row' }, h('span', {}, `Uploading ${name}`), bar);
  el.upload.hidden = false;
  el.upload.append(row);
  try {
    const card = await uploadAttachment(conn, {
      conversation: c.id,
      file,
      name,
      clientMsgId,
      onProgress: (sent, total) => {
        bar.value = total ? sent / total : 1;
      },
    });
    if (state.current === c) await sendContent({ attachment: card.id, client_msg_id: clientMsgId });
  } catch (err) {
    c.notice = { kind: 'error', text: `${name}: ${errorText(err)}` };
    renderConversation();
  } finally {
    row.remove();
    el.upload.hidden = !el.upload.childElementCount;
  }
}

async function retryPending() {
  if (!pendingSend || !state.current) return;
  const content = pendingSend;
  // The agent chose to take over: from the owner and epoch the conflict named.
  state.current.seenEpoch = state.current.epoch;
  if (await sendContent(content)) {
    if (content.text) {
      el.composer.value = '';
      state.current.draft = '';
    }
  }
}

// ---------------------------------------------------------------- alerts

/** The Notification API, where the browser has one. */
const Notifier = typeof window.Notification === 'function' ? window.Notification : null;

/** The "Notify me" button: shown until the agent has answered the browser's question. */
function renderNotify() {
  if (!el.notify) return;
  el.notify.hidden = !Notifier || Notifier.permission !== 'default';
}

async function askNotifications() {
  try {
    await Notifier?.requestPermission();
  } catch {
    // An old browser without the promise form: nothing to do.
  }
  renderNotify();
}

/** A short two-tone chime (Web Audio; silent where the browser blocks sound). */
function chime() {
  try {
    state.audio ||= new AudioContext();
    const ctx = state.audio;
    for (const [i, freq] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.08, ctx.currentTime + i * 0.15);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + i * 0.15 + 0.14);
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.15);
      osc.stop(ctx.currentTime + i * 0.15 + 0.15);
    }
  } catch {
    // No audio here.
  }
}

/** A customer started waiting: chime and, with the agent's consent, a desktop notice. */
function alertWaiting(item) {
  if (el.presence?.value === 'away' || state.current?.id === item.conversation) return;
  state.alerts = (state.alerts || 0) + 1;
  document.body.dataset.alerts = String(state.alerts);
  chime();
  if (Notifier?.permission === 'granted') {
    try {
      const notice = new Notifier(`${customerName(item.conversation)} is waiting`, {
        body: item.preview || 'A new conversation is in the queue.',
        tag: `waiting-${item.conversation}`,
      });
      notice.onclick = () => {
        window.focus();
        openConversation(item.conversation);
        notice.close();
      };
    } catch {
      // Some browsers only notify from a service worker: the chime and the title remain.
    }
  }
}

/** What an alert's level says, as agents read it. */
const ALERT_LEVELS = { reminder: 'is waiting', escalation: 'is still waiting (escalated)', breach: 'has waited past the service level' };

/** An `alert` of the tenant's schedule: the badge, a line in the header, the chime and,
 * with the agent's consent, a desktop notification (one per conversation, replaced). */
function onAlert(f) {
  const known = state.queue.get(f.conversation);
  if (known && known.status !== 'unanswered' && known.seq > f.seq) return;
  // A repeated reminder does not lower what an escalation or a breach said of this wait.
  const earlier = state.alerted.get(f.conversation);
  const rank = (level) => ['reminder', 'escalation', 'breach'].indexOf(level);
  const level = earlier && earlier.since === f.since && rank(earlier.level) > rank(f.level) ? earlier.level : f.level;
  state.alerted.set(f.conversation, { level, since: f.since, seq: f.seq });
  const text = `${customerName(f.conversation)} ${ALERT_LEVELS[f.level] || 'is waiting'} (${duration(Date.now() - f.since)})`;
  el.alert.replaceChildren(h('button', { type: 'button', class: 'link', onclick: () => {
    el.alert.hidden = true;
    openConversation(f.conversation);
  } }, text));
  el.alert.dataset.conversation = f.conversation;
  el.alert.dataset.level = f.level;
  el.alert.hidden = false;
  renderAlertBadge();
  renderQueue();
  chime();
  if (Notifier?.permission === 'granted') {
    try {
      const notice = new Notifier(text, { body: f.preview || '', tag: `alert-${f.conversation}` });
      notice.onclick = () => {
        window.focus();
        openConversation(f.conversation);
        notice.close();
      };
    } catch {
      // Some browsers only notify from a service worker: the line and the chime remain.
    }
  }
}

/** The conversation left the queue: its alerts are over. */
function clearAlert(conversation) {
  if (!state.alerted.delete(conversation)) return;
  if (el.alert.dataset.conversation === conversation) el.alert.hidden = true;
  renderAlertBadge();
}

function renderAlertBadge() {
  const n = state.alerted.size;
  el.alertBadge.textContent = n ? `${n} alert${n === 1 ? '' : 's'}` : '';
  el.alertBadge.hidden = n === 0;
  el.alertBadge.dataset.breach = [...state.alerted.values()].some((a) => a.level === 'breach') ? 'true' : 'false';
}

// The tenant's alert schedule in the console's simple shape: remind the available agents
// at once and every N s, escalate to supervisors, a breach step; other shapes are shown
// as custom (set through the admin API).
async function loadAlertSchedule() {
  if (!can('chat.disable')) return;
  try {
    const settings = await adminApi('GET', '/admin/v1/settings');
    showAlertSchedule(settings.alerts);
    el.alertSchedule.hidden = false;
    el.botAgent.value = settings.bot?.agent ?? '';
    el.botSetting.hidden = false;
  } catch (err) {
    console.warn('cannot read the settings', err);
  }
}

function showAlertSchedule(schedule) {
  const steps = schedule?.steps || [];
  const remind = steps.find((s) => s.notify === 'available' && s.after_secs === 0 && !s.breach);
  const escalate = steps.find((s) => s.notify === 'supervisors' && !s.breach);
  const breach = steps.find((s) => s.breach);
  el.alertRemind.value = remind?.repeat_secs ?? '';
  el.alertEscalate.value = escalate?.after_secs ?? '';
  el.alertBreach.value = breach?.after_secs ?? '';
  const simple = [remind, escalate, breach].filter(Boolean).length === steps.length;
  el.alertNote.textContent = simple ? '' : 'custom schedule (admin API)';
}

async function saveAlertSchedule() {
  const num = (input) => (input.value.trim() === '' ? null : Number(input.value));
  const [remind, escalate, breach] = [num(el.alertRemind), num(el.alertEscalate), num(el.alertBreach)];
  const steps = [];
  if (remind !== null) steps.push({ after_secs: 0, repeat_secs: remind, notify: 'available' });
  if (escalate !== null) steps.push({ after_secs: escalate, notify: 'supervisors' });
  if (breach !== null) steps.push({ after_secs: breach, notify: 'agents', breach: true });
  try {
    const settings = await adminApi('PUT', '/admin/v1/settings', { alerts: steps.length ? { steps } : null });
    showAlertSchedule(settings.alerts);
    el.alertNote.textContent = settings.alerts ? 'Saved' : 'Saved: no alerts';
  } catch (err) {
    el.alertNote.textContent = `Not saved: ${err.message}`;
  }
}

async function saveBot() {
  const agent = el.botAgent.value.trim();
  try {
    const settings = await adminApi('PUT', '/admin/v1/settings', { bot: agent ? { agent } : null });
    el.botAgent.value = settings.bot?.agent ?? '';
    el.botNote.textContent = settings.bot ? 'Saved' : 'Saved: no bot';
  } catch (err) {
    el.botNote.textContent = `Not saved: ${err.message}`;
  }
}

/** Opens (or closes) the transfer form on the conversation. */
function toggleTransfer(c) {
  c.notice = c.notice?.kind === 'transfer' ? null : { kind: 'transfer' };
  renderConversation();
}

/** Who can take a transfer now: available agents other than the owner. */
function transferTargets(c) {
  return [...state.agents.entries()]
    .filter(([id, a]) => a.presence === 'available' && id !== c.owner)
    .map(([id]) => id)
    .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
}

function transferForm(c) {
  const targets = transferTargets(c);
  if (!targets.length) {
    return h('div', { id: 'notice', class: 'banner warn', role: 'status', dataset: { kind: 'transfer' } }, 'Nobody else is available to take it now.');
  }
  const select = h('select', { id: 'transfer-to', 'aria-label': 'Transfer to' }, ...targets.map((id) => h('option', { value: id }, nameOf(id))));
  const note = h('input', { id: 'transfer-note', type: 'text', placeholder: 'A note for them (optional)', maxlength: 500 });
  const go = async () => {
    try {
      const r = await conn.request('transfer', { conversation: c.id, to: select.value, note: note.value || undefined, epoch: c.epoch });
      Object.assign(c, { status: r.status, owner: r.owner, epoch: r.epoch, seenEpoch: r.epoch });
      c.notice = { kind: 'transferred', to: r.owner };
    } catch (err) {
      c.notice = { kind: 'error', text: errorText(err) };
    }
    renderConversation();
  };
  return h(
    'div',
    { id: 'notice', class: 'banner info transfer', role: 'group', dataset: { kind: 'transfer' } },
    'Hand to ',
    select,
    ' ',
    note,
    ' ',
    h('button', { type: 'button', id: 'transfer-go', onclick: go }, 'Transfer'),
  );
}

async function finish() {
  const c = state.current;
  try {
    const r = await conn.request('finish', { conversation: c.id, epoch: c.epoch });
    Object.assign(c, { status: r.status, owner: r.owner, epoch: r.epoch, seenEpoch: r.epoch });
    c.notice = null;
  } catch (err) {
    c.notice = { kind: 'error', text: errorText(err) };
  }
  renderConversation();
}

// Admins: the active conversation back to the queue (its owner is told why).
async function release() {
  const c = state.current;
  try {
    const r = await conn.request('release', { conversation: c.id, epoch: c.epoch });
    Object.assign(c, { status: r.status, owner: r.owner, epoch: r.epoch, seenEpoch: r.epoch });
    c.notice = null;
  } catch (err) {
    c.notice = { kind: 'error', text: errorText(err) };
  }
  renderConversation();
}

// The conversation's transcript (messages, ownership timeline, engagements) as a
// self-contained HTML file, rendered by the server with everything escaped.
async function downloadTranscript() {
  const c = state.current;
  try {
    const r = await conn.request('transcript', { conversation: c.id, format: 'html' });
    const url = URL.createObjectURL(new Blob([r.rendered], { type: 'text/html' }));
    const link = h('a', { href: url, download: `transcript-${c.id}.html` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    c.notice = { kind: 'error', text: errorText(err) };
    renderConversation();
  }
}

async function toggleChat() {
  const c = state.current;
  try {
    const r = await conn.request(c.disabled ? 'enable' : 'disable', { conversation: c.id });
    Object.assign(c, { disabled: r.disabled });
  } catch (err) {
    c.notice = { kind: 'error', text: errorText(err) };
  }
  renderConversation();
}

function errorText(err) {
  switch (err.code) {
    case 'chat_disabled':
      return 'Chat is disabled for this conversation: it cannot be taken now.';
    case 'forbidden':
      return `Not allowed: ${err.message}`;
    case 'too_large':
      return `Too large: ${err.message}`;
    case 'unsupported_type':
      return `This kind of file is not accepted: ${err.message}`;
    case 'disconnected':
    case 'timeout':
    case 'unavailable':
      return 'The message could not be delivered right now (connection or backend); it was not sent. Try again.';
    default:
      return err.message || err.code;
  }
}

function alertError(err) {
  if (state.current) {
    state.current.notice = { kind: 'error', text: errorText(err) };
    renderConversation();
  }
}

// ---------------------------------------------------------------- workspace panel

const workspace = { type: '', history: null, available: null, activityError: null };

async function loadWorkspace() {
  const c = state.current;
  if (!c) return;
  const type = workspace.type ? { type: workspace.type } : {};
  try {
    const [history, available] = await Promise.all([
      conn.request('engagement_history', { conversation: c.id, limit: 20, ...type }),
      conn.request('engagements_available', { conversation: c.id, ...type }),
    ]);
    if (state.current !== c) return;
    workspace.history = history;
    workspace.available = available;
    workspace.activityError = null;
  } catch (err) {
    workspace.activityError = errorText(err);
  }
  renderWorkspace();
}

function renderWorkspace() {
  const c = state.current;
  if (!c) {
    el.workspace.replaceChildren();
    return;
  }
  const p = state.profiles.get(c.id);
  const profile = p
    ? h(
        'dl',
        { class: 'profile', id: 'profile' },
        h('dt', {}, 'Name'),
        h('dd', {}, `${p.first_name} ${p.last_name}`),
        h('dt', {}, 'Locale'),
        h('dd', {}, p.locale),
        h('dt', {}, 'Points'),
        h('dd', {}, String(p.points_balance)),
        h('dt', {}, 'Segments'),
        h('dd', {}, p.segments.length ? p.segments.join(', ') : '—'),
      )
    : h('p', { class: 'muted' }, 'No profile for this customer.');
  const filter = h(
    'select',
    {
      id: 'engagement-type',
      'aria-label': 'Engagement type',
      onchange: (e) => {
        workspace.type = e.target.value;
        loadWorkspace();
      },
    },
    h('option', { value: '' }, 'All types'),
    ENGAGEMENT_TYPES.map((t) => h('option', { value: t, selected: workspace.type === t }, t)),
  );
  const history = workspace.history;
  const available = workspace.available;
  el.workspace.replaceChildren(
    ...[
    h('h2', { class: 'small' }, 'Customer'),
    profile,
    h('h2', { class: 'small' }, 'Engagements'),
    filter,
    workspace.activityError ? h('p', { class: 'error' }, workspace.activityError) : null,
    h('h3', { class: 'small' }, 'Available now'),
    h(
      'ul',
      { id: 'available', class: 'cards' },
      available && available.items.length
        ? available.items.map((i) =>
            h(
              'li',
              { dataset: { engagement: i.id } },
              h('span', { class: 'tag' }, i.type),
              h('strong', {}, i.name),
              h('p', { class: 'muted' }, i.description),
              h('button', { type: 'button', class: 'send-engagement', onclick: () => sendEngagement(i) }, 'Send'),
            ),
          )
        : h('li', { class: 'muted' }, available ? 'Nothing this customer is entitled to.' : 'Loading…'),
    ),
    h('h3', { class: 'small' }, 'History'),
    h(
      'ul',
      { id: 'engagement-history', class: 'history' },
      history && history.events.length
        ? history.events.map((e) =>
            h(
              'li',
              { dataset: { type: e.type, action: e.action } },
              h('span', { class: 'tag' }, e.type),
              ` ${e.title} `,
              h('span', { class: 'muted' }, `${e.action}${e.points ? ` · ${e.points} pts` : ''} · ${new Date(e.at).toLocaleDateString()}`),
            ),
          )
        : h('li', { class: 'muted' }, history ? (history.no_history ? 'No engagement history.' : 'Nothing of this type.') : 'Loading…'),
    ),
    ].filter(Boolean),
  );
}

// ---------------------------------------------------------------- start

layout();
renderStatus();
renderHeader();
renderQueue();
conn.start();
// Waiting times move every second.
setInterval(() => {
  const now = Date.now();
  for (const span of el.queueList.querySelectorAll('.waiting')) span.textContent = `waiting ${duration(now - Number(span.dataset.since))}`;
}, 1000);
