//! The Redis backend: every command is one atomic script (`lua/apply.lua`). On a single
//! Redis the same script also updates the tenant's queue entry (one round trip per
//! command); on a Redis Cluster the queue lives in another slot, so it is updated by a
//! second, idempotent script (`lua/inbox.lua`), batched per tenant by each node.
//!
//! What a step leaves for later (that second step, the archive's copy) is marked in the
//! same atomic step and swept if the node dies first: see `followups.rs`.
//!
//! `redis::Script` runs scripts with EVALSHA and reloads them transparently when Redis
//! answers NOSCRIPT (after a restart or `SCRIPT FLUSH`).

mod followups;

pub use followups::{FaultPoint, SWEEP_RANGES, SweepConfig};

use crate::frames::{
    changes_queue, content_preview, message_preview, ownership_lost, received_record, webhook_job,
};
use crate::{ApplyRequest, Decision, Ownership, OwnershipError};
use chathub_broker::redis_channel;
use chathub_domain::{
    Actor, AgentId, Command, ConversationState, Event, MessageContent, Participant, Refusal,
    TenantId,
};
use chathub_store::Receipt;
use chathub_store::RedisKeys;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;
use std::sync::{Arc, LazyLock, OnceLock};
use tokio::sync::{mpsc, oneshot};

static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/inbox_entry.lua"),
        include_str!("lua/trim.lua"),
        include_str!("lua/apply.lua")
    ))
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

/// What `apply.lua` returns.
#[derive(Deserialize)]
struct ScriptResult {
    outcome: String,
    #[serde(default)]
    queued_since: Option<u64>,
    #[serde(default)]
    state: Option<ConversationState>,
    #[serde(default)]
    ack: Option<Receipt>,
    #[serde(default, deserialize_with = "packed_events")]
    events: Vec<Event>,
    #[serde(default)]
    owner: Option<AgentId>,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    refusal: Option<String>,
}

