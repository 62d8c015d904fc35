//! Fencing under pauses: 1,000 take-overs of 20 conversations between agent x (on node A)
//! and agent y (on node B). In 20 % of them (10 rounds × 20 conversations) x sends with
//! the epoch it holds and node A is frozen (SIGSTOP) right then, for 0.5–3 s, while y takes
//! the conversation over on node B; then A goes on (SIGCONT) and finishes x's sends. The
//! epoch fences them: each is either recorded before the take-over or refused with
//! `conflict` naming y — and no history entry was appended by an agent that was not the
//! owner at that moment.

use chathub_client::{Client, ClientError};
use chathub_domain::{EventBody, Role, Status};
use chathub_e2e::{HubProcess, RedisServer, conv, dev_token, full_history};
use chathub_protocol::{ErrorCode, Op, Reply};
use std::sync::Arc;
use std::time::Duration;

const CONVERSATIONS: usize = 20;
const ROUNDS: usize = 50;
/// Rounds (y taking over from x) in which node A is frozen mid-send: 10 of 50.
const PAUSED: [usize; 10] = [1, 5, 11, 15, 21, 25, 31, 35, 41, 45];

fn send_op(c: usize, epoch: u64, id: String) -> Op {
    Op::Send {
        conversation: Some(conv(&format!("user-{c}"))),
        client_msg_id: Some(id),
        text: "owner speaking".into(),
        canned: None,
        engagement: None,
        attachment: None,
        epoch: Some(epoch),
        visibility: Default::default(),
        handover_note: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_sends_after_a_pause_are_fenced() {
    let redis = RedisServer::start();
    let node_a = HubProcess::spawn_redis(&redis.url(), &[]);
    let node_b = HubProcess::spawn_redis(&redis.url(), &[]);
    let x = Arc::new(
        Client::connect(&node_a.ws_url, &dev_token("acme", Role::Agent, "x"))
            .await
            .unwrap(),
    );
    let y = Client::connect(&node_b.ws_url, &dev_token("acme", Role::Agent, "y"))
        .await
        .unwrap();
    for c in 0..CONVERSATIONS {
        let user = Client::connect(
            &node_b.ws_url,
            &dev_token("acme", Role::EndUser, &format!("user-{c}")),
        )
        .await
        .unwrap();
        user.send_text(None, "help", None, Some("first"))
            .await
            .unwrap();
    }

    let mut epochs = [0u64; CONVERSATIONS];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max
    };
    let (mut takeovers, mut fenced, mut before_takeover) = (0, 0, 0);
    for round in 0..ROUNDS {
        let (taker, taker_name) = if round % 2 == 0 {
            (&*x, "x")
        } else {
            (&y, "y")
        };
        let paused = PAUSED.contains(&round);
        let mut stale = Vec::new();
        if paused {
            assert_eq!(taker_name, "y", "x owns before a paused round");
            // x sends with the epoch it holds, and its node freezes mid-way.
            for (c, epoch) in epochs.iter().enumerate() {
                let (x, op) = (x.clone(), send_op(c, *epoch, format!("stale-{round}-{c}")));
                stale.push(tokio::spawn(async move { x.request(op).await }));
            }
            tokio::time::sleep(Duration::from_millis(next(4))).await;
            node_a.pause();
        }
        let mut take_seq = [0u64; CONVERSATIONS];
        for c in 0..CONVERSATIONS {
            let op = send_op(c, epochs[c], format!("take-{round}-{c}"));
            match taker.request(op).await {
                Ok(Reply::Send(ack)) => {
                    assert_eq!(ack.status, Status::Active);
                    assert_eq!(ack.owner.as_ref().map(|o| o.as_str()), Some(taker_name));
                    epochs[c] = ack.epoch;
                    take_seq[c] = ack.seq;
                    takeovers += 1;
                }
                other => panic!("round {round}, user-{c}: take-over failed: {other:?}"),
            }
        }
        if paused {
            tokio::time::sleep(Duration::from_millis(500 + next(2500))).await;
            node_a.resume();
            for (c, task) in stale.into_iter().enumerate() {
                match task.await.unwrap() {
                    // Recorded before y's take-over reached Redis: fine, it was current.
                    Ok(Reply::Send(ack)) => {
                        assert!(
                            ack.seq < take_seq[c],
                            "an ok for a send after the take-over"
                        );
                        before_takeover += 1;
                    }
                    Err(ClientError::Server(e)) if e.code == ErrorCode::Conflict => {
                        assert_eq!(e.owner.as_ref().map(|o| o.as_str()), Some("y"));
                        assert!(e.epoch.is_some_and(|ep| ep >= epochs[c]));
                        fenced += 1;
                    }
                    other => panic!("round {round}, user-{c}: stale send got {other:?}"),
                }
            }
        }
    }
    assert_eq!(takeovers, ROUNDS * CONVERSATIONS);
    assert_eq!(fenced + before_takeover, PAUSED.len() * CONVERSATIONS);
    assert!(fenced > 0, "some sends were caught by the pause");

    // No entry was appended by an agent that did not own the conversation then.
    for c in 0..CONVERSATIONS {
        let history = full_history(&y, &format!("user-{c}")).await;
        let mut owner: Option<String> = None;
        for event in &history {
            match &event.body {
                EventBody::Status { owner: o, .. } => owner = o.as_ref().map(|o| o.to_string()),
                EventBody::Message { author, .. } if author.role != Role::EndUser => {
                    assert_eq!(
                        Some(&author.id),
                        owner.as_ref(),
                        "user-{c} seq {}: written by a non-owner",
                        event.seq
                    );
                }
                _ => {}
            }
        }
    }
    eprintln!(
        "{takeovers} take-overs; {} paused sends: {fenced} fenced with conflict, \
         {before_takeover} recorded before the take-over",
        PAUSED.len() * CONVERSATIONS
    );
}
