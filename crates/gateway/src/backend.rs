//! The backend a gateway node runs on: a broker, an ownership applier and a store,
//! chosen once at start-up. The gateway only asks them; it never decides.

use chathub_broker::{Broker, Hub, MemoryBroker, RedisBroker, Tasks};
use chathub_domain::TenantId;
use chathub_ownership::{MemoryOwnership, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_store::StoreError;
use chathub_store::postgres::Archive;
use chathub_store::report::{CycleRow, Reports};
use chathub_store::search::{Search, SearchPage, SearchQuery};
use chathub_store::sqlite::DataDirConfig;
use chathub_store::{
    ConversationStore, MemoryJobs, MemoryStore, MemoryStoreConfig, MemoryWorkspace, RedisJobs,
    RedisKeys, RedisStore, RedisWorkspace, WebhookJobs, WorkspaceStore,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The three services behind a gateway node.
pub trait Backend: Send + Sync + 'static {
    /// Pub/sub between nodes.
    type Broker: Broker;
    /// Atomic command application.
    type Ownership: Ownership;
    /// Reads of state, history, queue and read marks.
    type Store: ConversationStore;
    /// The agent workspace's data: settings, engagements, canned responses, presence.
    type Workspace: WorkspaceStore;
    /// The durable jobs after a command (the offline webhook's).
    type Jobs: WebhookJobs;

    /// The broker.
    fn broker(&self) -> &Self::Broker;
    /// The ownership applier.
    fn ownership(&self) -> &Self::Ownership;
    /// The store.
    fn store(&self) -> &Self::Store;
    /// The workspace store.
    fn workspace(&self) -> &Self::Workspace;
    /// The pending webhook jobs.
    fn jobs(&self) -> &Self::Jobs;
    /// Whether the backend can serve now (for `/readyz`).
    fn is_ready(&self) -> bool {
        true
    }
    /// The Redis pub/sub connection's counters (cluster mode only).
    fn pubsub_stats(&self) -> Option<&chathub_broker::RedisBrokerStats> {
        None
    }
    /// Identifies the history this backend holds, as last seen (for `welcome`). It
    /// changes when history is lost: an embedded node restarted, or Redis was flushed or
    /// restarted without persistence. A client resuming with another id is told
    /// `history_lost` instead of being sent a silent gap.
    fn history_id(&self) -> String;
    /// The history id now (a backend round trip); `None` when it cannot be read.
    fn current_history_id(&self) -> impl Future<Output = Option<String>> + Send;
    /// Whether this backend has a record tier (search, deep history beyond the hot
    /// window): the embedded data directory, or a cluster's archive.
    fn has_record_tier(&self) -> bool {
        false
    }
    /// Whether the cluster's archive is degraded (unreachable: events wait in Redis);
    /// `None` without an archive. Reported by `/readyz`, which stays ready.
    fn archive_degraded(&self) -> Option<bool> {
        None
    }
    /// Full-text search of the tenant's messages in the record tier; `unavailable`
    /// where there is none (an ephemeral node, a cluster without an archive).
    fn search(
        &self,
        _tenant: &TenantId,
        _query: SearchQuery,
    ) -> impl Future<Output = Result<SearchPage, StoreError>> + Send {
        async { Err(no_record_tier()) }
    }
    /// The tenant's text search configuration: the embedded default's is `simple`
    /// (SQLite FTS5, accents folded), fixed.
    fn search_config(
        &self,
        _tenant: &TenantId,
    ) -> impl Future<Output = Result<chathub_protocol::SearchConfig, StoreError>> + Send {
        async {
            Ok(chathub_protocol::SearchConfig {
                config: "simple".to_owned(),
                configurable: false,
            })
        }
    }
    /// Sets the tenant's text search configuration (`None`: the default) and re-indexes
    /// its messages; only the cluster's archive has configurations to choose from.
    fn set_search_config(
        &self,
        _tenant: &TenantId,
        _config: Option<String>,
    ) -> impl Future<Output = Result<chathub_protocol::SearchConfig, StoreError>> + Send {
        async {
            Err(StoreError::Invalid(
                "search configuration: only cluster mode's archive (PostgreSQL) has \
                 configurations to choose; the embedded default searches with `simple`",
            ))
        }
    }
    /// The tenant's retention in every tier this backend keeps: every event older than
    /// `before` (ms), with its search entry, and the inbox changes older than it.
    fn retention_trim(
        &self,
        tenant: &TenantId,
        before: u64,
    ) -> impl Future<Output = Result<chathub_store::Trimmed, StoreError>> + Send;
    /// Whether this node (`node`) runs the retention sweep now, holding it for `ttl`:
    /// one node of a cluster sweeps at a time. The embedded node is alone.
    fn retention_lease(
        &self,
        _node: &str,
        _ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(true) }
    }
    /// Whether this node runs a round of the stall sweep now, holding it for `ttl`: one
    /// node of a cluster sweeps at a time. The embedded node is alone.
    fn release_lease(
        &self,
        _node: &str,
        _ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(true) }
    }
    /// Streams the tenant's conversation cycles opened in `[from, to)` (ms) into `rows`
    /// (see [`chathub_store::report`]); `unavailable` without a record tier.
    fn report_cycles(
        &self,
        _tenant: &TenantId,
        _from: u64,
        _to: u64,
        _rows: tokio::sync::mpsc::Sender<CycleRow>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Err(no_record_tier()) }
    }
}

