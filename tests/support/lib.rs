//! Test support: start gateway nodes (in-process on port 0, or as real `chathub`
//! processes), mint tokens, connect clients, wait for frames, speak raw HTTP.
//!
//! Every test gets its own node on a free port, so tests run in parallel.

#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

pub mod linearizability;

use chathub_client::{Client, ClientError, ClientOptions};
use chathub_domain::{ConversationId, Event, Role};
use chathub_gateway::{
    AuthConfig, Authenticator, GatewayConfig, MemoryStoreConfig, RedisConfig, RunningGateway,
};
use chathub_protocol::{Codec, Op, Reply, ServerFrame};
pub use chathub_testkit::{RedisCluster, RedisOptions, RedisServer};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen promptly. Generous: CI
/// machines are shared and slow; tests never assert on timing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A gateway node running in this process on the embedded backend.
pub struct TestHub {
    pub ws_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub auth: Authenticator,
    shutdown: CancellationToken,
    running: Option<RunningGateway>,
    /// The Redis server or cluster of a cluster-mode node, if this hub started one.
    pub redis: Option<Box<dyn std::any::Any + Send>>,
}

/// A config listening on free loopback ports.
pub fn test_config() -> GatewayConfig {
    GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        http: Some("127.0.0.1:0".parse().unwrap()),
        shutdown_grace: Duration::from_secs(2),
        ..GatewayConfig::default()
    }
}

impl TestHub {
    /// A node with the default settings.
    pub async fn start() -> TestHub {
        TestHub::start_with(test_config(), MemoryStoreConfig::default()).await
    }

    /// A node with `config` (its addresses should be port 0).
    pub async fn start_with(config: GatewayConfig, store: MemoryStoreConfig) -> TestHub {
        let auth = Authenticator::new(&config.auth);
        let shutdown = CancellationToken::new();
        let running = chathub_gateway::start_embedded(config, store, shutdown.clone())
            .await
            .expect("gateway starts");
        TestHub {
            ws_addr: running.ws_addr,
            http_addr: running.http_addr.expect("http enabled"),
            auth,
            shutdown,
            running: Some(running),
            redis: None,
        }
    }

    /// A cluster-mode node on its own fresh redis-server.
    pub async fn start_redis() -> TestHub {
        let server = RedisServer::start();
        let mut hub = TestHub::start_on_redis(test_config(), RedisConfig::new(server.url())).await;
        hub.redis = Some(Box::new(server));
        hub
    }

    /// A node with the demo tenant loaded, embedded (`redis: false`) or on its own Redis.
    pub async fn start_demo(redis: bool) -> TestHub {
        let config = GatewayConfig {
            seed: Some(demo_seed()),
            ..test_config()
        };
        if redis {
            let server = RedisServer::start();
            let mut hub = TestHub::start_on_redis(config, RedisConfig::new(server.url())).await;
            hub.redis = Some(Box::new(server));
            hub
        } else {
            TestHub::start_with(config, MemoryStoreConfig::default()).await
        }
    }

    /// A node with the demo tenant loaded, on its own fresh 3-master Redis Cluster.
    pub async fn start_demo_cluster() -> TestHub {
        let config = GatewayConfig {
            seed: Some(demo_seed()),
            ..test_config()
        };
        let cluster = RedisCluster::start(3);
        let mut hub = TestHub::start_on_redis(config, RedisConfig::cluster(cluster.urls())).await;
        hub.redis = Some(Box::new(cluster));
        hub
    }

    /// A client of the demo tenant, with the display name `name`.
    pub async fn demo_client(&self, role: Role, subject: &str, name: &str) -> Client {
        let token = self
            .auth
            .mint_named("demo", subject, role, None, 3600, Some(name.to_owned()))
            .unwrap();
        Client::connect(&self.url(), &token).await.unwrap()
    }

    /// A cluster-mode node on its own fresh 3-master Redis Cluster.
    pub async fn start_redis_cluster() -> TestHub {
        let cluster = RedisCluster::start(3);
        let mut hub =
            TestHub::start_on_redis(test_config(), RedisConfig::cluster(cluster.urls())).await;
        hub.redis = Some(Box::new(cluster));
        hub
    }

