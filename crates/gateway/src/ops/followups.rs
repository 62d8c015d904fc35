//! What an applied command's events set off: the ownership-change metrics, the
//! ownership-lost notice to a previous owner's devices, the sent engagement's record in
//! the end user's history, and the offline delivery webhook. Failures are logged: the
//! command itself is done.

use super::Ctx;
use super::signals::publish;
use crate::Backend;
use crate::auth::now_millis;
use crate::webhook::Delivery;
use chathub_broker::Channel;
use chathub_domain::engagement::{HistoryAction, HistoryEvent};
use chathub_domain::{
    Author, Cause, ConversationId, Event, EventBody, MessageContent, Participant, Role,
};
use chathub_protocol::{OwnershipLostFrame, ServerFrame};
use chathub_store::WorkspaceStore;

/// Runs the follow-ups of `events`, just applied to `conversation`.
pub(crate) async fn after_applied<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    events: &[Event],
) {
    let t = &cx.identity.tenant;
    for event in events {
        crate::metrics::observe_ownership_change(cx.node, t, conversation, event);
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
                let _ = publish(cx, &Channel::agent(t, previous), &frame).await;
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
                    if let Err(e) = cx
                        .node
                        .backend
                        .workspace()
                        .add_history(t, &user, record)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot record the sent engagement");
                    }
                }
                notify_if_offline(cx, conversation, event, author, content).await;
            }
            _ => {}
        }
    }
}

/// Queues the offline delivery webhook when the end user has no live socket.
async fn notify_if_offline<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    event: &Event,
    author: &Author,
    content: &MessageContent,
) {
    let Some(webhook) = &cx.node.webhook else {
        return;
    };
    let t = &cx.identity.tenant;
    let who = Participant::end_user(&conversation.end_user()).key();
    match cx
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
