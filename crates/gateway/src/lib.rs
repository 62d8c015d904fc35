//! A chathub gateway node: accepts WebSocket connections, authenticates them in the
//! handshake, runs one [`Session`](session) per socket, fans events out to local sessions
//! through the [`Hub`], and serves the HTTP side. It holds no conversation state: every
//! decision is the backend's.
//!
//! # Layout
//! - [`config`]: typed settings with documented defaults.
//! - [`auth`]: token verification and minting.
//! - [`backend`]: the services behind the node ([`EmbeddedBackend`] by default).
//! - `listener`: the accept loop and the handshake (auth, subprotocol).
//! - `session`: one socket, the socket loop only: read frames, hand requests to `ops`,
//!   write replies and events in `seq` order, keepalive, close.
//! - `ops`: what each request does: one dispatch, one file per request family; the
//!   socket and the admin API both call it.
//! - `http`: `/healthz`, `/readyz`, `/metrics`; `admin`: the admin HTTP API; `web`: the
//!   agent console and the end-user demo client.
//! - `metrics`: metric names and the Prometheus recorder.
//! - [`webhook`]: offline delivery to the brand's push service.

mod admin;
pub mod auth;
pub mod backend;
pub mod config;
pub mod demo;
mod http;
mod listener;
mod metrics;
mod ops;
mod session;
pub mod tls;
mod web;
pub mod webhook;