    /// A cluster-mode node with `config` on the Redis of `redis`.
    pub async fn start_on_redis(config: GatewayConfig, redis: RedisConfig) -> TestHub {
        let auth = Authenticator::new(&config.auth);
        let shutdown = CancellationToken::new();
        let running = chathub_gateway::start_redis(config, redis, shutdown.clone())
            .await
            .expect("gateway starts on redis");
        TestHub {
            ws_addr: running.ws_addr,
            http_addr: running.http_addr.expect("http enabled"),
            auth,
            shutdown,
            running: Some(running),
            redis: None,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    pub fn token(&self, tenant: &str, role: Role, subject: &str) -> String {
        self.auth.mint(tenant, subject, role, None, 3600).unwrap()
    }

    pub fn token_with(
        &self,
        tenant: &str,
        role: Role,
        subject: &str,
        privileges: &[&str],
    ) -> String {
        let privileges = privileges.iter().map(|p| p.to_string()).collect();
        self.auth
            .mint(tenant, subject, role, Some(privileges), 3600)
            .unwrap()
    }

    /// A MessagePack client in tenant `acme`.
    pub async fn connect(&self, role: Role, subject: &str) -> Client {
        self.connect_in("acme", role, subject).await
    }

    pub async fn connect_in(&self, tenant: &str, role: Role, subject: &str) -> Client {
        Client::connect(&self.url(), &self.token(tenant, role, subject))
            .await
            .unwrap()
    }

    /// A JSON-subprotocol client in tenant `acme`.
    pub async fn connect_json(&self, role: Role, subject: &str) -> Client {
        let options = ClientOptions {
            codec: Codec::Json,
            ..ClientOptions::default()
        };
        Client::connect_with(&self.url(), &self.token("acme", role, subject), options)
            .await
            .unwrap()
    }

    /// Tasks of the node running now (sessions, listeners, background work).
    pub fn tasks_running(&self) -> usize {
        self.running.as_ref().map_or(0, |r| r.tasks_running())
    }

    /// Stops the node and waits until every session was closed and every task of the
    /// node ended; returns how many were left (0 unless one was stuck).
    pub async fn stop(mut self) -> usize {
        self.shutdown.cancel();
        match self.running.take() {
            Some(r) => r.stopped().await.tasks_left,
            None => 0,
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The binary's demo tenant, as a seed for an in-process node.
pub fn demo_seed() -> Arc<chathub_gateway::seed::Seed> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Arc::new(chathub::demo::seed(now).unwrap())
}

/// The texts of the text messages among `events`, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            chathub_domain::EventBody::Message {
                content: chathub_domain::MessageContent::Text { text },
                ..
            } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// `nodes` nodes over a 3-master Redis Cluster with the PostgreSQL archive and files on
/// S3 (bucket `chathub-files`), each with `extra` arguments too; returned with what
/// they run on (keep it alive as long as the nodes).
pub fn spawn_cluster_with_archive_and_s3(
    nodes: usize,
    extra: &[&str],
) -> (Vec<HubProcess>, Vec<Box<dyn std::any::Any>>) {
    let cluster = chathub_testkit::RedisCluster::start(3);
    let postgres = chathub_testkit::PostgresServer::start();
    let s3 = chathub_testkit::S3Server::start();
    s3.create_bucket("chathub-files");
    let urls = cluster.urls().join(",");
    let (pg, endpoint) = (postgres.url(), s3.endpoint());
    let mut args = vec![
        "--redis-cluster",
        urls.as_str(),
        "--redis-timeout-ms",
        "2000",
        "--archive",
        pg.as_str(),
        "--attachments",
        "s3://chathub-files",
        "--s3-endpoint",
        endpoint.as_str(),
        "--s3-access-key-id",
        chathub_testkit::S3_KEY.0,
        "--s3-secret-access-key",
        chathub_testkit::S3_KEY.1,
    ];
    args.extend_from_slice(extra);
    let nodes = (0..nodes).map(|_| HubProcess::spawn(&args)).collect();
    (
        nodes,
        vec![Box::new(cluster), Box::new(postgres), Box::new(s3)],
    )
}

pub fn conv(id: &str) -> ConversationId {
    ConversationId::new(id).unwrap()
}

/// Waits for the first pushed frame matching `pred`, skipping others; panics after
/// [`PATIENCE`].
pub async fn expect_frame(
    client: &mut Client,
    what: &str,
    mut pred: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some(f) if pred(&f) => return f,
            Some(_) => continue,
            None => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits for the event with `seq` on `conversation` and returns it.
pub async fn expect_event(client: &mut Client, conversation: &str, seq: u64) -> Event {
    let f = expect_frame(client, &format!("event {conversation}#{seq}"), |f| {
        matches!(f, ServerFrame::Event(e) if e.conversation.as_str() == conversation && e.event.seq == seq)
    })
    .await;
    match f {
        ServerFrame::Event(e) => e.event,
        _ => unreachable!(),
    }
}

/// Every pushed frame received until none arrives for `quiet`.
pub async fn drain(client: &mut Client, quiet: Duration) -> Vec<ServerFrame> {
    let mut out = Vec::new();
    while let Some(f) = client.next_event_within(quiet).await {
        out.push(f);
    }
    out
}

/// The `seq`s of the conversation events among `frames`, in arrival order.
pub fn event_seqs(frames: &[ServerFrame], conversation: &str) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Event(e) if e.conversation.as_str() == conversation => Some(e.event.seq),
            _ => None,
        })
        .collect()
}

/// The whole retained history of a conversation, read page by page.
/// Asserts that every acknowledged `client_msg_id` is in `history` exactly once.
pub fn assert_each_once(history: &[Event], acked: &[String]) {
    for id in acked {
        let copies = history
            .iter()
            .filter(|e| {
                matches!(&e.body, chathub_domain::EventBody::Message { client_msg_id: Some(x), .. } if x == id)
            })
            .count();
        assert_eq!(copies, 1, "acknowledged {id} is in history exactly once");
    }
}

/// The conversation's state now, as `open` answers it.
pub async fn state_of(client: &Client, conversation: &str) -> chathub_domain::ConversationState {
    match client
        .request(Op::Open {
            conversation: Some(conv(conversation)),
        })
        .await
    {
        Ok(Reply::Open(opened)) => opened.view.state,
        other => panic!("open {conversation}: {other:?}"),
    }
}

/// `agent` takes `user`'s conversation by answering `text` at the epoch it has now;
/// the epoch after the take.
pub async fn take_with(agent: &Client, user: &str, text: &str) -> u64 {
    let epoch = state_of(agent, user).await.epoch;
    agent
        .send_text(Some(&conv(user)), text, Some(epoch), None)
        .await
        .unwrap()
        .epoch
}

pub async fn full_history(client: &Client, conversation: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let reply = client
            .request(Op::History {
                conversation: Some(conv(conversation)),
                before: None,
                after: Some(after),
                limit: Some(200),
            })
            .await
            .unwrap();
        let Reply::History(page) = reply else {
            panic!("unexpected {reply:?}")
        };
        if let Some(last) = page.events.last() {
            after = last.seq;
        }
        events.extend(page.events);
        if !page.has_more {
            return events;
        }
    }
}

