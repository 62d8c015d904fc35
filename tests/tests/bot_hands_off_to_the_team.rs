//! The tenant's bot, end to end, on the embedded default and on three nodes over a Redis
//! Cluster (bot, agent and end user each on a node of their own): while the bot has a
//! live session, a new or reopened conversation is its own (no alert: nobody waits);
//! its handoff is checked (limits `bad_request`, a stale epoch `conflict`, an agent's
//! `forbidden`); a handoff puts the conversation in the queue (cause `handed_off`),
//! which starts the alert schedule, with the summary and fields for agents only (live,
//! history and transcript: never the end user's); after it the end user writing again
//! waits for the humans, the bot's stale reply is a `conflict` and one on the current
//! epoch `forbidden` (a bot never takes); a human's cycle finished, the bot answers the
//! next one first again; with the bot gone, new conversations wait for the humans.

use chathub_client::{Client, ClientError};
use chathub_domain::{Cause, ConversationId, EventBody, HandoffField, Role, Status};
use chathub_e2e::{HubProcess, conv, dev_token, full_history, http_get, http_request, text_send};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};
use std::time::{Duration, Instant};

const BOT: &str = "faq-bot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_answers_first_and_hands_off_across_three_nodes() {
    let cluster = chathub_testkit::RedisCluster::start(3);
    let urls = cluster.urls().join(",");
    let args = ["--redis-cluster", urls.as_str()];
    let nodes: Vec<HubProcess> = (0..3).map(|_| HubProcess::spawn(&args)).collect();
    scenario(&nodes).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_answers_first_and_hands_off_on_the_embedded_default() {
    let nodes = vec![HubProcess::spawn(&[])];
    scenario(&nodes).await;
}

fn field(name: &str, value: &str) -> HandoffField {
    HandoffField {
        name: name.into(),
        value: value.into(),
    }
}

fn handoff(c: &ConversationId, epoch: u64, summary: &str, fields: Vec<HandoffField>) -> Op {
    Op::Handoff {
        conversation: Some(c.clone()),
        epoch: Some(epoch),
        summary: summary.into(),
        fields,
    }
}

