//! What an applied command shows beyond its events — the tenant's queue entry, the
//! previous owner's `ownership_lost` notice, the end user's "received" engagement record
//! — written once here as the specification every backend follows (the Lua scripts
//! restate it; the differential test holds them equal).

use chathub_domain::engagement::{HistoryAction, HistoryEvent};
use chathub_domain::{
    AgentId, Cause, ConversationId, ConversationState, Event, EventBody, MessageContent, Role,
    Status,
};
use chathub_protocol::{MentionFrame, OwnershipLostFrame, QueueItem};
use chathub_store::QueueEntry;

/// Longest queue preview, in characters.
pub const PREVIEW_CHARS: usize = 120;

/// The queue entry after `events` were applied, given the previous entry (if any).
pub fn queue_entry(
    conversation: &ConversationId,
    state: &ConversationState,
    events: &[Event],
    previous: Option<&QueueEntry>,
) -> QueueEntry {
    let last_at = events.last().map(|e| e.at);
    let status_at = events
        .iter()
        .rev()
        .find(|e| matches!(e.body, EventBody::Status { .. }))
        .map(|e| e.at);
    let preview = message_preview(events).or_else(|| previous.and_then(|p| p.preview.clone()));
    QueueEntry {
        conversation: conversation.clone(),
        status: state.status,
        owner: state.owner.clone(),
        epoch: state.epoch,
        seq: state.seq,
        disabled: state.disabled,
        since: status_at
            .or(previous.map(|p| p.since))
            .or(last_at)
            .unwrap_or(0),
        updated: last_at.or(previous.map(|p| p.updated)).unwrap_or(0),
        preview,
    }
}

/// The queue item clients get for a stored entry (with its inbox position, for `queue`
/// frames); the gateway adds the live fields (`waiting_ms`, `owner_absent`) to `list`.
pub fn queue_item(entry: QueueEntry, cursor: Option<String>) -> QueueItem {
    QueueItem {
        conversation: entry.conversation,
        status: entry.status,
        owner: entry.owner,
        epoch: entry.epoch,
        seq: entry.seq,
        disabled: entry.disabled,
        since: entry.since,
        updated: entry.updated,
        preview: entry.preview,
        waiting_ms: None,
        owner_absent: None,
        cursor,
    }
}

/// When a command took a conversation out of the unanswered queue (its previous entry
/// was unanswered, its new state is not): the time it had entered the queue.
pub fn queued_since(previous: Option<&QueueEntry>, state: &ConversationState) -> Option<u64> {
    previous
        .filter(|p| p.status == Status::Unanswered && state.status != Status::Unanswered)
        .map(|p| p.since)
}

/// The shortened preview of the last message among `events`, if any. An amendment is
/// the latest thing said too: an edit previews its new text, a removal says so (the
/// removed text never stays in the queue).
pub fn message_preview(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match &e.body {
        EventBody::Message { content, .. } => Some(content_preview(content)),
        body => event_preview(body).map(str::to_owned),
    })
}

/// What the queue previews for an event other than a message (see [`message_preview`]):
/// an amendment (shortened) or a survey's answer.
pub fn event_preview(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::Edited {
            text: Some(text), ..
        } => Some(match text.char_indices().nth(PREVIEW_CHARS) {
            Some((end, _)) => &text[..end],
            None => text,
        }),
        EventBody::Unsent { .. } | EventBody::Redacted { .. } => Some(REMOVED_PREVIEW),
        EventBody::SurveyAnswered { rating, .. } => RATED_PREVIEW
            .get(usize::from(*rating).wrapping_sub(1))
            .copied(),
        _ => None,
    }
}

/// The queue's preview after the end user answered the survey, by rating.
pub const RATED_PREVIEW: [&str; 5] = [
    "Rated 1/5",
    "Rated 2/5",
    "Rated 3/5",
    "Rated 4/5",
    "Rated 5/5",
];

/// The queue's preview after a message was unsent or redacted.
pub const REMOVED_PREVIEW: &str = "Message removed";

