//! The offline webhook is a durable job recorded by the atomic step, not a call the
//! applying node makes after it: SIGKILL that node right after the agent's message is
//! acknowledged, and the push still arrives, once, sent by another node once the job's
//! lease is over.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{HubProcess, PATIENCE, conv, dev_token, webhook_header, webhook_receiver};
use chathub_testkit::RedisServer;
use std::time::Duration;

#[tokio::test]
async fn a_push_is_not_lost_with_the_node_that_acknowledged_its_message() {
    let redis = RedisServer::start();
    let (url, got) = webhook_receiver(0).await;
    // The node that will die can never reach the receiver (nothing listens on its
    // webhook port), so whatever arrives was sent by the survivor.
    let dead_end = format!("http://127.0.0.1:{}/push", chathub_testkit::free_port());
    let lease = ["--webhook-lease-secs", "2", "--webhook-secret", "s3cret"];
    let mut doomed = HubProcess::spawn_redis(
        &redis.url(),
        &[&["--webhook-url", dead_end.as_str()][..], &lease[..]].concat(),
    );
    let _survivor = HubProcess::spawn_redis(
        &redis.url(),
        &[&["--webhook-url", url.as_str()][..], &lease[..]].concat(),
    );

    // The end user writes, then goes offline.
    let user = Client::connect(&doomed.ws_url, &dev_token("acme", Role::EndUser, "u-1"))
        .await
        .unwrap();
    user.send_text(None, "my coupon does not scan", None, Some("m-1"))
        .await
        .unwrap();
    user.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The agent answers on the doomed node, which dies right after the ack.
    let agent = Client::connect(&doomed.ws_url, &dev_token("acme", Role::Agent, "alice"))
        .await
        .unwrap();
    let ack = agent
        .send_text(
            Some(&conv("u-1")),
            "try this code: X1",
            Some(0),
            Some("a-1"),
        )
        .await
        .unwrap();
    doomed.kill9();

    let id = format!("acme/u-1/{}", ack.seq);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push of a message acknowledged by a node that died never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another lease and a sweep: nothing more comes (the job was completed).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "exactly one push");
    assert_eq!(webhook_header(&got[0], "x-chathub-delivery"), id);
    let body: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(body["content"]["text"], "try this code: X1");
    assert_eq!(body["author"]["id"], "alice");
}
