//! Frames the server sends. One tag, `type`: `welcome`, `ok`, `err`, `event`, `queue`,
//! `typing`, `read`.

use crate::error::ErrorCode;
use chathub_domain::{
    AgentId, Author, ConversationId, ConversationState, Event, Privileges, Role, Status, TenantId,
};
use serde::{Deserialize, Serialize};

/// Any frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection: who you are and the limits that apply.
    Welcome(Welcome),
    /// Success reply to request `id`.
    Ok {
        /// The request's id.
        id: u64,
        /// The operation's result, tagged with the operation (`op`).
        result: Reply,
    },
    /// Failure reply to request `id` (or to an unreadable frame: `id` absent).
    Err(ErrorFrame),
    /// A conversation event (message or status change), with its `seq`.
    Event(EventFrame),
    /// Agents: a conversation of the tenant changed status, owner or flags.
    Queue(QueueItem),
    /// Someone started or stopped typing. Not recorded, no `seq`.
    Typing(TypingFrame),
    /// Someone has seen the conversation up to `seq`.
    Read(ReadFrame),
}

/// The `welcome` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// This connection's id (for logs and support).
    pub session: String,
    /// Your tenant.
    pub tenant: TenantId,
    /// Your role.
    pub role: Role,
    /// Your id (end user id or agent id).
    pub subject: String,
    /// Your privileges.
    pub privileges: Privileges,
    /// The limits that apply to this connection.
    pub limits: Limits,
}

/// Limits announced in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest WebSocket message accepted, in bytes; larger ones close with 1009.
    pub max_message_bytes: u32,
    /// Longest message text, in bytes; longer gets `too_large`.
    pub max_text_bytes: u32,
    /// Largest `limit` for `history` and `list`.
    pub max_page: u32,
    /// The server pings this often (ms); answer within `ping_timeout_ms` or be closed (4000).
    pub ping_interval_ms: u64,
    /// See `ping_interval_ms`.
    pub ping_timeout_ms: u64,
}

/// An `err` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The request's id; absent when the frame was unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// What went wrong, from the closed list.
    pub code: ErrorCode,
    /// A human-readable explanation (not for matching).
    pub message: String,
    /// With `conflict`: who owns the conversation now (absent: nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<AgentId>,
    /// With `conflict`: the current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl ErrorFrame {
    /// An error with just a code and a message.
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            id,
            code,
            message: message.into(),
            owner: None,
            epoch: None,
        }
    }
}

/// A conversation event as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// The event (`seq`, `at`, `event` and its fields).
    #[serde(flatten)]
    pub event: Event,
}

/// One conversation's entry in the tenant's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The conversation (also the end user's id).
    pub conversation: ConversationId,
    /// Status now.
    pub status: Status,
    /// Owner now.
    pub owner: Option<AgentId>,
    /// Ownership epoch now.
    pub epoch: u64,
    /// `seq` of the change this entry reflects; a later `seq` wins.
    pub seq: u64,
    /// Two-way chat disabled.
    pub disabled: bool,
    /// When the conversation entered this status (ms since the Unix epoch).
    pub since: u64,
    /// When it last changed (ms since the Unix epoch).
    pub updated: u64,
    /// The last message's text, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// In `list` replies for unanswered conversations: how long the end user has been
    /// waiting, in ms (server clock). Absent in pushed `queue` frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_ms: Option<u64>,
    /// In pushed `queue` frames: this change's position in the tenant's inbox stream
    /// (opaque; pass the last one you saw to `inbox` to catch up after a reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A `typing` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who is typing.
    pub from: Author,
    /// Started (`true`) or stopped.
    pub typing: bool,
}

/// A read receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFrame {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who read.
    pub by: Author,
    /// Seen up to this `seq`.
    pub seq: u64,
}

/// The result of a successful request, tagged by its operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The message was recorded with `seq`.
    Send(SendAck),
    /// Subscribed; replayed events (if any) were sent before this reply.
    Subscribe(Subscribed),
    /// Unsubscribed.
    Unsubscribe {},
    /// The conversation now.
    Open(Opened),
    /// A page of history.
    History(HistoryPage),
    /// A page of the queue.
    List(ListPage),
    /// Finished; the state after.
    Finish(ConversationView),
    /// Typing notice sent.
    Typing {},
    /// Read mark recorded.
    Read {},
    /// Disabled; the state after.
    Disable(ConversationView),
    /// Enabled; the state after.
    Enable(ConversationView),
    /// Queue changes after `since` were replayed before this reply.
    Inbox(InboxReply),
    /// Pong.
    Ping {},
}

/// Reply to `inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxReply {
    /// The newest inbox position now (after the replayed frames); absent while the
    /// tenant's inbox is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// How many `queue` frames were replayed before this reply.
    pub replayed: u64,
    /// `true` when `since` is older than the retained inbox stream: some changes cannot
    /// be replayed; reload the queue with `list`.
    pub history_truncated: bool,
}

/// Acknowledgement of a `send`: identical for every retry with the same `client_msg_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    /// The conversation.
    pub conversation: ConversationId,
    /// `seq` of the recorded message.
    pub seq: u64,
    /// Status after the send.
    pub status: Status,
    /// Owner after the send.
    pub owner: Option<AgentId>,
    /// Epoch after the send.
    pub epoch: u64,
}

/// A conversation's id with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its state.
    #[serde(flatten)]
    pub state: ConversationState,
}

/// Reply to `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The conversation and its state.
    #[serde(flatten)]
    pub view: ConversationView,
    /// How many events were replayed before this reply.
    pub replayed: u64,
    /// `true` when `since` was older than the retained history (or ahead of it): some
    /// events cannot be replayed; reload the conversation with `history`.
    pub history_truncated: bool,
}

/// Reply to `open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The conversation and its state.
    #[serde(flatten)]
    pub view: ConversationView,
    /// Read marks of the participants.
    pub reads: Vec<ReadMark>,
}

/// How far one participant has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// Who.
    pub by: Author,
    /// Seen up to this `seq`.
    pub seq: u64,
}

/// Reply to `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The conversation.
    pub conversation: ConversationId,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Whether more events exist beyond this page in the direction asked.
    pub has_more: bool,
}

/// Reply to `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    /// The status listed.
    pub status: Status,
    /// Entries: unanswered oldest first, active and finished most recent first.
    pub items: Vec<QueueItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
