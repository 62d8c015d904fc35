//! At the default log level, in both log formats, a node's logs never carry a token
//! (valid, forged or expired) or a message body — even when requests fail, frames are
//! malformed and sockets are closed for breaking limits.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{chathub_binary, dev_token};
use chathub_protocol::Op;
use std::io::Read;
use std::process::{Command, Stdio};
use tokio_tungstenite::tungstenite::Message;

const BODY: &str = "SECRET-BODY-4242-my-card-number";

async fn traffic(ws_url: &str) -> Vec<String> {
    let good = dev_token("acme", Role::EndUser, "u-1");
    let forged = format!("{}x", &good[..good.len() - 1]);
    let agent_token = dev_token("acme", Role::Agent, "alice");
    // Refused handshakes.
    assert!(Client::connect(ws_url, &forged).await.is_err());
    assert!(Client::connect(ws_url, "not-a-token").await.is_err());
    // Normal traffic with a secret body, and failing requests about it.
    let user = Client::connect(ws_url, &good).await.unwrap();
    let agent = Client::connect(ws_url, &agent_token).await.unwrap();
    user.send_text(None, BODY, None, Some("m1")).await.unwrap();
    let _ = user
        .send_text(None, &format!("{BODY}{}", "x".repeat(5000)), None, None)
        .await;
    let _ = agent
        .send_text(Some(&chathub_e2e::conv("u-1")), BODY, Some(99), None)
        .await;
    let _ = user.request(Op::Ping {}).await;
    user.send_raw(Message::text(format!(
        "{{\"op\": \"send\", \"text\": \"{BODY}\""
    )))
    .await
    .unwrap();
    // A socket closed for an oversize message that contains the body.
    let big = Client::connect(ws_url, &good).await.unwrap();
    big.send_raw(Message::text(BODY.repeat(3000)))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    vec![good, forged, agent_token]
}

fn spawn(format: &str) -> (std::process::Child, String) {
    let mut child = Command::new(chathub_binary())
        .args([
            "serve",
            "--ephemeral",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--log-format",
            format,
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let ws = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ws="))
        .unwrap()
        .to_owned();
    (child, ws)
}

#[tokio::test]
async fn default_logs_are_free_of_secrets() {
    for format in ["text", "json"] {
        let (mut child, ws) = spawn(format);
        let tokens = traffic(&ws).await;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let mut logs = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        assert!(
            logs.contains("gateway listening"),
            "{format}: logs were captured: {logs}"
        );
        assert!(
            !logs.contains("SECRET-BODY"),
            "{format}: a message body in the logs:\n{logs}"
        );
        for token in &tokens {
            // Any recognisable part of a token: its signature or its payload.
            for part in token.split('.').skip(1) {
                assert!(
                    !logs.contains(part),
                    "{format}: a token in the logs:\n{logs}"
                );
            }
        }
    }
}
