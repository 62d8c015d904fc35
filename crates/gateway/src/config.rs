//! Typed settings of a gateway node. Parsing flags, environment and files happens in the
//! binary; here every field states its default and trade-off.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything a gateway node needs to know.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// WebSocket listen address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// HTTP side (`/healthz`, `/readyz`, `/metrics`); `None` disables it. Default
    /// `127.0.0.1:8081`.
    pub http: Option<SocketAddr>,
    /// Token verification.
    pub auth: AuthConfig,
    /// Per-connection limits.
    pub limits: LimitsConfig,
    /// Keepalive: the server pings every `ping_interval`; a client silent for
    /// `ping_interval + ping_timeout` is closed with 4000. Defaults 20 s and 20 s.
    pub ping_interval: Duration,
    /// See `ping_interval`.
    pub ping_timeout: Duration,
    /// A write to a socket that does not complete within this (the client stopped
    /// reading and the TCP buffers are full) closes it as a slow consumer. Default 10 s.
    pub write_timeout: Duration,
    /// A client must finish the WebSocket handshake within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// On shutdown, sessions get the 1001 close and this long to go. Default 5 s.
    pub shutdown_grace: Duration,
    /// An active conversation whose owner has had no live session for this long is
    /// flagged `owner_absent` to other agents. Default 2 min.
    pub owner_absent_after: Duration,
    /// How long the attachment links of an end user's export work. Default 24 h (the
    /// export is read later than a thread's link is clicked).
    pub export_link_ttl: Duration,
    /// Offline delivery webhook; `None` disables it.
    pub webhook: Option<WebhookConfig>,
    /// Data to load at start, whose people the console offers a one-click sign-in (the
    /// binary's `--demo`). Default none.
    pub seed: Option<std::sync::Arc<crate::seed::Seed>>,
    /// Browser origins allowed to connect (`https://console.example.com`); a handshake
    /// with another `Origin` header gets HTTP 403. Empty: any origin. Requests without
    /// an `Origin` header (apps, servers) are not affected.
    pub allowed_origins: Vec<String>,
    /// The WebSocket URL the web console and demo client connect to, as browsers see it
    /// (`wss://chat.example.com/` behind a proxy). `None`: the page's host name with the
    /// WebSocket listen port. Default `None`.
    pub public_ws_url: Option<String>,
    /// TLS on the WebSocket port (`wss://`), for nodes exposed directly; `None`: plain
    /// (put a TLS-terminating proxy in front). Default `None`.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Attachments: where files live, where uploads are staged, how long links last.
    /// `None`: uploads are refused (`unavailable`). Default `None` (the binary keeps
    /// them in `<data-dir>/attachments` on the embedded default).
    pub attachments: Option<chathub_attachments::AttachmentsConfig>,
    /// The HTTP side's base URL as clients see it (`https://chat.example.com`), for
    /// upload and download links. `None`: `http://` and the HTTP port's bound address.
    /// Default `None`.
    pub public_http_url: Option<String>,
    /// The attachment scanner hook: every stored file stays `pending` (only its sender
    /// may open it) until the scanner answers `clean`; `blocked` files are never served.
    /// `None`: files are `clean` once they pass the built-in checks. Default `None`.
    pub attachment_scanner: Option<ScannerConfig>,
    /// The retention sweep (tenants' `retention_days`).
    pub retention: RetentionConfig,
}

/// The retention sweep: how often it runs and how long a retention day is.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// How often a node sweeps (one node of a cluster at a time, under a lease).
    /// Default 1 h: nothing stays more than this past its tenant's policy.
    pub sweep_every: Duration,
    /// The length of one of the policy's days. Default 24 h; only tests and demos
    /// shorten it (a policy of 1 day then lasts this long).
    pub day: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            sweep_every: Duration::from_secs(defaults::RETENTION_SWEEP_SECS),
            day: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The attachment scanner hook (see `crate::scanner`).
#[derive(Clone)]
pub struct ScannerConfig {
    /// `http://host:port/path`: each file to check is POSTed here.
    pub url: String,
    /// HMAC-SHA256 key of the `X-Chathub-Signature` header.
    pub secret: String,
    /// Timeout of one POST (the scanner may fetch and scan the file within it).
    /// Default 60 s.
    pub timeout: Duration,
    /// Attempts per sweep before the file waits for the next one (exponential backoff
    /// from 500 ms, at most 30 s). Default 6.
    pub max_attempts: u32,
    /// A scan left undone this long (its node died, the scanner was down) is taken up by
    /// any node's sweep. Default 60 s.
    pub retry_after: Duration,
}