/// The first page of the tenant's conversations in `status` (agents).
pub async fn list(client: &Client, status: chathub_domain::Status) -> chathub_protocol::ListPage {
    let op = Op::List {
        status,
        limit: None,
        cursor: None,
    };
    match client.request(op).await.unwrap() {
        Reply::List(page) => page,
        other => panic!("unexpected {other:?}"),
    }
}

/// A plain HTTP/1.1 GET; returns status and body.
/// The sum of the samples on the lines of a `/metrics` body that start with
/// `line_start` (a metric's name and `{` for every label set, or its name and a space for
/// the unlabelled one).
pub fn metric_sum(body: &str, line_start: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// An HTTP/1.1 GET with a bearer token; returns status and body.
pub async fn http_get_as(addr: SocketAddr, token: &str, path: &str) -> (u16, String) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    http_exchange(addr, &request).await
}

/// Nodes under test, and what they run on (kept alive with them).
pub struct Nodes {
    /// The nodes.
    pub nodes: Vec<HubProcess>,
    /// Whether events reach the record tier later than their acknowledgement (the
    /// archive's copy is asynchronous).
    pub archive_lags: bool,
    /// Servers the nodes need (Redis, PostgreSQL, S3), stopped on drop.
    pub keep: Vec<Box<dyn std::any::Any>>,
}

impl Nodes {
    /// One node of the embedded default (its data directory is the record tier, written
    /// with each acknowledgement), started with `flags`.
    pub fn embedded(flags: &[&str]) -> Nodes {
        Nodes {
            nodes: vec![HubProcess::spawn(flags)],
            archive_lags: false,
            keep: Vec::new(),
        }
    }

