//! A send whose outcome is unknown (Redis paused past the node's timeout: the client gets
//! `unavailable`, yet the script runs once Redis resumes) is retried with the same
//! `client_msg_id`: exactly one history entry, and the same ack for every retry.

use chathub_domain::{EventBody, Role};
use chathub_e2e::{ClusterProcesses, RedisOptions, full_history};
use chathub_protocol::ErrorCode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcomes_are_safe_to_retry() {
    let mut cluster = ClusterProcesses::start(1, RedisOptions::default());
    let user = cluster.connect(0, Role::EndUser, "u-1").await;
    let agent = cluster.connect(0, Role::Agent, "alice").await;
    user.send_text(None, "first", None, Some("m-0"))
        .await
        .unwrap();

    // Nodes time Redis calls out after 1 s (test config); pause writes for 2.5 s.
    let paused = cluster
        .server()
        .command(&["CLIENT", "PAUSE", "2500", "WRITE"]);
    assert!(paused.is_some_and(|r| r.starts_with("+OK")));
    let err = user
        .send_text(None, "during the pause", None, Some("m-1"))
        .await
        .unwrap_err();
    assert_eq!(err.server().map(|e| e.code), Some(ErrorCode::Unavailable));

    // Retry until it goes through; then every retry gets the same ack.
    let mut first_ack = None;
    for _ in 0..100 {
        match user
            .send_text(None, "during the pause", None, Some("m-1"))
            .await
        {
            Ok(ack) => {
                first_ack = Some(ack);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let first_ack = first_ack.expect("the retry went through after the pause");
    for _ in 0..3 {
        let again = user
            .send_text(None, "during the pause", None, Some("m-1"))
            .await
            .unwrap();
        assert_eq!(again, first_ack, "identical ack on every retry");
    }
    let history = full_history(&agent, "u-1").await;
    let copies = history
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Message { client_msg_id: Some(id), .. } if id == "m-1"))
        .count();
    assert_eq!(copies, 1, "exactly one history entry per client message id");
}
