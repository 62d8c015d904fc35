//! Cluster mode with an archive keeps only a hot window of each conversation in Redis
//! (`--history-max-len`) and reads older events from PostgreSQL with the same `seq`s:
//! through any of three nodes, a client paging back to the first message sees every event
//! once, in order, and a resume from a `seq` older than the window replays everything
//! after it, never `history_truncated`. Redis really did drop the old events.

use chathub_client::Client;
use chathub_domain::{ConversationId, Role};
use chathub_e2e::{HubProcess, back_to_the_start, dev_token};
use chathub_protocol::{Op, Reply, ServerFrame};
use chathub_testkit::{PostgresServer, RedisOptions, RedisServer};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 60;

async fn forward_from_the_start(client: &Client) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        let Ok(Reply::History(page)) = client
            .request(Op::History {
                conversation: Some(ConversationId::new("ann").expect("id")),
                before: None,
                after: Some(seqs.last().copied().unwrap_or(0)),
                limit: Some(9),
            })
            .await
        else {
            panic!("history answers")
        };
        seqs.extend(page.events.iter().map(|e| e.seq));
        if !page.has_more {
            return seqs;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_resuming_past_the_redis_window() {
    let pg = PostgresServer::start();
    // Small stream nodes, so that Redis's approximate trimming does trim a short history.
    let redis = RedisServer::start_with(RedisOptions {
        extra: vec!["--stream-node-max-entries".into(), "4".into()],
        ..RedisOptions::default()
    });
    let pg_url = pg.url();
    let args = ["--archive", pg_url.as_str(), "--history-max-len", "5"];
    let nodes: Vec<HubProcess> = (0..3)
        .map(|_| HubProcess::spawn_redis(&redis.url(), &args))
        .collect();
    let token = dev_token("acme", Role::EndUser, "ann");
    let ann = Client::connect(&nodes[0].ws_url, &token)
        .await
        .expect("connects");
    for n in 0..MESSAGES {
        ann.send_text(None, &format!("m{n}"), None, None)
            .await
            .expect("sent");
    }
    // Once archived, Redis keeps only about the window.
    let start = Instant::now();
    let key = "chathub:conv:{acme/ann}:history";
    loop {
        let len: u64 = redis
            .command(&["XLEN", key])
            .and_then(|l| l.trim().trim_start_matches(':').parse().ok())
            .unwrap_or(u64::MAX);
        if len < 20 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis still holds {len} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all: Vec<u64> = (1..=MESSAGES + 1).collect();
    for node in &nodes {
        let mut reader = Client::connect(&node.ws_url, &token)
            .await
            .expect("connects");
        let events = back_to_the_start(&reader, "ann", 7).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, all, "every event once, paging back");
        assert_eq!(forward_from_the_start(&reader).await, all, "and forward");
        // A resume from far behind the window gets everything after it.
        let resumed = reader
            .resume(None, Some(3), Some(&reader.welcome().history_id.clone()))
            .await
            .expect("resumes");
        assert!(!resumed.history_truncated);
        assert_eq!(resumed.replayed as u64, MESSAGES + 1 - 3);
        let mut replayed = Vec::new();
        while let Some(frame) = reader.next_event_within(Duration::from_millis(500)).await {
            if let ServerFrame::Event(e) = frame {
                replayed.push(e.event.seq);
            }
        }
        assert_eq!(replayed, (4..=MESSAGES + 1).collect::<Vec<_>>());
    }
}
