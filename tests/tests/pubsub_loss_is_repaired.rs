//! Redis pub/sub is at most once. Killing every node's pub/sub connection
//! (`CLIENT KILL TYPE pubsub`) every 2 s for 60 s (`CHATHUB_PUBSUB_KILL_SECS` to change)
//! while an end user writes 100 msg/s loses nothing at the followers on the other nodes:
//! nodes resubscribe, and sessions fill what pub/sub dropped from history — the
//! gap-repair counter shows events were actually recovered that way.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{ClusterProcesses, RedisOptions, conv, http_get};
use chathub_protocol::ServerFrame;
use std::time::{Duration, Instant};

fn run_secs() -> u64 {
    std::env::var("CHATHUB_PUBSUB_KILL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// The unlabelled metric `name` in a `/metrics` body (0 when absent).
fn metric(body: &str, name: &str) -> f64 {
    chathub_e2e::metric_sum(body, &format!("{name} "))
}

/// Every `seq` the follower gets, in order, until it has `last`.
async fn collect(follower: &mut Client, last: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seqs.last() != Some(&last) && Instant::now() < deadline {
        if let Some(ServerFrame::Event(e)) =
            follower.next_event_within(Duration::from_millis(500)).await
        {
            seqs.push(e.event.seq);
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connections_lose_no_event() {
    let mut cluster = ClusterProcesses::start(3, RedisOptions::default());
    let user = cluster.connect(0, Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, None).await.unwrap();
    let start_seq = 2;
    let mut followers = Vec::new();
    for node in [1, 2] {
        let follower = cluster
            .connect(node, Role::Agent, &format!("agent-{node}"))
            .await;
        follower.subscribe(Some(&conv("u-1")), None).await.unwrap();
        followers.push(follower);
    }

    let run = Duration::from_secs(run_secs());
    let until = Instant::now() + run;
    let sender = tokio::spawn(async move {
        let mut acked = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while Instant::now() < until {
            tick.tick().await;
            // A send during a kill may fail with `unavailable`; the client retries with
            // the same id, as clients should.
            let id = format!("m-{acked}");
            while user.send_text(None, "tick", None, Some(&id)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked += 1;
        }
        acked
    });
    let mut kills = 0;
    while Instant::now() + Duration::from_secs(2) <= until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed = cluster
            .server()
            .command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert!(
            killed.is_some_and(|r| r.starts_with(':')),
            "CLIENT KILL answered"
        );
        kills += 1;
    }
    let acked = sender.await.unwrap();
    let last = start_seq + acked;
    for (i, follower) in followers.iter_mut().enumerate() {
        let seqs = collect(follower, last).await;
        let expected: Vec<u64> = (start_seq + 1..=last).collect();
        assert!(
            seqs == expected,
            "follower {i}: every event exactly once, in order ({} received, {} expected)",
            seqs.len(),
            expected.len()
        );
    }

    let mut repaired = 0.0;
    let mut reconnects = 0.0;
    for node in [1, 2] {
        let (_, metrics) = http_get(cluster.nodes[node].http_addr, "/metrics").await;
        repaired += metric(&metrics, "chathub_gap_repairs_total");
        reconnects += metric(&metrics, "chathub_pubsub_reconnects_total");
        assert!(
            metric(&metrics, "chathub_resyncs_total") > 0.0,
            "resyncs ran on node {node}"
        );
    }
    assert!(reconnects > 0.0, "pub/sub reconnects are counted");
    assert!(
        repaired > 0.0,
        "events lost by pub/sub were recovered from history"
    );
    eprintln!(
        "{acked} messages over {run:?}, {kills} pub/sub kills: {reconnects} reconnects, \
         {repaired} events repaired from history, none missing"
    );
}
