//! Tokens after the handshake: a session whose token expires is closed with 1008 within
//! a re-validation interval (the ping interval); during a key rotation every listed key is
//! accepted, and withdrawing one (from the secrets file) closes the sessions it signed —
//! and only those — with 1008; resuming re-runs authorization with the token presented
//! then.

use chathub_client::{Client, ClientError};
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, test_config};
use chathub_gateway::{AuthConfig, Authenticator, MemoryStoreConfig};
use chathub_protocol::{ErrorCode, Op};
use std::time::Duration;

#[tokio::test]
async fn session_ends_with_1008_when_its_token_expires() {
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(200);
    // No clock-skew leeway (default 30 s), so expiry is exact for the test.
    config.auth.leeway_secs = 0;
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    // Valid for one second.
    let short = hub
        .auth
        .mint("acme", "u-1", Role::EndUser, None, 1)
        .unwrap();
    let mut c = Client::connect(&hub.url(), &short).await.unwrap();
    let started = std::time::Instant::now();
    let code = tokio::time::timeout(Duration::from_secs(10), c.close_code())
        .await
        .expect("closed before the deadline");
    assert_eq!(code, Some(1008));
    // `exp` has one-second resolution: past it by up to a second, plus one
    // re-validation interval at most.
    assert!(
        started.elapsed() < Duration::from_millis(3300),
        "{:?}",
        started.elapsed()
    );
    // And a fresh connect with it is refused at the handshake.
    match Client::connect(&hub.url(), &short).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn withdrawn_keys_close_their_sessions() {
    let dir = std::env::temp_dir().join(format!("chathub-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys");
    std::fs::write(
        &keys,
        "# previous key, still accepted\nold-secret-for-rotation\n",
    )
    .unwrap();
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(200);
    config.auth = AuthConfig {
        secret: "new-secret-for-rotation".into(),
        secrets_file: Some(keys.clone()),
        ..AuthConfig::default()
    };
    let hub = TestHub::start_with(config, MemoryStoreConfig::default()).await;
    let signer = |secret: &str| {
        Authenticator::new(&AuthConfig {
            secret: secret.into(),
            ..AuthConfig::default()
        })
    };
    let old_token = signer("old-secret-for-rotation")
        .mint("acme", "u-old", Role::EndUser, None, 600)
        .unwrap();
    let new_token = signer("new-secret-for-rotation")
        .mint("acme", "u-new", Role::EndUser, None, 600)
        .unwrap();
    let mut by_old = Client::connect(&hub.url(), &old_token).await.unwrap();
    let by_new = Client::connect(&hub.url(), &new_token).await.unwrap();
    by_old.request(Op::Ping {}).await.unwrap();

    // The rotation ends: the old key leaves the file.
    std::fs::write(&keys, "").unwrap();
    let code = tokio::time::timeout(Duration::from_secs(15), by_old.close_code())
        .await
        .expect("closed after the key was withdrawn");
    assert_eq!(code, Some(1008));
    by_new
        .request(Op::Ping {})
        .await
        .expect("the new key's session stays");
    match Client::connect(&hub.url(), &old_token).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn resuming_is_authorized_again() {
    let hub = TestHub::start().await;
    let user = hub.connect(Role::EndUser, "u-1").await;
    user.send_text(None, "private", None, None).await.unwrap();
    drop(user);
    // Back with another person's token: their own rights, not the old session's.
    let other = hub.connect(Role::EndUser, "u-2").await;
    let refused = other.resume(Some(&conv("u-1")), Some(0), None).await;
    assert!(
        matches!(&refused, Err(e) if e.server().map(|e| e.code) == Some(ErrorCode::Forbidden)),
        "{refused:?}"
    );
    // And with an expired token there is no session to resume in.
    let expired = hub
        .auth
        .mint("acme", "u-1", Role::EndUser, None, 0)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let strict = Authenticator::new(&AuthConfig {
        leeway_secs: 0,
        ..AuthConfig::default()
    });
    assert!(strict.verify(&expired).is_err());
}
