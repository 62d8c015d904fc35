//! Conformance suite of the [`Ownership`] contract. The test bodies are generic over a
//! backend fixture; today they run against the memory twin, and the Redis backend runs the
//! very same bodies.

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use chathub_broker::outbox::{self, Outbox};
use chathub_broker::{Channel, Hub, MemoryBroker};
use chathub_domain::{
    Actor, AgentId, Command, ConversationId, EndUserId, EventBody, MessageContent, Role, Status,
    TenantId,
};
use chathub_ownership::{ApplyRequest, Decision, MemoryOwnership, Ownership};
use chathub_protocol::{Codec, ServerFrame};
use chathub_store::{ConversationStore, HistoryRange, MemoryStore};
use std::sync::Arc;

/// What a conformance body needs from a backend.
struct Fixture<O, S> {
    ownership: Arc<O>,
    store: S,
    hub: Arc<Hub>,
}

fn memory() -> Fixture<MemoryOwnership<MemoryBroker>, MemoryStore> {
    let hub = Arc::new(Hub::new());
    let store = MemoryStore::default();
    let ownership = MemoryOwnership::new(store.clone(), MemoryBroker::new(hub.clone()));
    Fixture {
        ownership: Arc::new(ownership),
        store,
        hub,
    }
}

fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

fn conversation(name: &str) -> ConversationId {
    ConversationId::new(name).unwrap()
}

fn agent(name: &str) -> Actor {
    Actor::Agent {
        id: AgentId::new(name).unwrap(),
        admin: false,
        privileges: Role::Agent.default_privileges(),
    }
}

fn end_user(name: &str) -> Actor {
    Actor::EndUser(EndUserId::new(name).unwrap())
}

fn send(
    actor: Actor,
    conv: &str,
    text: &str,
    epoch: Option<u64>,
    id: Option<&str>,
) -> ApplyRequest {
    ApplyRequest {
        tenant: tenant(),
        conversation: conversation(conv),
        actor,
        command: Command::Send {
            content: MessageContent::Text { text: text.into() },
            client_msg_id: id.map(str::to_owned),
            seen_epoch: epoch,
        },
        at: 1_000,
    }
}

/// Follows `channel` on the fixture's hub like a session would.
fn follow(hub: &Hub, channel: &Channel, session: u64) -> Outbox {
    let (tx, rx) = outbox::channel(100_000, usize::MAX);
    hub.join(channel, session, &tx);
    // The sender is kept alive by the hub.
    rx
}

fn drain(outbox: &mut Outbox) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while let Some(env) = outbox.try_recv() {
        frames.push(Codec::MsgPack.decode_server(&env.msgpack).unwrap());
    }
    frames
}

async fn exactly_one_winner_in_a_race<O: Ownership, S: ConversationStore>(f: Fixture<O, S>) {
    f.ownership
        .apply(send(end_user("u1"), "u1", "help", None, None))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let ownership = f.ownership.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("a{i}");
            (
                name.clone(),
                ownership
                    .apply(send(agent(&name), "u1", "mine", Some(0), None))
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (name, Decision::Done { state, .. }) => {
                assert_eq!(
                    state.owner.as_ref().map(AgentId::as_str),
                    Some(name.as_str())
                );
                winners.push(name);
            }
            (_, Decision::Conflict { owner, epoch }) => losers.push((owner, epoch)),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(losers.len(), 31);
    for (owner, epoch) in losers {
        assert_eq!(owner.unwrap().as_str(), winners[0]);
        assert_eq!(epoch, 1);
    }
    // Only the winner's message is in history.
    let h = f
        .store
        .history(
            &tenant(),
            &conversation("u1"),
            HistoryRange::Latest { limit: 100 },
        )
        .await
        .unwrap();
    assert_eq!(h.events.len(), 4);
    let state = f.store.state(&tenant(), &conversation("u1")).await.unwrap();
    assert_eq!(
        (state.status, state.epoch, state.seq),
        (Status::Active, 1, 4)
    );
}

async fn publish_order_is_seq_order<O: Ownership, S: ConversationStore>(f: Fixture<O, S>) {
    let mut events = follow(
        &f.hub,
        &Channel::conversation(&tenant(), &conversation("u2")),
        1,
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let ownership = f.ownership.clone();
        tasks.push(tokio::spawn(async move {
            ownership
                .apply(send(end_user("u2"), "u2", &format!("m{i}"), None, None))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Decision::Done { .. }));
    }
    let seqs: Vec<u64> = drain(&mut events)
        .into_iter()
        .map(|f| match f {
            ServerFrame::Event(e) => e.event.seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        seqs,
        (1..=51).collect::<Vec<_>>(),
        "published once each, in seq order"
    );
}

async fn retried_sends_are_recorded_once<O: Ownership, S: ConversationStore>(f: Fixture<O, S>) {
    let first = f
        .ownership
        .apply(send(end_user("u3"), "u3", "hi", None, Some("k1")))
        .await
        .unwrap();
    let again = f
        .ownership
        .apply(send(end_user("u3"), "u3", "hi", None, Some("k1")))
        .await
        .unwrap();
    let (Decision::Done { ack: Some(a), .. }, Decision::Done { ack: Some(b), .. }) =
        (&first, &again)
    else {
        panic!("unexpected {first:?} {again:?}")
    };
    assert_eq!(a, b);
    let h = f
        .store
        .history(
            &tenant(),
            &conversation("u3"),
            HistoryRange::Latest { limit: 100 },
        )
        .await
        .unwrap();
    let messages = h
        .events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Message { .. }))
        .count();
    assert_eq!(messages, 1);
}

async fn queue_follows_status_changes<O: Ownership, S: ConversationStore>(f: Fixture<O, S>) {
    let mut agents = follow(&f.hub, &Channel::agents(&tenant()), 7);
    f.ownership
        .apply(send(end_user("u4"), "u4", "one", None, None))
        .await
        .unwrap();
    f.ownership
        .apply(send(end_user("u4"), "u4", "two", None, None))
        .await
        .unwrap();
    f.ownership
        .apply(send(agent("a1"), "u4", "hello", Some(0), None))
        .await
        .unwrap();
    let finish = ApplyRequest {
        command: Command::Finish { seen_epoch: 1 },
        ..send(agent("a1"), "u4", "", None, None)
    };
    f.ownership.apply(finish).await.unwrap();
    let statuses: Vec<(Status, u64)> = drain(&mut agents)
        .into_iter()
        .map(|f| match f {
            ServerFrame::Queue(q) => (q.status, q.seq),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // Plain messages update the index but publish nothing.
    assert_eq!(
        statuses,
        vec![
            (Status::Unanswered, 2),
            (Status::Active, 5),
            (Status::Finished, 6)
        ]
    );
    let page = f
        .store
        .list(&tenant(), Status::Finished, 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].preview.as_deref(), Some("hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_exactly_one_winner_in_a_race() {
    exactly_one_winner_in_a_race(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_publish_order_is_seq_order() {
    publish_order_is_seq_order(memory()).await;
}

#[tokio::test]
async fn memory_retried_sends_are_recorded_once() {
    retried_sends_are_recorded_once(memory()).await;
}

#[tokio::test]
async fn memory_queue_follows_status_changes() {
    queue_follows_status_changes(memory()).await;
}
