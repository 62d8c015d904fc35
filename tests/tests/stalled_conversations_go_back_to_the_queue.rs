//! Release of stalled ownership: with a tenant's stall policy, the server gives an active
//! conversation back to the queue when its end user has waited too long for a reply
//! (`no_reply`) or its owner has been gone, or away, too long (`owner_absent`): one
//! atomic step,
//! `unanswered`, no owner, the epoch moved, cause `released` with the reason; the
//! previous owner gets `ownership_lost` with the reason, and their send on the old epoch
//! is refused (`conflict`). A conversation whose owner answers in time stays theirs. An
//! admin may release one by hand (reason `admin`); an agent may not. The policy is
//! checked (`bad_request`) and audited.
//!
//! On the embedded default and on three nodes over a Redis Cluster with the archive
//! (one node's round does it, under a lease).

use chathub_client::Client;
use chathub_domain::{Cause, EventBody, ReleaseReason, Role, Status};
use chathub_e2e::{
    Nodes, conv, dev_token, expect_frame, full_history, http_get, http_request, state_of, take_with,
};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};
use std::time::Duration;

async fn connect(nodes: &Nodes, i: usize, role: Role, who: &str) -> Client {
    Client::connect(nodes.ws(i), &dev_token("acme", role, who))
        .await
        .unwrap()
}

async fn api(nodes: &Nodes, method: &str, path: &str, body: &str) -> (u16, String) {
    let admin = dev_token("acme", Role::Admin, "carol");
    http_request(nodes.http(0), method, path, &admin, body).await
}

/// `agent` takes `user`'s conversation with a reply; its epoch.
async fn take(agent: &Client, user: &str) -> u64 {
    take_with(agent, user, "Hello, I am on it").await
}

/// Waits for the `ownership_lost` of `conversation` on `agent`'s socket: its reason.
async fn lost(agent: &mut Client, conversation: &str) -> Option<ReleaseReason> {
    let frame = expect_frame(
        agent,
        "ownership_lost",
        |f| matches!(f, ServerFrame::OwnershipLost(l) if l.conversation.as_str() == conversation),
    )
    .await;
    let ServerFrame::OwnershipLost(lost) = frame else {
        unreachable!()
    };
    assert_eq!(lost.by, None, "nobody owns it after a release");
    lost.reason
}

