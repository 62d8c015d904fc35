//! The node serves the agent console and the end-user demo client from the binary: the
//! pages and their scripts, the client config that tells them where the WebSocket is, and
//! the demo tokens only when the demo tenant is loaded. (What the pages do is proved in a
//! real browser by `tests/browser`.)

use chathub_e2e::{TestHub, http_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole response (status line, headers, body).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn pages_scripts_and_config_are_served() {
    let hub = TestHub::start().await;
    for (path, needle) in [
        ("/console/", "/console/console.js"),
        ("/console/console.js", "openConversation"),
        ("/demo/", "/demo/demo.js"),
        ("/demo/demo.js", "redeem"),
        ("/assets/chathub-client.js", "var ChathubClient = class"),
        ("/assets/ui.js", "export function attachmentView"),
        ("/assets/signin.js", "export function signIn"),
        ("/assets/chathub.css", ".queue-item"),
    ] {
        let (status, body) = http_get(hub.http_addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    let page = raw_get(hub.http_addr, "/console/")
        .await
        .to_ascii_lowercase();
    assert!(page.contains("content-type: text/html"), "{page}");
    assert!(page.contains("content-security-policy: default-src 'self'"));
    assert!(page.contains("x-content-type-options: nosniff"));
    let script = raw_get(hub.http_addr, "/assets/chathub-client.js")
        .await
        .to_ascii_lowercase();
    assert!(script.contains("content-type: text/javascript"));

    // `/console` and `/` lead to the console.
    for path in ["/", "/console", "/demo"] {
        let response = raw_get(hub.http_addr, path).await.to_ascii_lowercase();
        assert!(response.starts_with("http/1.1 303"), "{path}: {response}");
        assert!(response.contains("location: /console/") || response.contains("location: /demo/"));
    }

    let (status, body) = http_get(hub.http_addr, "/client-config.json").await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(config["ws_port"], hub.ws_addr.port());
    assert_eq!(config["demo"], false);
    assert!(config["ws_url"].is_null());

    // Without the demo tenant there are no demo tokens to hand out.
    let (status, _) = http_get(hub.http_addr, "/demo-tokens.json").await;
    assert_eq!(status, 404);
    let (status, _) = http_get(hub.http_addr, "/console/nope.js").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn demo_sign_in_hands_out_working_tokens() {
    let hub = TestHub::start_demo(false).await;
    let (_, body) = http_get(hub.http_addr, "/client-config.json").await;
    let config: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(config["demo"], true);
    let (status, body) = http_get(hub.http_addr, "/demo-tokens.json").await;
    assert_eq!(status, 200);
    let people: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    let roles: Vec<(&str, &str)> = people
        .iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap_or(""),
                p["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("agent", "alice"),
            ("agent", "bob"),
            ("admin", "carol"),
            ("end_user", "u-ana"),
            ("end_user", "u-ben"),
            ("end_user", "u-chen"),
        ]
    );
    for p in &people {
        let identity = hub
            .auth
            .verify(p["token"].as_str().expect("token"))
            .expect("the node accepts its demo tokens");
        assert_eq!(identity.tenant.as_str(), "demo");
        assert_eq!(identity.subject, p["id"].as_str().unwrap_or_default());
    }
}
