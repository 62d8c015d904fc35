//! Reconnect storm: 10 end users write 200 msg/s in all across 3 gateway processes for
//! 60 s (`CHATHUB_STORM_SECS` to change), while 50 followers are force-closed 20 times
//! each at random moments (1,000 reconnects), reconnect to a random node and resume every
//! conversation from the last `seq` they got. Each follower's delivered events must be
//! exactly the history: every `seq` once, in order, no gap, the same messages.

use chathub_client::Client;
use chathub_domain::{ConversationId, EventBody, Role};
use chathub_e2e::{HubProcess, RedisServer, conv, dev_token, full_history};
use chathub_protocol::ServerFrame;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const USERS: usize = 10;
const FOLLOWERS: usize = 50;
const RECONNECTS_EACH: usize = 20;
const MSGS_PER_SEC_EACH: u64 = 20;

fn storm_secs() -> u64 {
    std::env::var("CHATHUB_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// What one follower saw of one conversation: (seq, client_msg_id) in arrival order.
type Seen = Vec<(u64, Option<String>)>;

async fn follow(
    urls: Vec<String>,
    index: usize,
    conversations: Vec<ConversationId>,
    until: Instant,
) -> (HashMap<ConversationId, Seen>, usize) {
    let token = dev_token("acme", Role::Agent, &format!("f-{index}"));
    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1);
    let span = until.saturating_duration_since(Instant::now());
    // 20 force-closes at random moments of the run.
    let mut closes: Vec<Instant> = (0..RECONNECTS_EACH)
        .map(|_| Instant::now() + span.mul_f64((xorshift(&mut seed) % 10_000) as f64 / 10_000.0))
        .collect();
    closes.sort();
    let mut seen: HashMap<ConversationId, Seen> = conversations
        .iter()
        .map(|c| (c.clone(), Vec::new()))
        .collect();
    let mut history_id: Option<String> = None;
    let mut reconnects = 0;
    // After the run: one more connection that drains to the end.
    let close_at = closes.into_iter().chain([until + Duration::from_secs(5)]);
    for deadline in close_at {
        let url = &urls[(xorshift(&mut seed) % urls.len() as u64) as usize];
        let mut client = loop {
            match Client::connect(url, &token).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let id = history_id
            .get_or_insert_with(|| client.welcome().history_id.clone())
            .clone();
        for c in &conversations {
            let since = seen[c].last().map_or(0, |(seq, _)| *seq);
            let sub = client
                .resume(Some(c), Some(since), Some(&id))
                .await
                .unwrap();
            assert!(!sub.history_truncated && !sub.history_lost, "{sub:?}");
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match client.next_event_within(left).await {
                Some(ServerFrame::Event(e)) => {
                    let client_msg_id = match &e.event.body {
                        EventBody::Message { client_msg_id, .. } => client_msg_id.clone(),
                        _ => None,
                    };
                    if let Some(list) = seen.get_mut(&e.conversation) {
                        list.push((e.event.seq, client_msg_id));
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        // Force-close: drop the socket without a close handshake.
        drop(client);
        reconnects += 1;
    }
    (seen, reconnects - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_resuming_through_a_storm_see_exactly_the_history() {
    let redis = RedisServer::start();
    let nodes: Vec<HubProcess> = (0..NODES)
        .map(|_| HubProcess::spawn_redis(&redis.url(), &[]))
        .collect();
    let urls: Vec<String> = nodes.iter().map(|n| n.ws_url.clone()).collect();
    let run = Duration::from_secs(storm_secs());
    let until = Instant::now() + run;

    let mut writers = Vec::new();
    for u in 0..USERS {
        let url = urls[u % NODES].clone();
        writers.push(tokio::spawn(async move {
            let token = dev_token("acme", Role::EndUser, &format!("user-{u}"));
            let user = Client::connect(&url, &token).await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / MSGS_PER_SEC_EACH));
            let mut sent = 0;
            while Instant::now() < until {
                tick.tick().await;
                let id = format!("m-{u}-{sent}");
                // Retried with the same id until acknowledged: recorded once.
                while user
                    .send_text(None, "hello", None, Some(&id))
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent += 1;
            }
            sent
        }));
    }
    let mut followers = Vec::new();
    for f in 0..FOLLOWERS {
        let conversations = vec![
            conv(&format!("user-{}", f % USERS)),
            conv(&format!("user-{}", (f + 3) % USERS)),
        ];
        followers.push(tokio::spawn(follow(urls.clone(), f, conversations, until)));
    }
    let mut sent = 0;
    for w in writers {
        sent += w.await.unwrap();
    }
    let mut results = Vec::new();
    for f in followers {
        results.push(f.await.unwrap());
    }

    let reader = Client::connect(&urls[0], &dev_token("acme", Role::Agent, "reader"))
        .await
        .unwrap();
    let mut histories = HashMap::new();
    for u in 0..USERS {
        let name = format!("user-{u}");
        let history: Seen = full_history(&reader, &name)
            .await
            .into_iter()
            .map(|e| {
                let id = match e.body {
                    EventBody::Message { client_msg_id, .. } => client_msg_id,
                    _ => None,
                };
                (e.seq, id)
            })
            .collect();
        histories.insert(conv(&name), history);
    }
    let messages: usize = histories
        .values()
        .map(|h| h.iter().filter(|(_, id)| id.is_some()).count())
        .sum();
    assert_eq!(
        messages, sent,
        "every acknowledged message is in history once"
    );

    let mut reconnects = 0;
    for (f, (seen, n)) in results.into_iter().enumerate() {
        reconnects += n;
        for (c, got) in seen {
            assert_eq!(
                got, histories[&c],
                "follower f-{f} on {c}: delivered events differ from history"
            );
        }
    }
    assert_eq!(reconnects, FOLLOWERS * RECONNECTS_EACH);
    eprintln!(
        "{sent} messages over {run:?}, {reconnects} reconnects: every follower saw exactly the history"
    );
}
