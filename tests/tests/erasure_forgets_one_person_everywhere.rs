//! Erasure of end users (`DELETE /admin/v1/users/{user}`, `data.erase`): 100 end users
//! with messages, agents' answers, files, profiles and engagement history; 10 chosen at
//! random are erased while the others' devices and agents keep reading, searching and
//! typing and the doomed ones keep writing until just before their turn. Then:
//! - the other 90's exports are the same as before, field for field;
//! - the erased ones have nothing left: history, search, export, transcript and a resume
//!   from `seq` 0 are empty; an old `client_msg_id` is a new message (its idempotency key
//!   went too); their devices got `erased` and were closed with 4102, the agent following
//!   one got `erased`; the queue no longer lists them;
//! - the receipts add up (profile, engagement history, files, events) and a second
//!   erasure removes nothing; the audit log records each; bad calls get clear errors.
//!
//! On the embedded default (data directory, files on the local disk) and on three nodes
//! over a 3-master Redis Cluster with the PostgreSQL archive and files on S3.

use chathub_client::Client;
use chathub_domain::{Role, Status};
use chathub_e2e::{
    HubProcess, Nodes, conv, dev_token, full_history, http_get_as, http_request, list, search_op,
    send_attachment, upload_file,
};
use chathub_protocol::{Op, Reply, ServerFrame};
use chathub_testkit::{PostgresServer, RedisCluster};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const USERS: usize = 100;
const DOOMED: usize = 10;
const MESSAGES: usize = 4;

fn user(i: usize) -> String {
    format!("user{i:03}")
}

