//! One command through the ownership backend: the only way a request changes a
//! conversation. Losing a race and the rules' refusals become error replies here.

use super::{Ctx, Failure, forbidden};
use crate::Backend;
use crate::auth::now_millis;
use chathub_domain::{Command, Context, ConversationId, ConversationState, Refusal};
use chathub_ownership::{ApplyRequest, Decision, Ownership};
use chathub_protocol::{ConversationView, ErrorCode, ErrorFrame, SendAck};

/// Applies `command` and answers with the conversation's state after it (and, for a
/// send, its acknowledgement).
pub(crate) async fn apply<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    command: Command,
) -> Result<(ConversationState, Option<SendAck>), Failure> {
    let conversation = cx.scope(Some(conversation))?;
    let decision = decide(cx, &conversation, command).await?;
    outcome(cx, &conversation, decision).await
}

/// Erases `conversation` (its end user's erasure): what the backend removed, store by
/// store (nothing when there was nothing to erase).
pub(crate) async fn erase<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
) -> Result<chathub_ownership::Erased, Failure> {
    match decide(cx, conversation, Command::Erase).await? {
        Decision::Erased { removed, .. } => Ok(removed),
        decision => outcome(cx, conversation, decision)
            .await
            .map(|_| chathub_ownership::Erased::default()),
    }
}

/// Retention's erasure of `conversation`, idle at `last_seq` past its tenant's policy:
/// what went (`None`: it was written to since, and stays).
pub(crate) async fn expire<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    last_seq: u64,
) -> Result<Option<chathub_ownership::Erased>, Failure> {
    match decide(cx, conversation, Command::Expire { last_seq }).await? {
        Decision::Erased { removed, .. } => Ok(Some(removed)),
        Decision::Refused(Refusal::InvalidState) => Ok(None),
        decision => outcome(cx, conversation, decision)
            .await
            .map(|_| Some(chathub_ownership::Erased::default())),
    }
}

/// Runs `command` through the ownership backend.
async fn decide<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    command: Command,
) -> Result<Decision, Failure> {
    let settings = cx
        .node
        .settings(&cx.identity.tenant)
        .await
        .map_err(super::store_failed)?;
    let target = match &command {
        Command::Amend { target, .. } => super::amend::target_of(cx, conversation, *target).await?,
        _ => None,
    };
    // A finish asks the tenant's survey, if it has one.
    let survey = match (&command, &settings.survey) {
        (Command::Finish { .. }, Some(survey)) => Some(survey.prompt.clone()),
        _ => None,
    };
    // An end user's message may open a cycle: the tenant's bot answers first, while it
    // has a live session (a bot that is down leaves the conversation to the queue).
    let bot = match (&command, &settings.bot) {
        (Command::Send { .. }, Some(bot)) if cx.is_end_user() => {
            super::bot::available(cx, &bot.agent)
                .await
                .then(|| bot.agent.clone())
        }
        _ => None,
    };
    let request = ApplyRequest {
        tenant: cx.identity.tenant.clone(),
        conversation: conversation.clone(),
        actor: cx.identity.actor.clone(),
        command,
        at: now_millis(),
        context: Context {
            tenant_chat_disabled: settings.chat_disabled,
            edit_window_ms: u64::from(settings.edit_window()) * 1000,
            target,
            survey,
            bot,
        },
    };
    cx.node
        .backend
        .ownership()
        .apply(request)
        .await
        .map_err(|e| {
            ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "apply").increment(1);
            if e.is_retryable() {
                tracing::warn!(error = %e, "apply: backend unavailable");
                Failure::new(
                    ErrorCode::Unavailable,
                    "backend unavailable; retry with the same client_msg_id",
                )
            } else {
                tracing::error!(error = %e, "apply failed");
                Failure::new(ErrorCode::Internal, "internal error")
            }
        })
}

/// A decision as the caller takes it: the state after it, or the error reply.
async fn outcome<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    decision: Decision,
) -> Result<(ConversationState, Option<SendAck>), Failure> {
    match decision {
        Decision::Done {
            state,
            ack,
            events,
            queued_since,
        } => {
            super::followups::after_applied(cx, conversation, &events, queued_since).await;
            Ok((state, ack.map(send_ack)))
        }
        Decision::Erased { state, .. } => Ok((state, None)),
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
            Refusal::MissingEpoch => Failure::bad_request(
                "missing field `epoch`: agents send the ownership epoch they saw",
            ),
        }),
    }
}

/// The wire's acknowledgement of a send, from the receipt the backend remembers.
fn send_ack(receipt: chathub_store::Receipt) -> SendAck {
    SendAck {
        conversation: receipt.conversation,
        seq: receipt.seq,
        status: receipt.status,
        owner: receipt.owner,
        epoch: receipt.epoch,
    }
}

/// Applies `command` and answers with the conversation's state after it.
pub(crate) async fn apply_view<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    command: Command,
) -> Result<ConversationView, Failure> {
    let (state, _) = apply(cx, conversation.clone(), command).await?;
    Ok(ConversationView {
        conversation,
        state,
    })
}
