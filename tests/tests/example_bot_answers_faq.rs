//! The example bot (`examples/python-bot/chathub_bot.py`, `websockets` + `msgpack`; the
//! test command installs both from PyPI) against a real node: it answers the questions
//! its FAQ knows — one asked before it started (it catches up on the queue) and one asked
//! while it runs — leaves the others to the agents, and never writes in a conversation
//! an agent took first (its answers are fenced by the epoch it saw).

use chathub_client::Client;
use chathub_domain::{EventBody, MessageContent, Role, Status};
use chathub_e2e::{HubProcess, conv, dev_token, full_history, list};
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
        .args(["--token", &dev_token("acme", Role::Agent, "faq-bot")])
        .args(["--faq", "refund=Refunds reach your card within 5 days."])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the example bot (pip install websockets msgpack)");
    Bot(child)
}

/// The texts agents (the bot included) wrote in `conversation`, with their authors.
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

async fn until_answered(agent: &Client, conversation: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = answers(agent, conversation).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{conversation} was never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_example_bot_answers_what_it_knows_and_leaves_the_rest() {
    let hub = HubProcess::spawn(&[]);
    let end_user = |id: &str| {
        let url = hub.ws_url.clone();
        let token = dev_token("acme", Role::EndUser, id);
        async move { Client::connect(&url, &token).await.unwrap() }
    };
    let carol = Client::connect(&hub.ws_url, &dev_token("acme", Role::Agent, "carol"))
        .await
        .unwrap();

    // Asked before the bot runs: it catches up on the queue.
    let ann = end_user("ann").await;
    ann.send_text(None, "What are your opening HOURS?", None, None)
        .await
        .unwrap();
    let _bot = start_bot(&hub);
    let found = until_answered(&carol, "ann").await;
    assert_eq!(
        found,
        vec![(
            "faq-bot".to_owned(),
            "We are here every day from 9:00 to 18:00.".to_owned()
        )]
    );

    // Answered, the conversation is finished: ann's next question is back in the queue,
    // and one the bot cannot answer stays there for the agents.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !list(&carol, Status::Finished)
        .await
        .items
        .iter()
        .any(|i| i.conversation == conv("ann"))
    {
        assert!(
            Instant::now() < deadline,
            "ann's conversation was not finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ann.send_text(None, "and my broken zipper?", None, None)
        .await
        .unwrap();

    // Asked while it runs, with a keyword given on its command line.
    let ben = end_user("ben").await;
    ben.send_text(None, "How long does a refund take?", None, None)
        .await
        .unwrap();
    let found = until_answered(&carol, "ben").await;
    assert_eq!(found[0].1, "Refunds reach your card within 5 days.");

    // Not in the FAQ: left in the queue for the agents. A question the bot answers,
    // asked after, shows that it has looked at this one already.
    let cid = end_user("cid").await;
    cid.send_text(None, "My parcel arrived broken", None, None)
        .await
        .unwrap();
    let dee = end_user("dee").await;
    dee.send_text(None, "points?", None, None).await.unwrap();
    until_answered(&carol, "dee").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(answers(&carol, "cid").await.is_empty());
    let waiting = list(&carol, Status::Unanswered).await;
    for left in ["cid", "ann"] {
        assert!(
            waiting.items.iter().any(|i| i.conversation == conv(left)),
            "{left} waits for an agent"
        );
    }
    assert_eq!(answers(&carol, "ann").await.len(), 1, "one answer to ann");

    // Taken by an agent at the same time as the bot may answer: exactly one of them owns
    // it, and the bot never writes after the agent's take.
    for round in 0..10 {
        let id = format!("race-{round}");
        let user = end_user(&id).await;
        user.send_text(None, "coupon question", None, None)
            .await
            .unwrap();
        let _ = carol
            .send_text(Some(&conv(&id)), "I'm on it.", Some(0), None)
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let history = full_history(&carol, &id).await;
        let mut taken_by = None;
        for e in &history {
            match &e.body {
                EventBody::Status {
                    status: Status::Active,
                    owner: Some(owner),
                    ..
                } if taken_by.is_none() => taken_by = Some(owner.as_str().to_owned()),
                EventBody::Message { author, .. } if author.role != Role::EndUser => {
                    assert_eq!(
                        Some(author.id.as_str()),
                        taken_by.as_deref(),
                        "{id}: only the owner writes"
                    );
                }
                _ => {}
            }
        }
        assert!(taken_by.is_some(), "{id} was taken");
    }
}
