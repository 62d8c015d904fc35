//! `finish`, `transfer`, `disable`, `enable`: commands that change a conversation
//! without a message.

use super::apply::apply_view;
use super::signals::publish;
use super::store_failed;
use super::{Ctx, Failure};
use crate::Backend;
use crate::auth::now_millis;
use chathub_broker::Channel;
use chathub_domain::{
    AgentId, Author, Command, ConversationId, Participant, Presence, ReleaseReason,
};
use chathub_protocol::{AssignedFrame, ConversationView, ErrorCode, ServerFrame};
use chathub_store::AuditAction;
use chathub_store::{ConversationStore, WorkspaceStore};

/// `finish`: the owner (or an admin) ends the cycle.
pub(crate) async fn finish<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    epoch: u64,
) -> Result<ConversationView, Failure> {
    apply_view(cx, conversation, Command::Finish { seen_epoch: epoch }).await
}

/// `release`: an admin gives the active conversation back to the queue (reason
/// `admin`), decided on the epoch they saw and the conversation's `seq` now.
pub(crate) async fn release<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    epoch: u64,
    seq: Option<u64>,
) -> Result<ConversationView, Failure> {
    let last_seq = match seq {
        Some(seq) => seq,
        None => {
            cx.node
                .backend
                .store()
                .state(&cx.identity.tenant, &conversation)
                .await
                .map_err(store_failed)?
                .seq
        }
    };
    let command = Command::Release {
        seen_epoch: epoch,
        last_seq,
        reason: ReleaseReason::Admin,
    };
    apply_view(cx, conversation, command).await
}

/// `disable` / `enable`: two-way chat off or on for one conversation.
pub(crate) async fn set_disabled<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    disabled: bool,
) -> Result<ConversationView, Failure> {
    let target = conversation.as_str().to_owned();
    let view = apply_view(cx, conversation, Command::SetDisabled(disabled)).await?;
    let action = if disabled {
        AuditAction::ConversationDisabled
    } else {
        AuditAction::ConversationEnabled
    };
    super::audit::record(cx, action, Some(&target), serde_json::Value::Null).await?;
    Ok(view)
}

/// `transfer`: hands the conversation to `to`, who must be available now (checked here,
/// before the atomic step: an agent who goes away a moment later still gets it, and sees
/// it in their queue). `to` is told with an `assigned` frame carrying `note` on every
/// device (best effort: the queue change is the durable notice).
pub(crate) async fn transfer<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    to: AgentId,
    note: Option<String>,
    epoch: u64,
) -> Result<ConversationView, Failure> {
    let max = cx.node.config.limits.max_text_bytes;
    if note.as_ref().is_some_and(|n| n.len() > max) {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("`note` is longer than {max} bytes"),
        ));
    }
    let tenant = &cx.identity.tenant;
    let presence = cx
        .node
        .backend
        .workspace()
        .presence_of(tenant, &Participant::Agent(to.clone()).key(), now_millis())
        .await
        .map_err(store_failed)?
        .map_or(Presence::Offline, |p| p.presence);
    if presence != Presence::Available {
        return Err(Failure::new(
            ErrorCode::InvalidState,
            format!(
                "{to} is {} now: transfer to an available agent",
                presence.as_str()
            ),
        ));
    }
    let command = Command::Transfer {
        to: to.clone(),
        seen_epoch: epoch,
    };
    let view = apply_view(cx, conversation, command).await?;
    let frame = ServerFrame::Assigned(AssignedFrame {
        conversation: view.conversation.clone(),
        by: Author::of(&cx.identity.actor),
        epoch: view.state.epoch,
        seq: view.state.seq,
        note: note.filter(|n| !n.trim().is_empty()),
    });
    if publish(cx, &Channel::agent(tenant, &to), &frame)
        .await
        .is_err()
    {
        tracing::debug!("assigned notice not published");
    }
    Ok(view)
}
