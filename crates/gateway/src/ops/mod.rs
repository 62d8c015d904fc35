//! What each request does: one exhaustive dispatch over [`Op`] into one file per request
//! family (the habit of mini-redis's `cmd/mod.rs`). Each op is a function of a narrow
//! [`Ctx`] (the node's limits and backend handles, the caller's identity) and, for the
//! few that act on the connection itself (following conversations, replays, the device's
//! availability), of the [`Connection`] it came on. The socket's session and the admin
//! HTTP API are two adapters over these same functions, so validation cannot differ by
//! transport.
//!
//! Scope (which conversation a caller may touch) is checked here; every rule about
//! ownership and status is the backend's (the domain's) decision.
//!
//! # Layout
//! - `send`: `send` (text, canned response, engagement, attachment).
//! - `attachments`: `attachment_upload`, `attachment_link`.
//! - `apply`: one command through the ownership backend; its refusals as errors.
//! - `follow`: `subscribe`, `unsubscribe`, `open`, `history`, and the history replays.
//! - `queue`: `list`, `inbox`.
//! - `lifecycle`: `finish`, `disable`, `enable`.
//! - `signals`: `typing`, `read`.
//! - `engagements`: `engagement_history`, `engagement_activity`,
//!   `engagements_available`, `profile`, `redeem`; and the admin API's catalogue,
//!   profiles and engagement history.
//! - `canned`: `canned_list`, `canned_upsert`, `canned_delete`.
//! - `tenant`: `disable_tenant`, `enable_tenant` (the admin API's settings).
//! - `presence`: `presence`, `agents`, and the session's heartbeat and announcements.
//! - `reports`: `stats` (the console's figures) and the admin API's cycles CSV.
//! - `search`: `search` (and the admin API's search).
//! - `transcript`: `transcript` (and the admin API's transcripts).
//! - `followups`: what an applied command's events set off.

pub(crate) mod amend;
pub(crate) mod apply;
pub(crate) mod attachments;
pub(crate) mod audit;
pub(crate) mod bot;
pub(crate) mod canned;
pub(crate) mod engagements;
pub(crate) mod erase;
pub(crate) mod export;
pub(crate) mod follow;
pub(crate) mod followups;
pub(crate) mod lifecycle;
pub(crate) mod presence;
pub(crate) mod queue;
pub(crate) mod reports;
pub(crate) mod search;
pub(crate) mod send;
pub(crate) mod signals;
pub(crate) mod survey;
pub(crate) mod tenant;
pub(crate) mod transcript;

use crate::auth::Identity;
use crate::{Backend, Node};
use chathub_broker::{BrokerError, Channel};
use chathub_domain::{Actor, ConversationId, Presence, Privilege, Role};
use chathub_protocol::{ErrorCode, ErrorFrame, Op, Reply, ServerFrame};
use chathub_store::StoreError;
use std::future::Future;
use std::sync::Arc;

pub(crate) use follow::Follows;

/// What every op may use: the node (limits, backend handles) and who is asking.
pub(crate) struct Ctx<'a, K> {
    /// The node: its configuration and backend.
    pub(crate) node: &'a Arc<Node<K>>,
    /// The caller (from the socket's handshake, or the admin API's bearer token).
    pub(crate) identity: &'a Identity,
}

/// The connection a request came on, for the ops that act on the connection itself.
/// The socket's session implements it; the admin API has no connection and calls only
/// ops that need none.
pub(crate) trait Connection: Send {
    /// This connection's session id (`<node>-<n>`), as in `welcome` and presence.
    fn session_key(&self) -> &str;
    /// The conversations this connection follows.
    fn follows(&mut self) -> &mut Follows;
    /// This device's availability (agents choose; end users are simply online).
    fn presence(&mut self) -> &mut Presence;
    /// Follows `channel` on this node (the node subscribes on the broker for its first
    /// local follower).
    fn join(&mut self, channel: &Channel) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Stops following `channel`.
    fn leave(&mut self, channel: &Channel) -> impl Future<Output = ()> + Send;
    /// Writes a frame made for this connection only (a replay), without flushing.
    fn feed(&mut self, frame: &ServerFrame) -> impl Future<Output = Result<(), Gone>> + Send;
}

