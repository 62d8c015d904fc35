//! `lua/inbox.lua` (the second step on a Redis Cluster) applies several queue updates in
//! one call (the node's inbox writer batches them per tenant): in order, skipping any that is not newer than the entry,
//! moving entries between the status sets only when the status changes, and publishing a
//! queue frame (with its inbox cursor) for status changes only.

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use chathub_testkit::RedisServer;
use redis::AsyncCommands;

const KEYS: [&str; 6] = [
    "i:inbox",
    "i:unanswered",
    "i:active",
    "i:finished",
    "i:events",
    "i:jobs",
];

/// One update's arguments: the nine of its queue entry, then no notice, no record, no
/// webhook job and no mentions.
fn update(
    conversation: &str,
    seq: u64,
    status: &str,
    owner: &str,
    at: u64,
    status_changed: bool,
    preview: &str,
) -> Vec<String> {
    vec![
        conversation.into(),
        seq.to_string(),
        status.into(),
        owner.into(),
        u64::from(!owner.is_empty()).to_string(),
        "0".into(),
        at.to_string(),
        if status_changed { "1" } else { "0" }.into(),
        preview.into(),
        // No ownership_lost notice.
        String::new(),
        String::new(),
        "0".into(),
        "0".into(),
        String::new(),
        // No "received" record.
        "0".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        // No webhook job.
        "0".into(),
        // No mentions.
        String::new(),
        String::new(),
    ]
}