/// The error of a request that needs the record tier on a backend without one.
fn no_record_tier() -> StoreError {
    StoreError::Unavailable {
        source: "no record tier here: search needs the data directory (embedded, not \
                 --ephemeral) or an archive (cluster mode)"
            .into(),
    }
}

/// The embedded default: everything in this process, nothing else to install. One node
/// only (its broker reaches only this process).
pub struct EmbeddedBackend {
    broker: MemoryBroker,
    ownership: MemoryOwnership<MemoryBroker>,
    store: MemoryStore,
    workspace: MemoryWorkspace,
    jobs: MemoryJobs,
    /// Ephemeral: history lives as long as the process, a new id per start. With a
    /// data directory: the directory's id, kept across restarts.
    history_id: String,
}

impl EmbeddedBackend {
    /// An embedded backend delivering into `hub`.
    pub fn new(hub: Arc<Hub>, config: MemoryStoreConfig) -> Self {
        let broker = MemoryBroker::new(hub);
        let store = MemoryStore::new(config);
        let workspace = MemoryWorkspace::default();
        EmbeddedBackend {
            ownership: MemoryOwnership::new(store.clone(), broker.clone(), workspace.clone()),
            broker,
            store,
            workspace,
            jobs: MemoryJobs::default(),
            history_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// An embedded backend keeping everything in the data directory `data` (created
    /// when missing, read back into memory when not), delivering into `hub`. Reading the
    /// directory back runs on the blocking pool.
    pub async fn open(
        hub: Arc<Hub>,
        config: MemoryStoreConfig,
        data: DataDirConfig,
    ) -> Result<Self, BackendError> {
        let dir = data.dir.display().to_string();
        let opened =
            tokio::task::spawn_blocking(move || chathub_store::sqlite::open(&data, config))
                .await
                .map_err(|e| BackendError::DataDir {
                    dir: dir.clone(),
                    reason: e.to_string(),
                })?
                .map_err(|e| BackendError::DataDir {
                    dir,
                    reason: e.to_string(),
                })?;
        let broker = MemoryBroker::new(hub);
        Ok(EmbeddedBackend {
            ownership: MemoryOwnership::new(
                opened.store.clone(),
                broker.clone(),
                opened.workspace.clone(),
            ),
            broker,
            store: opened.store,
            workspace: opened.workspace,
            jobs: opened.jobs,
            history_id: opened.journal.history_id().to_owned(),
        })
    }

    /// Agents' messages record an offline-webhook job, due `lease` after them.
    pub fn with_webhook_jobs(mut self, lease: Duration) -> Self {
        self.ownership = self
            .ownership
            .with_webhook_jobs(self.jobs.clone(), lease.as_millis() as u64);
        self
    }
}

impl Backend for EmbeddedBackend {
    type Broker = MemoryBroker;
    type Ownership = MemoryOwnership<MemoryBroker>;
    type Store = MemoryStore;
    type Workspace = MemoryWorkspace;
    type Jobs = MemoryJobs;

    fn jobs(&self) -> &MemoryJobs {
        &self.jobs
    }
    fn broker(&self) -> &MemoryBroker {
        &self.broker
    }
    fn workspace(&self) -> &MemoryWorkspace {
        &self.workspace
    }
    fn ownership(&self) -> &Self::Ownership {
        &self.ownership
    }
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    fn history_id(&self) -> String {
        self.history_id.clone()
    }
    async fn current_history_id(&self) -> Option<String> {
        Some(self.history_id.clone())
    }
    fn has_record_tier(&self) -> bool {
        self.store.journal().is_some()
    }
    async fn retention_trim(
        &self,
        tenant: &TenantId,
        before: u64,
    ) -> Result<chathub_store::Trimmed, StoreError> {
        self.store.trim_before(tenant, before).await
    }
    fn is_ready(&self) -> bool {
        self.store.journal().is_none_or(|j| j.is_writing())
    }
    async fn report_cycles(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
        rows: tokio::sync::mpsc::Sender<CycleRow>,
    ) -> Result<(), StoreError> {
        match self.store.journal() {
            Some(journal) => journal.report_cycles(tenant, from, to, rows).await,
            None => Err(no_record_tier()),
        }
    }
    async fn search(
        &self,
        tenant: &TenantId,
        query: SearchQuery,
    ) -> Result<SearchPage, StoreError> {
        match self.store.journal() {
            Some(journal) => journal.search(tenant, query).await,
            None => Err(no_record_tier()),
        }
    }
}

/// Where Redis is.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server: `redis://host:port[/db]`.
    Single(String),
    /// A Redis Cluster, reached through any of these nodes (sharded pub/sub).
    Cluster(Vec<String>),
}

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The server or cluster.
    pub target: RedisTarget,
    /// Prefix of every key and channel (no braces). Default `chathub`.
    pub prefix: String,
    /// Connect and response timeout of every Redis call; past it a command answers
    /// `unavailable`. Default 2 s.
    pub timeout: Duration,
    /// History retention, dedup window and inbox stream length.
    pub ownership: RedisOwnershipConfig,
    /// The PostgreSQL archive (the record tier: deep history, search, reports). Default
    /// none.
    pub archive: Option<chathub_store::postgres::ArchiveConfig>,
}

