//! The Redis history stream is capped by length and by age (both configurable).

#![allow(clippy::unwrap_used)]

use chathub_domain::{Actor, Command, ConversationId, EndUserId, MessageContent, TenantId};
use chathub_ownership::{ApplyRequest, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_store::{ConversationStore, HistoryRange, RedisKeys, RedisStore};
use chathub_testkit::RedisServer;

fn send_at(user: &str, at: u64) -> ApplyRequest {
    ApplyRequest {
        tenant: TenantId::new("t").unwrap(),
        conversation: ConversationId::new(user).unwrap(),
        actor: Actor::EndUser(EndUserId::new(user).unwrap()),
        command: Command::Send {
            content: MessageContent::Text {
                text: format!("at {at}"),
            },
            client_msg_id: None,
            seen_epoch: None,
        },
        at,
        context: Default::default(),
    }
}

#[tokio::test]
async fn history_keeps_recent_events_by_age_and_length() {
    let server = RedisServer::start();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let keys = RedisKeys::new("ret");
    let store = RedisStore::new(conn.clone(), keys.clone());
    let t = TenantId::new("t").unwrap();

    // By age: events older than 10 s leave history as new ones arrive.
    let by_age = RedisOwnership::new(
        conn.clone(),
        keys.clone(),
        RedisOwnershipConfig {
            history_max_age_ms: 10_000,
            ..Default::default()
        },
    );
    for at in [1_000, 2_000, 3_000] {
        by_age.apply(send_at("aged", at)).await.unwrap();
    }
    by_age.apply(send_at("aged", 20_000)).await.unwrap();
    let h = store
        .history(
            &t,
            &ConversationId::new("aged").unwrap(),
            HistoryRange::Latest { limit: 100 },
        )
        .await
        .unwrap();
    assert!(
        h.events.iter().all(|e| e.at >= 10_000),
        "{:?}",
        h.events.iter().map(|e| e.at).collect::<Vec<_>>()
    );
    assert_eq!(h.events.last().unwrap().seq, 5, "seq keeps counting");

    // By length (approximate in Redis: whole stream nodes are trimmed).
    let by_len = RedisOwnership::new(
        conn,
        keys,
        RedisOwnershipConfig {
            history_max_len: 100,
            ..Default::default()
        },
    );
    for at in 0..1_000 {
        by_len.apply(send_at("long", at)).await.unwrap();
    }
    let all = store
        .history(
            &t,
            &ConversationId::new("long").unwrap(),
            HistoryRange::After {
                after: 0,
                limit: 2_000,
            },
        )
        .await
        .unwrap();
    assert!(
        all.events.len() < 1_000 && all.events.len() >= 100,
        "kept {}",
        all.events.len()
    );
    assert_eq!(all.events.last().unwrap().seq, 1_001);
}
