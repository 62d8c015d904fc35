// chathub.js: a browser client for the chathub wire protocol (protocol/PROTOCOL.md),
// JSON subprotocol. It owns one WebSocket and everything needed to survive its loss:
// request/reply matching by `id`, reconnection with backoff, resuming every subscribed
// conversation from the last `seq` seen (no gap, no duplicate), catching up on the
// queue with `inbox`, and retrying sends with the same `client_msg_id`.
//
// Events it dispatches (CustomEvent, details in `detail`):
//   state     {state, attempt, code}   connecting | open | reconnecting | refused | closed
//   welcome   the welcome frame
//   resumed   {replayed, truncated: [conversation…], inboxTruncated}: reload the
//             truncated conversations (history trimmed, or the server lost its data)
//   event     an `event` frame, exactly once per (conversation, seq)
//   queue | typing | read | tenant | presence | ownership_lost   the pushed frames
//   protocol-error   an `err` frame without id
//
// Attachments: `uploadAttachment` (resumable upload of a File), `attachmentView` (a card
// as an element: thumbnail and lightbox, or a download link), `attachmentLink`,
// `noteVerdict` (a scanner's verdict: the file's view shows it from the next render).

/**
 * Close codes after which reconnecting at once would not help: those with
 * `reconnect: false` in protocol/vectors/close_codes.json (a test holds the two equal).
 */
export const FATAL_CLOSE_CODES = new Set([1000, 1002, 1007, 1008, 1009, 4101]);
/** Replies that take longer than this reject with code `timeout`. */
const REQUEST_TIMEOUT_MS = 15000;
/** Attempts of a send across reconnects before giving up. */
const SEND_ATTEMPTS = 5;

/** A failed request: `code` is the protocol's error code (or `disconnected`/`timeout`). */
export class ChathubError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
    this.frame = frame;
  }
}

