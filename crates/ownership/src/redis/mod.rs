//! The Redis backend: every command is one atomic step of a script (`lua/apply.lua`),
//! and the commands a node has pending go in one call per slot (group commit: see
//! `apply.rs`). On a single Redis the same script also updates the tenant's queue entry
//! (one round trip per batch of commands); on a Redis Cluster the queue lives in another
//! slot, so it is updated by a second, idempotent script (`lua/inbox.lua`), batched per
//! tenant by each node.
//!
//! What a step leaves for later (that second step, the archive's copy) is marked in the
//! same atomic step and swept if the node dies first: see `followups.rs`.
//!
//! The apply step is a Redis function (`FCALL`; Redis 7.0 or later), loaded again when
//! Redis answers that it does not know it (after a restart without persistence or
//! `FUNCTION FLUSH`). The other scripts run with `redis::Script` (EVALSHA), which
//! reloads them on NOSCRIPT.

mod apply;
mod followups;

pub use followups::{FaultPoint, SWEEP_RANGES, SweepConfig};

use crate::frames::{
    changes_queue, mentions, message_preview, ownership_lost, received_record, webhook_job,
};
use crate::{ApplyRequest, Decision, Ownership, OwnershipError};
use chathub_broker::redis_channel;
use chathub_domain::{AgentId, Command, ConversationState, Event, Refusal, TenantId};
use chathub_store::Receipt;
use chathub_store::RedisKeys;
use redis::Script;
use redis::aio::ConnectionLike;
use std::sync::{Arc, LazyLock, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// `lua/apply.lua` with what it runs after (see its header), as a Redis function library.
///
/// A function library runs its top-level code once, at `FUNCTION LOAD`: the helpers and
/// tables are defined then, not on every call as an `EVALSHA` script's are (measured:
/// ~8 µs per call for those definitions alone). The library and its function are named
/// after a hash of the source, so nodes of two versions (a rolling upgrade) each call
/// their own and never replace the other's.
struct ApplyLibrary {
    /// `FUNCTION LOAD`'s payload: the shebang, the scripts, the registration.
    source: String,
    /// The function `FCALL` names.
    function: String,
}

static APPLY: LazyLock<ApplyLibrary> = LazyLock::new(|| {
    let scripts = concat!(
        include_str!("lua/inbox_entry.lua"),
        include_str!("lua/erase_entry.lua"),
        include_str!("lua/trim.lua"),
        include_str!("lua/apply.lua")
    );
    // The SHA-1 redis::Script computes for EVALSHA: a stable name per version.
    let hash = Script::new(scripts).get_hash().to_owned();
    let version = &hash[..16];
    let function = format!("chathub_apply_{version}");
    ApplyLibrary {
        source: format!(
            "#!lua name=chathub_{version}\n{scripts}\nredis.register_function('{function}', apply)\n"
        ),
        function,
    }
});
static INBOX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/inbox_entry.lua"),
        include_str!("lua/inbox.lua")
    ))
});

/// Settings of the Redis ownership backend.
#[derive(Debug, Clone)]
pub struct RedisOwnershipConfig {
    /// Events kept per conversation (approximate: Redis trims in whole nodes). Default
    /// 10 000.
    pub history_max_len: u64,
    /// Events older than this are dropped, in ms (0: no age limit). Default 0.
    pub history_max_age_ms: u64,
    /// How long a `client_msg_id` is remembered, in ms. Default 10 minutes.
    pub dedup_window_ms: u64,
    /// Queue frames kept in the tenant's inbox stream. Default 10 000.
    pub inbox_stream_max_len: u64,
    /// Lease of an offline-webhook job, in ms: an agent's message records one, due this
    /// long after it (the node that applied it handles it first). 0: no webhook, no
    /// jobs. Default 0.
    pub webhook_job_lease_ms: u64,
    /// The keys live on a Redis Cluster: publish with SPUBLISH (sharded pub/sub) instead
    /// of PUBLISH, and update the tenant's queue (another slot than the conversation) in
    /// a second, batched step instead of inside the apply script.
    pub cluster: bool,
    /// The archive every event is copied to (cluster mode's record tier). With one, the
    /// history stream is trimmed to `history_max_len` / `history_max_age_ms` (the hot
    /// window) only past what is archived. Default none.
    pub archive: Option<chathub_store::postgres::Archive>,
    /// How the nodes sweep for follow-ups a dead node left.
    pub sweep: SweepConfig,
    /// A fault to inject (tests only). Default none.
    pub fault: Option<FaultPoint>,
}

