//! Conformance suite of the [`Broker`] contract: what one node publishes reaches every
//! node subscribed to the channel, in publish order, with the published bytes; nothing of
//! a channel a node does not follow; nothing after it unsubscribed; and a node subscribes
//! once however many local sessions follow. The same bodies run on the memory broker (one
//! node), two Redis brokers on one redis-server, and two on a Redis Cluster.

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use chathub_broker::outbox::{self, Outbox};
use chathub_broker::{Broker, Channel, Envelope, Hub, MemoryBroker, RedisBroker, Tasks};
use chathub_domain::{ConversationId, TenantId};
use chathub_protocol::{Codec, ServerFrame, TypingFrame};
use chathub_testkit::{RedisCluster, RedisServer};
use std::sync::Arc;
use std::time::Duration;

/// Two nodes: one publishes, the other (with its hub) follows. On the memory broker both
/// are the same node.
struct Nodes<B> {
    publisher: B,
    follower: B,
    hub: Arc<Hub>,
    _redis: Option<Box<dyn std::any::Any>>,
}

fn memory() -> Nodes<MemoryBroker> {
    let hub = Arc::new(Hub::new());
    let broker = MemoryBroker::new(hub.clone());
    Nodes {
        publisher: broker.clone(),
        follower: broker,
        hub,
        _redis: None,
    }
}

async fn redis_node(url: &str, hub: Arc<Hub>) -> RedisBroker<redis::aio::ConnectionManager> {
    let conn = redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let timeout = Duration::from_secs(2);
    RedisBroker::connect(url, conn, "bc", hub, timeout, &Tasks::default())
        .await
        .unwrap()
}

async fn redis() -> Nodes<RedisBroker<redis::aio::ConnectionManager>> {
    let server = RedisServer::start();
    let hub = Arc::new(Hub::new());
    Nodes {
        publisher: redis_node(&server.url(), Arc::new(Hub::new())).await,
        follower: redis_node(&server.url(), hub.clone()).await,
        hub,
        _redis: Some(Box::new(server)),
    }
}

async fn cluster_node(
    urls: &[String],
    hub: Arc<Hub>,
) -> RedisBroker<redis::cluster_async::ClusterConnection> {
    let conn = redis::cluster::ClusterClient::new(urls.iter().map(String::as_str))
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    RedisBroker::connect_cluster(urls, conn, "bc", hub, Duration::from_secs(2))
        .await
        .unwrap()
}

async fn redis_cluster() -> Nodes<RedisBroker<redis::cluster_async::ClusterConnection>> {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let hub = Arc::new(Hub::new());
    Nodes {
        publisher: cluster_node(&urls, Arc::new(Hub::new())).await,
        follower: cluster_node(&urls, hub.clone()).await,
        hub,
        _redis: Some(Box::new(cluster)),
    }
}

fn channel(name: &str) -> Channel {
    Channel::conversation(
        &TenantId::new("t").unwrap(),
        &ConversationId::new(name).unwrap(),
    )
}

/// A frame numbered `n` (in its content), encoded once.
fn envelope(channel: &Channel, n: u64) -> Arc<Envelope> {
    let frame = ServerFrame::Typing(TypingFrame {
        conversation: ConversationId::new(format!("n{n}")).unwrap(),
        from: chathub_domain::Author {
            role: chathub_domain::Role::EndUser,
            id: "u".into(),
        },
        typing: true,
    });
    Envelope::encode(channel, None, &frame)
}

/// Follows `channel` as local session `session` would.
async fn follow<B: Broker>(nodes: &Nodes<B>, channel: &Channel, session: u64) -> Outbox {
    let (tx, rx) = outbox::channel(10_000, usize::MAX);
    if nodes.hub.join(channel, session, &tx) {
        nodes.follower.subscribe(channel).await.unwrap();
    }
    rx
}

