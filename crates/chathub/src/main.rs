//! `chathub`: run a gateway node (`serve`) or mint a token (`token`).
//!
//! Flags, environment variables, the config file and defaults are parsed here only; the
//! libraries take typed configuration.

use anyhow::{Context, Result, bail};
use chathub_attachments::{AttachmentsConfig, ObjectsSpec};
use chathub_domain::Role;
use chathub_gateway::config::ScannerConfig;
use chathub_gateway::config::defaults;
use chathub_gateway::{ArchiveConfig, FaultPoint, SweepConfig};
use chathub_gateway::{
    AuthConfig, Authenticator, DEV_SECRET, GatewayConfig, LimitsConfig, MemoryStoreConfig,
    RedisConfig, RedisOwnershipConfig, RedisTarget, TlsConfig, WebhookConfig,
};
use chathub_gateway::{DataDirConfig, SyncMode};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod config_file;

/// chathub: a real-time WebSocket chat hub for customer care.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a gateway node (embedded backend: nothing else needed).
    Serve(Box<ServeArgs>),
    /// Mint a signed token; it is printed alone on the last line.
    Token(TokenArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file of settings, keyed by these flags' names (`max-text-bytes = 4096`).
    /// Flags and environment variables win over it.
    #[arg(long, env = "CHATHUB_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// WebSocket listen address.
    #[arg(long, env = "CHATHUB_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// HTTP listen address (/console/, /demo/, /healthz, /readyz, /metrics, /admin/v1/).
    #[arg(long, env = "CHATHUB_HTTP", default_value = "127.0.0.1:8081")]
    http: SocketAddr,
    /// TLS on the WebSocket port: the certificate chain (PEM), for nodes exposed
    /// directly; with --tls-key. Without them the port is plain (put a TLS proxy in front).
    #[arg(long, env = "CHATHUB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, env = "CHATHUB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Do not serve the HTTP side.
    #[arg(long, env = "CHATHUB_NO_HTTP")]
    no_http: bool,
    /// Runtime worker threads (0: one per CPU core).
    #[arg(long, env = "CHATHUB_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// HS256 token secret (default: the public development secret).
    #[arg(long, env = "CHATHUB_SECRET", default_value = DEV_SECRET, hide_default_value = true)]
    secret: String,
    /// More accepted token secrets, comma separated (key rotation: the previous or next
    /// key beside --secret).
    #[arg(
        long,
        env = "CHATHUB_VERIFY_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    verify_secrets: Vec<String>,
    /// A file of accepted token secrets, one per line, re-read every 5 s: removing a key
    /// closes the sessions it signed (1008) at their next re-validation.
    #[arg(long, env = "CHATHUB_SECRETS_FILE")]
    secrets_file: Option<std::path::PathBuf>,
    /// Largest incoming WebSocket message, bytes (larger: close 1009).
    #[arg(long, env = "CHATHUB_MAX_MESSAGE_BYTES", default_value_t = defaults::MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Longest message text, bytes (longer: `too_large`).
    #[arg(long, env = "CHATHUB_MAX_TEXT_BYTES", default_value_t = defaults::MAX_TEXT_BYTES)]
    max_text_bytes: usize,
    /// Longest `search` query, bytes (longer: `too_large`).
    #[arg(long, env = "CHATHUB_MAX_SEARCH_QUERY_BYTES", default_value_t = defaults::MAX_SEARCH_QUERY_BYTES)]
    max_search_query_bytes: usize,
    /// Days the audit log keeps each admin action (1 to 3650).
    #[arg(long, env = "CHATHUB_AUDIT_RETENTION_DAYS", default_value_t = defaults::AUDIT_RETENTION_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=defaults::MAX_AUDIT_RETENTION_DAYS as i64))]
    audit_retention_days: u32,
    /// WebSocket read buffer per socket, bytes, allocated up front (larger frames take
    /// more reads).
    #[arg(long, env = "CHATHUB_READ_BUFFER_BYTES", default_value_t = defaults::READ_BUFFER_BYTES)]
    read_buffer_bytes: usize,
    /// Outbound queue per socket, bytes (past it: close 4001, slow consumer).
    #[arg(long, env = "CHATHUB_OUTBOX_BYTES", default_value_t = defaults::OUTBOX_BYTES)]
    outbox_bytes: usize,
    /// Outbound queue per socket, frames.
    #[arg(long, env = "CHATHUB_OUTBOX_FRAMES", default_value_t = defaults::OUTBOX_FRAMES)]
    outbox_frames: usize,
    /// Conversations one socket may subscribe to.
    #[arg(long, env = "CHATHUB_MAX_SUBSCRIPTIONS", default_value_t = defaults::MAX_SUBSCRIPTIONS)]
    max_subscriptions: usize,
    /// Open sockets per node.
    #[arg(long, env = "CHATHUB_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Requests per second a socket may make on average (more: `rate_limited`).
    #[arg(long, env = "CHATHUB_RATE_PER_SEC", default_value_t = defaults::RATE_PER_SEC)]
    rate_per_sec: u32,
    /// Requests a socket may make in a burst.
    #[arg(long, env = "CHATHUB_RATE_BURST", default_value_t = defaults::RATE_BURST)]
    rate_burst: u32,
    /// Requests per second a bot's socket may make on average (one bot answers a whole
    /// tenant).
    #[arg(long, env = "CHATHUB_BOT_RATE_PER_SEC", default_value_t = defaults::BOT_RATE_PER_SEC)]
    bot_rate_per_sec: u32,
    /// Requests a bot's socket may make in a burst.
    #[arg(long, env = "CHATHUB_BOT_RATE_BURST", default_value_t = defaults::BOT_RATE_BURST)]
    bot_rate_burst: u32,
    /// Outbound queue per bot socket, frames (one bot follows a whole tenant's queue).
    #[arg(long, env = "CHATHUB_BOT_OUTBOX_FRAMES", default_value_t = defaults::BOT_OUTBOX_FRAMES)]
    bot_outbox_frames: usize,
    /// Outbound queue per bot socket, bytes (past it: close 4001, slow consumer).
    #[arg(long, env = "CHATHUB_BOT_OUTBOX_BYTES", default_value_t = defaults::BOT_OUTBOX_BYTES)]
    bot_outbox_bytes: usize,
    /// `rate_limited` answers within 10 s after which a socket is closed with 4101.
    #[arg(long, env = "CHATHUB_ABUSE_LIMIT", default_value_t = defaults::ABUSE_LIMIT)]
    abuse_limit: u32,
    /// Browser origins allowed to connect, comma separated (others: HTTP 403); empty:
    /// any. Clients that send no Origin header are not affected.
    #[arg(long, env = "CHATHUB_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// The WebSocket URL the web console and demo client connect to, as browsers see it
    /// (`wss://chat.example.com/` behind a proxy). Default: the page's host name with the
    /// --listen port.
    #[arg(long, env = "CHATHUB_PUBLIC_WS_URL")]
    public_ws_url: Option<String>,
    /// The HTTP side's URL as clients see it (`https://chat.example.com`), the base of
    /// attachment upload and download links. Default: `http://` and the --http address.
    #[arg(long, env = "CHATHUB_PUBLIC_HTTP_URL")]
    public_http_url: Option<String>,
    /// Where attachments live: a directory, `s3://<bucket>` (with the --s3-* flags or the
    /// usual `AWS_*` variables), `memory`, or `off`. Default: `<data-dir>/attachments` on
    /// the embedded default, memory with --ephemeral, `off` in cluster mode (give a
    /// store every node shares).
    #[arg(long, env = "CHATHUB_ATTACHMENTS")]
    attachments: Option<String>,
    /// Where this node stages uploads until they are complete. Default:
    /// `<data-dir>/uploads` on the embedded default, else a directory under the
    /// system's temporary directory.
    #[arg(long, env = "CHATHUB_ATTACHMENTS_STAGING_DIR")]
    attachments_staging_dir: Option<std::path::PathBuf>,
    /// S3-compatible endpoint (`http://127.0.0.1:9000`); default AWS.
    #[arg(long, env = "CHATHUB_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// On S3: clients upload straight to the bucket with presigned multipart parts (the
    /// node never carries the bytes; browsers need the bucket's CORS to allow `PUT` and
    /// expose `ETag`). `false`: uploads go through the node's HTTP port.
    #[arg(long, env = "CHATHUB_S3_DIRECT_UPLOADS", default_value_t = true, action = clap::ArgAction::Set)]
    s3_direct_uploads: bool,
    /// S3 region. Default `us-east-1`.
    #[arg(long, env = "CHATHUB_S3_REGION")]
    s3_region: Option<String>,
    /// S3 access key id (default: `AWS_ACCESS_KEY_ID`).
    #[arg(long, env = "CHATHUB_S3_ACCESS_KEY_ID", hide_env_values = true)]
    s3_access_key_id: Option<String>,
    /// S3 secret access key (default: `AWS_SECRET_ACCESS_KEY`).
    #[arg(long, env = "CHATHUB_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// How long an upload URL works, in seconds (a client asks again, with the same
    /// `client_msg_id`, to resume later).
    #[arg(long, env = "CHATHUB_UPLOAD_URL_TTL_SECS", default_value_t = 900)]
    upload_url_ttl_secs: u64,
    /// How long a download link works, in seconds.
    #[arg(long, env = "CHATHUB_ATTACHMENT_LINK_TTL_SECS", default_value_t = 300)]
    attachment_link_ttl_secs: u64,
    /// Attachment scanner hook (`http://host:port/path`): every file is POSTed there and
    /// stays `pending` until it answers `{"verdict": "clean"}` (or `"blocked"`).
    #[arg(long, env = "CHATHUB_ATTACHMENT_SCANNER")]
    attachment_scanner: Option<String>,
    /// HMAC-SHA256 key of the scanner requests' `X-Chathub-Signature`.
    #[arg(
        long,
        env = "CHATHUB_ATTACHMENT_SCANNER_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    attachment_scanner_secret: String,
    /// A scan left undone this long (its node died, the scanner was down) is taken up
    /// by any node, in seconds.
    #[arg(long, env = "CHATHUB_ATTACHMENT_SCAN_RETRY_SECS", default_value_t = 60)]
    attachment_scan_retry_secs: u64,
    /// Open sockets per person (tenant + subject) on a node; more get HTTP 429.
    #[arg(long, env = "CHATHUB_MAX_SOCKETS_PER_SUBJECT", default_value_t = defaults::MAX_SOCKETS_PER_SUBJECT)]
    max_sockets_per_subject: usize,
    /// Handshakes in progress per node; more connections are dropped at accept.
    #[arg(long, env = "CHATHUB_MAX_HANDSHAKES", default_value_t = defaults::MAX_HANDSHAKES)]
    max_handshakes: usize,
    /// Handshakes in progress per client address (one address cannot take every slot).
    #[arg(long, env = "CHATHUB_MAX_HANDSHAKES_PER_ADDRESS", default_value_t = defaults::MAX_HANDSHAKES_PER_ADDRESS)]
    max_handshakes_per_address: usize,
    /// Balancers in front of the node (comma separated IPs): exempt from the
    /// per-address handshake share, since each carries many clients.
    #[arg(long, env = "CHATHUB_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// The trusted proxies speak the PROXY protocol v1 on the WebSocket port (haproxy
    /// `send-proxy`): the client's address then takes its per-address share.
    #[arg(long, env = "CHATHUB_PROXY_PROTOCOL")]
    proxy_protocol: bool,
    /// Open connections on the HTTP port; more are closed at accept.
    #[arg(long, env = "CHATHUB_MAX_HTTP_CONNECTIONS", default_value_t = defaults::MAX_HTTP_CONNECTIONS)]
    max_http_connections: usize,
    /// Open HTTP connections per client address.
    #[arg(long, env = "CHATHUB_MAX_HTTP_CONNECTIONS_PER_ADDRESS", default_value_t = defaults::MAX_HTTP_CONNECTIONS_PER_ADDRESS)]
    max_http_connections_per_address: usize,
    /// An HTTP connection must send its request headers within this, and is closed
    /// after this long idle, seconds.
    #[arg(long, env = "CHATHUB_HTTP_HEADER_TIMEOUT_SECS", default_value_t = defaults::HTTP_HEADER_TIMEOUT_SECS)]
    http_header_timeout_secs: u64,
    /// A connection must complete the WebSocket handshake within this, seconds
    /// (half-open sockets are closed after it).
    #[arg(long, env = "CHATHUB_HANDSHAKE_TIMEOUT_SECS", default_value_t = defaults::HANDSHAKE_TIMEOUT_SECS)]
    handshake_timeout_secs: u64,
    /// Default page size of `history` and `list`.
    #[arg(long, env = "CHATHUB_DEFAULT_PAGE", default_value_t = defaults::DEFAULT_PAGE)]
    default_page: usize,
    /// Largest page size of `history` and `list`.
    #[arg(long, env = "CHATHUB_MAX_PAGE", default_value_t = defaults::MAX_PAGE)]
    max_page: usize,
    /// Server ping interval, seconds.
    #[arg(long, env = "CHATHUB_PING_INTERVAL_SECS", default_value_t = defaults::PING_INTERVAL_SECS)]
    ping_interval_secs: u64,
    /// Extra silence tolerated after a ping before closing with 4000, seconds.
    #[arg(long, env = "CHATHUB_PING_TIMEOUT_SECS", default_value_t = defaults::PING_TIMEOUT_SECS)]
    ping_timeout_secs: u64,
    /// A socket write stuck this long (client not reading) closes it with 4001, seconds.
    #[arg(long, env = "CHATHUB_WRITE_TIMEOUT_SECS", default_value_t = defaults::WRITE_TIMEOUT_SECS)]
    write_timeout_secs: u64,
    /// Grace period for sessions to close on shutdown, seconds.
    #[arg(long, env = "CHATHUB_SHUTDOWN_GRACE_SECS", default_value_t = defaults::SHUTDOWN_GRACE_SECS)]
    shutdown_grace_secs: u64,
    /// Embedded backend: the data directory, where everything is kept (SQLite; created
    /// when missing). A restart, even after a crash, keeps every acknowledged change.
    #[arg(
        long,
        env = "CHATHUB_DATA_DIR",
        default_value = "chathub-data",
        conflicts_with = "ephemeral"
    )]
    data_dir: std::path::PathBuf,
    /// Embedded backend: keep nothing on disk (everything is lost when the process
    /// ends), for tests and benchmarks.
    #[arg(long, env = "CHATHUB_EPHEMERAL")]
    ephemeral: bool,
    /// Embedded backend: `full` fsyncs every commit group (an acknowledged change
    /// survives a power loss), `normal` leaves it to the OS (it survives a crash of the
    /// process, not of the machine).
    #[arg(long, env = "CHATHUB_DATA_SYNC", default_value = "full", value_parser = ["full", "normal"])]
    data_sync: String,
    /// Events kept per conversation in memory (embedded backend; with a data directory
    /// older ones are read from it) or in Redis.
    #[arg(long, env = "CHATHUB_HISTORY_MAX_LEN", default_value_t = defaults::HISTORY_MAX_LEN)]
    history_max_len: usize,
    /// Queue changes kept per tenant for consoles catching up with `inbox`.
    #[arg(long, env = "CHATHUB_INBOX_MAX_LEN", default_value_t = defaults::INBOX_MAX_LEN)]
    inbox_max_len: usize,
    /// How long a `client_msg_id` is remembered for deduplication, seconds.
    #[arg(long, env = "CHATHUB_DEDUP_WINDOW_SECS", default_value_t = defaults::DEDUP_WINDOW_SECS)]
    dedup_window_secs: u64,
    /// Cluster mode: Redis URL (`redis://HOST:PORT`). Without it the node runs on the
    /// embedded backend.
    #[arg(long, env = "CHATHUB_REDIS", conflicts_with = "redis_cluster")]
    redis: Option<String>,
    /// Cluster mode on a Redis Cluster: some of its nodes, comma separated
    /// (`redis://HOST:PORT,redis://HOST:PORT`). Uses sharded pub/sub.
    #[arg(long, env = "CHATHUB_REDIS_CLUSTER", value_delimiter = ',')]
    redis_cluster: Option<Vec<String>>,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "CHATHUB_REDIS_PREFIX", default_value = "chathub")]
    redis_prefix: String,
    /// Timeout of every Redis call, milliseconds (past it: `unavailable`).
    #[arg(long, env = "CHATHUB_REDIS_TIMEOUT_MS", default_value_t = defaults::REDIS_TIMEOUT_MS)]
    redis_timeout_ms: u64,
    /// Events older than this are dropped from history, seconds (0: keep by length only).
    #[arg(long, env = "CHATHUB_HISTORY_MAX_AGE_SECS", default_value_t = 0)]
    history_max_age_secs: u64,
    /// Cluster mode: the PostgreSQL archive, every event's durable copy (deep history,
    /// search, transcripts, reports): `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`.
    /// Redis then keeps a hot window (--history-max-len, --history-max-age-secs) and
    /// never drops an event the archive lacks.
    #[arg(long, env = "CHATHUB_ARCHIVE", hide_env_values = true)]
    archive: Option<String>,
    /// Connections to the archive per node, at most.
    #[arg(long, env = "CHATHUB_ARCHIVE_POOL_SIZE", default_value_t = defaults::ARCHIVE_POOL_SIZE)]
    archive_pool_size: usize,
    /// Cluster mode: how long a command's follow-up (the queue's second step on a Redis
    /// Cluster, the archive copy) may stand undone before other nodes redo it, ms.
    #[arg(long, env = "CHATHUB_SWEEP_GRACE_MS", default_value_t = defaults::SWEEP_GRACE_MS)]
    sweep_grace_ms: u64,
    /// Cluster mode: a node silent this long is dead (its sweep leases go to others and
    /// every node sweeps for what it left), ms.
    #[arg(long, env = "CHATHUB_SWEEP_LEASE_MS", default_value_t = defaults::SWEEP_LEASE_MS)]
    sweep_lease_ms: u64,
    /// Cluster mode: how often a node sweeps its share when nothing asked for it, seconds.
    #[arg(long, env = "CHATHUB_SWEEP_BACKSTOP_SECS", default_value_t = defaults::SWEEP_BACKSTOP_SECS)]
    sweep_backstop_secs: u64,
    /// Agents whose owner has had no live session this long are flagged `owner_absent`,
    /// seconds.
    #[arg(long, env = "CHATHUB_OWNER_ABSENT_SECS", default_value_t = defaults::OWNER_ABSENT_SECS)]
    owner_absent_secs: u64,
    /// How long the attachment links of an end user's export work, seconds (1 to 7 days).
    #[arg(long, env = "CHATHUB_EXPORT_LINK_TTL_SECS", default_value_t = defaults::EXPORT_LINK_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60 * 60))]
    export_link_ttl_secs: u64,
    /// How often the retention sweep runs, seconds (tenants' `retention_days`; one node
    /// of a cluster sweeps at a time).
    #[arg(long, env = "CHATHUB_RETENTION_SWEEP_SECS", default_value_t = defaults::RETENTION_SWEEP_SECS,
          value_parser = clap::value_parser!(u64).range(1..=24 * 60 * 60))]
    retention_sweep_secs: u64,
    /// The length of a retention day, seconds (default a day; for tests and demos only:
    /// a policy of N days then keeps N times this).
    #[arg(long, env = "CHATHUB_RETENTION_DAY_SECS", default_value_t = 24 * 60 * 60,
          value_parser = clap::value_parser!(u64).range(1..=24 * 60 * 60), hide = true)]
    retention_day_secs: u64,
    /// Offline delivery webhook URL (http://…): agents' messages for end users with no
    /// live socket are POSTed there, HMAC-signed.
    #[arg(long, env = "CHATHUB_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature.
    #[arg(
        long,
        env = "CHATHUB_WEBHOOK_SECRET",
        default_value = "",
        hide_default_value = true
    )]
    webhook_secret: String,
    /// Attempts per webhook delivery (exponential backoff).
    #[arg(long, env = "CHATHUB_WEBHOOK_MAX_ATTEMPTS", default_value_t = defaults::WEBHOOK_MAX_ATTEMPTS)]
    webhook_max_attempts: u32,
    /// Webhook deliveries waiting to be sent; more are dropped (and counted).
    #[arg(long, env = "CHATHUB_WEBHOOK_QUEUE", default_value_t = defaults::WEBHOOK_QUEUE)]
    webhook_queue: usize,
    /// How long the node that applied an agent's message has its webhook job before
    /// another node may take it (after a node death), seconds.
    #[arg(long, env = "CHATHUB_WEBHOOK_LEASE_SECS", default_value_t = defaults::WEBHOOK_LEASE_SECS)]
    webhook_lease_secs: u64,
    /// Load the demo tenant `demo` (agents, admin, end users, catalogue, history, canned
    /// responses) and print ready-to-use tokens.
    #[arg(long, env = "CHATHUB_DEMO")]
    demo: bool,
    /// Log format.
    #[arg(long, env = "CHATHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct TokenArgs {
    /// Tenant (brand) id.
    #[arg(long)]
    tenant: String,
    /// Role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Subject: the end user's or agent's id.
    #[arg(long)]
    subject: String,
    /// Validity: seconds, or with a unit: 90s, 15m, 24h, 7d.
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// Privileges, comma separated (default: the role's defaults).
    #[arg(long, value_delimiter = ',')]
    privileges: Option<Vec<String>>,
    /// Display name (fills `{agent_name}` in canned responses).
    #[arg(long)]
    name: Option<String>,
    /// HS256 secret (default: the public development secret).
    #[arg(long, env = "CHATHUB_SECRET", default_value = DEV_SECRET, hide_default_value = true)]
    secret: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// `end-user`, or `end_user` as the protocol and the token claim spell it.
    #[value(alias = "end_user")]
    EndUser,
    Agent,
    Admin,
    /// The tenant's bot (answers first, hands off; see the `bot` setting).
    Bot,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::EndUser => Role::EndUser,
            RoleArg::Agent => Role::Agent,
            RoleArg::Admin => Role::Admin,
            RoleArg::Bot => Role::Bot,
        }
    }
}

