//! Cluster mode with an archive: three gateway nodes on a 3-master Redis Cluster copy
//! every event to PostgreSQL. Under load (end users and agents writing through every
//! node) nodes are killed with SIGKILL at random moments, and one node aborts exactly
//! between a command's atomic step and its follow-ups (a fault-injection point). Once
//! the load stops, the archive holds, conversation by conversation and `seq` by `seq`,
//! exactly the events Redis holds: nothing missing, nothing extra, nothing twice; and
//! every acknowledged message is there once.

use chathub_client::Client;
use chathub_domain::{ConversationId, Role, TenantId};
use chathub_e2e::{
    HubProcess, assert_archive_matches_redis, client_msg_ids, dev_token, everything,
};
use chathub_protocol::{Op, Reply};
use chathub_store::postgres::{Archive, ArchiveConfig};
use chathub_store::{RedisKeys, RedisStore};
use chathub_testkit::{PostgresServer, RedisCluster};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USERS: usize = 12;
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_ends_with_every_acknowledged_event_after_node_kills() {
    let pg = PostgresServer::start();
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls().join(",");
    let pg_url = pg.url();
    let args = [
        "--redis-cluster",
        urls.as_str(),
        "--redis-timeout-ms",
        "1000",
        "--archive",
        pg_url.as_str(),
    ];
    let mut nodes: Vec<HubProcess> = (0..3).map(|_| HubProcess::spawn(&args)).collect();

    // The worst moment, for sure once: a node that aborts after its first step.
    let mut doomed =
        HubProcess::spawn_with_env(&[("CHATHUB_FAULT_POINT", "abort-after-step")], &args);
    let user = Client::connect(
        &doomed.ws_url,
        &dev_token("acme", Role::EndUser, "u-doomed"),
    )
    .await
    .unwrap();
    assert!(
        user.send_text(None, "lost?", None, Some("d-1"))
            .await
            .is_err(),
        "the doomed node aborts before acknowledging"
    );
    let _ = doomed.child.wait();

    let acked: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for u in 0..USERS {
            let subject = format!("u{u}");
            let url = nodes[u % nodes.len()].ws_url.clone();
            let (acked, stop) = (acked.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let Ok(client) =
                    Client::connect(&url, &dev_token("acme", Role::EndUser, &subject)).await
                else {
                    return;
                };
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("r{round}-{n}");
                    if client
                        .send_text(None, "hello there", None, Some(&id))
                        .await
                        .is_err()
                    {
                        return; // its node died
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
        for (i, agent) in ["alice", "bob"].into_iter().enumerate() {
            let url = nodes[(i + 1) % nodes.len()].ws_url.clone();
            let stop = stop.clone();
            writers.push(tokio::spawn(async move {
                let Ok(client) =
                    Client::connect(&url, &dev_token("acme", Role::Agent, agent)).await
                else {
                    return;
                };
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let c = ConversationId::new(format!("u{}", n % USERS)).unwrap();
                    let epoch = match client
                        .request(Op::Open {
                            conversation: Some(c.clone()),
                        })
                        .await
                    {
                        Ok(Reply::Open(o)) => o.view.state.epoch,
                        _ => return,
                    };
                    if let Err(e) = client.send_text(Some(&c), "on it", Some(epoch), None).await
                        && e.server().is_none()
                    {
                        return;
                    }
                }
            }));
        }
        // A random-ish moment: the victim and the delay change every round.
        tokio::time::sleep(Duration::from_millis(700 + 350 * round as u64)).await;
        let victim = (round * 2 + 1) % nodes.len();
        nodes[victim].kill9();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        nodes[victim] = HubProcess::spawn(&args);
    }

    // Redis and the archive, compared conversation by conversation.
    let conn = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let redis_store = RedisStore::new(conn, RedisKeys::new("chathub"));
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let mut subjects: Vec<String> = (0..USERS).map(|u| format!("u{u}")).collect();
    subjects.push("u-doomed".into());
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total >= ROUNDS * USERS,
        "the load ran ({total} acknowledged)"
    );
    for subject in &subjects {
        // Copies a killed node left undone are redone by a sweep: on a dead node's
        // heartbeat, or at the latest by the 30 s backstop; two backstops bound the wait.
        let in_archive = assert_archive_matches_redis(
            &redis_store,
            &archive,
            &tenant,
            subject,
            Duration::from_secs(75),
        )
        .await;
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for id in client_msg_ids(&in_archive) {
            *ids.entry(id).or_default() += 1;
        }
        for id in acked.get(subject).map_or(&[][..], Vec::as_slice) {
            assert_eq!(ids.get(id.as_str()), Some(&1), "{subject}'s {id} once");
        }
    }
    // The doomed node's message was applied before it aborted: archived too.
    let doomed_history = archive
        .history(
            &tenant,
            &ConversationId::new("u-doomed").unwrap(),
            everything(),
        )
        .await
        .unwrap();
    assert_eq!(doomed_history.events.len(), 2, "opened + the message");
}
