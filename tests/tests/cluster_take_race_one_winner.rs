//! Three gateway processes and one redis-server (and again on a 3-master Redis Cluster): 50 agents spread over the nodes send the
//! first message on 200 conversations at the same moment. Exactly one winner per
//! conversation and epoch, every loser gets `conflict` naming the winner, history holds
//! only the winners' messages, and every console observes the same owner sequence.

use chathub_client::Client;
use chathub_domain::{EventBody, Role, Status};
use chathub_e2e::{ClusterProcesses, RedisOptions, conv, full_history};
use chathub_protocol::{ErrorCode, ServerFrame};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Per conversation, the `(seq, owner)` of every queue frame one console saw.
type OwnerSequences = BTreeMap<String, Vec<(u64, Option<String>)>>;

const AGENTS: usize = 50;
const CONVERSATIONS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_over_three_nodes_race_for_two_hundred_conversations() {
    race(ClusterProcesses::start(3, RedisOptions::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_race_on_a_redis_cluster() {
    race(ClusterProcesses::start_on_redis_cluster(3)).await;
}

async fn race(cluster: ClusterProcesses) {
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(
            cluster
                .connect(i % 3, Role::Agent, &format!("agent-{i}"))
                .await,
        );
    }
    // The end users are on node 1 (index 0).
    for c in 0..CONVERSATIONS {
        let user = cluster
            .connect(0, Role::EndUser, &format!("user-{c}"))
            .await;
        user.send_text(None, "help", None, None).await.unwrap();
    }

    let agents: Vec<Arc<Client>> = agents.into_iter().map(Arc::new).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(AGENTS));
    let mut tasks = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        let agent = agent.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // All of this agent's sends go out at once, without waiting for replies.
            let sends = (0..CONVERSATIONS).map(|c| {
                let agent = agent.clone();
                async move {
                    let conversation = conv(&format!("user-{c}"));
                    let text = format!("agent-{i} here");
                    (
                        c,
                        agent
                            .send_text(Some(&conversation), &text, Some(0), None)
                            .await,
                    )
                }
            });
            futures::future::join_all(sends)
                .await
                .into_iter()
                .map(move |(c, r)| (c, i, r))
                .collect::<Vec<_>>()
        }));
    }
    let mut winners: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut conflicts: Vec<(usize, String)> = Vec::new();
    for t in tasks {
        for (c, i, result) in t.await.unwrap() {
            match result {
                Ok(ack) => {
                    assert_eq!((ack.status, ack.epoch), (Status::Active, 1));
                    winners.entry(c).or_default().push(i);
                }
                Err(e) => {
                    let e = e.server().expect("a server error").clone();
                    assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
                    assert_eq!(e.epoch, Some(1));
                    let owner = e.owner.expect("conflict names the owner").to_string();
                    conflicts.push((c, owner));
                }
            }
        }
    }
    for c in 0..CONVERSATIONS {
        assert_eq!(
            winners.get(&c).map(Vec::len),
            Some(1),
            "conversation {c}: {winners:?}"
        );
    }
    assert_eq!(conflicts.len(), AGENTS * CONVERSATIONS - CONVERSATIONS);
    for (c, owner) in &conflicts {
        assert_eq!(
            *owner,
            format!("agent-{}", winners[c][0]),
            "conflict names the winner"
        );
    }

    // History holds exactly the winner's message.
    for c in 0..CONVERSATIONS {
        let events = full_history(&agents[c % AGENTS], &format!("user-{c}")).await;
        let agent_messages: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { author, .. } if author.role == Role::Agent => {
                    Some(author.id.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(agent_messages, vec![format!("agent-{}", winners[&c][0])]);
    }

    // Every console saw the same owner sequence for every conversation (ordered by seq).
    let mut sequences: Vec<OwnerSequences> = Vec::new();
    for agent in agents {
        let mut agent = Arc::try_unwrap(agent).ok().expect("only owner left");
        let mut seen = OwnerSequences::new();
        let mut active = 0;
        while active < CONVERSATIONS {
            let Some(f) = agent.next_event_within(Duration::from_secs(20)).await else {
                panic!("console saw only {active} takes");
            };
            if let ServerFrame::Queue(q) = f {
                if q.status == Status::Active {
                    active += 1;
                }
                seen.entry(q.conversation.to_string())
                    .or_default()
                    .push((q.seq, q.owner.map(|o| o.to_string())));
            }
        }
        for entries in seen.values_mut() {
            entries.sort();
        }
        sequences.push(seen);
    }
    for (i, s) in sequences.iter().enumerate().skip(1) {
        assert_eq!(s, &sequences[0], "console {i} saw another owner sequence");
    }
    for c in 0..CONVERSATIONS {
        let owners: Vec<_> = sequences[0][&format!("user-{c}")]
            .iter()
            .filter_map(|(_, o)| o.clone())
            .collect();
        assert_eq!(owners, vec![format!("agent-{}", winners[&c][0])]);
    }
}
