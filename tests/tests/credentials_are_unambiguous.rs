//! Ambiguous credentials are refused, whichever of them is valid: a Bearer header and a
//! `?token=`, two `?token=`s, two Authorization headers (handshake and admin API alike).
//! A node refuses to start with an empty or too short secret, and `chathub token` refuses
//! to mint with one; the CLI spells the end-user role both ways.

use chathub_domain::Role;
use chathub_e2e::{TestHub, chathub_binary, http_exchange, http_request, test_config};
use chathub_gateway::{GatewayConfig, GatewayError, MemoryStoreConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The handshake's HTTP status for `path_and_query` with these `Authorization` values.
async fn handshake(hub: &TestHub, path_and_query: &str, authorization: &[&str]) -> u16 {
    let mut req = format!("ws://{}{path_and_query}", hub.ws_addr)
        .into_client_request()
        .unwrap();
    for value in authorization {
        req.headers_mut()
            .append("authorization", value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn two_credentials_are_refused_whichever_is_valid() {
    let hub = TestHub::start().await;
    let good = hub.token("acme", Role::Agent, "alice");
    let other = hub.token("acme", Role::Agent, "bob");
    let bearer = format!("Bearer {good}");
    // One credential, either way: connected.
    assert_eq!(handshake(&hub, &format!("/?token={good}"), &[]).await, 101);
    assert_eq!(handshake(&hub, "/", &[&bearer]).await, 101);
    // A valid header with a garbage or another query token.
    assert_eq!(handshake(&hub, "/?token=garbage", &[&bearer]).await, 401);
    assert_eq!(
        handshake(&hub, &format!("/?token={other}"), &[&bearer]).await,
        401
    );
    // Two query tokens, even both valid; two headers.
    assert_eq!(
        handshake(&hub, &format!("/?token={good}&token={other}"), &[]).await,
        401
    );
    assert_eq!(
        handshake(&hub, &format!("/?token={good}&token=x"), &[]).await,
        401
    );
    let second = format!("Bearer {other}");
    assert_eq!(handshake(&hub, "/", &[&bearer, &second]).await, 401);

    // The admin API: one Authorization header only.
    let admin = hub.token("acme", Role::Admin, "carol");
    let (status, _) = http_request(hub.http_addr, "GET", "/admin/v1/canned", &admin, "").await;
    assert_eq!(status, 200);
    let request = format!(
        "GET /admin/v1/canned HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) = http_exchange(hub.http_addr, &request).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("\"unauthorized\""), "{answer}");
    hub.stop().await;
}

#[tokio::test]
async fn a_node_refuses_an_empty_or_short_secret() {
    for secret in ["", "short"] {
        let mut config: GatewayConfig = test_config();
        config.auth.secret = secret.into();
        let started = chathub_gateway::start_embedded(
            config,
            MemoryStoreConfig::default(),
            Default::default(),
        )
        .await;
        match started {
            Err(GatewayError::Config(message)) => {
                assert!(message.contains("at least 16"), "{message}")
            }
            Err(e) => panic!("{secret:?}: refused for another reason: {e}"),
            Ok(_) => panic!("{secret:?}: the node started"),
        }
    }
    let mut config = test_config();
    config.auth.verify_secrets = vec!["tiny".into()];
    let started =
        chathub_gateway::start_embedded(config, MemoryStoreConfig::default(), Default::default())
            .await;
    assert!(matches!(started, Err(GatewayError::Config(_))));
}

#[test]
fn the_cli_refuses_weak_secrets_and_spells_the_end_user_role_both_ways() {
    let token = |extra: &[&str]| {
        std::process::Command::new(chathub_binary())
            .args(["token", "--tenant", "acme", "--subject", "u-1"])
            .args(extra)
            .output()
            .unwrap()
    };
    for role in ["end-user", "end_user"] {
        let out = token(&["--role", role]);
        assert!(out.status.success(), "--role {role}: {out:?}");
        assert!(!out.stdout.is_empty());
    }
    let out = token(&["--role", "agent", "--secret", ""]);
    assert!(!out.status.success(), "minted with an empty secret");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16"),
        "{out:?}"
    );
    let serve = std::process::Command::new(chathub_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-http",
            "--secret",
            "",
        ])
        .output()
        .unwrap();
    assert!(!serve.status.success(), "served with an empty secret");
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("at least 16"),
        "{serve:?}"
    );
}
