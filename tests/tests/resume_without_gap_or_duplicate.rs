//! A client that reconnects and subscribes with `since` gets exactly the events it
//! missed, then the live ones: no gap, no duplicate, even while messages keep flowing.

use chathub_domain::Role;
use chathub_e2e::{TestHub, drain, event_seqs};
use chathub_protocol::ServerFrame;
use std::time::Duration;

async fn resubscribing_with_since_replays_then_goes_live(hub: TestHub) {
    let sender = hub.connect(Role::EndUser, "u-1").await;
    let agent = hub.connect(Role::Agent, "alice").await;
    let c = chathub_e2e::conv("u-1");
    sender.send_text(None, "first", None, None).await.unwrap();
    agent
        .send_text(Some(&c), "taking", Some(0), None)
        .await
        .unwrap();

    // The end user's second device follows, reads a few events, then drops.
    let mut device = hub.connect(Role::EndUser, "u-1").await;
    let sub = device.subscribe(None, Some(0)).await.unwrap();
    assert_eq!(sub.replayed, 4);
    let seen = drain(&mut device, Duration::from_millis(200)).await;
    let mut got = event_seqs(&seen, "u-1");
    assert_eq!(got, vec![1, 2, 3, 4]);
    device.close().await;

    // Messages keep flowing from both sides while the device is away and while it
    // resubscribes.
    let flow = tokio::spawn(async move {
        for i in 0..60 {
            sender
                .send_text(None, &format!("u{i}"), None, None)
                .await
                .unwrap();
            agent
                .send_text(Some(&c), &format!("a{i}"), Some(1), None)
                .await
                .unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut device = hub.connect(Role::EndUser, "u-1").await;
    let last = *got.last().unwrap();
    let sub = device.subscribe(None, Some(last)).await.unwrap();
    assert!(!sub.history_truncated);
    flow.await.unwrap();
    let frames = drain(&mut device, Duration::from_millis(500)).await;
    got.extend(event_seqs(&frames, "u-1"));
    let expected: Vec<u64> = (1..=4 + 120).collect();
    assert_eq!(got, expected, "every event exactly once, in order");
    assert!(frames.iter().all(|f| matches!(f, ServerFrame::Event(_))));
}

#[tokio::test]
async fn since_older_than_retained_history_says_truncated() {
    let mut config = chathub_e2e::test_config();
    config.limits.max_page = 50;
    let store = chathub_gateway::MemoryStoreConfig {
        history_max_len: 5,
        ..Default::default()
    };
    let hub = TestHub::start_with(config, store).await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    for i in 0..10 {
        user.send_text(None, &format!("m{i}"), None, None)
            .await
            .unwrap();
    }
    let mut device = hub.connect(Role::EndUser, "u-1").await;
    let sub = device.subscribe(None, Some(2)).await.unwrap();
    assert!(sub.history_truncated, "events 3..6 were trimmed");
    assert_eq!(sub.replayed, 5);
    let frames = drain(&mut device, Duration::from_millis(200)).await;
    assert_eq!(event_seqs(&frames, "u-1"), vec![7, 8, 9, 10, 11]);
    // Up to date: nothing replayed, not truncated.
    let fresh = hub.connect(Role::EndUser, "u-1").await;
    let sub = fresh.subscribe(None, Some(11)).await.unwrap();
    assert!(!sub.history_truncated && sub.replayed == 0 && sub.view.state.seq == 11);
    // Ahead of the server (e.g. after data loss): truncated, reload.
    let sub = fresh.subscribe(None, Some(99)).await.unwrap();
    assert!(sub.history_truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_with_since_replays_then_goes_live_embedded() {
    resubscribing_with_since_replays_then_goes_live(TestHub::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_with_since_replays_then_goes_live_redis() {
    resubscribing_with_since_replays_then_goes_live(TestHub::start_redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_with_since_replays_then_goes_live_redis_cluster() {
    resubscribing_with_since_replays_then_goes_live(TestHub::start_redis_cluster().await).await;
}
