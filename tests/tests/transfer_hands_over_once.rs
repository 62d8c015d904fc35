//! `transfer`: the owner hands a conversation to an available agent (an admin also
//! assigns an unanswered one) in one atomic step — the new owner is told with `assigned`
//! and the note, the previous owner with `ownership_lost`, everyone sees the `transferred`
//! status event, the old epoch is refused — an agent away or offline is refused, and a
//! transfer racing a take-over has exactly one winner. Embedded, Redis, Redis Cluster.

use chathub_client::{Client, ClientError};
use chathub_domain::{Cause, EventBody, Presence, Role, Status};
use chathub_e2e::{TestHub, conv, expect_frame, full_history, state_of};
use chathub_protocol::{ErrorCode, Op, Reply, ServerFrame};
use std::time::{Duration, Instant};

fn transfer(conversation: &str, to: &str, note: Option<&str>, epoch: u64) -> Op {
    Op::Transfer {
        conversation: Some(conv(conversation)),
        to: Some(chathub_domain::AgentId::new(to).unwrap()),
        note: note.map(str::to_owned),
        epoch: Some(epoch),
    }
}

fn code(result: Result<Reply, ClientError>) -> ErrorCode {
    match result {
        Err(e) => e.server().map(|f| f.code).expect("a server error"),
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

/// Waits until `agent` is listed with `presence`.
async fn until_presence(c: &Client, agent: &str, presence: Presence) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Reply::Agents(a) = c.request(Op::Agents {}).await.unwrap() else {
            panic!()
        };
        if a.agents
            .iter()
            .any(|p| p.agent == agent && p.presence == presence)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{agent} never {presence:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(hub: TestHub) {
    let ann = hub.demo_client(Role::EndUser, "ann", "Ann").await;
    let mut alice = hub.demo_client(Role::Agent, "alice", "Alice").await;
    let mut bob = hub.demo_client(Role::Agent, "bob", "Bob").await;
    let dan = hub.demo_client(Role::Agent, "dan", "Dan").await;
    let carol = hub.demo_client(Role::Admin, "carol", "Carol").await;
    dan.request(Op::Presence {
        presence: Presence::Away,
    })
    .await
    .unwrap();
    until_presence(&carol, "bob", Presence::Available).await;
    until_presence(&carol, "dan", Presence::Away).await;

    ann.send_text(None, "my refund?", None, None).await.unwrap();
    let taken = alice
        .send_text(Some(&conv("ann")), "Looking", Some(0), None)
        .await
        .unwrap();
    // Away, offline (never connected), not the owner, stale epoch: refused.
    let refused = alice
        .request(transfer("ann", "dan", None, taken.epoch))
        .await;
    assert_eq!(code(refused), ErrorCode::InvalidState);
    let refused = alice
        .request(transfer("ann", "zed", None, taken.epoch))
        .await;
    assert_eq!(code(refused), ErrorCode::InvalidState);
    let refused = bob.request(transfer("ann", "bob", None, taken.epoch)).await;
    assert_eq!(code(refused), ErrorCode::Forbidden);
    let refused = alice.request(transfer("ann", "bob", None, 0)).await;
    assert_eq!(code(refused), ErrorCode::Conflict);
    let refused = ann.request(transfer("ann", "bob", None, taken.epoch)).await;
    assert_eq!(code(refused), ErrorCode::Forbidden);

    // The owner hands it to bob with a note.
    let Reply::Transfer(view) = alice
        .request(transfer("ann", "bob", Some("Gold member"), taken.epoch))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(view.state.owner.as_ref().unwrap().as_str(), "bob");
    assert_eq!(view.state.epoch, taken.epoch + 1);
    let frame = expect_frame(&mut bob, "assigned", |f| {
        matches!(f, ServerFrame::Assigned(_))
    })
    .await;
    let ServerFrame::Assigned(assigned) = frame else {
        unreachable!()
    };
    assert_eq!(assigned.conversation.as_str(), "ann");
    assert_eq!(assigned.by.id, "alice");
    assert_eq!(assigned.epoch, view.state.epoch);
    assert_eq!(assigned.note.as_deref(), Some("Gold member"));
    let frame = expect_frame(&mut alice, "ownership_lost", |f| {
        matches!(f, ServerFrame::OwnershipLost(_))
    })
    .await;
    let ServerFrame::OwnershipLost(lost) = frame else {
        unreachable!()
    };
    assert_eq!(
        (lost.by.as_ref().map(|a| a.as_str()), lost.epoch),
        (Some("bob"), view.state.epoch)
    );
    // The old owner's late message is refused; the new owner writes with the new epoch.
    let late = alice
        .send_text(Some(&conv("ann")), "still me", Some(taken.epoch), None)
        .await;
    assert!(late.is_err());
    bob.send_text(Some(&conv("ann")), "Bob here", Some(view.state.epoch), None)
        .await
        .unwrap();
    let history = full_history(&carol, "ann").await;
    let transferred = history.iter().find_map(|e| match &e.body {
        EventBody::Status {
            cause: Cause::Transferred,
            previous_owner,
            owner,
            by,
            ..
        } => Some((previous_owner.clone(), owner.clone(), by.id.clone())),
        _ => None,
    });
    let (previous, owner, by) = transferred.expect("a transferred event");
    assert_eq!(previous.unwrap().as_str(), "alice");
    assert_eq!(owner.unwrap().as_str(), "bob");
    assert_eq!(by, "alice");
    // The note is not in the conversation.
    assert!(!format!("{history:?}").contains("Gold member"));

    // An admin assigns an unanswered conversation.
    let ben = hub.demo_client(Role::EndUser, "ben", "Ben").await;
    let opened = ben.send_text(None, "hello?", None, None).await.unwrap();
    assert_eq!(opened.status, Status::Unanswered);
    let Reply::Transfer(view) = carol
        .request(transfer("ben", "alice", None, opened.epoch))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(view.state.status, Status::Active);
    assert_eq!(view.state.owner.as_ref().unwrap().as_str(), "alice");

    // Races: the owner transfers to bob while carl takes over; exactly one wins.
    let carl = hub.demo_client(Role::Agent, "carl", "Carl").await;
    until_presence(&carol, "carl", Presence::Available).await;
    for round in 0..20 {
        let id = format!("race-{round}");
        let user = hub.demo_client(Role::EndUser, &id, "User").await;
        user.send_text(None, "hi", None, None).await.unwrap();
        let owned = alice
            .send_text(Some(&conv(&id)), "mine", Some(0), None)
            .await
            .unwrap();
        let c = conv(&id);
        let (handed, took) = tokio::join!(
            alice.request(transfer(&id, "bob", None, owned.epoch)),
            carl.send_text(Some(&c), "I'll take it", Some(owned.epoch), None),
        );
        assert!(
            handed.is_ok() != took.is_ok(),
            "{id}: exactly one wins ({handed:?}, {took:?})"
        );
        let state = state_of(&carol, &id).await;
        let winner = if handed.is_ok() { "bob" } else { "carl" };
        assert_eq!(state.owner.as_ref().unwrap().as_str(), winner, "{id}");
        assert_eq!(state.epoch, owned.epoch + 1, "{id}: one change");
    }
    hub.stop().await;
}

#[tokio::test]
async fn transfer_embedded() {
    scenario(TestHub::start_demo(false).await).await;
}

#[tokio::test]
async fn transfer_on_redis() {
    scenario(TestHub::start_demo(true).await).await;
}

#[tokio::test]
async fn transfer_on_a_redis_cluster() {
    scenario(TestHub::start_demo_cluster().await).await;
}

/// Three gateway processes on a 3-master Redis Cluster: the owner on node 0 transfers
/// while another agent on node 1 takes over and an admin on node 2 assigns elsewhere;
/// every round has exactly one winner, and the epoch moved once.
#[tokio::test]
async fn transfer_races_across_three_nodes_have_one_winner() {
    let cluster = chathub_e2e::ClusterProcesses::start_on_redis_cluster(3);
    let alice = cluster.connect(0, Role::Agent, "alice").await;
    let carl = cluster.connect(1, Role::Agent, "carl").await;
    let carol = cluster.connect(2, Role::Admin, "carol").await;
    let _bob = cluster.connect(2, Role::Agent, "bob").await;
    let _dan = cluster.connect(0, Role::Agent, "dan").await;
    until_presence(&carol, "bob", Presence::Available).await;
    until_presence(&carol, "dan", Presence::Available).await;
    let mut wins = [0usize; 3];
    for round in 0..60 {
        let id = format!("r{round}");
        let user = cluster.connect(round % 3, Role::EndUser, &id).await;
        user.send_text(None, "hi", None, None).await.unwrap();
        let owned = alice
            .send_text(Some(&conv(&id)), "mine", Some(0), None)
            .await
            .unwrap();
        let c = conv(&id);
        let (handed, took, assigned) = tokio::join!(
            alice.request(transfer(&id, "bob", None, owned.epoch)),
            carl.send_text(Some(&c), "taking it", Some(owned.epoch), None),
            carol.request(transfer(&id, "dan", None, owned.epoch)),
        );
        let outcomes = [handed.is_ok(), took.is_ok(), assigned.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|w| **w).count(),
            1,
            "{id}: exactly one winner ({handed:?}, {took:?}, {assigned:?})"
        );
        let winner = outcomes.iter().position(|w| *w).unwrap();
        wins[winner] += 1;
        let state = state_of(&carol, &id).await;
        let owner = ["bob", "carl", "dan"][winner];
        assert_eq!(state.owner.as_ref().unwrap().as_str(), owner, "{id}");
        assert_eq!(state.epoch, owned.epoch + 1, "{id}: one change");
    }
    // Who won how often (which wins depends on timing; that one does is asserted above).
    eprintln!("transfer to bob / take-over by carl / assignment to dan won: {wins:?}");
}
