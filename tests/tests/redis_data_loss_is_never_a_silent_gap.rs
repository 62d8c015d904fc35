//! Redis restarts: with AOF on, a clean `SHUTDOWN` and a `kill -9` both keep every
//! acknowledged message. With persistence off (a restart empties Redis) or after a
//! `FLUSHALL`, a client resuming from its last `seq` is told `history_lost` — never
//! replayed events that are not the ones it missed, never a silent gap — even when new
//! events have meanwhile reused the old `seq`s.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{TestHub, full_history, test_config};
use chathub_gateway::RedisConfig;
use chathub_testkit::{RedisOptions, RedisServer};
use std::time::Duration;

/// Sends until the backend answers again (it is `unavailable` while Redis is away).
async fn send_eventually(client: &Client, text: &str, id: &str) -> u64 {
    for _ in 0..100 {
        if let Ok(ack) = client.send_text(None, text, None, Some(id)).await {
            return ack.seq;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the backend never came back");
}

/// Connects, retrying while the node's Redis is coming back.
async fn connect_eventually(hub: &TestHub, subject: &str) -> Client {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(&hub.url(), &hub.token("acme", Role::EndUser, subject)).await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_keeps_acknowledged_messages_across_shutdown_and_kill() {
    let mut redis = RedisServer::start_with(RedisOptions {
        aof: true,
        ..Default::default()
    });
    let hub = TestHub::start_on_redis(test_config(), RedisConfig::new(redis.url())).await;
    let mut acked = Vec::new();
    for (round, stop) in ["shutdown", "kill -9"].into_iter().enumerate() {
        let user = connect_eventually(&hub, "u-1").await;
        for i in 0..10 {
            let id = format!("r{round}-{i}");
            send_eventually(&user, "acknowledged", &id).await;
            acked.push(id);
        }
        let history_id = user.welcome().history_id.clone();
        match stop {
            "shutdown" => {
                redis.shutdown();
                redis.restart();
            }
            _ => redis.restart(), // SIGKILL, then start again
        }
        let user = connect_eventually(&hub, "u-1").await;
        send_eventually(&user, "after", &format!("after-{round}")).await;
        acked.push(format!("after-{round}"));
        // Same data, same history id: a resume is a normal one.
        let resumed = user.resume(None, Some(1), Some(&history_id)).await.unwrap();
        assert!(!resumed.history_lost, "{stop}: nothing was lost");
        assert!(resumed.replayed > 0);
    }
    let reader = connect_eventually(&hub, "u-1").await;
    let history = full_history(&reader, "u-1").await;
    chathub_e2e::assert_each_once(&history, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_history_is_announced_on_resume() {
    let mut redis = RedisServer::start(); // persistence off
    let hub = TestHub::start_on_redis(test_config(), RedisConfig::new(redis.url())).await;

    for (round, loss) in ["restart without persistence", "FLUSHALL"]
        .into_iter()
        .enumerate()
    {
        let user = connect_eventually(&hub, &format!("u-{round}")).await;
        let mut last = 0;
        for i in 0..5 {
            last = send_eventually(&user, "before the loss", &format!("b{i}")).await;
        }
        let history_id = user.welcome().history_id.clone();
        assert!(!history_id.is_empty());
        drop(user);
        match loss {
            "FLUSHALL" => {
                assert!(
                    redis
                        .command(&["FLUSHALL"])
                        .is_some_and(|r| r.starts_with("+OK"))
                );
            }
            _ => redis.restart(),
        }

        // Nothing written since: the client is ahead of the server.
        let again = connect_eventually(&hub, &format!("u-{round}")).await;
        let resumed = again.resume(None, Some(last), Some(&history_id)).await;
        let resumed = match resumed {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                again
                    .resume(None, Some(last), Some(&history_id))
                    .await
                    .unwrap()
            }
        };
        assert!(resumed.history_lost, "{loss}: told, not left with a gap");
        assert!(resumed.history_truncated);
        assert_eq!(resumed.replayed, 0);

        // New events reuse the old seqs: the history id still tells the difference.
        for i in 0..8 {
            send_eventually(&again, "after the loss", &format!("a{i}")).await;
        }
        let other = connect_eventually(&hub, &format!("u-{round}")).await;
        assert_ne!(
            other.welcome().history_id,
            history_id,
            "{loss}: a new history id"
        );
        let resumed = other
            .resume(None, Some(2), Some(&history_id))
            .await
            .unwrap();
        assert!(resumed.history_lost, "{loss}: seqs reused, still announced");
        assert_eq!(
            resumed.replayed, 0,
            "no events that are not the ones missed"
        );
        // Under the new id, resuming works as usual.
        let fresh = other
            .resume(None, Some(2), Some(&other.welcome().history_id))
            .await
            .unwrap();
        assert!(!fresh.history_lost);
        assert!(fresh.replayed > 0);
    }
}
