//! Agents page through a conversation's history before and after a `seq`; an empty
//! conversation is a normal, empty answer.

use chathub_domain::Role;
use chathub_e2e::{TestHub, conv};
use chathub_protocol::{ErrorCode, Op, Reply};

async fn page(
    c: &chathub_client::Client,
    before: Option<u64>,
    after: Option<u64>,
    limit: u32,
) -> (Vec<u64>, bool) {
    let reply = c
        .request(Op::History {
            conversation: Some(conv("u-1")),
            before,
            after,
            limit: Some(limit),
        })
        .await
        .unwrap();
    let Reply::History(h) = reply else { panic!() };
    (h.events.iter().map(|e| e.seq).collect(), h.has_more)
}

async fn paging_in_both_directions(hub: TestHub) {
    let agent = hub.connect(Role::Agent, "alice").await;
    assert_eq!(
        page(&agent, None, None, 10).await,
        (vec![], false),
        "no history yet"
    );

    let user = hub.connect(Role::EndUser, "u-1").await;
    for i in 0..9 {
        user.send_text(None, &format!("m{i}"), None, None)
            .await
            .unwrap();
    }
    // seqs 1..=10: opened + 9 messages
    assert_eq!(page(&agent, None, None, 3).await, (vec![8, 9, 10], true));
    assert_eq!(page(&agent, Some(8), None, 3).await, (vec![5, 6, 7], true));
    assert_eq!(page(&agent, Some(3), None, 3).await, (vec![1, 2], false));
    assert_eq!(
        page(&agent, None, Some(0), 4).await,
        (vec![1, 2, 3, 4], true)
    );
    assert_eq!(
        page(&agent, None, Some(7), 4).await,
        (vec![8, 9, 10], false)
    );
    assert_eq!(page(&agent, None, Some(10), 4).await, (vec![], false));

    let err = agent
        .request(Op::History {
            conversation: Some(conv("u-1")),
            before: Some(5),
            after: Some(1),
            limit: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::BadRequest);
    // The end user reads their own history without naming it.
    let Reply::History(own) = user
        .request(Op::History {
            conversation: None,
            before: None,
            after: None,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(own.events.len(), 10);
}

#[tokio::test]
async fn paging_in_both_directions_embedded() {
    paging_in_both_directions(TestHub::start().await).await;
}

#[tokio::test]
async fn paging_in_both_directions_redis() {
    paging_in_both_directions(TestHub::start_redis().await).await;
}
