//! What a step leaves pending, and how it gets done even when the node that applied it
//! dies: the tenant's queue entry on a Redis Cluster (the second step, another slot) and
//! the archive's copy of the events (PostgreSQL).
//!
//! The apply script records one mark per follow-up, in the same atomic step as the
//! command, in the conversation's shard of pending follow-ups (a sorted set whose hash tag
//! falls in the conversation's slot: [`chathub_store::RedisKeys::pending`]). The applying
//! node does the follow-up at once and settles it (`lua/settle.lua`: a watermark in the
//! conversation's state hash, the mark removed). A mark that has made no progress for
//! [`SweepConfig::grace`] is stale, and sweepers redo it from Redis alone: the state and
//! the history since the watermark. Both follow-ups are idempotent by
//! `(conversation, seq)`, so doing one twice is harmless.
//!
//! Sweeping is cheap because it is rare. The nodes heartbeat in a sorted set; the shards
//! are split in [`SWEEP_RANGES`] ranges, leased (a fair share each: no two nodes sweep the
//! same conversation at once). A node sweeps a range when it acquires its lease, when any
//! node is found dead or a node's follow-ups failed (a shared counter, the sweep epoch,
//! moves), and every [`SweepConfig::backstop`] otherwise.

use super::{InboxUpdate, RedisOwnership};
use chathub_domain::{ConversationId, ConversationState, Event, TenantId};
use chathub_store::postgres::ArchiveItem;
use chathub_store::{ConversationStore, HistoryRange, PendingShard, RedisStore};
use futures::StreamExt;
use redis::Script;
use redis::aio::ConnectionLike;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/trim.lua"),
        include_str!("lua/settle.lua")
    ))
});

/// An erasure's second step on a Redis Cluster: the tenant's queue.
static ERASE_QUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/erase_entry.lua"),
        include_str!("lua/erase_queue.lua")
    ))
});

/// Renews a lease held by this node: `PEXPIRE` only if the value is ours.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Releases a lease held by this node.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Leased ranges the shards are split into (fewer when there are fewer shards).
pub const SWEEP_RANGES: u16 = 16;

/// Marks read from a shard per call.
const SCAN_BATCH: usize = 100;

/// Shards of a range swept concurrently.
const SCAN_CONCURRENCY: usize = 32;

/// History events read per call when redoing a follow-up.
const REPAIR_CHUNK: usize = 500;

/// Settlements and archive jobs waiting for their writer, per node. Past it an archive
/// job is dropped (its mark stays: a sweeper does it) and settling waits.
const FOLLOWUP_QUEUE: usize = 8192;

/// Most archive jobs in one PostgreSQL transaction.
const ARCHIVE_BATCH: usize = 512;

/// Settings of the sweepers.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// How often a node heartbeats, renews its leases and checks for work. Default 500 ms.
    pub tick: Duration,
    /// How long a lease lasts unrenewed; a node whose heartbeat is older is dead.
    /// Default 2 s.
    pub lease: Duration,
    /// How long a mark may stand without progress before sweepers redo it. Default 1 s.
    pub grace: Duration,
    /// How often a node sweeps its ranges when nothing asked for it. Default 30 s.
    pub backstop: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        use chathub_store::defaults::{SWEEP_BACKSTOP_SECS, SWEEP_GRACE_MS, SWEEP_LEASE_MS};
        SweepConfig {
            tick: Duration::from_millis(SWEEP_LEASE_MS / 4),
            lease: Duration::from_millis(SWEEP_LEASE_MS),
            grace: Duration::from_millis(SWEEP_GRACE_MS),
            backstop: Duration::from_secs(SWEEP_BACKSTOP_SECS),
        }
    }
}

/// A fault to inject, for the tests that kill a node at the worst moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultPoint {
    /// Abort the process right after a command's atomic step, before its follow-ups
    /// (the queue's second step on a Redis Cluster, the archive copy; an erasure's
    /// second step).
    AbortAfterStep,
}

/// The queues of the node's settler and archiver (started at first use). The
/// background tasks' own handles hold none, so that the queues close, and the tasks
/// end, with the last handle of the backend.
#[derive(Default)]
pub(crate) struct FollowupQueues {
    settle: OnceLock<mpsc::Sender<Settle>>,
    archive: OnceLock<mpsc::Sender<ArchiveJob>>,
}