impl ScannerConfig {
    /// The defaults around `url` and `secret`.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> ScannerConfig {
        ScannerConfig {
            url: url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(60),
            max_attempts: 6,
            retry_after: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for ScannerConfig {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Every default of the node's settings, written once: the `Default` impls and the
/// binary's flags both use these.
pub mod defaults {
    pub use chathub_store::defaults::{
        ARCHIVE_POOL_SIZE, DEDUP_WINDOW_SECS, HISTORY_MAX_LEN, INBOX_MAX_LEN, SWEEP_BACKSTOP_SECS,
        SWEEP_GRACE_MS, SWEEP_LEASE_MS,
    };

    /// How often the retention sweep runs, in seconds.
    pub const RETENTION_SWEEP_SECS: u64 = 60 * 60;
    /// Timeout of every Redis call, in ms.
    pub const REDIS_TIMEOUT_MS: u64 = 2000;
    /// Largest incoming WebSocket message, in bytes.
    pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
    /// Longest message text, in bytes.
    pub const MAX_TEXT_BYTES: usize = 4096;
    /// Longest `search` query, in bytes.
    pub const MAX_SEARCH_QUERY_BYTES: usize = chathub_store::search::MAX_QUERY_BYTES;
    /// Days the audit log keeps an admin action.
    pub const AUDIT_RETENTION_DAYS: u32 = 400;
    /// Most days the audit log may keep an action (ten years).
    pub const MAX_AUDIT_RETENTION_DAYS: u32 = 3650;
    /// Default page of `history` / `list`.
    pub const DEFAULT_PAGE: usize = 50;
    /// Largest page of `history` / `list`.
    pub const MAX_PAGE: usize = 200;
    /// Outbound queue per socket, in frames.
    pub const OUTBOX_FRAMES: usize = 1024;
    /// Outbound queue per socket, in bytes.
    pub const OUTBOX_BYTES: usize = 1024 * 1024;
    /// Conversations one socket may follow.
    pub const MAX_SUBSCRIPTIONS: usize = 1000;
    /// Handshakes in progress per client address.
    pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 64;
    /// Open connections on the HTTP port.
    pub const MAX_HTTP_CONNECTIONS: usize = 512;
    /// Open HTTP connections per client address.
    pub const MAX_HTTP_CONNECTIONS_PER_ADDRESS: usize = 32;
    /// Header and idle timeout of an HTTP connection, in seconds.
    pub const HTTP_HEADER_TIMEOUT_SECS: u64 = 10;
    /// Open sockets per node.
    pub const MAX_CONNECTIONS: usize = 100_000;
    /// Open sockets per person on a node.
    pub const MAX_SOCKETS_PER_SUBJECT: usize = 20;
    /// Handshakes in progress per node.
    pub const MAX_HANDSHAKES: usize = 1024;
    /// WebSocket read buffer per socket.
    pub const READ_BUFFER_BYTES: usize = 256;
    /// Requests per second per socket on average.
    pub const RATE_PER_SEC: u32 = 100;
    /// Requests per socket in a burst.
    pub const RATE_BURST: u32 = 500;
    /// Requests per second per bot socket on average (a bot answers a whole tenant).
    pub const BOT_RATE_PER_SEC: u32 = 2_000;
    /// Requests per bot socket in a burst.
    pub const BOT_RATE_BURST: u32 = 10_000;
    /// Outbound queue per bot socket, in frames (a bot follows a whole tenant's queue).
    pub const BOT_OUTBOX_FRAMES: usize = 16_384;
    /// Outbound queue per bot socket, in bytes.
    pub const BOT_OUTBOX_BYTES: usize = 16 * 1024 * 1024;
    /// `rate_limited` answers within 10 s before the socket is closed.
    pub const ABUSE_LIMIT: u32 = 200;
    /// Server ping interval, in seconds.
    pub const PING_INTERVAL_SECS: u64 = 20;
    /// Silence tolerated after a ping, in seconds.
    pub const PING_TIMEOUT_SECS: u64 = 20;
    /// A socket write stuck this long closes the socket, in seconds.
    pub const WRITE_TIMEOUT_SECS: u64 = 10;
    /// Time to finish the WebSocket handshake, in seconds.
    pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
    /// Grace period of a shutdown, in seconds.
    pub const SHUTDOWN_GRACE_SECS: u64 = 5;
    /// An owner without a live session this long is flagged `owner_absent`, in seconds.
    pub const OWNER_ABSENT_SECS: u64 = 120;
    /// Seconds the attachment links of an export work.
    pub const EXPORT_LINK_TTL_SECS: u64 = 24 * 60 * 60;
    /// Attempts per webhook delivery.
    pub const WEBHOOK_MAX_ATTEMPTS: u32 = 6;
    /// Webhook deliveries waiting.
    pub const WEBHOOK_QUEUE: usize = 10_000;
    /// Lease of a webhook job held by the node that applied its message, in seconds.
    pub const WEBHOOK_LEASE_SECS: u64 = 30;
}

/// The offline delivery webhook: when an agent's message reaches an end user with no live
/// socket, the hub POSTs it here so the brand's push service can notify the phone.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `http://host:port/path` (plain HTTP; put a TLS-terminating proxy in front for
    /// HTTPS endpoints).
    pub url: String,
    /// HMAC-SHA256 key: the body's signature is sent as `X-Chathub-Signature:
    /// sha256=<hex>`.
    pub secret: String,
    /// Attempts per delivery (exponential backoff from 200 ms, at most 30 s). Default 6.
    pub max_attempts: u32,
    /// Deliveries waiting to be sent; more are dropped (and counted). Default 10 000.
    pub queue: usize,
    /// Timeout of one POST. Default 5 s.
    pub timeout: Duration,
    /// How long the node that applied an agent's message has its webhook job before any
    /// node's sweeper may take it (after that node died, or while it still retries: the
    /// receiver then deduplicates by `X-Chathub-Delivery`). Default 30 s.
    pub lease: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("queue", &self.queue)
            .finish()
    }
}

impl WebhookConfig {
    /// Defaults for `url` and `secret`.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            max_attempts: defaults::WEBHOOK_MAX_ATTEMPTS,
            queue: defaults::WEBHOOK_QUEUE,
            timeout: Duration::from_secs(5),
            lease: Duration::from_secs(defaults::WEBHOOK_LEASE_SECS),
        }
    }
}

