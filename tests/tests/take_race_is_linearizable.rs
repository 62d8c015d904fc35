//! Linearizability of ownership across nodes: 12 agents spread over 3 gateway processes
//! race to take, take over and finish 20 conversations while their end users write and
//! admins release them back to the queue (on the epoch and `seq` they read, as the stall
//! policy does: a reply and a release meeting must have one outcome); a
//! `CLIENT PAUSE` in the middle makes some commands time out (unknown outcome: applied
//! later, or never). Every attempt and its outcome is recorded, and a Wing–Gong search
//! (tests/support/linearizability.rs) must find, for every conversation, an order
//! consistent with real time in which the sequential state machine answers exactly what
//! each client was told.

use chathub_client::{Client, ClientError};
use chathub_domain::{AgentId, Role, Status};
use chathub_e2e::linearizability::{Input, Model, Operation, Output, is_linearizable};
use chathub_e2e::{HubProcess, RedisServer, conv, dev_token};
use chathub_protocol::{ErrorCode, Op, Reply};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const AGENTS: usize = 12;
const CONVERSATIONS: usize = 20;
const OPS_PER_AGENT: usize = 3;
const USER_SENDS: usize = 5;
const RELEASES: usize = 4;

fn status_code(s: Status) -> u8 {
    match s {
        Status::New => 0,
        Status::Unanswered => 1,
        Status::Active => 2,
        Status::Finished => 3,
    }
}

