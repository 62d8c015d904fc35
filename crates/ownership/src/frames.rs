//! What an applied command shows in the tenant's queue, shared by every backend so that
//! what consoles receive does not depend on the backend.

use chathub_domain::{ConversationId, ConversationState, Event, EventBody, MessageContent};
use chathub_protocol::QueueItem;

/// Longest queue preview, in characters.
pub const PREVIEW_CHARS: usize = 120;

/// The queue entry after `events` were applied, given the previous entry (if any).
pub fn queue_item(
    conversation: &ConversationId,
    state: &ConversationState,
    events: &[Event],
    previous: Option<&QueueItem>,
) -> QueueItem {
    let last_at = events.last().map(|e| e.at);
    let status_at = events
        .iter()
        .rev()
        .find(|e| matches!(e.body, EventBody::Status { .. }))
        .map(|e| e.at);
    let preview = message_preview(events).or_else(|| previous.and_then(|p| p.preview.clone()));
    QueueItem {
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
        waiting_ms: None,
        owner_absent: None,
        cursor: None,
    }
}

/// The shortened preview of the last message among `events`, if any.
pub fn message_preview(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match &e.body {
        EventBody::Message { content, .. } => Some(content_preview(content)),
        _ => None,
    })
}

/// The queue's preview of one message: at most [`PREVIEW_CHARS`] characters.
pub fn content_preview(content: &MessageContent) -> String {
    content.preview().chars().take(PREVIEW_CHARS).collect()
}

/// Whether `events` change what the agents' queue shows (status, owner, flags), so that
/// a queue frame is published; plain messages only update the index.
pub fn changes_queue(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.body, EventBody::Status { .. }))
}
