//! A node: what every session shares, and starting and stopping it.

use crate::auth::Authenticator;
use crate::backend::{Backend, EmbeddedBackend, RedisBackend, RedisConfig, RedisTarget};
use crate::config::{self, GatewayConfig};
use crate::{GatewayError, http, listener, metrics, tls, webhook};
use chathub_broker::{Hub, Tasks};
use chathub_store::MemoryStoreConfig;
use chathub_store::sqlite::DataDirConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// Tenants this node has registered for the webhook job sweepers.
    pub(crate) job_tenants: dashmap::DashSet<chathub_domain::TenantId>,
    /// Attachments, when configured.
    pub(crate) attachments: Option<Arc<chathub_attachments::Attachments>>,
    /// The queue into the attachment scanner, when one is configured.
    pub(crate) scanner: Option<crate::scanner::Scanner>,
    /// The base of upload and download links (`http://host:port`, no trailing slash).
    pub(crate) http_base: String,
    /// What this node last told each waiting end user of their place in the queue (see
    /// `hours::push_positions`), with when.
    pub(crate) positions: dashmap::DashMap<PositionKey, (ToldPosition, std::time::Instant)>,
    /// The waits (conversation, and when it entered the queue) this node knows got their
    /// automatic reply, so a round reads each one's history once, not every second.
    pub(crate) auto_replied: dashmap::DashMap<PositionKey, u64>,
    /// Whether each tenant with business hours was open at this node's last timer round
    /// (an `hours` frame is published when that changes).
    pub(crate) hours_seen: dashmap::DashMap<chathub_domain::TenantId, bool>,
    /// Tenant settings read recently (see [`Node::settings`]).
    pub(crate) settings: dashmap::DashMap<
        chathub_domain::TenantId,
        (Arc<chathub_store::TenantSettings>, std::time::Instant),
    >,
}

/// A waiting conversation, for [`Node::positions`].
pub(crate) type PositionKey = (chathub_domain::TenantId, chathub_domain::ConversationId);
/// The place and estimate (seconds) an end user was told.
pub(crate) type ToldPosition = (u32, Option<u64>);

/// How long a node trusts tenant settings it read; a switch made on another node is seen
/// within this (the node that made it sees it at once).
pub(crate) const SETTINGS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl<K: Backend> Node<K> {
    /// The tenant's settings, read at most once per [`SETTINGS_TTL`] per node: every
    /// command needs them, and a Redis round trip per message would be waste.
    pub(crate) async fn settings(
        &self,
        tenant: &chathub_domain::TenantId,
    ) -> Result<Arc<chathub_store::TenantSettings>, chathub_store::StoreError> {
        use chathub_store::WorkspaceStore;
        if let Some(entry) = self.settings.get(tenant)
            && entry.1.elapsed() < SETTINGS_TTL
        {
            // Shared, not copied: the settings hold the attachment policy's lists.
            return Ok(entry.0.clone());
        }
        let fresh = Arc::new(self.backend.workspace().settings(tenant).await?);
        self.remember_settings(tenant, fresh.clone());
        Ok(fresh)
    }

    /// Makes the tenant's webhook jobs visible to every node's sweeper, once per node,
    /// before its first session is served (with a webhook only).
    pub(crate) async fn register_job_tenant(&self, tenant: &chathub_domain::TenantId) {
        use chathub_store::WebhookJobs;
        if self.webhook.is_none() || !self.job_tenants.insert(tenant.clone()) {
            return;
        }
        if let Err(e) = self.backend.jobs().register_tenant(tenant).await {
            tracing::warn!(error = %e, "cannot register the tenant for webhook jobs");
            // The next session tries again.
            self.job_tenants.remove(tenant);
        }
    }

    /// Records settings this node just wrote or read.
    pub(crate) fn remember_settings(
        &self,
        tenant: &chathub_domain::TenantId,
        settings: Arc<chathub_store::TenantSettings>,
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
    tasks: Tasks,
    grace: std::time::Duration,
}

/// How a node's stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks of the node (sessions, listeners, background work) still running when the
    /// wait ended: 0 unless one was stuck past twice the grace period.
    pub tasks_left: usize,
}

impl RunningGateway {
    /// Asks the node to shut down (same as cancelling the token given to
    /// [`start_embedded`] or [`start_redis`]).
    pub fn shutdown(&self) {
        self.tasks.shutdown().cancel();
    }

    /// How many tasks of the node (sessions, listeners, background work) are running.
    pub fn tasks_running(&self) -> usize {
        self.tasks.running()
    }

    /// Waits until the node has shut down: the token was cancelled, every session was
    /// sent its 1001 close and has ended, every background task has stopped, or twice
    /// the grace period ran out.
    pub async fn stopped(self) -> Stopped {
        self.tasks.shutdown().cancelled().await;
        let tracker = self.tasks.tracker();
        tracker.close();
        // Sessions drain on their own; the grace bounds how long a stuck one is awaited.
        let _ = tokio::time::timeout(self.grace * 2, tracker.wait()).await;
        Stopped {
            tasks_left: self.tasks.running(),
        }
    }
}

/// Starts a node with the embedded backend (nothing else to install).
pub async fn start_embedded(
    config: GatewayConfig,
    store: MemoryStoreConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    let tasks = Tasks::new(TaskTracker::new(), shutdown);
    let hub = Arc::new(Hub::new());
    let mut backend = EmbeddedBackend::new(hub.clone(), store);
    if let Some(webhook) = &config.webhook {
        backend = backend.with_webhook_jobs(webhook.lease);
    }
    start(config, backend, hub, tasks).await
}

