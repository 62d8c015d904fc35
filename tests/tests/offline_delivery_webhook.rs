//! An agent's message for an end user with no live socket is POSTed to the webhook:
//! HMAC-signed, retried with backoff after a failure, one delivery per message id; an
//! end user who is connected gets no webhook.

use chathub_domain::Role;
use chathub_e2e::{
    TestHub, conv, test_config, webhook_header as header, webhook_receiver as receiver,
};
use chathub_gateway::webhook::signature;
use chathub_gateway::{GatewayConfig, WebhookConfig};
use std::time::Duration;

#[tokio::test]
async fn offline_end_users_are_notified_once_with_a_signed_body() {
    let (url, got) = receiver(1).await;
    let config = GatewayConfig {
        webhook: Some(WebhookConfig::new(url, "s3cret")),
        ..test_config()
    };
    let hub = TestHub::start_with(config, Default::default()).await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "hello", None, None).await.unwrap();
    let agent = hub.connect(Role::Agent, "alice").await;
    // The end user is online: no webhook.
    agent
        .send_text(Some(&conv("u-1")), "while you are here", Some(0), None)
        .await
        .unwrap();
    user.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "no webhook for an online end user"
    );

    let ack = agent
        .send_text(Some(&conv("u-1")), "are you still there?", Some(1), None)
        .await
        .unwrap();
    // Retried after the first failure, then delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook not retried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2, "one failure, one success, no more");
    let (first, second) = (&got[0], &got[1]);
    let id = format!("acme/u-1/{}", ack.seq);
    assert_eq!(header(first, "x-chathub-delivery"), id);
    assert_eq!(
        header(second, "x-chathub-delivery"),
        id,
        "same id on the retry"
    );
    assert_eq!(first.1, second.1, "same body on the retry");
    assert_eq!(
        header(second, "x-chathub-signature"),
        signature("s3cret", &second.1)
    );
    let body: serde_json::Value = serde_json::from_slice(&second.1).unwrap();
    assert_eq!(body["conversation"], "u-1");
    assert_eq!(body["content"]["text"], "are you still there?");
    assert_eq!(body["author"]["id"], "alice");
}
