//! The agent workspace's requests: engagements (history preview, recent activity,
//! available engagements, sending one, redeeming), canned responses, the tenant-wide chat
//! switch, availability; and what follows an applied command (ownership-lost notices,
//! the engagement's history record, the offline delivery webhook).

use crate::Backend;
use crate::auth::now_millis;
use crate::ops::{MessageBody, forbidden, unavailable};
use crate::session::{Failure, Session};
use crate::webhook::Delivery;
use chathub_broker::Channel;
use chathub_domain::canned::{self, CannedResponse};
use chathub_domain::engagement::{
    CatalogueItem, EngagementType, HistoryAction, HistoryEvent, Ineligible, entitlement,
    redeem_action,
};
use chathub_domain::{
    Actor, Cause, ConversationId, EngagementCard, Event, EventBody, MessageContent, Presence,
    Privilege, Role,
};
use chathub_protocol::{
    ActivityReply, AgentsReply, AvailableReply, CannedListReply, EngagementHistoryReply, ErrorCode,
    ErrorFrame, Op, OwnershipLostFrame, PresenceFrame, ProfileReply, RedeemReply, Reply,
    ServerFrame, TenantFrame, TypeActivity,
};
use chathub_store::{RedeemRefusal, StoreError, WorkspaceStore};

/// Longest canned shortcut, in bytes.
const MAX_SHORTCUT: usize = 64;
/// Default events per type in `engagement_activity`.
const DEFAULT_PER_TYPE: usize = 3;

fn ineligible(reason: Ineligible) -> Failure {
    let code = match reason {
        Ineligible::Expired => ErrorCode::Expired,
        Ineligible::AlreadyRedeemed => ErrorCode::AlreadyRedeemed,
        Ineligible::OutOfStock => ErrorCode::OutOfStock,
        _ => ErrorCode::NotEntitled,
    };
    Failure::Reply(ErrorFrame {
        reason: Some(reason.as_str().to_owned()),
        ..ErrorFrame::new(
            None,
            code,
            format!(
                "the end user is not entitled to this engagement: {}",
                reason.as_str()
            ),
        )
    })
}

fn not_found(what: &str) -> Failure {
    Failure::new(ErrorCode::NotFound, format!("no such {what}"))
}

fn bad_cursor(e: StoreError) -> Failure {
    match e {
        StoreError::Invalid(what) => Failure::new(ErrorCode::BadRequest, format!("invalid {what}")),
        e => unavailable(e),
    }
}

