//! The real binary: `chathub token` prints a token alone on its last line, `chathub serve`
//! runs on the embedded backend with nothing else, serves /healthz, /readyz and /metrics,
//! and on SIGTERM closes every socket with 1001 ("going away, reconnect").

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{HubProcess, chathub_binary, http_get};
use std::process::Command;

#[tokio::test]
async fn token_serve_metrics_and_graceful_shutdown() {
    let out = Command::new(chathub_binary())
        .args([
            "token",
            "--tenant",
            "acme",
            "--role",
            "agent",
            "--subject",
            "alice",
            "--ttl",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let bad = Command::new(chathub_binary())
        .args([
            "token",
            "--tenant",
            "a b",
            "--role",
            "agent",
            "--subject",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "an invalid tenant id is refused");

    let hub = HubProcess::spawn(&[]);
    let mut agent = Client::connect(&hub.ws_url, &token).await.unwrap();
    let user_token = chathub_e2e::dev_token("acme", Role::EndUser, "u-1");
    let user = Client::connect(&hub.ws_url, &user_token).await.unwrap();
    user.send_text(None, "hello", None, Some("m1"))
        .await
        .unwrap();
    chathub_e2e::expect_frame(&mut agent, "queue", |f| {
        matches!(f, chathub_protocol::ServerFrame::Queue(_))
    })
    .await;

    assert_eq!(http_get(hub.http_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(hub.http_addr, "/readyz").await.0, 200);
    let (status, metrics) = http_get(hub.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("chathub_connections"), "{metrics}");
    assert!(metrics.contains("chathub_requests_total"), "{metrics}");
    assert!(
        metrics.contains("chathub_hub_deliveries_total"),
        "{metrics}"
    );

    hub.terminate();
    assert_eq!(agent.close_code().await, Some(1001));
    let mut hub = hub;
    let status = hub.child.wait().unwrap();
    assert!(
        status.success(),
        "serve exits cleanly after SIGTERM: {status}"
    );
}

/// `serve --config FILE`: settings come from the file unless a flag (or the environment)
/// gives them; a file with an unknown key stops the binary with a message naming it.
#[tokio::test]
async fn settings_come_from_a_config_file_flags_win() {
    let dir = std::env::temp_dir().join(format!("chathub-serve-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chathub.toml");
    std::fs::write(
        &path,
        "# chathub serve settings\nmax-text-bytes = 123\nmax_page = 99\nrate-per-sec = 7\n",
    )
    .unwrap();
    let path_arg = path.to_str().unwrap();
    let hub = HubProcess::spawn(&["--config", path_arg, "--max-page", "42"]);
    let token = chathub_e2e::dev_token("acme", Role::Agent, "alice");
    let client = Client::connect(&hub.ws_url, &token).await.unwrap();
    let limits = &client.welcome().limits;
    assert_eq!(limits.max_text_bytes, 123, "from the file");
    assert_eq!(limits.rate_per_sec, 7, "from the file");
    assert_eq!(limits.max_page, 42, "the flag wins over the file");
    drop(client);
    drop(hub);

    std::fs::write(&path, "max-text-bytes = 123\nmax-txet-bytes = 5\n").unwrap();
    let out = Command::new(chathub_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-http",
            "--config",
            path_arg,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown setting `max-txet-bytes`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
