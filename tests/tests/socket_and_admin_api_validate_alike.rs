//! The socket and the admin HTTP API are two adapters over the same op functions: the
//! same invalid input gets the same error code both ways (canned responses and the
//! tenant-wide switch, which both transports offer), on both backends.

use chathub_domain::Role;
use chathub_e2e::{TestHub, http_request};
use chathub_protocol::{ErrorCode, Op};

/// One invalid canned response, as socket request and as admin API call.
struct Case {
    what: &'static str,
    id: &'static str,
    shortcut: String,
    text: String,
}

async fn same_errors(hub: TestHub) {
    let admin_token = hub.token("acme", Role::Admin, "carol");
    let agent_token = hub.token("acme", Role::Agent, "alice");
    let admin = chathub_client::Client::connect(&hub.url(), &admin_token)
        .await
        .unwrap();
    let agent = chathub_client::Client::connect(&hub.url(), &agent_token)
        .await
        .unwrap();
    let cases = [
        Case {
            what: "text over max_text_bytes",
            id: "late",
            shortcut: "/late".into(),
            text: "x".repeat(4097),
        },
        Case {
            what: "blank text",
            id: "late",
            shortcut: "/late".into(),
            text: "   ".into(),
        },
        Case {
            what: "empty shortcut",
            id: "late",
            shortcut: String::new(),
            text: "Sorry for the wait".into(),
        },
        Case {
            what: "shortcut over 64 bytes",
            id: "late",
            shortcut: format!("/{}", "s".repeat(64)),
            text: "Sorry for the wait".into(),
        },
        Case {
            what: "id outside the id alphabet",
            id: "a%2Fb",
            shortcut: "/late".into(),
            text: "Sorry for the wait".into(),
        },
    ];
    for case in cases {
        let socket = admin
            .request(Op::CannedUpsert {
                canned: Some(case.id.replace("%2F", "/")),
                shortcut: case.shortcut.clone(),
                text: case.text.clone(),
            })
            .await
            .expect_err(case.what);
        let socket_code = socket.server().expect("a server error").code;
        let body = serde_json::json!({"shortcut": case.shortcut, "text": case.text}).to_string();
        let path = format!("/admin/v1/canned/{}", case.id);
        let (status, answer) = http_request(hub.http_addr, "PUT", &path, &admin_token, &body).await;
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(socket_code, ErrorCode::BadRequest, "{}: socket", case.what);
        assert_eq!(
            answer["code"].as_str(),
            Some(socket_code.as_str()),
            "{}: the admin API answers like the socket ({answer})",
            case.what
        );
        assert_eq!(status, 400, "{}", case.what);
    }
    // Nothing of the above was stored.
    let (status, list) =
        http_request(hub.http_addr, "GET", "/admin/v1/canned", &admin_token, "").await;
    assert_eq!((status, list.trim()), (200, "[]"));

    // Deleting what is not there: not_found both ways.
    let socket = admin
        .request(Op::CannedDelete {
            canned: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(socket.server().unwrap().code, ErrorCode::NotFound);
    let (status, answer) = http_request(
        hub.http_addr,
        "DELETE",
        "/admin/v1/canned/ghost",
        &admin_token,
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(answer.contains("\"not_found\""), "{answer}");

    // The tenant switch without `chat.disable`: forbidden both ways, and nothing changes.
    let socket = agent.request(Op::DisableTenant {}).await.unwrap_err();
    assert_eq!(socket.server().unwrap().code, ErrorCode::Forbidden);
    let (status, answer) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/settings",
        &agent_token,
        r#"{"chat_disabled":true}"#,
    )
    .await;
    assert_eq!(status, 403);
    assert!(answer.contains("\"forbidden\""), "{answer}");
    let (status, settings) =
        http_request(hub.http_addr, "GET", "/admin/v1/settings", &admin_token, "").await;
    assert_eq!(status, 200);
    assert!(settings.contains("\"chat_disabled\":false"), "{settings}");
    hub.stop().await;
}

#[tokio::test]
async fn same_errors_both_ways_embedded() {
    same_errors(TestHub::start().await).await;
}

#[tokio::test]
async fn same_errors_both_ways_on_redis() {
    same_errors(TestHub::start_redis().await).await;
}
