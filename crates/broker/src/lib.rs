//! Pub/sub fan-out between gateway nodes and, inside a node, to local sessions.
//!
//! # Layout
//! - [`Channel`]: channel names (one per conversation, one per tenant's agents).
//! - [`Envelope`]: an event encoded once, shared by every local recipient.
//! - [`outbox`]: the bounded per-session queue with a byte budget.
//! - [`Hub`]: the node's local registry, channel → local sessions.
//! - [`Broker`]: moves envelopes between nodes; [`MemoryBroker`] is the single-process
//!   twin; [`RedisBroker`] moves them through Redis pub/sub between nodes.
//! - [`Tasks`]: a node's background tasks, under its cancellation token and tracker.

mod channel;
mod envelope;
mod hub;
mod memory;
pub mod outbox;
mod peek;
pub mod redis;
mod tasks;

pub use channel::{Channel, ChannelName};
pub use envelope::Envelope;
pub use hub::{Hub, SessionId};
pub use memory::MemoryBroker;
pub use outbox::{Outbox, OutboxSender, Overflow};
pub use redis::{RedisBroker, RedisBrokerStats, redis_channel};
pub use tasks::Tasks;

use std::future::Future;
use std::sync::Arc;

/// Errors of a broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The transport (Redis) is unreachable; the caller may retry.
    #[error("broker unavailable: {source}")]
    Unavailable {
        /// What failed underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BrokerError {
    /// The protocol error code a client gets for this error.
    pub fn code(&self) -> chathub_protocol::ErrorCode {
        chathub_protocol::ErrorCode::Unavailable
    }

    /// Whether the same call may succeed later (always: the transport comes back).
    pub fn is_retryable(&self) -> bool {
        true
    }

    /// A transport failure.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> BrokerError {
        BrokerError::Unavailable {
            source: Box::new(source),
        }
    }
}

/// Moves envelopes between the nodes subscribed to a channel.
///
/// Guarantees: **at most once** per subscribed node; envelopes published on one channel
/// by one publisher arrive in publish order. Receivers detect gaps by `seq` and repair
/// them from history. Deliveries go to the node's [`Hub`], which never blocks the
/// broker: a full session queue drops that session (it resumes from history).
pub trait Broker: Send + Sync + 'static {
    /// Publishes `envelope` on `channel`.
    fn publish(
        &self,
        channel: &Channel,
        envelope: Arc<Envelope>,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Makes this node receive `channel` (called by the hub's first local subscriber).
    fn subscribe(&self, channel: &Channel) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Stops receiving `channel` (called after the last local subscriber left).
    fn unsubscribe(
        &self,
        channel: &Channel,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;
}
