//! The tenant's bot answers first, and a human may take a conversation from it at any
//! time: the take moves the epoch, so a bot reply in flight is refused (`conflict`) and
//! never recorded after the take. In 10,000 trials across three nodes over a Redis
//! Cluster (and on the embedded default), the bot's reply and a human's take of the same
//! conversation go out at the same moment from different nodes; then each
//! conversation's recorded history is read back and checked: no bot message after a
//! human's take, every bot reply acknowledged is in history before the take, every bot
//! reply refused is absent. Both outcomes of the race happen.
//!
//! Each trial is one cycle of a conversation: the end user writes (the bot owns the
//! new or reopened cycle), the bot and a human race, the human finishes; the next cycle
//! of the same end user reopens it, owned by the bot again.

use chathub_client::{Client, ClientError};
use chathub_domain::{Cause, ConversationId, EventBody, Role, Status};
use chathub_e2e::{HubProcess, Rng, conv, dev_token, http_request, text_send};
use chathub_protocol::{ErrorCode, Op, Reply, SendAck};
use futures::future::join_all;
use std::collections::HashMap;

/// End users, each one conversation.
const USERS: usize = 500;
/// Cycles of each conversation: USERS × CYCLES trials.
const CYCLES: usize = 20;
/// Human agents, spread over the nodes the bot is not on.
const AGENTS: usize = 4;
const BOT: &str = "faq-bot";
/// The few human agents here take and finish hundreds of conversations a second, more
/// than a person's socket may (100/s): their budget is raised; the bot's is its own.
const HUMAN_BUDGET: [&str; 4] = ["--rate-per-sec", "100000", "--rate-burst", "100000"];

