//! Export of one end user (`GET /admin/v1/users/{user}/export`, `data.export`): the
//! profile, the whole engagement history, every message of the conversation in order
//! with its ownership timeline and engagements, the files as links that download the
//! very bytes, as JSON and as readable text; counted in a receipt and in the audit log;
//! nothing of anyone else; an unknown user is an empty export; the privilege is needed.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    HubProcess, conv, dev_token, http_bytes, http_exchange, http_request, path_of, send_attachment,
    upload_file,
};
use chathub_protocol::Op;
use serde_json::Value;

async fn get(hub: &HubProcess, token: &str, path: &str) -> (u16, String) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    http_exchange(hub.http_addr, &request).await
}

#[tokio::test]
async fn an_export_holds_everything_about_the_user_and_nothing_else() {
    let hub = HubProcess::spawn(&[]);
    let admin = dev_token("acme", Role::Admin, "carol");
    let (status, body) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/users/ann/profile",
        &admin,
        r#"{"first_name":"Ann","last_name":"Lee","points_balance":340,"segments":["gold"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (i, action) in ["earned", "viewed", "received"].iter().enumerate() {
        let event = format!(
            r#"{{"id":"h{i}","type":"points","action":"{action}","title":"event {i}","points":{i},"at":{}}}"#,
            1_790_000_000_000u64 + i as u64
        );
        let (status, body) = http_request(
            hub.http_addr,
            "POST",
            "/admin/v1/users/ann/history",
            &admin,
            &event,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    // The conversation: ann writes and sends a file, bob takes it and answers, finishes.
    let ann = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "ann"))
        .await
        .unwrap();
    let texts: Vec<String> = (0..120).map(|i| format!("ann's message {i}")).collect();
    for text in &texts {
        ann.send_text(None, text, None, None).await.unwrap();
    }
    let pdf = chathub_testkit::fixtures::pdf(40_000);
    let card = upload_file(&ann, hub.http_addr, None, "receipt.pdf", &pdf, "f1").await;
    send_attachment(&ann, None, &card.id, None, "f1")
        .await
        .unwrap();
    let bob = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    let taken = bob
        .send_text(Some(&conv("ann")), "Hello Ann, bob here.", Some(0), None)
        .await
        .unwrap();
    bob.request(Op::Finish {
        conversation: Some(conv("ann")),
        epoch: Some(taken.epoch),
    })
    .await
    .unwrap();
    // Someone else's conversation, which must not appear.
    let ben = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "ben"))
        .await
        .unwrap();
    ben.send_text(None, "ben's secret", None, None)
        .await
        .unwrap();

    let (status, body) = get(&hub, &admin, "/admin/v1/users/ann/export").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("ben's secret"));
    let export: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(export["user"], "ann");
    assert_eq!(export["profile"]["first_name"], "Ann");
    assert_eq!(export["profile"]["points_balance"], 340);
    let history: Vec<&str> = export["engagement_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["h2", "h1", "h0"], "newest first");
    let messages: Vec<&str> = export["conversation"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = texts.iter().map(String::as_str).collect();
    expected.push("receipt.pdf");
    expected.push("Hello Ann, bob here.");
    assert_eq!(messages, expected, "every message, in order");
    let causes: Vec<&str> = export["conversation"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["opened", "taken", "finished"]);
    let rendered = export["conversation"]["rendered"].as_str().unwrap();
    assert!(rendered.contains("ann's message 119"), "{rendered}");
    let receipt = &export["receipt"];
    assert_eq!(receipt["profile"], true);
    assert_eq!(receipt["engagement_history"], 3);
    assert_eq!(receipt["messages"], 122);
    assert_eq!(receipt["timeline"], 3);
    assert_eq!(receipt["attachments"], 1);

    // The file's link downloads the very bytes.
    let file = &export["attachments"][0];
    assert_eq!(file["card"]["name"], "receipt.pdf");
    assert_eq!(file["sent_by"], "end_user:ann");
    let url = file["url"].as_str().unwrap();
    let (status, _, bytes) = http_bytes(hub.http_addr, "GET", &path_of(url), &[], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, pdf);

    // Readable text.
    let (status, text) = get(&hub, &admin, "/admin/v1/users/ann/export?format=text").await;
    assert_eq!(status, 200);
    for needle in [
        "name: Ann Lee",
        "event 2",
        "ann's message 0",
        "Hello Ann, bob here.",
        "receipt.pdf",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("ben's secret"));

    // The audit log has both exports, with their counts.
    let (status, log) = get(&hub, &admin, "/admin/v1/audit").await;
    assert_eq!(status, 200);
    let log: Value = serde_json::from_str(&log).unwrap();
    let exports: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user_exported")
        .collect();
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0]["target"], "ann");
    assert_eq!(exports[0]["detail"]["messages"], 122);

    // Nobody known: an empty export. Without the privilege: forbidden. A bad id: 400.
    let (status, body) = get(&hub, &admin, "/admin/v1/users/nobody/export").await;
    assert_eq!(status, 200, "{body}");
    let empty: Value = serde_json::from_str(&body).unwrap();
    assert!(empty["profile"].is_null() && empty["conversation"].is_null());
    assert_eq!(empty["engagement_history"], serde_json::json!([]));
    let agent = dev_token("acme", Role::Agent, "bob");
    let (status, _) = get(&hub, &agent, "/admin/v1/users/ann/export").await;
    assert_eq!(status, 403);
    let (status, _) = get(&hub, &admin, "/admin/v1/users/a%20b/export").await;
    assert_eq!(status, 400);
    let (status, _) = get(&hub, &admin, "/admin/v1/users/ann/export?format=pdf").await;
    assert_eq!(status, 400);
    // Another tenant's admin sees nothing of ann.
    let other = dev_token("other", Role::Admin, "olga");
    let (status, body) = get(&hub, &other, "/admin/v1/users/ann/export").await;
    assert_eq!(status, 200);
    assert!(!body.contains("ann's message"));
}
