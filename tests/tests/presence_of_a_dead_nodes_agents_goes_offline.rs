//! When an agent's node dies, nobody is left to announce that she went away: the
//! surviving nodes see her heartbeats expire and tell every agent `presence {offline}`
//! (within the presence expiry, three ping intervals).

use chathub_client::Client;
use chathub_domain::{Presence, Role};
use chathub_e2e::{HubProcess, dev_token};
use chathub_protocol::ServerFrame;
use chathub_testkit::RedisServer;
use std::time::Duration;

#[tokio::test]
async fn a_dead_nodes_agents_are_announced_offline() {
    let redis = RedisServer::start();
    let fast = ["--ping-interval-secs", "1", "--ping-timeout-secs", "5"];
    let mut doomed = HubProcess::spawn_redis(&redis.url(), &fast);
    let survivor = HubProcess::spawn_redis(&redis.url(), &fast);
    let mut bob = Client::connect(&survivor.ws_url, &dev_token("acme", Role::Agent, "bob"))
        .await
        .unwrap();
    let alice = Client::connect(&doomed.ws_url, &dev_token("acme", Role::Agent, "alice"))
        .await
        .unwrap();
    // Bob hears Alice arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, bob.next_event())
            .await
            .expect("alice's arrival is announced");
        if let Some(ServerFrame::Presence(p)) = frame
            && p.agent == "alice"
            && p.presence == Presence::Available
        {
            break;
        }
    }
    doomed.kill9();
    drop(alice);
    // Her heartbeats expire after 3 s; the surviving node announces it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let frame = tokio::time::timeout_at(deadline, bob.next_event())
            .await
            .expect("alice is announced offline after her node died");
        if let Some(ServerFrame::Presence(p)) = frame
            && p.agent == "alice"
            && p.presence == Presence::Offline
        {
            break;
        }
    }
}