fn ack(reply: Result<Reply, ClientError>) -> Result<SendAck, ErrorCode> {
    match reply {
        Ok(Reply::Send(ack)) => Ok(ack),
        Ok(other) => panic!("not a send reply: {other:?}"),
        Err(ClientError::Server(e)) => Err(e.code),
        Err(other) => panic!("the request failed: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bot_reply_is_recorded_after_a_take_across_three_nodes() {
    let cluster = chathub_testkit::RedisCluster::start(3);
    let urls = cluster.urls().join(",");
    let mut args = vec!["--redis-cluster", urls.as_str()];
    args.extend(HUMAN_BUDGET);
    let nodes: Vec<HubProcess> = (0..3).map(|_| HubProcess::spawn(&args)).collect();
    trials(&nodes).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bot_reply_is_recorded_after_a_take_on_the_embedded_default() {
    let nodes = vec![HubProcess::spawn(&HUMAN_BUDGET)];
    trials(&nodes).await;
}

/// What one trial's race ended in.
struct Trial {
    /// The bot's reply: its `seq` when recorded, or why it was refused.
    bot: Result<u64, ErrorCode>,
    /// The `seq` of the human's message (the take's status event is just before it).
    take: u64,
}

/// The trials: the bot on the first node, the humans and end users on the others
/// (round robin; on one node, all together).
async fn trials(nodes: &[HubProcess]) {
    let admin = dev_token("acme", Role::Admin, "carol");
    let (status, body) = http_request(
        nodes[0].http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        &format!(r#"{{"bot":{{"agent":"{BOT}"}}}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut bot = Client::connect(&nodes[0].ws_url, &dev_token("acme", Role::Bot, BOT))
        .await
        .unwrap();
    // One bot answers a whole tenant: its sockets have their own, larger budget.
    let limits = &bot.welcome().limits;
    assert_eq!((limits.rate_per_sec, limits.rate_burst), (2_000, 10_000));
    let other = |i: usize| &nodes[(1 + i % (nodes.len().max(2) - 1)) % nodes.len()];
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let token = dev_token("acme", Role::Agent, &format!("agent{i}"));
        let agent = Client::connect(&other(i).ws_url, &token).await.unwrap();
        assert_eq!(
            agent.welcome().bot.as_ref().map(|b| b.as_str()),
            Some(BOT),
            "agents are told the tenant's bot answers first"
        );
        agents.push(agent);
    }
    let mut users = Vec::new();
    for i in 0..USERS {
        let token = dev_token("acme", Role::EndUser, &format!("u{i}"));
        users.push(Client::connect(&other(i).ws_url, &token).await.unwrap());
    }
    let conversations: Vec<ConversationId> = (0..USERS).map(|i| conv(&format!("u{i}"))).collect();

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut recorded: HashMap<ConversationId, Vec<Trial>> = HashMap::new();
    for cycle in 0..CYCLES {
        // The end users write: each cycle (new, then reopened) is the bot's.
        let text = format!("question {cycle}");
        let opened = join_all(users.iter().map(|u| u.send_text(None, &text, None, None))).await;
        let epochs: Vec<u64> = opened
            .into_iter()
            .map(|a| {
                let a = a.unwrap();
                assert_eq!(
                    (a.status, a.owner.as_ref().map(|o| o.as_str())),
                    (Status::Active, Some(BOT)),
                    "cycle {cycle}: the bot owns what the end user opened: {a:?}"
                );
                a.epoch
            })
            .collect();
        // The race: the bot's reply and a human's take of each conversation go out at
        // once, from different nodes, in a random order of polling.
        let races = conversations
            .iter()
            .zip(&epochs)
            .enumerate()
            .map(|(i, (c, &epoch))| {
                let taker = rng.below(AGENTS as u64) as usize;
                let agent = &agents[taker];
                let bot_first = rng.below(2) == 0;
                let bot = &bot;
                async move {
                    let reply = bot.request(text_send(c, "bot: have you tried the FAQ?", epoch));
                    let take = agent.request(text_send(c, "human: let me help", epoch));
                    let (reply, take) = if bot_first {
                        tokio::join!(reply, take)
                    } else {
                        let (t, r) = tokio::join!(take, reply);
                        (r, t)
                    };
                    (i, taker, ack(reply), ack(take))
                }
            });
        let outcomes = join_all(races).await;
        let mut finishes = Vec::new();
        for (i, taker, reply, take) in outcomes {
            let take = take.unwrap_or_else(|e| {
                panic!("cycle {cycle}: a human's take is never refused: {e:?}")
            });
            assert_eq!(take.epoch, epochs[i] + 1, "the take moved the epoch");
            let bot = match reply {
                Ok(a) => {
                    assert_eq!(a.epoch, epochs[i], "a bot reply moves no epoch");
                    assert!(
                        a.seq < take.seq,
                        "an accepted bot reply came before the take"
                    );
                    Ok(a.seq)
                }
                Err(code) => {
                    assert_eq!(code, ErrorCode::Conflict, "a late bot reply is a conflict");
                    Err(code)
                }
            };
            finishes.push((i, taker, take.epoch));
            recorded
                .entry(conversations[i].clone())
                .or_default()
                .push(Trial {
                    bot,
                    take: take.seq,
                });
        }
        // The takers finish: the next message of the end user reopens it, for the bot.
        let done = finishes.iter().map(|&(i, taker, epoch)| {
            agents[taker].request(Op::Finish {
                conversation: Some(conversations[i].clone()),
                epoch: Some(epoch),
            })
        });
        for finished in join_all(done).await {
            assert!(matches!(finished, Ok(Reply::Finish(_))), "{finished:?}");
        }
        // Read what the bot and the agents were pushed (queue frames of every change):
        // a client that never reads is a slow consumer, and the server closes it.
        while bot.try_next_event().is_some() {}
        for agent in agents.iter_mut() {
            while agent.try_next_event().is_some() {}
        }
    }

    // Read every conversation's history back, as recorded.
    let mut bot_won = 0;
    let mut bot_lost = 0;
    let reader = &agents[0];
    for c in &conversations {
        let mut events = Vec::new();
        loop {
            let after = events.last().map(|e: &chathub_domain::Event| e.seq);
            let page = match reader
                .request(Op::History {
                    conversation: Some(c.clone()),
                    before: None,
                    after: Some(after.unwrap_or(0)),
                    limit: Some(200),
                })
                .await
                .unwrap()
            {
                Reply::History(page) => page,
                other => panic!("{other:?}"),
            };
            let more = page.has_more;
            events.extend(page.events);
            if !more {
                break;
            }
        }
        // Walk the history: a bot message while a human holds the cycle is the bug.
        let mut human_holds = false;
        let mut bot_messages = Vec::new();
        for e in &events {
            match &e.body {
                EventBody::Status { cause, owner, .. } => {
                    human_holds = match cause {
                        Cause::TakenOver | Cause::Taken | Cause::Transferred => {
                            owner.as_ref().is_some_and(|o| o.as_str() != BOT)
                        }
                        _ => false,
                    };
                }
                EventBody::Message { author, .. } if author.role == Role::Bot => {
                    assert!(
                        !human_holds,
                        "{c}: bot message {} recorded after a human's take: {events:?}",
                        e.seq
                    );
                    bot_messages.push(e.seq);
                }
                _ => {}
            }
        }
        let trials = &recorded[c];
        assert_eq!(trials.len(), CYCLES);
        let accepted: Vec<u64> = trials.iter().filter_map(|t| t.bot.ok()).collect();
        assert_eq!(
            bot_messages, accepted,
            "{c}: history holds exactly the bot replies acknowledged"
        );
        for t in trials {
            let take = events
                .iter()
                .find(|e| e.seq == t.take)
                .unwrap_or_else(|| panic!("{c}: the human's message {} is recorded", t.take));
            assert!(
                matches!(&take.body, EventBody::Message { author, .. } if author.role == Role::Agent)
            );
            match t.bot {
                Ok(_) => bot_won += 1,
                Err(_) => bot_lost += 1,
            }
        }
    }
    eprintln!("bot replied before the take: {bot_won}, refused after it: {bot_lost}");
    assert_eq!(bot_won + bot_lost, USERS * CYCLES);
    assert!(
        bot_won > 0 && bot_lost > 0,
        "both outcomes of the race: bot first {bot_won}, human first {bot_lost}"
    );
}
