//! The node's apply writer on a real Redis: a burst of takes of one conversation is
//! decided by Redis for one of them and answered by the writer for the stale losers
//! (each with the conflict Redis would have given), and a burst over many conversations
//! goes in a few script calls instead of one per command.

#![allow(clippy::unwrap_used)]

mod common;

use chathub_domain::AgentId;
use chathub_ownership::{Decision, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_store::RedisKeys;
use chathub_testkit::RedisServer;
use common::{agent, end_user, send};
use std::sync::Arc;

/// Zeroes Redis's command counters (`CONFIG RESETSTAT`).
async fn reset_stats(conn: &mut redis::aio::ConnectionManager) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

/// Redis's own count of calls of `command` since the last `CONFIG RESETSTAT`.
async fn calls(conn: &mut redis::aio::ConnectionManager, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn backend() -> (
    RedisServer,
    Arc<RedisOwnership<redis::aio::ConnectionManager>>,
    redis::aio::ConnectionManager,
) {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let conn = client.get_connection_manager().await.unwrap();
    let admin = client.get_connection_manager().await.unwrap();
    let ownership = RedisOwnership::new(
        conn,
        RedisKeys::new("test"),
        RedisOwnershipConfig::default(),
    );
    (server, Arc::new(ownership), admin)
}

#[tokio::test]
async fn stale_losers_of_a_take_race_are_answered_without_redis() {
    let (_server, ownership, mut admin) = backend().await;
    ownership
        .apply(send(end_user("u1"), "u1", "help", None, None))
        .await
        .unwrap();
    reset_stats(&mut admin).await;
    // 300 agents take at once, all having seen epoch 0.
    let takes = (0..300).map(|i| {
        let ownership = ownership.clone();
        async move {
            let name = format!("a{i}");
            let decision = ownership
                .apply(send(agent(&name), "u1", "mine", Some(0), None))
                .await
                .unwrap();
            (name, decision)
        }
    });
    let outcomes = futures::future::join_all(takes).await;
    let winners: Vec<&String> = outcomes
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Done { .. }))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    for (_, decision) in &outcomes {
        match decision {
            Decision::Done { state, .. } => {
                assert_eq!(
                    state.owner.as_ref().map(AgentId::as_str),
                    Some(winners[0].as_str())
                );
                assert_eq!(state.epoch, 1);
            }
            Decision::Conflict { owner, epoch } => {
                assert_eq!(
                    owner.as_ref().map(AgentId::as_str),
                    Some(winners[0].as_str())
                );
                assert_eq!(*epoch, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every command the script decides reads the state once (HMGET): Redis decided a
    // handful, not 300.
    let decided = calls(&mut admin, "hmget").await;
    assert!(decided < 10, "Redis decided {decided} of the 300 takes");
}

#[tokio::test]
async fn a_burst_over_many_conversations_goes_in_few_calls() {
    let (_server, ownership, mut admin) = backend().await;
    reset_stats(&mut admin).await;
    let sends = (0..500).map(|i| {
        let ownership = ownership.clone();
        async move {
            let user = format!("u{i}");
            ownership
                .apply(send(end_user(&user), &user, "hello", None, None))
                .await
                .unwrap()
        }
    });
    let decisions = futures::future::join_all(sends).await;
    assert!(
        decisions
            .iter()
            .all(|d| matches!(d, Decision::Done { state, .. } if state.seq == 2))
    );
    assert_eq!(
        calls(&mut admin, "hmget").await,
        500,
        "each command decided once"
    );
    let scripts = calls(&mut admin, "fcall").await;
    assert!(scripts <= 20, "{scripts} script calls for 500 commands");
}
