//! Typing indicators reach the other side; read receipts ("seen up to seq") are pushed,
//! only move forward, and show in `open`.

use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, expect_frame};
use chathub_protocol::{Op, Reply, ServerFrame};

async fn typing_and_reads_reach_subscribers(hub: TestHub) {
    let mut user = hub.connect(Role::EndUser, "u-1").await;
    let mut agent = hub.connect(Role::Agent, "alice").await;
    let c = conv("u-1");
    user.subscribe(None, None).await.unwrap();
    user.send_text(None, "hi", None, None).await.unwrap();
    agent.subscribe(Some(&c), Some(0)).await.unwrap();

    agent
        .request(Op::Typing {
            conversation: Some(c.clone()),
            typing: true,
        })
        .await
        .unwrap();
    let f = expect_frame(&mut user, "typing", |f| matches!(f, ServerFrame::Typing(_))).await;
    let ServerFrame::Typing(t) = f else {
        unreachable!()
    };
    assert_eq!((t.from.id.as_str(), t.typing), ("alice", true));

    user.request(Op::Read {
        conversation: None,
        seq: 2,
    })
    .await
    .unwrap();
    let f = expect_frame(&mut agent, "read", |f| matches!(f, ServerFrame::Read(_))).await;
    let ServerFrame::Read(r) = f else {
        unreachable!()
    };
    assert_eq!(
        (r.by.id.as_str(), r.by.role, r.seq),
        ("u-1", Role::EndUser, 2)
    );
    // Going backwards is accepted but changes nothing.
    user.request(Op::Read {
        conversation: None,
        seq: 1,
    })
    .await
    .unwrap();
    let Reply::Open(opened) = agent
        .request(Op::Open {
            conversation: Some(c.clone()),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(opened.reads.len(), 1);
    assert_eq!(opened.reads[0].seq, 2);
}

#[tokio::test]
async fn typing_and_reads_reach_subscribers_embedded() {
    typing_and_reads_reach_subscribers(TestHub::start().await).await;
}

#[tokio::test]
async fn typing_and_reads_reach_subscribers_redis() {
    typing_and_reads_reach_subscribers(TestHub::start_redis().await).await;
}
