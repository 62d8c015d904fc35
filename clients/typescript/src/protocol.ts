/**
 * The chathub wire protocol's types (protocol/PROTOCOL.md): every request, reply and
 * pushed frame. They are checked against `protocol/vectors/vectors.json` on every test
 * run (each vector must type-check as a {@link ClientRequest} or {@link ServerFrame},
 * and {@link OPS} must name every operation the vectors use), so they cannot drift from
 * the server's own types, which are checked against the same vectors.
 *
 * @module
 */

/** Where a conversation is in its cycle. */
export type Status = 'new' | 'unanswered' | 'active' | 'finished';
/** What kind of participant a connection is. */
export type Role = 'end_user' | 'agent' | 'admin' | 'bot';
/** An agent's availability. */
export type Presence = 'available' | 'away' | 'offline';
/** A privilege of a token (agents and admins). */
export type Privilege =
  | 'chat.take'
  | 'chat.finish'
  | 'chat.disable'
  | 'engagement.send'
  | 'canned.manage'
  | 'engagement.manage'
  | 'data.export'
  | 'data.erase'
  | 'chat.supervise';
/** The kind of an engagement. */
export type EngagementType = 'coupon' | 'points' | 'message' | 'chatbot' | 'promo';
/** What happened in an engagement history event. */
export type HistoryAction = 'received' | 'redeemed' | 'earned' | 'interacted' | 'viewed';
/** Why a `status` event happened. */
export type Cause =
  | 'opened'
  | 'reopened'
  | 'taken'
  | 'taken_over'
  | 'transferred'
  | 'finished'
  | 'disabled'
  | 'enabled'
  | 'released'
  | 'handed_off';
/** An attachment's standing with the scanner. */
export type AttachmentStatus = 'clean' | 'pending' | 'blocked';

/** Why a request failed: a closed list (match on it). */
export type ErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'conflict'
  | 'chat_disabled'
  | 'not_found'
  | 'bad_request'
  | 'unknown_op'
  | 'too_large'
  | 'rate_limited'
  | 'invalid_state'
  | 'unavailable'
  | 'internal'
  | 'not_entitled'
  | 'expired'
  | 'already_redeemed'
  | 'out_of_stock'
  | 'unsupported_type'
  | 'blocked';

/** Who wrote a message or caused a change. */
export interface Author {
  /** The author's role. */
  role: Role;
  /** An end user id or an agent id. */
  id: string;
}

/** The state of one conversation. */
export interface ConversationState {
  /** Where it is in its cycle. */
  status: Status;
  /** The owning agent, present exactly when `status` is `active`. */
  owner: string | null;
  /** Ownership epoch (fencing token): send it back with an agent's `send` and `finish`. */
  epoch: number;
  /** `seq` of the last event. */
  seq: number;
  /** Whether two-way chat is disabled. */
  disabled: boolean;
  /** The `seq` of the satisfaction survey open for the end user to answer (absent: none). */
  survey?: number;
}

/** An engagement as sent in the thread. */
export interface EngagementCard {
  /** Catalogue item id. */
  id: string;
  /** Its type. */
  type: EngagementType;
  /** Title. */
  name: string;
  /** Description. */
  description?: string;
}

/** A file as shown in the thread (links come from `attachment_link`). */
export interface AttachmentCard {
  /** The attachment's id. */
  id: string;
  /** File name. */
  name: string;
  /** The sniffed MIME type. */
  content_type: string;
  /** Stored size in bytes. */
  size: number;
  /** Images: width in pixels. */
  width?: number;
  /** Images: height in pixels. */
  height?: number;
  /** Whether a thumbnail exists. */
  thumbnail?: boolean;
  /** Absent: clean. */
  status?: AttachmentStatus;
}

/** What a message carries. */
export type MessageContent =
  | { kind: 'text'; text: string }
  | { kind: 'engagement'; engagement: EngagementCard }
  | { kind: 'attachment'; attachment: AttachmentCard }
  /** What is left of a message unsent or redacted (its `amended` says who and when). */
  | { kind: 'removed' };

/** A message's latest edit or its removal, as history shows the message. */
export interface Amended {
  change: 'edited' | 'unsent' | 'redacted';
  /** The amendment's own `seq`: apply a later amendment only when its `seq` is greater. */
  seq: number;
  at: number;
  by: Author;
  /** A redaction's reason. */
  reason?: string;
}

