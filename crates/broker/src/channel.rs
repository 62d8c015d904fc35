//! Channel names.

use chathub_domain::{ConversationId, TenantId};
use std::fmt;
use std::sync::Arc;

/// A pub/sub channel. Cheap to clone (shared string).
///
/// Conversation channels carry the conversation's hash tag `{tenant/conversation}` (ids
/// cannot contain `/`, so the tag is unambiguous: no two tenants ever share a channel),
/// which on Redis Cluster puts the channel in the slot of the conversation's keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Arc<str>);

impl Channel {
    /// The channel of one conversation: messages, status changes, typing, read marks.
    pub fn conversation(tenant: &TenantId, conversation: &ConversationId) -> Channel {
        Channel(
            ChannelName::Conversation(tenant, conversation)
                .to_string()
                .into(),
        )
    }

    /// The channel of a tenant's agents: queue changes.
    pub fn agents(tenant: &TenantId) -> Channel {
        Channel(ChannelName::Agents(tenant).to_string().into())
    }

    /// The channel of one agent's devices: `ownership_lost` notices. It carries the
    /// tenant's hash tag (not the agent's), so on a Redis Cluster the step that updates
    /// the tenant's queue can publish on it.
    pub fn agent(tenant: &TenantId, agent: &chathub_domain::AgentId) -> Channel {
        Channel(format!("{}{agent}", Channel::agent_prefix(tenant)).into())
    }

    /// What every agent channel of `tenant` starts with (the scripts add the agent's id).
    pub fn agent_prefix(tenant: &TenantId) -> String {
        ChannelName::AgentPrefix(tenant).to_string()
    }

    /// The channel of a tenant's end users: tenant-wide notices.
    pub fn users(tenant: &TenantId) -> Channel {
        Channel(format!("users:{{{tenant}}}").into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A channel's name written where it is needed, without a `String` of its own (the
/// command path formats it straight into the Redis call); [`Channel`]'s constructors
/// format the same.
#[derive(Debug, Clone, Copy)]
pub enum ChannelName<'a> {
    /// [`Channel::conversation`].
    Conversation(&'a TenantId, &'a ConversationId),
    /// [`Channel::agents`].
    Agents(&'a TenantId),
    /// [`Channel::agent_prefix`].
    AgentPrefix(&'a TenantId),
}

impl fmt::Display for ChannelName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelName::Conversation(t, c) => write!(f, "conv:{{{t}/{c}}}"),
            ChannelName::Agents(t) => write!(f, "agents:{{{t}}}"),
            ChannelName::AgentPrefix(t) => write!(f, "agent:{{{t}}}/"),
        }
    }
}

// Lets the hub look a channel up by the name a broker received, without allocating.
impl std::borrow::Borrow<str> for Channel {
    fn borrow(&self) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_never_share_a_channel() {
        let a = Channel::conversation(
            &TenantId::new("a:b").unwrap(),
            &ConversationId::new("c").unwrap(),
        );
        let b = Channel::conversation(
            &TenantId::new("a").unwrap(),
            &ConversationId::new("b:c").unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(a.as_str(), "conv:{a:b/c}");
        assert_eq!(
            Channel::agents(&TenantId::new("acme").unwrap()).as_str(),
            "agents:{acme}"
        );
    }
}
