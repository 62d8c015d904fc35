//! The rows the stores keep, in their own types (the wire's frames are built from them
//! by the ownership crate and the gateway, not stored).

use chathub_domain::{AgentId, ConversationId, Status};
use serde::{Deserialize, Serialize};

/// A conversation's entry in its tenant's queue. Stored as MessagePack with these field
/// names (the Lua scripts write the same map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its status.
    pub status: Status,
    /// Its owner, when active.
    #[serde(default)]
    pub owner: Option<AgentId>,
    /// Ownership epoch.
    pub epoch: u64,
    /// Last `seq` reflected in the entry (an entry never goes back to an older one).
    pub seq: u64,
    /// Two-way chat disabled for the conversation.
    pub disabled: bool,
    /// When it entered its current status, ms since the Unix epoch.
    pub since: u64,
    /// Its last change, ms.
    pub updated: u64,
    /// The last message's preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

/// A queue change in the tenant's inbox stream, with its position (the cursor a console
/// resumes after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The entry after the change.
    pub entry: QueueEntry,
    /// Its position in the stream.
    pub cursor: String,
}

/// What a send was answered, remembered for its retries within the dedup window (the
/// same answer to every retry). Stored as MessagePack with these field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The conversation.
    pub conversation: ConversationId,
    /// The message's `seq`.
    pub seq: u64,
    /// The conversation's status after the send.
    pub status: Status,
    /// Its owner after the send.
    #[serde(default)]
    pub owner: Option<AgentId>,
    /// Its epoch after the send.
    pub epoch: u64,
}