/** Reads where the pages should connect (`/client-config.json`, served by the node). */
export async function loadClientConfig() {
  const res = await fetch('/client-config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`client config: HTTP ${res.status}`);
  return res.json();
}

/** The WebSocket URL for a client config: explicit, or this page's host with the WS port. */
export function wsUrlFor(config) {
  if (config.ws_url) return config.ws_url;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.hostname}:${config.ws_port}/`;
}

/** The claims of a token, read without verifying (the server verifies). */
export function tokenClaims(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(payload), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** Attempts of one upload across broken connections before giving up. */
const UPLOAD_ATTEMPTS = 6;
/** Codes after which an upload is tried again (resuming from what the server has). */
const UPLOAD_RETRY = new Set(['disconnected', 'timeout', 'unavailable', 'conflict', 'network', 'expired']);

/**
 * Uploads `file` (a File or Blob) for the message `clientMsgId` of `conversation` and
 * resolves with its stored card (PROTOCOL.md, "Attachments"). After a broken connection
 * it asks again with the same `client_msg_id` (the same attachment) and sends only the
 * bytes the server lacks. `onProgress(sentBytes, totalBytes)` follows the upload.
 */
export async function uploadAttachment(conn, { conversation, file, name, clientMsgId, onProgress }) {
  let lastError;
  /** Direct uploads: part number → the ETag S3 gave it, kept across attempts. */
  const sent = new Map();
  for (let attempt = 0; attempt < UPLOAD_ATTEMPTS; attempt++) {
    try {
      await conn.whenOpen();
      const up = await conn.request('attachment_upload', {
        conversation,
        name: name || file.name,
        size: file.size,
        content_type: file.type || undefined,
        client_msg_id: clientMsgId,
      });
      if (up.stored) {
        onProgress?.(file.size, file.size);
        return up.stored;
      }
      const answer = up.parts?.length ? await putParts(up, file, sent, onProgress) : await putFrom(up.upload_url, file, up.received, onProgress);
      if (answer.stored) return answer.stored;
      // 202: not all there (the connection broke mid-body): go on from `received`.
    } catch (e) {
      lastError = e;
      if (!UPLOAD_RETRY.has(e.code)) throw e;
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
    }
  }
  throw lastError;
}

/**
 * A direct upload (the server's store is S3): PUTs each part not yet `sent` to its
 * presigned URL, then POSTs the ETags to the node; resolves with the JSON answer.
 */
async function putParts(up, file, sent, onProgress) {
  const done = () => up.parts.filter((p) => sent.has(p.number)).reduce((n, p) => n + p.size, 0);
  for (const part of up.parts) {
    if (sent.has(part.number)) continue;
    const base = done();
    const etag = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', part.url);
      xhr.upload.onprogress = (e) => onProgress?.(base + e.loaded, file.size);
      xhr.onload = () => {
        const tag = xhr.getResponseHeader('ETag');
        if (xhr.status === 200 && tag) resolve(tag);
        else if (xhr.status === 200) reject(new ChathubError({ code: 'internal', message: "the bucket's CORS does not expose ETag" }));
        else reject(new ChathubError({ code: 'unavailable', message: `part ${part.number}: HTTP ${xhr.status}` }));
      };
      xhr.onerror = () => reject(new ChathubError({ code: 'network', message: 'the upload broke off' }));
      xhr.send(file.slice(part.offset, part.offset + part.size));
    });
    sent.set(part.number, etag);
  }
  const res = await fetch(up.complete_url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ parts: up.parts.map((p) => ({ number: p.number, etag: sent.get(p.number) })) }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status === 201 || res.status === 202) return body;
  if (res.status === 400) {
    // The parts did not make the file: the next attempt sends them all again.
    sent.clear();
    throw new ChathubError({ code: 'conflict', message: body.message || 'the parts were refused' });
  }
  throw new ChathubError({ code: body.code || 'unavailable', message: body.message || `HTTP ${res.status}` });
}

/** PUTs `file` from byte `from` on (a range when resuming); resolves with the JSON answer. */
function putFrom(url, file, from, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    if (from > 0) xhr.setRequestHeader('Content-Range', `bytes ${from}-${file.size - 1}/${file.size}`);
    xhr.upload.onprogress = (e) => onProgress?.(from + e.loaded, file.size);
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON: a proxy's error page.
      }
      if (xhr.status === 201 || xhr.status === 202) resolve(body);
      else reject(new ChathubError({ code: body.code || 'unavailable', message: body.message || `HTTP ${xhr.status}` }));
    };
    xhr.onerror = () => reject(new ChathubError({ code: 'network', message: 'the upload broke off' }));
    xhr.send(from > 0 ? file.slice(from) : file);
  });
}

/** attachment id → {reply, until}: links are reused while they have time left. */
const links = new Map();

/** Short-lived download links of an attachment (`attachment_link`), cached while valid. */
export async function attachmentLink(conn, conversation, id) {
  const hit = links.get(id);
  if (hit && hit.until > Date.now()) return hit.reply;
  const reply = await conn.request('attachment_link', { conversation, attachment: id });
  links.set(id, { reply, until: reply.expires_at - 30000 });
  return reply;
}

/** "820 B", "14.2 KB", "3.1 MB". */
export function humanSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} KB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Shows an image full size over the page; Escape or a click closes it. */
export function showLightbox(url, name) {
  const dialog = h(
    'dialog',
    { class: 'lightbox', 'aria-label': name, onclick: () => dialog.close(), onclose: () => dialog.remove() },
    h('img', { src: url, alt: name }),
    h('p', {}, name),
  );
  document.body.append(dialog);
  dialog.showModal();
}

/**
 * An attachment as the thread shows it: an image as its thumbnail (a click opens it
 * full size), any other file as a link that downloads it. Links are asked for when shown.
 */
export function attachmentView(conn, conversation, card) {
  // Pages re-render their message lists: the same element each time, so an image is
  // neither fetched nor laid out again.
  const key = `${conversation}/${card.id}`;
  const status = verdicts.get(card.id) || card.status || 'clean';
  const made = views.get(key);
  if (made && made.status === status) return made;
  const view = makeAttachmentView(conn, conversation, { ...card, status });
  views.set(key, view);
  if (views.size > 500) views.delete(views.keys().next().value);
  return view;
}

/** `conversation/attachment` → its element, the newest 500. */
const views = new Map();
/** attachment id → the latest verdict seen (`attachment_checked` events). */
const verdicts = new Map();

/**
 * Notes an `attachment_checked` event: views of that file show its new standing from
 * the next render on. Pages note every such event they hold (live or from history)
 * before rendering their messages.
 */
export function noteVerdict(ev) {
  if (verdicts.get(ev.attachment) === ev.status) return;
  verdicts.set(ev.attachment, ev.status);
  links.delete(ev.attachment);
}

function makeAttachmentView(conn, conversation, card) {
  const view = makeView(conn, conversation, card);
  view.status = card.status;
  return view;
}

function makeView(conn, conversation, card) {
  const size = humanSize(card.size);
  if (card.status === 'blocked') {
    return h(
      'div',
      { class: 'attachment blocked', dataset: { attachment: card.id, kind: 'blocked' } },
      h('span', { class: 'tag warn' }, 'blocked'),
      ' ',
      card.name,
      h('span', { class: 'muted' }, ' · removed by the virus scanner'),
    );
  }
  if (card.content_type.startsWith('image/')) {
    const img = h('img', { class: 'attachment-image', alt: card.name });
    if (card.width && card.height) img.style.aspectRatio = `${card.width} / ${card.height}`;
    attachmentLink(conn, conversation, card.id)
      .then((l) => {
        img.src = l.thumbnail_url || l.url;
      })
      .catch((e) => {
        img.alt = e.code === 'invalid_state' ? `${card.name} (being checked)` : `${card.name} (not available)`;
      });
    const open = async () => showLightbox((await attachmentLink(conn, conversation, card.id)).url, card.name);
    return h(
      'figure',
      { class: `attachment ${card.status}`, dataset: { attachment: card.id, kind: 'image', status: card.status } },
      h('button', { type: 'button', class: 'attachment-open', onclick: open, 'aria-label': `Open ${card.name}` }, img),
      h('figcaption', {}, card.name, ' · ', size, card.status === 'pending' ? ' · being checked' : ''),
    );
  }
  const extension = card.name.includes('.') ? card.name.split('.').pop().toUpperCase() : 'FILE';
  const link = h('a', { class: 'attachment-file', href: '#', download: card.name }, h('span', { class: 'tag' }, extension), ' ', card.name);
  // A fresh link at each click: one shown minutes ago may have expired.
  link.addEventListener('click', async (e) => {
    e.preventDefault();
    const l = await attachmentLink(conn, conversation, card.id);
    const a = h('a', { href: `${l.url}&download=1`, download: card.name });
    a.click();
  });
  attachmentLink(conn, conversation, card.id)
    .then((l) => {
      link.href = `${l.url}&download=1`;
    })
    .catch(() => {});
  return h(
    'div',
    { class: `attachment ${card.status}`, dataset: { attachment: card.id, kind: 'file', status: card.status } },
    link,
    h('span', { class: 'muted' }, ` · ${size}`),
    card.status === 'pending' ? h('span', { class: 'muted pending-note' }, ' · being checked') : null,
  );
}

/** A fresh client message id (idempotency key of a send). */
export function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, '').slice(0, 24);
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

/** Cursors of the inbox stream are `ms-n`; this orders them. */
function cursorAfter(a, b) {
  if (!b) return true;
  const [am, an] = a.split('-').map(Number);
  const [bm, bn] = b.split('-').map(Number);
  return am > bm || (am === bm && an > bn);
}

/** One signed-in connection to a chathub node, resilient to disconnects. */
export class Connection extends EventTarget {
  constructor(url, token) {
    super();
    this.url = url;
    this.token = token;
    this.state = 'idle';
    this.welcome = null;
    this.nextId = 1;
    this.pending = new Map();
    /** conversation → last seq delivered (null: live only, nothing seen yet). */
    this.subscriptions = new Map();
    /** Last inbox cursor seen (agents), to catch up on the queue after a reconnect. */
    this.inboxCursor = null;
    this.followInbox = false;
    /** The welcome's history_id under which the seqs above were seen. */
    this.historyId = '';
    this.attempt = 0;
    this.everOpened = false;
    this.stopped = false;
    this.ws = null;
    this.openWaiters = [];
  }

  /** Connects (and keeps reconnecting until `close`). */
  start() {
    this.stopped = false;
    this._open();
  }

  /** Closes for good. */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'bye');
    this._setState('closed', { code: 1000 });
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, attempt: this.attempt, ...extra });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _open() {
    const sep = this.url.includes('?') ? '&' : '?';
    const ws = new WebSocket(`${this.url}${sep}token=${encodeURIComponent(this.token)}`, 'chathub.v1.json');
    this.ws = ws;
    this._setState(this.everOpened ? 'reconnecting' : 'connecting');
    ws.onmessage = (m) => this._onFrame(m.data);
    ws.onclose = (ev) => this._onClose(ws, ev);
  }

  _onClose(ws, ev) {
    if (ws !== this.ws) return;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ChathubError({ code: 'disconnected', message: 'the connection was lost' }));
    }
    this.pending.clear();
    if (this.stopped) return;
    if (!this.everOpened) {
      // The handshake was refused (a browser cannot see the HTTP status: 401 for a bad
      // token, 403 for an origin, 429 for too many sockets).
      this.stopped = true;
      this._setState('refused', { code: ev.code });
      return;
    }
    if (FATAL_CLOSE_CODES.has(ev.code)) {
      this.stopped = true;
      this._setState('closed', { code: ev.code, reason: ev.reason });
      return;
    }
    this.attempt += 1;
    this._setState('reconnecting', { code: ev.code });
    // Exponential backoff with jitter so a node's clients do not all return at once.
    const delay = Math.min(5000, 250 * 2 ** Math.min(this.attempt - 1, 5)) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => this._open(), delay);
  }

  _onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'welcome': {
        const resuming = this.everOpened;
        this.welcome = frame;
        // Resuming checks the seqs against the history they were seen in; the new id is
        // adopted once every subscription is resumed.
        if (!resuming) this.historyId = frame.history_id || '';
        this.everOpened = true;
        this.attempt = 0;
        this._setState('open');
        this._emit('welcome', frame);
        for (const w of this.openWaiters.splice(0)) w();
        if (resuming) this._resume();
        break;
      }
      case 'ok':
      case 'err': {
        if (frame.id === undefined || frame.id === null) {
          this._emit('protocol-error', frame);
          break;
        }
        const p = this.pending.get(frame.id);
        if (!p) break;
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.type === 'ok') p.resolve(frame.result);
        else p.reject(new ChathubError(frame));
        break;
      }
      case 'event': {
        const last = this.subscriptions.get(frame.conversation);
        if (last === undefined) break; // unsubscribed meanwhile
        if (last !== null && frame.seq <= last) break; // already delivered
        this.subscriptions.set(frame.conversation, frame.seq);
        this._emit('event', frame);
        break;
      }
      case 'queue':
        if (frame.cursor && cursorAfter(frame.cursor, this.inboxCursor)) this.inboxCursor = frame.cursor;
        this._emit('queue', frame);
        break;
      default:
        this._emit(frame.type, frame);
    }
  }

  /** Resolves when the connection is open (at once if it is). */
  whenOpen(timeoutMs = 20000) {
    if (this.state === 'open') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ChathubError({ code: 'timeout', message: 'not connected' })), timeoutMs);
      this.openWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Sends one request; resolves with its `result`, rejects with a ChathubError. */
  request(op, fields = {}) {
    if (this.state !== 'open' || !this.ws) {
      return Promise.reject(new ChathubError({ code: 'disconnected', message: 'not connected' }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ChathubError({ code: 'timeout', message: `no reply to ${op}` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, op, ...fields }));
    });
  }

  /**
   * Sends a message, retrying across reconnects with the same `client_msg_id` (the server
   * records it once and answers every retry with the same `ok`). Other errors (conflict,
   * chat_disabled…) are thrown at once.
   */
  async send(fields) {
    const body = { client_msg_id: newClientMsgId(), ...fields };
    let lastError;
    for (let attempt = 0; attempt < SEND_ATTEMPTS; attempt++) {
      try {
        await this.whenOpen();
        return await this.request('send', body);
      } catch (e) {
        lastError = e;
        if (!['disconnected', 'timeout', 'unavailable'].includes(e.code)) throw e;
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
    throw lastError;
  }

  /**
   * Subscribes to a conversation. With `since`, events after it are replayed first. The
   * connection remembers the last seq and resumes from it after any reconnect.
   */
  async subscribe(conversation, since = null) {
    this.subscriptions.set(conversation, since);
    const fields = { conversation };
    if (since !== null) {
      fields.since = since;
      if (this.historyId) fields.history_id = this.historyId;
    }
    const result = await this.request('subscribe', fields);
    const last = this.subscriptions.get(conversation);
    if (last === undefined || last === null || result.seq > last) this.subscriptions.set(conversation, result.seq);
    return result;
  }

  /** Stops following a conversation. */
  async unsubscribe(conversation) {
    this.subscriptions.delete(conversation);
    if (this.state === 'open') await this.request('unsubscribe', { conversation }).catch(() => {});
  }

  /** Agents: start following the queue's change stream; returns the current cursor. */
  async followQueue() {
    this.followInbox = true;
    const result = await this.request('inbox', {});
    if (result.cursor && cursorAfter(result.cursor, this.inboxCursor)) this.inboxCursor = result.cursor;
    return result;
  }

  async _resume() {
    let replayed = 0;
    const truncated = [];
    let inboxTruncated = false;
    try {
      for (const [conversation, last] of [...this.subscriptions]) {
        const r = await this.subscribe(conversation, last);
        replayed += r.replayed || 0;
        // history_lost implies history_truncated: either way, reload that conversation.
        if (r.history_truncated || r.history_lost) truncated.push(conversation);
      }
      this.historyId = this.welcome.history_id || '';
      if (this.followInbox) {
        const fields = this.inboxCursor ? { since: this.inboxCursor } : {};
        const r = await this.request('inbox', fields);
        replayed += r.replayed || 0;
        inboxTruncated = !!r.history_truncated;
      }
    } catch (e) {
      // The connection dropped again mid-resume: the next welcome resumes again.
      if (e.code === 'disconnected') return;
    }
    this._emit('resumed', { replayed, truncated, inboxTruncated });
  }
}

/** Formats ms since the epoch as a short local time. */
export function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** "3 min", "42 s", "2 h 5 min". */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Creates an element: h('div', {class: 'x', onclick: f}, 'text', child…). Text is never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
