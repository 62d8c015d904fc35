//! Canned responses (search, manage with `canned.manage`, placeholders filled from the
//! end user's profile, sending one takes like any message) and disabling chat, per
//! conversation and tenant-wide, on both backends.

use chathub_domain::{EventBody, MessageContent, Role};
use chathub_e2e::{TestHub, conv, expect_event, expect_frame};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};

fn send_canned(id: &str, epoch: u64) -> Op {
    Op::Send {
        conversation: Some(conv("u-ana")),
        client_msg_id: None,
        text: String::new(),
        canned: Some(id.into()),
        engagement: None,
        attachment: None,
        epoch: Some(epoch),
        visibility: Default::default(),
        handover_note: None,
    }
}

async fn canned(hub: TestHub) {
    let alice = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let carol = hub.demo_client(Role::Admin, "carol", "Carol").await;
    let Reply::CannedList(found) = alice
        .request(Op::CannedList {
            query: Some("/he".into()),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        found
            .items
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["hello"]
    );
    let Reply::CannedList(by_text) = alice
        .request(Op::CannedList {
            query: Some("POINTS".into()),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        by_text
            .items
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["points"]
    );

    // Managing needs canned.manage: agents are refused, admins may.
    let upsert = || Op::CannedUpsert {
        canned: None,
        shortcut: "/late".into(),
        text: "Sorry for the wait, {first_name}.".into(),
    };
    let e = alice.request(upsert()).await.unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::Forbidden);
    let Reply::CannedUpsert(created) = carol.request(upsert()).await.unwrap() else {
        panic!()
    };
    assert_eq!(created.shortcut, "/late");

    // Sending one fills the placeholders and takes the conversation.
    let mut ana = hub.demo_client(Role::EndUser, "u-ana", "Ana").await;
    ana.subscribe(None, None).await.unwrap();
    let Reply::Send(ack) = alice.request(send_canned("hello", 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(ack.owner.as_ref().map(|o| o.as_str()), Some("alice"));
    let event = expect_event(&mut ana, "u-ana", ack.seq).await;
    match event.body {
        EventBody::Message {
            content: MessageContent::Text { text },
            ..
        } => {
            assert_eq!(text, "Hi Ana, I'm Alice. How can I help you today?");
        }
        other => panic!("unexpected {other:?}"),
    }
    let Reply::Send(ack) = alice
        .request(send_canned(&created.id, ack.epoch))
        .await
        .unwrap()
    else {
        panic!()
    };
    let event = expect_event(&mut ana, "u-ana", ack.seq).await;
    assert!(
        matches!(event.body, EventBody::Message { content: MessageContent::Text { text }, .. } if text == "Sorry for the wait, Ana.")
    );
    let e = alice
        .request(send_canned("nope", ack.epoch))
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::NotFound);
    let both = Op::Send {
        conversation: Some(conv("u-ana")),
        client_msg_id: None,
        text: "x".into(),
        canned: Some("hello".into()),
        engagement: None,
        attachment: None,
        epoch: Some(1),
        visibility: Default::default(),
        handover_note: None,
    };
    assert_eq!(
        alice
            .request(both)
            .await
            .unwrap_err()
            .server()
            .unwrap()
            .code,
        ErrorCode::BadRequest
    );
    carol
        .request(Op::CannedDelete {
            canned: created.id.clone(),
        })
        .await
        .unwrap();
    let e = carol
        .request(Op::CannedDelete { canned: created.id })
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::NotFound);
}

async fn disable(hub: TestHub) {
    let mut alice = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let bob = hub.demo_client(Role::Agent, "bob", "Bob").await;
    let carol = hub.demo_client(Role::Admin, "carol", "Carol").await;
    let mut ben = hub.demo_client(Role::EndUser, "u-ben", "Ben").await;
    ben.subscribe(None, None).await.unwrap();
    ben.send_text(None, "hello", None, None).await.unwrap();

    // Per conversation: admins only; end user and takers are refused; the owner may write.
    let e = alice
        .request(Op::Disable {
            conversation: Some(conv("u-ben")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::Forbidden);
    alice
        .send_text(Some(&conv("u-ben")), "hi Ben", Some(0), None)
        .await
        .unwrap();
    let Reply::Disable(view) = carol
        .request(Op::Disable {
            conversation: Some(conv("u-ben")),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(view.state.disabled);
    expect_frame(&mut ben, "disabled event", |f| matches!(f, ServerFrame::Event(e) if matches!(e.event.body, EventBody::Status { disabled: true, .. }))).await;
    assert_eq!(
        ben.send_text(None, "?", None, None)
            .await
            .unwrap_err()
            .server()
            .unwrap()
            .code,
        ErrorCode::ChatDisabled
    );
    assert_eq!(
        bob.send_text(Some(&conv("u-ben")), "mine", Some(1), None)
            .await
            .unwrap_err()
            .server()
            .unwrap()
            .code,
        ErrorCode::ChatDisabled
    );
    alice
        .send_text(Some(&conv("u-ben")), "one-way notice", Some(1), None)
        .await
        .unwrap();
    carol
        .request(Op::Enable {
            conversation: Some(conv("u-ben")),
        })
        .await
        .unwrap();
    ben.send_text(None, "back", None, None).await.unwrap();

    // Tenant-wide: everyone hears it, every conversation behaves as disabled.
    let e = alice.request(Op::DisableTenant {}).await.unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::Forbidden);
    let Reply::DisableTenant(t) = carol.request(Op::DisableTenant {}).await.unwrap() else {
        panic!()
    };
    assert!(t.chat_disabled);
    for client in [&mut ben, &mut alice] {
        expect_frame(
            client,
            "tenant frame",
            |f| matches!(f, ServerFrame::Tenant(t) if t.chat_disabled),
        )
        .await;
    }
    let chen = hub.demo_client(Role::EndUser, "u-chen", "Chen").await;
    assert!(
        chen.welcome().chat_disabled,
        "new connections learn it in welcome"
    );
    assert_eq!(
        chen.send_text(None, "hi", None, None)
            .await
            .unwrap_err()
            .server()
            .unwrap()
            .code,
        ErrorCode::ChatDisabled
    );
    assert_eq!(
        ben.send_text(None, "?", None, None)
            .await
            .unwrap_err()
            .server()
            .unwrap()
            .code,
        ErrorCode::ChatDisabled
    );
    carol.request(Op::EnableTenant {}).await.unwrap();
    expect_frame(
        &mut ben,
        "tenant frame",
        |f| matches!(f, ServerFrame::Tenant(t) if !t.chat_disabled),
    )
    .await;
    chen.send_text(None, "hi", None, None).await.unwrap();
}

#[tokio::test]
async fn canned_embedded() {
    canned(TestHub::start_demo(false).await).await;
}

#[tokio::test]
async fn canned_redis() {
    canned(TestHub::start_demo(true).await).await;
}

#[tokio::test]
async fn disable_embedded() {
    disable(TestHub::start_demo(false).await).await;
}

#[tokio::test]
async fn disable_redis() {
    disable(TestHub::start_demo(true).await).await;
}