impl RedisConfig {
    /// Defaults for one server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            target: RedisTarget::Single(url.into()),
            prefix: "chathub".to_owned(),
            timeout: Duration::from_millis(crate::config::defaults::REDIS_TIMEOUT_MS),
            ownership: RedisOwnershipConfig::default(),
            archive: None,
        }
    }

    /// Defaults for a Redis Cluster reached through `urls`.
    pub fn cluster(urls: Vec<String>) -> Self {
        RedisConfig {
            target: RedisTarget::Cluster(urls),
            ..RedisConfig::new("")
        }
    }
}

/// Why a backend could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The data directory could not be opened (in use by another process, unreadable,
    /// or holding data that does not decode).
    #[error("cannot open the data directory {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: String,
        /// Why.
        reason: String,
    },
    /// The archive is unreachable, or its schema could not be brought up to date.
    #[error("cannot open the archive: {reason}")]
    Archive {
        /// Why.
        reason: String,
    },
    /// Redis is unreachable or refused the connection.
    #[error("cannot connect to redis at {url}: {reason}")]
    Redis {
        /// The URL(s).
        url: String,
        /// Why.
        reason: String,
    },
    /// The Redis server is older than chathub needs.
    #[error(
        "redis at {url} is version {found}; chathub needs Redis 7.0 or later (functions, SET NX GET)"
    )]
    RedisTooOld {
        /// The URL(s).
        url: String,
        /// The version the server reports.
        found: String,
    },
}

