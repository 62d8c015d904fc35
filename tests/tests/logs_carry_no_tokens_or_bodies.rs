//! At the default log level, in both log formats, a node's logs never carry a token
//! (valid, forged or expired), a message body, an attachment's bytes or an upload or
//! download ticket — even when requests fail, frames are malformed, uploads are refused
//! or cut off, and sockets are closed for breaking limits.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    ask_upload, chathub_binary, dev_token, http_bytes, http_put_cut_off, link_of, path_of,
    send_attachment, upload_file,
};
use chathub_protocol::Op;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use tokio_tungstenite::tungstenite::Message;

const BODY: &str = "SECRET-BODY-4242-my-card-number";

async fn traffic(ws_url: &str, http: SocketAddr) -> Vec<String> {
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
    let mut tokens = vec![good, forged, agent_token];
    tokens.extend(attachment_traffic(&user, &agent, http).await);
    tokens
}

/// Files with the secret in their bytes: stored, refused, cut off, downloaded; links
/// forged. Returns the tickets the URLs carried.
async fn attachment_traffic(user: &Client, agent: &Client, http: SocketAddr) -> Vec<String> {
    let ticket_of = |url: &str| url.split("?t=").nth(1).unwrap_or_default().to_owned();
    let mut tickets = Vec::new();
    let file = format!("{BODY}\n").repeat(100).into_bytes();
    let card = upload_file(user, http, None, "notes.txt", &file, "f1").await;
    send_attachment(user, None, &card.id, None, "f1")
        .await
        .unwrap();
    let link = link_of(agent, Some("u-1"), &card.id).await.unwrap();
    tickets.push(ticket_of(&link.url));
    assert_eq!(
        http_bytes(http, "GET", &path_of(&link.url), &[], &[])
            .await
            .0,
        200
    );
    let forged = format!("{}x", &path_of(&link.url)[..path_of(&link.url).len() - 1]);
    assert_eq!(http_bytes(http, "GET", &forged, &[], &[]).await.0, 403);
    // The secret disguised as a PDF: refused when the bytes are in.
    let up = ask_upload(user, None, "invoice.pdf", file.len(), "f2").await;
    let url = up.upload_url.unwrap();
    tickets.push(ticket_of(&url));
    assert_eq!(
        http_bytes(http, "PUT", &path_of(&url), &[], &file).await.0,
        415
    );
    // Cut off by a lost network.
    let up = ask_upload(user, None, "more.txt", file.len(), "f3").await;
    let url = up.upload_url.unwrap();
    tickets.push(ticket_of(&url));
    http_put_cut_off(http, &path_of(&url), &file[..500], 1000).await;
    tickets
}

fn spawn(format: &str) -> (std::process::Child, String, SocketAddr) {
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
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap()
            .to_owned()
    };
    (child, field("ws="), field("http=http://").parse().unwrap())
}

#[tokio::test]
async fn default_logs_are_free_of_secrets() {
    for format in ["text", "json"] {
        let (mut child, ws, http) = spawn(format);
        let tokens = traffic(&ws, http).await;
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
