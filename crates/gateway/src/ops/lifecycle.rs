//! `finish`, `disable`, `enable`: commands that change a conversation without a message.

use super::apply::apply_view;
use super::{Ctx, Failure};
use crate::Backend;
use chathub_domain::{Command, ConversationId};
use chathub_protocol::ConversationView;
use chathub_store::AuditAction;

/// `finish`: the owner (or an admin) ends the cycle.
pub(crate) async fn finish<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    epoch: u64,
) -> Result<ConversationView, Failure> {
    apply_view(cx, conversation, Command::Finish { seen_epoch: epoch }).await
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
