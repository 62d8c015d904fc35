//! The Redis backend: every command is one atomic script (`lua/apply.lua`), then the
//! tenant's inbox is updated by a second, idempotent script (`lua/inbox.lua`).
//!
//! `redis::Script` runs scripts with EVALSHA and reloads them transparently when Redis
//! answers NOSCRIPT (after a restart or `SCRIPT FLUSH`).

use crate::frames::{changes_queue, message_preview};
use crate::{ApplyRequest, Decision, Ownership, OwnershipError};
use chathub_broker::redis_channel;
use chathub_domain::{Actor, AgentId, Command, ConversationState, Event, MessageContent, Refusal};
use chathub_protocol::SendAck;
use chathub_store::RedisKeys;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::Deserialize;
use std::sync::LazyLock;

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/apply.lua")));
static INBOX: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/inbox.lua")));

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
    /// Publish with SPUBLISH (sharded pub/sub, for Redis Cluster) instead of PUBLISH.
    pub sharded_pubsub: bool,
}

impl Default for RedisOwnershipConfig {
    fn default() -> Self {
        RedisOwnershipConfig {
            history_max_len: 10_000,
            history_max_age_ms: 0,
            dedup_window_ms: 10 * 60 * 1000,
            inbox_stream_max_len: 10_000,
            sharded_pubsub: false,
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
}

impl<C> RedisOwnership<C> {
    /// A backend using `conn`, `keys` and `config`.
    pub fn new(conn: C, keys: RedisKeys, config: RedisOwnershipConfig) -> Self {
        RedisOwnership { conn, keys, config }
    }

    fn publish_command(&self) -> &'static str {
        if self.config.sharded_pubsub {
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
    state: Option<ConversationState>,
    #[serde(default)]
    ack: Option<SendAck>,
    #[serde(default, deserialize_with = "events_or_empty")]
    events: Vec<Event>,
    #[serde(default)]
    owner: Option<AgentId>,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Lua cannot tell an empty array from an empty map; accept both as "no events".
fn events_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrMap {
        List(Vec<Event>),
        Map(std::collections::HashMap<String, Event>),
    }
    Ok(match ListOrMap::deserialize(d)? {
        ListOrMap::List(v) => v,
        ListOrMap::Map(m) if m.is_empty() => Vec::new(),
        ListOrMap::Map(_) => return Err(serde::de::Error::custom("events is a non-empty map")),
    })
}

fn unavailable(e: impl std::fmt::Display) -> OwnershipError {
    OwnershipError::Unavailable(e.to_string())
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
        let content = content.map_err(unavailable)?;
        let (t, c) = (&req.tenant, &req.conversation);
        let channel = chathub_broker::Channel::conversation(t, c);
        let mut invocation = APPLY.prepare_invoke();
        invocation
            .key(self.keys.state(t, c))
            .key(self.keys.history(t, c))
            // Always a key of this conversation's slot, used only with a client_msg_id.
            .key(
                self.keys
                    .dedup(t, c, actor_id, client_msg_id.unwrap_or("-")),
            )
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
            .arg(self.config.history_max_len)
            .arg(self.config.history_max_age_ms)
            .arg(self.config.dedup_window_ms)
            .arg(content_kind)
            .arg(if req.context.tenant_chat_disabled {
                "1"
            } else {
                "0"
            });
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
                Err(e) => return Err(unavailable(e)),
            }
        };
        let result: ScriptResult = rmp_serde::from_slice(&raw).map_err(unavailable)?;
        match result.outcome.as_str() {
            "done" => {
                let state = result
                    .state
                    .ok_or_else(|| unavailable("script returned no state"))?;
                if !result.events.is_empty() {
                    self.update_inbox(&req, &state, &result.events).await;
                }
                Ok(Decision::Done {
                    state,
                    ack: result.ack,
                    events: result.events,
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
                other => return Err(unavailable(format!("unknown refusal {other:?}"))),
            })),
            other => Err(unavailable(format!("unknown outcome {other}"))),
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// The second step. The command is already applied, so a failure here is logged, not
    /// returned: the entry catches up with the conversation's next change.
    async fn update_inbox(&self, req: &ApplyRequest, state: &ConversationState, events: &[Event]) {
        let t = &req.tenant;
        let at = events.last().map_or(req.at, |e| e.at);
        let preview = message_preview(events).unwrap_or_default();
        let status_changed = changes_queue(events);
        let agents = chathub_broker::Channel::agents(t);
        for attempt in 0..2 {
            let mut conn = self.conn.clone();
            let result: Result<i64, _> = INBOX
                .key(self.keys.inbox(t))
                .key(self.keys.queue(t, chathub_domain::Status::Unanswered))
                .key(self.keys.queue(t, chathub_domain::Status::Active))
                .key(self.keys.queue(t, chathub_domain::Status::Finished))
                .key(self.keys.inbox_events(t))
                .arg(req.conversation.as_str())
                .arg(state.seq)
                .arg(state.status.as_str())
                .arg(state.owner.as_ref().map_or("", |o| o.as_str()))
                .arg(state.epoch)
                .arg(if state.disabled { "1" } else { "0" })
                .arg(at)
                .arg(if status_changed { "1" } else { "0" })
                .arg(&preview)
                .arg(self.publish_command())
                .arg(redis_channel(self.keys.prefix(), &agents))
                .arg(if status_changed { "1" } else { "0" })
                .arg(self.config.inbox_stream_max_len)
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok(_) => return,
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "inbox update failed, retrying")
                }
                Err(e) => {
                    tracing::warn!(error = %e, conversation = %req.conversation, "inbox update failed")
                }
            }
        }
    }
}
