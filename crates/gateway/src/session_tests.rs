//! The session's socket loop driven over channels instead of a TCP socket (axum's
//! `testing-websockets` habit): a slow consumer is closed with 4001 and its outbox
//! dropped, a resync signal and a `seq` gap are both repaired from history in order, a
//! shutdown closes with 1001, and a client's close ends the session.

// Test set-up: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use super::*;
use crate::{EmbeddedBackend, GatewayConfig, LimitsConfig};
use chathub_broker::{Hub, MemoryBroker};
use chathub_domain::{Command, ConversationId, EndUserId, MessageContent, Role, TenantId};
use chathub_ownership::{ApplyRequest, MemoryOwnership, Ownership};
use chathub_protocol::{Op, Request};
use futures::channel::mpsc;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A WebSocket made of two channels: what the test sends the session, and what the
/// session writes (bounded: a test that stops reading is a slow client).
struct ChannelSocket {
    incoming: mpsc::Receiver<Result<Message, WsError>>,
    outgoing: mpsc::Sender<Message>,
}

impl futures::Stream for ChannelSocket {
    type Item = Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.incoming).poll_next(cx)
    }
}

impl futures::Sink<Message> for ChannelSocket {
    type Error = WsError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.outgoing)
            .poll_ready(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.outgoing)
            .start_send(item)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.outgoing)
            .poll_flush(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.outgoing)
            .poll_close(cx)
            .map_err(|_| WsError::ConnectionClosed)
    }
}

impl Socket for ChannelSocket {
    async fn discard_rest(&mut self, _budget: usize) {}
}

/// The test's side of a session: send it frames, read what it writes.
struct Client {
    to_session: mpsc::Sender<Result<Message, WsError>>,
    from_session: mpsc::Receiver<Message>,
}

impl Client {
    async fn request(&mut self, id: u64, op: Op) {
        let text = Codec::Json.encode_request(&Request { id, op }).unwrap();
        let text = Utf8Bytes::try_from(text).unwrap();
        self.to_session.send(Ok(Message::Text(text))).await.unwrap();
    }

    /// The next frame the session wrote, decoded; `None` when it closed the socket
    /// (a close frame is returned as `Err(code)`).
    async fn next(&mut self) -> Option<Result<ServerFrame, u16>> {
        let message = tokio::time::timeout(Duration::from_secs(30), self.from_session.next())
            .await
            .expect("the session writes")?;
        Some(match message {
            Message::Text(t) => Ok(Codec::Json.decode_server(t.as_bytes()).unwrap()),
            Message::Close(Some(frame)) => Err(u16::from(frame.code)),
            other => panic!("unexpected {other:?}"),
        })
    }

    /// The next frame (the session must not have closed).
    async fn frame(&mut self) -> ServerFrame {
        self.next().await.unwrap().unwrap()
    }

    /// Everything the session writes until it closes the socket: the frames and the
    /// close code it sent, if any.
    async fn until_closed(&mut self) -> (Vec<ServerFrame>, Option<u16>) {
        let mut frames = Vec::new();
        while let Some(next) = self.next().await {
            match next {
                Ok(frame) => frames.push(frame),
                Err(code) => {
                    // Answer the close, as a client does; the session then ends.
                    let _ = self.to_session.send(Ok(Message::Close(None))).await;
                    return (frames, Some(code));
                }
            }
        }
        (frames, None)
    }
}

const TENANT: &str = "t";
const USER: &str = "u1";