/// The node's follow-up state, shared by every handle of one backend.
#[derive(Default)]
pub(crate) struct Followups {
    /// When (ms) a follow-up last failed here, 0 for never since the last sweep epoch
    /// this node started: once its mark is stale (a grace later) and Redis (and the
    /// archive) answer, every node should sweep.
    owes_sweep: AtomicU64,
    /// The archive's last write failed (cleared by a successful write or ping).
    archive_down: AtomicBool,
    /// The time (ms) of the oldest event this node failed to archive since the archive
    /// went down; 0 when none.
    unarchived_since: AtomicU64,
    /// The delay of the last archive write, ms (event time to commit).
    last_delay_ms: AtomicU64,
}

impl Followups {
    /// Records that a follow-up failed now (see `owes_sweep`).
    fn owe_sweep(&self) {
        self.owes_sweep.store(now_ms().max(1), Ordering::Relaxed);
    }
}

/// Follow-ups done: settle their marks.
pub(crate) struct Settle {
    pub tenant: TenantId,
    pub conversation: ConversationId,
    /// The seqs (inclusive intervals) whose queue follow-ups are done.
    pub queued: Vec<(u64, u64)>,
    /// The seqs (inclusive intervals) archived.
    pub archived: Vec<(u64, u64)>,
}

/// Intervals as `lua/settle.lua` takes them: `a-b,c-d`.
fn intervals_text(intervals: &[(u64, u64)]) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    for (i, (first, last)) in intervals.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(text, "{sep}{first}-{last}");
    }
    text
}

