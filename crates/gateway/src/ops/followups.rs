//! What an applied command's events set off in the gateway: the ownership-change
//! metrics and the offline delivery webhook. (The previous owner's `ownership_lost`
//! notice and the end user's "received" record are the atomic step's own: see
//! `chathub_ownership::frames`.) Failures are logged: the command itself is done.

use super::Ctx;
use crate::Backend;
use crate::auth::now_millis;
use crate::webhook::Delivery;
use chathub_domain::{Author, ConversationId, Event, EventBody, MessageContent, Participant, Role};
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
        if let EventBody::Message {
            author, content, ..
        } = &event.body
            && author.role != Role::EndUser
        {
            notify_if_offline(cx, conversation, event, author, content).await;
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
