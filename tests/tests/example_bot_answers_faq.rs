//! The example bot (`examples/python-bot/chathub_bot.py`, `websockets` + `msgpack`; the
//! test command installs both from PyPI) against a real node, as the tenant's bot: while
//! it runs, every new or reopened conversation is its to answer first. It answers the
//! questions its FAQ knows and finishes them; it hands the others to the agents with a
//! summary (the conversation goes back to the queue, cause `handed_off`, the summary for
//! agents only); a question asked while it was not running waits for the agents; and it
//! never writes in a conversation an agent took over (its writes are fenced by the epoch
//! it saw).

use chathub_client::Client;
use chathub_domain::{Cause, EventBody, MessageContent, Presence, Role, Status};
use chathub_e2e::{HubProcess, conv, dev_token, full_history, http_request, list};
use chathub_protocol::{Op, Reply};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/python-bot/chathub_bot.py"
);

/// The bot process; killed on drop.
struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bot(hub: &HubProcess) -> Bot {
    let child = Command::new("python3")
        .arg(BOT)
        .args(["--url", &hub.ws_url])
        .args(["--token", &dev_token("acme", Role::Bot, "faq-bot")])
        .args(["--faq", "refund=Refunds reach your card within 5 days."])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the example bot (pip install websockets msgpack)");
    Bot(child)
}

/// The texts agents and the bot wrote in `conversation`, with their authors.
async fn answers(agent: &Client, conversation: &str) -> Vec<(String, String)> {
    full_history(agent, conversation)
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::Message {
                author,
                content: MessageContent::Text { text },
                ..
            } if author.role != Role::EndUser => Some((author.id, text)),
            _ => None,
        })
        .collect()
}

/// Waits (up to 20 s) until `done` holds of `conversation`'s history.
async fn until(
    agent: &Client,
    conversation: &str,
    what: &str,
    done: impl Fn(&[chathub_domain::Event]) -> bool,
) -> Vec<chathub_domain::Event> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = full_history(agent, conversation).await;
        if done(&history) {
            return history;
        }
        assert!(Instant::now() < deadline, "{conversation}: never {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finished(h: &[chathub_domain::Event]) -> bool {
    matches!(
        h.last().map(|e| &e.body),
        Some(EventBody::Status {
            status: Status::Finished,
            ..
        })
    )
}

fn handed_off(h: &[chathub_domain::Event]) -> bool {
    h.iter()
        .any(|e| matches!(e.body, EventBody::Handoff { .. }))
}

