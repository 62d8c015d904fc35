//! What each request does. Scope (which conversation a connection may touch) is checked
//! here; every rule about ownership and status is the backend's (the domain's) decision.

use crate::Backend;
use crate::auth::now_millis;
use crate::session::{Failure, Session, Subscription};
use chathub_broker::{Broker, Channel};
use chathub_domain::{
    Actor, Author, Command, Context, ConversationId, ConversationState, MessageContent, Presence,
    Refusal, Role, Status,
};
use chathub_ownership::frames::envelope;
use chathub_ownership::{ApplyRequest, Decision, Ownership};
use chathub_protocol::{
    ConversationView, ErrorCode, ErrorFrame, HistoryPage, InboxReply, ListPage, Op, Opened,
    ReadFrame, ReadMark, Reply, ServerFrame, Subscribed, TypingFrame,
};
use chathub_store::{ConversationStore, HistoryRange, StoreError, WorkspaceStore};

/// Queue changes read per round trip while catching a console up.
const INBOX_CHUNK: usize = 256;

/// Longest `client_msg_id`, in bytes.
pub(crate) const MAX_CLIENT_MSG_ID: usize = 64;

impl<K: Backend> Session<K> {
    /// Answers one request.
    pub(crate) async fn handle(&mut self, op: Op) -> Result<Reply, Failure> {
        match op {
            Op::Send {
                conversation,
                client_msg_id,
                text,
                canned,
                engagement,
                epoch,
            } => {
                let body = match (text.is_empty(), canned, engagement) {
                    (false, None, None) => MessageBody::Text(text),
                    (true, Some(id), None) => MessageBody::Canned(id),
                    (true, None, Some(id)) => MessageBody::Engagement(id),
                    (true, None, None) => {
                        return Err(Failure::new(ErrorCode::BadRequest, "`text` is empty"));
                    }
                    _ => {
                        return Err(Failure::new(
                            ErrorCode::BadRequest,
                            "give exactly one of `text`, `canned`, `engagement`",
                        ));
                    }
                };
                self.send(conversation, client_msg_id, body, epoch).await
            }
            Op::Subscribe {
                conversation,
                since,
                history_id,
            } => self.subscribe(conversation, since, history_id).await,
            Op::Unsubscribe { conversation } => {
                let conversation = self.scope(conversation)?;
                let channel = Channel::conversation(&self.identity.tenant, &conversation);
                if self.subs.remove(&channel).is_some() {
                    self.leave(&channel).await;
                }
                Ok(Reply::Unsubscribe {})
            }
            Op::Open { conversation } => {
                let conversation = self.scope(conversation)?;
                let store = self.node.backend.store();
                let tenant = &self.identity.tenant;
                let state = store
                    .state(tenant, &conversation)
                    .await
                    .map_err(unavailable)?;
                let reads = store
                    .reads(tenant, &conversation)
                    .await
                    .map_err(unavailable)?;
                Ok(Reply::Open(Opened {
                    view: ConversationView {
                        conversation,
                        state,
                    },
                    reads: reads
                        .into_iter()
                        .map(|(by, seq)| ReadMark { by, seq })
                        .collect(),
                }))
            }
            Op::History {
                conversation,
                before,
                after,
                limit,
            } => {
                let conversation = self.scope(conversation)?;
                let limit = self.page_size(limit)?;
                let range = match (before, after) {
                    (Some(_), Some(_)) => {
                        return Err(Failure::new(
                            ErrorCode::BadRequest,
                            "give `before` or `after`, not both",
                        ));
                    }
                    (Some(before), None) => HistoryRange::Before { before, limit },
                    (None, Some(after)) => HistoryRange::After { after, limit },
                    (None, None) => HistoryRange::Latest { limit },
                };
                let slice = self
                    .node
                    .backend
                    .store()
                    .history(&self.identity.tenant, &conversation, range)
                    .await
                    .map_err(unavailable)?;
                Ok(Reply::History(HistoryPage {
                    conversation,
                    events: slice.events,
                    has_more: slice.has_more,
                }))
            }
            Op::List {
                status,
                limit,
                cursor,
            } => {
                self.require_agent("list")?;
                let limit = self.page_size(limit)?;
                let page = self
                    .node
                    .backend
                    .store()
                    .list(&self.identity.tenant, status, limit, cursor.as_deref())
                    .await
                    .map_err(|e| match e {
                        StoreError::Invalid(what) => {
                            Failure::new(ErrorCode::BadRequest, format!("invalid {what}"))
                        }
                        e => unavailable(e),
                    })?;
                let now = now_millis();
                let mut items = page.items;
                for item in items.iter_mut().filter(|i| i.status == Status::Unanswered) {
                    item.waiting_ms = Some(now.saturating_sub(item.since));
                }
                if status == Status::Active && !items.is_empty() {
                    self.flag_absent_owners(&mut items, now).await?;
                }
                Ok(Reply::List(ListPage {
                    status,
                    items,
                    next_cursor: page.next_cursor,
                }))
            }
            Op::Finish {
                conversation,
                epoch,
            } => {
                let command = Command::Finish { seen_epoch: epoch };
                Ok(Reply::Finish(self.apply_view(conversation, command).await?))
            }
            Op::Disable { conversation } => {
                let command = Command::SetDisabled(true);
                Ok(Reply::Disable(
                    self.apply_view(conversation, command).await?,
                ))
            }
            Op::Enable { conversation } => {
                let command = Command::SetDisabled(false);
                Ok(Reply::Enable(self.apply_view(conversation, command).await?))
            }
            Op::Typing {
                conversation,
                typing,
            } => {
                let conversation = self.scope(conversation)?;
                let frame = ServerFrame::Typing(TypingFrame {
                    conversation: conversation.clone(),
                    from: Author::of(&self.identity.actor),
                    typing,
                });
                self.publish(&conversation, &frame).await?;
                Ok(Reply::Typing {})
            }
            Op::Read { conversation, seq } => {
                let conversation = self.scope(conversation)?;
                let by = Author::of(&self.identity.actor);
                let moved = self
                    .node
                    .backend
                    .store()
                    .set_read(&self.identity.tenant, &conversation, &by, seq)
                    .await
                    .map_err(unavailable)?;
                if let Some(seq) = moved {
                    let frame = ServerFrame::Read(ReadFrame {
                        conversation: conversation.clone(),
                        by,
                        seq,
                    });
                    self.publish(&conversation, &frame).await?;
                }
                Ok(Reply::Read {})
            }
            Op::Inbox { since } => self.inbox(since).await,
            op @ (Op::EngagementHistory { .. }
            | Op::EngagementActivity { .. }
            | Op::EngagementsAvailable { .. }
            | Op::Profile { .. }
            | Op::Redeem { .. }
            | Op::CannedList { .. }
            | Op::CannedUpsert { .. }
            | Op::CannedDelete { .. }
            | Op::DisableTenant {}
            | Op::EnableTenant {}
            | Op::Presence { .. }
            | Op::Agents {}) => self.workspace_op(op).await,
            Op::Ping {} => Ok(Reply::Ping {}),
        }
    }