/// Parses `a-b,c-d` (what is done past a watermark).
fn parse_intervals(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .filter_map(|iv| {
            let (a, b) = iv.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// One follow-up's watermark and what is done past it.
struct Watermark {
    done: u64,
    ahead: Vec<(u64, u64)>,
}

impl Watermark {
    /// Whether `seq`'s follow-up is done.
    fn covers(&self, seq: u64) -> bool {
        seq <= self.done || self.ahead.iter().any(|&(a, b)| a <= seq && seq <= b)
    }
}

/// Events to copy to the archive.
pub(crate) struct ArchiveJob {
    pub tenant: TenantId,
    pub conversation: ConversationId,
    pub state: ConversationState,
    pub events: Vec<Event>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// The follow-ups a step leaves pending, as `apply.lua` takes them.
    pub(crate) fn pending_marks(&self) -> &'static str {
        match (self.config.cluster, self.config.archive.is_some()) {
            (true, true) => "qa",
            (true, false) => "q",
            (false, true) => "a",
            (false, false) => "",
        }
    }

    /// How the pending sets are sharded.
    fn sharding(&self) -> chathub_store::PendingSharding {
        if self.config.cluster {
            chathub_store::PendingSharding::PerSlot
        } else {
            chathub_store::PendingSharding::One
        }
    }

    /// The conversation's pending set.
    pub(crate) fn pending_key(&self, t: &TenantId, c: &ConversationId) -> String {
        self.keys
            .pending(self.keys.pending_shard(t, c, self.sharding()))
    }

    /// Whether the archive answers (`None`: no archive).
    pub fn archive_healthy(&self) -> Option<bool> {
        self.config
            .archive
            .as_ref()
            .map(|_| !self.followups.archive_down.load(Ordering::Relaxed))
    }

    /// Queues the settlement of a follow-up done (the settler applies them in batches).
    pub(crate) async fn settle_later(&self, settle: Settle) {
        let tx = self.followup_queues.settle.get_or_init(|| {
            let (tx, rx) = mpsc::channel(FOLLOWUP_QUEUE);
            self.tasks.spawn(settle_loop(self.detached(), rx));
            tx
        });
        if tx.send(settle).await.is_err() {
            // The runtime is going away: the mark stays, a sweeper settles it.
            self.followups.owe_sweep();
        }
    }

    /// Hands a step's events to the archiver; never waits (a full queue leaves the job
    /// to the sweepers: its mark stays).
    pub(crate) fn archive_later(&self, job: ArchiveJob) {
        if self.config.archive.is_none() {
            return;
        }
        let tx = self.followup_queues.archive.get_or_init(|| {
            let (tx, rx) = mpsc::channel(FOLLOWUP_QUEUE);
            self.tasks.spawn(archive_loop(self.detached(), rx));
            tx
        });
        if tx.try_send(job).is_err() {
            ::metrics::counter!("chathub_archive_deferred_total").increment(1);
            self.followups.owe_sweep();
        }
    }

    /// A handle for the node's own background tasks: one that holds no queue of
    /// theirs, so that the queues close (and the tasks end) with the last user handle.
    pub(crate) fn detached(&self) -> RedisOwnership<C> {
        RedisOwnership {
            inbox_writer: Default::default(),
            apply_writer: Default::default(),
            followup_queues: Default::default(),
            ..self.clone()
        }
    }

    /// Applies settlements, one script call per conversation (concurrently).
    async fn settle_now(&self, settles: &[Settle]) -> bool {
        let now = now_ms();
        let (hot_len, hot_age) = (self.config.history_max_len, self.config.history_max_age_ms);
        let calls = settles.iter().map(|s| {
            let mut conn = self.conn.clone();
            let mut call = SETTLE.prepare_invoke();
            call.key(self.keys.state(&s.tenant, &s.conversation))
                .key(self.pending_key(&s.tenant, &s.conversation))
                .key(self.keys.history(&s.tenant, &s.conversation))
                .arg(format!("{}/{}", s.tenant, s.conversation))
                .arg(intervals_text(&s.queued))
                .arg(intervals_text(&s.archived))
                .arg(now)
                .arg(hot_len)
                .arg(hot_age);
            async move { call.invoke_async::<Vec<u64>>(&mut conn).await }
        });
        let mut ok = true;
        for result in futures::future::join_all(calls).await {
            if let Err(e) = result {
                tracing::debug!(error = %e, "settling a follow-up failed");
                ok = false;
            }
        }
        if !ok {
            self.shared_state().owe_sweep();
        }
        ok
    }

    /// The follow-up state shared with the handles users hold.
    fn shared_state(&self) -> &Followups {
        &self.followups
    }

    /// Starts this node's sweeper under the backend's tasks; `node` names the node in
    /// the heartbeat set and on its leases (unique per process). The first heartbeat is
    /// written before this returns, so that a node dying at its very first command is
    /// still found dead (best effort: if Redis does not answer, the sweeper's next tick
    /// writes it).
    pub async fn start_sweeper(&self, node: String) {
        if self.pending_marks().is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let first = redis::cmd("ZADD")
            .arg(self.keys.nodes())
            .arg(now_ms())
            .arg(&node)
            .exec_async(&mut conn)
            .await;
        if let Err(e) = first {
            tracing::warn!(error = %e, "first heartbeat failed");
        }
        self.tasks.spawn(sweep_loop(self.detached(), node));
        if self.config.archive.is_some() {
            self.tasks.spawn(probe_archive(self.detached()));
        }
    }

    /// Redoes one stale mark (`<kind>:<tenant>/<conversation>`) of the pending set `key`.
    /// Returns whether it could (false: Redis or the archive failed; the mark stays).
    async fn repair(&self, key: &str, member: &str) -> bool {
        let parsed = member.split_once(':').and_then(|(kind, rest)| {
            let (t, c) = rest.split_once('/')?;
            let kind = match kind {
                "q" => "queue",
                "a" => "archive",
                "e" => "erasure",
                _ => return None,
            };
            Some((kind, TenantId::new(t).ok()?, ConversationId::new(c).ok()?))
        });
        let Some((kind, tenant, conversation)) = parsed else {
            // Not ours to redo (a foreign write, or a newer release's kind): removed, so
            // that the sweep does not read it again and again.
            tracing::warn!(member, "a pending mark this node cannot read; removed");
            let mut conn = self.conn.clone();
            return redis::cmd("ZREM")
                .arg(key)
                .arg(member)
                .exec_async(&mut conn)
                .await
                .is_ok();
        };
        let result = match kind {
            "queue" => self.repair_queue(&tenant, &conversation).await,
            "erasure" => self
                .finish_erasure(&tenant, &conversation)
                .await
                .map(|_| ()),
            _ => self.repair_archive(&tenant, &conversation).await,
        };
        match result {
            Ok(()) => {
                ::metrics::counter!("chathub_followups_repaired_total", "kind" => kind)
                    .increment(1);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, member, "redoing a follow-up failed");
                false
            }
        }
    }

    /// What an erasure leaves after its step (`lua/apply.lua`, `erase`): the conversation
    /// out of the tenant's queue on a Redis Cluster (another slot), its events out of the
    /// archive; then its mark removed. Idempotent and keyed by the erased `seq` the step
    /// kept: run by the node that erased, by a caller erasing again, and by the sweepers
    /// when that node died. Returns what it removed (nothing: done before, or no erasure).
    pub(crate) async fn finish_erasure(
        &self,
        t: &TenantId,
        c: &ConversationId,
    ) -> Result<crate::Erased, chathub_store::StoreError> {
        use chathub_store::StoreError;
        let mut conn = self.conn.clone();
        let (seq, epoch, reason): (Option<u64>, Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.state(t, c))
            .arg(&["erased", "epoch", "erased_reason"])
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from_redis)?;
        let mut removed = crate::Erased::default();
        let Some(seq) = seq else {
            return Ok(removed);
        };
        let epoch = epoch.unwrap_or(0);
        if self.config.cluster {
            let frame = chathub_protocol::ServerFrame::Erased(chathub_protocol::ErasedFrame {
                conversation: c.clone(),
                seq,
                reason: match reason.as_deref() {
                    Some("retention") => chathub_protocol::ErasureReason::Retention,
                    _ => chathub_protocol::ErasureReason::Erasure,
                },
            });
            let frame = chathub_protocol::Codec::MsgPack
                .encode_server(&frame)
                .map_err(|e| StoreError::Internal(format!("encode erased frame: {e}")))?;
            let agents = chathub_broker::Channel::agents(t);
            let mut invocation = ERASE_QUEUE.prepare_invoke();
            self.queue_keys(&mut invocation, t);
            invocation
                .key(self.keys.webhook_jobs(t))
                .arg(self.publish_command())
                .arg(chathub_broker::redis_channel(self.keys.prefix(), &agents))
                .arg(c.as_str())
                .arg(seq)
                .arg(epoch)
                .arg(now_ms())
                .arg(frame.as_ref());
            let counts: (u64, u64, u64) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(StoreError::from_redis)?;
            removed.queue_entries = counts.0;
            removed.inbox_changes = counts.1;
            removed.webhook_jobs = counts.2;
        }
        if let Some(archive) = &self.config.archive {
            removed.archived_events = archive.erase(t, c, seq).await?;
        }
        redis::cmd("ZREM")
            .arg(self.pending_key(t, c))
            .arg(format!("e:{t}/{c}"))
            .exec_async(&mut conn)
            .await
            .map_err(StoreError::from_redis)?;
        Ok(removed)
    }

    /// The state and the watermarks (queue, archive) of a conversation.
    async fn read_marks(
        &self,
        t: &TenantId,
        c: &ConversationId,
    ) -> Result<(ConversationState, Watermark, Watermark), chathub_store::StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.state(t, c))
            .arg(&[
                "status",
                "owner",
                "epoch",
                "seq",
                "disabled",
                "survey",
                "queued",
                "queued_ahead",
                "archived",
                "archived_ahead",
            ])
            .query_async(&mut conn)
            .await
            .map_err(chathub_store::StoreError::from_redis)?;
        let state = chathub_store::redis::parse_state(&fields)?;
        let field = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
        let mark = |i: usize| Watermark {
            done: field(i).parse().unwrap_or(0),
            ahead: parse_intervals(&field(i + 1)),
        };
        Ok((state, mark(6), mark(8)))
    }

    /// The queue entry from the state, with the follow-ups of the events since the
    /// watermark (notice, "received" record, webhook job), then settled.
    async fn repair_queue(
        &self,
        t: &TenantId,
        c: &ConversationId,
    ) -> Result<(), chathub_store::StoreError> {
        let (state, queued, _) = self.read_marks(t, c).await?;
        if queued.done < state.seq {
            let store = RedisStore::new(self.conn.clone(), self.keys.clone());
            let mut events = Vec::new();
            let mut after = queued.done;
            loop {
                let range = HistoryRange::After {
                    after,
                    limit: REPAIR_CHUNK,
                };
                let slice = store.history(t, c, range).await?;
                after = slice.events.last().map_or(after, |e| e.seq);
                // What other nodes did past the watermark is not done twice.
                events.extend(slice.events.into_iter().filter(|e| !queued.covers(e.seq)));
                if !slice.has_more {
                    break;
                }
            }
            let at = events.last().map_or_else(now_ms, |e| e.at);
            let update = InboxUpdate::after(self, t, c, &state, &events, at);
            if self.write_tenant_inbox(&[update]).await.is_none() {
                return Err(chathub_store::StoreError::Internal(
                    "queue update failed".into(),
                ));
            }
        }
        let settled = Settle {
            tenant: t.clone(),
            conversation: c.clone(),
            queued: vec![(queued.done + 1, state.seq.max(queued.done + 1))],
            archived: Vec::new(),
        };
        if self.settle_now(&[settled]).await {
            Ok(())
        } else {
            Err(chathub_store::StoreError::Internal("settle failed".into()))
        }
    }

    /// Copies to the archive the events Redis holds past the archived watermark, then
    /// settles.
    async fn repair_archive(
        &self,
        t: &TenantId,
        c: &ConversationId,
    ) -> Result<(), chathub_store::StoreError> {
        let Some(archive) = &self.config.archive else {
            return Ok(());
        };
        let (state, _, watermark) = self.read_marks(t, c).await?;
        let mut archived = watermark.done;
        let store = RedisStore::new(self.conn.clone(), self.keys.clone());
        loop {
            let range = HistoryRange::After {
                after: archived,
                limit: REPAIR_CHUNK,
            };
            let slice = store.history(t, c, range).await?;
            let item = ArchiveItem {
                tenant: t,
                conversation: c,
                state: Some(&state),
                events: &slice.events,
            };
            archive.archive_many(&[item]).await?;
            archived = slice.events.last().map_or(archived, |e| e.seq);
            if !slice.has_more {
                break;
            }
        }
        // Everything Redis holds up to the state read is archived (events it lacks past
        // the watermark are gone for good: nothing more to copy).
        let settled = Settle {
            tenant: t.clone(),
            conversation: c.clone(),
            queued: Vec::new(),
            archived: vec![(
                watermark.done + 1,
                archived.max(state.seq).max(watermark.done + 1),
            )],
        };
        if self.settle_now(&[settled]).await {
            Ok(())
        } else {
            Err(chathub_store::StoreError::Internal("settle failed".into()))
        }
    }

    /// Redoes the stale marks of one shard. Returns whether every one could be done.
    async fn sweep_shard(&self, shard: PendingShard, cutoff: u64) -> bool {
        let key = self.keys.pending(shard);
        loop {
            let mut conn = self.conn.clone();
            let members: Result<Vec<String>, _> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(cutoff)
                .arg("LIMIT")
                .arg(0)
                .arg(SCAN_BATCH)
                .query_async(&mut conn)
                .await;
            let Ok(members) = members else {
                return false;
            };
            for member in &members {
                // A mark that cannot be done now stays stale: give up on this shard
                // until the next sweep rather than reading it again and again.
                if !self.repair(&key, member).await {
                    return false;
                }
            }
            if members.len() < SCAN_BATCH {
                return true;
            }
        }
    }

    /// Sweeps every shard of `range`.
    async fn sweep_range(&self, range: u16) -> bool {
        let shards = self.sharding().shards();
        let ranges = SWEEP_RANGES.min(shards);
        let per = shards.div_ceil(ranges);
        let first = range * per;
        let last = (first + per).min(shards);
        let cutoff = now_ms().saturating_sub(millis(self.config.sweep.grace));
        let results: Vec<bool> = futures::stream::iter(first..last)
            .map(|shard| self.sweep_shard(PendingShard(shard), cutoff))
            .buffer_unordered(SCAN_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().all(|ok| ok)
    }
}

