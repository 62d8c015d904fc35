//! An event encoded once, shared by every recipient on the node.

use crate::channel::Channel;
use bytes::Bytes;
use std::sync::OnceLock;

/// One published frame. The primary encoding (MessagePack) is made once by the publisher;
/// the JSON encoding is made at most once per node, on first demand, and then shared.
#[derive(Debug)]
pub struct Envelope {
    /// The channel it was published on.
    pub channel: Channel,
    /// The conversation `seq` of the event, for ordering, gap detection and replay
    /// de-duplication; `None` for frames outside the sequence (typing, read, queue).
    pub seq: Option<u64>,
    /// The frame in MessagePack.
    pub msgpack: Bytes,
    /// Not a frame but a signal: the node's subscription to `channel` was (re)established
    /// and events may have been missed meanwhile; sessions catch up from history.
    pub resync: bool,
    /// The frame is an erasure's `erased` notice: the conversation's end user's sessions
    /// close once it is written (their data was erased). Retention's notice closes
    /// nothing (the person was not erased; their old conversation expired).
    pub erased: bool,
    /// The frame is an agents-only event (a private note): end users' sessions never
    /// write it (they only move past its `seq`).
    pub agents_only: bool,
    /// The frame is an `alert`: an agent's session that took the conversation since
    /// drops it (see the gateway's alert fence).
    pub alert: bool,
    /// When this node made or received it: the start of its local fan-out (for the
    /// fan-out latency histogram).
    pub received: std::time::Instant,
    json: OnceLock<Bytes>,
}

impl Envelope {
    /// An envelope around an already encoded MessagePack frame.
    pub fn new(channel: Channel, seq: Option<u64>, msgpack: Bytes) -> Envelope {
        Envelope {
            channel,
            seq,
            msgpack,
            resync: false,
            erased: false,
            agents_only: false,
            alert: false,
            received: std::time::Instant::now(),
            json: OnceLock::new(),
        }
    }

    /// The resync signal for `channel` (see [`Envelope::resync`]).
    pub fn resync(channel: Channel) -> Envelope {
        Envelope {
            resync: true,
            ..Envelope::new(channel, None, Bytes::new())
        }
    }

    /// The JSON encoding, made by `transcode` the first time any session asks.
    pub fn json(&self, transcode: impl FnOnce(&[u8]) -> Bytes) -> &Bytes {
        self.json.get_or_init(|| transcode(&self.msgpack))
    }

    /// Bytes counted against a session's outbox budget.
    pub fn weight(&self) -> usize {
        self.msgpack.len()
    }
}

impl Envelope {
    /// Encodes `frame` once, in MessagePack, into a shareable envelope: how every frame
    /// a node publishes is made, so what clients receive does not depend on the backend.
    pub fn encode(
        channel: &Channel,
        seq: Option<u64>,
        frame: &chathub_protocol::ServerFrame,
    ) -> std::sync::Arc<Envelope> {
        // Every ServerFrame is encodable; an error here would be a bug in the types, and
        // the fallback (an empty frame is never sent: see the gateway) keeps the node alive.
        let bytes = chathub_protocol::Codec::MsgPack
            .encode_server(frame)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot encode frame");
                Bytes::new()
            });
        let mut envelope = Envelope::new(channel.clone(), seq, bytes);
        (envelope.erased, envelope.agents_only, envelope.alert) = flags_of(frame);
        std::sync::Arc::new(envelope)
    }

    /// The envelope of one conversation event.
    pub fn event(
        channel: &Channel,
        conversation: &chathub_domain::ConversationId,
        event: &chathub_domain::Event,
    ) -> std::sync::Arc<Envelope> {
        let frame = chathub_protocol::ServerFrame::Event(chathub_protocol::EventFrame {
            conversation: conversation.clone(),
            event: event.clone(),
        });
        Envelope::encode(channel, Some(event.seq), &frame)
    }
}

/// `(erased, agents_only, alert)`: see [`flags_of`].
pub(crate) type Flags = (bool, bool, bool);

/// What a frame asks of the sessions it reaches: whether it is an erasure's `erased`
/// notice ([`Envelope::erased`]), whether it is for agents only
/// ([`Envelope::agents_only`]) and whether it is an alert ([`Envelope::alert`]).
pub(crate) fn flags_of(frame: &chathub_protocol::ServerFrame) -> Flags {
    use chathub_protocol::{ErasureReason, ServerFrame};
    match frame {
        ServerFrame::Erased(e) => (e.reason == ErasureReason::Erasure, false, false),
        ServerFrame::Event(e) => (false, e.event.body.is_agents_only(), false),
        ServerFrame::Alert(_) => (false, false, true),
        _ => (false, false, false),
    }
}