    async fn send(
        &mut self,
        conversation: Option<ConversationId>,
        client_msg_id: Option<String>,
        body: MessageBody,
        epoch: Option<u64>,
    ) -> Result<Reply, Failure> {
        let conversation = self.scope(conversation)?;
        if let Some(id) = &client_msg_id
            && (id.is_empty() || id.len() > MAX_CLIENT_MSG_ID)
        {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!("`client_msg_id` must be 1 to {MAX_CLIENT_MSG_ID} bytes"),
            ));
        }
        if !self.is_end_user() && epoch.is_none() {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "missing field `epoch`: agents send the ownership epoch they saw",
            ));
        }
        let content = self.content(&conversation, body).await?;
        if let MessageContent::Text { text } = &content {
            if text.trim().is_empty() {
                return Err(Failure::new(ErrorCode::BadRequest, "`text` is empty"));
            }
            let max = self.node.config.limits.max_text_bytes;
            if text.len() > max {
                return Err(Failure::new(
                    ErrorCode::TooLarge,
                    format!("`text` is {} bytes; the limit is {max}", text.len()),
                ));
            }
        }
        let command = Command::Send {
            content,
            client_msg_id,
            seen_epoch: if self.is_end_user() { None } else { epoch },
        };
        match self.apply(conversation, command).await?.1 {
            Some(ack) => Ok(Reply::Send(ack)),
            None => Err(Failure::new(
                ErrorCode::Internal,
                "send was not acknowledged",
            )),
        }
    }

    /// Subscribe-then-replay: follow the live channel first (events queue in the
    /// outbox), then write history after `since`, then let the live events through,
    /// skipping every `seq` already written. No gap, no duplicate.
    async fn subscribe(
        &mut self,
        conversation: Option<ConversationId>,
        since: Option<u64>,
        history_id: Option<String>,
    ) -> Result<Reply, Failure> {
        let conversation = self.scope(conversation)?;
        let channel = Channel::conversation(&self.identity.tenant, &conversation);
        let max = self.node.config.limits.max_subscriptions;
        if !self.subs.contains_key(&channel) && self.subs.len() >= max {
            return Err(Failure::new(
                ErrorCode::TooLarge,
                format!("at most {max} subscriptions per connection"),
            ));
        }
        self.join(&channel).await.map_err(|e| {
            tracing::warn!(error = %e, "subscribe failed");
            ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "subscribe")
                .increment(1);
            Failure::new(ErrorCode::Unavailable, "cannot subscribe now; retry")
        })?;
        let state = self
            .node
            .backend
            .store()
            .state(&self.identity.tenant, &conversation)
            .await
            .map_err(unavailable)?;
        let already = self.subs.get(&channel).map(|s| s.last_seq);
        // History the client saw is gone when the server's history id changed (data lost,
        // new events may already reuse the old seqs) or the client is ahead of it.
        let lost = match (since, history_id.as_deref()) {
            (None, _) => false,
            (Some(since), _) if since > state.seq => true,
            (Some(_), Some(theirs)) if !theirs.is_empty() => self
                .node
                .backend
                .current_history_id()
                .await
                .is_some_and(|ours| !ours.is_empty() && ours != theirs),
            (Some(_), _) => false,
        };
        let (last, replayed, truncated) = match since {
            _ if lost => (already.unwrap_or(0).max(state.seq), 0, true),
            None => (already.unwrap_or(0).max(state.seq), 0, false),
            Some(since) if since >= state.seq => (already.unwrap_or(0).max(state.seq), 0, false),
            Some(since) => {
                let mut last = since;
                let written = self.write_history(&conversation, &mut last, None).await?;
                // Trimmed history shows as a first event later than the one asked for.
                let truncated = written.first.is_some_and(|first| first > since + 1);
                let last = last.max(state.seq).max(already.unwrap_or(0));
                (last, written.count, truncated)
            }
        };
        if since.is_some() {
            let outcome = match (lost, truncated, replayed) {
                (true, _, _) => "lost",
                (_, true, _) => "truncated",
                (_, _, 0) => "no_gap",
                _ => "gap",
            };
            ::metrics::counter!(crate::metrics::RESUMES, "outcome" => outcome).increment(1);
        }
        self.subs.insert(
            channel,
            Subscription {
                conversation: conversation.clone(),
                last_seq: last,
            },
        );
        Ok(Reply::Subscribe(Subscribed {
            view: ConversationView {
                conversation,
                state: ConversationState { seq: last, ..state },
            },
            replayed,
            history_truncated: truncated,
            history_lost: lost,
        }))
    }

    /// Marks active conversations whose owner has had no live session for longer than
    /// `owner_absent_after`.
    async fn flag_absent_owners(
        &self,
        items: &mut [chathub_protocol::QueueItem],
        now: u64,
    ) -> Result<(), Failure> {
        let presence = self
            .node
            .backend
            .workspace()
            .presence(&self.identity.tenant, now)
            .await
            .map_err(unavailable)?;
        let limit = self.node.config.owner_absent_after.as_millis() as u64;
        for item in items.iter_mut() {
            let Some(owner) = &item.owner else { continue };
            let who = format!("agent:{owner}");
            let absent = match presence.iter().find(|p| p.who == who) {
                Some(p) => {
                    p.presence == Presence::Offline && now.saturating_sub(p.last_seen) > limit
                }
                None => true,
            };
            item.owner_absent = Some(absent);
        }
        Ok(())
    }

    /// Replays the tenant's queue changes after `since` as `queue` frames (live ones keep
    /// coming meanwhile; consoles keep the later `seq` per conversation).
    async fn inbox(&mut self, since: Option<String>) -> Result<Reply, Failure> {
        self.require_agent("inbox")?;
        let mut after = since;
        let mut replayed = 0;
        let mut truncated = None;
        let latest = loop {
            let slice = self
                .node
                .backend
                .store()
                .inbox_after(&self.identity.tenant, after.as_deref(), INBOX_CHUNK)
                .await
                .map_err(|e| match e {
                    StoreError::Invalid(what) => {
                        Failure::new(ErrorCode::BadRequest, format!("invalid {what}"))
                    }
                    e => unavailable(e),
                })?;
            truncated.get_or_insert(slice.truncated);
            for item in slice.items {
                after = item.cursor.clone();
                replayed += 1;
                self.feed_frame(&ServerFrame::Queue(item))
                    .await
                    .map_err(|_| Failure::Gone)?;
            }
            if !slice.has_more || after.is_none() {
                break slice.latest;
            }
        };
        Ok(Reply::Inbox(InboxReply {
            cursor: latest.or(after),
            replayed,
            history_truncated: truncated.unwrap_or(false),
        }))
    }

    /// Applies a command and answers with the conversation's state after it.
    async fn apply_view(
        &mut self,
        conversation: ConversationId,
        command: Command,
    ) -> Result<ConversationView, Failure> {
        let (state, _) = self.apply(conversation.clone(), command).await?;
        Ok(ConversationView {
            conversation,
            state,
        })
    }

    /// Applies a command through the backend and maps refusals to error replies.
    async fn apply(
        &mut self,
        conversation: ConversationId,
        command: Command,
    ) -> Result<(ConversationState, Option<chathub_protocol::SendAck>), Failure> {
        let conversation = self.scope(Some(conversation))?;
        let settings = self
            .node
            .settings(&self.identity.tenant)
            .await
            .map_err(unavailable)?;
        let request = ApplyRequest {
            tenant: self.identity.tenant.clone(),
            conversation: conversation.clone(),
            actor: self.identity.actor.clone(),
            command,
            at: now_millis(),
            context: Context {
                tenant_chat_disabled: settings.chat_disabled,
            },
        };
        let decision = self
            .node
            .backend
            .ownership()
            .apply(request)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "apply failed");
                ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "apply")
                    .increment(1);
                Failure::new(
                    ErrorCode::Unavailable,
                    "backend unavailable; retry with the same client_msg_id",
                )
            })?;
        match decision {
            Decision::Done { state, ack, events } => {
                self.after_applied(&conversation, &events).await;
                Ok((state, ack))
            }
            Decision::Conflict { owner, epoch } => {
                ::metrics::counter!(crate::metrics::TAKES, "outcome" => "lost").increment(1);
                let who = owner
                    .as_ref()
                    .map_or("nobody".to_owned(), |o| o.to_string());
                Err(Failure::Reply(ErrorFrame {
                    id: None,
                    code: ErrorCode::Conflict,
                    message: format!(
                        "the conversation changed hands: owner {who}, epoch {epoch}; not delivered"
                    ),
                    owner,
                    epoch: Some(epoch),
                    reason: None,
                }))
            }
            Decision::Refused(refusal) => Err(match refusal {
                Refusal::Forbidden => forbidden("your role or privileges do not allow this"),
                Refusal::ChatDisabled => Failure::new(
                    ErrorCode::ChatDisabled,
                    "two-way chat is disabled for this conversation",
                ),
                Refusal::InvalidState => Failure::new(
                    ErrorCode::InvalidState,
                    "not possible in the conversation's current status",
                ),
                Refusal::MissingEpoch => Failure::new(
                    ErrorCode::BadRequest,
                    "missing field `epoch`: agents send the ownership epoch they saw",
                ),
            }),
        }
    }

    pub(crate) async fn publish(
        &self,
        conversation: &ConversationId,
        frame: &ServerFrame,
    ) -> Result<(), Failure> {
        let channel = Channel::conversation(&self.identity.tenant, conversation);
        self.publish_on(&channel, frame).await
    }

    /// Publishes a frame made here (not a conversation event) on `channel`.
    pub(crate) async fn publish_on(
        &self,
        channel: &Channel,
        frame: &ServerFrame,
    ) -> Result<(), Failure> {
        let channel = channel.clone();
        self.node
            .backend
            .broker()
            .publish(&channel, envelope(&channel, None, frame))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "publish failed");
                Failure::new(ErrorCode::Unavailable, "cannot publish now; retry")
            })
    }

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
            (Actor::Agent { .. }, None) => Err(Failure::new(
                ErrorCode::BadRequest,
                "missing field `conversation`",
            )),
        }
    }

    pub(crate) fn is_end_user(&self) -> bool {
        self.identity.role == Role::EndUser
    }

    pub(crate) fn require_agent(&self, op: &str) -> Result<(), Failure> {
        if self.is_end_user() {
            return Err(forbidden(format!("`{op}` is for agents")));
        }
        Ok(())
    }

    pub(crate) fn page_size(&self, limit: Option<u32>) -> Result<usize, Failure> {
        let l = &self.node.config.limits;
        match limit {
            None => Ok(l.default_page),
            Some(0) => Err(Failure::new(
                ErrorCode::BadRequest,
                "`limit` must be at least 1",
            )),
            Some(n) => Ok((n as usize).min(l.max_page)),
        }
    }
}

/// What a `send` asked to send, before it is resolved into message content.
pub(crate) enum MessageBody {
    /// Plain text.
    Text(String),
    /// A canned response by id.
    Canned(String),
    /// A catalogue engagement by id.
    Engagement(String),
}

pub(crate) fn forbidden(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::Forbidden, message)
}

pub(crate) fn unavailable(e: StoreError) -> Failure {
    tracing::warn!(error = %e, "store failed");
    ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "store").increment(1);
    Failure::new(ErrorCode::Unavailable, "store unavailable; retry")
}