    /// `n` nodes in cluster mode over a 3-master Redis Cluster, with the PostgreSQL
    /// archive and S3 attachments ([`spawn_cluster_with_archive_and_s3`]), started with
    /// `flags`.
    pub fn cluster_with_archive(n: usize, flags: &[&str]) -> Nodes {
        let (nodes, keep) = spawn_cluster_with_archive_and_s3(n, flags);
        Nodes {
            nodes,
            archive_lags: true,
            keep,
        }
    }

    /// Node `i` (round robin)'s WebSocket URL.
    pub fn ws(&self, i: usize) -> &str {
        &self.nodes[i % self.nodes.len()].ws_url
    }
    /// Node `i` (round robin)'s HTTP address.
    pub fn http(&self, i: usize) -> SocketAddr {
        self.nodes[i % self.nodes.len()].http_addr
    }
}

/// An HTTP/1.1 request with a bearer token and a JSON body (empty for none); returns
/// status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(addr, &request).await
}

/// Sends one request as written and reads the whole answer: status and body.
pub async fn http_exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The payload of a chunked HTTP/1.1 body (streamed responses); panics on a malformed
/// one, and on a body that ends without its last chunk (a transfer cut short).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = rest[size..]
            .strip_prefix("\r\n")
            .expect("a chunk ends with CRLF");
    }
}

/// One POST a webhook receiver got: headers (lower-case names) and body.
pub type Received = (Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request from `s`: its headers (lower-case names) and its body (by
/// `Content-Length`).
pub async fn read_http_request(s: &mut tokio::net::TcpStream) -> Received {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, mut body) = loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break (String::new(), Vec::new());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&buf[..i]).into_owned(),
                buf[i + 4..].to_vec(),
            );
        }
    };
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while body.len() < len {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    (headers, body)
}

/// A tiny HTTP server: answers 500 to the first `fail_first` requests, then 204.
pub async fn webhook_receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (headers, body) = read_http_request(&mut s).await;
            count += 1;
            let status = if count <= fail_first {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            seen.lock().unwrap().push((headers, body));
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, got)
}

pub fn webhook_header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.0.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The `chathub` binary built for this test run.
pub fn chathub_binary() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin = target.join(profile).join("chathub");
    // `cargo test` builds only test targets; build the binary once when it is missing.
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if bin.exists() {
            return;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "chathub"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if profile == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the chathub binary failed");
    });
    assert!(
        bin.exists(),
        "{} is missing after building it",
        bin.display()
    );
    bin
}

/// A `chathub serve` process on free ports; killed on drop. An embedded node keeps its
/// data in a scratch directory of its own (removed on drop) unless `extra` names one.
pub struct HubProcess {
    pub child: Child,
    pub ws_url: String,
    pub http_addr: SocketAddr,
    /// The embedded node's own data directory.
    pub data: Option<chathub_testkit::ScratchDir>,
}

impl HubProcess {
    /// Starts `chathub serve` with `extra` arguments and waits for its listening line.
    pub fn spawn(extra: &[&str]) -> HubProcess {
        HubProcess::spawn_in(Command::new(chathub_binary()), extra)
    }

    /// Like [`HubProcess::spawn`], with environment variables `env` set (a fault point).
    pub fn spawn_with_env(env: &[(&str, &str)], extra: &[&str]) -> HubProcess {
        let mut cmd = Command::new(chathub_binary());
        cmd.envs(env.iter().copied());
        HubProcess::spawn_in(cmd, extra)
    }

    /// Like [`HubProcess::spawn`], with at most `nofile` open files (`prlimit`).
    pub fn spawn_with_nofile(nofile: u32, extra: &[&str]) -> HubProcess {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(chathub_binary());
        HubProcess::spawn_in(cmd, extra)
    }