/// Token verification settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// HS256 secret shared with whoever mints tokens (and the one `chathub token` and the
    /// demo sign with). Default: the public development secret [`DEV_SECRET`] — set your
    /// own in production.
    pub secret: String,
    /// More accepted verification secrets: during a key rotation, the previous key (or
    /// the next one) beside `secret`. Default none.
    pub verify_secrets: Vec<String>,
    /// A file of accepted verification secrets, one per line (`#` comments), re-read
    /// every [`KEY_RELOAD`]: removing a key there closes the sessions whose token it
    /// signed (1008) at their next re-validation. Default none.
    pub secrets_file: Option<std::path::PathBuf>,
    /// Clock skew tolerated on `exp`, in seconds. Default 30.
    pub leeway_secs: u64,
}

/// How often a node re-reads [`AuthConfig::secrets_file`].
pub const KEY_RELOAD: Duration = Duration::from_secs(5);

/// The shortest token secret a node accepts, in bytes: HS256 with a short secret is
/// guessable offline from any token. An empty secret is refused with it.
pub const MIN_SECRET_BYTES: usize = 16;

/// The development secret used when none is configured. Public: never use it in
/// production.
pub const DEV_SECRET: &str = "chathub-dev-secret-change-me";

impl AuthConfig {
    /// Refuses a signing or verification secret shorter than [`MIN_SECRET_BYTES`] (an
    /// empty one included), naming which.
    pub fn check(&self) -> Result<(), String> {
        let short = |s: &str| s.len() < MIN_SECRET_BYTES;
        if short(&self.secret) {
            return Err(format!(
                "the token secret is {} bytes; it must be at least {MIN_SECRET_BYTES}",
                self.secret.len()
            ));
        }
        if let Some(n) = self.verify_secrets.iter().position(|s| short(s)) {
            return Err(format!(
                "verification secret #{} is {} bytes; each must be at least {MIN_SECRET_BYTES}",
                n + 1,
                self.verify_secrets[n].len()
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &"<redacted>")
            .field("verify_secrets", &self.verify_secrets.len())
            .field("secrets_file", &self.secrets_file)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: DEV_SECRET.to_owned(),
            verify_secrets: Vec::new(),
            secrets_file: None,
            leeway_secs: 30,
        }
    }
}

/// Per-connection limits. Every one is announced to clients in `welcome`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Largest incoming WebSocket message (and frame), in bytes; larger closes with 1009.
    /// Default 64 KiB: chat messages are small, and this bounds per-socket read memory.
    pub max_message_bytes: usize,
    /// Longest message text, in bytes; longer gets `too_large`. Default 4 096.
    pub max_text_bytes: usize,
    /// Longest `search` query, in bytes; longer gets `too_large`. Default 256.
    pub max_search_query_bytes: usize,
    /// How long the audit log keeps an admin action, in days. Default 400 (a year and a
    /// month: a yearly review finds last year's actions).
    pub audit_retention_days: u32,
    /// Default page size of `history` and `list`. Default 50.
    pub default_page: usize,
    /// Largest page size of `history` and `list`. Default 200.
    pub max_page: usize,
    /// Outbound queue per socket, in frames. Default 1 024.
    pub outbox_frames: usize,
    /// Outbound queue per socket, in bytes; past it the socket is closed with 4001
    /// ("slow consumer") and the client resumes from history. Default 1 MiB.
    pub outbox_bytes: usize,
    /// Conversations one socket may subscribe to. Default 1 000.
    pub max_subscriptions: usize,
    /// Open sockets per node; more are refused at accept. Default 100 000.
    pub max_connections: usize,
    /// Open sockets per person (tenant + subject) on a node; more get HTTP 429 at the
    /// handshake. Default 20.
    pub max_sockets_per_subject: usize,
    /// Handshakes in progress per node; more connections are dropped at accept, so
    /// half-open sockets (slowloris) cannot hold the node. Default 1 024.
    pub max_handshakes: usize,
    /// Handshakes in progress per client address, so one address cannot take every
    /// handshake slot from the others. Default 64 (a NAT of many phones stays well
    /// under it: handshakes last milliseconds).
    pub max_handshakes_per_address: usize,
    /// Addresses of the balancers in front of the node: their connections carry many
    /// clients, so the per-address shares do not apply to them. Default none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The trusted proxies speak the PROXY protocol (v1) on the WebSocket port: each of
    /// their connections starts with the client's address, which then takes its share of
    /// the handshake slots like a direct client's. Default off.
    pub proxy_protocol: bool,
    /// Open connections on the HTTP port (console, admin API, health, metrics); more are
    /// closed at accept. Default 512: the HTTP side never takes the WebSocket port's
    /// file descriptors.
    pub max_http_connections: usize,
    /// Open HTTP connections per client address. Default 32.
    pub max_http_connections_per_address: usize,
    /// An HTTP connection must send a request's headers within this, and is closed after
    /// this long idle between requests. Default 10 s.
    pub http_header_timeout: std::time::Duration,
    /// WebSocket read buffer per socket (allocated up front, kept for the socket's life).
    /// Default 256 B: a chat frame fits, larger ones take a few more reads, and every
    /// idle socket saves what it does not hold (4 KiB → 1 KiB: 13.4 → 10.4 KiB RSS per
    /// idle socket; 1 KiB → 256 B: −0.8 KiB).
    pub read_buffer_bytes: usize,
    /// WebSocket write buffer target per socket. Default 8 KiB.
    pub write_buffer_bytes: usize,
    /// Requests per second a socket may make on average (token bucket); past the
    /// budget requests get `rate_limited`. Default 100.
    pub rate_per_sec: u32,
    /// Requests a socket may make in a burst (an agent's console subscribing to its
    /// conversations at start). Default 500.
    pub rate_burst: u32,
    /// [`Self::rate_per_sec`] for a bot's sockets: one bot answers first for a whole
    /// tenant, so it writes as much as many agents together. Default 2,000.
    pub bot_rate_per_sec: u32,
    /// [`Self::rate_burst`] for a bot's sockets (a wave of conversations opened at
    /// once). Default 10,000.
    pub bot_rate_burst: u32,
    /// [`Self::outbox_frames`] for a bot's sockets: one bot is told every change of a
    /// whole tenant's queue, a wave of hundreds of conversations at once. Default 16,384.
    pub bot_outbox_frames: usize,
    /// [`Self::outbox_bytes`] for a bot's sockets. Default 16 MiB.
    pub bot_outbox_bytes: usize,
    /// `rate_limited` answers within 10 s after which the socket is closed with 4101
    /// (policy violation). Default 200.
    pub abuse_limit: u32,
}

