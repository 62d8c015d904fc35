//! The admin API takes JSON in UTF-8 only, said so exactly (`application/json`, at most
//! `charset=utf-8`): anything else is 415 before the body is read; a body over the limit
//! is 413 `too_large`; a body (or a nested document) that is an array rather than an
//! object is 400; numbers and times out of range are 400; undocumented methods are 405.

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
    // Arrays read field by field would be accepted by serde alone; trailing text too.
    for refused in [
        r#"["/late", "Sorry"]"#,
        r#"{"shortcut":"/late","text":"a"} x"#,
    ] {
        let (status, answer) = put(&hub, &admin, Some("application/json"), refused).await;
        assert_eq!(status, 400, "{refused}: {answer}");
    }
    hub.stop().await;
}

/// A `method` request to `path` with `body` as JSON; status and answer body.
async fn send(hub: &TestHub, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(hub.http_addr, &request).await
}

#[tokio::test]
async fn documents_ranges_and_methods_are_checked() {
    let hub = TestHub::start().await;
    let admin = hub.token("acme", Role::Admin, "carol");
    for (method, path, body) in [
        ("PUT", "/admin/v1/settings", "[null, null]"),
        ("PUT", "/admin/v1/settings", r#"{"attachments": []}"#),
        (
            "PUT",
            "/admin/v1/settings",
            r#"{"attachments": {"allowed_types": ["image/jpg"]}}"#,
        ),
        (
            "PUT",
            "/admin/v1/catalogue/c1",
            r#"{"type":"coupon","name":"x","rules":[]}"#,
        ),
        (
            "PUT",
            "/admin/v1/catalogue/c1",
            r#"{"type":"coupon","name":"x","valid_until":253402300800000}"#,
        ),
        (
            "PUT",
            "/admin/v1/catalogue/c1",
            r#"{"type":"coupon","name":"x","valid_from":2,"valid_until":1}"#,
        ),
        (
            "PUT",
            "/admin/v1/catalogue/c1",
            r#"{"type":"coupon","name":"x","rules":{"stock":9007199254740992}}"#,
        ),
        (
            "PUT",
            "/admin/v1/users/ann/profile",
            r#"{"points_balance":-9007199254740992}"#,
        ),
        (
            "POST",
            "/admin/v1/users/ann/history",
            r#"{"type":"points","action":"earned","at":9223372036854775808}"#,
        ),
    ] {
        let (status, answer) = send(&hub, &admin, method, path, body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(answer.contains("\"bad_request\""), "{answer}");
    }
    // The largest values in range are taken.
    let (status, answer) = send(
        &hub,
        &admin,
        "PUT",
        "/admin/v1/catalogue/c1",
        r#"{"type":"coupon","name":"x","valid_until":253402300799999,"rules":{"stock":9007199254740991}}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // A method the route does not have: 405 with `Allow`, whatever the body's type.
    for method in ["TRACE", "PATCH"] {
        let (status, answer) = send(&hub, &admin, method, "/admin/v1/catalogue", "").await;
        assert_eq!(status, 405, "{method}: {answer}");
    }
    hub.stop().await;
}
