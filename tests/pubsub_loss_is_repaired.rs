//! Redis pub/sub is at most once. Killing every node's pub/sub connection again and again
//! while messages flow loses nothing at the clients: nodes resubscribe and sessions fill
//! the gaps from history (and the gap-repair counter shows that path ran).

use chathub_domain::Role;
use chathub_e2e::{ClusterProcesses, RedisOptions, conv, http_get};
use chathub_protocol::ServerFrame;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connections_lose_no_event() {
    let mut cluster = ClusterProcesses::start(2, RedisOptions::default());
    let user = cluster.connect(0, Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, None).await.unwrap();
    let mut follower = cluster.connect(1, Role::Agent, "alice").await;
    follower.subscribe(Some(&conv("u-1")), None).await.unwrap();
    let start_seq = 2;

    let sender = tokio::spawn(async move {
        let mut acked = 0u64;
        for i in 0..300 {
            // A send during a kill may fail with `unavailable`; the client retries with
            // the same id, as clients should.
            let id = format!("m-{i}");
            for _ in 0..20 {
                if user.send_text(None, "tick", None, Some(&id)).await.is_ok() {
                    acked += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (acked, user)
    });
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed = cluster
            .server()
            .command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert!(
            killed.is_some_and(|r| r.starts_with(':')),
            "CLIENT KILL answered"
        );
    }
    let (acked, _user) = sender.await.unwrap();
    assert_eq!(acked, 300);
    let last = start_seq + acked;
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < acked as usize && tokio::time::Instant::now() < deadline {
        if let Some(ServerFrame::Event(e)) =
            follower.next_event_within(Duration::from_millis(500)).await
            && !seen.insert(e.event.seq)
        {
            duplicates += 1;
        }
    }
    let expected: BTreeSet<u64> = (start_seq + 1..=last).collect();
    assert_eq!(seen, expected, "every event exactly once");
    assert_eq!(duplicates, 0);
    let (_, metrics) = http_get(cluster.nodes[1].http_addr, "/metrics").await;
    // Every re-established subscription made the follower's session catch up from
    // history (whether or not events were missing at that moment).
    let resyncs: f64 = metrics
        .lines()
        .find(|l| l.starts_with("chathub_resyncs_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(resyncs > 0.0, "the repair path ran: {resyncs}");
    // Operators see the lost pub/sub connections.
    let reconnects: f64 = metrics
        .lines()
        .find(|l| l.starts_with("chathub_pubsub_reconnects_total "))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        reconnects > 0.0,
        "pub/sub reconnects are counted: {metrics}"
    );
}
