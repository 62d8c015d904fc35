//! The Redis broker: one pub/sub connection per node (RESP3, pushes), subscribed once per
//! channel however many local sessions follow it.
//!
//! ## Behaviour
//! - Deliveries arrive as RESP3 pushes on the connection's reader task; the handler
//!   routes a plain message by its `seq` without decoding it (its bytes go out as
//!   published), decodes and re-encodes any other frame once per node, and dispatches
//!   into the [`Hub`] with `try_push`: a full session queue never stalls the Redis
//!   reader.
//! - After a disconnect the connection manager reconnects and resubscribes every channel
//!   by itself. Each resubscription confirmation is turned into a resync signal for the
//!   channel's local sessions, which catch up from history: Redis pub/sub is at most once.
//! - Subscribes and unsubscribes of the node are serialised, and an unsubscribe is
//!   skipped when a local session joined the channel again meanwhile.
//!
//! ## Redis Cluster: sharded pub/sub
//! On a Redis Cluster the broker uses SSUBSCRIBE / SPUBLISH. Classic PUBLISH is broadcast
//! to every node of the cluster, so its cost grows with the cluster and every shard
//! carries every message; a sharded channel lives in one slot and only its shard carries
//! it. Every channel name carries a hash tag — the conversation's `{tenant/conversation}`
//! or the tenant's `{tenant}` — so it lands in the slot of the keys the publishing script
//! writes: the script may SPUBLISH from inside (scripts can only touch their own slot),
//! which keeps "publish order = `seq` order" true on a cluster too. The cluster
//! connection tracks subscriptions and resubscribes after reconnects and slot moves.

use crate::{Broker, BrokerError, Channel, Envelope, Hub};
use bytes::Bytes;
use chathub_protocol::{Codec, ServerFrame};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The Redis channel name of a hub channel: `<prefix>:<channel>`.
pub fn redis_channel(prefix: &str, channel: &Channel) -> String {
    format!("{prefix}:{}", channel.as_str())
}

/// Counters of the broker, for metrics.
#[derive(Debug, Default)]
pub struct RedisBrokerStats {
    /// Messages received from Redis.
    pub received: AtomicU64,
    /// Messages that could not be decoded (dropped; sessions repair from history).
    pub undecodable: AtomicU64,
    /// Times the pub/sub connection was lost.
    pub disconnects: AtomicU64,
    /// Resync signals sent to sessions after (re)subscribing.
    pub resyncs: AtomicU64,
}

/// The node's pub/sub connection.
#[derive(Clone)]
enum PubSub {
    /// One Redis server: SUBSCRIBE / PUBLISH.
    Single(ConnectionManager),
    /// A Redis Cluster: SSUBSCRIBE / SPUBLISH (see the module docs).
    Cluster(ClusterConnection),
}

