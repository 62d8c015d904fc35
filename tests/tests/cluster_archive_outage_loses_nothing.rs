//! When PostgreSQL goes down under load, cluster mode keeps going on Redis, its hot tier:
//! sends are acknowledged, `/readyz` stays ready and says `archive: degraded`, the
//! archive lag grows on `/metrics`, and what needs the archive (search, history older
//! than Redis's window) answers `unavailable`. When PostgreSQL comes back the nodes copy
//! what waited in Redis: the archive ends with every acknowledged message, every `seq`
//! once, and readiness says `archive: ok` again.

use chathub_client::Client;
use chathub_domain::{ConversationId, Event, Role, TenantId};
use chathub_e2e::{HubProcess, client_msg_ids, dev_token, everything, http_get, search_op};
use chathub_protocol::{ErrorCode, Op};
use chathub_store::postgres::{Archive, ArchiveConfig};
use chathub_testkit::{PostgresServer, RedisOptions, RedisServer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;

/// Polls `check` every 100 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node's archive lag gauge, seconds.
async fn lag(node: &HubProcess) -> f64 {
    let (_, body) = http_get(node.http_addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix("chathub_archive_lag_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn error_code(client: &Client, op: Op) -> Option<ErrorCode> {
    client.request(op).await.err()?.server().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_outage_delays_the_copy_and_loses_nothing() {
    let mut pg = PostgresServer::start();
    let redis = RedisServer::start_with(RedisOptions {
        extra: vec!["--stream-node-max-entries".into(), "4".into()],
        ..RedisOptions::default()
    });
    let pg_url = pg.url();
    let args = ["--archive", pg_url.as_str(), "--history-max-len", "5"];
    let nodes: Vec<HubProcess> = (0..2)
        .map(|_| HubProcess::spawn_redis(&redis.url(), &args))
        .collect();
    let (_, ready) = http_get(nodes[0].http_addr, "/readyz").await;
    assert_eq!(ready, "ready\narchive: ok\n");

    // An old conversation, archived and trimmed in Redis before the outage.
    let old = Client::connect(&nodes[0].ws_url, &dev_token("acme", Role::EndUser, "old"))
        .await
        .unwrap();
    for n in 0..30 {
        old.send_text(None, &format!("coupon {n}"), None, None)
            .await
            .unwrap();
    }
    eventually(
        "redis trims the archived events",
        Duration::from_secs(10),
        || async {
            redis
                .command(&["XLEN", "chathub:conv:{acme/old}:history"])
                .and_then(|l| l.trim().trim_start_matches(':').parse::<u64>().ok())
                .is_some_and(|len| len < 20)
        },
    )
    .await;

    // Writers through both nodes, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let during_outage = Arc::new(AtomicUsize::new(0));
    let outage = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let subject = format!("w{w}");
        let url = nodes[w % 2].ws_url.clone();
        let (stop, acked) = (stop.clone(), acked.clone());
        let (outage, during_outage) = (outage.clone(), during_outage.clone());
        writers.push(tokio::spawn(async move {
            let client = Client::connect(&url, &dev_token("acme", Role::EndUser, &subject))
                .await
                .unwrap();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let id = format!("m{n}");
                client
                    .send_text(None, "hello", None, Some(&id))
                    .await
                    .expect("sends are acknowledged, archive or not");
                if outage.load(Ordering::Relaxed) {
                    during_outage.fetch_add(1, Ordering::Relaxed);
                }
                acked
                    .lock()
                    .unwrap()
                    .entry(subject.clone())
                    .or_default()
                    .push(id);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.kill();
    outage.store(true, Ordering::Relaxed);
    for node in &nodes {
        eventually("readyz says degraded", Duration::from_secs(10), || async {
            let (status, body) = http_get(node.http_addr, "/readyz").await;
            status == 200 && body == "ready\narchive: degraded\n"
        })
        .await;
    }
    eventually("the lag grows", Duration::from_secs(10), || async {
        lag(&nodes[0]).await > 1.0
    })
    .await;
    let agent = Client::connect(&nodes[1].ws_url, &dev_token("acme", Role::Agent, "alice"))
        .await
        .unwrap();
    let search = search_op("coupon");
    assert_eq!(
        error_code(&agent, search.clone()).await,
        Some(ErrorCode::Unavailable)
    );
    let deep = Op::History {
        conversation: Some(ConversationId::new("old").unwrap()),
        before: Some(3),
        after: None,
        limit: Some(10),
    };
    assert_eq!(error_code(&agent, deep).await, Some(ErrorCode::Unavailable));
    let (status, _) = http_get(nodes[0].http_addr, "/readyz").await;
    assert_eq!(status, 200, "still ready: sends work");

    pg.restart();
    for node in &nodes {
        eventually("readyz says ok again", Duration::from_secs(15), || async {
            let (_, body) = http_get(node.http_addr, "/readyz").await;
            body == "ready\narchive: ok\n"
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        during_outage.load(Ordering::Relaxed) > 0,
        "messages were acknowledged during the outage"
    );
    assert!(agent.request(search).await.is_ok(), "search answers again");

    // Every acknowledged message reaches the archive, every seq once, no gap.
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let acked = acked.lock().unwrap().clone();
    for w in 0..WRITERS {
        let subject = format!("w{w}");
        let c = ConversationId::new(&subject).unwrap();
        let wanted = acked[&subject].len() + 1;
        let start = Instant::now();
        let events: Vec<Event> = loop {
            let events = archive
                .history(&tenant, &c, everything())
                .await
                .map(|s| s.events)
                .unwrap_or_default();
            if events.len() >= wanted {
                break events;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{subject}: the archive holds {} of {wanted} events; missing {:?}",
                events.len(),
                (1..=wanted as u64)
                    .filter(|s| events.iter().all(|e| e.seq != *s))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{subject}"
        );
        let expected: Vec<&str> = acked[&subject].iter().map(String::as_str).collect();
        assert_eq!(
            client_msg_ids(&events),
            expected,
            "{subject}: every acknowledged message once, in order"
        );
    }
}
