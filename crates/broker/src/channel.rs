//! Channel names.

use chathub_domain::{ConversationId, TenantId};
use std::fmt;
use std::sync::Arc;

/// A pub/sub channel. Cheap to clone (shared string).
///
/// Conversation channels carry the conversation's hash tag `{t:c}` so that, on Redis
/// Cluster, the channel lives in the same slot as the conversation's keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Arc<str>);

impl Channel {
    /// The channel of one conversation: messages, status changes, typing, read marks.
    pub fn conversation(tenant: &TenantId, conversation: &ConversationId) -> Channel {
        Channel(format!("chathub:conv:{{{tenant}:{conversation}}}").into())
    }

    /// The channel of a tenant's agents: queue changes.
    pub fn agents(tenant: &TenantId) -> Channel {
        Channel(format!("chathub:agents:{{{tenant}}}").into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.0)
    }
}