fn agent_index(a: &AgentId) -> u16 {
    a.as_str()
        .strip_prefix("agent-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u16::MAX)
}

/// A small deterministic generator for jitter (no need for a crate).
fn jitter(seed: &mut u64, max_ms: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(*seed % (max_ms + 1))
}

fn outcome(result: Result<Reply, ClientError>) -> Output {
    match result {
        Ok(Reply::Send(ack)) => Output::Ok {
            status: status_code(ack.status),
            owner: ack.owner.as_ref().map(agent_index),
            epoch: ack.epoch,
            seq: ack.seq,
        },
        Ok(Reply::Finish(view) | Reply::Release(view)) => Output::Ok {
            status: status_code(view.state.status),
            owner: view.state.owner.as_ref().map(agent_index),
            epoch: view.state.epoch,
            seq: view.state.seq,
        },
        Ok(other) => panic!("unexpected reply {other:?}"),
        Err(ClientError::Server(e)) => match e.code {
            ErrorCode::Conflict => Output::Conflict {
                owner: e.owner.as_ref().map(agent_index),
                epoch: e.epoch.unwrap_or(u64::MAX),
            },
            ErrorCode::InvalidState | ErrorCode::Forbidden => Output::Refused,
            // The node gave up waiting for Redis: the script may still run later.
            ErrorCode::Unavailable => Output::Unknown,
            other => panic!("unexpected error {other:?}: {}", e.message),
        },
        Err(_) => Output::Unknown,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversation_history_is_linearizable() {
    let redis = RedisServer::start();
    let nodes: Vec<HubProcess> = (0..NODES)
        .map(|_| HubProcess::spawn(&["--redis", &redis.url(), "--redis-timeout-ms", "250"]))
        .collect();
    let histories: Arc<Vec<Mutex<Vec<Operation>>>> =
        Arc::new((0..CONVERSATIONS).map(|_| Mutex::new(Vec::new())).collect());

    let mut agents = Vec::new();
    for a in 0..AGENTS {
        let url = &nodes[a % NODES].ws_url;
        let token = dev_token("acme", Role::Agent, &format!("agent-{a}"));
        agents.push(Arc::new(Client::connect(url, &token).await.unwrap()));
    }
    let mut admins = Vec::new();
    for node in &nodes {
        let token = dev_token("acme", Role::Admin, "boss");
        admins.push(Arc::new(
            Client::connect(&node.ws_url, &token).await.unwrap(),
        ));
    }
    let mut users = Vec::new();
    for c in 0..CONVERSATIONS {
        let url = &nodes[c % NODES].ws_url;
        let token = dev_token("acme", Role::EndUser, &format!("user-{c}"));
        users.push(Arc::new(Client::connect(url, &token).await.unwrap()));
    }

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, user) in users.iter().enumerate() {
        let (user, all) = (user.clone(), histories.clone());
        tasks.push(tokio::spawn(async move {
            let histories = all;
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1);
            for i in 0..USER_SENDS {
                tokio::time::sleep(jitter(&mut seed, 120)).await;
                let call = Instant::now();
                let op = Op::Send {
                    conversation: None,
                    client_msg_id: Some(format!("u{c}-{i}")),
                    text: "hello".into(),
                    canned: None,
                    engagement: None,
                    attachment: None,
                    epoch: None,
                    visibility: Default::default(),
                    handover_note: None,
                };
                let output = outcome(user.request(op).await);
                let ret = Instant::now();
                histories[c].lock().unwrap().push(Operation {
                    input: Input::UserSend,
                    output,
                    call,
                    ret,
                });
            }
        }));
        let (admin, all) = (admins[(c + 1) % NODES].clone(), histories.clone());
        tasks.push(tokio::spawn(async move {
            let histories = all;
            let mut seed = 0xA076_1D64_78BD_642F ^ (c as u64 + 1);
            let conversation = conv(&format!("user-{c}"));
            for _ in 0..RELEASES {
                tokio::time::sleep(jitter(&mut seed, 300)).await;
                // What the admin sees (a read is not an operation of the history).
                let Ok(Reply::Open(opened)) = admin
                    .request(Op::Open {
                        conversation: Some(conversation.clone()),
                    })
                    .await
                else {
                    continue;
                };
                let (seen_epoch, last_seq) = (opened.view.state.epoch, opened.view.state.seq);
                tokio::time::sleep(jitter(&mut seed, 5)).await;
                let call = Instant::now();
                let output = outcome(
                    admin
                        .request(Op::Release {
                            conversation: Some(conversation.clone()),
                            epoch: Some(seen_epoch),
                            seq: Some(last_seq),
                        })
                        .await,
                );
                let ret = Instant::now();
                histories[c].lock().unwrap().push(Operation {
                    input: Input::Release {
                        seen_epoch,
                        last_seq,
                    },
                    output,
                    call,
                    ret,
                });
            }
        }));
        for (a, agent) in agents.iter().enumerate() {
            let (agent, histories) = (agent.clone(), histories.clone());
            tasks.push(tokio::spawn(async move {
                let mut seed = 0xD1B5_4A32_D192_ED03 ^ ((c * AGENTS + a) as u64 + 1);
                let mut known_epoch = 0;
                for i in 0..OPS_PER_AGENT {
                    tokio::time::sleep(jitter(&mut seed, 400)).await;
                    let finish = jitter(&mut seed, 3).as_millis() == 0;
                    let conversation = conv(&format!("user-{c}"));
                    let (input, op) = if finish {
                        (
                            Input::Finish {
                                agent: a as u16,
                                seen_epoch: known_epoch,
                            },
                            Op::Finish {
                                conversation: Some(conversation),
                                epoch: Some(known_epoch),
                            },
                        )
                    } else {
                        (
                            Input::AgentSend {
                                agent: a as u16,
                                seen_epoch: known_epoch,
                            },
                            Op::Send {
                                conversation: Some(conversation),
                                client_msg_id: Some(format!("a{a}-c{c}-{i}")),
                                text: "mine".into(),
                                canned: None,
                                engagement: None,
                                attachment: None,
                                epoch: Some(known_epoch),
                                visibility: Default::default(),
                                handover_note: None,
                            },
                        )
                    };
                    let call = Instant::now();
                    let output = outcome(agent.request(op).await);
                    let ret = Instant::now();
                    match output {
                        Output::Ok { epoch, .. } | Output::Conflict { epoch, .. } => {
                            known_epoch = epoch;
                        }
                        _ => {}
                    }
                    histories[c].lock().unwrap().push(Operation {
                        input,
                        output,
                        call,
                        ret,
                    });
                }
            }));
        }
    }
    // Mid-run, Redis stops executing writes for longer than the nodes wait: the commands
    // caught in it get `unavailable` and run when the pause ends (unknown outcomes).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        redis
            .command(&["CLIENT", "PAUSE", "700", "WRITE"])
            .is_some_and(|r| r.starts_with("+OK"))
    );
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();

    let mut unknown = 0;
    let mut total = 0;
    let mut rejected = Vec::new();
    for (c, history) in histories.iter().enumerate() {
        let history = history.lock().unwrap().clone();
        total += history.len();
        unknown += history
            .iter()
            .filter(|o| o.output == Output::Unknown)
            .count();
        if !is_linearizable(Model::default(), &history) {
            rejected.push(format!("user-{c}: {history:#?}"));
        }
    }
    assert!(
        rejected.is_empty(),
        "{} of {CONVERSATIONS} histories are not linearizable:\n{}",
        rejected.len(),
        rejected.join("\n")
    );
    let releases = histories
        .iter()
        .flat_map(|h| h.lock().unwrap().clone())
        .filter(|o| matches!(o.input, Input::Release { .. }))
        .collect::<Vec<_>>();
    assert!(
        releases.len() >= CONVERSATIONS * RELEASES / 2,
        "most releases were attempted"
    );
    let applied = releases
        .iter()
        .filter(|o| matches!(o.output, Output::Ok { .. }))
        .count();
    assert!(applied > 0, "some releases applied");
    eprintln!("{} releases, {applied} applied", releases.len());
    let without_releases = CONVERSATIONS * (USER_SENDS + AGENTS * OPS_PER_AGENT);
    assert!((without_releases..=without_releases + CONVERSATIONS * RELEASES).contains(&total));
    assert!(
        unknown > 0,
        "the pause made some outcomes unknown ({elapsed:?})"
    );
    eprintln!("{total} operations, {unknown} with unknown outcome, all linearizable ({elapsed:?})");
}
