//! The admin API takes JSON in UTF-8 only, said so exactly (`application/json`, at most
//! `charset=utf-8`): anything else is 415 before the body is read; a body over the limit
//! is 413 `too_large`.

use chathub_domain::Role;
use chathub_e2e::{TestHub, http_exchange};

/// A PUT of a canned response with `content_type` and `body`; status and answer body.
async fn put(hub: &TestHub, token: &str, content_type: Option<&str>, body: &str) -> (u16, String) {
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "PUT /admin/v1/canned/late HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(hub.http_addr, &request).await
}

#[tokio::test]
async fn only_json_in_utf8_within_the_limit() {
    let hub = TestHub::start().await;
    let admin = hub.token("acme", Role::Admin, "carol");
    let body = r#"{"shortcut":"/late","text":"Sorry for the wait"}"#;
    for refused in [
        Some("application/json+evil"),
        Some("application/json; charset=utf-16"),
        Some("text/plain"),
        None,
    ] {
        let (status, answer) = put(&hub, &admin, refused, body).await;
        assert_eq!(status, 415, "{refused:?}: {answer}");
        assert!(answer.contains("\"bad_request\""), "{answer}");
    }
    for accepted in ["application/json", "application/json; charset=UTF-8"] {
        let (status, answer) = put(&hub, &admin, Some(accepted), body).await;
        assert_eq!(status, 200, "{accepted}: {answer}");
    }
    // Over the body limit: 413, never stored.
    let huge = format!(
        r#"{{"shortcut":"/big","text":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let (status, answer) = put(&hub, &admin, Some("application/json"), &huge).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    hub.stop().await;
}
