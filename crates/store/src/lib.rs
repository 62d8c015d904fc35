//! Stores behind the gateway: conversation state and history (read side), read marks and
//! the tenant's queue index. Each store is a trait whose docs state its guarantees, with a
//! memory implementation here (the embedded default).
//!
//! # Layout
//! - [`ConversationStore`]: the read side every backend offers to the gateway.
//! - [`memory`]: the embedded backend's data ([`MemoryStore`]), also written by the
//!   memory ownership twin under one lock per conversation.
//! - [`workspace`]: the agent workspace's data ([`WorkspaceStore`]): tenant settings,
//!   engagements, profiles and history, canned responses, presence; with
//!   [`MemoryWorkspace`] and [`RedisWorkspace`].
//! - [`jobs`]: durable jobs after a command (the offline webhook's), memory and Redis.
//! - `rows`: the rows the stores keep ([`QueueEntry`], [`InboxEntry`], [`Receipt`]).
//! - [`sqlite`]: the embedded default's data directory: every change of the memory
//!   stores kept in SQLite before it is applied (group commit), read back at start.
//! - [`report`]: one row per conversation cycle, and the day's totals, from events.
//! - [`search`]: full-text search of a tenant's messages: the query language (parsed
//!   once for every backend), filters, hits.
//! - [`postgres`]: cluster mode's archive (the record tier in PostgreSQL): idempotent
//!   upserts, deep history, search, reports.
//! - [`redis`]: the Redis key layout ([`RedisKeys`]) and the Redis read side
//!   ([`RedisStore`]); the ownership crate's scripts write the same keys.

/// Defaults shared by every backend's configuration and the binary's flags (written
/// once here).
pub mod defaults {
    /// Events kept per conversation in the hot tier.
    pub const HISTORY_MAX_LEN: usize = 10_000;
    /// How long a `client_msg_id` is remembered, in seconds.
    pub const DEDUP_WINDOW_SECS: u64 = 600;
    /// Queue changes kept per tenant for consoles catching up.
    pub const INBOX_MAX_LEN: usize = 10_000;
    /// Connections to the archive per node, at most.
    pub const ARCHIVE_POOL_SIZE: usize = 8;
    /// How long a command's follow-up may stand undone before sweepers redo it, ms.
    pub const SWEEP_GRACE_MS: u64 = 1000;
    /// A node's sweep lease, and the heartbeat age past which it is dead, ms.
    pub const SWEEP_LEASE_MS: u64 = 2000;
    /// How often a node sweeps its share unasked, seconds.
    pub const SWEEP_BACKSTOP_SECS: u64 = 30;
}

pub mod audit;
mod indexed;
pub mod jobs;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod report;
mod rows;
pub mod search;
pub mod sqlite;
pub mod workspace;
mod workspace_memory;
mod workspace_redis;

pub use audit::{AuditAction, AuditEntry, AuditPage};
pub use jobs::{MemoryJobs, RedisJobs, WebhookJob, WebhookJobs};
pub use memory::{ConversationRecord, MemoryStore, MemoryStoreConfig};
pub use redis::{KeyName, PendingShard, PendingSharding, RedisKeys, RedisStore};
pub use rows::{InboxEntry, QueueEntry, Receipt};
pub use workspace::{
    AlertSchedule, AlertStep, AlertTarget, BotSettings, DEFAULT_EDIT_WINDOW_SECS,
    EngagementHistoryPage, ErasedUser, Heartbeat, MAX_ALERT_STEPS, Presence, PresenceEntry,
    RedeemRefusal, ReleasePolicy, SurveySettings, TenantSettings, TimerPolicies, WorkspaceStore,
};
pub use workspace_memory::MemoryWorkspace;
pub use workspace_redis::RedisWorkspace;

use chathub_domain::{ConversationId, ConversationState, Event, Participant, Status, TenantId};
use std::future::Future;

/// Errors of a store. Each variant's doc says what the caller should do; [`code`] and
/// [`is_retryable`] classify them so no caller matches on messages.
///
/// [`code`]: StoreError::code
/// [`is_retryable`]: StoreError::is_retryable
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable, timed out or is loading: retry later.
    #[error("store unavailable: {source}")]
    Unavailable {
        /// What failed underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data could not be decoded: a bug or a foreign write, not an outage.
    /// Retrying does not help; report it.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The backend refused the command for good (a script error, a wrong type): a bug.
    /// Retrying does not help.
    #[error("store internal error: {0}")]
    Internal(String),
    /// A cursor or range given by a client is not valid: answer `bad_request`.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl StoreError {
    /// The protocol error code a client gets for this error.
    pub fn code(&self) -> chathub_protocol::ErrorCode {
        use chathub_protocol::ErrorCode;
        match self {
            StoreError::Unavailable { .. } => ErrorCode::Unavailable,
            StoreError::Invalid(_) => ErrorCode::BadRequest,
            StoreError::Corrupt { .. } | StoreError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// Classifies a Redis error: the connection's failures are outages, the server's
    /// permanent refusals (script errors, wrong types) are internal errors.
    pub fn from_redis(e: ::redis::RedisError) -> StoreError {
        if is_outage(&e) {
            StoreError::Unavailable {
                source: Box::new(e),
            }
        } else {
            StoreError::Internal(e.to_string())
        }
    }

    /// Data read back that does not decode.
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

/// Whether a Redis error is an outage (retry later) rather than a permanent refusal:
/// redis-rs's own classification (`retry_method`), not the message.
pub fn is_outage(e: &::redis::RedisError) -> bool {
    !matches!(e.retry_method(), ::redis::RetryMethod::NoRetry)
}

/// Which slice of a conversation's history to read. Every slice is returned oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The newest `limit` events.
    Latest {
        /// Page size.
        limit: usize,
    },
    /// The newest `limit` events with `seq < before`.
    Before {
        /// Exclusive upper bound.
        before: u64,
        /// Page size.
        limit: usize,
    },
    /// The oldest `limit` events with `seq > after`.
    After {
        /// Exclusive lower bound.
        after: u64,
        /// Page size.
        limit: usize,
    },
}

/// A slice of history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistorySlice {
    /// Events, oldest first, consecutive `seq`s.
    pub events: Vec<Event>,
    /// Whether more retained events lie beyond the slice in the direction read.
    pub has_more: bool,
}

/// One page of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueuePage {
    /// Entries in the status's order.
    pub items: Vec<QueueEntry>,
    /// Cursor for the next page, `None` on the last.
    pub next_cursor: Option<String>,
}

