//! Every stored field has a limit, enforced on every path: the admin API refuses a
//! catalogue item, a profile or a history event over its limits with `too_large`, so an
//! engagement can never be large enough to close the sockets it is sent to; nobody is
//! disconnected and history stays readable.

use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, full_history, http_request};
use chathub_protocol::{ErrorCode, Op};

async fn limits(hub: TestHub) {
    let admin = hub.token("acme", Role::Admin, "carol");
    let put = |path: &'static str, body: String| {
        let admin = admin.clone();
        let addr = hub.http_addr;
        async move { http_request(addr, "PUT", path, &admin, &body).await }
    };
    let big = "x".repeat(100 * 1024);
    for (path, body) in [
        (
            "/admin/v1/catalogue/huge",
            serde_json::json!({"type": "coupon", "name": "Huge", "description": big}),
        ),
        (
            "/admin/v1/catalogue/long-name",
            serde_json::json!({"type": "coupon", "name": big}),
        ),
        (
            "/admin/v1/users/u-1/profile",
            serde_json::json!({"first_name": big, "last_name": "", "locale": "en", "points_balance": 0, "segments": []}),
        ),
        (
            "/admin/v1/users/u-1/profile",
            serde_json::json!({"first_name": "Ana", "last_name": "", "locale": "en", "points_balance": 0,
                "segments": (0..51).map(|n| format!("s{n}")).collect::<Vec<_>>()}),
        ),
    ] {
        let (status, answer) = put(path, body.to_string()).await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(answer.contains("\"too_large\""), "{path}: {answer}");
    }
    let (status, answer) = http_request(
        hub.http_addr,
        "POST",
        "/admin/v1/users/u-1/history",
        &admin,
        &serde_json::json!({"type": "points", "action": "earned", "title": big}).to_string(),
    )
    .await;
    assert_eq!(status, 413, "{answer}");

    // Within the limits all is well, and the item can be sent; followers stay.
    let ok =
        serde_json::json!({"type": "coupon", "name": "10% off", "description": "d".repeat(2000)});
    let (status, answer) = put("/admin/v1/catalogue/fine", ok.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, None).await.unwrap();
    user.subscribe(None, Some(0)).await.unwrap();
    let agent = hub.connect(Role::Agent, "alice").await;
    let huge_missing = agent
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: String::new(),
            canned: None,
            engagement: Some("huge".into()),
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        huge_missing.server().unwrap().code,
        ErrorCode::NotFound,
        "never stored"
    );
    agent
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: String::new(),
            canned: None,
            engagement: Some("fine".into()),
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap();
    let history = full_history(&user, "u-1").await;
    assert_eq!(history.len(), 4, "opened, hello, taken, the engagement");
    user.request(Op::Ping {}).await.unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn stored_fields_are_limited_embedded() {
    limits(TestHub::start().await).await;
}

#[tokio::test]
async fn stored_fields_are_limited_on_redis() {
    limits(TestHub::start_redis().await).await;
}
