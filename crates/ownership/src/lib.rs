//! Atomic application of conversation-changing commands.
//!
//! An [`Ownership`] backend applies one command as one indivisible step: run the domain
//! state machine against the current state, and if it applies, store the new state,
//! append its events to history with consecutive `seq`s, remember the send's idempotency
//! key, and publish the events on the conversation's channel — so publish order equals
//! `seq` order and a lost race changes nothing. With the tenant's queue entry (in the same
//! step on a single Redis and in the memory twin; on a Redis Cluster in a second,
//! idempotent step keyed by `(conversation, seq)`, since the tenant's keys are another
//! slot) go what the command owes beyond its events: the queue frame to the agents, the
//! previous owner's `ownership_lost` notice, the end user's "received" engagement record
//! and the offline webhook's durable job. The gateway does nothing between the step and
//! its reply that a node's death could lose.
//!
//! # Layout
//! - [`Ownership`], [`ApplyRequest`], [`Decision`]: the contract.
//! - [`frames`]: the specification of what a step writes beyond its events (queue
//!   entries and previews, notices, records, jobs); the scripts restate it.
//! - [`memory`]: the embedded twin (one lock per conversation).
//! - [`redis`]: the Redis backend: `lua/apply.lua` (the state machine restated, one
//!   atomic step per command, which on a single Redis also updates the tenant's queue;
//!   a node's commands that arrive while its previous call is in flight go in one call
//!   per slot, each still decided in order: group commit, `redis::apply`) and
//!   `lua/inbox.lua` (the tenant's queue as a second, batched step on a Redis Cluster);
//!   both start with `lua/inbox_entry.lua` (one queue entry, and the follow-ups). What a
//!   step leaves for later — that second step, the archive's copy — is marked by the step
//!   itself and settled by `lua/settle.lua`, or redone by the sweepers of the other
//!   nodes if the applying node dies (`redis::followups`).

pub mod alerts;
pub mod frames;
pub mod memory;
pub mod redis;

pub use alerts::{AlertDue, AlertMarks, AlertRequest, TenantAlertMarks};
pub use memory::MemoryOwnership;
pub use redis::{RedisOwnership, RedisOwnershipConfig};

use chathub_domain::{
    Actor, AgentId, Command, Context, ConversationId, ConversationState, Event, Refusal, TenantId,
};
use chathub_store::Receipt;
use std::future::Future;

/// Errors of an ownership backend (not outcomes: losing a race is [`Decision::Conflict`]).
/// [`code`](OwnershipError::code) and [`is_retryable`](OwnershipError::is_retryable)
/// classify them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// The backend is unreachable or timed out; whether the command applied is unknown.
    /// Retrying a send with the same `client_msg_id` is safe.
    #[error("ownership backend unavailable: {source}")]
    Unavailable {
        /// What failed underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend's answer or stored state could not be decoded: a bug or a foreign
    /// write. Retrying does not help.
    #[error("corrupt ownership data: {0}")]
    Corrupt(String),
    /// The backend refused the command for good (a script error, an unknown outcome):
    /// a bug. Retrying does not help.
    #[error("ownership internal error: {0}")]
    Internal(String),
}

impl OwnershipError {
    /// The protocol error code a client gets for this error.
    pub fn code(&self) -> chathub_protocol::ErrorCode {
        match self {
            OwnershipError::Unavailable { .. } => chathub_protocol::ErrorCode::Unavailable,
            OwnershipError::Corrupt(_) | OwnershipError::Internal(_) => {
                chathub_protocol::ErrorCode::Internal
            }
        }
    }

    /// Whether the same command may succeed later (with the same `client_msg_id`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, OwnershipError::Unavailable { .. })
    }

    /// Carries a store's error over: an outage stays one, the rest are corrupt data or
    /// bugs.
    pub fn from_store(e: chathub_store::StoreError) -> OwnershipError {
        use chathub_store::StoreError;
        match e {
            StoreError::Unavailable { source } => OwnershipError::Unavailable { source },
            StoreError::Corrupt { .. } => OwnershipError::Corrupt(e.to_string()),
            other => OwnershipError::Internal(other.to_string()),
        }
    }

    /// Classifies a Redis error by redis-rs's own retry method.
    pub fn from_redis(e: ::redis::RedisError) -> OwnershipError {
        if chathub_store::is_outage(&e) {
            OwnershipError::Unavailable {
                source: Box::new(e),
            }
        } else {
            OwnershipError::Internal(e.to_string())
        }
    }
}