impl Default for RedisOwnershipConfig {
    fn default() -> Self {
        RedisOwnershipConfig {
            history_max_len: chathub_store::defaults::HISTORY_MAX_LEN as u64,
            history_max_age_ms: 0,
            dedup_window_ms: chathub_store::defaults::DEDUP_WINDOW_SECS * 1000,
            inbox_stream_max_len: chathub_store::defaults::INBOX_MAX_LEN as u64,
            webhook_job_lease_ms: 0,
            cluster: false,
            archive: None,
            sweep: SweepConfig::default(),
            fault: None,
        }
    }
}

/// Applies commands with the Redis scripts, over any async connection (a
/// `ConnectionManager` or a cluster connection).
#[derive(Clone)]
pub struct RedisOwnership<C> {
    conn: C,
    keys: RedisKeys,
    config: RedisOwnershipConfig,
    /// The queue of the node's inbox writer (started at the first update).
    inbox_writer: Arc<OnceLock<mpsc::Sender<InboxJob>>>,
    /// The queue of the node's apply writer (group commit; started at the first command).
    apply_writer: Arc<OnceLock<mpsc::Sender<apply::ApplyJob>>>,
    /// Where the inbox writer runs.
    tasks: chathub_broker::Tasks,
    /// The queues of the settler and the archiver (see [`followups`]).
    followup_queues: Arc<followups::FollowupQueues>,
    /// Follow-up health, shared by every handle.
    followups: Arc<followups::Followups>,
}

impl<C> RedisOwnership<C> {
    /// A backend using `conn`, `keys` and `config`.
    pub fn new(conn: C, keys: RedisKeys, config: RedisOwnershipConfig) -> Self {
        RedisOwnership {
            conn,
            keys,
            config,
            inbox_writer: Arc::default(),
            apply_writer: Arc::default(),
            tasks: chathub_broker::Tasks::default(),
            followup_queues: Arc::default(),
            followups: Arc::default(),
        }
    }

    /// Runs the node's background work (the inbox writer) under `tasks`.
    pub fn with_tasks(mut self, tasks: chathub_broker::Tasks) -> Self {
        self.tasks = tasks;
        self
    }

    /// Adds the tenant's queue keys, in the order `lua/inbox_entry.lua` takes them:
    /// inbox hash, unanswered / active / finished sets, inbox event stream.
    fn queue_keys(&self, invocation: &mut redis::ScriptInvocation, t: &TenantId) {
        use chathub_domain::Status;
        invocation
            .key(self.keys.inbox(t))
            .key(self.keys.queue(t, Status::Unanswered))
            .key(self.keys.queue(t, Status::Active))
            .key(self.keys.queue(t, Status::Finished))
            .key(self.keys.inbox_events(t));
    }

    /// The agents' own channel prefix as Redis names it (the scripts add the agent).
    fn agent_channel_prefix(&self, t: &TenantId) -> String {
        format!(
            "{}:{}",
            self.keys.prefix(),
            chathub_broker::Channel::agent_prefix(t)
        )
    }

    /// Adds the keys of an end user's "received" record: history hash, index of all
    /// types, index of its type (`received_keys` in `lua/inbox_entry.lua`).
    fn received_keys(
        &self,
        invocation: &mut redis::ScriptInvocation,
        t: &TenantId,
        user: &chathub_domain::EndUserId,
        kind: chathub_domain::engagement::EngagementType,
    ) {
        invocation
            .key(self.keys.engagement_history(t, user))
            .key(self.keys.engagement_index(t, user, None))
            .key(self.keys.engagement_index(t, user, Some(kind)));
    }

