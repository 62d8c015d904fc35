// ui.js: what the console and the demo client share besides the protocol client
// (chathub-client.js, built from clients/typescript): where to connect, a token's
// claims, and DOM helpers — elements, times, and attachments as the thread shows them.

import { attachmentLink, forgetAttachmentLink } from '/assets/chathub-client.js';

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
  forgetAttachmentLink(ev.attachment);
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

/**
 * Keeps `ev` in `events` (seq → event); an `edited`, `unsent` or `redacted` event is
 * folded into its message as the SDK's `applyEvent` does (only when newer than the
 * message's last amendment), so live, resumed and reloaded views agree.
 */
export function putAmended(events, ev) {
  events.set(ev.seq, ev);
  if (ev.event !== 'edited' && ev.event !== 'unsent' && ev.event !== 'redacted') return;
  const target = events.get(ev.target);
  if (!target || target.event !== 'message') return;
  const a = target.amended;
  if (a && (a.seq >= ev.seq || a.change !== 'edited')) return;
  if (ev.event === 'edited' && ev.text === undefined) return;
  target.content = ev.event === 'edited' ? { kind: 'text', text: ev.text } : { kind: 'removed' };
  target.amended = { change: ev.event, seq: ev.seq, at: ev.at, by: ev.by || ev.author, reason: ev.reason };
}
