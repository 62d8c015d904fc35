//! The bounded per-session outbound queue.
//!
//! Bounded twice: by frame count and by bytes. Pushing never waits: when either bound is
//! passed the outbox is marked overflowed, the push fails, and the session closes with the
//! "slow consumer" code; the client reconnects and resumes from history. So a slow client
//! never slows the node or other clients.

use crate::envelope::Envelope;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The outbox overflowed: the session must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outbox overflowed")]
pub struct Overflow;

/// One outbox, shared by its senders and its session. A plain queue under a lock rather
/// than a channel: an idle socket's outbox is then a few words (an empty `VecDeque`
/// allocates nothing), where a tokio channel holds a block of slots from the start.
struct Shared {
    queue: Mutex<VecDeque<Arc<Envelope>>>,
    /// Bytes queued (the envelopes' weights).
    bytes: AtomicUsize,
    max_bytes: usize,
    max_frames: usize,
    overflowed: AtomicBool,
    /// Senders alive; at 0 the session's `recv` ends.
    senders: AtomicUsize,
    /// The session dropped its outbox.
    closed: AtomicBool,
    /// Wakes the session: something queued, the outbox overflowed or the last sender left.
    wake: Notify,
}

impl Shared {
    /// The queue; a panic while it was held cannot leave it inconsistent (every change
    /// is one push or pop), so a poisoned lock is taken as it is.
    fn queue(&self) -> MutexGuard<'_, VecDeque<Arc<Envelope>>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The pushing side, held by the hub for each subscription of the session.
pub struct OutboxSender {
    shared: Arc<Shared>,
}

/// The receiving side, owned by the session.
pub struct Outbox {
    shared: Arc<Shared>,
}

/// A new outbox holding at most `max_frames` frames and `max_bytes` bytes.
pub fn channel(max_frames: usize, max_bytes: usize) -> (OutboxSender, Outbox) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        bytes: AtomicUsize::new(0),
        max_bytes,
        max_frames: max_frames.max(1),
        overflowed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
        wake: Notify::new(),
    });
    (
        OutboxSender {
            shared: shared.clone(),
        },
        Outbox { shared },
    )
}

impl Clone for OutboxSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        OutboxSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        // What is queued goes with the session.
        self.shared.queue().clear();
    }
}

impl OutboxSender {
    /// Queues `envelope` without waiting; fails (and marks the outbox overflowed) when a
    /// bound would be passed.
    pub fn try_push(&self, envelope: Arc<Envelope>) -> Result<(), Overflow> {
        let shared = &*self.shared;
        if shared.overflowed.load(Ordering::Relaxed) || shared.closed.load(Ordering::Relaxed) {
            return Err(Overflow);
        }
        let weight = envelope.weight();
        let before = shared.bytes.fetch_add(weight, Ordering::Relaxed);
        let pushed = before + weight <= shared.max_bytes && {
            let mut queue = shared.queue();
            let room = queue.len() < shared.max_frames;
            if room {
                queue.push_back(envelope);
            }
            room
        };
        if !pushed {
            shared.bytes.fetch_sub(weight, Ordering::Relaxed);
            shared.overflowed.store(true, Ordering::Relaxed);
        }
        shared.wake.notify_one();
        if pushed { Ok(()) } else { Err(Overflow) }
    }

    /// Whether the receiving session is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }
}

impl Outbox {
    /// The next envelope; `Ok(None)` once every sender is gone and nothing is left;
    /// `Err(Overflow)` once the outbox overflowed.
    pub async fn recv(&mut self) -> Result<Option<Arc<Envelope>>, Overflow> {
        loop {
            // Registered before looking, so a push between the look and the wait wakes it.
            let notified = self.shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.overflowed.load(Ordering::Relaxed) {
                return Err(Overflow);
            }
            if let Some(envelope) = self.pop() {
                return Ok(Some(envelope));
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return Ok(None);
            }
            notified.await;
        }
    }

    /// The next envelope if one is queued now (for batching writes).
    pub fn try_recv(&mut self) -> Option<Arc<Envelope>> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return None;
        }
        self.pop()
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    fn pop(&self) -> Option<Arc<Envelope>> {
        let envelope = self.shared.queue().pop_front()?;
        self.shared
            .bytes
            .fetch_sub(envelope.weight(), Ordering::Relaxed);
        Some(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;
    use bytes::Bytes;
    use chathub_domain::TenantId;

    fn env(n: usize) -> Arc<Envelope> {
        let ch = Channel::agents(&TenantId::new("t").unwrap());
        Arc::new(Envelope::new(ch, None, Bytes::from(vec![0u8; n])))
    }

    #[tokio::test]
    async fn frame_bound_overflows_and_stays_overflowed() {
        let (tx, mut rx) = channel(2, 1000);
        assert!(tx.try_push(env(1)).is_ok());
        assert!(tx.try_push(env(1)).is_ok());
        assert_eq!(tx.try_push(env(1)), Err(Overflow));
        assert_eq!(tx.try_push(env(1)), Err(Overflow));
        assert!(rx.recv().await.is_err());
    }

    #[tokio::test]
    async fn byte_budget_overflow_wakes_an_idle_receiver() {
        let (tx, mut rx) = channel(100, 10);
        assert!(tx.try_push(env(6)).is_ok());
        assert_eq!(rx.queued_bytes(), 6);
        assert!(rx.recv().await.unwrap().is_some());
        assert_eq!(rx.queued_bytes(), 0);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert_eq!(tx.try_push(env(11)), Err(Overflow));
        assert!(matches!(waiter.await.unwrap(), Err(Overflow)));
    }

    #[tokio::test]
    async fn order_is_kept_and_the_last_sender_ends_the_stream() {
        let (tx, mut rx) = channel(10, 1000);
        let other = tx.clone();
        for n in 1..=3 {
            assert!(tx.try_push(env(n)).is_ok());
        }
        let sizes: Vec<usize> = (0..3)
            .map(|_| rx.try_recv().unwrap().msgpack.len())
            .collect();
        assert_eq!(sizes, vec![1, 2, 3]);
        assert!(rx.try_recv().is_none());
        // A waiting session wakes for a push, then for the last sender leaving.
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await.unwrap().map(|e| e.msgpack.len());
            let end = rx.recv().await.unwrap().is_none();
            (first, end)
        });
        tokio::task::yield_now().await;
        assert!(other.try_push(env(7)).is_ok());
        drop(other);
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(waiter.await.unwrap(), (Some(7), true));
    }

    #[tokio::test]
    async fn a_dropped_outbox_refuses_pushes() {
        let (tx, rx) = channel(10, 1000);
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_push(env(1)), Err(Overflow));
    }
}