    fn publish_command(&self) -> &'static str {
        if self.config.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Ownership for RedisOwnership<C> {
    async fn apply(&self, req: ApplyRequest) -> Result<Decision, OwnershipError> {
        let prepared = self.prepare(&req)?;
        let (req, raw) = self.submit(prepared, req).await?;
        self.conclude(&req, raw).await
    }

    async fn alert(&self, req: crate::AlertRequest) -> Result<Vec<u32>, OwnershipError> {
        self.send_alerts(req).await
    }

    async fn alert_marks(&self, t: &TenantId) -> Result<crate::TenantAlertMarks, OwnershipError> {
        self.read_alert_marks(t).await
    }

    async fn forget_alerts(
        &self,
        t: &TenantId,
        stale: &[(chathub_domain::ConversationId, crate::AlertMarks)],
    ) -> Result<(), OwnershipError> {
        self.drop_alert_marks(t, stale).await
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// Applies `requests` in order, each atomically, with one script call per Redis slot
    /// they fall in (what the node's group commit does with the commands that arrive
    /// together; this runs the same path directly, for callers that hold a batch and for
    /// the differential test). Returns each command's decision, in order.
    pub async fn apply_many(
        &self,
        requests: &[ApplyRequest],
    ) -> Vec<Result<Decision, OwnershipError>> {
        // A command that cannot be encoded fails alone; the others still apply, in order.
        let prepared: Vec<Result<apply::PreparedApply, OwnershipError>> =
            requests.iter().map(|req| self.prepare(req)).collect();
        let refs: Vec<&apply::PreparedApply> =
            prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut raws = Vec::with_capacity(refs.len());
        // Consecutive commands of one slot go together.
        for group in refs.chunk_by(|a, b| a.group == b.group) {
            raws.extend(self.apply_batch(group).await);
        }
        let mut raws = raws.into_iter();
        let mut decisions = Vec::with_capacity(requests.len());
        for (req, prepared) in requests.iter().zip(prepared) {
            let raw = match prepared {
                Ok(_) => raws
                    .next()
                    .unwrap_or_else(|| Err(OwnershipError::Internal("no outcome".into()))),
                Err(e) => Err(e),
            };
            decisions.push(match raw {
                Ok(raw) => self.conclude(req, raw).await,
                Err(e) => Err(e),
            });
        }
        decisions
    }

    /// Hands `prepared` (the encoding of `req`) to the node's apply writer (group commit)
    /// and waits for its outcome; `req` comes back with it (the writer may decide a
    /// stale loser from it: see [`apply::write_commands`]).
    async fn submit(
        &self,
        prepared: apply::PreparedApply,
        req: ApplyRequest,
    ) -> Result<(ApplyRequest, apply::RawOutcome), OwnershipError> {
        let writer = self.apply_writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel(apply::APPLY_QUEUE);
            // The writer's own handle has no writer queue (see `update_inbox`).
            self.tasks.spawn(apply::write_commands(self.detached(), rx));
            tx
        });
        let (done, outcome) = oneshot::channel();
        let job = apply::ApplyJob {
            prepared,
            request: req,
            submitted: std::time::Instant::now(),
            done,
        };
        match writer.send(job).await {
            Ok(()) => outcome.await.unwrap_or_else(|_| {
                // Only when the runtime shuts down under the writer.
                Err(OwnershipError::Unavailable {
                    source: "the node's apply writer stopped".into(),
                })
            }),
            // The writer's runtime is gone (e.g. a runtime per test): call directly.
            Err(mpsc::error::SendError(job)) => {
                let outcome = self
                    .apply_batch(&[&job.prepared])
                    .await
                    .pop()
                    .unwrap_or_else(|| Err(OwnershipError::Internal("no outcome".into())))?;
                Ok((job.request, outcome))
            }
        }
    }