/** One named fact a bot's handoff carries for the agent who takes over (an order number, …). */
export interface HandoffField {
  name: string;
  value: string;
}

/** The body of a conversation event, tagged by `event`. */
export type EventBody =
  | {
      event: 'message';
      author: Author;
      client_msg_id?: string;
      content: MessageContent;
    }
  | {
      event: 'status';
      status: Status;
      owner: string | null;
      epoch: number;
      disabled: boolean;
      cause: Cause;
      previous_owner?: string;
      /** Why it was released (cause `released`). */
      reason?: ReleaseReason;
      by: Author;
    }
  | { event: 'attachment_checked'; attachment: string; status: AttachmentStatus }
  /** An agent's private note: agents only, never sent to an end user. */
  | { event: 'note'; author: Author; client_msg_id?: string; text: string; mentions?: string[] }
  /** The author edited message `target`; `text` is absent once it was removed since. */
  | { event: 'edited'; target: number; author: Author; text?: string }
  /** The author took message `target` back. */
  | { event: 'unsent'; target: number; author: Author }
  /** An admin removed message `target` for good. */
  | { event: 'redacted'; target: number; by: Author; reason: string }
  /** The satisfaction survey a finish asks the end user (answer with `survey_answer`). */
  | { event: 'survey'; prompt: string }
  /** Outside the tenant's business hours: when the team is back (`back_at`, ms). */
  | { event: 'auto_reply'; text: string; back_at?: number }
  /** The tenant's bot handed the conversation to the team: agents only, never sent to an end user. */
  | { event: 'handoff'; author: Author; summary: string; fields?: HandoffField[] }
  /** The end user's answer to the survey `survey`, with the reward it granted. */
  | {
      event: 'survey_answered';
      survey: number;
      author: Author;
      /** 1 (worst) to 5 (best). */
      rating: number;
      comment?: string;
      reward?: EngagementCard;
    };

/** One event of a conversation: its position, its time and what happened. */
export type ConversationEvent = {
  /**
   * Position in the conversation, from 1: consecutive for agents; for an end user
   * increasing, with the `seq`s of agents' private notes left out (not a gap).
   */
  seq: number;
  /** When, ms since the Unix epoch. */
  at: number;
  /** A message's latest amendment, as history shows it (absent while unchanged). */
  amended?: Amended;
} & EventBody;

/** Acknowledgement of an `edit`, `unsend` or `redact`. */
export interface AmendAck {
  conversation: string;
  /** The message amended. */
  target: number;
  /** The amendment's `seq`. */
  seq: number;
}

/**
 * Applies `event` to a conversation's events as shown (in `seq` order): appends it, and
 * folds an `edited`, `unsent` or `redacted` event into its message — only when the
 * amendment's `seq` is above the message's `amended.seq`, so a live client, one that
 * resumed and one that read history converge on the same view. Returns the list.
 */
export function applyEvent(view: ConversationEvent[], event: ConversationEvent): ConversationEvent[] {
  if (view.some((e) => e.seq === event.seq)) return view;
  if (event.event === 'edited' || event.event === 'unsent' || event.event === 'redacted') {
    const removes = event.event !== 'edited';
    for (const e of view) {
      if (e.seq === event.target && e.event === 'message') {
        const a = e.amended;
        if (a && (a.seq >= event.seq || a.change !== 'edited')) continue;
        if (event.event === 'edited' && event.text === undefined) continue;
        e.content = event.event === 'edited' ? { kind: 'text', text: event.text as string } : { kind: 'removed' };
        e.amended = {
          change: event.event,
          seq: event.seq,
          at: event.at,
          by: event.event === 'redacted' ? event.by : event.author,
          ...(event.event === 'redacted' ? { reason: event.reason } : {}),
        };
      } else if (removes && e.event === 'edited' && e.target === event.target) {
        delete e.text;
      }
    }
  }
  view.push(event);
  return view;
}

/** Limits announced in `welcome`. */
export interface Limits {
  max_message_bytes: number;
  max_text_bytes: number;
  max_page: number;
  ping_interval_ms: number;
  ping_timeout_ms: number;
  rate_per_sec?: number;
  rate_burst?: number;
}

