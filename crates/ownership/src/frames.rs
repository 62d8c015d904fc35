//! Turning applied events into published frames, shared by every backend so that what
//! clients receive does not depend on the backend.

use bytes::Bytes;
use chathub_broker::{Channel, Envelope};
use chathub_domain::{ConversationId, ConversationState, Event, EventBody, MessageContent};
use chathub_protocol::{Codec, EventFrame, QueueItem, ServerFrame};
use std::sync::Arc;

/// Longest queue preview, in characters.
pub const PREVIEW_CHARS: usize = 120;

/// Encodes a frame once, in MessagePack, into a shareable envelope.
pub fn envelope(channel: &Channel, seq: Option<u64>, frame: &ServerFrame) -> Arc<Envelope> {
    // Every ServerFrame is encodable; an error here would be a bug in the types, and the
    // fallback (an empty frame is never sent: see the gateway) keeps the node alive.
    let bytes = Codec::MsgPack.encode_server(frame).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode frame");
        Bytes::new()
    });
    Arc::new(Envelope::new(channel.clone(), seq, bytes))
}

/// The envelope of one conversation event.
pub fn event_envelope(
    channel: &Channel,
    conversation: &ConversationId,
    event: &Event,
) -> Arc<Envelope> {
    let frame = ServerFrame::Event(EventFrame {
        conversation: conversation.clone(),
        event: event.clone(),
    });
    envelope(channel, Some(event.seq), &frame)
}

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