impl<K: Backend> Session<K> {
    fn require(&self, privilege: Privilege) -> Result<(), Failure> {
        if self.identity.actor.has(privilege) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "needs the `{}` privilege",
                privilege.as_str()
            )))
        }
    }

    /// The end user's catalogue items and whether they are entitled to each now.
    async fn entitlements(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<(CatalogueItem, Result<(), Ineligible>)>, Failure> {
        let ws = self.node.backend.workspace();
        let t = &self.identity.tenant;
        let user = conversation.end_user();
        let items = ws.items(t).await.map_err(unavailable)?;
        let profile = ws
            .profile(t, &user)
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        let redeemed = ws.redeemed(t, &user).await.map_err(unavailable)?;
        let now = now_millis();
        Ok(items
            .into_iter()
            .map(|item| {
                let verdict = entitlement(&item, &profile, redeemed.contains(&item.id), now);
                (item, verdict)
            })
            .collect())
    }

    /// Resolves what a `send` asked for into message content: canned responses are filled
    /// from the end user's profile, engagements are checked for entitlement.
    pub(crate) async fn content(
        &self,
        conversation: &ConversationId,
        body: MessageBody,
    ) -> Result<MessageContent, Failure> {
        match body {
            MessageBody::Text(text) => Ok(MessageContent::Text { text }),
            MessageBody::Canned(id) => {
                self.require_agent("send canned")?;
                let ws = self.node.backend.workspace();
                let t = &self.identity.tenant;
                let all = ws.canned(t).await.map_err(unavailable)?;
                let found = all
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| not_found("canned response"))?;
                let profile = ws
                    .profile(t, &conversation.end_user())
                    .await
                    .map_err(unavailable)?
                    .unwrap_or_default();
                Ok(MessageContent::Text {
                    text: canned::fill(&found.text, &profile, &self.identity.name),
                })
            }
            MessageBody::Engagement(id) => {
                self.require_agent("send engagement")?;
                let (item, verdict) = self
                    .entitlements(conversation)
                    .await?
                    .into_iter()
                    .find(|(item, _)| item.id == id)
                    .ok_or_else(|| not_found("engagement"))?;
                verdict.map_err(ineligible)?;
                Ok(MessageContent::Engagement {
                    engagement: EngagementCard {
                        id: item.id,
                        engagement_type: item.engagement_type,
                        name: item.name,
                        description: item.description,
                    },
                })
            }
        }
    }

    /// Follow-ups of an applied command: tell a previous owner's devices it lost the
    /// conversation, record sent engagements in the end user's history, and notify an
    /// end user who is offline through the webhook. Failures are logged: the command
    /// itself is done.
    pub(crate) async fn after_applied(&self, conversation: &ConversationId, events: &[Event]) {
        let t = &self.identity.tenant;
        for event in events {
            crate::metrics::observe_ownership_change(&self.node, t, conversation, event);
            match &event.body {
                EventBody::Status {
                    cause: Cause::TakenOver,
                    previous_owner: Some(previous),
                    owner: Some(by),
                    epoch,
                    ..
                } => {
                    let frame = ServerFrame::OwnershipLost(OwnershipLostFrame {
                        conversation: conversation.clone(),
                        by: by.clone(),
                        epoch: *epoch,
                        seq: event.seq,
                    });
                    let _ = self.publish_on(&Channel::agent(t, previous), &frame).await;
                }
                EventBody::Message {
                    author, content, ..
                } if author.role != Role::EndUser => {
                    if let MessageContent::Engagement { engagement } = content {
                        let record = HistoryEvent {
                            id: format!("chat:{conversation}:{}", event.seq),
                            engagement_type: engagement.engagement_type,
                            action: HistoryAction::Received,
                            engagement: Some(engagement.id.clone()),
                            title: engagement.name.clone(),
                            points: None,
                            at: event.at,
                        };
                        let user = conversation.end_user();
                        if let Err(e) = self
                            .node
                            .backend
                            .workspace()
                            .add_history(t, &user, record)
                            .await
                        {
                            tracing::warn!(error = %e, "cannot record the sent engagement");
                        }
                    }
                    self.notify_if_offline(conversation, event, author, content)
                        .await;
                }
                _ => {}
            }
        }
    }

    async fn notify_if_offline(
        &self,
        conversation: &ConversationId,
        event: &Event,
        author: &chathub_domain::Author,
        content: &MessageContent,
    ) {
        let Some(webhook) = &self.node.webhook else {
            return;
        };
        let t = &self.identity.tenant;
        let who = format!("end_user:{}", conversation.end_user());
        match self
            .node
            .backend
            .workspace()
            .online(t, &who, now_millis())
            .await
        {
            Ok(true) => {}
            Ok(false) => webhook.enqueue(Delivery {
                id: format!("{t}/{conversation}/{}", event.seq),
                tenant: t.to_string(),
                conversation: conversation.to_string(),
                seq: event.seq,
                at: event.at,
                author: author.clone(),
                content: content.clone(),
            }),
            Err(e) => tracing::warn!(error = %e, "cannot check presence for the webhook"),
        }
    }

    /// Answers the workspace requests.
    pub(crate) async fn workspace_op(&mut self, op: Op) -> Result<Reply, Failure> {
        let t = self.identity.tenant.clone();
        let ws = self.node.backend.workspace();
        match op {
            Op::EngagementHistory {
                conversation,
                engagement_type,
                before,
                limit,
            } => {
                self.require_agent("engagement_history")?;
                let limit = self.page_size(limit)?;
                let page = ws
                    .history(
                        &t,
                        &conversation.end_user(),
                        engagement_type,
                        before.as_deref(),
                        limit,
                    )
                    .await
                    .map_err(bad_cursor)?;
                let no_history = page.events.is_empty() && before.is_none();
                Ok(Reply::EngagementHistory(EngagementHistoryReply {
                    conversation,
                    events: page.events,
                    next_cursor: page.next_cursor,
                    no_history,
                }))
            }
            Op::EngagementActivity {
                conversation,
                per_type,
            } => {
                self.require_agent("engagement_activity")?;
                let per_type = per_type.map_or(DEFAULT_PER_TYPE, |n| (n as usize).clamp(1, 50));
                let user = conversation.end_user();
                let mut activity = Vec::with_capacity(EngagementType::ALL.len());
                for engagement_type in EngagementType::ALL {
                    let page = ws
                        .history(&t, &user, Some(engagement_type), None, per_type)
                        .await
                        .map_err(unavailable)?;
                    activity.push(TypeActivity {
                        engagement_type,
                        events: page.events,
                    });
                }
                Ok(Reply::EngagementActivity(ActivityReply {
                    conversation,
                    activity,
                }))
            }
            Op::EngagementsAvailable {
                conversation,
                engagement_type,
            } => {
                self.require_agent("engagements_available")?;
                let items = self
                    .entitlements(&conversation)
                    .await?
                    .into_iter()
                    .filter(|(item, verdict)| {
                        verdict.is_ok() && engagement_type.is_none_or(|t| item.engagement_type == t)
                    })
                    .map(|(item, _)| item)
                    .collect();
                Ok(Reply::EngagementsAvailable(AvailableReply {
                    conversation,
                    items,
                }))
            }
            Op::Profile { conversation } => {
                self.require_agent("profile")?;
                let profile = ws
                    .profile(&t, &conversation.end_user())
                    .await
                    .map_err(unavailable)?;
                Ok(Reply::Profile(ProfileReply {
                    conversation,
                    profile,
                }))
            }
            Op::Redeem { engagement } => {
                let Actor::EndUser(user) = &self.identity.actor else {
                    return Err(forbidden("`redeem` is for end users"));
                };
                let conversation = ConversationId::of_end_user(user);
                let (item, verdict) = self
                    .entitlements(&conversation)
                    .await?
                    .into_iter()
                    .find(|(item, _)| item.id == engagement)
                    .ok_or_else(|| not_found("engagement"))?;
                verdict.map_err(ineligible)?;
                let now = now_millis();
                let event = HistoryEvent {
                    id: format!("redeem:{}:{now}:{}", item.id, self.id),
                    engagement_type: item.engagement_type,
                    action: redeem_action(item.engagement_type),
                    engagement: Some(item.id.clone()),
                    title: item.name.clone(),
                    points: None,
                    at: now,
                };
                match ws
                    .redeem(&t, user, &item, event.clone())
                    .await
                    .map_err(unavailable)?
                {
                    Ok(()) => Ok(Reply::Redeem(RedeemReply { engagement, event })),
                    Err(RedeemRefusal::UnknownItem) => Err(not_found("engagement")),
                    Err(RedeemRefusal::Ineligible(reason)) => Err(ineligible(reason)),
                }
            }
            Op::CannedList { query } => {
                self.require_agent("canned_list")?;
                let q = query.unwrap_or_default();
                let items = ws
                    .canned(&t)
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .filter(|c| canned::matches(c, &q))
                    .collect();
                Ok(Reply::CannedList(CannedListReply { items }))
            }
            Op::CannedUpsert {
                canned: id,
                shortcut,
                text,
            } => {
                self.require(Privilege::CannedManage)?;
                let max = self.node.config.limits.max_text_bytes;
                if shortcut.trim().is_empty() || shortcut.len() > MAX_SHORTCUT {
                    return Err(Failure::new(
                        ErrorCode::BadRequest,
                        format!("`shortcut` must be 1 to {MAX_SHORTCUT} bytes"),
                    ));
                }
                if text.trim().is_empty() || text.len() > max {
                    return Err(Failure::new(
                        ErrorCode::BadRequest,
                        format!("`text` must be 1 to {max} bytes"),
                    ));
                }
                if let Some(id) = &id
                    && chathub_domain::ids::validate(id).is_err()
                {
                    return Err(Failure::new(ErrorCode::BadRequest, "invalid `id`"));
                }
                let canned = CannedResponse {
                    id: id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                    shortcut,
                    text,
                };
                ws.upsert_canned(&t, canned.clone())
                    .await
                    .map_err(unavailable)?;
                Ok(Reply::CannedUpsert(canned))
            }
            Op::CannedDelete { canned: id } => {
                self.require(Privilege::CannedManage)?;
                if ws.delete_canned(&t, &id).await.map_err(unavailable)? {
                    Ok(Reply::CannedDelete {})
                } else {
                    Err(not_found("canned response"))
                }
            }
            op @ (Op::DisableTenant {} | Op::EnableTenant {}) => {
                self.require(Privilege::ChatDisable)?;
                let disabled = matches!(op, Op::DisableTenant {});
                let changed = ws
                    .set_chat_disabled(&t, disabled)
                    .await
                    .map_err(unavailable)?;
                self.node.remember_settings(
                    &t,
                    chathub_store::TenantSettings {
                        chat_disabled: disabled,
                    },
                );
                let frame = TenantFrame {
                    chat_disabled: disabled,
                };
                if changed {
                    let pushed = ServerFrame::Tenant(frame.clone());
                    self.publish_on(&Channel::agents(&t), &pushed).await?;
                    self.publish_on(&Channel::users(&t), &pushed).await?;
                }
                Ok(if disabled {
                    Reply::DisableTenant(frame)
                } else {
                    Reply::EnableTenant(frame)
                })
            }
            Op::Presence { presence } => {
                self.require_agent("presence")?;
                if presence == Presence::Offline {
                    return Err(Failure::new(
                        ErrorCode::BadRequest,
                        "`presence` is `available` or `away` (offline is having no session)",
                    ));
                }
                self.presence = presence;
                self.heartbeat().await;
                let frame = self.announce_presence().await.ok_or_else(|| {
                    Failure::new(ErrorCode::Unavailable, "cannot read presence; retry")
                })?;
                Ok(Reply::Presence(frame))
            }
            Op::Agents {} => {
                self.require_agent("agents")?;
                let agents = ws
                    .presence(&t, now_millis())
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .filter_map(|e| {
                        Some(PresenceFrame {
                            agent: e.who.strip_prefix("agent:")?.to_owned(),
                            presence: e.presence,
                            last_seen: Some(e.last_seen),
                            name: e.name,
                        })
                    })
                    .collect();
                Ok(Reply::Agents(AgentsReply { agents }))
            }
            other => Err(Failure::new(
                ErrorCode::Internal,
                format!("`{}` is not a workspace request", other.name()),
            )),
        }
    }
}
