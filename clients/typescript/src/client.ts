import { type Codec, type CodecName, codecOf } from './codec.js';
import { ChathubError } from './errors.js';
import {
  FATAL_CLOSE_CODES,
  type EventFrame,
  type Op,
  type PushedFrame,
  type QueueFrame,
  type Replies,
  type Requests,
  type ServerFrame,
  type WelcomeFrame,
} from './protocol.js';

/** The part of the WebSocket API the client uses (browsers, Node.js 22+, React Native, `ws`). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `ws`'s on Node.js 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Where a client is: it starts `idle`, and ends `refused` or `closed`. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'refused' | 'closed';

/** How a {@link ChathubClient} connects and behaves. */
export interface ClientOptions {
  /** The node's WebSocket URL, or several (a reconnect tries the next one). */
  url: string | readonly string[];
  /** The token, or a function asked before every connection (to refresh it). */
  token: string | (() => string | Promise<string>);
  /** `json` (the default) or `msgpack`. */
  codec?: CodecName;
  /** The WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** A request without a reply this long rejects with `timeout` (default 15 s). */
  requestTimeoutMs?: number;
  /** First reconnect delay (default 250 ms); doubles per attempt, with jitter. */
  reconnectDelayMs?: number;
  /** Longest reconnect delay (default 5 s). */
  maxReconnectDelayMs?: number;
  /** Sends waiting (offline or unacknowledged) at most (default 1,000); more reject with `queue_full`. */
  maxQueuedSends?: number;
  /** Attempts of one send on open connections before it rejects (default 8); waiting offline does not count. */
  maxSendAttempts?: number;
  /** Frames an {@link ChathubClient.frames} iterator holds before it fails with `overflow` (default 10,000). */
  iteratorBuffer?: number;
}

/** The `resumed` notice after a reconnect: what was replayed, and what to reload. */
export interface Resumed {
  /** Events and queue changes replayed. */
  replayed: number;
  /** Conversations whose history could not be replayed whole: reload them (`history`). */
  truncated: string[];
  /** The queue's changes could not be replayed whole: reload it (`list`). */
  inboxTruncated: boolean;
}

/** A change of {@link ConnectionState}. */
export interface StateChange {
  state: ConnectionState;
  /** Reconnect attempt (0 once open). */
  attempt: number;
  /** The close code that caused it. */
  code?: number;
  /** The close reason. */
  reason?: string;
}

/** What each notice carries, by name: the pushed frames, and the client's own notices. */
export interface ClientEvents {
  state: StateChange;
  welcome: WelcomeFrame;
  resumed: Resumed;
  event: EventFrame;
  queue: QueueFrame;
  typing: Extract<PushedFrame, { type: 'typing' }>;
  read: Extract<PushedFrame, { type: 'read' }>;
  ownership_lost: Extract<PushedFrame, { type: 'ownership_lost' }>;
  assigned: Extract<PushedFrame, { type: 'assigned' }>;
  /** Agents: another agent's private note mentions you. */
  mention: Extract<PushedFrame, { type: 'mention' }>;
  alert: Extract<PushedFrame, { type: 'alert' }>;
  queue_position: Extract<PushedFrame, { type: 'queue_position' }>;
  hours: Extract<PushedFrame, { type: 'hours' }>;
  /** The conversation was erased: it is no longer followed; drop what you hold of it. */
  erased: Extract<PushedFrame, { type: 'erased' }>;
  tenant: Extract<PushedFrame, { type: 'tenant' }>;
  presence: Extract<PushedFrame, { type: 'presence' }>;
  /** An `err` frame without id: the server could not read something the client sent. */
  'protocol-error': Extract<ServerFrame, { type: 'err' }>;
}

/** A notice's name. */
export type ClientEventName = keyof ClientEvents;

type Pending = {
  resolve: (value: never) => void;
  reject: (error: ChathubError) => void;
  timer: ReturnType<typeof setTimeout>;
};

type QueuedSend = {
  body: Requests['send'] & { client_msg_id: string };
  resolve: (ack: Replies['send']) => void;
  reject: (error: ChathubError) => void;
  attempts: number;
};