/// A node on the embedded backend with `limits` (also used by the footprint test).
pub(super) fn node(limits: LimitsConfig) -> Arc<Node<EmbeddedBackend>> {
    let hub = Arc::new(Hub::new());
    let config = GatewayConfig {
        limits,
        write_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(1),
        ..GatewayConfig::default()
    };
    Arc::new(Node {
        attachments: None,
        scanner: None,
        http_base: String::new(),
        auth: crate::Authenticator::new(&config.auth),
        backend: EmbeddedBackend::new(hub.clone(), Default::default()),
        hub,
        hot: crate::metrics::HotMetrics::register(),
        tls: None,
        ws_addr: "127.0.0.1:1".parse().unwrap(),
        id: "test".into(),
        next_session: Default::default(),
        shutdown: Default::default(),
        webhook: None,
        per_subject: Default::default(),
        job_tenants: Default::default(),
        positions: Default::default(),
        hours_seen: Default::default(),
        auto_replied: Default::default(),
        settings: Default::default(),
        config,
    })
}

/// Starts an end user's session over channels; the socket holds `capacity` unread
/// frames before the session's writes block.
fn connect(
    node: &Arc<Node<EmbeddedBackend>>,
    capacity: usize,
) -> (Client, tokio::task::JoinHandle<()>) {
    let token = node
        .auth
        .mint(TENANT, USER, Role::EndUser, None, 600)
        .unwrap();
    let identity = node.auth.verify(&token).unwrap();
    let (to_session, incoming) = mpsc::channel(16);
    let (outgoing, from_session) = mpsc::channel(capacity);
    let socket = ChannelSocket { incoming, outgoing };
    let task = tokio::spawn(run(node.clone(), socket, identity, Codec::Json));
    (
        Client {
            to_session,
            from_session,
        },
        task,
    )
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).unwrap()
}

fn conversation() -> ConversationId {
    ConversationId::of_end_user(&EndUserId::new(USER).unwrap())
}

/// The end user writes `text` through the node's own ownership (so it is published).
fn message(text: &str, at: u64) -> ApplyRequest {
    ApplyRequest {
        tenant: tenant(),
        conversation: conversation(),
        actor: chathub_domain::Actor::EndUser(EndUserId::new(USER).unwrap()),
        command: Command::Send {
            content: MessageContent::Text { text: text.into() },
            client_msg_id: None,
            seen_epoch: None,
        },
        at,
        context: Default::default(),
    }
}

/// An ownership on the node's store whose events reach nobody: what a lost pub/sub
/// message looks like to the session.
fn silent(node: &Node<EmbeddedBackend>) -> MemoryOwnership<MemoryBroker> {
    use crate::Backend;
    let elsewhere = MemoryBroker::new(Arc::new(Hub::new()));
    MemoryOwnership::new(node.backend.store().clone(), elsewhere, Default::default())
}

fn event_seqs(frames: &[ServerFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Event(e) => Some(e.event.seq),
            _ => None,
        })
        .collect()
}

/// Subscribes the end user to their conversation from the start and returns the `seq`
/// of the replay (its reply and events read).
async fn subscribe(client: &mut Client) -> Vec<u64> {
    client
        .request(
            1,
            Op::Subscribe {
                conversation: None,
                since: Some(0),
                history_id: None,
            },
        )
        .await;
    let mut frames = Vec::new();
    loop {
        let frame = client.frame().await;
        if matches!(frame, ServerFrame::Ok { id: 1, .. }) {
            return event_seqs(&frames);
        }
        frames.push(frame);
    }
}

/// A node and an end user's session that follows their conversation, which has two
/// events (opened, a message), both already written to the client.
async fn following_two_events() -> (
    Arc<Node<EmbeddedBackend>>,
    Client,
    tokio::task::JoinHandle<()>,
) {
    let node = node(LimitsConfig::default());
    let (mut client, task) = connect(&node, 64);
    assert!(matches!(client.frame().await, ServerFrame::Welcome(_)));
    node.backend
        .ownership()
        .apply(message("one", 1))
        .await
        .unwrap();
    assert_eq!(subscribe(&mut client).await, vec![1, 2]);
    (node, client, task)
}