/// The queue's preview of one message: at most [`PREVIEW_CHARS`] characters.
pub fn content_preview(content: &MessageContent) -> String {
    preview_of(content).to_owned()
}

/// [`content_preview`] as a slice of the content (no copy).
pub fn preview_of(content: &MessageContent) -> &str {
    let text = content.preview();
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Whether `events` change what the agents' queue shows (status, owner, flags), so that
/// a queue frame is published; plain messages only update the index.
pub fn changes_queue(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.body, EventBody::Status { .. }))
}

/// The notice a command's events owe a previous owner: after a take-over, a transfer or
/// a release, the agent who lost the conversation is told who has it now (nobody, after
/// a release, with its reason) (`ownership_lost`, on their own channel).
/// Published by the atomic step with the queue entry, on every backend.
pub fn ownership_lost(
    conversation: &ConversationId,
    events: &[Event],
) -> Option<(AgentId, OwnershipLostFrame)> {
    events.iter().find_map(|e| match &e.body {
        EventBody::Status {
            cause: cause @ (Cause::TakenOver | Cause::Transferred | Cause::Released),
            previous_owner: Some(previous),
            owner,
            epoch,
            reason,
            ..
        } if owner.is_some() || *cause == Cause::Released => Some((
            previous.clone(),
            OwnershipLostFrame {
                conversation: conversation.clone(),
                by: owner.clone(),
                epoch: *epoch,
                seq: e.seq,
                reason: *reason,
            },
        )),
        _ => None,
    })
}

/// The notices a command's events owe the agents a note mentions (`mention`, on each
/// one's own channel), in order. Published by the atomic step with the queue entry, on
/// every backend.
pub fn mentions(conversation: &ConversationId, events: &[Event]) -> Vec<(AgentId, MentionFrame)> {
    let mut notices = Vec::new();
    for e in events {
        if let EventBody::Note {
            author,
            text,
            mentions,
            ..
        } = &e.body
        {
            for agent in mentions {
                let frame = MentionFrame {
                    conversation: conversation.clone(),
                    seq: e.seq,
                    by: author.clone(),
                    text: text.clone(),
                };
                notices.push((agent.clone(), frame));
            }
        }
    }
    notices
}

/// The `seq` of the event among `events` that owes a webhook job: an agent's message
/// or the survey a finish asks (the end user may be offline and need a push), or a note
/// mentioning agents (those offline get the agent push). Recorded by the atomic step
/// when the node has a webhook.
pub fn webhook_job(events: &[Event]) -> Option<u64> {
    events.iter().find_map(|e| match &e.body {
        EventBody::Message { author, .. } if author.role != Role::EndUser => Some(e.seq),
        EventBody::Survey { .. } => Some(e.seq),
        // A note that mentions agents: the push for those with no live socket.
        EventBody::Note { mentions, .. } if !mentions.is_empty() => Some(e.seq),
        _ => None,
    })
}

/// The end user's engagement-history record of an engagement they got through the chat
/// ("received"): one an agent sent, or the reward a survey answer granted. Written by the
/// atomic step with the queue entry on every backend. Its id is the event's place in
/// the conversation, so writing it again is harmless.
pub fn received_record(conversation: &ConversationId, events: &[Event]) -> Option<HistoryEvent> {
    events.iter().find_map(|e| {
        let engagement = match &e.body {
            EventBody::Message {
                author,
                content: MessageContent::Engagement { engagement },
                ..
            } if author.role != Role::EndUser => engagement,
            EventBody::SurveyAnswered {
                reward: Some(reward),
                ..
            } => reward,
            _ => return None,
        };
        Some(HistoryEvent {
            id: format!("chat:{conversation}:{}", e.seq),
            engagement_type: engagement.engagement_type,
            action: HistoryAction::Received,
            engagement: Some(engagement.id.clone()),
            title: engagement.name.clone(),
            points: None,
            at: e.at,
        })
    })
}
