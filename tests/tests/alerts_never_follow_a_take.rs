//! A take cancels every pending alert on every node: in 1,000 randomized trials on three
//! nodes over a Redis Cluster (and on the embedded default), takes land at random times
//! around a round of the alert schedule deciding and publishing the alerts of the same
//! conversations (before, during and after it), and on no agent's
//! socket does an alert of a conversation's wait come after what told that agent the
//! wait was over: the queue frame of the take, or (for the taker) its take's reply.
//! Both outcomes of the race happen: alerted before the take, and taken before the
//! alert.
//!
//! Each agent's frames are read in the exact order they arrived: takes are sent as raw
//! requests, so their replies come in the event stream among the pushed frames.

use chathub_client::Client;
use chathub_domain::{ConversationId, Role, Status};
use chathub_e2e::{HubProcess, Rng, conv, dev_token, http_request};
use chathub_protocol::{Codec, Op, Reply, Request, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Trials, in waves of [`WAVE`] conversations.
const TRIALS: usize = 1_000;
const WAVE: usize = 100;
const AGENTS: usize = 3;
/// The takes of a wave are spread over this long (a little more than a round's period).
const SPREAD_MS: u64 = 1_300;

/// Raw request ids start here (the client's own count from 1).
const RAW_IDS: u64 = 1 << 40;

/// Reads what `client` got until it has been quiet for `quiet`, into `log`.
async fn drain_into(client: &mut Client, log: &mut Vec<ServerFrame>, quiet: Duration) {
    while let Some(frame) = client.next_event_within(quiet).await {
        log.push(frame);
    }
}

/// Checks one agent's frames: no alert of a conversation after the frame that told the
/// agent it was taken. Returns the conversations this agent was alerted about before.
fn check(
    agent: usize,
    log: &[ServerFrame],
    takes: &HashMap<u64, ConversationId>,
) -> HashSet<ConversationId> {
    let mut over: HashMap<ConversationId, (usize, String)> = HashMap::new();
    let mut alerted = HashSet::new();
    for (i, frame) in log.iter().enumerate() {
        match frame {
            ServerFrame::Queue(q) if q.status != Status::Unanswered => {
                over.entry(q.conversation.clone())
                    .or_insert((i, format!("{q:?}")));
            }
            ServerFrame::Ok {
                id,
                result: Reply::Send(ack),
            } if takes.contains_key(id) => {
                assert_eq!(Some(&ack.conversation), takes.get(id));
                over.entry(ack.conversation.clone())
                    .or_insert((i, format!("{ack:?}")));
            }
            ServerFrame::Alert(a) => {
                if over.contains_key(&a.conversation) {
                    for (j, f) in log.iter().enumerate() {
                        let text = format!("{f:?}");
                        if text.contains(&format!("\"{}\"", a.conversation)) {
                            eprintln!("{j}: {text}");
                        }
                    }
                }
                assert!(
                    !over.contains_key(&a.conversation),
                    "agent {agent}: alert {a:?} (frame {i}) came after the take of its conversation: {:?}",
                    over.get(&a.conversation)
                );
                alerted.insert(a.conversation.clone());
            }
            _ => {}
        }
    }
    alerted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_alert_follows_a_take_on_any_node() {
    let cluster = chathub_testkit::RedisCluster::start(3);
    let urls = cluster.urls().join(",");
    let args = ["--redis-cluster", urls.as_str()];
    let nodes: Vec<HubProcess> = (0..AGENTS).map(|_| HubProcess::spawn(&args)).collect();
    trials(&nodes).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_alert_follows_a_take_on_the_embedded_default() {
    let nodes = vec![HubProcess::spawn(&[])];
    trials(&nodes).await;
}

/// The trials, the agents spread over `nodes` (round robin).
async fn trials(nodes: &[HubProcess]) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let (status, body) = http_request(
        nodes[0].http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        r#"{"alerts":{"steps":[{"after_secs":0,"repeat_secs":1,"notify":"available"}]}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let token = dev_token("acme", Role::Agent, &format!("agent{i}"));
        let node = &nodes[i % nodes.len()];
        agents.push(Client::connect(&node.ws_url, &token).await.unwrap());
    }
    let mut logs: Vec<Vec<ServerFrame>> = vec![Vec::new(); AGENTS];
    let mut takes: HashMap<u64, ConversationId> = HashMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_raw = RAW_IDS;
    for wave in 0..TRIALS / WAVE {
        let users: Vec<String> = (0..WAVE).map(|i| format!("u{wave}-{i}")).collect();
        for (i, user) in users.iter().enumerate() {
            let node = &nodes[i % nodes.len()];
            let client = Client::connect(&node.ws_url, &dev_token("acme", Role::EndUser, user))
                .await
                .unwrap();
            client.send_text(None, "hello?", None, None).await.unwrap();
        }
        // The takes go at random times over a little more than one round's period
        // (rounds run every second), so some land before the round gets to their
        // conversation, some after it, and some while it is deciding and publishing
        // (a round over Redis takes tens of ms; the embedded one well under one).
        let mut order: Vec<(u64, usize, &String)> = users
            .iter()
            .map(|u| (rng.below(SPREAD_MS), rng.below(AGENTS as u64) as usize, u))
            .collect();
        order.sort();
        let start = tokio::time::Instant::now();
        for (delay_ms, agent, user) in order {
            tokio::time::sleep_until(start + Duration::from_millis(delay_ms)).await;
            next_raw += 1;
            takes.insert(next_raw, conv(user));
            let request = Request {
                id: next_raw,
                op: Op::Send {
                    conversation: Some(conv(user)),
                    client_msg_id: None,
                    text: "on it".into(),
                    canned: None,
                    engagement: None,
                    attachment: None,
                    epoch: Some(0),
                    visibility: Default::default(),
                    handover_note: None,
                },
            };
            let bytes = Codec::MsgPack.encode_request(&request).unwrap();
            agents[agent]
                .send_raw(Message::Binary(bytes.to_vec().into()))
                .await
                .unwrap();
        }
        // Past the next round (1 s): anything late would be there.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        for (agent, log) in agents.iter_mut().zip(logs.iter_mut()) {
            drain_into(agent, log, Duration::from_millis(200)).await;
        }
    }
    let mut alerted_before = HashSet::new();
    for (i, log) in logs.iter().enumerate() {
        alerted_before.extend(check(i, log, &takes));
    }
    // Every take won (each conversation taken once, at epoch 0).
    let won = logs
        .iter()
        .flatten()
        .filter(|f| matches!(f, ServerFrame::Ok { id, result: Reply::Send(_) } if takes.contains_key(id)))
        .count();
    assert_eq!(won, TRIALS, "every take is answered");
    // Both sides of the race were seen: conversations alerted before their take, and
    // conversations taken before the round got to them.
    let taken_first = TRIALS - alerted_before.len();
    eprintln!(
        "alerted before the take: {}, taken first: {taken_first}",
        alerted_before.len()
    );
    assert!(
        !alerted_before.is_empty() && taken_first > 0,
        "alerted first: {}, taken first: {taken_first}",
        alerted_before.len()
    );
}
