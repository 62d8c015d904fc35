//! Availability aggregates an agent's devices and is seen by other agents; a taken-over
//! conversation's previous owner gets `ownership_lost` on every device; an owner without
//! a live session is flagged to other agents. On both backends.

use chathub_domain::{Presence, Role, Status};
use chathub_e2e::{TestHub, conv, expect_frame, list, test_config};
use chathub_gateway::{GatewayConfig, RedisConfig};
use chathub_protocol::{Op, Reply, ServerFrame};
use std::time::Duration;

async fn presence_of(c: &chathub_client::Client, agent: &str) -> Presence {
    let Reply::Agents(a) = c.request(Op::Agents {}).await.unwrap() else {
        panic!()
    };
    a.agents
        .into_iter()
        .find(|p| p.agent == agent)
        .map_or(Presence::Offline, |p| p.presence)
}

async fn scenario(hub: TestHub) {
    let phone = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let mut laptop = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let mut bob = hub.demo_client(Role::Agent, "bob", "Bob").await;
    assert_eq!(presence_of(&bob, "alice").await, Presence::Available);

    // Away on one device, available on the other: available. Away on both: away.
    let Reply::Presence(p) = phone
        .request(Op::Presence {
            presence: Presence::Away,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.presence, Presence::Available);
    let Reply::Presence(p) = laptop
        .request(Op::Presence {
            presence: Presence::Away,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.presence, Presence::Away);
    expect_frame(&mut bob, "alice away", |f| matches!(f, ServerFrame::Presence(p) if p.agent == "alice" && p.presence == Presence::Away)).await;
    assert_eq!(presence_of(&bob, "alice").await, Presence::Away);

    // Bob takes over alice's conversation: both her devices are told, naming bob.
    let ana = hub.demo_client(Role::EndUser, "u-ana", "Ana").await;
    ana.send_text(None, "hello again", None, None)
        .await
        .unwrap();
    let mut phone = phone;
    let taken = laptop
        .send_text(Some(&conv("u-ana")), "hi", Some(0), None)
        .await
        .unwrap();
    bob.send_text(
        Some(&conv("u-ana")),
        "I'll take this",
        Some(taken.epoch),
        None,
    )
    .await
    .unwrap();
    for device in [&mut phone, &mut laptop] {
        let f = expect_frame(device, "ownership_lost", |f| {
            matches!(f, ServerFrame::OwnershipLost(_))
        })
        .await;
        let ServerFrame::OwnershipLost(lost) = f else {
            unreachable!()
        };
        assert_eq!(
            (
                lost.conversation.as_str(),
                lost.by.as_ref().map(|a| a.as_str()),
                lost.epoch
            ),
            ("u-ana", Some("bob"), 2)
        );
    }

    // Bob leaves entirely: offline, and his active conversation is flagged owner_absent.
    drop(bob);
    let mut watcher = hub.demo_client(Role::Admin, "carol", "Carol").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while presence_of(&watcher, "bob").await != Presence::Offline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never went offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let active = list(&watcher, Status::Active).await;
    let entry = active
        .items
        .iter()
        .find(|i| i.conversation.as_str() == "u-ana")
        .unwrap();
    assert_eq!(entry.owner_absent, Some(true));
    let _ = watcher.try_next_event();
}

fn config() -> GatewayConfig {
    // Flag an owner as soon as no session is left.
    GatewayConfig {
        seed: Some(chathub_e2e::demo_seed()),
        owner_absent_after: Duration::ZERO,
        ..test_config()
    }
}

#[tokio::test]
async fn presence_and_ownership_lost_embedded() {
    scenario(TestHub::start_with(config(), Default::default()).await).await;
}

#[tokio::test]
async fn presence_and_ownership_lost_redis() {
    let server = chathub_e2e::RedisServer::start();
    let mut hub = TestHub::start_on_redis(config(), RedisConfig::new(server.url())).await;
    hub.redis = Some(Box::new(server));
    scenario(hub).await;
}

/// On a Redis Cluster the notice comes with the tenant's queue step (another slot than
/// the conversation's).
#[tokio::test]
async fn presence_and_ownership_lost_redis_cluster() {
    let cluster = chathub_testkit::RedisCluster::start(3);
    let mut hub = TestHub::start_on_redis(config(), RedisConfig::cluster(cluster.urls())).await;
    hub.redis = Some(Box::new(cluster));
    scenario(hub).await;
}
