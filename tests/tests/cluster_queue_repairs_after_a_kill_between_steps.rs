//! On a Redis Cluster the tenant's queue entry is a second step after the atomic script
//! (another slot). A node that dies between the two leaves a mark the script wrote with
//! the command; the other nodes notice the death and redo the step from Redis alone. Here
//! the node aborts at exactly that point (a fault-injection point), twice: once when an
//! end user opens a conversation (the queue would miss it) and once when an agent takes
//! one (the queue would show it unanswered still). Each time the queue is right within
//! 5 s, with no further message from anyone.

use chathub_client::Client;
use chathub_domain::{Role, Status};
use chathub_e2e::{HubProcess, conv, dev_token, list};
use chathub_testkit::RedisCluster;
use std::time::{Duration, Instant};

/// The node that aborts after its first command's atomic step.
fn doomed(urls: &str) -> HubProcess {
    HubProcess::spawn_with_env(
        &[("CHATHUB_FAULT_POINT", "abort-after-step")],
        &["--redis-cluster", urls, "--redis-timeout-ms", "1000"],
    )
}

/// Waits (at most `within`) until `agent`'s `status` queue holds `conversation` at
/// `seq`; returns how long it took.
async fn until_queued(
    agent: &Client,
    status: Status,
    conversation: &str,
    seq: u64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let page = list(agent, status).await;
        if let Some(item) = page
            .items
            .iter()
            .find(|i| i.conversation.as_str() == conversation)
            && item.seq == seq
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{conversation} not in the {status:?} queue at seq {seq} after {within:?}: {:?}",
            page.items
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_right_within_5_s_after_a_kill_between_the_steps() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls().join(",");
    let cluster_args = [
        "--redis-cluster",
        urls.as_str(),
        "--redis-timeout-ms",
        "1000",
    ];
    let _b = HubProcess::spawn(&cluster_args);
    let c = HubProcess::spawn(&cluster_args);
    let watcher = Client::connect(&c.ws_url, &dev_token("acme", Role::Agent, "watcher"))
        .await
        .unwrap();

    // 1. An end user opens a conversation through the doomed node: the step applies (the
    //    message is stored), the node aborts before the queue step.
    let mut first = doomed(&urls);
    let user = Client::connect(&first.ws_url, &dev_token("acme", Role::EndUser, "u-1"))
        .await
        .unwrap();
    let sent = user
        .send_text(None, "my coupon does not scan", None, Some("m-1"))
        .await;
    assert!(sent.is_err(), "the node aborts before acknowledging");
    let _ = first.child.wait();
    let took = until_queued(
        &watcher,
        Status::Unanswered,
        "u-1",
        2,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("missing entry repaired after {took:?}");
    // The step did apply: the message is in history, once.
    let user_again = Client::connect(&c.ws_url, &dev_token("acme", Role::EndUser, "u-1"))
        .await
        .unwrap();
    let history = chathub_e2e::full_history(&user_again, "u-1").await;
    assert_eq!(history.len(), 2, "opened + the message: {history:?}");

    // 2. An agent takes it through another doomed node: the queue would keep showing it
    //    unanswered.
    let mut second = doomed(&urls);
    let bob = Client::connect(&second.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    let taken = bob
        .send_text(Some(&conv("u-1")), "bob here", Some(0), Some("b-1"))
        .await;
    assert!(taken.is_err(), "the node aborts before acknowledging");
    let _ = second.child.wait();
    until_queued(&watcher, Status::Active, "u-1", 4, Duration::from_secs(5)).await;
    let active = list(&watcher, Status::Active).await;
    let item = active
        .items
        .iter()
        .find(|i| i.conversation.as_str() == "u-1")
        .unwrap();
    assert_eq!(item.owner.as_ref().map(|o| o.as_str()), Some("bob"));
    assert_eq!(item.epoch, 1);
    assert_eq!(item.preview.as_deref(), Some("bob here"));
    let unanswered = list(&watcher, Status::Unanswered).await;
    assert!(
        unanswered
            .items
            .iter()
            .all(|i| i.conversation.as_str() != "u-1"),
        "out of the unanswered queue: {:?}",
        unanswered.items
    );
}