    fn spawn_in(mut cmd: Command, extra: &[&str]) -> HubProcess {
        let chooses_storage = extra
            .iter()
            .any(|a| ["--redis", "--redis-cluster", "--ephemeral", "--data-dir"].contains(a));
        let data = (!chooses_storage).then(|| chathub_testkit::ScratchDir::new("hub-data"));
        if let Some(dir) = &data {
            cmd.arg("serve").arg("--data-dir").arg(dir.path());
        } else {
            cmd.arg("serve");
        }
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("CHATHUB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chathub starts");
        let stdout = child.stdout.take().unwrap();
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        // The node prints more (its data directory, demo tokens): keep reading so that
        // its stdout never breaks.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        // "chathub listening ws=ws://ADDR http=http://ADDR backend=embedded"
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_owned()
        };
        let ws_url = field("ws=");
        let http_addr = field("http=http://").parse().unwrap();
        HubProcess {
            child,
            ws_url,
            http_addr,
            data,
        }
    }

    /// `chathub serve --redis URL` plus `extra`.
    pub fn spawn_redis(redis_url: &str, extra: &[&str]) -> HubProcess {
        let mut args = vec!["--redis", redis_url, "--redis-timeout-ms", "1000"];
        args.extend_from_slice(extra);
        HubProcess::spawn(&args)
    }

    /// Sends SIGKILL and waits: the node dies without closing anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Freezes the process (SIGSTOP): like a long GC pause or a VM stall.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// The process's resident memory, KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token signed with the development secret (what `chathub serve` uses by default).
pub fn dev_token(tenant: &str, role: Role, subject: &str) -> String {
    Authenticator::new(&AuthConfig::default())
        .mint(tenant, subject, role, None, 3600)
        .unwrap()
}

/// [`dev_token`] with exactly `privileges`.
pub fn dev_token_with(tenant: &str, role: Role, subject: &str, privileges: &[&str]) -> String {
    let privileges = privileges.iter().map(|p| p.to_string()).collect();
    Authenticator::new(&AuthConfig::default())
        .mint(tenant, subject, role, Some(privileges), 3600)
        .unwrap()
}

/// What the gateway processes of a [`ClusterProcesses`] share.
pub enum Backing {
    /// One redis-server.
    Server(RedisServer),
    /// A Redis Cluster.
    Cluster(RedisCluster),
}

/// A redis-server (or Redis Cluster) and `n` gateway processes in cluster mode.
pub struct ClusterProcesses {
    pub backing: Backing,
    pub nodes: Vec<HubProcess>,
}

impl ClusterProcesses {
    pub fn start(n: usize, redis: RedisOptions) -> ClusterProcesses {
        let redis = RedisServer::start_with(redis);
        let nodes = (0..n)
            .map(|_| HubProcess::spawn_redis(&redis.url(), &[]))
            .collect();
        ClusterProcesses {
            backing: Backing::Server(redis),
            nodes,
        }
    }

    /// `n` gateway processes on a fresh 3-master Redis Cluster.
    pub fn start_on_redis_cluster(n: usize) -> ClusterProcesses {
        let cluster = RedisCluster::start(3);
        let urls = cluster.urls().join(",");
        let nodes = (0..n)
            .map(|_| HubProcess::spawn(&["--redis-cluster", &urls, "--redis-timeout-ms", "1000"]))
            .collect();
        ClusterProcesses {
            backing: Backing::Cluster(cluster),
            nodes,
        }
    }

    /// The single redis-server (panics on a Redis Cluster).
    pub fn server(&mut self) -> &mut RedisServer {
        match &mut self.backing {
            Backing::Server(s) => s,
            Backing::Cluster(_) => panic!("this cluster runs on a Redis Cluster"),
        }
    }

    pub fn url(&self, node: usize) -> &str {
        &self.nodes[node].ws_url
    }

    /// A MessagePack client of tenant `acme` on `node`.
    pub async fn connect(&self, node: usize, role: Role, subject: &str) -> Client {
        Client::connect(self.url(node), &dev_token("acme", role, subject))
            .await
            .unwrap()
    }
}

/// Cluster mode with a PostgreSQL archive: a redis-server, PostgreSQL and `n` gateway
/// processes using both (all stopped on drop).
pub struct ArchivedCluster {
    pub nodes: Vec<HubProcess>,
    pub redis: RedisServer,
    pub postgres: chathub_testkit::PostgresServer,
}

impl ArchivedCluster {
    pub fn start(n: usize) -> ArchivedCluster {
        let postgres = chathub_testkit::PostgresServer::start();
        let redis = RedisServer::start();
        let url = postgres.url();
        let nodes = (0..n)
            .map(|_| HubProcess::spawn_redis(&redis.url(), &["--archive", url.as_str()]))
            .collect();
        ArchivedCluster {
            nodes,
            redis,
            postgres,
        }
    }
}

