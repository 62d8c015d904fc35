//! Retention per tenant (`PUT /admin/v1/settings {"retention_days": N}`): nodes run with
//! a retention day of a few seconds (`--retention-day-secs`, for tests) and a sweep
//! every two. Three end users: `idle` wrote (with a file) and an agent answered, then
//! nothing; `alive` wrote (with a file) and keeps writing every second; `fresh` writes
//! only after the others' first messages are past the policy. Then:
//! - no read path serves anything older than the policy, sweep or not: history (with
//!   the explicit `earlier_removed` marker and the policy's cut-off), a replay from
//!   `seq` 0, search, the transcript, the export;
//! - the sweep erases `idle` whole (its console and device get `erased` with reason
//!   `retention`; the device stays connected), trims `alive`'s older events while it
//!   lives on, deletes both old files, and says so in the audit log;
//! - with the policy lifted afterwards (nothing hidden any more) the old data is still
//!   nowhere — it was deleted, not only hidden — and every recent message is there;
//! - bad values are `bad_request`, callers without the privileges `forbidden`, and
//!   "forever" on a node without a record tier `bad_request`.
//!
//! On the embedded default and on three nodes over a 3-master Redis Cluster with the
//! PostgreSQL archive and files on S3.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    HubProcess, Nodes, conv, dev_token, full_history, http_get_as, http_request, search_op,
    send_attachment, texts, upload_file,
};
use chathub_protocol::{ErasureReason, Op, Reply, ServerFrame};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The length of a retention day on the nodes under test, seconds.
const DAY_SECS: u64 = 6;
/// The flags every node under test gets.
const RETENTION_FLAGS: [&str; 4] = ["--retention-day-secs", "6", "--retention-sweep-secs", "2"];

