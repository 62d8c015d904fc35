//! A token that expires during the session closes it with 4100 ("get a new token");
//! a valid one keeps working.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, test_config};
use chathub_gateway::MemoryStoreConfig;
use std::time::Duration;

#[tokio::test]
async fn session_ends_when_its_token_expires() {
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(200);
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    // Valid for one second (the handshake tolerates clock skew; the session does not).
    let short = hub
        .auth
        .mint("acme", "u-1", Role::EndUser, None, 1)
        .unwrap();
    let mut c = Client::connect(&hub.url(), &short).await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), c.close_code())
        .await
        .expect("closed before the deadline");
    assert_eq!(code, Some(4100));
}
