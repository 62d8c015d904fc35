//! Signals that are not history: `typing` (published, never stored) and `read` (a read
//! mark per participant, published when it moves forward).

use super::{Ctx, Failure, store_failed};
use crate::Backend;
use chathub_broker::{Broker, Channel, Envelope};
use chathub_domain::{Author, ConversationId, Participant};
use chathub_protocol::{ErrorCode, ReadFrame, Reply, ServerFrame, TypingFrame};
use chathub_store::ConversationStore;

/// `typing`.
pub(crate) async fn typing<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    typing: bool,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let frame = ServerFrame::Typing(TypingFrame {
        conversation: conversation.clone(),
        from: Author::of(&cx.identity.actor),
        typing,
    });
    publish(
        cx,
        &Channel::conversation(&cx.identity.tenant, &conversation),
        &frame,
    )
    .await?;
    Ok(Reply::Typing {})
}

/// `read`.
pub(crate) async fn read<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    seq: u64,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let by = Participant::of(&cx.identity.actor);
    let moved = cx
        .node
        .backend
        .store()
        .set_read(&cx.identity.tenant, &conversation, &by, seq)
        .await
        .map_err(store_failed)?;
    if let Some(seq) = moved {
        let frame = ServerFrame::Read(ReadFrame {
            conversation: conversation.clone(),
            by: by.author(),
            seq,
        });
        publish(
            cx,
            &Channel::conversation(&cx.identity.tenant, &conversation),
            &frame,
        )
        .await?;
    }
    Ok(Reply::Read {})
}

/// Publishes a frame made here (not a conversation event) on `channel`.
pub(crate) async fn publish<K: Backend>(
    cx: &Ctx<'_, K>,
    channel: &Channel,
    frame: &ServerFrame,
) -> Result<(), Failure> {
    cx.node
        .backend
        .broker()
        .publish(channel, Envelope::encode(channel, None, frame))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "publish failed");
            Failure::new(ErrorCode::Unavailable, "cannot publish now; retry")
        })
}