/// The connection broke while an op was writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Answer with this error.
    Reply(ErrorFrame),
    /// The connection broke while answering.
    Gone,
}

impl Failure {
    /// An error reply with `code` and `message`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure::Reply(ErrorFrame::new(None, code, message))
    }

    /// `bad_request` with `message`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(ErrorCode::BadRequest, message)
    }
}

impl From<Gone> for Failure {
    fn from(_: Gone) -> Failure {
        Failure::Gone
    }
}

/// `forbidden` with `message`.
pub(crate) fn forbidden(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::Forbidden, message)
}

/// `not_found` for `what`.
pub(crate) fn not_found(what: &str) -> Failure {
    Failure::new(ErrorCode::NotFound, format!("no such {what}"))
}

/// The answer to a removal: done, or `not_found` for `what` when there was nothing.
pub(crate) fn removed(removed: bool, what: &str) -> Result<(), Failure> {
    if removed {
        Ok(())
    } else {
        Err(not_found(what))
    }
}

/// A store failure as the client sees it. Counted and logged here, where it becomes a
/// reply: invalid client input is `bad_request`, corrupt data `internal`, an unreachable
/// backend `unavailable`.
pub(crate) fn store_failed(e: StoreError) -> Failure {
    match e {
        StoreError::Invalid(what) => Failure::bad_request(format!("invalid {what}")),
        e => {
            ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "store").increment(1);
            if e.is_retryable() {
                tracing::warn!(error = %e, "store unavailable");
                Failure::new(ErrorCode::Unavailable, "store unavailable; retry")
            } else {
                tracing::error!(error = %e, "store failed");
                Failure::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

/// Answers one request of a connection.
pub(crate) async fn dispatch<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    op: Op,
) -> Result<Reply, Failure> {
    match op {
        Op::Send {
            conversation,
            client_msg_id,
            text,
            canned,
            engagement,
            attachment,
            epoch,
            visibility,
            handover_note,
        } => match visibility {
            chathub_protocol::Visibility::Agents => {
                if canned.is_some()
                    || engagement.is_some()
                    || attachment.is_some()
                    || handover_note.is_some()
                {
                    return Err(Failure::bad_request(
                        "a note is text only: no `canned`, `engagement`, `attachment` or \
                         `handover_note`",
                    ));
                }
                send::note(cx, conversation, client_msg_id, text).await
            }
            chathub_protocol::Visibility::All => {
                let body = send::MessageBody::from_fields(text, canned, engagement, attachment)?;
                let Some(note) = handover_note else {
                    return send::send(cx, conversation, client_msg_id, body, epoch).await;
                };
                send::send_with_handover(cx, conversation, client_msg_id, body, epoch, note).await
            }
        },
        Op::Subscribe {
            conversation,
            since,
            history_id,
        } => follow::subscribe(cx, conn, conversation, since, history_id).await,
        Op::Unsubscribe { conversation } => follow::unsubscribe(cx, conn, conversation).await,
        Op::Open { conversation } => follow::open(cx, conversation).await,
        Op::History {
            conversation,
            before,
            after,
            limit,
        } => follow::history(cx, conversation, before, after, limit).await,
        Op::List {
            status,
            limit,
            cursor,
        } => queue::list(cx, status, limit, cursor).await,
        Op::Inbox { since } => queue::inbox(cx, conn, since).await,
        Op::Finish {
            conversation,
            epoch,
        } => {
            let conversation = cx.agents_conversation("finish", conversation)?;
            let epoch = epoch.ok_or_else(|| {
                Failure::bad_request(
                    "missing field `epoch`: agents send the ownership epoch they saw",
                )
            })?;
            Ok(Reply::Finish(
                lifecycle::finish(cx, conversation, epoch).await?,
            ))
        }
        Op::Release {
            conversation,
            epoch,
            seq,
        } => {
            let conversation = cx.agents_conversation("release", conversation)?;
            let epoch = epoch.ok_or_else(|| {
                Failure::bad_request("missing field `epoch`: the ownership epoch you saw")
            })?;
            Ok(Reply::Release(
                lifecycle::release(cx, conversation, epoch, seq).await?,
            ))
        }
        Op::Handoff {
            conversation,
            epoch,
            summary,
            fields,
        } => {
            let conversation = cx.agents_conversation("handoff", conversation)?;
            let epoch = epoch.ok_or_else(|| {
                Failure::bad_request("missing field `epoch`: the ownership epoch you saw")
            })?;
            Ok(Reply::Handoff(
                bot::handoff(cx, conversation, epoch, summary, fields).await?,
            ))
        }
        Op::Transfer {
            conversation,
            to,
            note,
            epoch,
        } => {
            let conversation = cx.agents_conversation("transfer", conversation)?;
            let to = to.ok_or_else(|| Failure::bad_request("missing field `to`"))?;
            let epoch = epoch.ok_or_else(|| {
                Failure::bad_request(
                    "missing field `epoch`: agents send the ownership epoch they saw",
                )
            })?;
            Ok(Reply::Transfer(
                lifecycle::transfer(cx, conversation, to, note, epoch).await?,
            ))
        }
        Op::Disable { conversation } => {
            let conversation = cx.agents_conversation("disable", conversation)?;
            Ok(Reply::Disable(
                lifecycle::set_disabled(cx, conversation, true).await?,
            ))
        }
        Op::Enable { conversation } => {
            let conversation = cx.agents_conversation("enable", conversation)?;
            Ok(Reply::Enable(
                lifecycle::set_disabled(cx, conversation, false).await?,
            ))
        }
        Op::Edit {
            conversation,
            seq,
            text,
        } => amend::amend(cx, conversation, seq, chathub_domain::Change::Edit { text }).await,
        Op::SurveyAnswer {
            conversation,
            rating,
            comment,
        } => survey::answer(cx, conversation, rating, comment).await,
        Op::Unsend { conversation, seq } => {
            amend::amend(cx, conversation, seq, chathub_domain::Change::Unsend).await
        }
        Op::Redact {
            conversation,
            seq,
            reason,
        } => {
            amend::amend(
                cx,
                conversation,
                seq,
                chathub_domain::Change::Redact { reason },
            )
            .await
        }
        Op::Typing {
            conversation,
            typing,
        } => signals::typing(cx, conversation, typing).await,
        Op::Read { conversation, seq } => signals::read(cx, conversation, seq).await,
        Op::EngagementHistory {
            conversation,
            engagement_type,
            before,
            limit,
        } => {
            let conversation = cx.agents_conversation("engagement_history", conversation)?;
            engagements::history(cx, conversation, engagement_type, before, limit).await
        }
        Op::EngagementActivity {
            conversation,
            per_type,
        } => {
            let conversation = cx.agents_conversation("engagement_activity", conversation)?;
            engagements::activity(cx, conversation, per_type).await
        }
        Op::EngagementsAvailable {
            conversation,
            engagement_type,
        } => {
            let conversation = cx.agents_conversation("engagements_available", conversation)?;
            engagements::available(cx, conversation, engagement_type).await
        }
        Op::Profile { conversation } => {
            let conversation = cx.agents_conversation("profile", conversation)?;
            engagements::profile(cx, conversation).await
        }
        Op::Redeem { engagement } => engagements::redeem(cx, engagement).await,
        Op::CannedList { query } => canned::list(cx, query).await,
        Op::CannedUpsert {
            canned: id,
            shortcut,
            text,
        } => Ok(Reply::CannedUpsert(
            canned::upsert(cx, id, shortcut, text).await?,
        )),
        Op::CannedDelete { canned: id } => {
            canned::delete(cx, &id).await?;
            Ok(Reply::CannedDelete {})
        }
        Op::DisableTenant {} => Ok(Reply::DisableTenant(tenant::set_chat(cx, true).await?)),
        Op::EnableTenant {} => Ok(Reply::EnableTenant(tenant::set_chat(cx, false).await?)),
        Op::Presence { presence } => presence::set(cx, conn, presence).await,
        Op::Agents {} => presence::agents(cx).await,
        Op::Search {
            query,
            end_user,
            agent,
            status,
            from,
            to,
            kind,
            cursor,
            limit,
        } => {
            let request = search::SearchRequest {
                query,
                end_user,
                agent,
                status,
                from,
                to,
                kind,
                cursor,
                limit,
            };
            Ok(Reply::Search(search::search(cx, request).await?))
        }
        Op::Transcript {
            conversation,
            format,
        } => {
            let format = transcript::Format::parse(format.as_deref())?;
            let max = transcript::SOCKET_MAX_EVENTS;
            let audience = follow::Audience::of(cx);
            let reply = transcript::transcript(cx, conversation, format, max, audience).await?;
            transcript::fits_socket(cx, &reply)?;
            Ok(Reply::Transcript(reply))
        }
        Op::Stats { from, to } => Ok(Reply::Stats(reports::stats(cx, from, to).await?)),
        Op::AttachmentUpload {
            conversation,
            name,
            size,
            content_type,
            client_msg_id,
        } => attachments::upload(cx, conversation, name, size, content_type, client_msg_id).await,
        Op::AttachmentLink {
            conversation,
            attachment,
        } => attachments::link(cx, conversation, attachment).await,
        Op::Ping {} => Ok(Reply::Ping {}),
    }
}

impl<K: Backend> Ctx<'_, K> {
    /// The conversation a request may act on: end users only their own (which they may
    /// leave out), agents any of their tenant (which they must name).
    pub(crate) fn scope(&self, given: Option<ConversationId>) -> Result<ConversationId, Failure> {
        match (&self.identity.actor, given) {
            (Actor::EndUser(me), None) => Ok(ConversationId::of_end_user(me)),
            (Actor::EndUser(me), Some(c)) if c.end_user() == *me => Ok(c),
            (Actor::EndUser(_), Some(_)) => {
                Err(forbidden("end users may only use their own conversation"))
            }
            (Actor::Agent { .. }, Some(c)) => Ok(c),
            (Actor::Agent { .. }, None) => {
                Err(Failure::bad_request("missing field `conversation`"))
            }
        }
    }

    /// Whether the caller is an end user.
    pub(crate) fn is_end_user(&self) -> bool {
        self.identity.role == Role::EndUser
    }

    /// Refuses end users: `op` is for agents and admins.
    pub(crate) fn require_agent(&self, op: &str) -> Result<(), Failure> {
        if self.is_end_user() {
            return Err(forbidden(format!("`{op}` is for agents")));
        }
        Ok(())
    }

    /// The conversation of an agent-only request: the role is checked first (an end user
    /// is `forbidden`, with or without a conversation), then the conversation must be
    /// named.
    pub(crate) fn agents_conversation(
        &self,
        op: &str,
        given: Option<ConversationId>,
    ) -> Result<ConversationId, Failure> {
        self.require_agent(op)?;
        given.ok_or_else(|| Failure::bad_request("missing field `conversation`"))
    }

    /// Refuses a caller without `privilege`.
    pub(crate) fn require(&self, privilege: Privilege) -> Result<(), Failure> {
        if self.identity.actor.has(privilege) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "needs the `{}` privilege",
                privilege.as_str()
            )))
        }
    }

    /// A page size: the default when absent, at most the configured maximum.
    pub(crate) fn page_size(&self, limit: Option<u32>) -> Result<usize, Failure> {
        let l = &self.node.config.limits;
        match limit {
            None => Ok(l.default_page),
            Some(0) => Err(Failure::bad_request("`limit` must be at least 1")),
            Some(n) => Ok((n as usize).min(l.max_page)),
        }
    }
}