    /// What follows a command's outcome: the second step (on a Redis Cluster), the
    /// archive's copy, and the decision as the caller takes it.
    async fn conclude(
        &self,
        req: &ApplyRequest,
        raw: apply::RawOutcome,
    ) -> Result<Decision, OwnershipError> {
        match raw {
            apply::RawOutcome::Done {
                state,
                mut queued_since,
                earlier_ack,
                events,
            } => {
                if matches!(req.command, Command::Erase | Command::Expire { .. }) {
                    // Erased already: what an earlier call left undone is done now (the
                    // caller retrying after a failure gets the rest of the receipt).
                    let removed = self
                        .finish_erasure(&req.tenant, &req.conversation)
                        .await
                        .map_err(OwnershipError::from_store)?;
                    return Ok(if removed.is_empty() {
                        Decision::Done {
                            state,
                            ack: None,
                            events,
                            queued_since,
                        }
                    } else {
                        Decision::Erased { state, removed }
                    });
                }
                if !events.is_empty() {
                    if self.config.fault == Some(FaultPoint::AbortAfterStep) {
                        tracing::error!("fault injected: aborting after the atomic step");
                        std::process::abort();
                    }
                    if self.config.cluster {
                        queued_since = self.update_inbox(req, &state, &events).await;
                    }
                    self.archive_later(followups::ArchiveJob {
                        tenant: req.tenant.clone(),
                        conversation: req.conversation.clone(),
                        state: state.clone(),
                        events: events.clone(),
                    });
                }
                let ack = match (earlier_ack, &req.command) {
                    (Some(blob), _) => Some(
                        rmp_serde::from_slice::<Receipt>(&blob)
                            .map_err(|e| OwnershipError::Corrupt(format!("dedup receipt: {e}")))?,
                    ),
                    (None, Command::Send { .. } | Command::Note { .. }) => Some(Receipt {
                        conversation: req.conversation.clone(),
                        seq: state.seq,
                        status: state.status,
                        owner: state.owner.clone(),
                        epoch: state.epoch,
                    }),
                    (None, _) => None,
                };
                Ok(Decision::Done {
                    state,
                    ack,
                    events,
                    queued_since,
                })
            }
            apply::RawOutcome::Erased { state, removed } => {
                if self.config.fault == Some(FaultPoint::AbortAfterStep) {
                    tracing::error!("fault injected: aborting after the erasure's step");
                    std::process::abort();
                }
                let rest = self
                    .finish_erasure(&req.tenant, &req.conversation)
                    .await
                    .map_err(OwnershipError::from_store)?;
                Ok(Decision::Erased {
                    state,
                    removed: crate::Erased {
                        queue_entries: removed.queue_entries + rest.queue_entries,
                        inbox_changes: removed.inbox_changes + rest.inbox_changes,
                        webhook_jobs: removed.webhook_jobs + rest.webhook_jobs,
                        archived_events: rest.archived_events,
                        ..removed
                    },
                })
            }
            apply::RawOutcome::Conflict { owner, epoch, .. } => Ok(Decision::Conflict {
                owner: if owner.is_empty() {
                    None
                } else {
                    Some(
                        AgentId::new(owner)
                            .map_err(|e| OwnershipError::Corrupt(format!("conflict owner: {e}")))?,
                    )
                },
                epoch,
            }),
            apply::RawOutcome::Refused(reason) => Ok(Decision::Refused(match reason.as_str() {
                "forbidden" => Refusal::Forbidden,
                "chat_disabled" => Refusal::ChatDisabled,
                "invalid_state" => Refusal::InvalidState,
                "missing_epoch" => Refusal::MissingEpoch,
                other => {
                    return Err(OwnershipError::Internal(format!(
                        "unknown refusal {other:?}"
                    )));
                }
            })),
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// The second step. The command is already applied, so a failure here is logged, not
    /// returned: the entry catches up with the conversation's next change.
    ///
    /// Group commit: the update goes to the node's inbox writer, which applies everything
    /// pending for a tenant in one script call (one round trip and one script run for
    /// many messages under load, the same single call when idle), and this waits for it,
    /// so the queue already shows the change when the command is acknowledged.
    /// Returns when the conversation had entered the unanswered queue if the update took
    /// it out of it (unknown when the update failed).
    async fn update_inbox(
        &self,
        req: &ApplyRequest,
        state: &ConversationState,
        events: &[Event],
    ) -> Option<u64> {
        let at = events.last().map_or(req.at, |e| e.at);
        let update = InboxUpdate::after(self, &req.tenant, &req.conversation, state, events, at);
        let (done, finished) = oneshot::channel();
        let writer = self.inbox_writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel(INBOX_QUEUE);
            // The writer's own handle has no writer queue: holding this one would keep
            // the channel open forever, and the task with it.
            self.tasks.spawn(write_inboxes(self.detached(), rx));
            tx
        });
        match writer.send((update, done)).await {
            Ok(()) => match finished.await {
                Ok(since) => since,
                Err(_) => {
                    // Only when the runtime shuts down under the writer: the entry then
                    // catches up with the conversation's next change, as after a failure.
                    tracing::debug!("inbox writer stopped before reporting");
                    None
                }
            },
            // The writer's runtime is gone (e.g. a runtime per test): write directly.
            Err(mpsc::error::SendError((update, _))) => self
                .write_tenant_inbox(&[update])
                .await
                .and_then(|r| r.into_iter().next())
                .flatten(),
        }
    }

