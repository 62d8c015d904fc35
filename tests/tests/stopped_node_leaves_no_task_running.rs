//! Every task of a node — sessions, listeners and the background work (the Redis pub/sub
//! keepalive, the health watch, the cluster's inbox writer, the follow-up sweeper, settler,
//! archiver and archive probe, the webhook worker, the key reload, the attachments'
//! staging sweep and scanner, the retention sweep, metric tasks) — runs under the node's cancellation token and task tracker:
//! stopping the node ends all of them.

use chathub_domain::Role;
use chathub_e2e::{PATIENCE, TestHub, conv, test_config};
use chathub_gateway::{GatewayConfig, RedisConfig, WebhookConfig};
use chathub_testkit::{RedisCluster, RedisServer};

/// A config that starts every optional background task: the webhook worker, the reload
/// of a secrets file, the attachments' staging sweep and the scanner's worker and sweep.
fn config_with_every_task(dir: &std::path::Path) -> GatewayConfig {
    let secrets = dir.join("secrets");
    std::fs::write(&secrets, "a-long-enough-test-secret-for-hs256\n").unwrap();
    let mut config = test_config();
    // Nobody listens there: the worker only has to exist.
    config.webhook = Some(WebhookConfig::new("http://127.0.0.1:9/hook", "s"));
    config.auth.secrets_file = Some(secrets);
    config.auth.secret = "a-long-enough-test-secret-for-hs256".into();
    config.attachments = Some(chathub_attachments::AttachmentsConfig::new(
        chathub_attachments::ObjectsSpec::Memory,
        dir.join("uploads"),
    ));
    config.attachment_scanner = Some(chathub_gateway::config::ScannerConfig::new(
        "http://127.0.0.1:9/scan",
        "s",
    ));
    config
}

/// Traffic that wakes the lazy tasks (the inbox writer on a cluster, a take's metric);
/// its sessions end when it returns.
async fn some_traffic(hub: &TestHub) {
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, Some("m-1"))
        .await
        .unwrap();
    let agent = hub.connect(Role::Agent, "alice").await;
    agent
        .send_text(Some(&conv("u-1")), "hi", Some(0), Some("a-1"))
        .await
        .unwrap();
}

async fn stops_everything(hub: TestHub, background: usize) {
    some_traffic(&hub).await;
    // Once the sessions have ended, what runs is exactly the background work.
    let deadline = std::time::Instant::now() + PATIENCE;
    while hub.tasks_running() != background && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        hub.tasks_running(),
        background,
        "the node's background tasks are all tracked"
    );
    let left = hub.stop().await;
    assert_eq!(left, 0, "tasks left running after the node stopped");
}

#[tokio::test]
async fn a_stopped_embedded_node_leaves_no_task() {
    let dir = tempfile_dir();
    let config = config_with_every_task(&dir);
    // Listener, HTTP, webhook worker, its job sweeper and job completer, key reload,
    // presence watch, the retention sweep, the stall sweep, the staging sweep, the
    // scanner's worker and its sweep.
    stops_everything(TestHub::start_with(config, Default::default()).await, 12).await;
}

#[tokio::test]
async fn a_stopped_redis_node_leaves_no_task() {
    let dir = tempfile_dir();
    let server = RedisServer::start();
    let config = config_with_every_task(&dir);
    let hub = TestHub::start_on_redis(config, RedisConfig::new(server.url())).await;
    // And the pub/sub keepalive, the health watch and the apply writer (group commit,
    // started by the first command).
    stops_everything(hub, 15).await;
}

#[tokio::test]
async fn a_stopped_node_with_an_archive_leaves_no_task() {
    let dir = tempfile_dir();
    let server = RedisServer::start();
    let postgres = chathub_testkit::PostgresServer::start();
    let config = config_with_every_task(&dir);
    let mut redis = RedisConfig::new(server.url());
    redis.archive = Some(chathub_gateway::ArchiveConfig::new(postgres.url()));
    let hub = TestHub::start_on_redis(config, redis).await;
    // The Redis node's fifteen, the follow-up sweeper, the archive probe and the
    // archiver (started by the first copy).
    stops_everything(hub, 18).await;
}

#[tokio::test]
async fn a_stopped_redis_cluster_node_leaves_no_task() {
    let dir = tempfile_dir();
    let cluster = RedisCluster::start(3);
    let config = config_with_every_task(&dir);
    let hub = TestHub::start_on_redis(config, RedisConfig::cluster(cluster.urls())).await;
    // The health watch, the apply writer, the inbox writer (started by the first queue
    // update), the follow-up sweeper and the settler (started by the first settled queue
    // step), and the attachments' three.
    stops_everything(hub, 17).await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chathub-stop-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