/// Every request type, naming `conversation` where one is named, in an order where each
/// can succeed for a role that may make it (the privileges and isolation tables run them).
pub fn every_request(conversation: &str) -> Vec<(&'static str, Op)> {
    let c = || Some(conv(conversation));
    let send = |text: &str, canned: Option<&str>, engagement: Option<&str>| Op::Send {
        conversation: c(),
        client_msg_id: None,
        text: text.into(),
        canned: canned.map(Into::into),
        engagement: engagement.map(Into::into),
        attachment: None,
        epoch: None,
        visibility: Default::default(),
        handover_note: None,
    };
    vec![
        (
            "subscribe",
            Op::Subscribe {
                conversation: c(),
                since: Some(0),
                history_id: None,
            },
        ),
        ("open", Op::Open { conversation: c() }),
        (
            "history",
            Op::History {
                conversation: c(),
                before: None,
                after: None,
                limit: None,
            },
        ),
        (
            "typing",
            Op::Typing {
                conversation: c(),
                typing: true,
            },
        ),
        (
            "read",
            Op::Read {
                conversation: c(),
                seq: 1,
            },
        ),
        (
            "list",
            Op::List {
                status: chathub_domain::Status::Unanswered,
                limit: None,
                cursor: None,
            },
        ),
        ("inbox", Op::Inbox { since: None }),
        ("send text (take)", send("hello", None, None)),
        ("send canned", send("", Some("hello"), None)),
        ("send engagement", send("", None, Some("spring-10"))),
        (
            "engagement_history",
            Op::EngagementHistory {
                conversation: Some(conv(conversation)),
                engagement_type: None,
                before: None,
                limit: None,
            },
        ),
        (
            "engagement_activity",
            Op::EngagementActivity {
                conversation: Some(conv(conversation)),
                per_type: None,
            },
        ),
        (
            "engagements_available",
            Op::EngagementsAvailable {
                conversation: Some(conv(conversation)),
                engagement_type: None,
            },
        ),
        (
            "profile",
            Op::Profile {
                conversation: Some(conv(conversation)),
            },
        ),
        (
            "redeem",
            Op::Redeem {
                engagement: "bonus-50".into(),
            },
        ),
        ("canned_list", Op::CannedList { query: None }),
        (
            "canned_upsert",
            Op::CannedUpsert {
                canned: Some("x".into()),
                shortcut: "/x".into(),
                text: "x".into(),
            },
        ),
        ("canned_delete", Op::CannedDelete { canned: "x".into() }),
        (
            "disable",
            Op::Disable {
                conversation: Some(conv(conversation)),
            },
        ),
        (
            "enable",
            Op::Enable {
                conversation: Some(conv(conversation)),
            },
        ),
        ("disable_tenant", Op::DisableTenant {}),
        ("enable_tenant", Op::EnableTenant {}),
        (
            "presence",
            Op::Presence {
                presence: chathub_domain::Presence::Away,
            },
        ),
        ("agents", Op::Agents {}),
        (
            "stats",
            Op::Stats {
                from: None,
                to: None,
            },
        ),
        (
            "transcript",
            Op::Transcript {
                conversation: c(),
                format: None,
            },
        ),
        ("search", search_op("coupon")),
        (
            "finish",
            Op::Finish {
                conversation: Some(conv(conversation)),
                epoch: Some(0),
            },
        ),
        (
            "attachment_upload",
            Op::AttachmentUpload {
                conversation: c(),
                name: "receipt.pdf".into(),
                size: 10,
                content_type: None,
                client_msg_id: None,
            },
        ),
        (
            "attachment_link",
            Op::AttachmentLink {
                conversation: c(),
                attachment: chathub_domain::AttachmentId::new("nope").unwrap(),
            },
        ),
        ("unsubscribe", Op::Unsubscribe { conversation: c() }),
        ("ping", Op::Ping {}),
    ]
}

/// Every event of a conversation, oldest first: a range for reading a store directly.
pub fn everything() -> chathub_store::HistoryRange {
    chathub_store::HistoryRange::After {
        after: 0,
        limit: 100_000,
    }
}

/// The `client_msg_id`s of the messages among `events`, in order.
pub fn client_msg_ids(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            chathub_domain::EventBody::Message { client_msg_id, .. } => client_msg_id.as_deref(),
            _ => None,
        })
        .collect()
}

