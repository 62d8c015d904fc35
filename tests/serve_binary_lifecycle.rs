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