/** The first frame of every connection. */
export interface WelcomeFrame {
  type: 'welcome';
  session: string;
  tenant: string;
  role: Role;
  subject: string;
  privileges: Privilege[];
  limits: Limits;
  chat_disabled?: boolean;
  /** Send back with `subscribe` `since`: it changes only when the server lost its data. */
  history_id?: string;
  /** With the tenant's business hours: open now or not, and until when. */
  hours?: HoursState;
  /** Agents: the tenant's bot, the first responder while it is connected ("with bot"). */
  bot?: string;
}

/** A failure reply (or, without `id`, a frame the server could not read). */
export interface ErrFrame {
  type: 'err';
  id?: number;
  code: ErrorCode;
  message: string;
  /** With `conflict`: who owns the conversation now. */
  owner?: string;
  /** With `conflict`: the current epoch. */
  epoch?: number;
  /** With `not_entitled`: why. */
  reason?: string;
}

/** A conversation event as pushed (and replayed). */
export type EventFrame = { type: 'event'; conversation: string } & ConversationEvent;

/** One conversation's entry in the tenant's queue. */
export interface QueueItem {
  conversation: string;
  status: Status;
  owner: string | null;
  epoch: number;
  seq: number;
  disabled: boolean;
  since: number;
  updated: number;
  preview?: string;
  waiting_ms?: number;
  owner_absent?: boolean;
  /** Pushed frames: the position in the tenant's inbox stream (pass to `inbox`). */
  cursor?: string;
}

/** Agents: a conversation of the tenant changed. */
export type QueueFrame = { type: 'queue' } & QueueItem;
/** Someone started or stopped typing. */
export interface TypingFrame {
  type: 'typing';
  conversation: string;
  from: Author;
  typing: boolean;
}
/** Someone has seen the conversation up to `seq`. */
export interface ReadFrame {
  type: 'read';
  conversation: string;
  by: Author;
  seq: number;
}
/** Why a conversation was released back to the queue. */
export type ReleaseReason = 'owner_absent' | 'no_reply' | 'admin';
/** To every device of an agent: its conversation was taken over, transferred or released. */
export interface OwnershipLostFrame {
  type: 'ownership_lost';
  conversation: string;
  /** Who owns it now (absent after a release). */
  by?: string;
  epoch: number;
  seq: number;
  /** Why it was released (after a release only). */
  reason?: ReleaseReason;
}
/** To every device of an agent: a conversation was transferred to them. */
export interface AssignedFrame {
  type: 'assigned';
  conversation: string;
  /** Who handed it over. */
  by: Author;
  /** The epoch of the transfer: send it with your messages. */
  epoch: number;
  seq: number;
  /** Their note, if any (not recorded in the conversation). */
  note?: string;
}
/** To every device of an agent: another agent's private note mentions them (`@id`). */
/** How pressing an `alert` is. */
export type AlertLevel = 'reminder' | 'escalation' | 'breach';

/**
 * To every device of an agent: a conversation has been waiting unanswered past a step of
 * the tenant's alert schedule. Drop one whose `seq` is older than what you know of the
 * conversation once it left the queue (taken since).
 */
export interface AlertFrame {
  type: 'alert';
  conversation: string;
  /** Its epoch while it waits (send a take with it). */
  epoch: number;
  /** Its `seq` when the alert was decided. */
  seq: number;
  /** When it entered the unanswered queue (ms). */
  since: number;
  /** The step of the schedule (0 the first). */
  step: number;
  /** The occurrence of the step (0 the first; repeats count up). */
  occurrence: number;
  level: AlertLevel;
  /** The latest message's preview. */
  preview?: string;
}

/** To a waiting end user: their place in the queue (1: next) and the estimated wait. */
export interface QueuePositionFrame {
  type: 'queue_position';
  conversation: string;
  position: number;
  /** How many wait. */
  waiting: number;
  /** The estimated wait left, seconds (absent until a wait has been measured). */
  eta_secs?: number;
}

/** The tenant's business hours now: open or closed, and until when (ms). */
export interface HoursState {
  open: boolean;
  until?: number;
}

