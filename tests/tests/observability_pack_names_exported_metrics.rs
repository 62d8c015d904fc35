//! The observability pack (`deploy/observability/`): every metric the Grafana dashboard
//! and the Prometheus alert rules name is exported by a running node (Redis, the
//! PostgreSQL archive, attachments with a scanner, after ordinary traffic), and the rules
//! pass `promtool check rules` (Debian's `prometheus` package; the test command installs
//! it).

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{HubProcess, conv, dev_token, http_get, read_http_request, upload_file};
use chathub_protocol::Op;
use chathub_testkit::{PostgresServer, RedisServer};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const PACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/observability");

/// `chathub_…` names in `text`, without the histogram suffixes.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("chathub_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(base(&name).to_owned());
    }
    names
}

fn base(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The metric names the dashboard's queries and the rules' expressions use.
fn named_by_the_pack() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{PACK}/chathub-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            names.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    let rules = std::fs::read_to_string(format!("{PACK}/chathub-alerts.yml")).unwrap();
    for line in rules.lines() {
        if let Some(expr) = line.trim().strip_prefix("expr:") {
            names.extend(names_in(expr));
        }
    }
    names
}

/// The metric families a node exports now.
async fn exported(hub: &HubProcess) -> BTreeSet<String> {
    let (status, body) = http_get(hub.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| base(n).to_owned())
        .collect()
}

/// A scanner that answers `clean` to everything.
async fn scanner() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/scan", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_http_request(&mut s).await;
                let body = r#"{"verdict":"clean"}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn every_metric_the_pack_names_is_exported() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    let files = chathub_testkit::ScratchDir::new("observability-files");
    let scanner = scanner().await;
    let hub = HubProcess::spawn_redis(
        &redis.url(),
        &[
            "--archive",
            &postgres.url(),
            "--attachments",
            files.path().to_str().unwrap(),
            "--attachment-scanner",
            &scanner,
        ],
    );
    // The tenant has an alert schedule: the timer rounds report its queue.
    let admin = dev_token("acme", Role::Admin, "carol");
    let (status, body) = chathub_e2e::http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        r#"{"alerts":{"steps":[{"after_secs":600,"notify":"supervisors"}]}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Ordinary traffic: an end user waits, an agent resumes the conversation and takes it,
    // a file is sent, a client breaks the message limit, a token is refused.
    let ann = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "ann"))
        .await
        .unwrap();
    ann.send_text(None, "hello", None, Some("m1"))
        .await
        .unwrap();
    let bob = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    bob.request(Op::Subscribe {
        conversation: Some(conv("ann")),
        since: Some(0),
        history_id: None,
    })
    .await
    .unwrap();
    bob.send_text(Some(&conv("ann")), "hi Ann", Some(0), Some("b1"))
        .await
        .unwrap();
    upload_file(
        &ann,
        hub.http_addr,
        None,
        "notes.txt",
        b"my receipt\n",
        "f1",
    )
    .await;
    let rude = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "carl"))
        .await
        .unwrap();
    rude.send_raw(Message::text("x".repeat(100_000)))
        .await
        .unwrap();
    assert!(Client::connect(&hub.ws_url, "not-a-token").await.is_err());

    let wanted = named_by_the_pack();
    assert!(wanted.len() >= 15, "the pack names its metrics: {wanted:?}");
    // Some appear a moment later (the archiver's lag, the scan).
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let have = exported(&hub).await;
        let missing: Vec<_> = wanted.difference(&have).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        missing.is_empty(),
        "named by the pack, not exported: {missing:?}"
    );

    match std::process::Command::new("promtool")
        .args(["check", "rules", &format!("{PACK}/chathub-alerts.yml")])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "promtool not found ({e}): run scripts/test.sh (it installs Debian's prometheus package)"
        ),
    }
}
