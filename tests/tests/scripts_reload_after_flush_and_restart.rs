//! Redis forgets its scripts (`SCRIPT FLUSH`, `FUNCTION FLUSH`, or a restart: the script
//! cache is not persisted). The node reloads them on the NOSCRIPT answer and retries at
//! once: clients see no error — sends, read marks and redemptions (each a script) keep
//! working mid-run, and the first command after a restart succeeds.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, conv, http_get, test_config};
use chathub_gateway::{GatewayConfig, RedisConfig};
use chathub_protocol::{Op, Reply};
use chathub_testkit::{RedisOptions, RedisServer};
use std::time::Duration;

async fn every_script_once(user: &Client, agent: &Client, round: usize) -> Vec<String> {
    let mut errors = Vec::new();
    for i in 0..20 {
        if let Err(e) = user
            .send_text(None, "hello", None, Some(&format!("r{round}-{i}")))
            .await
        {
            errors.push(format!("send: {e}"));
        }
    }
    let read = agent
        .request(Op::Read {
            conversation: Some(conv("u-ana")),
            seq: 2 + round as u64,
        })
        .await;
    if let Err(e) = read {
        errors.push(format!("read: {e}"));
    }
    // Redeem: a once-per-user coupon the first time, `already_redeemed` after; both are
    // answers from the script, not errors of the node.
    match user
        .request(Op::Redeem {
            engagement: "spring-10".into(),
        })
        .await
    {
        Ok(Reply::Redeem(_)) => {}
        Err(e)
            if e.server()
                .is_some_and(|e| e.code == chathub_protocol::ErrorCode::AlreadyRedeemed) => {}
        other => errors.push(format!("redeem: {other:?}")),
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_sees_a_lost_script() {
    let mut redis = RedisServer::start_with(RedisOptions {
        aof: true,
        ..Default::default()
    });
    let config = GatewayConfig {
        seed: Some(chathub_e2e::demo_seed()),
        ..test_config()
    };
    let hub = TestHub::start_on_redis(config, RedisConfig::new(redis.url())).await;
    let user = Client::connect(&hub.url(), &hub.token("demo", Role::EndUser, "u-ana"))
        .await
        .unwrap();
    let agent = Client::connect(&hub.url(), &hub.token("demo", Role::Agent, "alice"))
        .await
        .unwrap();

    let mut errors = every_script_once(&user, &agent, 0).await;
    for flush in [["SCRIPT", "FLUSH"], ["FUNCTION", "FLUSH"]] {
        assert!(redis.command(&flush).is_some_and(|r| r.starts_with("+OK")));
        errors.extend(every_script_once(&user, &agent, 1).await);
    }
    assert!(errors.is_empty(), "after a flush: {errors:?}");

    // A restart empties the script cache too. Once the node is ready again, the very
    // first commands succeed.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http_get(hub.http_addr, "/readyz").await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The clients' sockets to the node stayed open all along.
    let errors = every_script_once(&user, &agent, 2).await;
    assert!(errors.is_empty(), "after a restart: {errors:?}");
}
