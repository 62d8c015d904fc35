//! Bad input gets a documented error code or close code, never a panic, and other
//! clients carry on unaffected.

use chathub_client::{Client, ClientOptions};
use chathub_domain::{Role, Status};
use chathub_e2e::{TestHub, conv, expect_frame};
use chathub_protocol::{Codec, ErrorCode, Op, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

fn err_of(f: &ServerFrame) -> Option<(Option<u64>, ErrorCode)> {
    match f {
        ServerFrame::Err(e) => Some((e.id, e.code)),
        _ => None,
    }
}

async fn raw_err(client: &mut Client, message: Message) -> (Option<u64>, ErrorCode) {
    client.send_raw(message).await.unwrap();
    let f = expect_frame(client, "an err without id", |f| {
        matches!(f, ServerFrame::Err(_))
    })
    .await;
    err_of(&f).unwrap()
}

#[tokio::test]
async fn malformed_frames_unknown_ops_and_missing_fields() {
    let hub = TestHub::start().await;
    let mut bystander = hub.connect(Role::EndUser, "u-2").await;
    bystander.subscribe(None, None).await.unwrap();
    let options = ClientOptions {
        codec: Codec::Json,
        ..ClientOptions::default()
    };
    let mut c = Client::connect_with(
        &hub.url(),
        &hub.token("acme", Role::Agent, "alice"),
        options,
    )
    .await
    .unwrap();

    assert_eq!(
        raw_err(&mut c, Message::text("{not json")).await,
        (None, ErrorCode::BadRequest)
    );
    assert_eq!(
        raw_err(&mut c, Message::text("[1,2,3]")).await,
        (None, ErrorCode::BadRequest)
    );
    assert_eq!(
        raw_err(&mut c, Message::Binary(vec![0xc1, 0xff].into())).await,
        (None, ErrorCode::BadRequest)
    );
    // Errors that name the request are replies to it; the client routes them by id, so
    // read them with ids the client will not use.
    for (frame, code) in [
        (r#"{"id":900,"op":"explode"}"#, ErrorCode::UnknownOp),
        (r#"{"id":901}"#, ErrorCode::BadRequest),
        (r#"{"id":902,"op":"finish"}"#, ErrorCode::BadRequest),
        (
            r#"{"id":903,"op":"send","conversation":"u-1","text":7,"epoch":0}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"id":904,"op":"open","conversation":"has spaces"}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"id":905,"op":"list","status":"sleeping"}"#,
            ErrorCode::BadRequest,
        ),
    ] {
        c.send_raw(Message::text(frame)).await.unwrap();
        let f = expect_frame(
            &mut c,
            frame,
            |f| matches!(f, ServerFrame::Err(e) if e.id.is_some_and(|id| id >= 900)),
        )
        .await;
        let (_, got) = err_of(&f).unwrap();
        assert_eq!(got, code, "{frame}");
    }

    // Semantic errors through the typed client.
    let err = c
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: "x".into(),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: None,
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().code,
        ErrorCode::BadRequest,
        "agent send without epoch"
    );
    let err = c
        .request(Op::Send {
            conversation: None,
            client_msg_id: None,
            text: "x".into(),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().code,
        ErrorCode::BadRequest,
        "agent send without conversation"
    );
    let err = c
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: "   ".into(),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().code,
        ErrorCode::BadRequest,
        "empty text"
    );
    let long = "x".repeat(5000);
    let err = c
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: long,
            canned: None,
            engagement: None,
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().code,
        ErrorCode::TooLarge,
        "text over max_text_bytes"
    );
    let err = c
        .request(Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: Some("x".repeat(65)),
            text: "x".into(),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: Some(0),
            visibility: Default::default(),
            handover_note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().code,
        ErrorCode::BadRequest,
        "client_msg_id too long"
    );
    let err = c
        .request(Op::List {
            status: Status::Unanswered,
            limit: Some(0),
            cursor: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::BadRequest);
    let err = c
        .request(Op::List {
            status: Status::Unanswered,
            limit: None,
            cursor: Some("junk".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::BadRequest);

    // The connection still works, and so does everybody else's.
    c.request(Op::Ping {}).await.unwrap();
    let u2 = hub.connect(Role::EndUser, "u-2").await;
    u2.send_text(None, "still here", None, None).await.unwrap();
    expect_frame(&mut bystander, "bystander's own event", |f| {
        matches!(f, ServerFrame::Event(_))
    })
    .await;
}

async fn end_users_and_agents_without_privileges_are_refused(hub: TestHub) {
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "hi", None, None).await.unwrap();
    let other_user = hub.connect(Role::EndUser, "u-2").await;

    // End users: only their own conversation, no agent operations.
    for op in [
        Op::Open {
            conversation: Some(conv("u-1")),
        },
        Op::Subscribe {
            conversation: Some(conv("u-1")),
            since: Some(0),
            history_id: None,
        },
        Op::History {
            conversation: Some(conv("u-1")),
            before: None,
            after: None,
            limit: None,
        },
        Op::Send {
            conversation: Some(conv("u-1")),
            client_msg_id: None,
            text: "x".into(),
            canned: None,
            engagement: None,
            attachment: None,
            epoch: None,
            visibility: Default::default(),
            handover_note: None,
        },
        Op::List {
            status: Status::Unanswered,
            limit: None,
            cursor: None,
        },
        Op::Finish {
            conversation: Some(conv("u-2")),
            epoch: Some(0),
        },
        Op::Disable {
            conversation: Some(conv("u-2")),
        },
    ] {
        let name = op.name();
        let err = other_user.request(op).await.unwrap_err();
        assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden, "{name}");
    }

    // An agent without chat.take cannot take; without chat.finish cannot finish.
    let weak = Client::connect(
        &hub.url(),
        &hub.token_with("acme", Role::Agent, "weak", &["chat.finish"]),
    )
    .await
    .unwrap();
    let err = weak
        .send_text(Some(&conv("u-1")), "mine", Some(0), None)
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    let no_finish = Client::connect(
        &hub.url(),
        &hub.token_with("acme", Role::Agent, "nofin", &["chat.take"]),
    )
    .await
    .unwrap();
    let ack = no_finish
        .send_text(Some(&conv("u-1")), "mine", Some(0), None)
        .await
        .unwrap();
    let err = no_finish
        .request(Op::Finish {
            conversation: Some(conv("u-1")),
            epoch: Some(ack.epoch),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    // Agents cannot disable chat; admins can, and then end users get chat_disabled.
    let err = no_finish
        .request(Op::Disable {
            conversation: Some(conv("u-1")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    let admin = hub.connect(Role::Admin, "boss").await;
    admin
        .request(Op::Disable {
            conversation: Some(conv("u-1")),
        })
        .await
        .unwrap();
    let err = user
        .send_text(None, "hello?", None, None)
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::ChatDisabled);
    admin
        .request(Op::Enable {
            conversation: Some(conv("u-1")),
        })
        .await
        .unwrap();
    user.send_text(None, "hello again", None, None)
        .await
        .unwrap();
}

async fn ids_of_another_tenant_show_nothing_of_it(hub: TestHub) {
    let acme_user = hub.connect(Role::EndUser, "u-1").await;
    acme_user
        .send_text(None, "acme secret", None, None)
        .await
        .unwrap();
    let globex = hub.connect_in("globex", Role::Agent, "eve").await;
    let history = chathub_e2e::full_history(&globex, "u-1").await;
    assert!(history.is_empty(), "globex sees nothing of acme's u-1");
    // Taking "u-1" in globex is globex's own, separate conversation.
    let ack = globex
        .send_text(Some(&conv("u-1")), "hello", Some(0), None)
        .await
        .unwrap();
    assert_eq!(ack.seq, 2);
    let acme_agent = hub.connect(Role::Agent, "alice").await;
    let acme_history = chathub_e2e::full_history(&acme_agent, "u-1").await;
    assert_eq!(acme_history.len(), 2, "acme's conversation is untouched");
}

#[tokio::test]
async fn oversize_message_closes_with_1009_and_others_continue() {
    let hub = TestHub::start().await;
    let mut bystander = hub.connect(Role::EndUser, "u-2").await;
    bystander.subscribe(None, None).await.unwrap();
    let mut big = hub.connect(Role::EndUser, "u-1").await;
    big.send_raw(Message::Binary(vec![0x80; 70 * 1024].into()))
        .await
        .unwrap();
    assert_eq!(big.close_code().await, Some(1009));
    let u2 = hub.connect(Role::EndUser, "u-2").await;
    u2.send_text(None, "fine", None, None).await.unwrap();
    expect_frame(&mut bystander, "bystander event", |f| {
        matches!(f, ServerFrame::Event(_))
    })
    .await;
}

#[tokio::test]
async fn end_users_and_agents_without_privileges_are_refused_embedded() {
    end_users_and_agents_without_privileges_are_refused(TestHub::start().await).await;
}

#[tokio::test]
async fn end_users_and_agents_without_privileges_are_refused_redis() {
    end_users_and_agents_without_privileges_are_refused(TestHub::start_redis().await).await;
}

#[tokio::test]
async fn ids_of_another_tenant_show_nothing_of_it_embedded() {
    ids_of_another_tenant_show_nothing_of_it(TestHub::start().await).await;
}

#[tokio::test]
async fn ids_of_another_tenant_show_nothing_of_it_redis() {
    ids_of_another_tenant_show_nothing_of_it(TestHub::start_redis().await).await;
}

/// The role is checked before anything else: an end user calling an agent-only request
/// is `forbidden`, with or without a `conversation` (not `bad_request` for the missing
/// field).
#[tokio::test]
async fn end_users_are_forbidden_agent_requests_with_or_without_a_conversation() {
    let hub = TestHub::start().await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    for conversation in [None, Some(conv("u-1"))] {
        let requests = [
            Op::Finish {
                conversation: conversation.clone(),
                epoch: None,
            },
            Op::EngagementHistory {
                conversation: conversation.clone(),
                engagement_type: None,
                before: None,
                limit: None,
            },
            Op::EngagementActivity {
                conversation: conversation.clone(),
                per_type: None,
            },
            Op::EngagementsAvailable {
                conversation: conversation.clone(),
                engagement_type: None,
            },
            Op::Profile {
                conversation: conversation.clone(),
            },
            Op::Disable {
                conversation: conversation.clone(),
            },
            Op::Enable {
                conversation: conversation.clone(),
            },
        ];
        for op in requests {
            let name = op.name();
            let e = user.request(op).await.unwrap_err();
            assert_eq!(
                e.server().map(|e| e.code),
                Some(ErrorCode::Forbidden),
                "{name} with conversation {conversation:?}"
            );
        }
    }
    // Agents who leave the conversation out are told what is missing.
    let agent = hub.connect(Role::Agent, "alice").await;
    let e = agent
        .request(Op::Profile { conversation: None })
        .await
        .unwrap_err();
    assert_eq!(e.server().unwrap().code, ErrorCode::BadRequest);
    hub.stop().await;
}
