//! The tenant's alert schedule, run by the server: while a conversation waits
//! unanswered, each step alerts its targets at its time (`after_secs`, then every
//! `repeat_secs`): `available` agents, every agent, or the supervisors
//! (`chat.supervise`). Agents with a live socket get `alert` frames (once per occurrence,
//! on every device), the others the signed push webhook (`type: "alert"`); the breach
//! step says `breach` and the tenant's webhook gets a `breach` delivery. A take ends it:
//! no alert of that wait reaches anyone after the take. The schedule is checked
//! (`bad_request`), audited, and counted in the metrics.
//!
//! On the embedded default and on three nodes over a Redis Cluster with the archive
//! (one node's round decides each alert, under a lease).

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    Nodes, Received, dev_token, http_get, http_request, take_with, webhook_receiver,
};
use chathub_protocol::{AlertFrame, AlertLevel, ServerFrame};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn connect(nodes: &Nodes, i: usize, token: &str) -> Client {
    Client::connect(nodes.ws(i), token).await.unwrap()
}

fn supervisor_token(who: &str) -> String {
    chathub_e2e::dev_token_with(
        "acme",
        Role::Agent,
        who,
        &["chat.take", "chat.finish", "chat.supervise"],
    )
}

async fn api(nodes: &Nodes, method: &str, path: &str, body: &str) -> (u16, String) {
    let admin = dev_token("acme", Role::Admin, "carol");
    http_request(nodes.http(0), method, path, &admin, body).await
}

/// Every alert about `conversation` that reaches `client` within `within`.
async fn alerts_within(
    client: &mut Client,
    conversation: &str,
    within: Duration,
) -> Vec<AlertFrame> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return got;
        }
        match client.next_event_within(left).await {
            Some(ServerFrame::Alert(a)) if a.conversation.as_str() == conversation => got.push(a),
            Some(_) => {}
            None => return got,
        }
    }
}

/// Waits (bounded) until `client` got an alert of `conversation` matching `pred`;
/// returns every alert of it seen on the way, the matching one last.
async fn until_alert(
    client: &mut Client,
    conversation: &str,
    mut pred: impl FnMut(&AlertFrame) -> bool,
) -> Vec<AlertFrame> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some(ServerFrame::Alert(a)) if a.conversation.as_str() == conversation => {
                let done = pred(&a);
                got.push(a);
                if done {
                    return got;
                }
            }
            Some(_) => {}
            None => panic!("timed out waiting for an alert; got {got:?}"),
        }
    }
}

fn pushes(hook: &Arc<Mutex<Vec<Received>>>, kind: &str) -> Vec<serde_json::Value> {
    hook.lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_slice::<serde_json::Value>(body).unwrap())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Waits (bounded) until the webhook got a delivery matching `pred`.
