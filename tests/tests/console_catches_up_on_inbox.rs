//! A console that reconnects catches up on every queue change it missed (new unanswered,
//! taken, finished) from the tenant's inbox stream, instead of reloading everything.

use chathub_domain::{Role, Status};
use chathub_e2e::{TestHub, conv, expect_frame, test_config};
use chathub_gateway::{MemoryStoreConfig, RedisConfig};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};

async fn inbox(
    client: &chathub_client::Client,
    since: Option<String>,
) -> chathub_protocol::InboxReply {
    match client.request(Op::Inbox { since }).await.unwrap() {
        Reply::Inbox(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

async fn catch_up(hub: TestHub) {
    let mut console = hub.connect(Role::Agent, "alice").await;
    let start = inbox(&console, None).await;
    assert_eq!(
        (start.cursor.clone(), start.replayed),
        (None, 0),
        "empty inbox"
    );
    let u1 = hub.connect(Role::EndUser, "u-1").await;
    u1.send_text(None, "first", None, None).await.unwrap();
    let f = expect_frame(&mut console, "queue", |f| {
        matches!(f, ServerFrame::Queue(_))
    })
    .await;
    let ServerFrame::Queue(seen) = f else {
        unreachable!()
    };
    let cursor = seen
        .cursor
        .clone()
        .expect("queue frames carry their inbox cursor");
    console.close().await;

    // While alice is away: a new conversation, a take and a finish.
    let u2 = hub.connect(Role::EndUser, "u-2").await;
    u2.send_text(None, "second", None, None).await.unwrap();
    let bob = hub.connect(Role::Agent, "bob").await;
    let ack = bob
        .send_text(Some(&conv("u-1")), "bob here", Some(0), None)
        .await
        .unwrap();
    bob.request(Op::Finish {
        conversation: Some(conv("u-1")),
        epoch: Some(ack.epoch),
    })
    .await
    .unwrap();

    let mut console = hub.connect(Role::Agent, "alice").await;
    let reply = inbox(&console, Some(cursor.clone())).await;
    assert_eq!(reply.replayed, 3);
    assert!(!reply.history_truncated);
    let mut missed = Vec::new();
    while missed.len() < 3 {
        if let ServerFrame::Queue(q) = expect_frame(&mut console, "replayed queue", |f| {
            matches!(f, ServerFrame::Queue(_))
        })
        .await
        {
            missed.push((
                q.conversation.to_string(),
                q.status,
                q.owner.map(|o| o.to_string()),
                q.cursor,
            ));
        }
    }
    let summary: Vec<_> = missed
        .iter()
        .map(|(c, s, o, _)| (c.as_str(), *s, o.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("u-2", Status::Unanswered, None),
            ("u-1", Status::Active, Some("bob")),
            ("u-1", Status::Finished, None),
        ]
    );
    assert_eq!(
        reply.cursor, missed[2].3,
        "the reply names the newest position"
    );
    // Caught up: nothing more to replay.
    assert_eq!(inbox(&console, reply.cursor.clone()).await.replayed, 0);
    let err = console
        .request(Op::Inbox {
            since: Some("not a cursor".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::BadRequest);
    let err = u1.request(Op::Inbox { since: None }).await.unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn catch_up_embedded() {
    catch_up(TestHub::start().await).await;
}

#[tokio::test]
async fn catch_up_redis() {
    catch_up(TestHub::start_redis().await).await;
}

async fn too_old_a_cursor_says_truncated(hub: TestHub) {
    let mut console = hub.connect(Role::Agent, "alice").await;
    let u = hub.connect(Role::EndUser, "u-0").await;
    u.send_text(None, "hi", None, None).await.unwrap();
    let ServerFrame::Queue(first) = expect_frame(&mut console, "queue", |f| {
        matches!(f, ServerFrame::Queue(_))
    })
    .await
    else {
        unreachable!()
    };
    for i in 1..5 {
        let u = hub.connect(Role::EndUser, &format!("u-{i}")).await;
        u.send_text(None, "hi", None, None).await.unwrap();
    }
    // Only the last two changes are retained.
    let reply = inbox(&console, first.cursor).await;
    assert!(reply.history_truncated);
    assert_eq!(reply.replayed, 2);
    let fresh = inbox(&console, reply.cursor.clone()).await;
    assert!(!fresh.history_truncated && fresh.replayed == 0);
}

#[tokio::test]
async fn too_old_a_cursor_says_truncated_embedded() {
    let store = MemoryStoreConfig {
        inbox_max_len: 2,
        ..Default::default()
    };
    too_old_a_cursor_says_truncated(TestHub::start_with(test_config(), store).await).await;
}

#[tokio::test]
async fn too_old_a_cursor_says_truncated_redis() {
    let server = chathub_e2e::RedisServer::start();
    let mut redis = RedisConfig::new(server.url());
    redis.ownership.inbox_stream_max_len = 2;
    let mut hub = TestHub::start_on_redis(test_config(), redis).await;
    hub.redis = Some(Box::new(server));
    too_old_a_cursor_says_truncated(hub).await;
}
