//! `lua/settle.lua`: a follow-up's watermark moves only over contiguous work. Nodes finish
//! out of order, and a node that dies leaves a gap: what is done past the gap is kept as
//! intervals, the mark stays until the gap is filled, and the history stream is never
//! trimmed past the archived watermark.

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use chathub_testkit::RedisServer;
use redis::AsyncCommands;

const STATE: &str = "s:state";
const PENDING: &str = "s:pending";
const HISTORY: &str = "s:history";

async fn settle(
    conn: &mut redis::aio::MultiplexedConnection,
    queued: &str,
    archived: &str,
    hot_len: u64,
) -> (u64, u64, u64) {
    let script = redis::Script::new(concat!(
        include_str!("../src/redis/lua/trim.lua"),
        include_str!("../src/redis/lua/settle.lua")
    ));
    let v: Vec<u64> = script
        .key(STATE)
        .key(PENDING)
        .key(HISTORY)
        .arg("acme/u-1")
        .arg(queued)
        .arg(archived)
        .arg(1000)
        .arg(hot_len)
        .arg(0)
        .invoke_async(conn)
        .await
        .unwrap();
    (v[0], v[1], v[2])
}

#[tokio::test]
async fn watermarks_move_over_contiguous_work_only() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Ten events, both follow-ups pending.
    for seq in 1..=10 {
        let _: String = redis::cmd("XADD")
            .arg(HISTORY)
            .arg(format!("{seq}-0"))
            .arg("e")
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = conn.hset(STATE, "seq", 10).await.unwrap();
    let _: () = conn
        .zadd_multiple(PENDING, &[(5, "q:acme/u-1"), (5, "a:acme/u-1")])
        .await
        .unwrap();

    // Seqs 1-3 and 7-10 are done; 4-6 belonged to a node that died.
    assert_eq!(settle(&mut conn, "1-3", "7-10", 2).await, (10, 3, 0));
    assert_eq!(settle(&mut conn, "7-10", "1-3", 2).await, (10, 3, 3));
    let ahead: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(STATE)
        .arg(&["queued_ahead", "archived_ahead"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ahead, vec![Some("7-10".into()), Some("7-10".into())]);
    let marks: Vec<String> = conn.zrange(PENDING, 0, -1).await.unwrap();
    assert_eq!(marks.len(), 2, "both marks stay while the gap is open");
    // Nothing unarchived is trimmed, though the hot window is 2 (trimming is
    // approximate: the archived 1-3 may stay a while).
    let kept: Vec<(String, Vec<(String, String)>)> =
        conn.xrange(HISTORY, "4-0", "+").await.unwrap();
    assert_eq!(kept.len(), 7, "4-10 are all kept");

    // A sweeper fills the gap: both watermarks jump to 10 and the marks go.
    assert_eq!(settle(&mut conn, "4-6", "4-10", 2).await, (10, 10, 10));
    let marks: Vec<String> = conn.zrange(PENDING, 0, -1).await.unwrap();
    assert!(marks.is_empty(), "{marks:?}");
    let ahead: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(STATE)
        .arg(&["queued_ahead", "archived_ahead"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ahead, vec![Some(String::new()), Some(String::new())]);

    // Settling again, or an older interval, changes nothing.
    assert_eq!(settle(&mut conn, "2-5", "", 2).await, (10, 10, 10));
}