/// The script returns each event as the bytes it stored and published (a MessagePack
/// string holding a packed event); Lua cannot tell an empty array from an empty map, so
/// both mean "no events".
fn packed_events<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
    /// One packed event, whichever string type carries it.
    struct Packed(Event);
    impl<'de> Deserialize<'de> for Packed {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Bytes;
            impl serde::de::Visitor<'_> for Bytes {
                type Value = Packed;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a packed event")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Packed, E> {
                    rmp_serde::from_slice(v).map(Packed).map_err(E::custom)
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Packed, E> {
                    self.visit_bytes(v.as_bytes())
                }
            }
            d.deserialize_bytes(Bytes)
        }
    }
    /// A list of packed events, or an empty map.
    struct Events;
    impl<'de> serde::de::Visitor<'de> for Events {
        type Value = Vec<Event>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of packed events")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<Event>, A::Error> {
            let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some(Packed(event)) = seq.next_element()? {
                events.push(event);
            }
            Ok(events)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Vec<Event>, A::Error> {
            match map.next_key::<serde::de::IgnoredAny>()? {
                None => Ok(Vec::new()),
                Some(_) => Err(serde::de::Error::custom("events is a non-empty map")),
            }
        }
    }
    d.deserialize_any(Events)
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Ownership for RedisOwnership<C> {
    async fn apply(&self, req: ApplyRequest) -> Result<Decision, OwnershipError> {
        let (role, actor_id, privileges) = match &req.actor {
            Actor::EndUser(id) => ("end_user", id.as_str(), 0),
            Actor::Agent { id, privileges, .. } => {
                (req.actor.role().as_str(), id.as_str(), privileges.bits())
            }
        };
        let (command, content, client_msg_id, seen_epoch, want_disabled) = match &req.command {
            Command::Send {
                content,
                client_msg_id,
                seen_epoch,
            } => (
                "send",
                Some(content),
                client_msg_id.as_deref(),
                *seen_epoch,
                false,
            ),
            Command::Finish { seen_epoch } => ("finish", None, None, Some(*seen_epoch), false),
            Command::SetDisabled(d) => ("set_disabled", None, None, None, *d),
        };
        // The script embeds the content as it is; only its kind matters to the rules.
        let (content_kind, content) = match content {
            Some(c @ MessageContent::Text { .. }) => ("text", rmp_serde::to_vec_named(c)),
            Some(c @ MessageContent::Engagement { .. }) => {
                ("engagement", rmp_serde::to_vec_named(c))
            }
            None => ("", Ok(Vec::new())),
        };
        let content = content.map_err(|e| OwnershipError::Internal(format!("encode: {e}")))?;
        // On a single Redis the queue entry is updated inside the same script: one round
        // trip per command.
        let inbox_inline = !self.config.cluster;
        let archived = self.config.archive.is_some();
        let (t, c) = (&req.tenant, &req.conversation);
        let channel = chathub_broker::Channel::conversation(t, c);
        let marks = self.pending_marks();
        let state_key = self.keys.state(t, c);
        let mut invocation = APPLY.prepare_invoke();
        invocation
            .key(&state_key)
            .key(self.keys.history(t, c))
            // Always a key of this conversation's slot, used only with a client_msg_id.
            .key(self.keys.dedup(
                t,
                c,
                &Participant::of(&req.actor),
                client_msg_id.unwrap_or("-"),
            ))
            // Without follow-ups to mark, any key of the slot will do (it is not touched).
            .key(if marks.is_empty() {
                state_key
            } else {
                self.pending_key(t, c)
            })
            .arg(role)
            .arg(actor_id)
            .arg(privileges)
            .arg(command)
            .arg(content)
            .arg(client_msg_id.unwrap_or(""))
            .arg(seen_epoch.map_or(String::new(), |e| e.to_string()))
            .arg(if want_disabled { "1" } else { "0" })
            .arg(req.at)
            .arg(c.as_str())
            .arg(redis_channel(self.keys.prefix(), &channel))
            .arg(self.publish_command())
            // With an archive the stream is trimmed when settling, past what is archived.
            .arg(if archived {
                0
            } else {
                self.config.history_max_len
            })
            .arg(if archived {
                0
            } else {
                self.config.history_max_age_ms
            })
            .arg(self.config.dedup_window_ms)
            .arg(content_kind)
            .arg(if req.context.tenant_chat_disabled {
                "1"
            } else {
                "0"
            });
        if inbox_inline {
            let agents = chathub_broker::Channel::agents(t);
            self.queue_keys(&mut invocation, t);
            invocation.key(self.keys.webhook_jobs(t));
            invocation
                .arg("1")
                .arg(match &req.command {
                    Command::Send { content, .. } => content_preview(content),
                    _ => String::new(),
                })
                .arg(redis_channel(self.keys.prefix(), &agents))
                .arg(self.config.inbox_stream_max_len)
                .arg(self.agent_channel_prefix(t))
                .arg(self.config.webhook_job_lease_ms);
            if let Command::Send {
                content: MessageContent::Engagement { engagement },
                ..
            } = &req.command
                && role != "end_user"
            {
                // The end user's "received" record is written in the same step.
                let kind = engagement.engagement_type;
                self.received_keys(&mut invocation, t, &c.end_user(), kind);
            }
        } else {
            invocation.arg("0").arg("").arg("").arg("").arg("").arg("");
        }
        invocation.arg(marks);
        if marks.is_empty() {
            invocation.arg("");
        } else {
            invocation.arg(format!("{t}/{c}"));
        }
        // A connection found dead (Redis restarted since the last command) is replaced
        // by the connection manager; one retry on the new one is safe when the command
        // cannot apply twice: a send with a `client_msg_id` (deduplicated by the script)
        // or setting the disabled flag (idempotent). Others answer `unavailable`.
        let retry_safe = client_msg_id.is_some() || command == "set_disabled";
        let mut attempt = 0;
        let raw: Vec<u8> = loop {
            let mut conn = self.conn.clone();
            match invocation.invoke_async(&mut conn).await {
                Ok(raw) => break raw,
                Err(e)
                    if attempt == 0
                        && retry_safe
                        && (e.is_connection_dropped() || e.is_io_error()) =>
                {
                    tracing::debug!(error = %e, "redis connection lost; retrying once");
                    attempt += 1;
                }
                Err(e) => return Err(OwnershipError::from_redis(e)),
            }
        };
        let result: ScriptResult = rmp_serde::from_slice(&raw)
            .map_err(|e| OwnershipError::Corrupt(format!("script result: {e}")))?;
        match result.outcome.as_str() {
            "done" => {
                let state = result
                    .state
                    .ok_or_else(|| OwnershipError::Internal("script returned no state".into()))?;
                let mut queued_since = result.queued_since;
                if !result.events.is_empty() {
                    if self.config.fault == Some(FaultPoint::AbortAfterStep) {
                        tracing::error!("fault injected: aborting after the atomic step");
                        std::process::abort();
                    }
                    if !inbox_inline {
                        queued_since = self.update_inbox(&req, &state, &result.events).await;
                    }
                    self.archive_later(followups::ArchiveJob {
                        tenant: req.tenant.clone(),
                        conversation: req.conversation.clone(),
                        state: state.clone(),
                        events: result.events.clone(),
                    });
                }
                Ok(Decision::Done {
                    state,
                    ack: result.ack,
                    events: result.events,
                    queued_since,
                })
            }
            "conflict" => Ok(Decision::Conflict {
                owner: result.owner,
                epoch: result.epoch.unwrap_or_default(),
            }),
            "refused" => Ok(Decision::Refused(match result.refusal.as_deref() {
                Some("forbidden") => Refusal::Forbidden,
                Some("chat_disabled") => Refusal::ChatDisabled,
                Some("invalid_state") => Refusal::InvalidState,
                Some("missing_epoch") => Refusal::MissingEpoch,
                other => {
                    return Err(OwnershipError::Internal(format!(
                        "unknown refusal {other:?}"
                    )));
                }
            })),
            other => Err(OwnershipError::Internal(format!("unknown outcome {other}"))),
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
                    .arg(frame.by.as_str())
                    .arg(frame.epoch)
                    .arg(frame.seq),
                None => invocation.arg("").arg("").arg(0).arg(0),
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