async fn scenario(nodes: Nodes) {
    for bad in [
        r#"{"release":{}}"#,
        r#"{"release":{"no_reply_secs":0}}"#,
        r#"{"release":{"owner_absent_secs":604801}}"#,
        r#"{"release":{"later":5}}"#,
    ] {
        let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = api(
        &nodes,
        "PUT",
        "/admin/v1/settings",
        r#"{"release":{"no_reply_secs":2,"owner_absent_secs":2}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""no_reply_secs":2"#), "{body}");

    // ann waits for alice's reply too long: back to the queue, reason no_reply.
    let ann = connect(&nodes, 0, Role::EndUser, "ann").await;
    ann.send_text(None, "my parcel is late", None, None)
        .await
        .unwrap();
    let mut alice = connect(&nodes, 1, Role::Agent, "alice").await;
    let epoch = take(&alice, "ann").await;
    // cat's owner answers each message at once: never released.
    let cat = connect(&nodes, 2, Role::EndUser, "cat").await;
    cat.send_text(None, "hi", None, None).await.unwrap();
    let carl = connect(&nodes, 2, Role::Agent, "carl").await;
    let carl_epoch = take(&carl, "cat").await;
    ann.send_text(None, "hello? anyone?", None, None)
        .await
        .unwrap();
    assert_eq!(lost(&mut alice, "ann").await, Some(ReleaseReason::NoReply));
    let after = state_of(&alice, "ann").await;
    assert_eq!(
        (after.status, after.owner.clone(), after.epoch),
        (Status::Unanswered, None, epoch + 1)
    );
    // alice's reply on the old epoch is refused: it would have taken it back unseen.
    let late = alice
        .send_text(Some(&conv("ann")), "sorry, here now", Some(epoch), None)
        .await
        .expect_err("the old epoch loses");
    assert_eq!(late.server().map(|e| e.code), Some(ErrorCode::Conflict));
    // The release is in the conversation for everyone, with its reason.
    let history = full_history(&ann, "ann").await;
    assert!(
        history.iter().any(|e| matches!(
            e.body,
            EventBody::Status {
                cause: Cause::Released,
                reason: Some(ReleaseReason::NoReply),
                ..
            }
        )),
        "{history:?}"
    );

    // bob takes ben's conversation, answers, and leaves: reason owner_absent.
    let ben = connect(&nodes, 0, Role::EndUser, "ben").await;
    ben.send_text(None, "question", None, None).await.unwrap();
    let bob = connect(&nodes, 1, Role::Agent, "bob").await;
    take(&bob, "ben").await;
    drop(bob);
    let watcher = connect(&nodes, 2, Role::Agent, "wendy").await;
    // Bounded: a round runs every second and the limit is 2 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let released = loop {
        let state = state_of(&watcher, "ben").await;
        if state.status == Status::Unanswered {
            break state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ben's conversation was not released: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(released.owner, None);
    let events = full_history(&watcher, "ben").await;
    assert!(
        events.iter().any(|e| matches!(
            e.body,
            EventBody::Status {
                cause: Cause::Released,
                reason: Some(ReleaseReason::OwnerAbsent),
                ..
            }
        )),
        "{events:?}"
    );

    // eve takes fay's conversation, answers, and sets herself away while connected:
    // away counts as absent, reason owner_absent.
    let fay = connect(&nodes, 0, Role::EndUser, "fay").await;
    fay.send_text(None, "hello", None, None).await.unwrap();
    let mut eve = connect(&nodes, 1, Role::Agent, "eve").await;
    take(&eve, "fay").await;
    let away = eve
        .request(Op::Presence {
            presence: chathub_domain::Presence::Away,
        })
        .await;
    assert!(away.is_ok(), "{away:?}");
    assert_eq!(
        lost(&mut eve, "fay").await,
        Some(ReleaseReason::OwnerAbsent)
    );

    // carl answered in time: still his, at the same epoch.
    let kept = state_of(&carl, "cat").await;
    assert_eq!(
        (
            kept.status,
            kept.owner.as_ref().map(|o| o.as_str()),
            kept.epoch
        ),
        (Status::Active, Some("carl"), carl_epoch)
    );

    // An admin releases by hand; an agent may not.
    let dan = connect(&nodes, 0, Role::EndUser, "dan").await;
    dan.send_text(None, "hey", None, None).await.unwrap();
    let mut dave = connect(&nodes, 1, Role::Agent, "dave").await;
    let dave_epoch = take(&dave, "dan").await;
    let by_agent = carl
        .request(Op::Release {
            conversation: Some(conv("dan")),
            epoch: Some(dave_epoch),
            seq: None,
        })
        .await
        .expect_err("agents do not release");
    assert_eq!(
        by_agent.server().map(|e| e.code),
        Some(ErrorCode::Forbidden)
    );
    let root = connect(&nodes, 2, Role::Admin, "root").await;
    let stale = root
        .request(Op::Release {
            conversation: Some(conv("dan")),
            epoch: Some(dave_epoch - 1),
            seq: None,
        })
        .await
        .expect_err("a stale epoch loses");
    assert_eq!(stale.server().map(|e| e.code), Some(ErrorCode::Conflict));
    let Ok(Reply::Release(view)) = root
        .request(Op::Release {
            conversation: Some(conv("dan")),
            epoch: Some(dave_epoch),
            seq: None,
        })
        .await
    else {
        panic!("the admin releases")
    };
    assert_eq!(
        (view.state.status, view.state.epoch),
        (Status::Unanswered, dave_epoch + 1)
    );
    assert_eq!(lost(&mut dave, "dan").await, Some(ReleaseReason::Admin));

    // Every node counts the releases it decided: across the nodes, ann's, ben's and fay's
    // and dan's.
    let mut counted = std::collections::HashMap::new();
    for i in 0..nodes.nodes.len() {
        let metrics = http_get(nodes.http(i), "/metrics").await.1;
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("chathub_releases_total{"))
        {
            let (labels, value) = line.rsplit_once(' ').unwrap();
            *counted.entry(labels.to_owned()).or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    for (reason, n) in [("no_reply", 1.0), ("owner_absent", 2.0), ("admin", 1.0)] {
        let key = format!("chathub_releases_total{{reason=\"{reason}\"}}");
        assert_eq!(counted.get(&key), Some(&n), "{reason}: {counted:?}");
    }

    let (status, audit) = api(&nodes, "GET", "/admin/v1/audit", "").await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains("release_policy_set"), "{audit}");
    // The policy off: nothing more is released.
    let (status, body) = api(&nodes, "PUT", "/admin/v1/settings", r#"{"release":null}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("no_reply_secs"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_conversations_go_back_on_the_embedded_default() {
    scenario(Nodes::embedded(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_conversations_go_back_on_a_cluster() {
    scenario(Nodes::cluster_with_archive(3, &[])).await;
}