/// The settler: applies pending settlements in batches, one per conversation (the
/// highest watermarks win).
async fn settle_loop<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
    mut rx: mpsc::Receiver<Settle>,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut merged: HashMap<(TenantId, ConversationId), (Vec<_>, Vec<_>)> = HashMap::new();
        for s in batch.drain(..) {
            let entry = merged.entry((s.tenant, s.conversation)).or_default();
            entry.0.extend(s.queued);
            entry.1.extend(s.archived);
        }
        let settles: Vec<Settle> = merged
            .into_iter()
            .map(|((tenant, conversation), (queued, archived))| Settle {
                tenant,
                conversation,
                queued,
                archived,
            })
            .collect();
        ownership.settle_now(&settles).await;
    }
}

/// The archiver: copies the steps' events to PostgreSQL in batches (one transaction
/// each), then settles them. A failed batch is left to the sweepers (its marks stay).
async fn archive_loop<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
    mut rx: mpsc::Receiver<ArchiveJob>,
) {
    let Some(archive) = ownership.config.archive.clone() else {
        return;
    };
    let state = ownership.shared_state();
    let mut jobs = Vec::with_capacity(ARCHIVE_BATCH);
    while rx.recv_many(&mut jobs, ARCHIVE_BATCH).await > 0 {
        let items: Vec<ArchiveItem> = jobs
            .iter()
            .map(|j| ArchiveItem {
                tenant: &j.tenant,
                conversation: &j.conversation,
                state: Some(&j.state),
                events: &j.events,
            })
            .collect();
        let oldest = jobs
            .iter()
            .filter_map(|j| j.events.first().map(|e| e.at))
            .min()
            .unwrap_or_else(now_ms);
        match archive.archive_many(&items).await {
            Ok(()) => {
                let now = now_ms();
                state
                    .last_delay_ms
                    .store(now.saturating_sub(oldest), Ordering::Relaxed);
                // Per command: from its step to its copy committed.
                let delays = ::metrics::histogram!("chathub_archive_delay_seconds");
                for job in &jobs {
                    if let Some(first) = job.events.first() {
                        delays.record(now.saturating_sub(first.at) as f64 / 1000.0);
                    }
                }
                if state.archive_down.swap(false, Ordering::Relaxed) {
                    tracing::info!("archive reachable again");
                }
                let mut settled: HashMap<(TenantId, ConversationId), Vec<(u64, u64)>> =
                    HashMap::new();
                for job in jobs.drain(..) {
                    let (Some(first), Some(last)) = (job.events.first(), job.events.last()) else {
                        continue;
                    };
                    let interval = (first.seq, last.seq);
                    settled
                        .entry((job.tenant, job.conversation))
                        .or_default()
                        .push(interval);
                }
                let settles: Vec<Settle> = settled
                    .into_iter()
                    .map(|((tenant, conversation), archived)| Settle {
                        tenant,
                        conversation,
                        queued: Vec::new(),
                        archived,
                    })
                    .collect();
                ownership.settle_now(&settles).await;
            }
            Err(e) => {
                ::metrics::counter!("chathub_backend_errors_total", "during" => "archive")
                    .increment(1);
                if !state.archive_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "archive unreachable: events wait in redis");
                }
                let _ = state.unarchived_since.compare_exchange(
                    0,
                    oldest,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                state.owe_sweep();
                jobs.clear();
            }
        }
    }
}