/// Starts a node with the embedded backend keeping everything in the data directory
/// `data` (SQLite; nothing else to install): a restart keeps every acknowledged change.
pub async fn start_embedded_with_data(
    config: GatewayConfig,
    store: MemoryStoreConfig,
    data: DataDirConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    let tasks = Tasks::new(TaskTracker::new(), shutdown);
    let hub = Arc::new(Hub::new());
    let mut backend = EmbeddedBackend::open(hub.clone(), store, data).await?;
    if let Some(webhook) = &config.webhook {
        backend = backend.with_webhook_jobs(webhook.lease);
    }
    start(config, backend, hub, tasks).await
}

/// Starts a node in cluster mode, on Redis.
pub async fn start_redis(
    config: GatewayConfig,
    mut redis: RedisConfig,
    shutdown: CancellationToken,
) -> Result<RunningGateway, GatewayError> {
    if let Some(webhook) = &config.webhook {
        redis.ownership.webhook_job_lease_ms = webhook.lease.as_millis() as u64;
    }
    let tasks = Tasks::new(TaskTracker::new(), shutdown);
    let hub = Arc::new(Hub::new());
    let started = match redis.target.clone() {
        RedisTarget::Single(url) => {
            let backend = RedisBackend::connect(redis, &url, hub.clone(), &tasks).await?;
            start(config, backend, hub, tasks.clone()).await
        }
        RedisTarget::Cluster(urls) => {
            let backend = RedisBackend::connect_cluster(redis, &urls, hub.clone(), &tasks).await?;
            start(config, backend, hub, tasks.clone()).await
        }
    };
    if started.is_err() {
        // The backend's tasks started already: stop them with the failed start.
        tasks.shutdown().cancel();
    }
    started
}

/// Starts a node on `backend`, whose broker delivers into `hub`; every task of the node
/// runs under `tasks` and stops when its token is cancelled.
async fn start<K: Backend>(
    config: GatewayConfig,
    backend: K,
    hub: Arc<Hub>,
    tasks: Tasks,
) -> Result<RunningGateway, GatewayError> {
    config.auth.check().map_err(GatewayError::Config)?;
    metrics::install();
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    if let Some(seed) = &config.seed {
        seed.load(&backend, crate::auth::now_millis())
            .await
            .map_err(GatewayError::Seed)?;
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
    let mut webhook_done = None;
    let webhook = config.webhook.clone().map(|c| {
        let (hook, worker, done) = webhook::Webhook::new(c);
        tasks.spawn(worker);
        webhook_done = Some(done);
        hook
    });
    let attachments = match &config.attachments {
        Some(a) => {
            let mut a = a.clone();
            // With a scanner, files start pending and leave a scan mark.
            a.scanned = config.attachment_scanner.is_some();
            Some(Arc::new(
                chathub_attachments::Attachments::open(a, &config.auth.secret)
                    .map_err(GatewayError::Attachments)?,
            ))
        }
        None => None,
    };
    let (scanner, scans) = match (&attachments, &config.attachment_scanner) {
        (Some(_), Some(_)) => {
            let (scanner, rx) = crate::scanner::Scanner::new();
            (Some(scanner), Some(rx))
        }
        _ => (None, None),
    };
    let http_base = match (&config.public_http_url, http_addr) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => String::new(),
    };
    let node = Arc::new(Node {
        attachments,
        scanner,
        http_base,
        auth: Authenticator::new(&config.auth),
        config,
        backend,
        hub,
        ws_addr,
        tls,
        hot: metrics::HotMetrics::register(),
        id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        next_session: AtomicU64::new(1),
        shutdown: tasks.shutdown().clone(),
        webhook,
        settings: Default::default(),
        per_subject: Default::default(),
        job_tenants: Default::default(),
        positions: Default::default(),
        hours_seen: Default::default(),
        auto_replied: Default::default(),
    });
    tasks.spawn(crate::ops::presence::watch(node.clone()));
    tasks.spawn(crate::retention::run(node.clone()));
    tasks.spawn(crate::stall::run(node.clone()));
    if let (Some(done), Some(webhook)) = (webhook_done, &node.config.webhook) {
        tasks.spawn(crate::ops::followups::complete_jobs(node.clone(), done));
        tasks.spawn(crate::ops::followups::sweep_jobs(
            node.clone(),
            webhook.lease,
        ));
    }
    if let Some(http) = http {
        tasks.tracker().spawn(http::serve(http, node.clone()));
    }
    if node.attachments.is_some() {
        tasks.spawn(crate::attachments::sweep_staging(node.clone()));
    }
    if let Some(scans) = scans {
        tasks.spawn(crate::scanner::run(node.clone(), scans));
        tasks.spawn(crate::scanner::sweep(node.clone()));
    }
    if node.config.auth.secrets_file.is_some() {
        // Key rotation: the accepted keys follow the file.
        let auth = node.auth.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(config::KEY_RELOAD).await;
                auth.reload_keys();
            }
        });
    }
    tasks
        .tracker()
        .spawn(listener::accept_loop(ws, node, tasks.tracker().clone()));
    tracing::info!(%ws_addr, ?http_addr, "gateway listening");
    Ok(RunningGateway {
        ws_addr,
        http_addr,
        tasks,
        grace,
    })
}