/// The next `n` events' `seq`s (other frames skipped).
async fn next_event_seqs(client: &mut Client, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        if let ServerFrame::Event(e) = client.frame().await {
            seqs.push(e.event.seq);
        }
    }
    seqs
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4001_and_leaves_the_hub() {
    let limits = LimitsConfig {
        outbox_frames: 16,
        ..LimitsConfig::default()
    };
    let node = node(limits);
    // The socket holds 4 frames: a client that stops reading blocks the session's
    // writes, and its outbox fills.
    let (mut client, task) = connect(&node, 4);
    assert!(matches!(client.frame().await, ServerFrame::Welcome(_)));
    let users = Channel::users(&tenant());
    let frame = ServerFrame::Tenant(chathub_protocol::TenantFrame {
        chat_disabled: false,
    });
    for _ in 0..200 {
        node.hub
            .dispatch(&users, &Envelope::encode(&users, None, &frame));
    }
    assert!(node.hub.overflowed() > 0, "the outbox overflowed");
    // The client reads again: what was already queued, then the close.
    let (frames, code) = client.until_closed().await;
    assert_eq!(code, Some(CloseCode::SlowConsumer.code()));
    assert!(frames.len() < 200, "not everything was delivered");
    task.await.unwrap();
    assert!(
        !node.hub.has_sessions(&users),
        "a closed session leaves its channels"
    );
}

#[tokio::test]
async fn a_resync_signal_replays_what_the_broker_lost() {
    let (node, mut client, task) = following_two_events().await;
    // Three events the broker never delivered, then the node's "resubscribed" signal.
    let lost = silent(&node);
    for (n, text) in ["two", "three", "four"].iter().enumerate() {
        lost.apply(message(text, 10 + n as u64)).await.unwrap();
    }
    let channel = Channel::conversation(&tenant(), &conversation());
    node.hub
        .dispatch(&channel, &Arc::new(Envelope::resync(channel.clone())));
    let seqs = next_event_seqs(&mut client, 3).await;
    assert_eq!(
        seqs,
        vec![3, 4, 5],
        "caught up from history, in order, once"
    );
    drop(client);
    task.await.unwrap();
}

#[tokio::test]
async fn a_seq_gap_is_filled_from_history_before_the_event() {
    let (node, mut client, task) = following_two_events().await;
    // Two events lost on the way, then the third arrives live.
    let lost = silent(&node);
    for text in ["two", "three"] {
        lost.apply(message(text, 10)).await.unwrap();
    }
    let decision = lost.apply(message("four", 11)).await.unwrap();
    let chathub_ownership::Decision::Done { events, .. } = decision else {
        panic!("{decision:?}")
    };
    let channel = Channel::conversation(&tenant(), &conversation());
    for event in &events {
        node.hub
            .dispatch(&channel, &Envelope::event(&channel, &conversation(), event));
    }
    // And the same live event again (a duplicate): skipped.
    node.hub.dispatch(
        &channel,
        &Envelope::event(&channel, &conversation(), &events[0]),
    );
    node.backend
        .ownership()
        .apply(message("five", 12))
        .await
        .unwrap();
    let seqs = next_event_seqs(&mut client, 4).await;
    assert_eq!(seqs, vec![3, 4, 5, 6], "no gap, no duplicate");
    drop(client);
    task.await.unwrap();
}

#[tokio::test]
async fn a_shutdown_closes_with_1001() {
    let node = node(LimitsConfig::default());
    let (mut client, task) = connect(&node, 64);
    assert!(matches!(client.frame().await, ServerFrame::Welcome(_)));
    node.shutdown.cancel();
    let (_, code) = client.until_closed().await;
    assert_eq!(code, Some(CloseCode::GoingAway.code()));
    task.await.unwrap();
}

#[tokio::test]
async fn a_clients_close_ends_the_session() {
    let node = node(LimitsConfig::default());
    let (mut client, task) = connect(&node, 64);
    assert!(matches!(client.frame().await, ServerFrame::Welcome(_)));
    client
        .to_session
        .send(Ok(Message::Close(None)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the session ends")
        .unwrap();
    assert!(!node.hub.has_sessions(&Channel::users(&tenant())));
}