/// The number of a frame made by [`envelope`] (from its content: brokers carry bytes,
/// and only conversation events have a `seq` of their own).
fn number(env: &Envelope) -> u64 {
    match Codec::MsgPack.decode_server(&env.msgpack).unwrap() {
        ServerFrame::Typing(t) => t.conversation.as_str()[1..].parse().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The next envelope that is not a resync signal.
async fn next(outbox: &mut Outbox) -> Arc<Envelope> {
    loop {
        let env = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
            .await
            .expect("envelopes arrive")
            .unwrap()
            .unwrap();
        if !env.resync {
            return env;
        }
    }
}

async fn delivers_in_order_with_the_published_bytes<B: Broker>(nodes: Nodes<B>) {
    let (followed, other) = (channel("followed"), channel("other"));
    let mut outbox = follow(&nodes, &followed, 1).await;
    let mut sent = Vec::new();
    for n in 1..=50 {
        let env = envelope(&followed, n);
        sent.push(env.msgpack.clone());
        nodes.publisher.publish(&followed, env).await.unwrap();
        // Interleaved on a channel nobody follows here: never delivered.
        nodes
            .publisher
            .publish(&other, envelope(&other, 1000 + n))
            .await
            .unwrap();
    }
    let mut got: Vec<Bytes> = Vec::new();
    while got.len() < 50 {
        let env = next(&mut outbox).await;
        assert_eq!(env.channel, followed, "only the followed channel");
        got.push(env.msgpack.clone());
    }
    // The same frames, in publish order.
    let decode = |b: &Bytes| Codec::MsgPack.decode_server(b).unwrap();
    assert_eq!(
        got.iter().map(decode).collect::<Vec<_>>(),
        sent.iter().map(decode).collect::<Vec<_>>()
    );
}

async fn nothing_after_unsubscribing<B: Broker>(nodes: Nodes<B>) {
    let (left, stays) = (channel("left"), channel("stays"));
    let mut gone = follow(&nodes, &left, 1).await;
    let mut here = follow(&nodes, &stays, 2).await;
    nodes
        .publisher
        .publish(&left, envelope(&left, 1))
        .await
        .unwrap();
    assert_eq!(number(&*next(&mut gone).await), 1);
    assert!(nodes.hub.leave(&left, 1), "the last local follower left");
    nodes.follower.unsubscribe(&left).await.unwrap();
    nodes
        .publisher
        .publish(&left, envelope(&left, 2))
        .await
        .unwrap();
    // A marker on a channel still followed, published after: once it is here, anything
    // of the left channel would have been delivered too.
    nodes
        .publisher
        .publish(&stays, envelope(&stays, 9))
        .await
        .unwrap();
    assert_eq!(number(&*next(&mut here).await), 9);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        gone.try_recv().is_none_or(|e| e.resync),
        "nothing after unsubscribing"
    );
}

async fn one_subscription_for_many_sessions<B: Broker>(nodes: Nodes<B>) {
    let shared = channel("shared");
    let mut a = follow(&nodes, &shared, 1).await;
    let mut b = follow(&nodes, &shared, 2).await;
    nodes
        .publisher
        .publish(&shared, envelope(&shared, 1))
        .await
        .unwrap();
    let (x, y) = (next(&mut a).await, next(&mut b).await);
    assert!(
        Arc::ptr_eq(&x, &y),
        "one envelope, shared by every local session"
    );
    // One session leaving keeps the node subscribed for the other.
    assert!(!nodes.hub.leave(&shared, 1));
    nodes
        .publisher
        .publish(&shared, envelope(&shared, 2))
        .await
        .unwrap();
    assert_eq!(number(&*next(&mut b).await), 2);
}

/// One test per broker for a body.
macro_rules! on_every_broker {
    ($body:ident) => {
        mod $body {
            use super::*;
            #[tokio::test]
            async fn memory() {
                $body(super::memory()).await;
            }
            #[tokio::test]
            async fn redis() {
                $body(super::redis().await).await;
            }
            #[tokio::test]
            async fn redis_cluster() {
                $body(super::redis_cluster().await).await;
            }
        }
    };
}

on_every_broker!(delivers_in_order_with_the_published_bytes);
on_every_broker!(nothing_after_unsubscribing);
on_every_broker!(one_subscription_for_many_sessions);