/// A slice of the tenant's inbox stream (its queue changes, in order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboxSlice {
    /// Queue entries after the position asked for, oldest first, each with its `cursor`.
    pub items: Vec<InboxEntry>,
    /// Whether more entries follow this slice.
    pub has_more: bool,
    /// Whether the position asked for is older than the retained stream.
    pub truncated: bool,
    /// The newest position of the stream (`None` while it is empty).
    pub latest: Option<String>,
}

/// What a retention trim removed (counts of records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Trimmed {
    /// Events of the hot tier (memory, or Redis's history streams).
    pub hot_events: u64,
    /// Events of the record tier (the data directory, or the archive), each with its
    /// search entry.
    pub record_events: u64,
    /// Changes of the tenant's inbox stream.
    pub inbox_changes: u64,
}

/// The read side of conversations and the tenant queue.
///
/// Guarantees: reads see every command whose `apply` has returned (read-your-writes on
/// one node); history is ordered by `seq` with no gaps inside the retained window.
pub trait ConversationStore: Send + Sync + 'static {
    /// The conversation's state; the default (status `new`, seq 0) when it has no event.
    fn state(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<ConversationState, StoreError>> + Send;

    /// A slice of the conversation's history. A conversation without history gives an
    /// empty slice, not an error.
    fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
    ) -> impl Future<Output = Result<HistorySlice, StoreError>> + Send;

    /// The tenant's conversations in `status`: unanswered oldest first (longest waiting
    /// first), active and finished most recently changed first. `cursor` is the
    /// `next_cursor` of the previous page.
    fn list(
        &self,
        tenant: &TenantId,
        status: Status,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<QueuePage, StoreError>> + Send;

    /// Records that `by` has seen the conversation up to `seq` (clamped to the
    /// conversation's last `seq`). Returns the new mark, or `None` (and changes nothing)
    /// when the mark would not move forward or the conversation has no events.
    fn set_read(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        by: &Participant,
        seq: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// The tenant's queue changes after inbox position `since` (at most `limit`); with
    /// `since: None` only the newest position. An unreadable `since` is
    /// [`StoreError::Invalid`].
    fn inbox_after(
        &self,
        tenant: &TenantId,
        since: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<InboxSlice, StoreError>> + Send;

    /// The tenant's conversations (any status but `new`) whose last change is older
    /// than `before` (ms), oldest first, at most `limit`: the retention sweep's
    /// candidates, each with the `seq` its entry reflects.
    fn idle(
        &self,
        tenant: &TenantId,
        before: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueueEntry>, StoreError>> + Send;

    /// Every participant's read mark, ordered by participant.
    fn reads(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<Vec<(Participant, u64)>, StoreError>> + Send;
}

/// Queue cursors are `"<sort time>:<conversation>"`; this parses one.
pub fn parse_cursor(cursor: &str) -> Result<(u64, ConversationId), StoreError> {
    let (time, conversation) = cursor
        .split_once(':')
        .ok_or(StoreError::Invalid("cursor"))?;
    let time = time.parse().map_err(|_| StoreError::Invalid("cursor"))?;
    let conversation = conversation
        .parse()
        .map_err(|_| StoreError::Invalid("cursor"))?;
    Ok((time, conversation))
}

/// One page of a time-ordered list: sorts `items` by `(time, id)` — oldest first, or
/// newest first when `newest_first` — keeps those strictly past the `cursor` position
/// (`(time, id)` of the previous page's last item) in that direction, and cuts the page
/// at `limit`. Returns the page and the next page's cursor, `"<time>:<id>"` (absent on
/// the last page). Shared by every backend's paged lists so they page alike.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u64, String),
    newest_first: bool,
    cursor: Option<&(u64, String)>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    items.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if newest_first { o.reverse() } else { o }
    });
    if let Some(cursor) = cursor {
        items.retain(|i| {
            let k = key(i);
            if newest_first {
                k < *cursor
            } else {
                k > *cursor
            }
        });
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more
        .then(|| {
            items.last().map(|i| {
                let (time, id) = key(i);
                format!("{time}:{id}")
            })
        })
        .flatten();
    (items, next)
}

/// The retention sweep's candidates in their order (oldest change first, one entry per
/// conversation), at most `limit`: shared by every backend's `idle`.
pub(crate) fn oldest_changes_first(mut entries: Vec<QueueEntry>, limit: usize) -> Vec<QueueEntry> {
    entries.sort_by(|a, b| (a.updated, &a.conversation).cmp(&(b.updated, &b.conversation)));
    entries.dedup_by(|a, b| a.conversation == b.conversation);
    entries.truncate(limit);
    entries
}

/// The time an entry sorts by in its status's list: entering the queue for unanswered,
/// the last change otherwise.
pub fn sort_time(item: &QueueEntry) -> u64 {
    match item.status {
        Status::Unanswered => item.since,
        _ => item.updated,
    }
}
