//! Client requests. Every request carries an `id` chosen by the client; the server answers
//! each with exactly one reply (`ok` or `err`) carrying the same `id`.

use chathub_domain::{ConversationId, Status};
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
    /// Send a text message. For an agent this takes the conversation when it does not own
    /// it, and `epoch` (the one it saw) is required.
    Send {
        /// Target conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// Idempotency key: a retried send with the same key is not delivered twice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// The message text.
        text: String,
        /// The ownership epoch the agent saw (required for agents).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    /// Receive the conversation's events; with `since`, first replay every event after it.
    Subscribe {
        /// Conversation to follow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        /// The last `seq` the client has; events after it are replayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
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
    /// Agents: finish the conversation (owner, or an admin).
    Finish {
        /// Conversation to finish.
        conversation: ConversationId,
        /// The epoch the agent saw.
        epoch: u64,
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
        conversation: ConversationId,
    },
    /// Admins (`chat.disable`): enable two-way chat again.
    Enable {
        /// Conversation.
        conversation: ConversationId,
    },
    /// Agents: replay the tenant's queue changes after inbox position `since` (the
    /// `cursor` of the last `queue` frame seen), to catch up after a reconnect.
    Inbox {
        /// Last inbox position seen; absent: just tell me the current position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
    /// Application-level ping; answered with `ok`.
    Ping {},
}

impl Op {
    /// Every operation name, as on the wire.
    pub const NAMES: [&'static str; 13] = [
        "send",
        "subscribe",
        "unsubscribe",
        "open",
        "history",
        "list",
        "finish",
        "typing",
        "read",
        "disable",
        "enable",
        "inbox",
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
            Op::Typing { .. } => "typing",
            Op::Read { .. } => "read",
            Op::Disable { .. } => "disable",
            Op::Enable { .. } => "enable",
            Op::Inbox { .. } => "inbox",
            Op::Ping {} => "ping",
        }
    }
}