export interface MentionFrame {
  type: 'mention';
  conversation: string;
  /** `seq` of the note. */
  seq: number;
  /** Who wrote it. */
  by: Author;
  /** What it says. */
  text: string;
}
/**
 * The conversation was erased (its end user's data erasure): every event up to `seq` is
 * gone. Consoles drop it; the end user's own devices are then closed with 4102.
 */
export interface ErasedFrame {
  type: 'erased';
  conversation: string;
  /** The last erased `seq`: the conversation's next event has a later one. */
  seq: number;
  /**
   * `erasure`: its end user was erased (their devices are then closed with 4102);
   * `retention`: it stayed idle past the tenant's retention policy (nothing is closed).
   */
  reason?: 'erasure' | 'retention';
}
/** The tenant's retention policy: nothing before `cutoff` (ms) is kept or shown. */
export interface RetentionPolicy {
  days: number;
  cutoff: number;
}
/** The tenant-wide chat switch. */
export interface TenantSettingsView {
  chat_disabled: boolean;
}
/** An agent's aggregated availability. */
export interface AgentPresence {
  agent: string;
  presence: Presence;
  last_seen?: number;
  name?: string;
}

/** A success reply: `result` is tagged with the request's `op`. */
export interface OkFrame {
  type: 'ok';
  id: number;
  result: Reply;
}

/** Any frame from the server. */
export type ServerFrame =
  | WelcomeFrame
  | OkFrame
  | ErrFrame
  | EventFrame
  | QueueFrame
  | TypingFrame
  | ReadFrame
  | OwnershipLostFrame
  | AssignedFrame
  | MentionFrame
  | AlertFrame
  | QueuePositionFrame
  | ({ type: 'hours' } & HoursState)
  | ErasedFrame
  | ({ type: 'tenant' } & TenantSettingsView)
  | ({ type: 'presence' } & AgentPresence);

/** The `type`s of frames the server pushes without a request. */
export type PushedFrame = Exclude<ServerFrame, OkFrame | WelcomeFrame | ErrFrame>;

/** No fields. */
export type Empty = Record<never, never>;

/** A catalogue item. */
export interface CatalogueItem {
  id: string;
  type: EngagementType;
  name: string;
  description?: string;
  valid_from?: number;
  valid_until?: number;
  rules?: {
    min_points?: number;
    segments?: string[];
    once_per_user?: boolean;
    stock?: number;
  };
}
/** An end user's profile. */
export interface Profile {
  first_name?: string;
  last_name?: string;
  locale?: string;
  points_balance?: number;
  segments?: string[];
}
/** One event of an end user's engagement history. */
export interface HistoryEvent {
  id: string;
  type: EngagementType;
  action: HistoryAction;
  engagement?: string;
  title?: string;
  points?: number;
  at: number;
}
/** A canned response. */
export interface CannedResponse {
  id: string;
  shortcut: string;
  text: string;
}
/** A conversation's id with its state. */
export type ConversationView = { conversation: string } & ConversationState;
/** One message found by `search`. */
export interface SearchHit {
  conversation: string;
  seq: number;
  at: number;
  author: Author;
  kind: string;
  snippet: { text: string; hit: boolean }[];
}
/** One part of a direct (S3) upload. */
export interface UploadPart {
  number: number;
  url: string;
  offset: number;
  size: number;
}

/**
 * What each operation's `ok` carries (`result`, without its `op` tag). The keys are the
 * operations: {@link OPS} lists the same names.
 */
