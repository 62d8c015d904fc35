//! The bounded per-session outbound queue.
//!
//! Bounded twice: by frame count and by bytes. Pushing never waits: when either bound is
//! passed the outbox is marked overflowed, the push fails, and the session closes with the
//! "slow consumer" code; the client reconnects and resumes from history. So a slow client
//! never slows the node or other clients.

use crate::envelope::Envelope;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

/// The outbox overflowed: the session must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outbox overflowed")]
pub struct Overflow;

struct Shared {
    bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    wake: Notify,
}

/// The pushing side, held by the hub for each subscription of the session.
#[derive(Clone)]
pub struct OutboxSender {
    tx: mpsc::Sender<Arc<Envelope>>,
    shared: Arc<Shared>,
}

/// The receiving side, owned by the session.
pub struct Outbox {
    rx: mpsc::Receiver<Arc<Envelope>>,
    shared: Arc<Shared>,
}

/// A new outbox holding at most `max_frames` frames and `max_bytes` bytes.
pub fn channel(max_frames: usize, max_bytes: usize) -> (OutboxSender, Outbox) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        max_bytes,
        overflowed: AtomicBool::new(false),
        wake: Notify::new(),
    });
    (
        OutboxSender {
            tx,
            shared: shared.clone(),
        },
        Outbox { rx, shared },
    )
}

impl OutboxSender {
    /// Queues `envelope` without waiting; fails (and marks the outbox overflowed) when a
    /// bound would be passed.
    pub fn try_push(&self, envelope: Arc<Envelope>) -> Result<(), Overflow> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Err(Overflow);
        }
        let weight = envelope.weight();
        let before = self.shared.bytes.fetch_add(weight, Ordering::Relaxed);
        if before + weight > self.shared.max_bytes || self.tx.try_send(envelope).is_err() {
            self.shared.bytes.fetch_sub(weight, Ordering::Relaxed);
            self.shared.overflowed.store(true, Ordering::Relaxed);
            self.shared.wake.notify_one();
            return Err(Overflow);
        }
        Ok(())
    }

    /// Whether the receiving session is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Outbox {
    /// The next envelope; `Err(Overflow)` once the outbox overflowed.
    pub async fn recv(&mut self) -> Result<Option<Arc<Envelope>>, Overflow> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Err(Overflow);
        }
        tokio::select! {
            biased;
            _ = self.shared.wake.notified() => Err(Overflow),
            item = self.rx.recv() => Ok(item.map(|e| self.taken(e))),
        }
    }

    /// The next envelope if one is queued now (for batching writes).
    pub fn try_recv(&mut self) -> Option<Arc<Envelope>> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return None;
        }
        self.rx.try_recv().ok().map(|e| self.taken(e))
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    fn taken(&self, e: Arc<Envelope>) -> Arc<Envelope> {
        self.shared.bytes.fetch_sub(e.weight(), Ordering::Relaxed);
        e
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
}
