//! `edit`, `unsend` and `redact`: amendments of an earlier message (the rules are the
//! domain's, `chathub_domain::conversation::amend`; this checks the request and reads
//! the target's current form for them).

use super::{Ctx, Failure};
use crate::Backend;
use chathub_domain::{Change, Command, ConversationId, Event};
use chathub_protocol::{AmendAck, ErrorCode, Reply};
use chathub_store::{AuditAction, ConversationStore, HistoryRange};

/// Longest redaction reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 500;

/// `edit`, `unsend` or `redact` of message `target`.
pub(crate) async fn amend<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    target: u64,
    change: Change,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    match &change {
        Change::Edit { text } => super::send::check_text(cx, text)?,
        Change::Redact { reason } => {
            if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                return Err(Failure::bad_request(format!(
                    "`reason` must be 1 to {MAX_REASON_CHARS} characters"
                )));
            }
        }
        Change::Unsend => {}
    }
    if target == 0 {
        return Err(Failure::bad_request(
            "`seq` must be a message's seq (from 1)",
        ));
    }
    let redact = match &change {
        Change::Redact { reason } => Some(reason.clone()),
        _ => None,
    };
    let kind = match change {
        Change::Edit { .. } => Reply::Edit,
        Change::Unsend => Reply::Unsend,
        Change::Redact { .. } => Reply::Redact,
    };
    let command = Command::Amend { target, change };
    let (state, _) = match super::apply::apply(cx, conversation.clone(), command).await {
        Err(Failure::Reply(mut frame)) if frame.code == ErrorCode::InvalidState => {
            frame.message = REFUSED.into();
            return Err(Failure::Reply(frame));
        }
        other => other?,
    };
    if let Some(reason) = redact {
        let detail = serde_json::json!({
            "conversation": conversation.as_str(),
            "seq": target,
            "redaction_seq": state.seq,
            "reason": reason,
        });
        super::audit::record(
            cx,
            AuditAction::MessageRedacted,
            Some(conversation.as_str()),
            detail,
        )
        .await?;
    }
    Ok(kind(AmendAck {
        conversation,
        target,
        seq: state.seq,
    }))
}

/// The target's current form as history shows it (`None`: no such event), for the
/// rules. Backends decide on their own copy where they hold one, atomically; this copy
/// stands for a message older than their hot window.
pub(crate) async fn target_of<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    target: u64,
) -> Result<Option<Event>, Failure> {
    let slice = cx
        .node
        .backend
        .store()
        .history(
            &cx.identity.tenant,
            conversation,
            HistoryRange::After {
                after: target - 1,
                limit: 1,
            },
        )
        .await
        .map_err(super::store_failed)?;
    Ok(slice.events.into_iter().next().filter(|e| e.seq == target))
}

/// What an amendment's `invalid_state` says (more than the generic status message).
const REFUSED: &str = "not possible on this event now: no such message, removed already, \
                       past the edit window, or (edits) not a text message";