    /// Applies `updates` (all of one tenant, in order) with one script call, retried once,
    /// then settles their marks. Returns, per update, when the conversation had entered
    /// the unanswered queue if the update took it out of it; `None` when the call failed
    /// (the marks stay: a sweeper redoes them).
    async fn write_tenant_inbox(&self, updates: &[InboxUpdate]) -> Option<Vec<Option<u64>>> {
        let first = updates.first()?;
        let t = &first.tenant;
        let agents = chathub_broker::Channel::agents(t);
        let mut invocation = INBOX.prepare_invoke();
        self.queue_keys(&mut invocation, t);
        invocation.key(self.keys.webhook_jobs(t));
        invocation
            .arg(self.publish_command())
            .arg(redis_channel(self.keys.prefix(), &agents))
            .arg(self.config.inbox_stream_max_len)
            .arg(self.agent_channel_prefix(t))
            .arg(self.config.webhook_job_lease_ms);
        // The fixed keys come first (the queue's and the job set); each "received"
        // record adds its three.
        let mut next_key = QUEUE_KEYS + 2;
        for u in updates {
            invocation
                .arg(u.conversation.as_str())
                .arg(u.seq)
                .arg(u.status)
                .arg(&u.owner)
                .arg(u.epoch)
                .arg(if u.disabled { "1" } else { "0" })
                .arg(u.at)
                .arg(if u.status_changed { "1" } else { "0" })
                .arg(&u.preview);
            match &u.lost {
                Some((agent, frame)) => invocation
                    .arg(agent.as_str())
                    .arg(frame.by.as_ref().map_or("", |a| a.as_str()))
                    .arg(frame.epoch)
                    .arg(frame.seq)
                    .arg(frame.reason.map_or("", |r| r.as_str())),
                None => invocation.arg("").arg("").arg(0).arg(0).arg(""),
            };
            match &u.received {
                Some((user, record)) => {
                    self.received_keys(&mut invocation, t, user, record.engagement_type);
                    invocation
                        .arg(next_key)
                        .arg(&record.id)
                        .arg(record.engagement_type.as_str())
                        .arg(record.engagement.as_deref().unwrap_or(""))
                        .arg(&record.title);
                    next_key += 3;
                }
                None => {
                    invocation.arg(0).arg("").arg("").arg("").arg("");
                }
            }
            invocation.arg(u.job_seq);
            invocation.arg(&u.mention_agents).arg(&u.mention_frames);
        }
        for attempt in 0..2 {
            let mut conn = self.conn.clone();
            let result: Result<Vec<(i64, u64)>, _> = invocation.invoke_async(&mut conn).await;
            match result {
                Ok(results) => {
                    for u in updates {
                        self.settle_later(followups::Settle {
                            tenant: u.tenant.clone(),
                            conversation: u.conversation.clone(),
                            queued: vec![(u.first_seq, u.seq)],
                            archived: Vec::new(),
                        })
                        .await;
                    }
                    return Some(
                        results
                            .into_iter()
                            .map(|(_, since)| (since > 0).then_some(since))
                            .collect(),
                    );
                }
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "inbox update failed, retrying")
                }
                Err(e) => {
                    tracing::warn!(error = %e, tenant = %t, updates = updates.len(), "inbox update failed")
                }
            }
        }
        None
    }
}