#[tokio::test]
async fn one_call_applies_many_updates_in_order() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("i:agents").await.unwrap();

    let script = redis::Script::new(concat!(
        include_str!("../src/redis/lua/inbox_entry.lua"),
        include_str!("../src/redis/lua/inbox.lua")
    ));
    let mut call = script.prepare_invoke();
    for key in KEYS {
        call.key(key);
    }
    call.arg("PUBLISH")
        .arg("i:agents")
        .arg(100)
        .arg("i:agent:")
        .arg(0);
    let updates = [
        update("a", 1, "unanswered", "", 100, true, "hello"),
        update("b", 1, "unanswered", "", 110, true, "hi"),
        update("a", 2, "unanswered", "", 120, false, "more"),
        // Stale (an older seq arriving late): skipped.
        update("a", 1, "finished", "", 130, true, "stale"),
        update("b", 3, "active", "x", 140, true, ""),
    ];
    for u in &updates {
        for arg in u {
            call.arg(arg);
        }
    }
    let results: Vec<(i64, u64)> = call.invoke_async(&mut conn).await.unwrap();
    let changed: Vec<i64> = results.iter().map(|r| r.0).collect();
    assert_eq!(changed, [1, 1, 1, 0, 1], "the stale update is skipped");
    // Only b's take-over left the unanswered queue, where it had waited since 110.
    let since: Vec<u64> = results.iter().map(|r| r.1).collect();
    assert_eq!(since, [0, 0, 0, 0, 110]);

    let unanswered: Vec<(String, f64)> =
        conn.zrange_withscores("i:unanswered", 0, -1).await.unwrap();
    assert_eq!(
        unanswered,
        vec![("a".to_owned(), 100.0)],
        "waiting since it opened"
    );
    let active: Vec<(String, f64)> = conn.zrange_withscores("i:active", 0, -1).await.unwrap();
    assert_eq!(active, vec![("b".to_owned(), 140.0)]);
    let finished: Vec<String> = conn.zrange("i:finished", 0, -1).await.unwrap();
    assert!(finished.is_empty());

    let a: Vec<u8> = conn.hget("i:inbox", "a").await.unwrap();
    let a: serde_json::Value = rmp_serde::from_slice(&a).unwrap();
    assert_eq!(a["seq"], 2);
    assert_eq!(a["preview"], "more");
    assert_eq!(a["since"], 100);
    assert_eq!(a["updated"], 120);
    let b: Vec<u8> = conn.hget("i:inbox", "b").await.unwrap();
    let b: serde_json::Value = rmp_serde::from_slice(&b).unwrap();
    assert_eq!(b["owner"], "x");
    assert_eq!(b["preview"], "hi", "an empty preview keeps the last one");
    assert_eq!(b["since"], 140, "a status change restarts `since`");

    // Three status changes → three stream entries and three frames, in order.
    let len: usize = conn.xlen("i:events").await.unwrap();
    assert_eq!(len, 3);
    let mut messages = pubsub.on_message();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::StreamExt::next(&mut messages),
        )
        .await
        .unwrap()
        .unwrap();
        let frame: serde_json::Value = rmp_serde::from_slice(message.get_payload_bytes()).unwrap();
        assert_eq!(frame["type"], "queue");
        assert!(frame["cursor"].is_string());
        seen.push((
            frame["conversation"].as_str().unwrap().to_owned(),
            frame["seq"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        vec![("a".into(), 1), ("b".into(), 1), ("b".into(), 3)]
    );
}

/// The privilege bits the apply script tests are chathub_domain's own encoding.
#[test]
fn the_scripts_privilege_bits_are_the_domains() {
    use chathub_domain::{Privilege, Privileges};
    let script = include_str!("../src/redis/lua/apply.lua");
    let line = script
        .lines()
        .find(|l| l.starts_with("local CHAT_TAKE, CHAT_FINISH, CHAT_DISABLE, ENGAGEMENT_SEND ="))
        .expect("apply.lua names its privilege bits");
    let values: Vec<u32> = line
        .split('=')
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let expected = [
        Privilege::ChatTake,
        Privilege::ChatFinish,
        Privilege::ChatDisable,
        Privilege::EngagementSend,
    ]
    .map(|p| Privileges::of(&[p]).bits());
    assert_eq!(values, expected);
}

/// On a Redis Cluster the previous owner's notice, the "received" record and the
/// mentions ride with the queue update: published on the agents' channels and recorded
/// under its keys.
#[tokio::test]
async fn an_update_carries_its_notice_and_received_record() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("i:agent:alice").await.unwrap();
    pubsub.subscribe("i:agent:carol").await.unwrap();
    let script = redis::Script::new(concat!(
        include_str!("../src/redis/lua/inbox_entry.lua"),
        include_str!("../src/redis/lua/inbox.lua")
    ));
    let mut call = script.prepare_invoke();
    for key in KEYS {
        call.key(key);
    }
    call.key("i:history:u1")
        .key("i:index:u1")
        .key("i:index:u1:coupon");
    call.arg("PUBLISH")
        .arg("i:agents")
        .arg(100)
        .arg("i:agent:")
        .arg(1000);
    let mut args = update("u1", 7, "active", "bob", 500, true, "a coupon");
    args.truncate(9);
    // The notice; the record, whose keys start at KEYS[7]; the webhook job of seq 7.
    args.extend(
        [
            "alice",
            "bob",
            "2",
            "6",
            "",
            "7",
            "chat:u1:7",
            "coupon",
            "c-10",
            "10% off",
            "7",
        ]
        .map(String::from),
    );
    // A note of seq 8 mentioning carol (the frames one after the other, as the node
    // packs them).
    let mention = chathub_protocol::ServerFrame::Mention(chathub_protocol::MentionFrame {
        conversation: chathub_domain::ConversationId::new("u1").unwrap(),
        seq: 8,
        by: chathub_domain::Author {
            role: chathub_domain::Role::Agent,
            id: "bob".into(),
        },
        text: "@carol look".into(),
    });
    let packed = chathub_protocol::Codec::MsgPack
        .encode_server(&mention)
        .unwrap();
    for arg in &args {
        call.arg(arg);
    }
    call.arg("carol").arg(packed.as_ref());
    let results: Vec<(i64, u64)> = call.invoke_async(&mut conn).await.unwrap();
    assert_eq!(results, [(1, 0)]);

    let mut messages = pubsub.on_message();
    let notice = futures::StreamExt::next(&mut messages).await.unwrap();
    let frame = chathub_protocol::Codec::MsgPack
        .decode_server(notice.get_payload_bytes())
        .unwrap();
    let chathub_protocol::ServerFrame::OwnershipLost(lost) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(
        (lost.by.as_ref().map(|a| a.as_str()), lost.epoch, lost.seq),
        (Some("bob"), 2, 6)
    );
    let told = futures::StreamExt::next(&mut messages).await.unwrap();
    assert_eq!(told.get_channel_name(), "i:agent:carol");
    let frame = chathub_protocol::Codec::MsgPack
        .decode_server(told.get_payload_bytes())
        .unwrap();
    assert_eq!(frame, mention);

    let blob: Vec<u8> = conn.hget("i:history:u1", "chat:u1:7").await.unwrap();
    let record: chathub_domain::engagement::HistoryEvent = rmp_serde::from_slice(&blob).unwrap();
    assert_eq!(record.engagement.as_deref(), Some("c-10"));
    assert_eq!(record.title, "10% off");
    assert_eq!(record.at, 500);
    for index in ["i:index:u1", "i:index:u1:coupon"] {
        let at: Option<u64> = conn.zscore(index, "chat:u1:7").await.unwrap();
        assert_eq!(at, Some(500), "{index}");
    }
    // The job, due one lease after the change.
    let due: Option<u64> = conn.zscore("i:jobs", "7:u1").await.unwrap();
    assert_eq!(due, Some(1500));
}
