//! `survey_answer`: the end user's answer to the satisfaction survey a finish asked
//! (the rules — one answer per cycle, end users only — are the domain's); this checks
//! the request and decides the tenant's reward, which the answer's atomic step grants.

use super::{Ctx, Failure, forbidden, store_failed};
use crate::Backend;
use chathub_domain::{Command, ConversationId, EngagementCard};
use chathub_protocol::{ErrorCode, Reply, SurveyAck};

/// Ratings run from 1 (worst) to this (best).
pub(crate) const MAX_RATING: u8 = 5;

/// `survey_answer`.
pub(crate) async fn answer<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    rating: u8,
    comment: Option<String>,
) -> Result<Reply, Failure> {
    if !cx.is_end_user() {
        return Err(forbidden("`survey_answer` is for end users"));
    }
    let conversation = cx.scope(conversation)?;
    if !(1..=MAX_RATING).contains(&rating) {
        return Err(Failure::bad_request(format!(
            "`rating` must be 1 to {MAX_RATING}"
        )));
    }
    // A blank comment is no comment.
    let comment = comment.filter(|c| !c.trim().is_empty());
    if let Some(comment) = &comment {
        let max = cx.node.config.limits.max_text_bytes;
        if comment.len() > max {
            return Err(Failure::new(
                ErrorCode::TooLarge,
                format!("`comment` is {} bytes; the limit is {max}", comment.len()),
            ));
        }
    }
    let (reward, reward_refused) = reward(cx, &conversation).await?;
    let command = Command::AnswerSurvey {
        rating,
        comment,
        reward: reward.clone(),
    };
    let (state, _) = match super::apply::apply(cx, conversation.clone(), command).await {
        Err(Failure::Reply(mut frame)) if frame.code == ErrorCode::InvalidState => {
            frame.message = "no survey is open: it was answered already, or the conversation \
                             was not finished with a survey since it was last written to"
                .into();
            return Err(Failure::Reply(frame));
        }
        other => other?,
    };
    Ok(Reply::SurveyAnswer(SurveyAck {
        conversation,
        seq: state.seq,
        reward,
        reward_refused,
    }))
}

/// The tenant's reward for an answer now: the card to grant, or why none is (`None`,
/// `None` when the tenant offers none). Entitlement is checked here, before the step;
/// the step grants it at most once per cycle, since it takes one answer per cycle.
async fn reward<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
) -> Result<(Option<EngagementCard>, Option<String>), Failure> {
    let settings = cx
        .node
        .settings(&cx.identity.tenant)
        .await
        .map_err(store_failed)?;
    let Some(id) = settings.survey.as_ref().and_then(|s| s.reward.as_deref()) else {
        return Ok((None, None));
    };
    let found = super::engagements::entitlements(cx, conversation)
        .await?
        .into_iter()
        .find(|(item, _)| item.id == id);
    Ok(match found {
        Some((item, Ok(()))) => (Some(super::engagements::card(item)), None),
        Some((_, Err(reason))) => (None, Some(reason.as_str().to_owned())),
        None => (None, Some("unknown_engagement".to_owned())),
    })
}
