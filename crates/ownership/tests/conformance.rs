//! Conformance suite of the [`Ownership`] contract (with the store's read side and the
//! broker's delivery): the same test bodies run against the memory twin, a real
//! redis-server and a Redis Cluster (`on_every_backend!`).

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

mod common;

use chathub_broker::{Broker, Channel};
use chathub_domain::{AgentId, Command, EventBody, Status, TenantId};
use chathub_ownership::{ApplyRequest, Decision, Ownership};
use chathub_protocol::ServerFrame;
use chathub_store::{ConversationStore, HistoryRange};
use common::{Fixture, Limits, agent, conversation, end_user, follow, frames, send, tenant};

async fn exactly_one_winner_in_a_race<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
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

async fn publish_order_is_seq_order<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    let channel = Channel::conversation(&tenant(), &conversation("u2"));
    let mut events = follow(&f, &channel, 1).await;
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
    let seqs: Vec<u64> = frames(&mut events, 51)
        .await
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

async fn retried_sends_are_recorded_once<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
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

async fn queue_follows_status_changes<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    let mut agents = follow(&f, &Channel::agents(&tenant()), 7).await;
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
    let statuses: Vec<(Status, u64)> = frames(&mut agents, 3)
        .await
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

/// Many conversations of two tenants change at once (the Redis backend then writes the
/// queue in batches per tenant): every entry ends at its conversation's last change, in
/// the list of its status, with the last message as preview, and no tenant sees another's.
async fn queue_is_exact_after_a_burst<O: Ownership + 'static, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    const PER_TENANT: usize = 30;
    let tenants = [
        TenantId::new("burst-a").unwrap(),
        TenantId::new("burst-b").unwrap(),
    ];
    let mut tasks = Vec::new();
    for tenant in &tenants {
        for i in 0..PER_TENANT {
            let ownership = f.ownership.clone();
            let tenant = tenant.clone();
            tasks.push(tokio::spawn(async move {
                let user = format!("u{i}");
                for n in 1..=3 {
                    let request = ApplyRequest {
                        tenant: tenant.clone(),
                        ..send(
                            end_user(&user),
                            &user,
                            &format!("{tenant} m{n}"),
                            None,
                            None,
                        )
                    };
                    ownership.apply(request).await.unwrap();
                }
                // Agents take every other conversation.
                if i % 2 == 0 {
                    let request = ApplyRequest {
                        tenant: tenant.clone(),
                        ..send(
                            agent("a1"),
                            &user,
                            &format!("{tenant} reply"),
                            Some(0),
                            None,
                        )
                    };
                    ownership.apply(request).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    for tenant in &tenants {
        let unanswered = f
            .store
            .list(tenant, Status::Unanswered, 100, None)
            .await
            .unwrap();
        let active = f
            .store
            .list(tenant, Status::Active, 100, None)
            .await
            .unwrap();
        assert_eq!(unanswered.items.len(), PER_TENANT / 2, "{tenant}");
        assert_eq!(active.items.len(), PER_TENANT / 2, "{tenant}");
        for item in &unanswered.items {
            // opened + three messages
            assert_eq!(item.seq, 4, "{item:?}");
            assert_eq!(
                item.preview.as_deref(),
                Some(format!("{tenant} m3").as_str())
            );
            assert_eq!(item.owner, None);
        }
        for item in &active.items {
            // opened + three messages + taken + reply
            assert_eq!(item.seq, 6, "{item:?}");
            assert_eq!(
                item.preview.as_deref(),
                Some(format!("{tenant} reply").as_str())
            );
            assert_eq!(item.owner.as_ref().map(|o| o.as_str()), Some("a1"));
            assert_eq!(item.epoch, 1);
        }
    }
}

/// The alert step: an occurrence goes out once per wait, only while the queue entry says
/// the conversation waits in the cycle the caller saw, and never after a take; marks are
/// forgotten only while they are still about the wait the caller names.
async fn alerts_follow_the_wait<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    use chathub_ownership::{AlertDue, AlertMarks, AlertRequest};
    use chathub_protocol::{AlertFrame, AlertLevel};
    let a1 = AgentId::new("a1").unwrap();
    let mut own = follow(&f, &Channel::agent(&tenant(), &a1), 11).await;
    f.ownership
        .apply(send(end_user("u9"), "u9", "help", None, None))
        .await
        .unwrap();
    let waiting = f
        .store
        .list(&tenant(), Status::Unanswered, 10, None)
        .await
        .unwrap();
    let entry = waiting.items[0].clone();
    let request = |epoch: u64, since: u64, occurrence: u32| AlertRequest {
        tenant: tenant(),
        conversation: conversation("u9"),
        epoch,
        since,
        steps: 2,
        due: vec![AlertDue {
            frame: AlertFrame {
                conversation: conversation("u9"),
                epoch,
                seq: entry.seq,
                since,
                step: 1,
                occurrence,
                level: AlertLevel::Escalation,
                preview: Some("help".into()),
            },
            online: vec![a1.clone()],
        }],
    };
    // Another cycle than the entry's: nothing.
    let stale = f
        .ownership
        .alert(request(0, entry.since + 1, 0))
        .await
        .unwrap();
    assert!(stale.is_empty());
    let sent = f.ownership.alert(request(0, entry.since, 0)).await.unwrap();
    assert_eq!(sent, vec![1]);
    // The same occurrence again (another node's round): once only.
    let again = f.ownership.alert(request(0, entry.since, 0)).await.unwrap();
    assert!(again.is_empty());
    match frames(&mut own, 1).await.as_slice() {
        [ServerFrame::Alert(a)] => assert_eq!((a.step, a.occurrence), (1, 0)),
        other => panic!("unexpected {other:?}"),
    }
    let marks = f.ownership.alert_marks(&tenant()).await.unwrap();
    let mine = marks.get(&conversation("u9")).cloned().unwrap();
    assert_eq!((mine.epoch, mine.since), (0, entry.since));
    assert_eq!(mine.sent, vec![None, Some(0)]);
    // Forgetting marks of an older wait leaves these; of this wait, removes them.
    let older = AlertMarks {
        since: entry.since - 1,
        ..mine.clone()
    };
    f.ownership
        .forget_alerts(&tenant(), &[(conversation("u9"), older)])
        .await
        .unwrap();
    let marks = f.ownership.alert_marks(&tenant()).await.unwrap();
    assert_eq!(marks.get(&conversation("u9")), Some(&mine));
    f.ownership
        .forget_alerts(&tenant(), &[(conversation("u9"), mine)])
        .await
        .unwrap();
    let marks = f.ownership.alert_marks(&tenant()).await.unwrap();
    assert!(!marks.contains_key(&conversation("u9")));
    // Taken: no alert of the wait goes out any more.
    f.ownership
        .apply(send(agent("a2"), "u9", "on it", Some(0), None))
        .await
        .unwrap();
    let after = f.ownership.alert(request(0, entry.since, 1)).await.unwrap();
    assert!(after.is_empty());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), own.recv())
            .await
            .is_err(),
        "no alert after the take"
    );
}

/// Stamps out one test per backend (memory, Redis, Redis Cluster) for a body.
macro_rules! on_every_backend {
    ($body:ident) => {
        mod $body {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                $body(common::memory(Limits::default())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn data_dir() {
                $body(common::data_dir(Limits::default())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                $body(common::redis(Limits::default()).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                $body(common::redis_cluster(Limits::default()).await).await;
            }
        }
    };
}

on_every_backend!(exactly_one_winner_in_a_race);
on_every_backend!(publish_order_is_seq_order);
on_every_backend!(retried_sends_are_recorded_once);
on_every_backend!(queue_follows_status_changes);
on_every_backend!(queue_is_exact_after_a_burst);
on_every_backend!(alerts_follow_the_wait);

/// Trials of the race between an owner's reply and a release.
const RELEASE_RACES: usize = 10_000;
/// Of them, run at once (each on its own conversation).
const RELEASE_RACES_AT_ONCE: usize = 64;

/// The owner's reply and a release (the stall policy's, decided on the epoch and `seq`
/// it saw) sent at the same moment: exactly one wins, every time. The reply first: it is
/// recorded and the release is refused (`invalid_state`: the conversation moved). The
/// release first: it is back in the queue and the reply, on the old epoch, loses
/// (`conflict`, not delivered).
async fn a_reply_and_a_release_have_exactly_one_winner<
    O: Ownership,
    S: ConversationStore,
    B: Broker,
>(
    f: Fixture<O, S, B>,
) {
    let sweep = chathub_domain::Actor::Agent {
        id: AgentId::new("stall-policy").unwrap(),
        admin: true,
        privileges: chathub_domain::Privileges::EMPTY,
        bot: false,
    };
    let (mut replies, mut releases) = (0, 0);
    for round in 0..RELEASE_RACES.div_ceil(RELEASE_RACES_AT_ONCE) {
        let mut races = Vec::new();
        for i in 0..RELEASE_RACES_AT_ONCE {
            let ownership = f.ownership.clone();
            let sweep = sweep.clone();
            races.push(tokio::spawn(async move {
                let c = format!("race{round}-{i}");
                ownership
                    .apply(send(end_user(&c), &c, "help", None, None))
                    .await
                    .unwrap();
                let Decision::Done { state, .. } = ownership
                    .apply(send(agent("alice"), &c, "on it", Some(0), None))
                    .await
                    .unwrap()
                else {
                    panic!("alice takes {c}")
                };
                ownership
                    .apply(send(end_user(&c), &c, "hello?", None, None))
                    .await
                    .unwrap();
                let release = ApplyRequest {
                    actor: sweep,
                    command: Command::Release {
                        seen_epoch: state.epoch,
                        last_seq: state.seq + 1,
                        reason: chathub_domain::ReleaseReason::NoReply,
                    },
                    ..send(end_user(&c), &c, "", None, None)
                };
                let reply = send(agent("alice"), &c, "sorry!", Some(state.epoch), None);
                let (a, b) = (ownership.clone(), ownership.clone());
                let (reply, release) = tokio::join!(
                    tokio::spawn(async move { a.apply(reply).await.unwrap() }),
                    tokio::spawn(async move { b.apply(release).await.unwrap() }),
                );
                (state.epoch, reply.unwrap(), release.unwrap())
            }));
        }
        for race in races {
            let (epoch, reply, release) = race.await.unwrap();
            match (reply, release) {
                (
                    Decision::Done { state, .. },
                    Decision::Refused(chathub_domain::Refusal::InvalidState),
                ) => {
                    assert_eq!(state.owner.unwrap().as_str(), "alice");
                    replies += 1;
                }
                (Decision::Conflict { owner, epoch: e }, Decision::Done { state, .. }) => {
                    assert_eq!((owner, e), (None, epoch + 1));
                    assert_eq!((state.status, state.epoch), (Status::Unanswered, epoch + 1));
                    releases += 1;
                }
                other => panic!("not exactly one winner: {other:?}"),
            }
        }
    }
    // Both orders happened (a real race; each is tens of trials or more here).
    assert!(
        replies > 0 && releases > 0,
        "replies won {replies}, releases {releases}"
    );
    assert_eq!(
        replies + releases,
        RELEASE_RACES.next_multiple_of(RELEASE_RACES_AT_ONCE)
    );
}

on_every_backend!(a_reply_and_a_release_have_exactly_one_winner);