/// Reads `conversation` from Redis (directly, no archive behind) and from the archive
/// until they hold the same events, for at most `within`; then asserts they do, `seq` by
/// `seq`, and returns them.
pub async fn assert_archive_matches_redis<C>(
    redis: &chathub_store::RedisStore<C>,
    archive: &chathub_store::postgres::Archive,
    tenant: &chathub_domain::TenantId,
    conversation: &str,
    within: Duration,
) -> Vec<Event>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    use chathub_store::ConversationStore;
    let c = ConversationId::new(conversation).unwrap();
    let start = std::time::Instant::now();
    let (in_redis, in_archive) = loop {
        let in_redis = redis
            .history(tenant, &c, everything())
            .await
            .unwrap()
            .events;
        let in_archive = archive
            .history(tenant, &c, everything())
            .await
            .unwrap()
            .events;
        if in_redis == in_archive || start.elapsed() > within {
            break (in_redis, in_archive);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seqs = |events: &[Event]| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert!(!in_redis.is_empty(), "{conversation} has history");
    assert_eq!(
        seqs(&in_archive),
        seqs(&in_redis),
        "{conversation}: the archive holds the same seqs as Redis"
    );
    assert_eq!(in_archive, in_redis, "{conversation}: the same events");
    in_archive
}

/// `conversation`'s history read back from the newest page to the first event, `page`
/// events at a time; every event, oldest first.
pub async fn back_to_the_start(client: &Client, conversation: &str, page: u32) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut before = None;
    loop {
        let Ok(Reply::History(slice)) = client
            .request(Op::History {
                conversation: Some(ConversationId::new(conversation).expect("id")),
                before,
                after: None,
                limit: Some(page),
            })
            .await
        else {
            panic!("history answers")
        };
        let mut older = slice.events;
        before = older.first().map(|e| e.seq);
        older.append(&mut events);
        events = older;
        if !slice.has_more {
            return events;
        }
    }
}

/// A `search` for `query` with no filter, cursor or limit.
pub fn search_op(query: &str) -> Op {
    Op::Search {
        query: query.into(),
        end_user: None,
        agent: None,
        status: None,
        from: None,
        to: None,
        kind: None,
        cursor: None,
        limit: None,
    }
}

/// An HTTP answer with its bytes: status, headers (lower-case names), body.
pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// The path and query of an absolute `http://host:port/path?query` URL.
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}

/// One HTTP/1.1 request with a binary body and extra headers; the whole answer.
pub async fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // In pieces, as a phone would send them.
    for chunk in body.chunks(64 * 1024) {
        s.write_all(chunk).await.unwrap();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    parse_answer(&out, method == "HEAD")
}

/// Sends the head of a PUT announcing `body.len() + missing` bytes, then `body`, then
/// breaks the connection: an upload cut off by a lost network.
pub async fn http_put_cut_off(addr: SocketAddr, path: &str, body: &[u8], missing: usize) {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len() + missing
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    // Let the node read what was sent before the connection goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn parse_answer(out: &[u8], head_only: bool) -> HttpAnswer {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut body = out[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if head_only {
        body.clear();
    } else if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = plain;
    }
    (status, headers, body)
}

/// The value of header `name` in an answer.
pub fn header_of<'a>(answer: &'a HttpAnswer, name: &str) -> Option<&'a str> {
    answer
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `attachment_upload`'s reply (panics on an error).
pub async fn ask_upload(
    client: &Client,
    conversation: Option<&str>,
    name: &str,
    size: usize,
    client_msg_id: &str,
) -> chathub_protocol::UploadReply {
    match client
        .request(Op::AttachmentUpload {
            conversation: conversation.map(conv),
            name: name.into(),
            size: size as u64,
            content_type: None,
            client_msg_id: Some(client_msg_id.into()),
        })
        .await
    {
        Ok(Reply::AttachmentUpload(r)) => r,
        other => panic!("attachment_upload: {other:?}"),
    }
}

