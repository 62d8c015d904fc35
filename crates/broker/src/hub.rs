//! The node's local registry: which local sessions follow which channel.

use crate::channel::Channel;
use crate::envelope::Envelope;
use crate::outbox::OutboxSender;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A session's id, unique within the node.
pub type SessionId = u64;

/// Channel → local sessions. Sharded (dashmap), so fan-out on one channel does not lock
/// out the others. Delivery pushes the same `Arc<Envelope>` to every session's outbox,
/// never waiting: a session whose outbox is full is dropped from delivery and closes
/// itself as a slow consumer.
#[derive(Default)]
pub struct Hub {
    // A map, not a list: tenant-wide channels hold every session of a tenant, and joining
    // or leaving must not scan them.
    channels: DashMap<Channel, HashMap<SessionId, OutboxSender>>,
    delivered: AtomicU64,
    overflowed: AtomicU64,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Adds `session` to `channel`. Returns `true` when it is the channel's first local
    /// session (the caller then subscribes the node to it on the broker). Joining twice
    /// is a no-op returning `false`.
    pub fn join(&self, channel: &Channel, session: SessionId, outbox: &OutboxSender) -> bool {
        let mut entry = self.channels.entry(channel.clone()).or_default();
        let first = entry.is_empty();
        entry.entry(session).or_insert_with(|| outbox.clone());
        first
    }

    /// The hub's own copy of `channel`'s name while any session follows it: a session
    /// that keeps a channel for its whole life (its tenant's channel) keeps this one
    /// rather than a copy of its own, so thousands of idle sockets share one name.
    pub fn shared_name(&self, channel: &Channel) -> Option<Channel> {
        self.channels.get(channel).map(|entry| entry.key().clone())
    }

    /// Removes `session` from `channel`. Returns `true` when it was the last local session
    /// (the caller then unsubscribes the node).
    pub fn leave(&self, channel: &Channel, session: SessionId) -> bool {
        // The closure removes the session in place; the entry goes when it is empty.
        self.channels
            .remove_if_mut(channel, |_, sessions| {
                sessions.remove(&session);
                sessions.is_empty()
            })
            .is_some()
    }

    /// Delivers `envelope` to every local session on `channel`; returns how many got it.
    pub fn dispatch(&self, channel: &Channel, envelope: &Arc<Envelope>) -> usize {
        let Some(sessions) = self.channels.get(channel) else {
            return 0;
        };
        let mut delivered = 0;
        for outbox in sessions.values() {
            match outbox.try_push(envelope.clone()) {
                Ok(()) => delivered += 1,
                Err(_) => {
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Delivers an envelope received by name (from a broker) to the channel's local
    /// sessions; `make` builds it only when somebody here follows the channel. Returns
    /// how many sessions got it.
    pub fn dispatch_named(&self, name: &str, make: impl FnOnce(Channel) -> Envelope) -> usize {
        let channel = match self.channels.get(name) {
            Some(entry) => entry.key().clone(),
            None => return 0,
        };
        self.dispatch(&channel, &Arc::new(make(channel.clone())))
    }

    /// Whether any local session follows `channel`.
    pub fn has_sessions(&self, channel: &Channel) -> bool {
        self.channels.get(channel).is_some_and(|s| !s.is_empty())
    }

    /// Every channel with a local session.
    pub fn channels(&self) -> Vec<Channel> {
        self.channels.iter().map(|e| e.key().clone()).collect()
    }

    /// Number of channels with at least one local session.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Total deliveries into outboxes since start.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Deliveries refused because an outbox was full, since start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox;
    use bytes::Bytes;
    use chathub_domain::TenantId;

    #[tokio::test]
    async fn reference_counts_and_shared_bytes() {
        let hub = Hub::new();
        let ch = Channel::agents(&TenantId::new("t").unwrap());
        let (a, mut ra) = outbox::channel(8, 1 << 20);
        let (b, mut rb) = outbox::channel(8, 1 << 20);
        assert!(hub.join(&ch, 1, &a));
        assert!(!hub.join(&ch, 2, &b));
        assert!(!hub.join(&ch, 2, &b), "joining twice is a no-op");
        let env = Arc::new(Envelope::new(ch.clone(), Some(1), Bytes::from_static(b"x")));
        assert_eq!(hub.dispatch(&ch, &env), 2);
        let got_a = ra.recv().await.unwrap().unwrap();
        let got_b = rb.recv().await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&got_a, &got_b),
            "the same bytes go to every session"
        );
        assert!(!hub.leave(&ch, 1));
        assert!(hub.leave(&ch, 2));
        assert_eq!(hub.channel_count(), 0);
        assert_eq!(hub.dispatch(&ch, &env), 0);
    }

    #[tokio::test]
    async fn a_full_outbox_does_not_block_the_others() {
        let hub = Hub::new();
        let ch = Channel::agents(&TenantId::new("t").unwrap());
        let (slow, _keep) = outbox::channel(1, 1 << 20);
        let (fast, mut rf) = outbox::channel(16, 1 << 20);
        hub.join(&ch, 1, &slow);
        hub.join(&ch, 2, &fast);
        for i in 0..10 {
            hub.dispatch(
                &ch,
                &Arc::new(Envelope::new(ch.clone(), Some(i), Bytes::from_static(b"x"))),
            );
        }
        assert_eq!(hub.overflowed(), 9);
        for i in 0..10 {
            assert_eq!(rf.recv().await.unwrap().unwrap().seq, Some(i));
        }
    }
}