/// The oldest Redis major version chathub runs on: the apply step is a function library
/// (`FCALL`, 7.0) and idempotency keys use `SET NX GET` (7.0).
const MIN_REDIS_MAJOR: u32 = 7;

/// The `redis_version` an `INFO server` answer reports.
fn redis_version(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
}

/// Refuses to start on a server older than [`MIN_REDIS_MAJOR`]: without the check every
/// command would fail with "unknown command" once serving.
async fn check_redis_version<C: ConnectionLike>(
    conn: &mut C,
    url: &str,
) -> Result<(), BackendError> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(|e| BackendError::Redis {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let found = redis_version(&info).unwrap_or("unknown");
    if supported(found) {
        Ok(())
    } else {
        Err(BackendError::RedisTooOld {
            url: url.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// Whether a server reporting `version` can run chathub.
fn supported(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= MIN_REDIS_MAJOR)
}

/// Cluster mode: state, history and queue in Redis, events through Redis pub/sub, so any
/// number of stateless nodes serve the same conversations. `C` is the command
/// connection: a `ConnectionManager` for one server, a `ClusterConnection` for a cluster.
pub struct RedisBackend<C> {
    broker: RedisBroker<C>,
    ownership: RedisOwnership<C>,
    store: RedisStore<C>,
    workspace: RedisWorkspace<C>,
    jobs: RedisJobs<C>,
    ready: Arc<AtomicBool>,
    /// The dataset's history id as last read (see [`Backend::history_id`]).
    history_id: Arc<std::sync::RwLock<String>>,
    history_id_key: String,
    conn: C,
    /// The record tier, when configured.
    archive: Option<Archive>,
}

/// Connects to the configured archive (and migrates its schema), if any.
async fn open_archive(config: &RedisConfig) -> Result<Option<Archive>, BackendError> {
    let Some(archive) = &config.archive else {
        return Ok(None);
    };
    Archive::connect(archive)
        .await
        .map(Some)
        .map_err(|e| BackendError::Archive {
            reason: e.to_string(),
        })
}

impl RedisBackend<ConnectionManager> {
    /// Connects to one server (one command connection, one pub/sub connection) and starts
    /// watching its health for `/readyz`. Deliveries go into `hub`.
    pub async fn connect(
        config: RedisConfig,
        url: &str,
        hub: Arc<Hub>,
        tasks: &Tasks,
    ) -> Result<Self, BackendError> {
        let error = |e: &dyn std::fmt::Display| BackendError::Redis {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let archive = open_archive(&config).await?;
        let client = redis::Client::open(url).map_err(|e| error(&e))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = client
            .get_connection_manager_with_config(manager)
            .await
            .map_err(|e| error(&e))?;
        check_redis_version(&mut conn, url).await?;
        let broker = RedisBroker::connect(
            url,
            conn.clone(),
            &config.prefix,
            hub,
            config.timeout,
            tasks,
        )
        .await
        .map_err(|e| error(&e))?;
        Ok(RedisBackend::assemble(conn, broker, config, archive, tasks).await)
    }
}

impl RedisBackend<ClusterConnection> {
    /// Connects to a Redis Cluster through any of `urls`; sharded pub/sub.
    pub async fn connect_cluster(
        mut config: RedisConfig,
        urls: &[String],
        hub: Arc<Hub>,
        tasks: &Tasks,
    ) -> Result<Self, BackendError> {
        let error = |e: &dyn std::fmt::Display| BackendError::Redis {
            url: urls.join(","),
            reason: e.to_string(),
        };
        let archive = open_archive(&config).await?;
        let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(config.timeout)
            .response_timeout(config.timeout)
            .retries(2)
            .build()
            .map_err(|e| error(&e))?;
        let conn = client.get_async_connection().await.map_err(|e| error(&e))?;
        // Asked of the first master on its own (a cluster connection sends INFO to every
        // node and answers with a map); the masters of one cluster run one version.
        if let Some(first) = urls.first() {
            let mut one = redis::Client::open(first.as_str())
                .map_err(|e| error(&e))?
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| error(&e))?;
            check_redis_version(&mut one, first).await?;
        }
        let broker =
            RedisBroker::connect_cluster(urls, conn.clone(), &config.prefix, hub, config.timeout)
                .await
                .map_err(|e| error(&e))?;
        config.ownership.cluster = true;
        Ok(RedisBackend::assemble(conn, broker, config, archive, tasks).await)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisBackend<C> {
    async fn assemble(
        conn: C,
        broker: RedisBroker<C>,
        mut config: RedisConfig,
        archive: Option<Archive>,
        tasks: &Tasks,
    ) -> Self {
        config.ownership.archive = archive.clone();
        let keys = RedisKeys::new(&config.prefix);
        let ready = Arc::new(AtomicBool::new(true));
        let history_id_key = format!("{}:history-id", config.prefix);
        let first = read_history_id(conn.clone(), &history_id_key)
            .await
            .unwrap_or_default();
        let history_id = Arc::new(std::sync::RwLock::new(first));
        tasks.spawn(watch_health(
            conn.clone(),
            ready.clone(),
            config.timeout,
            history_id.clone(),
            history_id_key.clone(),
        ));
        let ownership = RedisOwnership::new(conn.clone(), keys.clone(), config.ownership)
            .with_tasks(tasks.clone());
        // Follow-ups a dead node left (the cluster queue's second step, archive copies).
        ownership
            .start_sweeper(uuid::Uuid::new_v4().simple().to_string())
            .await;
        let store = match &archive {
            Some(archive) => {
                RedisStore::new(conn.clone(), keys.clone()).with_archive(archive.clone())
            }
            None => RedisStore::new(conn.clone(), keys.clone()),
        };
        RedisBackend {
            broker,
            archive,
            ownership,
            store,
            workspace: RedisWorkspace::new(conn.clone(), keys.clone()),
            jobs: RedisJobs::new(conn.clone(), keys),
            ready,
            history_id,
            history_id_key,
            conn,
        }
    }
}

/// Pings Redis every second; `/readyz` reports not ready while it does not answer.
/// The dataset's history id: created by the first node that finds none (`SET NX`), so a
/// flushed or restarted-empty Redis gets a new one and every node converges on it.
async fn read_history_id<C: ConnectionLike + Send>(mut conn: C, key: &str) -> Option<String> {
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    let previous: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(&fresh)
        .arg("NX")
        .arg("GET")
        .query_async(&mut conn)
        .await
        .ok()?;
    Some(previous.unwrap_or(fresh))
}

async fn watch_health<C: ConnectionLike + Clone + Send>(
    mut conn: C,
    ready: Arc<AtomicBool>,
    timeout: Duration,
    history_id: Arc<std::sync::RwLock<String>>,
    history_id_key: String,
) {
    let ping = redis::cmd("PING");
    loop {
        let ping = ping.query_async::<String>(&mut conn);
        let ok = matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)));
        if ok {
            let read = read_history_id(conn.clone(), &history_id_key);
            if let Ok(Some(id)) = tokio::time::timeout(timeout, read).await
                && let Ok(mut current) = history_id.write()
                && *current != id
            {
                if !current.is_empty() {
                    tracing::warn!("redis holds another history now (flushed or restarted empty)");
                }
                *current = id;
            }
        }
        if ready.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!("redis reachable again");
            } else {
                ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "health_check")
                    .increment(1);
                tracing::warn!("redis unreachable: not ready");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Backend for RedisBackend<C> {
    type Broker = RedisBroker<C>;
    type Ownership = RedisOwnership<C>;
    type Store = RedisStore<C>;
    type Workspace = RedisWorkspace<C>;
    type Jobs = RedisJobs<C>;

    fn jobs(&self) -> &Self::Jobs {
        &self.jobs
    }
    fn broker(&self) -> &Self::Broker {
        &self.broker
    }
    fn workspace(&self) -> &Self::Workspace {
        &self.workspace
    }
    fn ownership(&self) -> &Self::Ownership {
        &self.ownership
    }
    fn store(&self) -> &Self::Store {
        &self.store
    }
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.broker.is_healthy()
    }
    fn pubsub_stats(&self) -> Option<&chathub_broker::RedisBrokerStats> {
        Some(self.broker.stats())
    }
    fn history_id(&self) -> String {
        self.history_id
            .read()
            .map(|id| id.clone())
            .unwrap_or_default()
    }
    fn has_record_tier(&self) -> bool {
        self.archive.is_some()
    }
    async fn retention_trim(
        &self,
        tenant: &TenantId,
        before: u64,
    ) -> Result<chathub_store::Trimmed, StoreError> {
        self.store.trim_before(tenant, before).await
    }
    async fn retention_lease(&self, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store
            .retention_lease(node, ttl.as_millis() as u64)
            .await
    }
    async fn release_lease(&self, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store.release_lease(node, ttl.as_millis() as u64).await
    }
    fn archive_degraded(&self) -> Option<bool> {
        self.ownership.archive_healthy().map(|healthy| !healthy)
    }
    async fn search(
        &self,
        tenant: &TenantId,
        query: SearchQuery,
    ) -> Result<SearchPage, StoreError> {
        match &self.archive {
            Some(archive) => archive.search(tenant, query).await,
            None => Err(no_record_tier()),
        }
    }
    async fn search_config(
        &self,
        tenant: &TenantId,
    ) -> Result<chathub_protocol::SearchConfig, StoreError> {
        match &self.archive {
            Some(archive) => Ok(chathub_protocol::SearchConfig {
                config: archive.search_config(tenant).await?,
                configurable: true,
            }),
            None => Err(no_record_tier()),
        }
    }
    async fn set_search_config(
        &self,
        tenant: &TenantId,
        config: Option<String>,
    ) -> Result<chathub_protocol::SearchConfig, StoreError> {
        match &self.archive {
            Some(archive) => Ok(chathub_protocol::SearchConfig {
                config: archive.set_search_config(tenant, config.as_deref()).await?,
                configurable: true,
            }),
            None => Err(no_record_tier()),
        }
    }
    async fn report_cycles(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
        rows: tokio::sync::mpsc::Sender<CycleRow>,
    ) -> Result<(), StoreError> {
        match &self.archive {
            Some(archive) => archive.report_cycles(tenant, from, to, rows).await,
            None => Err(no_record_tier()),
        }
    }
    async fn current_history_id(&self) -> Option<String> {
        let id = read_history_id(self.conn.clone(), &self.history_id_key).await?;
        if let Ok(mut cached) = self.history_id.write() {
            cached.clone_from(&id);
        }
        Some(id)
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn the_servers_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(redis_version(info), Some("7.0.15"));
        assert_eq!(redis_version("# Server\r\n"), None);
    }

    #[test]
    fn servers_before_7_are_refused() {
        assert!(supported("7.0.15"));
        assert!(supported("7.4.1"));
        assert!(supported("8.0.2"));
        assert!(!supported("6.2.14"));
        assert!(!supported("5.0.7"));
        assert!(!supported("unknown"));
    }
}