fn code(reply: Result<Reply, ClientError>) -> ErrorCode {
    match reply {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Everything `client` gets within `quiet` of silence.
async fn drain(client: &mut Client, quiet: Duration) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while let Some(f) = client.next_event_within(quiet).await {
        frames.push(f);
    }
    frames
}

async fn scenario(nodes: &[HubProcess]) {
    let node = |i: usize| &nodes[i % nodes.len()];
    let admin = dev_token("acme", Role::Admin, "root");
    let settings = format!(
        r#"{{"bot":{{"agent":"{BOT}"}},"alerts":{{"steps":[{{"after_secs":0,"repeat_secs":1,"notify":"available"}}]}}}}"#
    );
    let (status, body) = http_request(
        node(0).http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        &settings,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""bot":{"agent":"faq-bot"}"#), "{body}");

    let mut bot = Client::connect(&node(0).ws_url, &dev_token("acme", Role::Bot, BOT))
        .await
        .unwrap();
    assert_eq!(bot.welcome().role, Role::Bot);
    let mut alice = Client::connect(&node(1).ws_url, &dev_token("acme", Role::Agent, "alice"))
        .await
        .unwrap();
    assert_eq!(alice.welcome().bot.as_ref().map(|b| b.as_str()), Some(BOT));
    let mut ana = Client::connect(&node(2).ws_url, &dev_token("acme", Role::EndUser, "ana"))
        .await
        .unwrap();
    let c = conv("ana");

    // The bot's: active, owned by it, and nobody is alerted (nobody waits).
    let opened = ana
        .send_text(None, "Where is my parcel?", None, None)
        .await
        .unwrap();
    assert_eq!(
        (opened.status, opened.owner.as_ref().map(|o| o.as_str())),
        (Status::Active, Some(BOT))
    );
    alice.subscribe(Some(&c), Some(0)).await.unwrap();
    ana.subscribe(None, Some(opened.seq)).await.unwrap();
    let frames = drain(&mut alice, Duration::from_millis(1_500)).await;
    assert!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Alert(_))),
        "no alert while the bot has it: {frames:?}"
    );
    let reply = bot
        .request(text_send(&c, "Let me check that for you.", opened.epoch))
        .await
        .unwrap();
    let Reply::Send(reply) = reply else { panic!() };
    assert_eq!(
        reply.epoch, opened.epoch,
        "the owner's reply moves no epoch"
    );

    // Bad handoffs are refused, and change nothing.
    let long = |n: usize| "x".repeat(n);
    let many: Vec<HandoffField> = (0..21).map(|i| field(&format!("f{i}"), "v")).collect();
    for (what, op) in [
        ("empty summary", handoff(&c, opened.epoch, "", vec![])),
        (
            "summary too long",
            handoff(&c, opened.epoch, &long(2_001), vec![]),
        ),
        ("too many fields", handoff(&c, opened.epoch, "s", many)),
        (
            "empty name",
            handoff(&c, opened.epoch, "s", vec![field("", "v")]),
        ),
        (
            "name too long",
            handoff(&c, opened.epoch, "s", vec![field(&long(65), "v")]),
        ),
        (
            "empty value",
            handoff(&c, opened.epoch, "s", vec![field("n", "")]),
        ),
        (
            "value too long",
            handoff(&c, opened.epoch, "s", vec![field("n", &long(501))]),
        ),
    ] {
        assert_eq!(code(bot.request(op).await), ErrorCode::BadRequest, "{what}");
    }
    let at_limits = vec![field(&long(64), &long(500))];
    assert_eq!(
        code(
            alice
                .request(handoff(&c, opened.epoch, "mine", vec![]))
                .await
        ),
        ErrorCode::Forbidden,
        "only a bot hands off"
    );
    assert_eq!(
        code(
            bot.request(handoff(&c, opened.epoch + 1, "stale", vec![]))
                .await
        ),
        ErrorCode::Conflict,
        "on the epoch the bot saw"
    );

    // The handoff: back in the queue for the humans, the summary for agents only.
    let summary = "Parcel A-1042 is three days late";
    let mut fields = vec![field("order", "A-1042")];
    fields.extend(at_limits);
    let view = match bot
        .request(handoff(&c, opened.epoch, summary, fields.clone()))
        .await
        .unwrap()
    {
        Reply::Handoff(view) => view,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (view.state.status, view.state.owner.clone()),
        (Status::Unanswered, None)
    );
    assert_eq!(view.state.epoch, opened.epoch + 1);

    // Alice sees the handoff live, and is alerted: the wait started.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut saw_handoff, mut saw_status, mut alerted) = (false, false, false);
    while !(saw_handoff && saw_status && alerted) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "handoff {saw_handoff}, status {saw_status}, alert {alerted}"
        );
        let Some(frame) = alice.next_event_within(left).await else {
            continue;
        };
        match frame {
            ServerFrame::Event(e) if e.conversation == c => match e.event.body {
                EventBody::Handoff {
                    author,
                    summary: s,
                    fields: f,
                } => {
                    assert_eq!((author.role, author.id.as_str()), (Role::Bot, BOT));
                    assert_eq!((s.as_str(), &f), (summary, &fields));
                    saw_handoff = true;
                }
                EventBody::Status {
                    cause: Cause::HandedOff,
                    status,
                    previous_owner,
                    ..
                } => {
                    assert_eq!(status, Status::Unanswered);
                    assert_eq!(previous_owner.as_ref().map(|o| o.as_str()), Some(BOT));
                    saw_status = true;
                }
                _ => {}
            },
            ServerFrame::Alert(a) if a.conversation == c => {
                assert_eq!(
                    a.epoch, view.state.epoch,
                    "the alert is about the wait after the handoff"
                );
                alerted = true;
            }
            _ => {}
        }
    }
    // Ana sees the status change and the bot's reply, never the summary.
    let theirs = drain(&mut ana, Duration::from_millis(300)).await;
    assert!(
        theirs.iter().any(|f| matches!(f, ServerFrame::Event(e) if matches!(e.event.body, EventBody::Status { cause: Cause::HandedOff, .. }))),
        "{theirs:?}"
    );
    let leaks = |text: String| text.contains("Parcel A-1042") || text.contains("Handoff");
    assert!(!leaks(format!("{theirs:?}")), "{theirs:?}");
    assert!(!leaks(format!("{:?}", full_history(&ana, "ana").await)));
    let own_transcript = ana
        .request(Op::Transcript {
            conversation: None,
            format: Some("text".into()),
        })
        .await
        .unwrap();
    assert!(!leaks(format!("{own_transcript:?}")), "{own_transcript:?}");
    let agents_transcript = alice
        .request(Op::Transcript {
            conversation: Some(c.clone()),
            format: Some("text".into()),
        })
        .await
        .unwrap();
    assert!(format!("{agents_transcript:?}").contains(summary));
    assert!(
        full_history(&alice, "ana")
            .await
            .iter()
            .any(|e| matches!(&e.body, EventBody::Handoff { summary: s, .. } if s == summary))
    );

    // Ana writes again: she waits for the humans, not the bot.
    let again = ana.send_text(None, "Hello?", None, None).await.unwrap();
    assert_eq!((again.status, again.owner), (Status::Unanswered, None));
    assert_eq!(
        code(
            bot.request(text_send(&c, "Still here!", opened.epoch))
                .await
        ),
        ErrorCode::Conflict,
        "the bot's reply on the epoch before the handoff"
    );
    assert_eq!(
        code(bot.request(text_send(&c, "Still here!", again.epoch)).await),
        ErrorCode::Forbidden,
        "a bot never takes"
    );

    // Alice takes it and finishes; Ana's next cycle is the bot's again.
    let taken = match alice
        .request(text_send(&c, "Hi Ana, on it.", again.epoch))
        .await
        .unwrap()
    {
        Reply::Send(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(taken.owner.as_ref().map(|o| o.as_str()), Some("alice"));
    let finished = alice
        .request(Op::Finish {
            conversation: Some(c.clone()),
            epoch: Some(taken.epoch),
        })
        .await
        .unwrap();
    assert!(matches!(finished, Reply::Finish(_)));
    let reopened = ana
        .send_text(None, "One more thing", None, None)
        .await
        .unwrap();
    assert_eq!(
        (reopened.status, reopened.owner.as_ref().map(|o| o.as_str())),
        (Status::Active, Some(BOT)),
        "reopened, for the bot"
    );
    let history = full_history(&alice, "ana").await;
    assert!(history.iter().any(|e| matches!(
        &e.body,
        EventBody::Status { cause: Cause::Reopened, owner: Some(o), .. } if o.as_str() == BOT
    )));

    // Listed with the agents, the bot is never alerted: it does not take.
    let bots = drain(&mut bot, Duration::from_millis(100)).await;
    assert!(
        !bots.iter().any(|f| matches!(f, ServerFrame::Alert(_))),
        "the bot got an alert: {bots:?}"
    );

    // The bot gone, new conversations wait for the humans (within moments of its close).
    bot.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let user = Client::connect(
            &node(2 + i).ws_url,
            &dev_token("acme", Role::EndUser, &format!("late-{i}")),
        )
        .await
        .unwrap();
        let ack = user.send_text(None, "Anyone?", None, None).await.unwrap();
        if ack.owner.is_none() {
            assert_eq!(ack.status, Status::Unanswered);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "conversations still go to a bot that left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The nodes count it (Prometheus): one handoff, the bot's two cycles of ana and more.
    let mut handoffs = 0.0;
    let mut cycles = 0.0;
    for n in nodes {
        let (_, body) = http_get(n.http_addr, "/metrics").await;
        let sum = |name: &str| {
            body.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        handoffs += sum("chathub_bot_handoffs_total");
        cycles += sum("chathub_bot_conversations_total");
    }
    assert_eq!(handoffs, 1.0, "chathub_bot_handoffs_total");
    assert!(cycles >= 2.0, "chathub_bot_conversations_total: {cycles}");
}
