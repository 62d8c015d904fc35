//! Ids that look alike never share a key (both backends, and a Redis Cluster): an agent
//! whose id is the end user's, sending the same `client_msg_id`, is recorded, not taken
//! for the end user's retry; agents `ag` + `b:c` and `ag:b` + `c` are two sends; user
//! `h:coupon`'s engagement history is not user `h`'s coupons.

use chathub_domain::Role;
use chathub_domain::engagement::{EngagementType, HistoryEvent};
use chathub_e2e::{TestHub, conv, full_history, http_request, texts};
use chathub_protocol::{Op, Reply};

async fn alike_ids(hub: TestHub) {
    // The end user `ag` writes; then three agents with look-alike ids and messages.
    let user = hub.connect(Role::EndUser, "ag").await;
    let first = user
        .send_text(None, "from the end user", None, Some("m-1"))
        .await
        .unwrap();
    let same_id = hub.connect(Role::Agent, "ag").await;
    let ack = same_id
        .send_text(
            Some(&conv("ag")),
            "from agent ag",
            Some(first.epoch),
            Some("m-1"),
        )
        .await
        .unwrap();
    assert_ne!(
        ack.seq, first.seq,
        "the agent's send was not taken for a retry"
    );
    let by_ag = same_id
        .send_text(
            Some(&conv("ag")),
            "ag says b:c",
            Some(ack.epoch),
            Some("b:c"),
        )
        .await
        .unwrap();
    let other = hub.connect(Role::Agent, "ag:b").await;
    let by_agb = other
        .send_text(
            Some(&conv("ag")),
            "ag:b says c",
            Some(by_ag.epoch),
            Some("c"),
        )
        .await
        .unwrap();
    assert_ne!(by_agb.seq, by_ag.seq);
    let history = full_history(&user, "ag").await;
    assert_eq!(
        texts(&history),
        [
            "from the end user",
            "from agent ag",
            "ag says b:c",
            "ag:b says c"
        ]
    );

    // Engagement history of look-alike users stays apart.
    let admin = hub.token("acme", Role::Admin, "carol");
    for (user, id, kind) in [("h", "e1", "coupon"), ("h:coupon", "e2", "points")] {
        let body = serde_json::json!({
            "id": id, "type": kind, "action": "earned", "title": id, "at": 1_000
        })
        .to_string();
        let (status, answer) = http_request(
            hub.http_addr,
            "POST",
            &format!("/admin/v1/users/{user}/history"),
            &admin,
            &body,
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let agent = hub.connect(Role::Agent, "alice").await;
    let ids = |reply: Reply| match reply {
        Reply::EngagementHistory(r) => r
            .events
            .into_iter()
            .map(|e: HistoryEvent| e.id)
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let history_of = |user: &str, kind: Option<EngagementType>| Op::EngagementHistory {
        conversation: Some(conv(user)),
        engagement_type: kind,
        before: None,
        limit: None,
    };
    assert_eq!(
        ids(agent.request(history_of("h:coupon", None)).await.unwrap()),
        ["e2"]
    );
    assert_eq!(
        ids(agent
            .request(history_of("h", Some(EngagementType::Coupon)))
            .await
            .unwrap()),
        ["e1"]
    );
    assert!(
        ids(agent
            .request(history_of("h", Some(EngagementType::Points)))
            .await
            .unwrap())
        .is_empty()
    );
    hub.stop().await;
}

#[tokio::test]
async fn alike_ids_embedded() {
    alike_ids(TestHub::start().await).await;
}

#[tokio::test]
async fn alike_ids_on_redis() {
    alike_ids(TestHub::start_redis().await).await;
}

#[tokio::test]
async fn alike_ids_on_a_redis_cluster() {
    alike_ids(TestHub::start_redis_cluster().await).await;
}
