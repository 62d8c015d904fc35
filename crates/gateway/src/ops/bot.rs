//! The tenant's bot as first responder: whether it is there to answer, its handoff to
//! the humans, and its setting. The rules (who owns what it opens, the fence on its
//! replies, the handoff's step) are the domain's (`chathub_domain::conversation`).

use super::apply::apply_view;
use super::{Ctx, Failure, store_failed};
use crate::auth::now_millis;
use crate::backend::Backend;
use chathub_domain::{AgentId, Command, ConversationId, HandoffField, Participant};
use chathub_protocol::ConversationView;
use chathub_store::{AuditAction, BotSettings, WorkspaceStore};

/// Longest handoff summary, bytes.
pub(crate) const MAX_SUMMARY_BYTES: usize = 2_000;
/// Most fields a handoff carries.
pub(crate) const MAX_FIELDS: usize = 20;
/// Longest field name, bytes.
pub(crate) const MAX_FIELD_NAME_BYTES: usize = 64;
/// Longest field value, bytes.
pub(crate) const MAX_FIELD_VALUE_BYTES: usize = 500;

/// Whether the tenant's bot `bot` has a live session now: only then does it own what
/// end users open (decided before the atomic step: a bot that dies a moment later still
/// gets the conversation, and the stall policy, if any, gives it back to the queue).
pub(crate) async fn available<K: Backend>(cx: &Ctx<'_, K>, bot: &AgentId) -> bool {
    let who = Participant::Agent(bot.clone()).key();
    match cx
        .node
        .backend
        .workspace()
        .online(&cx.identity.tenant, &who, now_millis())
        .await
    {
        Ok(online) => online,
        Err(e) => {
            // Unknown: the queue is the safe side (humans see it).
            tracing::debug!(error = %e, "bot presence unknown; the conversation goes to the queue");
            false
        }
    }
}

/// `handoff`: the owning bot gives the conversation to the humans with its summary.
pub(crate) async fn handoff<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    epoch: u64,
    summary: String,
    fields: Vec<HandoffField>,
) -> Result<ConversationView, Failure> {
    check_summary(&summary, &fields)?;
    let command = Command::Handoff {
        seen_epoch: epoch,
        summary,
        fields,
    };
    apply_view(cx, conversation, command).await
}

fn check_summary(summary: &str, fields: &[HandoffField]) -> Result<(), Failure> {
    if summary.trim().is_empty() || summary.len() > MAX_SUMMARY_BYTES {
        return Err(Failure::bad_request(format!(
            "`summary` must be 1 to {MAX_SUMMARY_BYTES} bytes"
        )));
    }
    if fields.len() > MAX_FIELDS {
        return Err(Failure::bad_request(format!(
            "at most {MAX_FIELDS} `fields`"
        )));
    }
    for f in fields {
        if f.name.trim().is_empty() || f.name.len() > MAX_FIELD_NAME_BYTES {
            return Err(Failure::bad_request(format!(
                "a field's `name` must be 1 to {MAX_FIELD_NAME_BYTES} bytes"
            )));
        }
        if f.value.is_empty() || f.value.len() > MAX_FIELD_VALUE_BYTES {
            return Err(Failure::bad_request(format!(
                "a field's `value` must be 1 to {MAX_FIELD_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

/// Whether the caller may set the tenant's bot.
pub(crate) fn check_setting<K: Backend>(cx: &Ctx<'_, K>) -> Result<(), Failure> {
    cx.require(chathub_domain::Privilege::ChatDisable)
}

/// Sets the tenant's bot (`None`: none; conversations it owns stay with it until it
/// hands off, a human takes them or the stall policy releases them).
pub(crate) async fn set<K: Backend>(
    cx: &Ctx<'_, K>,
    bot: Option<BotSettings>,
) -> Result<(), Failure> {
    check_setting(cx)?;
    let t = &cx.identity.tenant;
    let detail = serde_json::json!({ "bot": bot });
    cx.node
        .backend
        .workspace()
        .set_bot(t, bot)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    super::audit::record(cx, AuditAction::BotSet, None, detail).await
}
