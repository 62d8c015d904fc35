//! A waiting end user sees their place in the queue and an estimate of the wait, pushed
//! as they change: with a tenant's timers on (business hours, here always open), each
//! waiting conversation's end user gets `queue_position` (1: next, of how many), and when
//! an agent takes the one ahead, the others move up. The estimate appears once a wait
//! before a take has been measured.
//!
//! On the embedded default and on three nodes over a Redis Cluster with the archive.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{Nodes, conv, dev_token, http_request, take_with};
use chathub_protocol::{Op, QueuePositionFrame, ServerFrame};
use std::time::Duration;

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(nodes.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

/// Waits (bounded) for a `queue_position` on `client` matching `pred`.
async fn position(
    client: &mut Client,
    pred: impl Fn(&QueuePositionFrame) -> bool,
) -> QueuePositionFrame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some(ServerFrame::QueuePosition(p)) => {
                if pred(&p) {
                    return p;
                }
                seen.push(p);
            }
            Some(_) => {}
            None => panic!("no such queue_position; saw {seen:?}"),
        }
    }
}

async fn scenario(nodes: Nodes) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let always = r#"{"hours":{"time_zone":"UTC","weekly":{"mon":["00:00-24:00"],"tue":["00:00-24:00"],"wed":["00:00-24:00"],"thu":["00:00-24:00"],"fri":["00:00-24:00"],"sat":["00:00-24:00"],"sun":["00:00-24:00"]}}}"#;
    let (status, body) =
        http_request(nodes.http(0), "PUT", "/admin/v1/settings", &admin, always).await;
    assert_eq!(status, 200, "{body}");
    let alice = connect(&nodes, 1, Role::Agent, "alice").await;
    let mut users = Vec::new();
    for (i, who) in ["ann", "ben", "cat"].into_iter().enumerate() {
        let client = connect(&nodes, i, Role::EndUser, who).await;
        client
            .request(Op::Subscribe {
                conversation: Some(conv(who)),
                since: None,
                history_id: None,
            })
            .await
            .unwrap();
        client.send_text(None, "hello?", None, None).await.unwrap();
        users.push(client);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // In the order they came; no estimate before any wait was measured.
    let cat = position(&mut users[2], |p| p.waiting == 3).await;
    assert_eq!((cat.conversation.as_str(), cat.position), ("cat", 3));
    assert_eq!(cat.eta_secs, None);
    let ann = position(&mut users[0], |p| p.waiting == 3).await;
    assert_eq!(ann.position, 1);

    // alice takes ann's: ben and cat move up, now with an estimate.
    take_with(&alice, "ann", "hi ann").await;
    let cat = position(&mut users[2], |p| p.position == 2).await;
    assert_eq!(cat.waiting, 2);
    assert!(cat.eta_secs.is_some(), "{cat:?}");
    let ben = position(&mut users[1], |p| p.position == 1).await;
    assert_eq!(ben.waiting, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_end_users_see_their_place_embedded() {
    scenario(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_end_users_see_their_place_on_a_cluster() {
    scenario(Nodes::cluster_with_archive(3, &[])).await;
}