/// Keys every `lua/inbox.lua` call starts with (see [`RedisOwnership::queue_keys`]).
const QUEUE_KEYS: usize = 5;

/// Inbox updates waiting for the writer, per node; senders wait when it is full.
const INBOX_QUEUE: usize = 4096;

/// Most updates applied by one script call (keeps each script run short: Redis runs
/// nothing else meanwhile).
const INBOX_BATCH: usize = 128;

/// One conversation's queue entry after a command, for `lua/inbox.lua`.
struct InboxUpdate {
    tenant: TenantId,
    conversation: chathub_domain::ConversationId,
    /// The first seq whose follow-ups this update does (its events' first).
    first_seq: u64,
    seq: u64,
    status: &'static str,
    owner: String,
    epoch: u64,
    disabled: bool,
    at: u64,
    status_changed: bool,
    preview: String,
    /// The previous owner's notice after a take-over.
    lost: Option<(
        chathub_domain::AgentId,
        chathub_protocol::OwnershipLostFrame,
    )>,
    /// The end user's "received" record of an engagement an agent sent.
    received: Option<(
        chathub_domain::EndUserId,
        chathub_domain::engagement::HistoryEvent,
    )>,
    /// The agent message owing a webhook job (0: none).
    job_seq: u64,
    /// The agents notes mention, comma-separated (`lua/inbox.lua`).
    mention_agents: String,
    /// Their `mention` notices: the packed frames one after the other, in order.
    mention_frames: Vec<u8>,
}

impl InboxUpdate {
    /// The update that brings the entry to `state`, owing what `events` (the changes
    /// since the entry's last update) owe; `at`: the time of the last change.
    fn after<C>(
        ownership: &RedisOwnership<C>,
        tenant: &TenantId,
        conversation: &chathub_domain::ConversationId,
        state: &ConversationState,
        events: &[Event],
        at: u64,
    ) -> InboxUpdate {
        let notices = mentions(conversation, events);
        let mention_agents = notices
            .iter()
            .map(|(agent, _)| agent.as_str())
            .collect::<Vec<_>>()
            .join(",");
        // The frames one after the other (the ServerFrame types always encode).
        let mut mention_frames = Vec::new();
        for (_, frame) in notices {
            if let Ok(packed) = chathub_protocol::Codec::MsgPack
                .encode_server(&chathub_protocol::ServerFrame::Mention(frame))
            {
                mention_frames.extend_from_slice(&packed);
            }
        }
        InboxUpdate {
            tenant: tenant.clone(),
            conversation: conversation.clone(),
            first_seq: events.first().map_or(state.seq, |e| e.seq),
            seq: state.seq,
            status: state.status.as_str(),
            owner: state
                .owner
                .as_ref()
                .map_or_else(String::new, |o| o.to_string()),
            epoch: state.epoch,
            disabled: state.disabled,
            at,
            status_changed: changes_queue(events),
            preview: message_preview(events).unwrap_or_default(),
            lost: ownership_lost(conversation, events),
            received: received_record(conversation, events).map(|r| (conversation.end_user(), r)),
            job_seq: if ownership.config.webhook_job_lease_ms > 0 {
                webhook_job(events).unwrap_or(0)
            } else {
                0
            },
            mention_agents,
            mention_frames,
        }
    }
}

/// An update and who waits for it.
type InboxJob = (InboxUpdate, oneshot::Sender<Option<u64>>);

