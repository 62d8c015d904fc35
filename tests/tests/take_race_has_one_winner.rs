//! Concurrent takes: agents who saw the same epoch send at once; exactly one wins per
//! conversation, every other gets `conflict` naming the winner and epoch, the losers'
//! messages are not delivered, and every agent sees the winner.

use chathub_client::Client;
use chathub_domain::{EventBody, Role, Status};
use chathub_e2e::{TestHub, conv, expect_frame, full_history};
use chathub_protocol::{ErrorCode, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;

const AGENTS: usize = 8;
const CONVERSATIONS: usize = 12;

async fn exactly_one_winner_per_conversation(hub: TestHub) {
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(Arc::new(
            hub.connect(Role::Agent, &format!("agent-{i}")).await,
        ));
    }
    let mut watcher = hub.connect(Role::Admin, "watcher").await;
    for c in 0..CONVERSATIONS {
        let user = hub.connect(Role::EndUser, &format!("user-{c}")).await;
        user.send_text(None, "help", None, None).await.unwrap();
    }

    // Every agent sends its first message on every conversation, all at once, with the
    // epoch they all saw (0).
    let barrier = Arc::new(tokio::sync::Barrier::new(AGENTS * CONVERSATIONS));
    let mut tasks = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        for c in 0..CONVERSATIONS {
            let agent: Arc<Client> = agent.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let conversation = conv(&format!("user-{c}"));
                let text = format!("agent-{i} here");
                barrier.wait().await;
                let result = agent
                    .send_text(Some(&conversation), &text, Some(0), None)
                    .await;
                (c, i, result)
            }));
        }
    }
    let mut winners: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut conflicts: Vec<(usize, String, u64)> = Vec::new();
    for t in tasks {
        let (c, i, result) = t.await.unwrap();
        match result {
            Ok(ack) => {
                assert_eq!(ack.status, Status::Active);
                assert_eq!(
                    ack.owner.as_ref().map(|o| o.to_string()),
                    Some(format!("agent-{i}"))
                );
                assert_eq!(ack.epoch, 1);
                winners.entry(c).or_default().push(i);
            }
            Err(e) => {
                let e = e.server().expect("a server error").clone();
                assert_eq!(e.code, ErrorCode::Conflict);
                conflicts.push((
                    c,
                    e.owner.expect("conflict names the owner").to_string(),
                    e.epoch.unwrap(),
                ));
            }
        }
    }
    for c in 0..CONVERSATIONS {
        assert_eq!(
            winners.get(&c).map(Vec::len),
            Some(1),
            "conversation {c} winners: {winners:?}"
        );
    }
    assert_eq!(conflicts.len(), AGENTS * CONVERSATIONS - CONVERSATIONS);
    for (c, owner, epoch) in &conflicts {
        assert_eq!(
            *owner,
            format!("agent-{}", winners[c][0]),
            "conflict names the winner"
        );
        assert_eq!(*epoch, 1);
    }

    // History holds exactly: opened, the user's message, the take, the winner's message.
    for c in 0..CONVERSATIONS {
        let events = full_history(&agents[0], &format!("user-{c}")).await;
        assert_eq!(events.len(), 4, "{events:?}");
        let winner = format!("agent-{}", winners[&c][0]);
        let agent_messages: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { author, .. } if author.role == Role::Agent => {
                    Some(author.id.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            agent_messages,
            vec![winner.clone()],
            "only the winner's message was delivered"
        );
    }

    // Every console sees the owner of every conversation.
    let mut seen = HashMap::new();
    while seen.len() < CONVERSATIONS {
        let f = expect_frame(
            &mut watcher,
            "queue: taken",
            |f| matches!(f, ServerFrame::Queue(q) if q.status == Status::Active),
        )
        .await;
        if let ServerFrame::Queue(q) = f {
            seen.insert(q.conversation.to_string(), q.owner.unwrap().to_string());
        }
    }
    for c in 0..CONVERSATIONS {
        assert_eq!(
            seen[&format!("user-{c}")],
            format!("agent-{}", winners[&c][0])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_winner_per_conversation_embedded() {
    exactly_one_winner_per_conversation(TestHub::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_winner_per_conversation_redis() {
    exactly_one_winner_per_conversation(TestHub::start_redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_winner_per_conversation_redis_cluster() {
    exactly_one_winner_per_conversation(TestHub::start_redis_cluster().await).await;
}