/// jemalloc rather than glibc's allocator: a session allocates and frees small, short-lived
/// buffers for every frame from two threads, where glibc spent ~11 % of the gateways' CPU
/// (`malloc_consolidate` sweeps included). Measured on the fanout benchmark: ~10 % less
/// CPU per delivery and a lower tail, with the same memory per idle socket and connect
/// rate (mimalloc, also tried, made connects 3× slower).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<()> {
    let cli = Cli::parse_from(config_file::expand::<Cli>(std::env::args_os().collect())?);
    match cli.command {
        Cmd::Token(args) => token(args),
        Cmd::Serve(args) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.enable_all();
            if args.worker_threads > 0 {
                runtime.worker_threads(args.worker_threads);
            }
            let runtime = runtime.build().context("starting the runtime")?;
            runtime.block_on(serve(*args))
        }
    }
}

fn token(args: TokenArgs) -> Result<()> {
    let ttl = parse_duration(&args.ttl)?;
    let config = AuthConfig {
        secret: args.secret,
        ..AuthConfig::default()
    };
    // A token no node would accept is not minted.
    if let Err(e) = config.check() {
        bail!("{e}");
    }
    let auth = Authenticator::new(&config);
    let token = auth.mint_named(
        &args.tenant,
        &args.subject,
        args.role.into(),
        args.privileges,
        ttl.as_secs(),
        args.name,
    )?;
    println!("{token}");
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    if args.secret == DEV_SECRET {
        tracing::warn!(
            "using the public development token secret; set --secret / CHATHUB_SECRET in production"
        );
    }
    let attachments = attachments_config(&args)?;
    let config = GatewayConfig {
        attachments,
        public_http_url: args.public_http_url.clone(),
        attachment_scanner: args.attachment_scanner.clone().map(|url| ScannerConfig {
            retry_after: Duration::from_secs(args.attachment_scan_retry_secs.max(1)),
            ..ScannerConfig::new(url, args.attachment_scanner_secret.clone())
        }),
        listen: args.listen,
        http: (!args.no_http).then_some(args.http),
        auth: AuthConfig {
            secret: args.secret,
            verify_secrets: args.verify_secrets.clone(),
            secrets_file: args.secrets_file.clone(),
            ..AuthConfig::default()
        },
        limits: LimitsConfig {
            max_message_bytes: args.max_message_bytes,
            max_text_bytes: args.max_text_bytes,
            max_search_query_bytes: args.max_search_query_bytes,
            audit_retention_days: args.audit_retention_days,
            read_buffer_bytes: args.read_buffer_bytes.max(256),
            default_page: args.default_page,
            max_page: args.max_page,
            outbox_frames: args.outbox_frames,
            outbox_bytes: args.outbox_bytes,
            max_subscriptions: args.max_subscriptions,
            max_connections: args.max_connections,
            max_sockets_per_subject: args.max_sockets_per_subject.max(1),
            max_handshakes: args.max_handshakes.max(1),
            max_handshakes_per_address: args.max_handshakes_per_address.max(1),
            trusted_proxies: args.trusted_proxies.clone(),
            proxy_protocol: args.proxy_protocol,
            max_http_connections: args.max_http_connections.max(1),
            max_http_connections_per_address: args.max_http_connections_per_address.max(1),
            http_header_timeout: Duration::from_secs(args.http_header_timeout_secs.max(1)),
            rate_per_sec: args.rate_per_sec.max(1),
            rate_burst: args.rate_burst.max(1),
            bot_rate_per_sec: args.bot_rate_per_sec.max(1),
            bot_rate_burst: args.bot_rate_burst.max(1),
            bot_outbox_frames: args.bot_outbox_frames,
            bot_outbox_bytes: args.bot_outbox_bytes,
            abuse_limit: args.abuse_limit.max(1),
            ..LimitsConfig::default()
        },
        ping_interval: Duration::from_secs(args.ping_interval_secs.max(1)),
        ping_timeout: Duration::from_secs(args.ping_timeout_secs.max(1)),
        write_timeout: Duration::from_secs(args.write_timeout_secs.max(1)),
        handshake_timeout: Duration::from_secs(args.handshake_timeout_secs.max(1)),
        owner_absent_after: Duration::from_secs(args.owner_absent_secs),
        export_link_ttl: Duration::from_secs(args.export_link_ttl_secs),
        retention: chathub_gateway::config::RetentionConfig {
            sweep_every: Duration::from_secs(args.retention_sweep_secs),
            day: Duration::from_secs(args.retention_day_secs),
        },
        webhook: args.webhook_url.map(|url| WebhookConfig {
            max_attempts: args.webhook_max_attempts.max(1),
            queue: args.webhook_queue.max(1),
            lease: Duration::from_secs(args.webhook_lease_secs.max(1)),
            ..WebhookConfig::new(url, args.webhook_secret.clone())
        }),
        seed: if args.demo {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Some(std::sync::Arc::new(chathub::demo::seed(now)?))
        } else {
            None
        },
        allowed_origins: args.allowed_origins.clone(),
        public_ws_url: args.public_ws_url.clone(),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    let secret = config.auth.secret.clone();
    let config_seed = config.seed.clone();
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let shutdown = CancellationToken::new();
    if args.archive.is_some() && args.redis.is_none() && args.redis_cluster.is_none() {
        bail!("--archive is for cluster mode: give --redis or --redis-cluster too");
    }
    let target = match (args.redis, args.redis_cluster) {
        (Some(url), _) => Some(RedisTarget::Single(url)),
        (None, Some(urls)) => Some(RedisTarget::Cluster(urls)),
        (None, None) => None,
    };
    // Printed after the listening line (scripts read that line first).
    let mut data_note = None;
    let (running, backend) = match target {
        Some(target) => {
            let redis = RedisConfig {
                target,
                prefix: args.redis_prefix,
                timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
                ownership: RedisOwnershipConfig {
                    history_max_len: args.history_max_len.max(1) as u64,
                    history_max_age_ms: args.history_max_age_secs * 1000,
                    dedup_window_ms: args.dedup_window_secs * 1000,
                    inbox_stream_max_len: args.inbox_max_len.max(1) as u64,
                    sweep: SweepConfig {
                        lease: Duration::from_millis(args.sweep_lease_ms.max(100)),
                        grace: Duration::from_millis(args.sweep_grace_ms),
                        backstop: Duration::from_secs(args.sweep_backstop_secs.max(1)),
                        // A few heartbeats per lease.
                        tick: Duration::from_millis((args.sweep_lease_ms / 4).clamp(25, 500)),
                    },
                    fault: fault_point()?,
                    ..RedisOwnershipConfig::default()
                },
                archive: args.archive.map(|url| ArchiveConfig {
                    pool_size: args.archive_pool_size.max(1),
                    ..ArchiveConfig::new(url)
                }),
            };
            let running = chathub_gateway::start_redis(config, redis, shutdown.clone()).await?;
            (running, "redis")
        }
        None => {
            let store = MemoryStoreConfig {
                history_max_len: args.history_max_len.max(1),
                dedup_window_ms: args.dedup_window_secs * 1000,
                inbox_max_len: args.inbox_max_len.max(1),
            };
            if args.ephemeral {
                let running =
                    chathub_gateway::start_embedded(config, store, shutdown.clone()).await?;
                (running, "embedded-ephemeral")
            } else {
                let mut data = DataDirConfig::new(&args.data_dir);
                data.sync = match args.data_sync.as_str() {
                    "normal" => SyncMode::Normal,
                    _ => SyncMode::Full,
                };
                let dir = std::path::absolute(&args.data_dir).unwrap_or(args.data_dir.clone());
                data_note = Some(format!(
                    "chathub data directory: {} (SQLite)",
                    dir.display()
                ));
                let running = chathub_gateway::start_embedded_with_data(
                    config,
                    store,
                    data,
                    shutdown.clone(),
                )
                .await?;
                (running, "embedded")
            }
        }
    };
    // One parseable line for scripts and tests (port 0 gets its real port here).
    println!(
        "chathub listening ws={scheme}://{} http={} backend={backend}",
        running.ws_addr,
        running
            .http_addr
            .map_or("off".to_owned(), |a| format!("http://{a}"))
    );
    if let Some(note) = data_note {
        println!("{note}");
    }
    if let Some(seed) = &config_seed {
        print_demo_tokens(seed, &secret, running.ws_addr, running.http_addr)?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down: closing sessions with 1001");
    shutdown.cancel();
    running.stopped().await;
    Ok(())
}

/// Where attachments live and are staged, from the flags and the backend's defaults.
fn attachments_config(args: &ServeArgs) -> Result<Option<AttachmentsConfig>> {
    let cluster = args.redis.is_some() || args.redis_cluster.is_some();
    let spec = match args.attachments.as_deref() {
        Some("off") => return Ok(None),
        Some(spec) => ObjectsSpec::parse(spec),
        None if cluster => return Ok(None),
        None if args.ephemeral => ObjectsSpec::Memory,
        None => ObjectsSpec::Directory(args.data_dir.join("attachments")),
    };
    let spec = match spec {
        ObjectsSpec::S3(mut s3) => {
            if s3.bucket.is_empty() {
                bail!("--attachments s3://<bucket>: the bucket is missing");
            }
            s3.endpoint = args.s3_endpoint.clone();
            s3.region = args.s3_region.clone();
            s3.access_key_id = args.s3_access_key_id.clone();
            s3.secret_access_key = args.s3_secret_access_key.clone();
            ObjectsSpec::S3(s3)
        }
        other => other,
    };
    let staging = match &args.attachments_staging_dir {
        Some(dir) => dir.clone(),
        None if !cluster && !args.ephemeral => args.data_dir.join("uploads"),
        None => std::env::temp_dir().join(format!("chathub-uploads-{}", std::process::id())),
    };
    let mut config = AttachmentsConfig::new(spec, staging);
    config.upload_ttl = Duration::from_secs(args.upload_url_ttl_secs.max(1));
    config.link_ttl = Duration::from_secs(args.attachment_link_ttl_secs.max(1));
    config.direct_uploads = args.s3_direct_uploads;
    Ok(Some(config))
}

/// Prints a token per demo person, ready to paste into a client, and where the console
/// and the demo client are.
fn print_demo_tokens(
    seed: &chathub_gateway::seed::Seed,
    secret: &str,
    ws: std::net::SocketAddr,
    http: Option<std::net::SocketAddr>,
) -> Result<()> {
    let auth = Authenticator::new(&AuthConfig {
        secret: secret.to_owned(),
        ..AuthConfig::default()
    });
    println!(
        "demo tenant `{}` loaded; tokens (valid 7 days):",
        seed.tenant
    );
    for person in seed.sign_ins(&auth)? {
        println!("token {} {} {}", person.role, person.id, person.token);
    }
    println!("connect: ws://{ws}/?token=<token>");
    if let Some(http) = http {
        println!("agent console: http://{http}/console/ (one-click demo sign-in)");
        println!("end-user demo client: http://{http}/demo/");
        println!("admin api: http://{http}/admin/v1/ (Authorization: Bearer <admin token>)");
    }
    Ok(())
}

/// The fault to inject, named by `CHATHUB_FAULT_POINT` (tests that kill a node at the
/// worst moment; never set in production).
fn fault_point() -> Result<Option<FaultPoint>> {
    match std::env::var("CHATHUB_FAULT_POINT").ok().as_deref() {
        None | Some("") => Ok(None),
        Some("abort-after-step") => Ok(Some(FaultPoint::AbortAfterStep)),
        Some(other) => bail!("unknown CHATHUB_FAULT_POINT {other:?} (known: abort-after-step)"),
    }
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Parses `3600`, `90s`, `15m`, `24h` or `7d`.
fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("invalid duration unit in {s:?}: use s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }

    /// The example config in deploy/ stays in step with the flags.
    #[test]
    fn the_example_config_file_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/chathub.example.toml"
        );
        let argv = ["chathub", "serve", "--config", path].map(std::ffi::OsString::from);
        let expanded = config_file::expand::<Cli>(argv.to_vec()).expect("expands");
        let cli = Cli::try_parse_from(expanded).expect("every key is a valid flag");
        let Cmd::Serve(serve) = cli.command else {
            panic!("serve expected");
        };
        assert_eq!(serve.allowed_origins, ["https://console.example.com"]);
        assert_eq!(
            serve.public_ws_url.as_deref(),
            Some("wss://chat.example.com/")
        );
        assert!(matches!(serve.log_format, LogFormat::Json));
    }
}