/// The node's inbox writer: takes whatever updates are pending (at least one, at most
/// [`INBOX_BATCH`]), writes them with one call per tenant (tenants concurrently), then
/// releases their senders. While a call is in flight the next batch gathers, so batches
/// grow with load and stay single updates when idle. Ends when every handle of the
/// backend is gone.
async fn write_inboxes<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
    mut rx: mpsc::Receiver<InboxJob>,
) {
    let mut jobs: Vec<InboxJob> = Vec::with_capacity(INBOX_BATCH);
    while rx.recv_many(&mut jobs, INBOX_BATCH).await > 0 {
        // Stable: each tenant's updates keep their order.
        jobs.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
        let mut updates = Vec::with_capacity(jobs.len());
        let mut waiters = Vec::with_capacity(jobs.len());
        for (update, done) in jobs.drain(..) {
            updates.push(update);
            waiters.push(done);
        }
        let calls = updates
            .chunk_by(|a, b| a.tenant == b.tenant)
            .map(|group| ownership.write_tenant_inbox(group));
        let results = futures::future::join_all(calls).await;
        // The groups are in the updates' order, so their results line up with the waiters.
        let per_update = updates
            .chunk_by(|a, b| a.tenant == b.tenant)
            .zip(results)
            .flat_map(|(group, result)| result.unwrap_or_else(|| vec![None; group.len()]));
        for (done, since) in waiters.into_iter().zip(per_update) {
            let _ = done.send(since);
        }
    }
}

/// `lua/alert.lua`.
static ALERT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/alert.lua")));

/// Alert marks forgotten per call.
const FORGET_BATCH: usize = 500;

/// Forgets alert marks only while they are about the wait named: KEYS[1] the marks hash,
/// ARGV pairs of (conversation, `epoch:since:` prefix).
static FORGET_ALERTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 1, #ARGV, 2 do
  local marks = redis.call('HGET', KEYS[1], ARGV[i])
  if marks and string.sub(marks, 1, #ARGV[i + 1]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
",
    )
});

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// [`Ownership::alert`]: `lua/alert.lua` in the tenant's slot.
    async fn send_alerts(&self, req: crate::AlertRequest) -> Result<Vec<u32>, OwnershipError> {
        let t = &req.tenant;
        let mut invocation = ALERT.prepare_invoke();
        invocation
            .key(self.keys.inbox(t))
            .key(self.keys.alerts(t))
            .arg(self.publish_command())
            .arg(self.agent_channel_prefix(t))
            .arg(req.conversation.as_str())
            .arg(req.epoch)
            .arg(req.since)
            .arg(req.steps);
        for due in &req.due {
            let frame = chathub_protocol::ServerFrame::Alert(due.frame.clone());
            let bytes = chathub_protocol::Codec::MsgPack
                .encode_server(&frame)
                .map_err(|e| OwnershipError::Internal(format!("encode alert: {e}")))?;
            let agents: Vec<&str> = due.online.iter().map(|a| a.as_str()).collect();
            invocation
                .arg(due.frame.step)
                .arg(due.frame.occurrence)
                .arg(agents.join(","))
                .arg(bytes.as_ref());
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(OwnershipError::from_redis)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// [`Ownership::alert_marks`].
    async fn read_alert_marks(
        &self,
        t: &TenantId,
    ) -> Result<crate::TenantAlertMarks, OwnershipError> {
        let mut conn = self.conn.clone();
        let raw: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.alerts(t))
            .query_async(&mut conn)
            .await
            .map_err(OwnershipError::from_redis)?;
        let mut marks = crate::TenantAlertMarks::with_capacity(raw.len());
        for (conversation, text) in raw {
            let conversation = chathub_domain::ConversationId::new(conversation)
                .map_err(|e| OwnershipError::Corrupt(format!("alert marks: {e}")))?;
            let parsed = crate::AlertMarks::decode(&text)
                .ok_or_else(|| OwnershipError::Corrupt(format!("alert marks {text:?}")))?;
            marks.insert(conversation, parsed);
        }
        Ok(marks)
    }

    /// [`Ownership::forget_alerts`].
    async fn drop_alert_marks(
        &self,
        t: &TenantId,
        stale: &[(chathub_domain::ConversationId, crate::AlertMarks)],
    ) -> Result<(), OwnershipError> {
        let mut conn = self.conn.clone();
        for chunk in stale.chunks(FORGET_BATCH) {
            let mut invocation = FORGET_ALERTS.prepare_invoke();
            invocation.key(self.keys.alerts(t));
            for (c, marks) in chunk {
                invocation
                    .arg(c.as_str())
                    .arg(format!("{}:{}:", marks.epoch, marks.since));
            }
            invocation
                .invoke_async::<()>(&mut conn)
                .await
                .map_err(OwnershipError::from_redis)?;
        }
        Ok(())
    }
}