impl LimitsConfig {
    /// The request budget of a socket of `role`: (per second, burst), each at least 1.
    pub fn rate_of(&self, role: chathub_domain::Role) -> (u32, u32) {
        let (rate, burst) = match role {
            chathub_domain::Role::Bot => (self.bot_rate_per_sec, self.bot_rate_burst),
            _ => (self.rate_per_sec, self.rate_burst),
        };
        (rate.max(1), burst.max(1))
    }

    /// The outbound queue of a socket of `role`: (frames, bytes).
    pub fn outbox_of(&self, role: chathub_domain::Role) -> (usize, usize) {
        match role {
            chathub_domain::Role::Bot => (self.bot_outbox_frames, self.bot_outbox_bytes),
            _ => (self.outbox_frames, self.outbox_bytes),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            max_text_bytes: defaults::MAX_TEXT_BYTES,
            max_search_query_bytes: defaults::MAX_SEARCH_QUERY_BYTES,
            audit_retention_days: defaults::AUDIT_RETENTION_DAYS,
            default_page: defaults::DEFAULT_PAGE,
            max_page: defaults::MAX_PAGE,
            outbox_frames: defaults::OUTBOX_FRAMES,
            outbox_bytes: defaults::OUTBOX_BYTES,
            max_subscriptions: defaults::MAX_SUBSCRIPTIONS,
            max_connections: defaults::MAX_CONNECTIONS,
            max_sockets_per_subject: defaults::MAX_SOCKETS_PER_SUBJECT,
            max_handshakes: defaults::MAX_HANDSHAKES,
            max_handshakes_per_address: defaults::MAX_HANDSHAKES_PER_ADDRESS,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            max_http_connections: defaults::MAX_HTTP_CONNECTIONS,
            max_http_connections_per_address: defaults::MAX_HTTP_CONNECTIONS_PER_ADDRESS,
            http_header_timeout: std::time::Duration::from_secs(defaults::HTTP_HEADER_TIMEOUT_SECS),
            read_buffer_bytes: defaults::READ_BUFFER_BYTES,
            write_buffer_bytes: 8 * 1024,
            rate_per_sec: defaults::RATE_PER_SEC,
            rate_burst: defaults::RATE_BURST,
            bot_rate_per_sec: defaults::BOT_RATE_PER_SEC,
            bot_rate_burst: defaults::BOT_RATE_BURST,
            bot_outbox_frames: defaults::BOT_OUTBOX_FRAMES,
            bot_outbox_bytes: defaults::BOT_OUTBOX_BYTES,
            abuse_limit: defaults::ABUSE_LIMIT,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            ping_interval: Duration::from_secs(defaults::PING_INTERVAL_SECS),
            ping_timeout: Duration::from_secs(defaults::PING_TIMEOUT_SECS),
            write_timeout: Duration::from_secs(defaults::WRITE_TIMEOUT_SECS),
            handshake_timeout: Duration::from_secs(defaults::HANDSHAKE_TIMEOUT_SECS),
            shutdown_grace: Duration::from_secs(defaults::SHUTDOWN_GRACE_SECS),
            owner_absent_after: Duration::from_secs(defaults::OWNER_ABSENT_SECS),
            export_link_ttl: Duration::from_secs(defaults::EXPORT_LINK_TTL_SECS),
            webhook: None,
            seed: None,
            allowed_origins: Vec::new(),
            public_ws_url: None,
            tls: None,
            attachments: None,
            public_http_url: None,
            attachment_scanner: None,
            retention: RetentionConfig::default(),
        }
    }
}
