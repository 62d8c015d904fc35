//! The engagement workspace on the demo tenant, on both backends: history preview by type
//! with paging ("no history yet" is explicit), recent activity per type, entitlement
//! evaluated on the server, sending an engagement through the chat (it takes, is recorded
//! as received, and is refused with a clear code when not entitled), redeeming it once,
//! and the admin HTTP API feeding the data.

use chathub_domain::engagement::{EngagementType, HistoryAction};
use chathub_domain::{EventBody, MessageContent, Role, Status};
use chathub_e2e::{TestHub, conv, expect_event, http_request};
use chathub_protocol::{ErrorCode, Op, Reply};

async fn available(c: &chathub_client::Client, user: &str) -> Vec<String> {
    let op = Op::EngagementsAvailable {
        conversation: Some(conv(user)),
        engagement_type: None,
    };
    let Reply::EngagementsAvailable(r) = c.request(op).await.unwrap() else {
        panic!()
    };
    r.items.into_iter().map(|i| i.id).collect()
}

async fn engagements(hub: TestHub) {
    let alice = hub.demo_client(Role::Agent, "alice", "Alice").await;

    // History preview: newest first, paged, filtered by type; explicit "no history".
    let op = |t, before, limit| Op::EngagementHistory {
        conversation: Some(conv("u-ana")),
        engagement_type: t,
        before,
        limit,
    };
    let Reply::EngagementHistory(page) = alice.request(op(None, None, Some(4))).await.unwrap()
    else {
        panic!()
    };
    assert!(!page.no_history);
    let ids: Vec<_> = page.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["h6", "h5", "h4", "h3"]);
    let Reply::EngagementHistory(older) = alice
        .request(op(None, page.next_cursor.clone(), Some(4)))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        older
            .events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["h2", "h1"]
    );
    assert_eq!(older.next_cursor, None);
    let Reply::EngagementHistory(points) = alice
        .request(op(Some(EngagementType::Points), None, None))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        points
            .events
            .iter()
            .all(|e| e.engagement_type == EngagementType::Points)
    );
    assert_eq!(points.events.len(), 2);
    let none = Op::EngagementHistory {
        conversation: Some(conv("u-chen")),
        engagement_type: None,
        before: None,
        limit: None,
    };
    let Reply::EngagementHistory(empty) = alice.request(none).await.unwrap() else {
        panic!()
    };
    assert!(
        empty.no_history && empty.events.is_empty(),
        "no history yet is a normal answer"
    );

    // Recent activity per type.
    let Reply::EngagementActivity(activity) = alice
        .request(Op::EngagementActivity {
            conversation: Some(conv("u-ana")),
            per_type: Some(1),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(activity.activity.len(), 5);
    let points = activity
        .activity
        .iter()
        .find(|a| a.engagement_type == EngagementType::Points)
        .unwrap();
    assert_eq!(
        points
            .events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["h6"]
    );

    // Entitlement on the server: gold, 340 points vs silver, 40 points; expired excluded.
    let ana = available(&alice, "u-ana").await;
    assert!(
        ana.contains(&"gold-25".to_string()) && !ana.contains(&"winter-5".to_string()),
        "{ana:?}"
    );
    let ben = available(&alice, "u-ben").await;
    assert!(
        !ben.contains(&"gold-25".to_string()) && ben.contains(&"spring-10".to_string()),
        "{ben:?}"
    );

    // Not entitled: refused with a clear code, nothing delivered.
    let send = |engagement: &str, epoch| Op::Send {
        conversation: Some(conv("u-ben")),
        client_msg_id: None,
        text: String::new(),
        canned: None,
        engagement: Some(engagement.into()),
        attachment: None,
        epoch: Some(epoch),
        visibility: Default::default(),
        handover_note: None,
    };
    let e = alice.request(send("gold-25", 0)).await.unwrap_err();
    let e = e.server().unwrap();
    assert_eq!(
        (e.code, e.reason.as_deref()),
        (ErrorCode::NotEntitled, Some("insufficient_points"))
    );
    let e = alice.request(send("winter-5", 0)).await.unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::Expired);
    let e = alice.request(send("no-such-thing", 0)).await.unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::NotFound);

    // Sending one takes the conversation and arrives in the thread.
    let mut ben_phone = hub.demo_client(Role::EndUser, "u-ben", "Ben").await;
    ben_phone.subscribe(None, None).await.unwrap();
    let Reply::Send(ack) = alice.request(send("spring-10", 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        (ack.status, ack.owner.as_ref().map(|o| o.as_str())),
        (Status::Active, Some("alice"))
    );
    let event = expect_event(&mut ben_phone, "u-ben", ack.seq).await;
    match event.body {
        EventBody::Message {
            content: MessageContent::Engagement { engagement },
            ..
        } => {
            assert_eq!(
                (engagement.id.as_str(), engagement.engagement_type),
                ("spring-10", EngagementType::Coupon)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // ...and is recorded in the user's history as received.
    let Reply::EngagementHistory(h) = alice
        .request(Op::EngagementHistory {
            conversation: Some(conv("u-ben")),
            engagement_type: Some(EngagementType::Coupon),
            before: None,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(h.events[0].action, HistoryAction::Received);
    assert_eq!(h.events[0].engagement.as_deref(), Some("spring-10"));

    // The end user redeems it once; a second time, or an expired one, is refused.
    let Reply::Redeem(r) = ben_phone
        .request(Op::Redeem {
            engagement: "spring-10".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.event.action, HistoryAction::Redeemed);
    let again = ben_phone
        .request(Op::Redeem {
            engagement: "spring-10".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.server().unwrap().code, ErrorCode::AlreadyRedeemed);
    let expired = ben_phone
        .request(Op::Redeem {
            engagement: "winter-5".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(expired.server().unwrap().code, ErrorCode::Expired);
    // End users cannot use the agents' requests.
    let e = ben_phone
        .request(Op::Profile {
            conversation: Some(conv("u-ben")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::Forbidden);
    assert!(
        !available(&alice, "u-ben")
            .await
            .contains(&"spring-10".to_string()),
        "once per user"
    );
}

/// A JSON request to the admin API; returns status and body.
async fn api(hub: &TestHub, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    http_request(hub.http_addr, method, path, token, body).await
}

async fn admin_api(hub: TestHub) {
    let admin = hub
        .auth
        .mint("demo", "carol", Role::Admin, None, 600)
        .unwrap();
    let agent = hub
        .auth
        .mint("demo", "alice", Role::Agent, None, 600)
        .unwrap();
    let item =
        r#"{"type":"coupon","name":"Flash 50%","description":"one hour only","rules":{"stock":1}}"#;
    assert_eq!(
        api(&hub, "PUT", "/admin/v1/catalogue/flash-50", &admin, item)
            .await
            .0,
        200
    );
    assert_eq!(
        api(&hub, "PUT", "/admin/v1/catalogue/flash-50", &agent, item)
            .await
            .0,
        403,
        "agents lack engagement.manage"
    );
    assert_eq!(
        api(&hub, "PUT", "/admin/v1/catalogue/flash-50", "garbage", item)
            .await
            .0,
        401
    );
    let (status, body) = api(
        &hub,
        "PUT",
        "/admin/v1/catalogue/bad",
        &admin,
        r#"{"type":"nonsense"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_request"));
    let profile = r#"{"first_name":"Chen","points_balance":999,"segments":["gold"]}"#;
    assert_eq!(
        api(
            &hub,
            "PUT",
            "/admin/v1/users/u-chen/profile",
            &admin,
            profile
        )
        .await
        .0,
        200
    );
    let event = r#"{"type":"points","action":"earned","title":"Birthday bonus","points":100}"#;
    assert_eq!(
        api(
            &hub,
            "POST",
            "/admin/v1/users/u-chen/history",
            &admin,
            event
        )
        .await
        .0,
        201
    );
    let (status, list) = api(&hub, "GET", "/admin/v1/catalogue", &admin, "").await;
    assert!(status == 200 && list.contains("flash-50"), "{list}");

    // What the loyalty system pushed is what agents see.
    let alice = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let chen = available(&alice, "u-chen").await;
    assert!(
        chen.contains(&"gold-25".to_string()) && chen.contains(&"flash-50".to_string()),
        "{chen:?}"
    );
    let Reply::EngagementHistory(h) = alice
        .request(Op::EngagementHistory {
            conversation: Some(conv("u-chen")),
            engagement_type: None,
            before: None,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(h.events[0].title, "Birthday bonus");
    // Stock 1: after one redemption nobody else gets it.
    let send = Op::Send {
        conversation: Some(conv("u-chen")),
        client_msg_id: None,
        text: String::new(),
        canned: None,
        engagement: Some("flash-50".into()),
        attachment: None,
        epoch: Some(0),
        visibility: Default::default(),
        handover_note: None,
    };
    alice.request(send).await.unwrap();
    let chen_phone = hub.demo_client(Role::EndUser, "u-chen", "Chen").await;
    chen_phone
        .request(Op::Redeem {
            engagement: "flash-50".into(),
        })
        .await
        .unwrap();
    assert!(
        !available(&alice, "u-ana")
            .await
            .contains(&"flash-50".to_string()),
        "out of stock"
    );
    let ana_phone = hub.demo_client(Role::EndUser, "u-ana", "Ana").await;
    let e = ana_phone
        .request(Op::Redeem {
            engagement: "flash-50".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::OutOfStock);
    assert_eq!(
        api(&hub, "DELETE", "/admin/v1/catalogue/flash-50", &admin, "")
            .await
            .0,
        204
    );
    assert_eq!(
        api(&hub, "DELETE", "/admin/v1/catalogue/flash-50", &admin, "")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn engagements_embedded() {
    engagements(TestHub::start_demo(false).await).await;
}

#[tokio::test]
async fn engagements_redis() {
    engagements(TestHub::start_demo(true).await).await;
}

/// On a Redis Cluster the "received" record comes with the tenant's queue step.
#[tokio::test]
async fn engagements_redis_cluster() {
    engagements(TestHub::start_demo_cluster().await).await;
}

#[tokio::test]
async fn admin_api_embedded() {
    admin_api(TestHub::start_demo(false).await).await;
}

#[tokio::test]
async fn admin_api_redis() {
    admin_api(TestHub::start_demo(true).await).await;
}
