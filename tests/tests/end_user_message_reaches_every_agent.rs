//! An end user's message creates the conversation as `unanswered`, every agent of the
//! tenant (and only of the tenant) gets a queue event, agents list it with its waiting
//! time, and every device of the end user receives the events.

use chathub_domain::{EventBody, Role, Status};
use chathub_e2e::{TestHub, conv, drain, expect_event, expect_frame};
use chathub_protocol::{Op, Reply, ServerFrame};
use std::time::Duration;

async fn first_message_queues_the_conversation_for_all_agents(hub: TestHub) {
    let mut alice = hub.connect(Role::Agent, "alice").await;
    let mut bob = hub.connect(Role::Agent, "bob").await;
    let mut boss = hub.connect(Role::Admin, "boss").await;
    let mut other_tenant = hub.connect_in("globex", Role::Agent, "eve").await;
    let mut phone = hub.connect(Role::EndUser, "u-1").await;
    let mut tablet = hub.connect(Role::EndUser, "u-1").await;
    phone.subscribe(None, None).await.unwrap();
    tablet.subscribe(None, None).await.unwrap();

    let ack = phone
        .send_text(None, "my coupon does not work", None, Some("m-1"))
        .await
        .unwrap();
    assert_eq!(ack.status, Status::Unanswered);
    assert_eq!(ack.seq, 2, "status event 1, message 2");

    for agent in [&mut alice, &mut bob, &mut boss] {
        let f = expect_frame(agent, "queue event", |f| matches!(f, ServerFrame::Queue(_))).await;
        let ServerFrame::Queue(item) = f else {
            unreachable!()
        };
        assert_eq!(item.conversation.as_str(), "u-1");
        assert_eq!(item.status, Status::Unanswered);
        assert_eq!(item.owner, None);
        assert_eq!(item.preview.as_deref(), Some("my coupon does not work"));
    }
    // Nothing crosses tenants.
    // Nothing crosses tenants: eve sees her own presence only.
    let seen = drain(&mut other_tenant, Duration::from_millis(300)).await;
    assert!(
        seen.iter()
            .all(|f| matches!(f, ServerFrame::Presence(p) if p.agent == "eve")),
        "another tenant's agent saw acme's frames: {seen:?}"
    );
    let page = chathub_e2e::list(&other_tenant, Status::Unanswered).await;
    assert!(page.items.is_empty());

    // Both devices get both events.
    for device in [&mut phone, &mut tablet] {
        let opened = expect_event(device, "u-1", 1).await;
        assert!(matches!(
            opened.body,
            EventBody::Status {
                status: Status::Unanswered,
                ..
            }
        ));
        let msg = expect_event(device, "u-1", 2).await;
        match msg.body {
            EventBody::Message {
                author,
                client_msg_id,
                ..
            } => {
                assert_eq!(author.role, Role::EndUser);
                assert_eq!(client_msg_id.as_deref(), Some("m-1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // A second end user; the list shows the one waiting longest first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = hub.connect(Role::EndUser, "u-2").await;
    second.send_text(None, "hello?", None, None).await.unwrap();
    let page = chathub_e2e::list(&alice, Status::Unanswered).await;
    let order: Vec<_> = page.items.iter().map(|i| i.conversation.as_str()).collect();
    assert_eq!(order, ["u-1", "u-2"]);
    assert!(page.items[0].since <= page.items[1].since);
    let waits: Vec<u64> = page
        .items
        .iter()
        .map(|i| i.waiting_ms.expect("waiting time"))
        .collect();
    assert!(waits[0] >= waits[1], "the first waited longest: {waits:?}");

    // Paged one at a time, the cursor continues where the page ended.
    let op = |cursor| Op::List {
        status: Status::Unanswered,
        limit: Some(1),
        cursor,
    };
    let Reply::List(p1) = alice.request(op(None)).await.unwrap() else {
        panic!()
    };
    assert_eq!(p1.items[0].conversation.as_str(), "u-1");
    let Reply::List(p2) = alice.request(op(p1.next_cursor.clone())).await.unwrap() else {
        panic!()
    };
    assert_eq!(p2.items[0].conversation.as_str(), "u-2");
    assert_eq!(p2.next_cursor, None);

    // A conversation nobody wrote in is a normal, empty answer.
    let Reply::Open(opened) = alice
        .request(Op::Open {
            conversation: Some(conv("u-404")),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(opened.view.state.status, Status::New);
    assert_eq!(opened.view.state.seq, 0);
}

#[tokio::test]
async fn first_message_queues_the_conversation_for_all_agents_embedded() {
    first_message_queues_the_conversation_for_all_agents(TestHub::start().await).await;
}

#[tokio::test]
async fn first_message_queues_the_conversation_for_all_agents_redis() {
    first_message_queues_the_conversation_for_all_agents(TestHub::start_redis().await).await;
}