/** A fresh client message id (the idempotency key of a send). */
export function newClientMsgId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID().replace(/-/g, '').slice(0, 24);
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}

/** Whether inbox cursor `a` (`ms-n`) comes after `b`. */
function cursorAfter(a: string, b: string | null): boolean {
  if (!b) return true;
  const [am, an] = a.split('-').map(Number);
  const [bm, bn] = b.split('-').map(Number);
  return am > bm || (am === bm && an > bn);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One signed-in connection to chathub that survives losing its socket: requests matched
 * to replies by `id` with timeouts, reconnection with backoff and jitter that honours the
 * close-code table, resume of every followed conversation from its last `seq` (no gap,
 * no duplicate: each event is delivered once) and of the queue from its inbox cursor,
 * and sends queued while offline and retried with their `client_msg_id` until the server
 * acknowledges them (it records each once).
 *
 * Notices arrive as callbacks ({@link ChathubClient.on}) or as an async iterator
 * ({@link ChathubClient.frames}).
 */
export class ChathubClient {
  /** Where the connection is. */
  state: ConnectionState = 'idle';
  /** The latest `welcome` (who you are, the limits), once connected. */
  welcome: WelcomeFrame | null = null;

  private readonly urls: readonly string[];
  private urlIndex = 0;
  private readonly options: Required<Omit<ClientOptions, 'url' | 'token' | 'codec' | 'WebSocket'>>;
  private readonly codec: Codec;
  private readonly WebSocketImpl: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** conversation → the last seq delivered (`null`: live only, nothing seen yet). */
  private readonly followed = new Map<string, number | null>();
  private inboxCursor: string | null = null;
  private followInbox = false;
  /** The welcome's history_id under which the seqs above were seen. */
  private historyId = '';
  private attempt = 0;
  private everOpened = false;
  private stopped = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private openWaiters: { resolve: () => void; reject: (e: ChathubError) => void }[] = [];
  private readonly listeners = new Map<string, Set<(detail: never) => void>>();
  private readonly sendQueue: QueuedSend[] = [];
  private pumping = false;

  /** A client; it connects on {@link ChathubClient.start}. */
  constructor(options: ClientOptions) {
    this.urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new TypeError('chathub: give at least one url');
    this.tokenSource = options.token;
    this.codec = codecOf(options.codec ?? 'json');
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) throw new TypeError('chathub: no WebSocket here; pass `WebSocket` (e.g. from the `ws` package)');
    this.WebSocketImpl = impl;
    this.options = {
      requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
      reconnectDelayMs: options.reconnectDelayMs ?? 250,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 5_000,
      maxQueuedSends: options.maxQueuedSends ?? 1_000,
      maxSendAttempts: options.maxSendAttempts ?? 8,
      iteratorBuffer: options.iteratorBuffer ?? 10_000,
    };
  }

  private readonly tokenSource: ClientOptions['token'];

  /** Connects, and keeps reconnecting until {@link ChathubClient.close}. */
  start(): this {
    this.stopped = false;
    void this.open();
    return this;
  }

  /** Closes for good: pending requests and queued sends reject with `closed`. */
  close(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const closed = () => new ChathubError('closed', 'the client was closed');
    for (const w of this.openWaiters.splice(0)) w.reject(closed());
    for (const s of this.sendQueue.splice(0)) s.reject(closed());
    this.failPending(closed);
    if (this.ws) this.ws.close(1000, 'bye');
    this.setState('closed', { code: 1000 });
  }

  /** Calls `listener` with each notice named `type`; returns a function that stops it. */
  on<K extends ClientEventName>(type: K, listener: (detail: ClientEvents[K]) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as (detail: never) => void);
    return () => set.delete(listener as (detail: never) => void);
  }

  /**
   * The DOM's `EventTarget` shape of {@link ChathubClient.on}: `listener` gets
   * `{type, detail}` (pages written for `CustomEvent`s keep working).
   */
  addEventListener<K extends ClientEventName>(
    type: K,
    listener: (event: { type: K; detail: ClientEvents[K] }) => void,
  ): void {
    const wrapped = (detail: ClientEvents[K]) => listener({ type, detail });
    (listener as { __chathub?: unknown }).__chathub = this.on(type, wrapped);
  }

  /** Stops a listener given to {@link ChathubClient.addEventListener}. */
  removeEventListener(_type: ClientEventName, listener: unknown): void {
    const stop = (listener as { __chathub?: () => void }).__chathub;
    if (typeof stop === 'function') stop();
  }

  /**
   * Every pushed frame (events, queue changes, typing, reads, ownership and tenant
   * notices), in order, as an async iterator; `return()` (a `break`) stops it. It holds
   * at most `iteratorBuffer` frames not yet read, then fails with `overflow`.
   */
  frames(): AsyncIterableIterator<PushedFrame> {
    const buffer: PushedFrame[] = [];
    let waiting: ((r: IteratorResult<PushedFrame>) => void) | null = null;
    let failed: ChathubError | null = null;
    let fail: ((e: ChathubError) => void) | null = null;
    let done = false;
    const types = ['event', 'queue', 'typing', 'read', 'ownership_lost', 'assigned', 'mention', 'alert', 'queue_position', 'hours', 'erased', 'tenant', 'presence'] as const;
    const stops = types.map((t) =>
      this.on(t, (frame) => {
        if (done) return;
        if (waiting) {
          const w = waiting;
          waiting = null;
          fail = null;
          w({ value: frame as PushedFrame, done: false });
        } else if (buffer.length >= this.options.iteratorBuffer) {
          failed = new ChathubError('overflow', `more than ${this.options.iteratorBuffer} frames not read`);
          finish();
        } else {
          buffer.push(frame as PushedFrame);
        }
      }),
    );
    const stopClosed = this.on('state', ({ state }) => {
      if (state === 'closed' || state === 'refused') finish();
    });
    const finish = () => {
      if (done) return;
      done = true;
      for (const s of stops) s();
      stopClosed();
      if (fail && failed) fail(failed);
      else if (waiting) waiting({ value: undefined, done: true });
      waiting = null;
      fail = null;
    };
    const iterator: AsyncIterableIterator<PushedFrame> = {
      next: () => {
        const value = buffer.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (failed) return Promise.reject(failed);
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiting = resolve;
          fail = reject;
        });
      },
      return: () => {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Resolves when the connection is open (at once if it is); rejects after `timeoutMs`. */
  whenOpen(timeoutMs = 20_000): Promise<void> {
    if (this.state === 'open') return Promise.resolve();
    if (this.stopped) return Promise.reject(new ChathubError('closed', 'the client is not running'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: ChathubError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.openWaiters = this.openWaiters.filter((w) => w !== waiter);
        reject(new ChathubError('timeout', 'not connected'));
      }, timeoutMs);
      this.openWaiters.push(waiter);
    });
  }

  /**
   * Sends one request and resolves with its result; rejects with a {@link ChathubError}
   * (`disconnected` at once when not connected: use {@link ChathubClient.send} for
   * messages, which waits and retries).
   */
  request<K extends Op>(op: K, fields: Requests[K]): Promise<Replies[K]> {
    const ws = this.ws;
    if (this.state !== 'open' || !ws) {
      return Promise.reject(new ChathubError('disconnected', 'not connected'));
    }
    const id = this.nextId++;
    return new Promise<Replies[K]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ChathubError('timeout', `no reply to ${op} in ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, timer });
      try {
        ws.send(this.codec.encode({ id, op, ...fields }));
      } catch {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new ChathubError('disconnected', 'the connection was lost'));
      }
    });
  }

  /**
   * Sends a message. It waits while offline, goes out in the order sends were made, and
   * is retried across reconnects with the same `client_msg_id` (given, or made here)
   * until the server acknowledges it; the server records it once and answers every retry
   * with the same acknowledgement. Refusals (`conflict`, `chat_disabled`, …) reject at once.
   */
  send(fields: Requests['send']): Promise<Replies['send']> {
    if (this.stopped && this.state !== 'idle') {
      return Promise.reject(new ChathubError('closed', 'the client was closed'));
    }
    if (this.sendQueue.length >= this.options.maxQueuedSends) {
      return Promise.reject(new ChathubError('queue_full', `${this.sendQueue.length} sends are waiting already`));
    }
    const body = { ...fields, client_msg_id: fields.client_msg_id ?? newClientMsgId() };
    return new Promise((resolve, reject) => {
      this.sendQueue.push({ body, resolve, reject, attempts: 0 });
      void this.pumpSends();
    });
  }

  /** Sends queued: one at a time (their order is the conversation's), while open. */
  private async pumpSends(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.sendQueue.length > 0 && !this.stopped) {
        if (this.state !== 'open') {
          try {
            await this.whenOpen(60_000);
          } catch {
            continue; // still offline: keep waiting (close() rejects what is queued)
          }
        }
        const head = this.sendQueue[0];
        try {
          const ack = await this.request('send', head.body);
          this.sendQueue.shift();
          head.resolve(ack);
        } catch (e) {
          const error = e as ChathubError;
          if (error.code === 'disconnected') continue; // wait for the next connection
          head.attempts += 1;
          if (!error.retryable || head.attempts >= this.options.maxSendAttempts) {
            this.sendQueue.shift();
            head.reject(error);
          } else {
            await sleep(Math.min(5_000, 200 * 2 ** (head.attempts - 1)));
          }
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Follows a conversation: its events arrive as `event` notices, each once. With
   * `since`, the events after it are replayed first. After any reconnect the client
   * resumes from the last `seq` it delivered.
   */
  async subscribe(conversation: string, since: number | null = null): Promise<Replies['subscribe']> {
    this.followed.set(conversation, since);
    const fields: Requests['subscribe'] = { conversation };
    if (since !== null) {
      fields.since = since;
      if (this.historyId) fields.history_id = this.historyId;
    }
    const result = await this.request('subscribe', fields);
    const last = this.followed.get(conversation);
    if (last === undefined || last === null || result.seq > last) this.followed.set(conversation, result.seq);
    return result;
  }

  /** Stops following a conversation. */
  async unsubscribe(conversation: string): Promise<void> {
    this.followed.delete(conversation);
    if (this.state === 'open') await this.request('unsubscribe', { conversation }).catch(() => undefined);
  }

  /** The last `seq` delivered of a followed conversation (`undefined`: not followed). */
  lastSeq(conversation: string): number | null | undefined {
    return this.followed.get(conversation);
  }

  /** Agents: follow the queue's changes (`queue` notices), resumed by cursor after reconnects. */
  async followQueue(): Promise<Replies['inbox']> {
    this.followInbox = true;
    const result = await this.request('inbox', {});
    if (result.cursor && cursorAfter(result.cursor, this.inboxCursor)) this.inboxCursor = result.cursor;
    return result;
  }

  private emit<K extends ClientEventName>(type: K, detail: ClientEvents[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (d: ClientEvents[K]) => void)(detail);
      } catch (e) {
        // A listener's bug must not break the connection's bookkeeping.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setState(state: ConnectionState, extra: Partial<StateChange> = {}): void {
    this.state = state;
    this.emit('state', { state, attempt: this.attempt, ...extra });
  }

  private failPending(error: () => ChathubError): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(error());
    }
    this.pending.clear();
  }

  private async open(): Promise<void> {
    let token: string;
    try {
      token = typeof this.tokenSource === 'function' ? await this.tokenSource() : this.tokenSource;
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    if (this.stopped) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    const sep = url.includes('?') ? '&' : '?';
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketImpl(`${url}${sep}token=${encodeURIComponent(token)}`, this.codec.subprotocol);
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.setState(this.everOpened ? 'reconnecting' : 'connecting');
    ws.onmessage = (m) => this.onMessage(m.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
    ws.onerror = () => undefined; // the close that follows says what happened
  }

  private onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.failPending(() => new ChathubError('disconnected', 'the connection was lost'));
    if (this.stopped) return;
    const refreshable = typeof this.tokenSource === 'function';
    if (!this.everOpened && !refreshable && this.attempt + 1 >= this.urls.length) {
      // Every node refused the handshake (a browser cannot see the HTTP status: 401 for
      // a bad token, 403 for an origin, 429 for too many sockets).
      this.stopped = true;
      this.setState('refused', { code });
      this.rejectWaiters('refused');
      return;
    }
    // A token that expired or was revoked is fatal, unless the client can get another.
    if (FATAL_CLOSE_CODES.has(code) && !(refreshable && code === 1008)) {
      this.stopped = true;
      this.setState('closed', { code, reason });
      this.rejectWaiters('closed');
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  private rejectWaiters(why: string): void {
    const error = () => new ChathubError('closed', `the connection was ${why}`);
    for (const w of this.openWaiters.splice(0)) w.reject(error());
    for (const s of this.sendQueue.splice(0)) s.reject(error());
  }

  private scheduleReconnect(code: number | undefined, reason?: string): void {
    this.attempt += 1;
    this.urlIndex += 1;
    this.setState('reconnecting', { code, reason });
    // Exponential backoff with jitter, so a node's clients do not all return at once.
    const base = Math.min(this.options.maxReconnectDelayMs, this.options.reconnectDelayMs * 2 ** Math.min(this.attempt - 1, 8));
    const delay = base * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  private onMessage(data: unknown): void {
    const frame = this.codec.decode(data);
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'welcome': {
        const resuming = this.everOpened;
        this.welcome = frame;
        // Resuming checks the seqs against the history they were seen in; the new id is
        // adopted once every subscription is resumed.
        if (!resuming) this.historyId = frame.history_id ?? '';
        this.everOpened = true;
        this.attempt = 0;
        this.setState('open');
        this.emit('welcome', frame);
        for (const w of this.openWaiters.splice(0)) w.resolve();
        if (resuming) void this.resume();
        break;
      }
      case 'ok':
      case 'err': {
        if (frame.id === undefined || frame.id === null) {
          if (frame.type === 'err') this.emit('protocol-error', frame);
          break;
        }
        const p = this.pending.get(frame.id);
        if (!p) break;
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.type === 'ok') {
          const { op: _op, ...result } = frame.result;
          p.resolve(result as never);
        } else {
          p.reject(ChathubError.fromFrame(frame));
        }
        break;
      }
      case 'event': {
        const last = this.followed.get(frame.conversation);
        if (last === undefined) break; // not followed (any more)
        if (last !== null && frame.seq <= last) break; // delivered already
        this.followed.set(frame.conversation, frame.seq);
        this.emit('event', frame);
        break;
      }
      case 'erased':
        // Nothing of it is left to resume (an end user's device is closed with 4102
        // next, which stops the client and fails its queued sends).
        this.followed.delete(frame.conversation);
        this.emit('erased', frame);
        break;
      case 'queue':
        if (frame.cursor && cursorAfter(frame.cursor, this.inboxCursor)) this.inboxCursor = frame.cursor;
        this.emit('queue', frame);
        break;
      default:
        this.emit(frame.type, frame as never);
    }
  }

  private async resume(): Promise<void> {
    let replayed = 0;
    const truncated: string[] = [];
    let inboxTruncated = false;
    try {
      for (const [conversation, last] of [...this.followed]) {
        const r = await this.subscribe(conversation, last);
        replayed += r.replayed || 0;
        // history_lost implies history_truncated: either way, reload that conversation.
        if (r.history_truncated || r.history_lost) truncated.push(conversation);
      }
      this.historyId = this.welcome?.history_id ?? '';
      if (this.followInbox) {
        const r = await this.request('inbox', this.inboxCursor ? { since: this.inboxCursor } : {});
        replayed += r.replayed || 0;
        inboxTruncated = !!r.history_truncated;
        if (r.cursor && cursorAfter(r.cursor, this.inboxCursor)) this.inboxCursor = r.cursor;
      }
    } catch (e) {
      // The connection dropped again mid-resume: the next welcome resumes again.
      if ((e as ChathubError).code === 'disconnected') return;
    }
    this.emit('resumed', { replayed, truncated, inboxTruncated });
  }
}