export interface Replies {
  send: { conversation: string; seq: number; status: Status; owner: string | null; epoch: number };
  subscribe: ConversationView & {
    replayed: number;
    history_truncated: boolean;
    history_lost?: boolean;
    retention?: RetentionPolicy;
  };
  unsubscribe: Empty;
  open: ConversationView & { reads: { by: Author; seq: number }[] };
  history: {
    conversation: string;
    events: ConversationEvent[];
    has_more: boolean;
    /** Older events are no longer kept: show "earlier messages removed". */
    earlier_removed?: boolean;
    retention?: RetentionPolicy;
  };
  list: { status: Status; items: QueueItem[]; next_cursor?: string };
  finish: ConversationView;
  transfer: ConversationView;
  release: ConversationView;
  handoff: ConversationView;
  edit: AmendAck;
  unsend: AmendAck;
  redact: AmendAck;
  survey_answer: {
    conversation: string;
    /** The `survey_answered` event's `seq`. */
    seq: number;
    /** The engagement granted (now in the end user's history as received). */
    reward?: EngagementCard;
    /** Why the tenant's reward was not granted (`not_in_segment`, `already_redeemed`, …). */
    reward_refused?: string;
  };
  typing: Empty;
  read: Empty;
  disable: ConversationView;
  enable: ConversationView;
  inbox: { cursor?: string; replayed: number; history_truncated: boolean };
  engagement_history: { conversation: string; events: HistoryEvent[]; next_cursor?: string; no_history: boolean };
  engagement_activity: { conversation: string; activity: { type: EngagementType; events: HistoryEvent[] }[] };
  engagements_available: { conversation: string; items: CatalogueItem[] };
  profile: { conversation: string; profile?: Profile };
  redeem: { engagement: string; event: HistoryEvent };
  canned_list: { items: CannedResponse[] };
  canned_upsert: CannedResponse;
  canned_delete: Empty;
  disable_tenant: TenantSettingsView;
  enable_tenant: TenantSettingsView;
  presence: AgentPresence;
  agents: { agents: AgentPresence[] };
  search: { hits: SearchHit[]; next_cursor?: string };
  transcript: {
    conversation: string;
    generated_at: number;
    state: ConversationState;
    complete: boolean;
    retention?: RetentionPolicy;
    messages: { seq: number; at: number; author: Author; kind: string; text: string; attachment?: AttachmentCard }[];
    timeline: { seq: number; at: number; cause: Cause; status: Status; owner?: string; previous_owner?: string; by: Author }[];
    engagements: { at: number; action: string; id: string; type: EngagementType; name: string; seq?: number }[];
    /** The surveys asked after finishes, with their answers. */
    surveys?: { seq: number; at: number; prompt: string; answered_at?: number; rating?: number; comment?: string }[];
    rendered?: string;
  };
  stats: {
    from: number;
    to: number;
    opened: number;
    answered: number;
    finished: number;
    end_user_messages: number;
    agent_messages: number;
    mean_waiting_ms?: number;
    mean_handling_ms?: number;
    /** Survey answers by rating: how many rated 1, 2, 3, 4 and 5. */
    ratings: [number, number, number, number, number];
  };
  attachment_upload: {
    attachment: string;
    upload_url?: string;
    expires_at?: number;
    received: number;
    size: number;
    stored?: AttachmentCard;
    parts?: UploadPart[];
    complete_url?: string;
  };
  attachment_link: { attachment: AttachmentCard; url: string; thumbnail_url?: string; expires_at: number };
  ping: Empty;
}

/** What each operation's request carries besides `id` and `op`. */
export interface Requests {
  send: {
    conversation?: string;
    client_msg_id?: string;
    text?: string;
    canned?: string;
    engagement?: string;
    attachment?: string;
    /** Agents: the epoch they saw (required for a message; a note needs none). */
    epoch?: number;
    /** `agents`: a private note (agents only, text only) that no end user sees. */
    visibility?: 'all' | 'agents';
    /** Agents: a private note written right after the message (why it takes over). */
    handover_note?: string;
  };
  subscribe: { conversation?: string; since?: number; history_id?: string };
  unsubscribe: { conversation?: string };
  open: { conversation?: string };
  history: { conversation?: string; before?: number; after?: number; limit?: number };
  list: { status: Status; limit?: number; cursor?: string };
  finish: { conversation?: string; epoch?: number };
  /** The owner or an admin hands the conversation to `to` (available now). */
  transfer: { conversation?: string; to?: string; note?: string; epoch?: number };
  /** Admins: give the active conversation back to the queue (reason `admin`). */
  /** Admins: back to the queue, on the epoch (and, optionally, the `seq`) seen. */
  release: { conversation?: string; epoch?: number; seq?: number };
  /** Bots: hand the conversation to the team (back to the queue) with a summary for the agents. */
  handoff: { conversation?: string; epoch?: number; summary: string; fields?: HandoffField[] };
  /** The author replaces the text of their text message `seq` (within the edit window). */
  edit: { conversation?: string; seq: number; text: string };
  /** The author takes back their message `seq` (within the edit window). */
  unsend: { conversation?: string; seq: number };
  /** Admins (`data.erase`): remove any message `seq` for good, with a reason. */
  redact: { conversation?: string; seq: number; reason: string };
  /** End users: answer the survey the last finish asked (once per cycle). */
  survey_answer: { conversation?: string; rating: number; comment?: string };
  typing: { conversation?: string; typing: boolean };
  read: { conversation?: string; seq: number };
  disable: { conversation?: string };
  enable: { conversation?: string };
  inbox: { since?: string };
  engagement_history: { conversation?: string; type?: EngagementType; before?: string; limit?: number };
  engagement_activity: { conversation?: string; per_type?: number };
  engagements_available: { conversation?: string; type?: EngagementType };
  profile: { conversation?: string };
  redeem: { engagement: string };
  canned_list: { query?: string };
  canned_upsert: { canned?: string; shortcut: string; text: string };
  canned_delete: { canned: string };
  disable_tenant: Empty;
  enable_tenant: Empty;
  presence: { presence: Presence };
  agents: Empty;
  search: {
    query: string;
    end_user?: string;
    agent?: string;
    status?: Status;
    from?: number;
    to?: number;
    kind?: string;
    cursor?: string;
    limit?: number;
  };
  transcript: { conversation?: string; format?: 'text' | 'html' };
  stats: { from?: number; to?: number };
  attachment_upload: { conversation?: string; name: string; size: number; content_type?: string; client_msg_id?: string };
  attachment_link: { conversation?: string; attachment: string };
  ping: Empty;
}

