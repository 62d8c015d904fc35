//! The backends every conformance suite of this crate runs against, and the helpers
//! their bodies share: the memory twin (alone and with its data directory), a real
//! redis-server, a 3-master Redis Cluster.

// Test helpers: unwrap is how a test says "this must hold"; not every suite uses every
// helper.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use chathub_broker::outbox::{self, Outbox};
use chathub_broker::{Broker, Channel, Hub, MemoryBroker, RedisBroker};
use chathub_domain::{
    Actor, AgentId, Command, ConversationId, EndUserId, MessageContent, Role, TenantId,
};
use chathub_ownership::{ApplyRequest, MemoryOwnership, RedisOwnership, RedisOwnershipConfig};
use chathub_protocol::{Codec, ServerFrame};
use chathub_store::sqlite::DataDirConfig;
use chathub_store::{MemoryStore, MemoryStoreConfig, RedisKeys, RedisStore};
use chathub_testkit::{RedisCluster, RedisServer};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use std::sync::Arc;
use std::time::Duration;

/// Limits a suite may set smaller than the defaults.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Queue changes kept per tenant.
    pub inbox_max_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inbox_max_len: chathub_store::defaults::INBOX_MAX_LEN,
        }
    }
}

/// What a conformance body needs from a backend.
pub struct Fixture<O, S, B> {
    pub ownership: Arc<O>,
    pub store: S,
    pub broker: B,
    pub hub: Arc<Hub>,
    /// Keeps the Redis server or cluster (if any) alive for the test.
    pub _redis: Option<Box<dyn std::any::Any>>,
}

pub fn memory(limits: Limits) -> Fixture<MemoryOwnership<MemoryBroker>, MemoryStore, MemoryBroker> {
    let hub = Arc::new(Hub::new());
    let store = MemoryStore::new(MemoryStoreConfig {
        inbox_max_len: limits.inbox_max_len,
        ..MemoryStoreConfig::default()
    });
    let broker = MemoryBroker::new(hub.clone());
    let ownership = MemoryOwnership::new(store.clone(), broker.clone(), Default::default());
    Fixture {
        ownership: Arc::new(ownership),
        store,
        broker,
        hub,
        _redis: None,
    }
}

/// The embedded default with its data directory (a scratch directory, removed with the
/// fixture). Memory keeps only the 4 latest events per conversation, so every suite also
/// reads across the seam between memory and the file.
pub fn data_dir(
    limits: Limits,
) -> Fixture<MemoryOwnership<MemoryBroker>, MemoryStore, MemoryBroker> {
    let dir = chathub_testkit::ScratchDir::new("ownership-data");
    let config = MemoryStoreConfig {
        inbox_max_len: limits.inbox_max_len,
        history_max_len: 4,
        ..MemoryStoreConfig::default()
    };
    let opened = chathub_store::sqlite::open(&DataDirConfig::new(dir.path()), config).unwrap();
    let hub = Arc::new(Hub::new());
    let broker = MemoryBroker::new(hub.clone());
    let ownership = MemoryOwnership::new(opened.store.clone(), broker.clone(), opened.workspace);
    Fixture {
        ownership: Arc::new(ownership),
        store: opened.store,
        broker,
        hub,
        _redis: Some(Box::new(dir)),
    }
}

pub type RedisFixture = Fixture<
    RedisOwnership<ConnectionManager>,
    RedisStore<ConnectionManager>,
    RedisBroker<ConnectionManager>,
>;

pub async fn redis(limits: Limits) -> RedisFixture {
    let server = RedisServer::start();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let keys = RedisKeys::new("test");
    let hub = Arc::new(Hub::new());
    let broker = RedisBroker::connect(
        &server.url(),
        conn.clone(),
        "test",
        hub.clone(),
        Duration::from_secs(2),
        &chathub_broker::Tasks::default(),
    )
    .await
    .unwrap();
    Fixture {
        ownership: Arc::new(RedisOwnership::new(
            conn.clone(),
            keys.clone(),
            RedisOwnershipConfig {
                inbox_stream_max_len: limits.inbox_max_len as u64,
                ..RedisOwnershipConfig::default()
            },
        )),
        store: RedisStore::new(conn, keys),
        broker,
        hub,
        _redis: Some(Box::new(server)),
    }
}

pub type ClusterFixture = Fixture<
    RedisOwnership<ClusterConnection>,
    RedisStore<ClusterConnection>,
    RedisBroker<ClusterConnection>,
>;

/// The same backend on a 3-master Redis Cluster: sharded pub/sub, scripts per slot.
pub async fn redis_cluster(limits: Limits) -> ClusterFixture {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let conn = redis::cluster::ClusterClient::new(urls.iter().map(String::as_str))
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let keys = RedisKeys::new("test");
    let hub = Arc::new(Hub::new());
    let broker = RedisBroker::connect_cluster(
        &urls,
        conn.clone(),
        "test",
        hub.clone(),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let config = RedisOwnershipConfig {
        cluster: true,
        inbox_stream_max_len: limits.inbox_max_len as u64,
        ..RedisOwnershipConfig::default()
    };
    Fixture {
        ownership: Arc::new(RedisOwnership::new(conn.clone(), keys.clone(), config)),
        store: RedisStore::new(conn, keys),
        broker,
        hub,
        _redis: Some(Box::new(cluster)),
    }
}

pub fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

pub fn conversation(name: &str) -> ConversationId {
    ConversationId::new(name).unwrap()
}

pub fn agent(name: &str) -> Actor {
    Actor::Agent {
        id: AgentId::new(name).unwrap(),
        admin: false,
        privileges: Role::Agent.default_privileges(),
        bot: false,
    }
}

pub fn end_user(name: &str) -> Actor {
    Actor::EndUser(EndUserId::new(name).unwrap())
}

pub fn send(
    actor: Actor,
    conv: &str,
    text: &str,
    epoch: Option<u64>,
    id: Option<&str>,
) -> ApplyRequest {
    ApplyRequest {
        tenant: tenant(),
        conversation: conversation(conv),
        actor,
        command: Command::Send {
            content: MessageContent::Text { text: text.into() },
            client_msg_id: id.map(str::to_owned),
            seen_epoch: epoch,
        },
        at: 1_000,
        context: Default::default(),
    }
}

/// Follows `channel` like a session would: joins the hub, subscribes the node.
pub async fn follow<O, S, B: Broker>(
    f: &Fixture<O, S, B>,
    channel: &Channel,
    session: u64,
) -> Outbox {
    let (tx, rx) = outbox::channel(100_000, usize::MAX);
    if f.hub.join(channel, session, &tx) {
        f.broker.subscribe(channel).await.unwrap();
    }
    // The sender is kept alive by the hub.
    rx
}

/// The next `n` frames (delivery through Redis is asynchronous), then checks that no
/// more arrive.
pub async fn frames(outbox: &mut Outbox, n: usize) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while frames.len() < n {
        let env = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
            .await
            .expect("frames arrive")
            .unwrap()
            .unwrap();
        if env.resync {
            continue;
        }
        frames.push(Codec::MsgPack.decode_server(&env.msgpack).unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    while let Some(env) = outbox.try_recv() {
        assert!(env.resync, "unexpected extra frame");
    }
    frames
}
