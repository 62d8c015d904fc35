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

/// A burst over the conversations of three tenants, interleaved and in runs (a command
/// of the same tenant as the one before it in a call goes without the tenant's keys):
/// each conversation's queue entry lands in its own tenant's queue, with its own seq
/// and preview, and no tenant's queue holds another's conversations.
#[tokio::test]
async fn a_burst_over_several_tenants_keeps_each_queue_its_own() {
    use chathub_domain::{Status, TenantId};
    use chathub_store::QueueEntry;
    use std::collections::HashMap;
    let (_server, ownership, mut admin) = backend().await;
    let keys = RedisKeys::new("test");
    let tenants: Vec<TenantId> = ["ta", "tb", "tc"]
        .iter()
        .map(|t| TenantId::new(*t).unwrap())
        .collect();
    // Interleaved for the first 150 (ta, tb, tc, ta, ...), then runs of 10 of each.
    let tenant_of = |i: usize| {
        if i < 150 {
            &tenants[i % 3]
        } else {
            &tenants[(i / 10) % 3]
        }
    };
    let burst = |round: usize| {
        let ownership = ownership.clone();
        let tenants = (0..300).map(tenant_of).cloned().collect::<Vec<_>>();
        async move {
            let sends = tenants.into_iter().enumerate().map(|(i, tenant)| {
                let ownership = ownership.clone();
                async move {
                    let user = format!("u{i}");
                    let mut request = send(
                        end_user(&user),
                        &user,
                        &format!("{} round {round}", tenant.as_str()),
                        None,
                        None,
                    );
                    request.tenant = tenant;
                    ownership.apply(request).await.unwrap()
                }
            });
            futures::future::join_all(sends).await
        }
    };
    reset_stats(&mut admin).await;
    for round in 0..2 {
        let decisions = burst(round).await;
        assert!(
            decisions.iter().all(
                |d| matches!(d, Decision::Done { state, .. } if state.seq == 2 + round as u64)
            )
        );
    }
    let scripts = calls(&mut admin, "fcall").await;
    assert!(
        scripts < 600,
        "{scripts} script calls: the bursts were not batched"
    );
    for tenant in &tenants {
        let entries: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(keys.inbox(tenant))
            .query_async(&mut admin)
            .await
            .unwrap();
        let expected: Vec<String> = (0..300)
            .filter(|i| tenant_of(*i) == tenant)
            .map(|i| format!("u{i}"))
            .collect();
        assert_eq!(entries.len(), expected.len(), "{}'s queue", tenant.as_str());
        for name in &expected {
            let blob = entries
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing from {}'s queue", tenant.as_str()));
            let entry: QueueEntry = rmp_serde::from_slice(blob).unwrap();
            assert_eq!(entry.conversation.as_str(), name);
            assert_eq!(entry.seq, 3, "{name}");
            assert_eq!(entry.status, Status::Unanswered);
            assert_eq!(entry.preview, Some(format!("{} round 1", tenant.as_str())));
        }
        let waiting: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.queue(tenant, Status::Unanswered))
            .arg(0)
            .arg(-1)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(
            waiting.len(),
            expected.len(),
            "{}'s waiting index",
            tenant.as_str()
        );
    }
}
