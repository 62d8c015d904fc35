//! Redis goes away and comes back (AOF on, SIGKILL): the nodes survive, answer
//! `unavailable` meanwhile (an acknowledged message is never silently dropped), report
//! not-ready on /readyz, resubscribe afterwards and deliver live events again; every
//! message acknowledged before the outage is still in history.

use chathub_domain::Role;
use chathub_e2e::{ClusterProcesses, RedisOptions, conv, full_history, http_get};
use chathub_protocol::{ErrorCode, ServerFrame};
use std::time::{Duration, Instant};

async fn wait_ready(addr: std::net::SocketAddr, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(addr, "/readyz").await.0 != want {
        assert!(Instant::now() < deadline, "/readyz never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_restart() {
    let mut cluster = ClusterProcesses::start(
        2,
        RedisOptions {
            aof: true,
            ..Default::default()
        },
    );
    let user = cluster.connect(0, Role::EndUser, "u-1").await;
    let mut agent = cluster.connect(1, Role::Agent, "alice").await;
    let c = conv("u-1");
    let mut acked = Vec::new();
    for i in 0..20 {
        let id = format!("before-{i}");
        user.send_text(None, "before", None, Some(&id))
            .await
            .unwrap();
        acked.push(id);
    }
    let sub = agent.subscribe(Some(&c), None).await.unwrap();
    let mut last = sub.view.state.seq;

    cluster.server().kill();
    wait_ready(cluster.nodes[0].http_addr, 503).await;
    // Sends fail visibly while Redis is away.
    let err = user
        .send_text(None, "during", None, Some("during-1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.server().map(|e| e.code),
        Some(ErrorCode::Unavailable),
        "{err:?}"
    );

    cluster.server().restart();
    wait_ready(cluster.nodes[0].http_addr, 200).await;
    wait_ready(cluster.nodes[1].http_addr, 200).await;
    // Retrying the failed send with the same id is safe: at most one copy.
    let mut delivered = None;
    for _ in 0..50 {
        match user.send_text(None, "during", None, Some("during-1")).await {
            Ok(ack) => {
                delivered = Some(ack);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let ack = delivered.expect("sends work again after the restart");
    acked.push("during-1".into());
    user.send_text(None, "after", None, Some("after-1"))
        .await
        .unwrap();
    acked.push("after-1".into());

    // The agent's node resubscribed: live events arrive again, continuing the sequence.
    let deadline = Instant::now() + Duration::from_secs(20);
    while last < ack.seq + 1 {
        assert!(
            Instant::now() < deadline,
            "live events after the restart never arrived"
        );
        if let Some(ServerFrame::Event(e)) = agent.next_event_within(Duration::from_secs(1)).await {
            assert_eq!(e.event.seq, last + 1, "no gap, no duplicate");
            last = e.event.seq;
        }
    }

    let history = full_history(&agent, "u-1").await;
    chathub_e2e::assert_each_once(&history, &acked);
}