pub use auth::{AuthError, Authenticator, Claims, Identity};
pub use backend::{Backend, BackendError, EmbeddedBackend, RedisBackend, RedisConfig, RedisTarget};
pub use chathub_broker::Hub;
pub use chathub_ownership::RedisOwnershipConfig;
pub use chathub_store::MemoryStoreConfig;
pub use config::{AuthConfig, DEV_SECRET, GatewayConfig, LimitsConfig, WebhookConfig};
pub use tls::{TlsConfig, TlsError};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Errors starting a gateway node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The backend could not be started.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The demo tenant could not be loaded.
    #[error("cannot load the demo tenant: {0}")]
    Demo(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every session of the node shares.
pub(crate) struct Node<K> {
    pub(crate) config: GatewayConfig,
    pub(crate) backend: K,
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Authenticator,
    /// The per-frame metrics' handles.
    pub(crate) hot: metrics::HotMetrics,
    /// TLS for the WebSocket port, when configured.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The bound WebSocket address (the pages served over HTTP connect to its port).
    pub(crate) ws_addr: SocketAddr,
    /// This node's id, the prefix of its session ids.
    pub(crate) id: String,
    pub(crate) next_session: AtomicU64,
    /// Cancelled when the node shuts down; sessions close with 1001.
    pub(crate) shutdown: CancellationToken,
    /// The offline delivery webhook, if configured.
    pub(crate) webhook: Option<webhook::Webhook>,
    /// Open sockets per (tenant, subject).
    pub(crate) per_subject: Arc<dashmap::DashMap<(chathub_domain::TenantId, String), usize>>,
    /// Tenant settings read recently (see [`Node::settings`]).
    pub(crate) settings: dashmap::DashMap<
        chathub_domain::TenantId,
        (chathub_store::TenantSettings, std::time::Instant),
    >,
}

/// How long a node trusts tenant settings it read; a switch made on another node is seen
/// within this (the node that made it sees it at once).
pub(crate) const SETTINGS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl<K: Backend> Node<K> {
    /// The tenant's settings, read at most once per [`SETTINGS_TTL`] per node: every
    /// command needs them, and a Redis round trip per message would be waste.
    pub(crate) async fn settings(
        &self,
        tenant: &chathub_domain::TenantId,
    ) -> Result<chathub_store::TenantSettings, chathub_store::StoreError> {
        use chathub_store::WorkspaceStore;
        if let Some(entry) = self.settings.get(tenant)
            && entry.1.elapsed() < SETTINGS_TTL
        {
            return Ok(entry.0);
        }
        let fresh = self.backend.workspace().settings(tenant).await?;
        self.remember_settings(tenant, fresh);
        Ok(fresh)
    }

    /// Records settings this node just wrote or read.
    pub(crate) fn remember_settings(
        &self,
        tenant: &chathub_domain::TenantId,
        settings: chathub_store::TenantSettings,
    ) {
        self.settings
            .insert(tenant.clone(), (settings, std::time::Instant::now()));
    }
}

/// A running node.
pub struct RunningGateway {
    /// Bound WebSocket address (useful with port 0).
    pub ws_addr: SocketAddr,
    /// Bound HTTP address, if enabled.
    pub http_addr: Option<SocketAddr>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    grace: std::time::Duration,
}

impl RunningGateway {
    /// Asks the node to shut down (same as cancelling the token given to [`start`]).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the node has shut down: the token was cancelled, every session was
    /// sent its 1001 close and has ended, or the grace period ran out.
    pub async fn stopped(self) {
        self.shutdown.cancelled().await;
        self.tracker.close();
        // Sessions drain on their own; the grace bounds how long a stuck one is awaited.
        let _ = tokio::time::timeout(self.grace * 2, self.tracker.wait()).await;
    }
}

/// Starts a node with the embedded backend (nothing else to install).
pub async fn start_embedded(
    config: GatewayConfig,
    store: MemoryStoreConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    let hub = Arc::new(Hub::new());
    let backend = EmbeddedBackend::new(hub.clone(), store);
    start(config, backend, hub, shutdown).await
}

/// Starts a node in cluster mode, on Redis.
pub async fn start_redis(
    config: GatewayConfig,
    redis: RedisConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    let hub = Arc::new(Hub::new());
    match redis.target.clone() {
        RedisTarget::Single(url) => {
            let backend = RedisBackend::connect(redis, &url, hub.clone()).await?;
            start(config, backend, hub, shutdown).await
        }
        RedisTarget::Cluster(urls) => {
            let backend = RedisBackend::connect_cluster(redis, &urls, hub.clone()).await?;
            start(config, backend, hub, shutdown).await
        }
    }
}

/// Starts a node on `backend`, whose broker delivers into `hub`. The node runs until
/// `shutdown` is cancelled.
pub async fn start<K: Backend>(
    config: GatewayConfig,
    backend: K,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    metrics::install();
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    if config.demo {
        demo::load(&backend).await.map_err(GatewayError::Demo)?;
    }
    let ws = TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
    let ws_addr = ws.local_addr().map_err(|source| GatewayError::Bind {
        addr: config.listen,
        source,
    })?;
    let http = match config.http {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind { addr, source })?;
            Some(l)
        }
        None => None,
    };
    let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
    let grace = config.shutdown_grace;
    let tracker = TaskTracker::new();
    let webhook = config.webhook.clone().map(|c| {
        let (hook, worker) = webhook::Webhook::new(c);
        tokio::spawn(worker);
        hook
    });
    let node = Arc::new(Node {
        auth: Authenticator::new(&config.auth),
        config,
        backend,
        hub,
        ws_addr,
        tls,
        hot: metrics::HotMetrics::register(),
        id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        next_session: AtomicU64::new(1),
        shutdown: shutdown.clone(),
        webhook,
        settings: Default::default(),
        per_subject: Default::default(),
    });
    if let Some(http) = http {
        tracker.spawn(http::serve(http, node.clone()));
    }
    if node.config.auth.secrets_file.is_some() {
        // Key rotation: the accepted keys follow the file.
        let (auth, shutdown) = (node.auth.clone(), node.shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(config::KEY_RELOAD) => { auth.reload_keys(); }
                }
            }
        });
    }
    tracker.spawn(listener::accept_loop(ws, node, tracker.clone()));
    tracing::info!(%ws_addr, ?http_addr, "gateway listening");
    Ok(RunningGateway {
        ws_addr,
        http_addr,
        tracker,
        shutdown,
        grace,
    })
}