/// Uploads `bytes` as `name` and returns the stored card.
pub async fn upload_file(
    client: &Client,
    http: SocketAddr,
    conversation: Option<&str>,
    name: &str,
    bytes: &[u8],
    client_msg_id: &str,
) -> chathub_domain::AttachmentCard {
    let reply = ask_upload(client, conversation, name, bytes.len(), client_msg_id).await;
    if let Some(card) = reply.stored {
        return card;
    }
    if !reply.parts.is_empty() {
        return upload_direct(http, &reply, bytes).await;
    }
    let url = reply.upload_url.expect("an upload URL");
    let answer = http_bytes(http, "PUT", &path_of(&url), &[], bytes).await;
    assert_eq!(answer.0, 201, "{}", String::from_utf8_lossy(&answer.2));
    let body: serde_json::Value = serde_json::from_slice(&answer.2).unwrap();
    serde_json::from_value(body["stored"].clone()).unwrap()
}

/// A direct upload (the server's store is S3): each part PUT to its presigned URL, then
/// the ETags POSTed to the node.
pub async fn upload_direct(
    http: SocketAddr,
    reply: &chathub_protocol::UploadReply,
    bytes: &[u8],
) -> chathub_domain::AttachmentCard {
    let mut parts = Vec::new();
    for part in &reply.parts {
        let host = part
            .url
            .strip_prefix("http://")
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let range = part.offset as usize..(part.offset + part.size) as usize;
        let answer = http_bytes(
            host.parse().unwrap(),
            "PUT",
            &path_of(&part.url),
            &[],
            &bytes[range],
        )
        .await;
        assert_eq!(
            answer.0,
            200,
            "part {}: {}",
            part.number,
            String::from_utf8_lossy(&answer.2)
        );
        let etag = header_of(&answer, "etag")
            .expect("S3 answers an ETag")
            .to_owned();
        parts.push(serde_json::json!({"number": part.number, "etag": etag}));
    }
    let body = serde_json::to_vec(&serde_json::json!({ "parts": parts })).unwrap();
    let complete = path_of(reply.complete_url.as_deref().expect("a complete URL"));
    let answer = http_bytes(
        http,
        "POST",
        &complete,
        &[("Content-Type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(answer.0, 201, "{}", String::from_utf8_lossy(&answer.2));
    let body: serde_json::Value = serde_json::from_slice(&answer.2).unwrap();
    serde_json::from_value(body["stored"].clone()).unwrap()
}

/// The attachment cards of a history's messages, in order.
pub fn attachment_cards(history: &[Event]) -> Vec<chathub_domain::AttachmentCard> {
    history
        .iter()
        .filter_map(|e| match &e.body {
            chathub_domain::EventBody::Message {
                content: chathub_domain::MessageContent::Attachment { attachment },
                ..
            } => Some(attachment.clone()),
            _ => None,
        })
        .collect()
}

/// `attachment_link`'s reply, or the error.
pub async fn link_of(
    client: &Client,
    conversation: Option<&str>,
    attachment: &chathub_domain::AttachmentId,
) -> Result<chathub_protocol::LinkReply, ClientError> {
    match client
        .request(Op::AttachmentLink {
            conversation: conversation.map(conv),
            attachment: attachment.clone(),
        })
        .await?
    {
        Reply::AttachmentLink(r) => Ok(r),
        other => panic!("attachment_link: {other:?}"),
    }
}

/// Sends an attachment; agents pass the epoch they saw.
pub async fn send_attachment(
    client: &Client,
    conversation: Option<&str>,
    attachment: &chathub_domain::AttachmentId,
    epoch: Option<u64>,
    client_msg_id: &str,
) -> Result<chathub_protocol::SendAck, ClientError> {
    match client
        .request(Op::Send {
            conversation: conversation.map(conv),
            client_msg_id: Some(client_msg_id.into()),
            text: String::new(),
            canned: None,
            engagement: None,
            attachment: Some(attachment.clone()),
            epoch,
            visibility: Default::default(),
            handover_note: None,
        })
        .await?
    {
        Reply::Send(ack) => Ok(ack),
        other => panic!("send: {other:?}"),
    }
}

/// A text message request on the epoch seen (an agent's or a bot's `send`).
pub fn text_send(conversation: &ConversationId, text: &str, epoch: u64) -> Op {
    Op::Send {
        conversation: Some(conversation.clone()),
        client_msg_id: None,
        text: text.into(),
        canned: None,
        engagement: None,
        attachment: None,
        epoch: Some(epoch),
        visibility: Default::default(),
        handover_note: None,
    }
}

/// A small, seeded generator (xorshift): randomized trials that are reproducible.
pub struct Rng(pub u64);

impl Rng {
    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