async fn until_push(
    hook: &Arc<Mutex<Vec<Received>>>,
    kind: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = pushes(hook, kind).into_iter().find(|v| pred(v)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} push came: {:?}",
            pushes(hook, kind)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `line_start`'s samples summed over every node's `/metrics`.
async fn metric_sum(nodes: &Nodes, line_start: &str) -> f64 {
    let mut sum = 0.0;
    for i in 0..nodes.nodes.len() {
        let (_, body) = http_get(nodes.http(i), "/metrics").await;
        sum += chathub_e2e::metric_sum(&body, line_start);
    }
    sum
}

async fn scenario(nodes: Nodes, hook: Arc<Mutex<Vec<Received>>>) {
    for bad in [
        r#"{"alerts":{"steps":[]}}"#,
        r#"{"alerts":{"steps":[{"after_secs":604801,"notify":"agents"}]}}"#,
        r#"{"alerts":{"steps":[{"after_secs":0,"repeat_secs":0,"notify":"agents"}]}}"#,
        r#"{"alerts":{"steps":[{"after_secs":0,"notify":"everyone"}]}}"#,
        r#"{"alerts":{"steps":[{"after_secs":0,"notify":"agents","later":1}]}}"#,
    ] {
        let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Agents may not set it.
    let agent = dev_token("acme", Role::Agent, "alice");
    let (status, _) = http_request(
        nodes.http(0),
        "PUT",
        "/admin/v1/settings",
        &agent,
        r#"{"alerts":null}"#,
    )
    .await;
    assert_eq!(status, 403);

    // Offline people are known to the tenant once seen: ola (an agent) and vic (a
    // supervisor) connect once and leave.
    drop(connect(&nodes, 1, &dev_token("acme", Role::Agent, "ola")).await);
    drop(connect(&nodes, 2, &supervisor_token("vic")).await);
    let mut alice = connect(&nodes, 1, &dev_token("acme", Role::Agent, "alice")).await;
    let mut alice_phone = connect(&nodes, 0, &dev_token("acme", Role::Agent, "alice")).await;
    let mut sam = connect(&nodes, 2, &supervisor_token("sam")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let schedule = r#"{"alerts":{"steps":[
        {"after_secs":0,"repeat_secs":2,"notify":"available"},
        {"after_secs":3,"notify":"supervisors"},
        {"after_secs":5,"notify":"agents","breach":true}]}}"#;
    let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", schedule).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""notify":"supervisors""#), "{body}");

    let ann = connect(&nodes, 0, &dev_token("acme", Role::EndUser, "ann")).await;
    let started = Instant::now();
    ann.send_text(None, "my parcel is late", None, None)
        .await
        .unwrap();

    // The first step at once, again every 2 s: on both of alice's devices.
    let first = until_alert(&mut alice, "ann", |_| true).await;
    let first = first.last().unwrap().clone();
    assert_eq!(
        (first.step, first.occurrence, first.level),
        (0, 0, AlertLevel::Reminder)
    );
    assert_eq!(first.preview.as_deref(), Some("my parcel is late"));
    let phone = until_alert(&mut alice_phone, "ann", |_| true).await;
    assert_eq!(
        phone.last().unwrap(),
        &first,
        "every device gets the same alert"
    );
    // The escalation reaches the supervisor on line, and vic by push; the breach
    // everyone, ola and vic by push, and the tenant's breach delivery.
    let seen_by_sam = until_alert(&mut sam, "ann", |a| a.level == AlertLevel::Breach).await;
    let escalation = seen_by_sam
        .iter()
        .find(|a| a.level == AlertLevel::Escalation)
        .expect("the supervisor got the escalation before the breach");
    assert_eq!(escalation.step, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the breach came before its time"
    );
    let vic = until_push(&hook, "alert", |v| {
        v["agent"] == "vic" && v["alert"]["step"] == 1
    })
    .await;
    assert_eq!(vic["alert"]["level"], "escalation");
    assert_eq!(vic["conversation"], "ann");
    until_push(&hook, "alert", |v| {
        v["agent"] == "ola" && v["alert"]["level"] == "breach"
    })
    .await;
    let breach = until_push(&hook, "breach", |v| v["conversation"] == "ann").await;
    assert!(breach.get("agent").is_none(), "{breach}");
    assert!(
        pushes(&hook, "alert")
            .iter()
            .all(|v| v["agent"] != "alice" && v["agent"] != "sam"),
        "agents on line get frames, not pushes"
    );
    let mut alice_seen = until_alert(&mut alice, "ann", |a| a.level == AlertLevel::Breach).await;
    alice_seen.insert(0, first.clone());
    assert!(
        alice_seen.iter().all(|a| a.step != 1),
        "alice is no supervisor: {alice_seen:?}"
    );
    assert!(
        alice_seen.iter().any(|a| a.step == 0 && a.occurrence >= 1),
        "the first step repeats: {alice_seen:?}"
    );
    // Each occurrence once per device.
    let mut keys: Vec<(u32, u32)> = alice_seen.iter().map(|a| (a.step, a.occurrence)).collect();
    let count = keys.len();
    keys.dedup();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        count,
        "an occurrence came twice: {alice_seen:?}"
    );

    // alice takes it: nothing more about that wait, on any device, for anyone.
    take_with(&alice, "ann", "Hello, I am on it").await;
    let pushed = pushes(&hook, "alert").len();
    for (who, client) in [("alice", &mut alice), ("sam", &mut sam)] {
        let late = alerts_within(client, "ann", Duration::from_millis(100)).await;
        // Only what was in flight before the take's acknowledgement may still be read
        // out of the socket's buffer: older than the take.
        drop(late);
        let after = alerts_within(client, "ann", Duration::from_secs(3)).await;
        assert!(
            after.is_empty(),
            "{who} was alerted after the take: {after:?}"
        );
    }
    assert_eq!(
        pushes(&hook, "alert").len(),
        pushed,
        "a push after the take"
    );

    // Counted and audited.
    assert!(metric_sum(&nodes, "chathub_breaches_total").await >= 1.0);
    assert!(
        metric_sum(
            &nodes,
            r#"chathub_alerts_total{level="escalation",via="push"}"#
        )
        .await
            >= 1.0
    );
    assert!(metric_sum(&nodes, "chathub_first_alert_seconds_count").await >= 1.0);
    let (_, audit) = api(&nodes, "GET", "/admin/v1/audit", "").await;
    assert!(audit.contains("alert_schedule_set"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_agents_until_taken_embedded() {
    let (url, hook) = webhook_receiver(0).await;
    let flags = [
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        "webhook-secret-0123",
    ];
    scenario(Nodes::embedded(&flags), hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_agents_until_taken_on_a_cluster() {
    let (url, hook) = webhook_receiver(0).await;
    let flags = [
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        "webhook-secret-0123",
    ];
    scenario(Nodes::cluster_with_archive(3, &flags), hook).await;
}