async fn connect(hubs: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(hubs.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

/// An export with what depends on when it was made removed (its time, the links'
/// signatures and expiry, the rendered transcript's header): what is left is the data.
fn data_of(export: &str) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in [
                    "generated_at",
                    "links_expire_at",
                    "url",
                    "thumbnail_url",
                    "rendered",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_str(export).unwrap();
    strip(&mut value);
    value
}

fn search_hits(reply: Reply) -> usize {
    match reply {
        Reply::Search(page) => page.hits.len(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn erasure_forgets_them_and_nobody_else(hubs: Nodes) {
    let admin = dev_token("acme", Role::Admin, "carol");
    // Ten doomed users, chosen at random (a fixed seed: a failure can be replayed).
    let mut seed = 0x2026_1202_u64;
    let mut doomed = Vec::new();
    while doomed.len() < DOOMED {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed % USERS as u64) as usize;
        if !doomed.contains(&i) {
            doomed.push(i);
        }
    }
    let with_file = |i: usize| doomed.contains(&i) || i.is_multiple_of(5);

    // Everyone's data: a profile, an engagement history event, messages (each with a
    // word only they wrote), an agent's answer, a file for some.
    let agent = connect(&hubs, 0, Role::Agent, "bob").await;
    let mut devices = Vec::new();
    for i in 0..USERS {
        let name = user(i);
        let http = hubs.http(i);
        let (status, body) = http_request(
            http,
            "PUT",
            &format!("/admin/v1/users/{name}/profile"),
            &admin,
            &format!(r#"{{"first_name":"First{i}","points_balance":{i}}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let event = format!(
            r#"{{"id":"h{i}","type":"points","action":"earned","title":"welcome","points":5,"at":{}}}"#,
            1_790_000_000_000u64 + i as u64
        );
        let path = format!("/admin/v1/users/{name}/history");
        let (status, body) = http_request(http, "POST", &path, &admin, &event).await;
        assert_eq!(status, 201, "{body}");
        let device = connect(&hubs, i, Role::EndUser, &name).await;
        device.subscribe(None, None).await.unwrap();
        for m in 0..MESSAGES {
            let text = format!("secret{i}x note {m} from {name}");
            device
                .send_text(None, &text, None, Some(&format!("{name}-m{m}")))
                .await
                .unwrap();
        }
        if with_file(i) {
            let pdf = chathub_testkit::fixtures::pdf(20_000 + i);
            let card = upload_file(&device, http, None, "statement.pdf", &pdf, "f1").await;
            send_attachment(&device, None, &card.id, None, "f1")
                .await
                .unwrap();
        }
        if i.is_multiple_of(2) {
            agent
                .send_text(
                    Some(&conv(&name)),
                    &format!("hello {name}"),
                    // Unanswered, never taken: epoch 0.
                    Some(0),
                    None,
                )
                .await
                .unwrap();
        }
        devices.push(device);
    }
    // The record tier has every message before the erasures (so that finding nothing
    // after them means something).
    for &i in &doomed {
        let word = format!("secret{i}x");
        let mut hits = 0;
        for _ in 0..300 {
            hits = search_hits(agent.request(search_op(&word)).await.unwrap());
            if hits == MESSAGES || !hubs.archive_lags {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(hits, MESSAGES, "{word} is searchable before the erasure");
    }
    let mut before = Vec::new();
    for i in 0..USERS {
        let (status, body) = http_get_as(
            hubs.http(i),
            &admin,
            &format!("/admin/v1/users/{}/export", user(i)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        before.push(data_of(&body));
    }

    // Traffic: the doomed keep writing (each until just before its erasure); the others'
    // devices type and read, an agent searches and reads their history.
    let stops: Vec<Arc<AtomicBool>> = (0..USERS)
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut writers = std::collections::HashMap::new();
    let mut doomed_devices = std::collections::HashMap::new();
    for (i, device) in devices.into_iter().enumerate() {
        if doomed.contains(&i) {
            let writer = connect(&hubs, i + 1, Role::EndUser, &user(i)).await;
            let stop = stops[i].clone();
            writers.insert(
                i,
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let text = format!("secret{i}x late {n}");
                        let _ = writer.send_text(None, &text, None, None).await;
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    n
                }),
            );
            doomed_devices.insert(i, device);
        } else {
            let stop = stops[i].clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = device
                        .request(Op::Typing {
                            conversation: None,
                            typing: true,
                        })
                        .await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
    }
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let agent = connect(&hubs, 1, Role::Agent, "dora").await;
        let stop = reader_stop.clone();
        let survivors: Vec<usize> = (0..USERS).filter(|i| !doomed.contains(i)).collect();
        tokio::spawn(async move {
            let mut reads = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let i = survivors[reads % survivors.len()];
                let history = Op::History {
                    conversation: Some(conv(&user(i))),
                    before: None,
                    after: Some(0),
                    limit: Some(50),
                };
                let _ = agent.request(history).await;
                let _ = agent.request(search_op(&format!("secret{i}x"))).await;
                reads += 1;
                // Within the session's request rate.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            reads
        })
    };
    // An agent's console following the first doomed conversation.
    let watched = doomed[0];
    let mut console = connect(&hubs, 2, Role::Agent, "erin").await;
    console
        .subscribe(Some(&conv(&user(watched))), None)
        .await
        .unwrap();

    let mut receipts = Vec::new();
    for (k, &i) in doomed.iter().enumerate() {
        stops[i].store(true, Ordering::Relaxed);
        let sent_late = writers.remove(&i).unwrap().await.unwrap();
        assert!(sent_late > 0, "{} kept writing until its erasure", user(i));
        let (status, body) = http_request(
            hubs.http(k),
            "DELETE",
            &format!("/admin/v1/users/{}", user(i)),
            &admin,
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let receipt: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(receipt["user"], user(i));
        assert_eq!(receipt["removed_anything"], true, "{receipt}");
        receipts.push((i, receipt));
    }
    reader_stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0, "the others were read meanwhile");
    for stop in &stops {
        stop.store(true, Ordering::Relaxed);
    }

    // Their devices were told, then closed with 4102; the console got `erased`.
    for &i in &doomed {
        let mut device = doomed_devices.remove(&i).unwrap();
        let code = tokio::time::timeout(Duration::from_secs(10), device.close_code()).await;
        assert_eq!(code, Ok(Some(4102)), "{} was closed", user(i));
        let mut told = None;
        while let Some(frame) = device.try_next_event() {
            if let ServerFrame::Erased(e) = frame {
                told = Some(e);
            }
        }
        let told = told.unwrap_or_else(|| panic!("{} was told", user(i)));
        assert_eq!(told.conversation, conv(&user(i)));
    }
    let mut erased_seen = None;
    while let Some(frame) = console.next_event_within(Duration::from_secs(5)).await {
        if let ServerFrame::Erased(e) = frame {
            erased_seen = Some(e);
            break;
        }
    }
    let erased_seen = erased_seen.expect("the console is told");
    assert_eq!(erased_seen.conversation, conv(&user(watched)));

    // The receipts add up.
    for (i, receipt) in &receipts {
        let export = &before[*i];
        assert_eq!(receipt["workspace"]["profile"], 1, "{receipt}");
        assert_eq!(receipt["workspace"]["engagement_history"], 1, "{receipt}");
        assert_eq!(receipt["attachments"]["attachments"], 1, "{receipt}");
        assert!(
            receipt["attachments"]["objects"].as_u64().unwrap() >= 2,
            "the file and its record: {receipt}"
        );
        assert_eq!(receipt["conversation"]["queue_entries"], 1, "{receipt}");
        let c = &receipt["conversation"];
        let events_before = export["conversation"]["messages"].as_array().unwrap().len()
            + export["conversation"]["timeline"].as_array().unwrap().len();
        let held = c["archived_events"]
            .as_u64()
            .unwrap()
            .max(c["history_events"].as_u64().unwrap()) as usize;
        assert!(
            held > events_before,
            "{held} events erased, more than the {events_before} before the late ones: {receipt}"
        );
        if !hubs.archive_lags {
            assert_eq!(c["archived_events"], c["history_events"], "{receipt}");
        }
        assert!(
            c["idempotency_keys"].as_u64().unwrap() >= MESSAGES as u64,
            "{receipt}"
        );
    }
    let total = |path: &[&str]| -> u64 {
        receipts
            .iter()
            .map(|(_, r)| path.iter().fold(r, |v, k| &v[*k]).as_u64().unwrap())
            .sum()
    };
    assert_eq!(total(&["attachments", "attachments"]), DOOMED as u64);
    assert_eq!(total(&["workspace", "profile"]), DOOMED as u64);

    // Nothing of them is left, on any read path.
    let queue = list(&agent, Status::Unanswered).await;
    let active = list(&agent, Status::Active).await;
    for &i in &doomed {
        let name = user(i);
        assert!(
            full_history(&agent, &name).await.is_empty(),
            "{name}'s history"
        );
        let hits = search_hits(
            agent
                .request(search_op(&format!("secret{i}x")))
                .await
                .unwrap(),
        );
        assert_eq!(hits, 0, "{name} is not found");
        for page in [&queue, &active] {
            assert!(
                page.items.iter().all(|e| e.conversation != conv(&name)),
                "{name} is not in the queue"
            );
        }
        let (status, body) = http_get_as(
            hubs.http(i),
            &admin,
            &format!("/admin/v1/users/{name}/export"),
        )
        .await;
        assert_eq!(status, 200);
        let export: Value = serde_json::from_str(&body).unwrap();
        assert!(export["profile"].is_null(), "{body}");
        assert!(export["conversation"].is_null(), "{body}");
        assert_eq!(export["engagement_history"], serde_json::json!([]));
        assert_eq!(export["attachments"], serde_json::json!([]));
        assert!(!body.contains(&format!("secret{i}x")), "{body}");
        let (status, body) = http_get_as(
            hubs.http(i),
            &admin,
            &format!("/admin/v1/conversations/{name}/transcript"),
        )
        .await;
        assert!(
            !body.contains(&format!("secret{i}x")),
            "{status}: the transcript has none of it: {body}"
        );
        // A device of theirs resuming from the start finds nothing.
        let mut again = connect(&hubs, i, Role::EndUser, &name).await;
        let subscribed = again.subscribe(None, Some(0)).await.unwrap();
        let mut replayed = Vec::new();
        while let Some(frame) = again.next_event_within(Duration::from_millis(300)).await {
            if let ServerFrame::Event(e) = frame {
                replayed.push(e.event.seq);
            }
        }
        assert!(
            replayed.is_empty(),
            "{name} resumed from 0: {replayed:?} ({subscribed:?})"
        );
        // Their idempotency keys went: an old client_msg_id is a new message, after
        // every seq the erased conversation had.
        let ack = again
            .send_text(None, "hello again", None, Some(&format!("{name}-m0")))
            .await
            .unwrap();
        if i == watched {
            // `opened`, then the message: after every seq it had, none given twice.
            assert_eq!(ack.seq, erased_seen.seq + 2);
        }
        assert_eq!(ack.status, Status::Unanswered);
        assert_eq!(full_history(&agent, &name).await.len(), 2, "opened + hello");
    }

    // The others' data is exactly what it was.
    for i in (0..USERS).filter(|i| !doomed.contains(i)) {
        let (status, body) = http_get_as(
            hubs.http(i),
            &admin,
            &format!("/admin/v1/users/{}/export", user(i)),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            data_of(&body),
            before[i],
            "{}'s export is unchanged",
            user(i)
        );
        if with_file(i) {
            let files = before[i]["attachments"].as_array().unwrap().len();
            assert_eq!(files, 1, "{} kept their file", user(i));
        }
    }

    // Erasing again removes what came after (the "hello again"), then nothing; the
    // audit log has every erasure with its receipt.
    let first = doomed[1];
    let first_path = format!("/admin/v1/users/{}", user(first));
    let erase_first = || http_request(hubs.http(0), "DELETE", &first_path, &admin, "");
    let (status, body) = erase_first().await;
    assert_eq!(status, 200, "{body}");
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["conversation"]["history_events"], 2, "{again}");
    assert_eq!(again["conversation"]["idempotency_keys"], 1, "{again}");
    assert_eq!(again["workspace"]["profile"], 0, "{again}");
    let (status, body) = erase_first().await;
    assert_eq!(status, 200, "{body}");
    let nothing: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(nothing["removed_anything"], false, "{nothing}");
    let mut erasures = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/audit?limit=100&before={c}"),
            None => "/admin/v1/audit?limit=100".to_owned(),
        };
        let (status, log) = http_get_as(hubs.http(0), &admin, &path).await;
        assert_eq!(status, 200, "{log}");
        let log: Value = serde_json::from_str(&log).unwrap();
        erasures.extend(
            log["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == "user_erased")
                .cloned(),
        );
        match log["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(erasures.len(), DOOMED + 2);
    assert!(
        erasures
            .iter()
            .any(|e| e["target"] == user(watched) && e["detail"]["workspace"]["profile"] == 1)
    );

    // Bad calls: someone never seen (200, nothing removed), no privilege (403), a bad id
    // (400); another tenant's admin cannot reach acme's users (the tenant is the token's).
    let (status, body) = http_request(
        hubs.http(0),
        "DELETE",
        "/admin/v1/users/nobody-ever",
        &admin,
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""removed_anything":false"#), "{body}");
    let agent_token = dev_token("acme", Role::Agent, "bob");
    let survivor = (0..USERS).find(|i| !doomed.contains(i)).unwrap();
    let path = format!("/admin/v1/users/{}", user(survivor));
    let (status, body) = http_request(hubs.http(0), "DELETE", &path, &agent_token, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(r#""code":"forbidden""#), "{body}");
    let (status, _) =
        http_request(hubs.http(0), "DELETE", "/admin/v1/users/a%20b", &admin, "").await;
    assert_eq!(status, 400);
    let other = dev_token("other", Role::Admin, "olga");
    let (status, body) = http_request(hubs.http(0), "DELETE", &path, &other, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""removed_anything":false"#), "{body}");
    let (status, body) = http_get_as(hubs.http(0), &admin, &format!("{path}/export")).await;
    assert_eq!(status, 200);
    assert_eq!(
        data_of(&body),
        before[survivor],
        "untouched by another tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_the_embedded_default() {
    erasure_forgets_them_and_nobody_else(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_a_cluster_with_the_archive_and_s3() {
    erasure_forgets_them_and_nobody_else(Nodes::cluster_with_archive(3, &[])).await;
}

/// An erasure on the embedded default is kept like any acknowledged change: the node
/// killed with SIGKILL right after, and started again on its data directory, still has
/// nothing of the erased user (memory is filled from the directory, which the erasure's
/// write emptied), the other user's conversation whole, and the erased one's counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_survives_a_kill_of_the_embedded_node() {
    let data = chathub_testkit::ScratchDir::new("erasure-restart");
    let dir = data.path().to_str().unwrap().to_owned();
    let mut hub = HubProcess::spawn(&["--data-dir", &dir]);
    let admin = dev_token("acme", Role::Admin, "carol");
    let agent_token = dev_token("acme", Role::Agent, "bob");
    for who in ["gone", "kept"] {
        let device = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, who))
            .await
            .unwrap();
        for m in 0..5 {
            device
                .send_text(
                    None,
                    &format!("{who}word note {m}"),
                    None,
                    Some(&format!("m{m}")),
                )
                .await
                .unwrap();
        }
    }
    let (status, body) =
        http_request(hub.http_addr, "DELETE", "/admin/v1/users/gone", &admin, "").await;
    assert_eq!(status, 200, "{body}");
    let receipt: Value = serde_json::from_str(&body).unwrap();
    // opened + 5 messages, in memory and in the file.
    assert_eq!(receipt["conversation"]["history_events"], 6, "{receipt}");
    assert_eq!(receipt["conversation"]["archived_events"], 6, "{receipt}");
    hub.kill9();
    let hub = HubProcess::spawn(&["--data-dir", &dir]);
    let agent = Client::connect(&hub.ws_url, &agent_token).await.unwrap();
    assert!(full_history(&agent, "gone").await.is_empty());
    assert_eq!(full_history(&agent, "kept").await.len(), 6);
    assert_eq!(
        search_hits(agent.request(search_op("gonEword")).await.unwrap()),
        0
    );
    assert_eq!(
        search_hits(agent.request(search_op("keptword")).await.unwrap()),
        5
    );
    // The counters were kept too: writing again continues after the erased seqs, and
    // the old client_msg_id is a new message.
    let device = Client::connect(&hub.ws_url, &dev_token("acme", Role::EndUser, "gone"))
        .await
        .unwrap();
    let ack = device
        .send_text(None, "back again", None, Some("m0"))
        .await
        .unwrap();
    assert_eq!(
        ack.seq, 8,
        "opened (7) and the message (8) after the erased 1..6"
    );
    let (status, body) = http_get_as(hub.http_addr, &admin, "/admin/v1/users/gone/export").await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("gonEword") && !body.contains("goneword"),
        "{body}"
    );
}

/// On a Redis Cluster with the archive, the node erasing dies right after the erasure's
/// atomic step (a fault point), before its second step (the tenant's queue, the
/// archive): the other node's sweeper finishes it from the mark the step left — the
/// queue no longer lists the user and the archive holds nothing of them — and calling
/// again through a live node answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_is_finished_by_another_node_when_the_erasing_one_dies() {
    let cluster = RedisCluster::start(3);
    let postgres = PostgresServer::start();
    let urls = cluster.urls().join(",");
    let pg = postgres.url();
    let args = [
        "--redis-cluster",
        urls.as_str(),
        "--redis-timeout-ms",
        "1000",
        "--archive",
        pg.as_str(),
    ];
    let live = HubProcess::spawn(&args);
    let mut doomed_node =
        HubProcess::spawn_with_env(&[("CHATHUB_FAULT_POINT", "abort-after-step")], &args);
    let admin = dev_token("acme", Role::Admin, "carol");
    let agent = Client::connect(&live.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    let device = Client::connect(&live.ws_url, &dev_token("acme", Role::EndUser, "zed"))
        .await
        .unwrap();
    for m in 0..5 {
        device
            .send_text(None, &format!("zedword {m}"), None, None)
            .await
            .unwrap();
    }
    // In the archive (search reads it) and in the queue first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while search_hits(agent.request(search_op("zedword")).await.unwrap()) < 5 {
        assert!(std::time::Instant::now() < deadline, "archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = |page: &chathub_protocol::ListPage| {
        page.items.iter().any(|e| e.conversation == conv("zed"))
    };
    assert!(queued(&list(&agent, Status::Unanswered).await));

    // Through the node that dies after the step: no answer.
    let (status, _) = http_request(
        doomed_node.http_addr,
        "DELETE",
        "/admin/v1/users/zed",
        &admin,
        "",
    )
    .await;
    assert_ne!(status, 200, "the node died before answering");
    let _ = doomed_node.child.wait();
    // The step itself applied: nothing in Redis's history at once.
    assert!(full_history(&agent, "zed").await.is_empty());
    // The sweeper of the live node finishes the rest.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let hits = search_hits(agent.request(search_op("zedword")).await.unwrap());
        let in_queue = queued(&list(&agent, Status::Unanswered).await);
        if hits == 0 && !in_queue {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "finished by the sweeper: {hits} hits, queued {in_queue}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) =
        http_request(live.http_addr, "DELETE", "/admin/v1/users/zed", &admin, "").await;
    assert_eq!(status, 200, "{body}");
    let receipt: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(receipt["conversation"]["archived_events"], 0, "{receipt}");
}