/// Pings the archive every lease, so that an idle node too knows whether it answers
/// (`/readyz` reports it; a node owing a sweep waits for it).
async fn probe_archive<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
) {
    let Some(archive) = ownership.config.archive.clone() else {
        return;
    };
    let state = ownership.shared_state();
    loop {
        tokio::time::sleep(ownership.config.sweep.lease).await;
        let up = archive.ping().await.is_ok();
        let was_down = state.archive_down.swap(!up, Ordering::Relaxed);
        if was_down && up {
            tracing::info!("archive reachable again");
        } else if !was_down && !up {
            ::metrics::counter!("chathub_backend_errors_total", "during" => "archive").increment(1);
            tracing::warn!("archive unreachable: events wait in redis");
        }
    }
}

/// The node's sweeper loop (see the module docs).
async fn sweep_loop<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
    node: String,
) {
    let config = ownership.config.sweep.clone();
    let keys = ownership.keys.clone();
    let ranges = SWEEP_RANGES.min(ownership.sharding().shards());
    // Where this node starts looking for free ranges: spread over the nodes.
    let start = node
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % ranges;
    let mut held: BTreeSet<u16> = BTreeSet::new();
    let mut seen_epoch: Option<u64> = None;
    let mut last_full = Instant::now();
    let lease_ms = millis(config.lease);
    loop {
        tokio::time::sleep(config.tick).await;
        let state = ownership.shared_state();
        let mut conn = ownership.conn.clone();
        let now = now_ms();
        let tick: Result<(u64, Vec<u16>), redis::RedisError> = async {
            // Heartbeat; the nodes silent for a lease are dead: whoever removes one
            // moves the sweep epoch, so that every node sweeps for its marks.
            redis::cmd("ZADD")
                .arg(keys.nodes())
                .arg(now)
                .arg(&node)
                .exec_async(&mut conn)
                .await?;
            let dead: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(keys.nodes())
                .arg("-inf")
                .arg(now.saturating_sub(lease_ms))
                .query_async(&mut conn)
                .await?;
            for gone in dead {
                let removed: u64 = redis::cmd("ZREM")
                    .arg(keys.nodes())
                    .arg(&gone)
                    .query_async(&mut conn)
                    .await?;
                if removed == 1 {
                    tracing::info!(node = %gone, "a gateway node stopped heartbeating: sweeping its follow-ups");
                    redis::cmd("INCR")
                        .arg(keys.sweep_epoch())
                        .exec_async(&mut conn)
                        .await?;
                }
            }
            // Follow-ups failed here: once Redis (and the archive) answer, ask everyone.
            // Not before the marks left are stale: a sweep would skip them.
            let owed = state.owes_sweep.load(Ordering::Relaxed);
            if owed > 0 && now >= owed + millis(config.grace) {
                // The probe keeps `archive_down` current (never a slow call here: the
                // heartbeat must not wait).
                if !state.archive_down.load(Ordering::Relaxed) {
                    redis::cmd("INCR")
                        .arg(keys.sweep_epoch())
                        .exec_async(&mut conn)
                        .await?;
                    // Paid, unless a follow-up failed again meanwhile: that debt stays.
                    let _ = state.owes_sweep.compare_exchange(
                        owed,
                        0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
            }
            let live: u64 = redis::cmd("ZCARD")
                .arg(keys.nodes())
                .query_async(&mut conn)
                .await?;
            let fair = usize::from(ranges).div_ceil(live.max(1) as usize);
            // Keep (renew) at most a fair share; then take free ranges up to it.
            let mut kept = BTreeSet::new();
            for &range in &held {
                if kept.len() >= fair {
                    let _: u64 = RELEASE
                        .key(keys.sweep_lease(range))
                        .arg(&node)
                        .invoke_async(&mut conn)
                        .await?;
                    continue;
                }
                let renewed: u64 = RENEW
                    .key(keys.sweep_lease(range))
                    .arg(&node)
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await?;
                if renewed == 1 {
                    kept.insert(range);
                }
            }
            held = kept;
            let mut acquired = Vec::new();
            for i in 0..ranges {
                if held.len() >= fair {
                    break;
                }
                let range = (start + i) % ranges;
                if held.contains(&range) {
                    continue;
                }
                let taken: Option<String> = redis::cmd("SET")
                    .arg(keys.sweep_lease(range))
                    .arg(&node)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async(&mut conn)
                    .await?;
                if taken.is_some() {
                    held.insert(range);
                    acquired.push(range);
                }
            }
            let epoch: Option<u64> = redis::cmd("GET")
                .arg(keys.sweep_epoch())
                .query_async(&mut conn)
                .await?;
            Ok((epoch.unwrap_or(0), acquired))
        }
        .await;
        let (epoch, acquired) = match tick {
            Ok(tick) => tick,
            Err(e) => {
                tracing::debug!(error = %e, "sweeper tick failed");
                continue;
            }
        };
        let since_down = state.unarchived_since.load(Ordering::Relaxed);
        let lag_ms = if since_down > 0 {
            now.saturating_sub(since_down)
        } else {
            state.last_delay_ms.load(Ordering::Relaxed)
        };
        ::metrics::gauge!("chathub_archive_lag_seconds").set(lag_ms as f64 / 1000.0);
        let full = seen_epoch != Some(epoch) || last_full.elapsed() >= config.backstop;
        let to_sweep: Vec<u16> = if full {
            held.iter().copied().collect()
        } else {
            acquired
        };
        let mut all_done = true;
        for range in to_sweep {
            all_done &= ownership.sweep_range(range).await;
        }
        if full {
            last_full = Instant::now();
            seen_epoch = Some(epoch);
            if all_done && !state.archive_down.load(Ordering::Relaxed) {
                state.unarchived_since.store(0, Ordering::Relaxed);
            }
        }
        if !all_done {
            // Something could not be done (Redis or the archive down): ask again once
            // they answer.
            state.owe_sweep();
        }
    }
}
