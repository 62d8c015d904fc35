//! The audit log (`GET /admin/v1/audit`): every admin action of the admin API and of the
//! socket — catalogue and canned changes, the attachment policy, the tenant's chat switch,
//! a conversation disabled and enabled — is recorded with who, when, what and its detail,
//! newest first, paged without gaps; refused actions are not recorded; only admins read
//! it; tenants are apart; the embedded default keeps it across a restart; a Redis node
//! keeps it too.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{HubProcess, conv, dev_token, http_exchange, http_request};
use chathub_protocol::Op;
use serde_json::Value;

/// GET `path` as `token`: status and JSON body.
async fn get(hub: &HubProcess, token: &str, path: &str) -> (u16, Value) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = http_exchange(hub.http_addr, &request).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Every entry of the log, newest first, read `page` at a time.
async fn whole_log(hub: &HubProcess, token: &str, page: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = format!("/admin/v1/audit?limit={page}");
    loop {
        let (status, body) = get(hub, token, &path).await;
        assert_eq!(status, 200, "{body}");
        let entries = body["entries"].as_array().unwrap();
        assert!(entries.len() <= page);
        all.extend(entries.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/audit?limit={page}&before={cursor}"),
            None => return all,
        }
    }
}

/// Does one of each audited action (some over HTTP, some over the socket) and a refused
/// one; returns the actions expected, newest first.
async fn act(hub: &HubProcess) -> Vec<(&'static str, Option<&'static str>)> {
    let admin = dev_token("acme", Role::Admin, "carol");
    let put = |path: &'static str, body: &'static str| {
        let admin = admin.clone();
        async move {
            let (status, answer) = http_request(hub.http_addr, "PUT", path, &admin, body).await;
            assert_eq!(status, 200, "{path}: {answer}");
        }
    };
    put(
        "/admin/v1/catalogue/spring",
        r#"{"type":"coupon","name":"Spring","rules":{"stock":5}}"#,
    )
    .await;
    put(
        "/admin/v1/canned/hello",
        r#"{"shortcut":"/hello","text":"Hello!"}"#,
    )
    .await;
    let (status, _) = http_request(
        hub.http_addr,
        "DELETE",
        "/admin/v1/catalogue/spring",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 204);
    put(
        "/admin/v1/settings",
        r#"{"attachments":{"max_bytes":1000000,"allowed_types":["image/jpeg"],"strip_location":true}}"#,
    )
    .await;
    // Refused (bad policy, missing item, no privilege): nothing recorded.
    let (status, _) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        r#"{"attachments":{"max_bytes":0}}"#,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = http_request(
        hub.http_addr,
        "DELETE",
        "/admin/v1/canned/nothing",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 404);
    let agent = dev_token("acme", Role::Agent, "bob");
    let (status, _) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/settings",
        &agent,
        r#"{"chat_disabled":true}"#,
    )
    .await;
    assert_eq!(status, 403);

    // Over the socket: a conversation disabled and enabled, the tenant switched off and on.
    let ann = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "ann"))
        .await
        .unwrap();
    ann.send_text(None, "hello", None, None).await.unwrap();
    let carol = Client::connect(&hub.ws_url, &admin).await.unwrap();
    for op in [
        Op::Disable {
            conversation: Some(conv("ann")),
        },
        Op::Enable {
            conversation: Some(conv("ann")),
        },
        Op::DisableTenant {},
        Op::EnableTenant {},
    ] {
        carol.request(op).await.unwrap();
    }
    vec![
        ("tenant_chat_switched", None),
        ("tenant_chat_switched", None),
        ("conversation_enabled", Some("ann")),
        ("conversation_disabled", Some("ann")),
        ("attachment_policy_set", None),
        ("catalogue_item_deleted", Some("spring")),
        ("canned_put", Some("hello")),
        ("catalogue_item_put", Some("spring")),
    ]
}

/// The log as read: (action, target) pairs, after checking who and when.
async fn check_log(hub: &HubProcess, expected: &[(&str, Option<&str>)]) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let log = whole_log(hub, &admin, 3).await;
    let got: Vec<(String, Option<String>)> = log
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(a, t)| ((*a).to_owned(), t.map(str::to_owned)))
        .collect();
    assert_eq!(got, want);
    let mut last_at = u64::MAX;
    for e in &log {
        assert_eq!(e["actor"]["role"], "admin");
        assert_eq!(e["actor"]["id"], "carol");
        let at = e["at"].as_u64().unwrap();
        assert!(at <= last_at, "newest first");
        last_at = at;
    }
    // Details: what was set.
    let canned = log.iter().find(|e| e["action"] == "canned_put").unwrap();
    assert_eq!(canned["detail"]["shortcut"], "/hello");
    let switch = &log[0];
    assert_eq!(switch["detail"]["chat_disabled"], false);
    let policy = log
        .iter()
        .find(|e| e["action"] == "attachment_policy_set")
        .unwrap();
    assert_eq!(policy["detail"]["max_bytes"], 1000000);

    // Only admins; tenants apart; cursors the log did not give are refused.
    for (role, subject) in [(Role::Agent, "bob"), (Role::EndUser, "ann")] {
        let (status, body) = get(hub, &dev_token("acme", role, subject), "/admin/v1/audit").await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, body) = get(
        hub,
        &dev_token("other", Role::Admin, "olga"),
        "/admin/v1/audit",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["entries"], serde_json::json!([]));
    let (status, _) = get(hub, &admin, "/admin/v1/audit?before=nonsense").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_embedded_default_records_every_admin_action_and_keeps_them() {
    let dir = chathub_testkit::ScratchDir::new("audit-data");
    let data = dir.path().to_str().unwrap().to_owned();
    let expected = {
        let hub = HubProcess::spawn(&["--data-dir", &data]);
        let expected = act(&hub).await;
        check_log(&hub, &expected).await;
        expected
    };
    let hub = HubProcess::spawn(&["--data-dir", &data]);
    check_log(&hub, &expected).await;
}

#[tokio::test]
async fn a_redis_node_records_every_admin_action() {
    let redis = chathub_testkit::RedisServer::start();
    let hub = HubProcess::spawn_redis(&redis.url(), &[]);
    let expected = act(&hub).await;
    check_log(&hub, &expected).await;
}
