//! A send retried with the same `client_msg_id` is recorded once and acknowledged
//! identically; a different id is a new message.

use chathub_domain::{EventBody, Role};
use chathub_e2e::{TestHub, full_history};

async fn retries_are_not_duplicated(hub: TestHub) {
    let user = hub.connect(Role::EndUser, "u-1").await;
    let first = user
        .send_text(None, "hello", None, Some("m-1"))
        .await
        .unwrap();
    // The retry comes on a new connection, as after a network drop.
    let again = hub.connect(Role::EndUser, "u-1").await;
    for _ in 0..3 {
        let retry = again
            .send_text(None, "hello", None, Some("m-1"))
            .await
            .unwrap();
        assert_eq!(retry, first, "identical ack on every retry");
    }
    let agent = hub.connect(Role::Agent, "alice").await;
    let c = chathub_e2e::conv("u-1");
    let a1 = agent
        .send_text(Some(&c), "hi", Some(0), Some("m-1"))
        .await
        .unwrap();
    assert_ne!(a1.seq, first.seq, "ids are per author");
    let a2 = agent
        .send_text(Some(&c), "hi", Some(0), Some("m-1"))
        .await
        .unwrap();
    assert_eq!(a1, a2, "a retried take is not a conflict with itself");
    let second = user
        .send_text(None, "hello", None, Some("m-2"))
        .await
        .unwrap();
    assert!(second.seq > first.seq);

    let history = full_history(&agent, "u-1").await;
    let messages: Vec<_> = history
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Message {
                client_msg_id,
                author,
                ..
            } => Some((author.id.clone(), client_msg_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            ("u-1".to_string(), Some("m-1".to_string())),
            ("alice".to_string(), Some("m-1".to_string())),
            ("u-1".to_string(), Some("m-2".to_string())),
        ]
    );
}

#[tokio::test]
async fn retries_are_not_duplicated_embedded() {
    retries_are_not_duplicated(TestHub::start().await).await;
}

#[tokio::test]
async fn retries_are_not_duplicated_redis() {
    retries_are_not_duplicated(TestHub::start_redis().await).await;
}