/// One command to apply.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// Who issues it (scope already checked by the caller).
    pub actor: Actor,
    /// What to do.
    pub command: Command,
    /// Time of the command, ms since the Unix epoch (stamped on its events).
    pub at: u64,
    /// Tenant-wide facts the rules need (read by the caller just before).
    pub context: Context,
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Applied (or, for a retried send, applied before).
    Done {
        /// The conversation's state after the command.
        state: ConversationState,
        /// For sends: the acknowledgement, identical for every retry of the same
        /// `client_msg_id` within the dedup window.
        ack: Option<Receipt>,
        /// The events this command recorded (empty for a retried send, or when nothing
        /// changed), for follow-up notifications.
        events: Vec<Event>,
        /// When the command took the conversation out of the unanswered queue (a take,
        /// or finishing it unanswered): the time it had entered the queue, from the
        /// queue entry the step replaced. For the waiting-time metrics.
        queued_since: Option<u64>,
    },
    /// Lost a race: the epoch moved. Nothing changed and nothing was delivered.
    Conflict {
        /// Who owns it now.
        owner: Option<AgentId>,
        /// The epoch now.
        epoch: u64,
    },
    /// Refused by the rules; nothing changed.
    Refused(Refusal),
    /// An erasure ([`Command::Erase`], or retention's [`Command::Expire`]) done: the conversation's data is gone from every
    /// store of this backend (an erasure of a `new` conversation — nothing to erase — is
    /// [`Decision::Done`] with no events).
    Erased {
        /// The state it left: status `new`, the counters.
        state: ConversationState,
        /// What went from where.
        removed: Erased,
    },
}

/// What an erasure removed, store by store (counts of records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// Events of the hot tier (memory, or Redis's history stream).
    pub history_events: u64,
    /// Events of the record tier (the data directory, or the PostgreSQL archive), each
    /// with its entry of the search index.
    pub archived_events: u64,
    /// Remembered answers of sends (idempotency keys).
    pub idempotency_keys: u64,
    /// Read marks.
    pub read_marks: u64,
    /// The conversation's entry in the tenant's queue.
    pub queue_entries: u64,
    /// Its changes in the tenant's inbox stream (consoles catching up).
    pub inbox_changes: u64,
    /// Pending offline-webhook deliveries.
    pub webhook_jobs: u64,
}

impl Erased {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

/// Applies commands atomically (see the crate docs for the guarantees).
pub trait Ownership: Send + Sync + 'static {
    /// Applies one command.
    fn apply(
        &self,
        request: ApplyRequest,
    ) -> impl Future<Output = Result<Decision, OwnershipError>> + Send;

    /// Sends the alerts of `request` that are still owed, in one atomic step with the
    /// tenant's queue entry (see [`alerts`]): only while the conversation is unanswered
    /// in the cycle the caller saw, each occurrence once. Returns the steps sent.
    fn alert(
        &self,
        request: AlertRequest,
    ) -> impl Future<Output = Result<Vec<u32>, OwnershipError>> + Send;

    /// The tenant's alert marks (what the alert sweep already sent).
    fn alert_marks(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<TenantAlertMarks, OwnershipError>> + Send;

    /// Forgets the marks of the waits in `stale` (each a conversation and the wait its
    /// marks are about, which is over): only while they are still about that wait, so a
    /// mark another round just wrote for a new wait stays.
    fn forget_alerts(
        &self,
        tenant: &TenantId,
        stale: &[(ConversationId, AlertMarks)],
    ) -> impl Future<Output = Result<(), OwnershipError>> + Send;
}

/// Why `command` (an erasure) erases, as the `erased` notice says.
pub(crate) fn erasure_reason(command: &chathub_domain::Command) -> chathub_protocol::ErasureReason {
    match command {
        chathub_domain::Command::Expire { .. } => chathub_protocol::ErasureReason::Retention,
        _ => chathub_protocol::ErasureReason::Erasure,
    }
}