/// The Redis broker (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker<C> {
    pubsub: PubSub,
    publisher: C,
    prefix: Arc<str>,
    hub: Arc<Hub>,
    /// Serialises this node's subscribe/unsubscribe commands.
    subscriptions: Arc<tokio::sync::Mutex<()>>,
    stats: Arc<RedisBrokerStats>,
    /// Whether the pub/sub connection answered its last ping.
    healthy: Arc<AtomicBool>,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisBroker<C> {
    /// Opens the node's pub/sub connection to `url` (RESP3 is switched on here) and
    /// publishes through `publisher`. Deliveries go into `hub`.
    pub async fn connect(
        url: &str,
        publisher: C,
        prefix: &str,
        hub: Arc<Hub>,
        timeout: Duration,
        tasks: &crate::Tasks,
    ) -> Result<Self, BrokerError> {
        let url = with_resp3(url);
        let client = redis::Client::open(url.as_str()).map_err(BrokerError::unavailable)?;
        let prefix: Arc<str> = prefix.into();
        let stats = Arc::new(RedisBrokerStats::default());
        let lost = Arc::new(AtomicBool::new(false));
        let handler = PushHandler {
            prefix: prefix.clone(),
            hub: hub.clone(),
            stats: stats.clone(),
            lost: lost.clone(),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_automatic_resubscription()
            .set_push_sender(move |push: PushInfo| {
                handler.handle(push);
                Ok::<(), redis::aio::SendError>(())
            });
        let pubsub = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(BrokerError::unavailable)?;
        let healthy = Arc::new(AtomicBool::new(true));
        tasks.spawn(keep_alive(
            pubsub.clone(),
            healthy.clone(),
            timeout,
            lost,
            hub.clone(),
        ));
        Ok(RedisBroker {
            pubsub: PubSub::Single(pubsub),
            publisher,
            prefix,
            hub,
            subscriptions: Arc::default(),
            stats,
            healthy,
        })
    }

    /// Like [`RedisBroker::connect`], for a Redis Cluster reached through any of `urls`:
    /// sharded pub/sub.
    pub async fn connect_cluster(
        urls: &[String],
        publisher: C,
        prefix: &str,
        hub: Arc<Hub>,
        timeout: Duration,
    ) -> Result<Self, BrokerError> {
        let prefix: Arc<str> = prefix.into();
        let stats = Arc::new(RedisBrokerStats::default());
        let handler = PushHandler {
            prefix: prefix.clone(),
            hub: hub.clone(),
            stats: stats.clone(),
            // The cluster connection resubscribes per node and confirms each channel.
            lost: Arc::new(AtomicBool::new(false)),
        };
        let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .push_sender(move |push: PushInfo| {
                handler.handle(push);
                Ok::<(), redis::aio::SendError>(())
            })
            .build()
            .map_err(BrokerError::unavailable)?;
        let pubsub = client
            .get_async_connection()
            .await
            .map_err(BrokerError::unavailable)?;
        Ok(RedisBroker {
            pubsub: PubSub::Cluster(pubsub),
            publisher,
            prefix,
            hub,
            subscriptions: Arc::default(),
            stats,
            // The cluster connection reconnects and resubscribes by itself per node.
            healthy: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Whether the pub/sub connection is up (answered its last ping).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The broker's counters.
    pub fn stats(&self) -> &RedisBrokerStats {
        &self.stats
    }
}

/// Pings the pub/sub connection every second. A connection manager reconnects (and
/// resubscribes) only when it is used; on a pub/sub connection nothing else would use it
/// after Redis came back, so the ping is what brings the node's subscriptions back. The
/// first answered ping after a loss comes after the resubscriptions (same connection, in
/// order), so that is when every local channel is told to catch up from history:
/// whatever was published while the connection was down would otherwise stay missing
/// until the channel's next event revealed the gap.
async fn keep_alive(
    mut conn: ConnectionManager,
    healthy: Arc<AtomicBool>,
    timeout: Duration,
    lost: Arc<AtomicBool>,
    hub: Arc<Hub>,
) {
    let ping = redis::cmd("PING");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let answered = tokio::time::timeout(timeout, ping.query_async::<Value>(&mut conn)).await;
        let ok = matches!(answered, Ok(Ok(_)));
        healthy.store(ok, Ordering::Relaxed);
        if ok && lost.swap(false, Ordering::Relaxed) {
            for channel in hub.channels() {
                hub.dispatch(&channel, &Arc::new(Envelope::resync(channel.clone())));
            }
        }
    }
}

/// Adds `protocol=resp3` to a Redis URL (pushes need RESP3).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

struct PushHandler {
    prefix: Arc<str>,
    hub: Arc<Hub>,
    stats: Arc<RedisBrokerStats>,
    /// Set when the connection drops; the keep-alive then resyncs every channel.
    lost: Arc<AtomicBool>,
}

impl PushHandler {
    fn handle(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(name)), Some(Value::BulkString(payload)), None) =
                    (data.next(), data.next(), data.next())
                else {
                    return;
                };
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                let Some(name) = self.hub_name(&name) else {
                    return;
                };
                let stats = &self.stats;
                self.hub
                    .dispatch_named(name, |channel| match normalise(payload) {
                        Some((seq, (erased, agents_only, alert), bytes)) => {
                            let mut envelope = Envelope::new(channel, seq, bytes);
                            envelope.erased = erased;
                            envelope.agents_only = agents_only;
                            envelope.alert = alert;
                            envelope
                        }
                        None => {
                            stats.undecodable.fetch_add(1, Ordering::Relaxed);
                            // Sessions treat a resync like a gap: they read history.
                            Envelope::resync(channel)
                        }
                    });
            }
            PushKind::Subscribe | PushKind::SSubscribe => {
                let Some(Value::BulkString(name)) = push.data.first() else {
                    return;
                };
                if let Some(name) = self.hub_name(name) {
                    self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    self.hub.dispatch_named(name, Envelope::resync);
                }
            }
            PushKind::Disconnection => {
                self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                self.lost.store(true, Ordering::Relaxed);
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            _ => {}
        }
    }

    fn hub_name<'a>(&self, redis_name: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(redis_name)
            .ok()?
            .strip_prefix(&*self.prefix)?
            .strip_prefix(':')
    }
}

