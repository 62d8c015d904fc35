//! An agent's message for an end user with no live socket is POSTed to the webhook:
//! HMAC-signed, retried with backoff after a failure, one delivery per message id; an
//! end user who is connected gets no webhook.

use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, test_config};
use chathub_gateway::webhook::signature;
use chathub_gateway::{GatewayConfig, WebhookConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One received POST: headers (lower-case names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A tiny HTTP server: answers 500 to the first `fail_first` requests, then 204.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then the body by Content-Length.
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

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.0.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn offline_end_users_are_notified_once_with_a_signed_body() {
    let (url, got) = receiver(1).await;
    let config = GatewayConfig {
        webhook: Some(WebhookConfig::new(url, "s3cret")),
        ..test_config()
    };
    let hub = TestHub::start_with(config, Default::default()).await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, None).await.unwrap();
    let agent = hub.connect(Role::Agent, "alice").await;
    // The end user is online: no webhook.
    agent
        .send_text(Some(&conv("u-1")), "while you are here", Some(0), None)
        .await
        .unwrap();
    user.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "no webhook for an online end user"
    );

    let ack = agent
        .send_text(Some(&conv("u-1")), "are you still there?", Some(1), None)
        .await
        .unwrap();
    // Retried after the first failure, then delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook not retried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2, "one failure, one success, no more");
    let (first, second) = (&got[0], &got[1]);
    let id = format!("acme/u-1/{}", ack.seq);
    assert_eq!(header(first, "x-chathub-delivery"), id);
    assert_eq!(
        header(second, "x-chathub-delivery"),
        id,
        "same id on the retry"
    );
    assert_eq!(first.1, second.1, "same body on the retry");
    assert_eq!(
        header(second, "x-chathub-signature"),
        signature("s3cret", &second.1)
    );
    let body: serde_json::Value = serde_json::from_slice(&second.1).unwrap();
    assert_eq!(body["conversation"], "u-1");
    assert_eq!(body["content"]["text"], "are you still there?");
    assert_eq!(body["author"]["id"], "alice");
}