async fn connect(hubs: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(hubs.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

async fn set_retention(addr: SocketAddr, token: &str, days: &str) -> (u16, String) {
    let body = format!(r#"{{"retention_days":{days}}}"#);
    http_request(addr, "PUT", "/admin/v1/settings", token, &body).await
}

async fn hits(agent: &Client, word: &str) -> usize {
    match agent.request(search_op(word)).await.unwrap() {
        Reply::Search(page) => page.hits.len(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits (at most `within`) until `check` holds.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audit_actions(hubs: &Nodes, admin: &str) -> Vec<Value> {
    let (status, body) = http_get_as(hubs.http(0), admin, "/admin/v1/audit?limit=200").await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["entries"].as_array().cloned().unwrap_or_default()
}

async fn retention_scenario(hubs: Nodes) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let agent_token = dev_token("acme", Role::Agent, "bob");
    let http = hubs.http(0);

    // Bad input: out of range, not a number, callers without the privileges.
    for bad in ["0", "3651", "-1", "\"7\"", "1.5", "99999999999"] {
        let (status, body) = set_retention(http, &admin, bad).await;
        assert_eq!(status, 400, "retention_days {bad}: {body}");
        assert!(body.contains("bad_request"), "{body}");
    }
    let (status, body) = set_retention(http, &agent_token, "30").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = http_get_as(http, &admin, "/admin/v1/settings").await;
    assert_eq!(status, 200, "{body}");
    let settings: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["retention_days"], Value::Null, "nothing was set");
    // A change refused in part changes nothing.
    let mut policy = settings["attachments"].clone();
    policy["max_bytes"] = 1000.into();
    let both = serde_json::json!({"attachments": policy, "retention_days": 0}).to_string();
    let (status, body) = http_request(http, "PUT", "/admin/v1/settings", &admin, &both).await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = http_get_as(http, &admin, "/admin/v1/settings").await;
    let now: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        now["attachments"], settings["attachments"],
        "the policy stayed"
    );

    // The old data.
    let agent = connect(&hubs, 0, Role::Agent, "bob").await;
    let mut idle = connect(&hubs, 1, Role::EndUser, "idle").await;
    idle.subscribe(None, None).await.unwrap();
    for m in 0..3 {
        idle.send_text(None, &format!("oldidle note {m}"), None, None)
            .await
            .unwrap();
    }
    let idle_file = upload_file(
        &idle,
        hubs.http(1),
        None,
        "old.pdf",
        &chathub_testkit::fixtures::pdf(3000),
        "f1",
    )
    .await;
    send_attachment(&idle, None, &idle_file.id, None, "f1")
        .await
        .unwrap();
    agent
        .send_text(Some(&conv("idle")), "oldidle answer", Some(0), None)
        .await
        .unwrap();
    let alive = connect(&hubs, 2, Role::EndUser, "alive").await;
    alive
        .send_text(None, "oldalive first", None, None)
        .await
        .unwrap();
    let alive_file = upload_file(
        &alive,
        hubs.http(2),
        None,
        "early.pdf",
        &chathub_testkit::fixtures::pdf(4000),
        "f2",
    )
    .await;
    send_attachment(&alive, None, &alive_file.id, None, "f2")
        .await
        .unwrap();
    let old_written = Instant::now();
    // Reachable before: the links work.
    for (who, file) in [("idle", &idle_file), ("alive", &alive_file)] {
        let link = Op::AttachmentLink {
            conversation: Some(conv(who)),
            attachment: file.id.clone(),
        };
        agent.request(link).await.unwrap();
    }

    // The record tier has them (so that finding nothing later means something).
    let wait = if hubs.archive_lags { 30 } else { 1 };
    eventually(
        Duration::from_secs(wait),
        "old messages are searchable",
        || {
            let agent = &agent;
            async move { hits(agent, "oldidle").await == 4 && hits(agent, "oldalive").await == 1 }
        },
    )
    .await;

    // The policy: one (short) day.
    let (status, body) = set_retention(http, &admin, "1").await;
    assert_eq!(status, 200, "{body}");
    let settings: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["retention_days"], 1, "{settings}");
    let mut console = connect(&hubs, 0, Role::Agent, "erin").await;
    console.subscribe(Some(&conv("idle")), None).await.unwrap();

    // `alive` goes on writing, once a second.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let text = format!("alivefresh {n}");
                if alive.send_text(None, &text, None, None).await.is_ok() {
                    acked.push(text);
                }
                n += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            acked
        })
    };
    // Everything written so far goes past the policy; then `fresh` writes.
    let past = Duration::from_secs(DAY_SECS + 1);
    tokio::time::sleep(past.saturating_sub(old_written.elapsed())).await;
    let fresh = connect(&hubs, 1, Role::EndUser, "fresh").await;
    for m in 0..2 {
        fresh
            .send_text(
                None,
                &format!("freshword {m}"),
                None,
                Some(&format!("m{m}")),
            )
            .await
            .unwrap();
    }

    // No read path serves anything older than the policy, swept or not.
    let reply = agent
        .request(Op::History {
            conversation: Some(conv("alive")),
            before: None,
            after: None,
            limit: Some(200),
        })
        .await
        .unwrap();
    let Reply::History(page) = reply else {
        panic!("unexpected {reply:?}")
    };
    let policy = page.retention.expect("the page names the policy");
    assert_eq!(policy.days, 1);
    assert!(!page.has_more && page.earlier_removed, "{page:?}");
    assert!(
        page.events.iter().all(|e| e.at >= policy.cutoff),
        "{page:?}"
    );
    assert!(
        !texts(&page.events)
            .iter()
            .any(|t| t.starts_with("oldalive"))
    );
    for who in ["idle", "alive"] {
        let events = full_history(&agent, who).await;
        assert!(
            !texts(&events)
                .iter()
                .any(|t| t.starts_with("oldidle") || t.starts_with("oldalive")),
            "{who}: {events:?}"
        );
        // A replay from the start skips them too, and says so.
        let reader = connect(&hubs, 2, Role::Agent, "dora").await;
        let sub = reader.subscribe(Some(&conv(who)), Some(0)).await.unwrap();
        assert!(sub.retention.is_some(), "{sub:?}");
        let mut replayed = Vec::new();
        let mut reader = reader;
        while let Some(frame) = reader.try_next_event() {
            if let ServerFrame::Event(e) = frame {
                replayed.push(e.event);
            }
        }
        assert!(
            !texts(&replayed)
                .iter()
                .any(|t| t.starts_with("oldidle") || t.starts_with("oldalive")),
            "{who} replayed {replayed:?}"
        );
        if who == "alive" {
            assert!(sub.history_truncated, "{sub:?}");
        }
        // The transcript and the export.
        let reply = agent
            .request(Op::Transcript {
                conversation: Some(conv(who)),
                format: Some("text".into()),
            })
            .await
            .unwrap();
        let Reply::Transcript(t) = reply else {
            panic!("unexpected {reply:?}")
        };
        assert!(t.retention.is_some());
        assert!(
            t.messages.iter().all(|m| !m.text.starts_with("old")
                && m.text != "old.pdf"
                && m.text != "early.pdf"),
            "{who}: {:?}",
            t.messages
        );
        let (status, body) =
            http_get_as(http, &admin, &format!("/admin/v1/users/{who}/export")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body.contains("oldidle") && !body.contains("oldalive"),
            "{body}"
        );
    }
    for word in ["oldidle", "oldalive"] {
        assert_eq!(hits(&agent, word).await, 0, "{word} is not found");
    }
    eventually(Duration::from_secs(30), "fresh messages are found", || {
        let agent = &agent;
        async move { hits(agent, "freshword").await == 2 }
    })
    .await;

    // The sweep: `idle` erased whole, its console and device told (the device stays).
    let mut told = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while told.is_none() && Instant::now() < deadline {
        if let Some(ServerFrame::Erased(e)) =
            console.next_event_within(Duration::from_secs(1)).await
        {
            told = Some(e);
        }
    }
    let told = told.expect("the console is told of the expiry");
    assert_eq!(told.conversation, conv("idle"));
    assert_eq!(told.reason, ErasureReason::Retention);
    let mut device_told = None;
    for _ in 0..50 {
        match idle.next_event_within(Duration::from_millis(200)).await {
            Some(ServerFrame::Erased(e)) => {
                device_told = Some(e);
                break;
            }
            Some(_) => {}
            None => {}
        }
    }
    assert_eq!(
        device_told.map(|e| e.reason),
        Some(ErasureReason::Retention),
        "the device is told"
    );
    idle.request(Op::Ping {})
        .await
        .expect("the device stays connected");
    // The audit log has the change and the sweep's removals.
    eventually(
        Duration::from_secs(30),
        "the sweep trims the living conversation",
        || async {
            audit_actions(&hubs, &admin).await.iter().any(|e| {
                e["action"] == "retention_swept"
                    && (e["detail"]["hot_events"].as_u64().unwrap_or(0)
                        + e["detail"]["record_events"].as_u64().unwrap_or(0))
                        > 0
            })
        },
    )
    .await;
    // The sweep that erased `idle` records it once its round is over, a moment after
    // the console was told.
    eventually(
        Duration::from_secs(30),
        "the sweep's erasure is audited",
        || async {
            audit_actions(&hubs, &admin)
                .await
                .iter()
                .any(|e| e["action"] == "retention_swept" && e["detail"]["conversations"] == 1)
        },
    )
    .await;
    let audit = audit_actions(&hubs, &admin).await;
    let set = audit
        .iter()
        .find(|e| e["action"] == "retention_set")
        .expect("the change is audited");
    assert_eq!(set["detail"]["retention_days"], 1, "{set}");
    assert_eq!(set["actor"]["id"], "carol");

    // Lifted: nothing is hidden any more, and the old data is still nowhere.
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked.len() >= 3, "alive kept writing: {acked:?}");
    let (status, body) = set_retention(http, &admin, "null").await;
    assert_eq!(status, 200, "{body}");
    // Every node's settings cache has moved on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(full_history(&agent, "idle").await.is_empty());
    let alive_events = full_history(&agent, "alive").await;
    let alive_texts = texts(&alive_events);
    assert!(
        !alive_texts.iter().any(|t| t.starts_with("oldalive")),
        "{alive_texts:?}"
    );
    // The newest messages are all there (at least the last day's worth).
    let recent = &acked[acked.len() - 3..];
    for text in recent {
        assert!(alive_texts.contains(text), "{text} in {alive_texts:?}");
    }
    assert_eq!(
        texts(&full_history(&agent, "fresh").await),
        ["freshword 0", "freshword 1"]
    );
    for word in ["oldidle", "oldalive"] {
        assert_eq!(hits(&agent, word).await, 0, "{word} was deleted");
    }
    for (who, file) in [("idle", &idle_file), ("alive", &alive_file)] {
        let link = Op::AttachmentLink {
            conversation: Some(conv(who)),
            attachment: file.id.clone(),
        };
        assert!(
            agent.request(link).await.is_err(),
            "{who}'s old file was deleted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_the_embedded_default() {
    retention_scenario(Nodes::embedded(&RETENTION_FLAGS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_cluster_with_the_archive_and_s3() {
    retention_scenario(Nodes::cluster_with_archive(3, &RETENTION_FLAGS)).await;
}

/// Without a record tier (`--ephemeral`), "forever" is refused: the node keeps only its
/// hot window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forever_needs_a_record_tier() {
    let hub = HubProcess::spawn(&["--ephemeral"]);
    let admin = dev_token("acme", Role::Admin, "carol");
    let (status, body) = set_retention(hub.http_addr, &admin, "null").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("record tier"), "{body}");
    let (status, body) = set_retention(hub.http_addr, &admin, "30").await;
    assert_eq!(status, 200, "{body}");
}

/// Between sweeps the read paths hide what is past the policy: with no sweep due yet (an
/// hourly one), events past the cut-off are not served by history, replays, search or
/// transcripts — and come back once the policy is lifted, which shows they were only
/// hidden (the sweep had not run) and that hiding is what kept them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_paths_hide_what_the_sweep_has_not_reached() {
    let hub = HubProcess::spawn(&[
        "--retention-day-secs",
        "2",
        "--retention-sweep-secs",
        "3600",
    ]);
    let admin = dev_token("acme", Role::Admin, "carol");
    let agent = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    let device = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "ann"))
        .await
        .unwrap();
    for m in 0..3 {
        device
            .send_text(None, &format!("hiddenword {m}"), None, None)
            .await
            .unwrap();
    }
    let (status, body) = set_retention(hub.http_addr, &admin, "1").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    device.send_text(None, "newword", None, None).await.unwrap();

    let events = full_history(&agent, "ann").await;
    assert_eq!(texts(&events), ["newword"], "{events:?}");
    let reply = agent
        .request(Op::History {
            conversation: Some(conv("ann")),
            before: None,
            after: None,
            limit: Some(2),
        })
        .await
        .unwrap();
    let Reply::History(page) = reply else {
        panic!("unexpected {reply:?}")
    };
    assert!(page.earlier_removed && !page.has_more, "{page:?}");
    assert_eq!(texts(&page.events), ["newword"]);
    let mut reader = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "dora"))
        .await
        .unwrap();
    let sub = reader.subscribe(Some(&conv("ann")), Some(0)).await.unwrap();
    assert!(sub.history_truncated, "{sub:?}");
    let mut replayed = Vec::new();
    while let Some(frame) = reader.try_next_event() {
        if let ServerFrame::Event(e) = frame {
            replayed.push(e.event);
        }
    }
    assert_eq!(texts(&replayed), ["newword"]);
    assert_eq!(hits(&agent, "hiddenword").await, 0);
    assert_eq!(hits(&agent, "newword").await, 1);
    let reply = agent
        .request(Op::Transcript {
            conversation: Some(conv("ann")),
            format: Some("text".into()),
        })
        .await
        .unwrap();
    let Reply::Transcript(t) = reply else {
        panic!("unexpected {reply:?}")
    };
    assert!(!t.complete);
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    let rendered = t.rendered.unwrap_or_default();
    assert!(
        rendered.contains("earlier messages removed by the retention policy"),
        "{rendered}"
    );

    // Lifted before any sweep: everything is there again.
    let (status, body) = set_retention(hub.http_addr, &admin, "null").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hits(&agent, "hiddenword").await, 3);
    assert_eq!(
        texts(&full_history(&agent, "ann").await),
        ["hiddenword 0", "hiddenword 1", "hiddenword 2", "newword"]
    );
}