/// Turns a published frame (encoded by a Lua script or another node) into what the
/// node's sessions are sent: its `seq` (events), its flags
/// ([`crate::envelope::flags_of`]) and its bytes. A plain message event (the common
/// frame: its event packed by a node, the script only appending `seq`, `at`, `type` and
/// `conversation`) goes out as it came, routed by a walk over its map
/// ([`crate::peek`]); every other frame is decoded and re-encoded once per node, which
/// also gives the frames a script builds field by field the bytes every node makes.
fn normalise(payload: Vec<u8>) -> Option<(Option<u64>, crate::envelope::Flags, Bytes)> {
    if let Some(seq) = crate::peek::message_seq(&payload) {
        // A message is never agents-only, an erasure or an alert.
        return Some((Some(seq), (false, false, false), Bytes::from(payload)));
    }
    let frame = Codec::MsgPack.decode_server(&payload).ok()?;
    let seq = match &frame {
        ServerFrame::Event(e) => Some(e.event.seq),
        _ => None,
    };
    let flags = crate::envelope::flags_of(&frame);
    Some((seq, flags, Codec::MsgPack.encode_server(&frame).ok()?))
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Broker for RedisBroker<C> {
    async fn publish(&self, channel: &Channel, envelope: Arc<Envelope>) -> Result<(), BrokerError> {
        let mut conn = self.publisher.clone();
        let command = match self.pubsub {
            PubSub::Single(_) => "PUBLISH",
            PubSub::Cluster(_) => "SPUBLISH",
        };
        redis::cmd(command)
            .arg(redis_channel(&self.prefix, channel))
            .arg(envelope.msgpack.as_ref())
            .exec_async(&mut conn)
            .await
            .map_err(BrokerError::unavailable)
    }

    async fn subscribe(&self, channel: &Channel) -> Result<(), BrokerError> {
        let _serial = self.subscriptions.lock().await;
        let name = redis_channel(&self.prefix, channel);
        let subscribed = match self.pubsub.clone() {
            PubSub::Single(mut conn) => conn.subscribe(name).await,
            PubSub::Cluster(mut conn) => conn.ssubscribe(name).await,
        };
        subscribed.map_err(BrokerError::unavailable)
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<(), BrokerError> {
        let _serial = self.subscriptions.lock().await;
        if self.hub.has_sessions(channel) {
            // Somebody here joined again since the last one left.
            return Ok(());
        }
        let name = redis_channel(&self.prefix, channel);
        let unsubscribed = match self.pubsub.clone() {
            PubSub::Single(mut conn) => conn.unsubscribe(name).await,
            PubSub::Cluster(mut conn) => conn.sunsubscribe(name).await,
        };
        unsubscribed.map_err(BrokerError::unavailable)
    }
}
