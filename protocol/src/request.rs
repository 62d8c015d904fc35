//! Client requests. Every request carries an `id` chosen by the client; the server answers
//! each with exactly one reply (`ok` or `err`) carrying the same `id`.

use chathub_domain::engagement::EngagementType;
use chathub_domain::{AgentId, AttachmentId, ConversationId, Presence, Status};
use serde::{Deserialize, Serialize};

/// One client request: `{"id": 7, "op": "send", …operation fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Client-chosen id, echoed in the reply.
    pub id: u64,
    /// The operation and its fields.
    #[serde(flatten)]
    pub op: Op,
}

/// The operations. For end users `conversation` may be left out (it is always their own);
/// agents must name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Send a message: `text`, or (agents) a canned response by id, or an engagement of
    /// the catalogue by id. For an agent this takes the conversation when it does not own
    /// it, and `epoch` (the one it saw) is required.
    Send {
        /// Target conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Idempotency key: a retried send with the same key is not delivered twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// The message text (empty when sending `canned` or `engagement`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        text: String,
        /// Agents: a canned response id; its placeholders are filled on the server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        canned: Option<String>,
        /// Agents (`engagement.send`): a catalogue item id the end user is entitled to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engagement: Option<String>,
        /// An attachment this sender uploaded to this conversation
        /// (`attachment_upload`), complete and checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<AttachmentId>,
        /// The ownership epoch the agent saw (required for agents' messages; a note
        /// needs none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// `agents`: a private note (agents and admins; text only), which no end user
        /// ever sees and which changes no ownership. Default `all`: a message.
        #[serde(default, skip_serializing_if = "Visibility::is_all")]
        visibility: Visibility,
        /// Agents: a private note written right after the message, for the other agents
        /// (typically why this send takes the conversation over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handover_note: Option<String>,
    },
    /// Receive the conversation's events; with `since`, first replay every event after it.
    Subscribe {
        /// Conversation to follow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The last `seq` the client has; events after it are replayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// The `history_id` of the `welcome` under which the client got `since`: when the
        /// server's differs, history was lost and the reply says `history_lost`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        history_id: Option<String>,
    },
    /// Stop receiving the conversation's events.
    Unsubscribe {
        /// Conversation to leave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// The conversation's current state and read marks.
    Open {
        /// Conversation to open.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// A page of the conversation's history: the newest `limit` events, or those before
    /// `before`, or those after `after` (oldest first in every case).
    History {
        /// Conversation to read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Only events with a smaller `seq`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// Only events with a larger `seq`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// Page size (default and maximum in the `welcome` limits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Agents: the tenant's conversations in one status.
    List {
        /// Which status.
        status: Status,
        /// Page size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// `next_cursor` of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    /// Agents: finish the conversation (owner, or an admin). `conversation` and `epoch`
    /// are required; they are optional in the type so that an end user is told
    /// `forbidden`, not `bad_request` (the role is checked first).
    Finish {
        /// Conversation to finish.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The epoch the agent saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// Agents: hand the conversation to a named agent who is available now: the owner
    /// (an active conversation), or an admin (also assigning an unanswered one). One
    /// atomic step: `to` owns it, the epoch moves (cause `transferred`). `to` is told
    /// with an `assigned` frame carrying `note`.
    Transfer {
        /// Conversation to hand over.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The agent who takes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<AgentId>,
        /// A few words for them (not recorded in the conversation; only `to` gets it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// The epoch the agent saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// Admins: give an active conversation back to the queue (`unanswered`, no owner, the
    /// epoch moves; cause `released`, reason `admin`). The owner is told with
    /// `ownership_lost`.
    Release {
        /// Conversation to release.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The epoch the admin saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// The `seq` the admin saw: released only if nothing happened since (otherwise
        /// `invalid_state`). Left out: as the server finds it when the request arrives.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// Bots: hand the conversation you own to the humans (`unanswered`, no owner, the
    /// epoch moves; cause `handed_off`), with a summary and the fields you collected,
    /// pinned for the agent who takes it (a `handoff` event, agents only).
    Handoff {
        /// Conversation to hand off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The epoch the bot saw (a human's take moved it: `conflict`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// What the customer needs, in the bot's words (1–2,000 bytes).
        summary: String,
        /// What the bot collected, in its order (at most 20; names 1–64 bytes, values
        /// 1–500 bytes).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fields: Vec<chathub_domain::HandoffField>,
    },
    /// Replace the text of your own text message `seq` (within the tenant's edit window):
    /// recorded as an `edited` event.
    Edit {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The message's `seq`.
        seq: u64,
        /// The new text.
        text: String,
    },
    /// Take back your own message `seq` (within the tenant's edit window): recorded as an
    /// `unsent` event; its content is gone.
    Unsend {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The message's `seq`.
        seq: u64,
    },
    /// Admins (`data.erase`): remove any message `seq` for good, with a reason: recorded
    /// as a `redacted` event; its content is gone from every store.
    Redact {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The message's `seq`.
        seq: u64,
        /// Why (shown to both sides, and in the audit log).
        reason: String,
    },
    /// End users: answer the satisfaction survey the last finish asked (once): a rating
    /// of 1–5 and an optional comment. Grants the tenant's reward when entitled.
    SurveyAnswer {
        /// Conversation (end users may leave it out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// 1 (worst) to 5 (best).
        rating: u8,
        /// What they add (at most the message text limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Tell the other side you are (not) typing. Not recorded.
    Typing {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Typing now or stopped.
        typing: bool,
    },
    /// Read receipt: you have seen every event up to `seq`.
    Read {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Seen up to this `seq`.
        seq: u64,
    },
    /// Admins (`chat.disable`): disable two-way chat on the conversation.
    Disable {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// Admins (`chat.disable`): enable two-way chat again.
    Enable {
        /// Conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// Agents: replay the tenant's queue changes after inbox position `since` (the
    /// `cursor` of the last `queue` frame seen), to catch up after a reconnect.
    Inbox {
        /// Last inbox position seen; absent: just tell me the current position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
    /// Agents: the end user's engagement history, newest first, optionally of one type.
    EngagementHistory {
        /// Conversation (the end user).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Only this engagement type.
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        engagement_type: Option<EngagementType>,
        /// `next_cursor` of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Page size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Agents: the end user's latest events of every engagement type.
    EngagementActivity {
        /// Conversation (the end user).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Events per type (default 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        per_type: Option<u32>,
    },
    /// Agents: the catalogue items the end user is entitled to now, optionally of one type.
    EngagementsAvailable {
        /// Conversation (the end user).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Only this engagement type.
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        engagement_type: Option<EngagementType>,
    },
    /// Agents: the end user's profile.
    Profile {
        /// Conversation (the end user).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// End users: redeem an engagement received in the thread.
    Redeem {
        /// Catalogue item id.
        engagement: String,
    },
    /// Agents: canned responses, optionally searched by shortcut or text.
    CannedList {
        /// Search (shortcut prefix or text fragment, case-insensitive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// `canned.manage`: create (no `canned`) or replace a canned response.
    CannedUpsert {
        /// Id of the canned response to replace; absent to create one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        canned: Option<String>,
        /// Shortcut, e.g. `/hello`.
        shortcut: String,
        /// Text, with placeholders.
        text: String,
    },
    /// `canned.manage`: delete a canned response.
    CannedDelete {
        /// Id of the canned response.
        canned: String,
    },
    /// Admins (`chat.disable`): disable two-way chat for the whole tenant.
    DisableTenant {},
    /// Admins (`chat.disable`): enable two-way chat for the tenant again.
    EnableTenant {},
    /// Agents: set this device's availability (`available` or `away`).
    Presence {
        /// The new availability.
        presence: Presence,
    },
    /// Agents: the tenant's agents and their availability.
    Agents {},
    /// Agents: full-text search of the tenant's messages, newest first.
    Search {
        /// What to find: words (all must appear), `"quoted phrases"`, `-excluded`, and
        /// `OR` between two terms.
        query: String,
        /// Only this end user's conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_user: Option<String>,
        /// Only conversations this agent wrote in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// Only conversations in this status now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Status>,
        /// Only messages at or after this time (ms since the Unix epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// Only messages before this time (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
        /// Only `text` messages or `engagement`s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// `next_cursor` of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Page size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// The conversation's transcript: every message, the ownership timeline and the
    /// engagements sent and redeemed. End users get their own; agents name one.
    Transcript {
        /// The conversation (end users may leave it out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Also render it: `text` or `html` (in `rendered`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// Agents: the tenant's figures over conversation cycles opened in `[from, to)` (ms;
    /// default: today, UTC, until now).
    Stats {
        /// Start, ms since the Unix epoch (inclusive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// End, ms (exclusive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
    },
    /// Ask to upload a file: the reply gives the attachment's id and a short-lived URL
    /// to PUT the bytes to (resumable by ranges). The same `client_msg_id` always names
    /// the same attachment, so a retried request resumes instead of starting over.
    AttachmentUpload {
        /// The conversation (end users may leave it out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The file name (its extension must match the bytes).
        name: String,
        /// Size in bytes: exactly this many are accepted.
        size: u64,
        /// The declared type (`image/jpeg`); checked against the bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
        /// The idempotency key of the message this file is for (use the same in the
        /// `send`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// A short-lived download link for an attachment of the conversation (and its
    /// thumbnail), for its participants only.
    AttachmentLink {
        /// The conversation (end users may leave it out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The attachment.
        attachment: AttachmentId,
    },
    /// Application-level ping; answered with `ok`.
    Ping {},
}

/// Who a `send` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone in the conversation: a message.
    #[default]
    All,
    /// Agents and admins only: a private note.
    Agents,
}

impl Visibility {
    /// Whether it is the default (a message).
    pub fn is_all(&self) -> bool {
        *self == Visibility::All
    }
}

impl Op {
    /// Every operation name, as on the wire.
    pub const NAMES: [&'static str; 37] = [
        "send",
        "subscribe",
        "unsubscribe",
        "open",
        "history",
        "list",
        "finish",
        "transfer",
        "release",
        "handoff",
        "edit",
        "unsend",
        "redact",
        "survey_answer",
        "typing",
        "read",
        "disable",
        "enable",
        "inbox",
        "engagement_history",
        "engagement_activity",
        "engagements_available",
        "profile",
        "redeem",
        "canned_list",
        "canned_upsert",
        "canned_delete",
        "disable_tenant",
        "enable_tenant",
        "presence",
        "agents",
        "search",
        "transcript",
        "stats",
        "attachment_upload",
        "attachment_link",
        "ping",
    ];

    /// The operation's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Send { .. } => "send",
            Op::Subscribe { .. } => "subscribe",
            Op::Unsubscribe { .. } => "unsubscribe",
            Op::Open { .. } => "open",
            Op::History { .. } => "history",
            Op::List { .. } => "list",
            Op::Finish { .. } => "finish",
            Op::Transfer { .. } => "transfer",
            Op::Release { .. } => "release",
            Op::Handoff { .. } => "handoff",
            Op::Edit { .. } => "edit",
            Op::Unsend { .. } => "unsend",
            Op::Redact { .. } => "redact",
            Op::SurveyAnswer { .. } => "survey_answer",
            Op::Typing { .. } => "typing",
            Op::Read { .. } => "read",
            Op::Disable { .. } => "disable",
            Op::Enable { .. } => "enable",
            Op::Inbox { .. } => "inbox",
            Op::EngagementHistory { .. } => "engagement_history",
            Op::EngagementActivity { .. } => "engagement_activity",
            Op::EngagementsAvailable { .. } => "engagements_available",
            Op::Profile { .. } => "profile",
            Op::Redeem { .. } => "redeem",
            Op::CannedList { .. } => "canned_list",
            Op::CannedUpsert { .. } => "canned_upsert",
            Op::CannedDelete { .. } => "canned_delete",
            Op::DisableTenant {} => "disable_tenant",
            Op::EnableTenant {} => "enable_tenant",
            Op::Presence { .. } => "presence",
            Op::Agents {} => "agents",
            Op::Search { .. } => "search",
            Op::Transcript { .. } => "transcript",
            Op::Stats { .. } => "stats",
            Op::AttachmentUpload { .. } => "attachment_upload",
            Op::AttachmentLink { .. } => "attachment_link",
            Op::Ping {} => "ping",
        }
    }
}