/** An operation's name. */
export type Op = keyof Requests;

/** A request frame as sent: `id`, `op` and the operation's fields. */
export type ClientRequest = { [K in Op]: { id: number; op: K } & Requests[K] }[Op];

/** A reply's `result`, tagged with its operation. */
export type Reply = { [K in Op]: { op: K } & Replies[K] }[Op];

/** Every operation, as on the wire (the same list as the server's `Op::NAMES`). */
export const OPS = [
  'send',
  'subscribe',
  'unsubscribe',
  'open',
  'history',
  'list',
  'finish',
  'transfer',
  'release',
  'handoff',
  'edit',
  'unsend',
  'redact',
  'survey_answer',
  'typing',
  'read',
  'disable',
  'enable',
  'inbox',
  'engagement_history',
  'engagement_activity',
  'engagements_available',
  'profile',
  'redeem',
  'canned_list',
  'canned_upsert',
  'canned_delete',
  'disable_tenant',
  'enable_tenant',
  'presence',
  'agents',
  'search',
  'transcript',
  'stats',
  'attachment_upload',
  'attachment_link',
  'ping',
] as const satisfies readonly Op[];

// `OPS` names every operation of `Requests` and `Replies`, and nothing else.
type Missing = Exclude<Op, (typeof OPS)[number]>;
const everyOpListed: [Missing] extends [never] ? true : Missing = true;
void everyOpListed;

/** One row of the close-code table (protocol/vectors/close_codes.json). */
export interface CloseCode {
  code: number;
  name: string;
  /** Whether reconnecting (and resuming) can help. */
  reconnect: boolean;
}

/**
 * The close-code table: what each code means for a client. A test holds it equal to
 * protocol/vectors/close_codes.json.
 */
export const CLOSE_CODES: readonly CloseCode[] = [
  { code: 1000, name: 'normal', reconnect: false },
  { code: 1001, name: 'going_away', reconnect: true },
  { code: 1002, name: 'protocol_error', reconnect: false },
  { code: 1007, name: 'invalid_data', reconnect: false },
  { code: 1008, name: 'token_expired', reconnect: false },
  { code: 1008, name: 'token_revoked', reconnect: false },
  { code: 1009, name: 'too_big', reconnect: false },
  { code: 1011, name: 'internal_error', reconnect: true },
  { code: 4000, name: 'keepalive_timeout', reconnect: true },
  { code: 4001, name: 'slow_consumer', reconnect: true },
  { code: 4101, name: 'policy_violation', reconnect: false },
  { code: 4102, name: 'erased', reconnect: false },
];

/** Close codes after which reconnecting would not help (`reconnect: false`). */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set(
  CLOSE_CODES.filter((c) => !c.reconnect).map((c) => c.code),
);
