//! The seed's cycle over sockets: take an unanswered conversation, take it over from
//! another agent (after a lost race), finish (owner or admin only), the end user writes
//! again and it is back in the queue, any agent takes it; lists by status follow.

use chathub_domain::{Cause, EventBody, Role, Status};
use chathub_e2e::{TestHub, conv, expect_event, expect_frame};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};

fn owner_of(f: &ServerFrame) -> Option<String> {
    match f {
        ServerFrame::Queue(q) => q.owner.as_ref().map(|o| o.to_string()),
        _ => None,
    }
}

async fn take_take_over_finish_and_reopen(hub: TestHub) {
    let mut user = hub.connect(Role::EndUser, "u-7").await;
    let alice = hub.connect(Role::Agent, "alice").await;
    let mut bob = hub.connect(Role::Agent, "bob").await;
    let carol = hub.connect(Role::Agent, "carol").await;
    let boss = hub.connect(Role::Admin, "boss").await;
    let c = conv("u-7");
    user.subscribe(None, None).await.unwrap();
    user.send_text(None, "hi", None, None).await.unwrap();

    // alice takes (epoch 0 -> 1).
    let ack = alice
        .send_text(Some(&c), "Hello, I am Alice", Some(0), None)
        .await
        .unwrap();
    assert_eq!((ack.status, ack.epoch), (Status::Active, 1));
    let f = expect_frame(&mut bob, "bob sees alice own it", |f| {
        owner_of(f).as_deref() == Some("alice")
    })
    .await;
    assert!(matches!(f, ServerFrame::Queue(q) if q.epoch == 1));

    // bob, with the stale epoch 0, loses: told who owns it, message not delivered.
    let err = bob
        .send_text(Some(&c), "Bob here", Some(0), None)
        .await
        .unwrap_err();
    let err = err.server().unwrap();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(
        (err.owner.as_ref().map(|o| o.as_str()), err.epoch),
        (Some("alice"), Some(1))
    );
    // bob resends deliberately with the epoch he was told: take-over.
    let ack = bob
        .send_text(Some(&c), "Bob taking over", Some(1), None)
        .await
        .unwrap();
    assert_eq!(
        (ack.owner.as_ref().unwrap().as_str(), ack.epoch),
        ("bob", 2)
    );
    // The end user saw: opened(1) msg(2) taken(3) alice(4) taken_over(5) bob(6).
    let taken_over = expect_event(&mut user, "u-7", 5).await;
    match taken_over.body {
        EventBody::Status {
            cause,
            owner,
            previous_owner,
            ..
        } => {
            assert_eq!(cause, Cause::TakenOver);
            assert_eq!(owner.unwrap().as_str(), "bob");
            assert_eq!(previous_owner.unwrap().as_str(), "alice");
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = expect_event(&mut user, "u-7", 6).await;
    assert!(matches!(msg.body, EventBody::Message { author, .. } if author.id == "bob"));

    // Active list shows the owner.
    let active = chathub_e2e::list(&carol, Status::Active).await;
    assert_eq!(active.items.len(), 1);
    assert_eq!(active.items[0].owner.as_ref().unwrap().as_str(), "bob");

    // Only the owner (or an admin) finishes; alice is not the owner any more.
    let err = alice
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(2),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    let err = user
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(2),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
    let Reply::Finish(view) = bob
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(2),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            view.state.status,
            view.state.owner.clone(),
            view.state.epoch
        ),
        (Status::Finished, None, 3)
    );
    let err = bob
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(3),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::InvalidState);
    let finished = chathub_e2e::list(&carol, Status::Finished).await;
    assert_eq!(finished.items[0].conversation, c);

    // The end user writes again: unanswered; carol (never had it) takes it.
    let ack = user
        .send_text(None, "one more question", None, None)
        .await
        .unwrap();
    assert_eq!(ack.status, Status::Unanswered);
    let reopened = expect_event(&mut user, "u-7", 8).await;
    assert!(matches!(
        reopened.body,
        EventBody::Status {
            cause: Cause::Reopened,
            ..
        }
    ));
    let ack = carol
        .send_text(Some(&c), "Carol here", Some(3), None)
        .await
        .unwrap();
    assert_eq!(
        (ack.owner.as_ref().unwrap().as_str(), ack.epoch),
        ("carol", 4)
    );

    // An admin may finish a conversation it does not own.
    let Reply::Finish(view) = boss
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(4),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(view.state.status, Status::Finished);
}

#[tokio::test]
async fn take_take_over_finish_and_reopen_embedded() {
    take_take_over_finish_and_reopen(TestHub::start().await).await;
}

#[tokio::test]
async fn take_take_over_finish_and_reopen_redis() {
    take_take_over_finish_and_reopen(TestHub::start_redis().await).await;
}

#[tokio::test]
async fn take_take_over_finish_and_reopen_redis_cluster() {
    take_take_over_finish_and_reopen(TestHub::start_redis_cluster().await).await;
}