#[tokio::test]
async fn the_example_bot_answers_what_it_knows_and_hands_off_the_rest() {
    let hub = HubProcess::spawn(&[]);
    let admin = dev_token("acme", Role::Admin, "root");
    let (status, body) = http_request(
        hub.http_addr,
        "PUT",
        "/admin/v1/settings",
        &admin,
        r#"{"bot":{"agent":"faq-bot"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let end_user = |id: &str| {
        let url = hub.ws_url.clone();
        let token = dev_token("acme", Role::EndUser, id);
        async move { Client::connect(&url, &token).await.unwrap() }
    };
    let carol = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "carol"))
        .await
        .unwrap();

    // Asked while the bot is not running: it waits for the agents, never the bot's.
    let ann = end_user("ann").await;
    let ack = ann
        .send_text(None, "What are your opening HOURS?", None, None)
        .await
        .unwrap();
    assert_eq!((ack.status, ack.owner), (Status::Unanswered, None));

    let _bot = start_bot(&hub);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Reply::Agents(list) = carol.request(Op::Agents {}).await.unwrap() else {
            panic!("agents reply")
        };
        if list
            .agents
            .iter()
            .any(|a| a.agent == "faq-bot" && a.presence == Presence::Available)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Asked while it runs: the bot owns it, answers from its FAQ (a keyword given on its
    // command line) and finishes it.
    let mut ben = end_user("ben").await;
    let ack = ben
        .send_text(None, "How long does a refund take?", None, None)
        .await
        .unwrap();
    assert_eq!(
        (ack.status, ack.owner.as_ref().map(|o| o.as_str())),
        (Status::Active, Some("faq-bot")),
        "the bot answers first"
    );
    until(&carol, "ben", "answered and finished", finished).await;
    assert_eq!(
        answers(&carol, "ben").await,
        vec![(
            "faq-bot".to_owned(),
            "Refunds reach your card within 5 days.".to_owned()
        )]
    );
    // Ben's next question reopens the conversation for the bot again; asking for a
    // person, he is handed to the agents.
    let ack = ben
        .send_text(None, "can I talk to a human please", None, None)
        .await
        .unwrap();
    assert_eq!(ack.owner.as_ref().map(|o| o.as_str()), Some("faq-bot"));
    let history = until(&carol, "ben", "handed off", handed_off).await;
    let handoff = history
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Handoff {
                summary,
                fields,
                author,
            } => Some((author, summary, fields)),
            _ => None,
        })
        .unwrap();
    assert_eq!(handoff.0.role, Role::Bot);
    assert!(handoff.1.contains("talk to a human"), "{}", handoff.1);
    assert!(
        handoff
            .2
            .iter()
            .any(|f| f.name == "reason" && f.value == "asked for a person"),
        "{:?}",
        handoff.2
    );
    assert!(history.iter().any(|e| matches!(
        &e.body,
        EventBody::Status {
            status: Status::Unanswered,
            cause: Cause::HandedOff,
            owner: None,
            ..
        }
    )));

    // Not in the FAQ: handed off too, and waiting for the agents with ann's question.
    let cid = end_user("cid").await;
    cid.send_text(None, "My parcel arrived broken", None, None)
        .await
        .unwrap();
    until(&carol, "cid", "handed off", handed_off).await;
    assert!(
        answers(&carol, "cid").await.is_empty(),
        "the bot did not guess"
    );
    let waiting = list(&carol, Status::Unanswered).await;
    for left in ["ann", "ben", "cid"] {
        assert!(
            waiting.items.iter().any(|i| i.conversation == conv(left)),
            "{left} waits for an agent"
        );
    }
    assert!(
        answers(&carol, "ann").await.is_empty(),
        "the bot never took ann's"
    );

    // The end user never sees the handoff's summary: neither live nor in history.
    let mut seen = Vec::new();
    while let Some(frame) = ben.next_event_within(Duration::from_millis(200)).await {
        seen.push(frame);
    }
    assert!(
        !seen.iter().any(|f| format!("{f:?}").contains("Handoff")),
        "{seen:?}"
    );
    assert!(!handed_off(&full_history(&ben, "ben").await));

    // Taken over by an agent at the same time as the bot may answer: the bot never
    // writes after the agent's take.
    for round in 0..10 {
        let id = format!("race-{round}");
        let user = end_user(&id).await;
        let ack = user
            .send_text(None, "coupon question", None, None)
            .await
            .unwrap();
        let taken = carol
            .send_text(Some(&conv(&id)), "I'm on it.", Some(ack.epoch), None)
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let history = full_history(&carol, &id).await;
        let mut human_holds = false;
        for e in &history {
            match &e.body {
                EventBody::Status { cause, .. } => {
                    human_holds = matches!(cause, Cause::TakenOver | Cause::Taken)
                }
                EventBody::Message { author, .. } if author.role == Role::Bot => {
                    assert!(
                        !human_holds,
                        "{id}: the bot wrote after the take: {history:?}"
                    );
                }
                _ => {}
            }
        }
        // Either the take won (the bot is fenced out) or the bot had finished first and
        // the agent's message was refused as a stale epoch: never both writing.
        if taken.is_ok() {
            assert!(human_holds, "{id}: the take is the last ownership change");
        }
    }
}
