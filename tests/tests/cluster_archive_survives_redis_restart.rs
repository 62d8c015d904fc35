//! Redis (AOF on) is killed with SIGKILL under load and started again, with an archive
//! behind two nodes: copies in flight when Redis died, and marks it had recorded, are
//! finished afterwards. The archive ends with exactly the events Redis holds, `seq` by
//! `seq`, and every acknowledged message once.

use chathub_client::Client;
use chathub_domain::{Role, TenantId};
use chathub_e2e::{HubProcess, assert_archive_matches_redis, client_msg_ids, dev_token};
use chathub_store::postgres::{Archive, ArchiveConfig};
use chathub_store::{RedisKeys, RedisStore};
use chathub_testkit::{PostgresServer, RedisOptions, RedisServer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_matches_redis_after_a_redis_restart() {
    let pg = PostgresServer::start();
    let mut redis = RedisServer::start_with(RedisOptions {
        aof: true,
        ..RedisOptions::default()
    });
    let pg_url = pg.url();
    let args = ["--archive", pg_url.as_str()];
    let nodes: Vec<HubProcess> = (0..2)
        .map(|_| HubProcess::spawn_redis(&redis.url(), &args))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let subject = format!("w{w}");
        let url = nodes[w % 2].ws_url.clone();
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let client = Client::connect(&url, &dev_token("acme", Role::EndUser, &subject))
                .await
                .unwrap();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let id = format!("m{n}");
                // While Redis is away a send fails (`unavailable`); the same id again
                // is safe, so retry until it is acknowledged.
                let start = Instant::now();
                while client
                    .send_text(None, "hello", None, Some(&id))
                    .await
                    .is_err()
                {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acked
                    .lock()
                    .unwrap()
                    .entry(subject.clone())
                    .or_default()
                    .push(id);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let client = redis::Client::open(redis.url()).unwrap();
    let conn = client.get_connection_manager().await.unwrap();
    let store = RedisStore::new(conn, RedisKeys::new("chathub"));
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let acked = acked.lock().unwrap().clone();
    for w in 0..WRITERS {
        let subject = format!("w{w}");
        let events = assert_archive_matches_redis(
            &store,
            &archive,
            &tenant,
            &subject,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "{subject}: no gap"
        );
        let expected: Vec<&str> = acked[&subject].iter().map(String::as_str).collect();
        assert_eq!(
            client_msg_ids(&events),
            expected,
            "{subject}: every acknowledged message once, in order"
        );
    }
}
