//! Unit tests of each rule, and property tests over random interleavings of commands from
//! several agents, admins and the end user.

use super::*;
use crate::ids::EndUserId;
use crate::roles::Privileges;
use proptest::prelude::*;

fn user() -> Actor {
    Actor::EndUser(EndUserId::new("u1").unwrap())
}

fn agent(name: &str) -> Actor {
    Actor::Agent {
        id: AgentId::new(name).unwrap(),
        admin: false,
        privileges: Role::Agent.default_privileges(),
        bot: false,
    }
}

fn admin(name: &str) -> Actor {
    Actor::Agent {
        id: AgentId::new(name).unwrap(),
        admin: true,
        privileges: Role::Admin.default_privileges(),
        bot: false,
    }
}

fn text(t: &str) -> MessageContent {
    MessageContent::Text { text: t.into() }
}

fn send(epoch: Option<u64>) -> Command {
    Command::Send {
        content: text("hi"),
        client_msg_id: None,
        seen_epoch: epoch,
    }
}

fn applied(outcome: Outcome) -> Transition {
    match outcome {
        Outcome::Applied(t) => t,
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn aid(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

#[test]
fn end_user_message_opens_the_conversation_as_unanswered() {
    let t = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        10,
    ));
    assert_eq!(t.state.status, Status::Unanswered);
    assert_eq!(t.state.seq, 2);
    assert_eq!(t.state.epoch, 0);
    assert_eq!(t.events.len(), 2);
    assert!(matches!(
        t.events[0].body,
        EventBody::Status {
            cause: Cause::Opened,
            status: Status::Unanswered,
            ..
        }
    ));
    assert!(matches!(t.events[1].body, EventBody::Message { .. }));
    assert_eq!((t.events[0].seq, t.events[1].seq), (1, 2));
    assert!(t.events.iter().all(|e| e.at == 10));
}

#[test]
fn agent_message_takes_unanswered_then_another_takes_over() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let t = applied(apply(&s, &agent("a1"), &send(Some(0)), 2));
    assert_eq!(t.state.status, Status::Active);
    assert_eq!(t.state.owner, Some(aid("a1")));
    assert_eq!(t.state.epoch, 1);
    assert!(matches!(
        t.events[0].body,
        EventBody::Status {
            cause: Cause::Taken,
            ..
        }
    ));
    let t2 = applied(apply(&t.state, &agent("a2"), &send(Some(1)), 3));
    assert_eq!(t2.state.owner, Some(aid("a2")));
    assert_eq!(t2.state.epoch, 2);
    match &t2.events[0].body {
        EventBody::Status {
            cause,
            previous_owner,
            ..
        } => {
            assert_eq!(*cause, Cause::TakenOver);
            assert_eq!(previous_owner.as_ref(), Some(&aid("a1")));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn owner_message_changes_nothing_about_ownership() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    let t = applied(apply(&s, &agent("a1"), &send(Some(1)), 3));
    assert_eq!(t.state.epoch, 1);
    assert_eq!(t.events.len(), 1);
    assert!(matches!(t.events[0].body, EventBody::Message { .. }));
}

#[test]
fn stale_epoch_loses_and_names_the_winner() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    assert_eq!(
        apply(&s, &agent("a2"), &send(Some(0)), 3),
        Outcome::Conflict {
            owner: Some(aid("a1")),
            epoch: 1
        }
    );
}

#[test]
fn agent_without_epoch_or_privilege_is_refused() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    assert_eq!(
        apply(&s, &agent("a1"), &send(None), 2),
        Outcome::Refused(Refusal::MissingEpoch)
    );
    let weak = Actor::Agent {
        id: aid("a9"),
        admin: false,
        privileges: Privileges::EMPTY,
        bot: false,
    };
    assert_eq!(
        apply(&s, &weak, &send(Some(0)), 2),
        Outcome::Refused(Refusal::Forbidden)
    );
}

#[test]
fn finish_by_owner_or_admin_only_then_end_user_reopens() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    let finish = Command::Finish { seen_epoch: 1 };
    assert_eq!(
        apply(&s, &agent("a2"), &finish, 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply(&s, &user(), &finish, 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    let by_admin = applied(apply(&s, &admin("boss"), &finish, 3));
    assert_eq!(by_admin.state.status, Status::Finished);
    let t = applied(apply(&s, &agent("a1"), &finish, 3));
    assert_eq!(t.state.status, Status::Finished);
    assert_eq!(t.state.owner, None);
    assert_eq!(t.state.epoch, 2);
    assert_eq!(
        apply(
            &t.state,
            &agent("a1"),
            &Command::Finish { seen_epoch: 2 },
            4
        ),
        Outcome::Refused(Refusal::InvalidState)
    );
    let r = applied(apply(&t.state, &user(), &send(None), 5));
    assert_eq!(r.state.status, Status::Unanswered);
    assert!(matches!(
        r.events[0].body,
        EventBody::Status {
            cause: Cause::Reopened,
            ..
        }
    ));
    // Any agent may take it now, even one that never had it.
    let taken = applied(apply(&r.state, &agent("a3"), &send(Some(2)), 6));
    assert_eq!(taken.state.owner, Some(aid("a3")));
}

#[test]
fn disabled_chat_stops_end_user_and_takes_but_not_the_owner() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    assert_eq!(
        apply(&s, &agent("a1"), &Command::SetDisabled(true), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    let d = applied(apply(&s, &admin("boss"), &Command::SetDisabled(true), 3));
    assert!(d.state.disabled);
    assert_eq!(
        apply(&d.state, &user(), &send(None), 4),
        Outcome::Refused(Refusal::ChatDisabled)
    );
    assert_eq!(
        apply(&d.state, &agent("a2"), &send(Some(1)), 4),
        Outcome::Refused(Refusal::ChatDisabled)
    );
    assert!(matches!(
        apply(&d.state, &agent("a1"), &send(Some(1)), 4),
        Outcome::Applied(_)
    ));
    // Disabling twice changes nothing and records nothing.
    let again = applied(apply(
        &d.state,
        &admin("boss"),
        &Command::SetDisabled(true),
        5,
    ));
    assert!(again.events.is_empty());
    assert_eq!(again.state, d.state);
    let e = applied(apply(
        &d.state,
        &admin("boss"),
        &Command::SetDisabled(false),
        5,
    ));
    assert!(!e.state.disabled);
    assert!(matches!(
        apply(&e.state, &user(), &send(None), 6),
        Outcome::Applied(_)
    ));
}

// ---- property tests ----

#[derive(Debug, Clone)]
enum Step {
    UserSends,
    AgentSends {
        agent: usize,
        epoch_lag: u64,
    },
    Finish {
        actor: usize,
        epoch_lag: u64,
    },
    SetDisabled {
        actor: usize,
        on: bool,
    },
    Erase {
        actor: usize,
    },
    /// A private note.
    Note {
        actor: usize,
    },
    /// Retention's erasure, on the conversation's seq minus `lag`.
    Expire {
        actor: usize,
        lag: u64,
    },
}

/// Actors 0..3 are agents, 3 is an admin, 4 an agent without privileges.
fn actor(i: usize) -> Actor {
    match i {
        3 => admin("admin"),
        4 => Actor::Agent {
            id: aid("weak"),
            admin: false,
            privileges: Privileges::EMPTY,
            bot: false,
        },
        n => agent(&format!("a{n}")),
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::UserSends),
        5 => (0usize..5, 0u64..3).prop_map(|(agent, epoch_lag)| Step::AgentSends { agent, epoch_lag }),
        2 => (0usize..5, 0u64..2).prop_map(|(actor, epoch_lag)| Step::Finish { actor, epoch_lag }),
        1 => (0usize..5, any::<bool>()).prop_map(|(actor, on)| Step::SetDisabled { actor, on }),
        1 => (0usize..5).prop_map(|actor| Step::Erase { actor }),
        1 => (0usize..5, 0u64..2).prop_map(|(actor, lag)| Step::Expire { actor, lag }),
        2 => (0usize..6).prop_map(|actor| Step::Note { actor }),
    ]
}

fn command_of(step: &Step, state: &ConversationState) -> (Actor, Command) {
    match *step {
        Step::UserSends => (user(), send(None)),
        Step::AgentSends { agent, epoch_lag } => (
            actor(agent),
            send(Some(state.epoch.saturating_sub(epoch_lag))),
        ),
        Step::Finish {
            actor: a,
            epoch_lag,
        } => (
            actor(a),
            Command::Finish {
                seen_epoch: state.epoch.saturating_sub(epoch_lag),
            },
        ),
        Step::SetDisabled { actor: a, on } => (actor(a), Command::SetDisabled(on)),
        Step::Erase { actor: a } => (actor(a), Command::Erase),
        Step::Note { actor: a } => (
            if a == 5 { user() } else { actor(a) },
            Command::Note {
                text: "a note".into(),
                client_msg_id: None,
                mentions: vec![aid("a1")],
            },
        ),
        Step::Expire { actor: a, lag } => (
            actor(a),
            Command::Expire {
                last_seq: state.seq.saturating_sub(lag),
            },
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn invariants_hold_for_any_interleaving(steps in proptest::collection::vec(step(), 1..60)) {
        let mut state = ConversationState::default();
        // epoch -> the one owner that epoch ever had
        let mut owner_of_epoch = std::collections::HashMap::<u64, Option<AgentId>>::new();
        owner_of_epoch.insert(0, None);
        for (i, st) in steps.iter().enumerate() {
            let (who, cmd) = command_of(st, &state);
            let outcome = apply(&state, &who, &cmd, i as u64);
            match outcome {
                Outcome::Applied(t) => {
                    // seq grows by exactly one per event, events carry the new seqs
                    prop_assert_eq!(t.state.seq, state.seq + t.events.len() as u64);
                    for (k, e) in t.events.iter().enumerate() {
                        prop_assert_eq!(e.seq, state.seq + 1 + k as u64);
                    }
                    // epoch moves by at most one, exactly when the owner changes or the
                    // conversation is erased
                    let owner_changed = t.state.owner != state.owner;
                    let erased = matches!(st, Step::Erase { .. } | Step::Expire { .. })
                        && state.status != Status::New;
                    prop_assert_eq!(t.state.epoch, state.epoch + u64::from(owner_changed || erased));
                    // an owner exists exactly when active
                    prop_assert_eq!(t.state.owner.is_some(), t.state.status == Status::Active);
                    // exactly one owner per epoch
                    let prev = owner_of_epoch.entry(t.state.epoch).or_insert_with(|| t.state.owner.clone());
                    if t.state.status == Status::Active {
                        prop_assert_eq!(prev.as_ref(), t.state.owner.as_ref());
                    }
                    // seed rules
                    match (st, &who) {
                        (Step::UserSends, _) => {
                            prop_assert!(!state.disabled);
                            let expect = match state.status {
                                Status::New | Status::Finished => Status::Unanswered,
                                s => s,
                            };
                            prop_assert_eq!(t.state.status, expect);
                        }
                        (Step::AgentSends { .. }, Actor::Agent { id, .. }) => {
                            prop_assert_eq!(t.state.status, Status::Active);
                            prop_assert_eq!(t.state.owner.as_ref(), Some(id));
                            let last = t.events.last().map(|e| &e.body);
                            let is_message = matches!(last, Some(EventBody::Message { .. }));
                            prop_assert!(is_message);
                        }
                        (Step::Note { .. }, _) => {
                            // one event, and nothing else changes
                            prop_assert_eq!(t.events.len(), 1);
                            prop_assert!(t.events[0].body.is_agents_only());
                            prop_assert_eq!(&t.state, &ConversationState { seq: state.seq + 1, ..state.clone() });
                            prop_assert!(!matches!(who, Actor::EndUser(_)));
                        }
                        (Step::Finish { .. }, _) => {
                            prop_assert_eq!(t.state.status, Status::Finished);
                            prop_assert_eq!(t.state.owner.as_ref(), None);
                        }
                        (Step::Erase { .. } | Step::Expire { .. }, _) => {
                            // only the counters stay, and no event is recorded
                            prop_assert!(t.events.is_empty());
                            // retention erases only what stayed at the seq it saw
                            if let Step::Expire { lag, .. } = st
                                && state.status != Status::New
                            {
                                prop_assert_eq!(*lag, 0);
                            }
                            if state.status != Status::New {
                                prop_assert_eq!(&t.state, &ConversationState {
                                    epoch: state.epoch + 1,
                                    seq: state.seq,
                                    ..ConversationState::default()
                                });
                            } else {
                                prop_assert_eq!(&t.state, &state);
                            }
                        }
                        _ => {}
                    }
                    // every status event carries the snapshot after it
                    if let Some(Event { body: EventBody::Status { status, owner, epoch, disabled, .. }, .. }) =
                        t.events.iter().rev().find(|e| matches!(e.body, EventBody::Status { .. }))
                        && matches!(st, Step::Finish { .. } | Step::SetDisabled { .. })
                    {
                        prop_assert_eq!(*status, t.state.status);
                        prop_assert_eq!(owner, &t.state.owner);
                        prop_assert_eq!(*epoch, t.state.epoch);
                        prop_assert_eq!(*disabled, t.state.disabled);
                    }
                    state = t.state;
                }
                Outcome::Conflict { owner, epoch } => {
                    // a lost race names the current owner and epoch, and changes nothing
                    prop_assert_eq!(owner, state.owner.clone());
                    prop_assert_eq!(epoch, state.epoch);
                    let lagged = matches!(st, Step::AgentSends { epoch_lag: 1.., .. } | Step::Finish { epoch_lag: 1.., .. });
                    prop_assert!(lagged && state.epoch > 0);
                }
                Outcome::Refused(r) => {
                    match r {
                        Refusal::ChatDisabled => prop_assert!(state.disabled),
                        Refusal::Forbidden => {
                            prop_assert!(!matches!(st, Step::UserSends));
                            if let Step::Note { .. } = st {
                                prop_assert!(matches!(who, Actor::EndUser(_)));
                            }
                            if let Step::Erase { .. } | Step::Expire { .. } = st {
                                prop_assert!(!who.has(Privilege::DataErase));
                            }
                        }
                        Refusal::InvalidState => match st {
                            Step::Note { .. } => prop_assert_eq!(state.status, Status::New),
                            Step::Expire { lag, .. } => {
                                prop_assert!(*lag > 0 && state.status != Status::New);
                            }
                            _ => prop_assert!(matches!(state.status, Status::New | Status::Finished)),
                        },
                        Refusal::MissingEpoch => prop_assert!(false, "epochs are always given here"),
                    }
                }
            }
        }
    }

    #[test]
    fn a_race_from_the_same_epoch_has_exactly_one_winner(
        n in 2usize..5, order in proptest::collection::vec(0usize..3, 2..5), start in 0usize..3,
    ) {
        // Bring the conversation to unanswered, finished or active(a0), then let several
        // agents send with the epoch they all saw: the first applied wins, every later one
        // conflicts and names the winner.
        let mut state = applied(apply(&ConversationState::default(), &user(), &send(None), 0)).state;
        if start >= 1 {
            state = applied(apply(&state, &agent("a0"), &send(Some(0)), 1)).state;
        }
        if start == 2 {
            state = applied(apply(&state, &agent("a0"), &Command::Finish { seen_epoch: 1 }, 2)).state;
        }
        let seen = state.epoch;
        let mut winners = Vec::new();
        for (k, a) in order.iter().take(n).enumerate() {
            let who = agent(&format!("r{a}"));
            match apply(&state, &who, &send(Some(seen)), 10 + k as u64) {
                Outcome::Applied(t) => { winners.push(t.state.owner.clone()); state = t.state; }
                Outcome::Conflict { owner, epoch } => {
                    prop_assert_eq!(owner, state.owner.clone());
                    prop_assert_eq!(epoch, state.epoch);
                }
                Outcome::Refused(r) => prop_assert!(false, "unexpected refusal {:?}", r),
            }
        }
        // The same agent may send again as owner; only distinct owners count as winners.
        winners.dedup();
        prop_assert_eq!(winners.len(), 1);
    }
}

#[test]
fn engagements_need_the_privilege_and_tenant_switch_disables_everyone() {
    let card = MessageContent::Engagement {
        engagement: EngagementCard {
            id: "c1".into(),
            engagement_type: crate::engagement::EngagementType::Coupon,
            name: "10%".into(),
            description: String::new(),
        },
    };
    let send_card = |epoch| Command::Send {
        content: card.clone(),
        client_msg_id: None,
        seen_epoch: epoch,
    };
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    assert_eq!(
        apply(&s, &user(), &send_card(None), 2),
        Outcome::Refused(Refusal::Forbidden),
        "end users cannot send engagements"
    );
    let no_engagements = Actor::Agent {
        id: aid("plain"),
        admin: false,
        privileges: Privileges::of(&[crate::roles::Privilege::ChatTake]),
        bot: false,
    };
    assert_eq!(
        apply(&s, &no_engagements, &send_card(Some(0)), 2),
        Outcome::Refused(Refusal::Forbidden)
    );
    let t = applied(apply(&s, &agent("a1"), &send_card(Some(0)), 2));
    assert_eq!(
        t.state.owner,
        Some(aid("a1")),
        "an engagement takes like any message"
    );

    let off = Context {
        tenant_chat_disabled: true,
        ..Context::default()
    };
    assert_eq!(
        apply_in(&off, &t.state, &user(), &send(None), 3),
        Outcome::Refused(Refusal::ChatDisabled)
    );
    assert_eq!(
        apply_in(&off, &t.state, &agent("a2"), &send(Some(1)), 3),
        Outcome::Refused(Refusal::ChatDisabled)
    );
    assert!(matches!(
        apply_in(&off, &t.state, &agent("a1"), &send(Some(1)), 3),
        Outcome::Applied(_)
    ));
}

#[test]
fn a_verdict_takes_the_next_seq_and_changes_nothing_else() {
    let verdict = Command::RecordVerdict {
        attachment: crate::ids::AttachmentId::new("f1").unwrap(),
        status: AttachmentStatus::Blocked,
    };
    // Nothing on a conversation without events.
    let t = applied(apply(&ConversationState::default(), &user(), &verdict, 50));
    assert!(t.events.is_empty());
    assert_eq!(t.state, ConversationState::default());
    let states = [
        ConversationState {
            status: Status::Unanswered,
            owner: None,
            epoch: 0,
            seq: 1,
            disabled: false,
            survey: None,
        },
        ConversationState {
            status: Status::Active,
            owner: Some(aid("alice")),
            epoch: 3,
            seq: 9,
            disabled: true,
            survey: None,
        },
        ConversationState {
            status: Status::Finished,
            owner: None,
            epoch: 4,
            seq: 12,
            disabled: false,
            survey: None,
        },
    ];
    for state in states {
        for actor in [user(), agent("bob"), admin("carol")] {
            let context = Context {
                tenant_chat_disabled: true,
                ..Context::default()
            };
            let t = applied(apply_in(&context, &state, &actor, &verdict, 50));
            assert_eq!(
                t.state,
                ConversationState {
                    seq: state.seq + 1,
                    ..state.clone()
                }
            );
            assert_eq!(t.events.len(), 1);
            assert_eq!(t.events[0].seq, state.seq + 1);
            assert!(matches!(
                &t.events[0].body,
                EventBody::AttachmentChecked { status: AttachmentStatus::Blocked, attachment } if attachment.as_str() == "f1"
            ));
        }
    }
}

fn transfer(to: &str, seen_epoch: u64) -> Command {
    Command::Transfer {
        to: aid(to),
        seen_epoch,
    }
}

#[test]
fn the_owner_or_an_admin_transfers_and_the_epoch_moves() {
    let open = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    // Unanswered: only an admin may assign it.
    assert_eq!(
        apply(&open, &agent("alice"), &transfer("bob", 0), 2),
        Outcome::Refused(Refusal::Forbidden)
    );
    let assigned = applied(apply(&open, &admin("carol"), &transfer("bob", 0), 2));
    assert_eq!(assigned.state.status, Status::Active);
    assert_eq!(assigned.state.owner, Some(aid("bob")));
    assert_eq!(assigned.state.epoch, 1);
    match &assigned.events[0].body {
        EventBody::Status {
            cause: Cause::Transferred,
            previous_owner: None,
            by,
            ..
        } => assert_eq!(by.id, "carol"),
        other => panic!("unexpected {other:?}"),
    }
    // The owner hands it on; a stale epoch loses; someone else may not; not to itself.
    let s = assigned.state;
    assert!(matches!(
        apply(&s, &agent("bob"), &transfer("dan", 0), 3),
        Outcome::Conflict { epoch: 1, .. }
    ));
    assert_eq!(
        apply(&s, &agent("alice"), &transfer("dan", 1), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply(&s, &admin("carol"), &transfer("bob", 1), 3),
        Outcome::Refused(Refusal::InvalidState)
    );
    let handed = applied(apply(&s, &agent("bob"), &transfer("dan", 1), 3));
    assert_eq!(handed.state.owner, Some(aid("dan")));
    assert_eq!(handed.state.epoch, 2);
    // The old owner's in-flight message carries the old epoch: refused.
    assert!(matches!(
        apply(&handed.state, &agent("bob"), &send(Some(1)), 4),
        Outcome::Conflict { .. }
    ));
    // Not on a finished or new conversation, never by the end user.
    let finished = applied(apply(
        &handed.state,
        &agent("dan"),
        &Command::Finish { seen_epoch: 2 },
        5,
    ))
    .state;
    assert_eq!(
        apply(&finished, &admin("carol"), &transfer("bob", 3), 6),
        Outcome::Refused(Refusal::InvalidState)
    );
    assert_eq!(
        apply(&open, &user(), &transfer("bob", 0), 6),
        Outcome::Refused(Refusal::Forbidden)
    );
}

#[test]
fn erasure_keeps_only_the_counters_and_fences_every_earlier_view() {
    let mut state = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    state = applied(apply(&state, &agent("a1"), &send(Some(0)), 2)).state;
    assert_eq!(
        (state.status, state.epoch, state.seq),
        (Status::Active, 1, 4)
    );
    // Agents, and end users, cannot erase; an admin with `data.erase` can.
    assert_eq!(
        apply(&state, &agent("a1"), &Command::Erase, 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply(&state, &user(), &Command::Erase, 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    let t = applied(apply(&state, &admin("boss"), &Command::Erase, 3));
    assert!(t.events.is_empty());
    assert_eq!(
        t.state,
        ConversationState {
            status: Status::New,
            owner: None,
            epoch: 2,
            seq: 4,
            disabled: false,
            survey: None,
        }
    );
    // The old owner's view is stale: its next message loses.
    assert_eq!(
        apply(&t.state, &agent("a1"), &send(Some(1)), 4),
        Outcome::Conflict {
            owner: None,
            epoch: 2
        }
    );
    // The end user writing again opens it, with the next seq (none is given twice).
    let reopened = applied(apply(&t.state, &user(), &send(None), 5));
    assert_eq!(reopened.state.status, Status::Unanswered);
    assert_eq!(reopened.events[0].seq, 5);
    // Erased already, or no event yet: nothing to erase, nothing changes.
    let again = applied(apply(&t.state, &admin("boss"), &Command::Erase, 6));
    assert_eq!(again.state, t.state);
    let none = applied(apply(
        &ConversationState::default(),
        &admin("boss"),
        &Command::Erase,
        6,
    ));
    assert_eq!(none.state, ConversationState::default());
}

#[test]
fn retention_erases_only_a_conversation_still_at_the_seq_it_saw() {
    let state = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    assert_eq!(state.seq, 2);
    let expire = |last_seq| Command::Expire { last_seq };
    // The server's sweep acts with `data.erase`; nobody else may.
    assert_eq!(
        apply(&state, &agent("a1"), &expire(2), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply(&state, &user(), &expire(2), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    // A message after the sweep looked: alive again, kept.
    assert_eq!(
        apply(&state, &admin("sweep"), &expire(1), 3),
        Outcome::Refused(Refusal::InvalidState)
    );
    let t = applied(apply(&state, &admin("sweep"), &expire(2), 3));
    assert!(t.events.is_empty());
    assert_eq!(
        (t.state.status, t.state.seq, t.state.epoch),
        (Status::New, 2, state.epoch + 1)
    );
    // Expired already: nothing to do, whatever seq is named.
    assert_eq!(
        applied(apply(&t.state, &admin("sweep"), &expire(9), 4)).state,
        t.state
    );
}

#[test]
fn notes_take_a_seq_and_change_nothing_else() {
    let note = |text: &str| Command::Note {
        text: text.into(),
        client_msg_id: Some("n1".into()),
        mentions: vec![aid("a1")],
    };
    // No thread yet: nothing to note on.
    assert_eq!(
        apply(&ConversationState::default(), &agent("a1"), &note("x"), 1),
        Outcome::Refused(Refusal::InvalidState)
    );
    let state = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    // End users cannot write notes.
    assert_eq!(
        apply(&state, &user(), &note("x"), 2),
        Outcome::Refused(Refusal::Forbidden)
    );
    // Any agent may, on an unanswered conversation it does not own: nothing is taken.
    let t = applied(apply(&state, &agent("a2"), &note("VIP, be gentle"), 2));
    assert_eq!(
        t.state,
        ConversationState {
            seq: state.seq + 1,
            ..state.clone()
        }
    );
    assert_eq!(
        t.events[0].body,
        EventBody::Note {
            author: Author::of(&agent("a2")),
            client_msg_id: Some("n1".into()),
            text: "VIP, be gentle".into(),
            mentions: vec![aid("a1")],
        }
    );
    assert!(t.events[0].body.is_agents_only());
    // Also while chat is disabled, and on a finished conversation.
    let disabled = ConversationState {
        disabled: true,
        status: Status::Finished,
        ..state
    };
    assert!(matches!(
        apply(&disabled, &agent("a1"), &note("follow up"), 3),
        Outcome::Applied(_)
    ));
}

/// The end user's message at seq 2 (after `opened`), and the state after it.
fn with_message() -> (ConversationState, Event) {
    let t = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1_000,
    ));
    (t.state, t.events[1].clone())
}

fn amend_in(window_ms: u64, target: Option<Event>) -> Context {
    Context {
        edit_window_ms: window_ms,
        target,
        ..Context::default()
    }
}

#[test]
fn only_the_author_edits_within_the_window_and_only_admins_redact() {
    let (state, message) = with_message();
    let edit = Command::Amend {
        target: message.seq,
        change: Change::Edit {
            text: "fixed".into(),
        },
    };
    let cx = amend_in(60_000, Some(message.clone()));
    let t = applied(apply_in(&cx, &state, &user(), &edit, 2_000));
    assert_eq!(t.state.seq, state.seq + 1);
    assert_eq!(t.state.owner, state.owner, "an amendment takes nothing");
    assert_eq!(
        apply_in(&cx, &state, &agent("bob"), &edit, 2_000),
        Outcome::Refused(Refusal::Forbidden)
    );
    // Past the window, or with none.
    assert_eq!(
        apply_in(&cx, &state, &user(), &edit, 1_000 + 60_001),
        Outcome::Refused(Refusal::InvalidState)
    );
    assert_eq!(
        apply_in(
            &amend_in(0, Some(message.clone())),
            &state,
            &user(),
            &edit,
            1_001
        ),
        Outcome::Refused(Refusal::InvalidState)
    );
    // No such message.
    assert_eq!(
        apply_in(&amend_in(60_000, None), &state, &user(), &edit, 2_000),
        Outcome::Refused(Refusal::InvalidState)
    );
    let redact = Command::Amend {
        target: message.seq,
        change: Change::Redact {
            reason: "card".into(),
        },
    };
    assert_eq!(
        apply_in(&cx, &state, &agent("bob"), &redact, 2_000),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply_in(&cx, &state, &user(), &redact, 2_000),
        Outcome::Refused(Refusal::Forbidden)
    );
    // Any time for an admin, and then it stays removed.
    let r = applied(apply_in(&cx, &state, &admin("carol"), &redact, 10_000_000));
    let mut folded = message.clone();
    assert!(fold(&mut folded, &r.events[0]));
    assert_eq!(
        folded.body,
        EventBody::Message {
            author: Author::of(&user()),
            client_msg_id: None,
            content: MessageContent::Removed {},
        }
    );
    let after = amend_in(60_000, Some(folded.clone()));
    assert_eq!(
        apply_in(&after, &r.state, &user(), &edit, 2_000),
        Outcome::Refused(Refusal::InvalidState)
    );
    // Folding is idempotent and ordered: an older amendment changes nothing.
    let e = applied(apply_in(&cx, &state, &user(), &edit, 2_000));
    assert!(!fold(&mut folded, &e.events[0]));
}

fn answer(rating: u8) -> Command {
    Command::AnswerSurvey {
        rating,
        comment: Some("quick".into()),
        reward: None,
    }
}

#[test]
fn a_finish_opens_one_survey_that_only_the_end_user_answers_once() {
    let with_survey = Context {
        survey: Some("How did we do?".into()),
        ..Context::default()
    };
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    // No survey is open before a finish.
    assert_eq!(
        apply(&s, &user(), &answer(5), 3),
        Outcome::Refused(Refusal::InvalidState)
    );
    // Without the tenant's survey a finish records none.
    let plain = applied(apply(
        &s,
        &agent("a1"),
        &Command::Finish { seen_epoch: 1 },
        3,
    ));
    assert_eq!((plain.events.len(), plain.state.survey), (1, None));
    let finished = applied(apply_in(
        &with_survey,
        &s,
        &agent("a1"),
        &Command::Finish { seen_epoch: 1 },
        3,
    ));
    assert_eq!(finished.events.len(), 2);
    assert_eq!(
        finished.events[1].body,
        EventBody::Survey {
            prompt: "How did we do?".into()
        }
    );
    let survey_seq = finished.events[1].seq;
    assert_eq!(finished.state.survey, Some(survey_seq));
    // Agents cannot answer it.
    assert_eq!(
        apply(&finished.state, &agent("a1"), &answer(5), 4),
        Outcome::Refused(Refusal::Forbidden)
    );
    let answered = applied(apply(&finished.state, &user(), &answer(4), 4));
    assert_eq!(answered.state.survey, None);
    assert_eq!(answered.state.status, Status::Finished);
    assert!(matches!(
        &answered.events[0].body,
        EventBody::SurveyAnswered { survey, rating: 4, .. } if *survey == survey_seq
    ));
    // One answer per cycle.
    assert_eq!(
        apply(&answered.state, &user(), &answer(1), 5),
        Outcome::Refused(Refusal::InvalidState)
    );
    // Writing again starts a new cycle: the unanswered survey of the last one closes.
    let reopened = applied(apply(&finished.state, &user(), &send(None), 5));
    assert_eq!(reopened.state.survey, None);
    assert_eq!(
        apply(&reopened.state, &user(), &answer(3), 6),
        Outcome::Refused(Refusal::InvalidState)
    );
    // An erasure closes it too.
    let erased = applied(apply(&finished.state, &admin("boss"), &Command::Erase, 5));
    assert_eq!(erased.state.survey, None);
}

#[test]
fn a_release_gives_an_untouched_conversation_back_and_fences_its_owner() {
    let s = applied(apply(
        &ConversationState::default(),
        &user(),
        &send(None),
        1,
    ))
    .state;
    let s = applied(apply(&s, &agent("a1"), &send(Some(0)), 2)).state;
    let release = |seen_epoch, last_seq| Command::Release {
        seen_epoch,
        last_seq,
        reason: ReleaseReason::NoReply,
    };
    // Only admins (the server's stall policy acts as one).
    assert_eq!(
        apply(&s, &agent("a1"), &release(1, s.seq), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert_eq!(
        apply(&s, &user(), &release(1, s.seq), 3),
        Outcome::Refused(Refusal::Forbidden)
    );
    // Decided on what the releaser saw: the owner's reply since keeps the owner.
    let replied = applied(apply(&s, &agent("a1"), &send(Some(1)), 3)).state;
    assert_eq!(
        apply(&replied, &admin("sweep"), &release(1, s.seq), 4),
        Outcome::Refused(Refusal::InvalidState)
    );
    assert!(matches!(
        apply(&s, &admin("sweep"), &release(0, s.seq), 4),
        Outcome::Conflict { .. }
    ));
    let released = applied(apply(&s, &admin("sweep"), &release(1, s.seq), 4));
    assert_eq!(
        (
            released.state.status,
            released.state.owner.clone(),
            released.state.epoch
        ),
        (Status::Unanswered, None, 2)
    );
    assert!(matches!(
        &released.events[0].body,
        EventBody::Status {
            cause: Cause::Released,
            reason: Some(ReleaseReason::NoReply),
            previous_owner: Some(p),
            ..
        } if p.as_str() == "a1"
    ));
    // The previous owner's send still carrying the old epoch loses.
    assert!(matches!(
        apply(&released.state, &agent("a1"), &send(Some(1)), 5),
        Outcome::Conflict {
            owner: None,
            epoch: 2
        }
    ));
    // Nothing to release unless active.
    assert_eq!(
        apply(
            &released.state,
            &admin("sweep"),
            &release(2, released.state.seq),
            5
        ),
        Outcome::Refused(Refusal::InvalidState)
    );
}

fn bot() -> Actor {
    Actor::Agent {
        id: AgentId::new("faq-bot").unwrap(),
        admin: false,
        privileges: Role::Bot.default_privileges(),
        bot: true,
    }
}

fn with_bot() -> Context {
    Context {
        bot: Some(aid("faq-bot")),
        ..Context::default()
    }
}

fn handoff(epoch: u64) -> Command {
    Command::Handoff {
        seen_epoch: epoch,
        summary: "wants a refund".into(),
        fields: vec![HandoffField {
            name: "order".into(),
            value: "A-1042".into(),
        }],
    }
}

#[test]
fn with_a_bot_the_end_users_message_is_the_bots_to_answer() {
    let opened = applied(apply_in(
        &with_bot(),
        &ConversationState::default(),
        &user(),
        &send(None),
        10,
    ));
    assert_eq!(opened.state.status, Status::Active);
    assert_eq!(opened.state.owner, Some(aid("faq-bot")));
    assert_eq!(opened.state.epoch, 1);
    assert!(matches!(
        opened.events[0].body,
        EventBody::Status {
            cause: Cause::Opened,
            ..
        }
    ));
    // The bot answers on its epoch.
    let answered = applied(apply(&opened.state, &bot(), &send(Some(1)), 11));
    assert_eq!(answered.state.owner, Some(aid("faq-bot")));
    // A human takes it over: the bot's reply in flight, on the old epoch, loses.
    let taken = applied(apply(&answered.state, &agent("alice"), &send(Some(1)), 12));
    assert_eq!(taken.state.owner, Some(aid("alice")));
    assert_eq!(taken.state.epoch, 2);
    assert!(matches!(
        apply(&taken.state, &bot(), &send(Some(1)), 13),
        Outcome::Conflict { epoch: 2, .. }
    ));
    // Even on the new epoch a bot never takes.
    assert_eq!(
        apply(&taken.state, &bot(), &send(Some(2)), 13),
        Outcome::Refused(Refusal::Forbidden)
    );
    assert!(matches!(
        apply(&taken.state, &bot(), &handoff(1), 13),
        Outcome::Conflict { .. }
    ));
    assert_eq!(
        apply(&taken.state, &bot(), &handoff(2), 13),
        Outcome::Refused(Refusal::InvalidState)
    );
    // Finished and reopened: the bot's again.
    let finished = applied(apply(
        &taken.state,
        &agent("alice"),
        &Command::Finish { seen_epoch: 2 },
        14,
    ));
    let reopened = applied(apply_in(
        &with_bot(),
        &finished.state,
        &user(),
        &send(None),
        15,
    ));
    assert_eq!(reopened.state.owner, Some(aid("faq-bot")));
    assert!(matches!(
        reopened.events[0].body,
        EventBody::Status {
            cause: Cause::Reopened,
            ..
        }
    ));
}

#[test]
fn the_bot_hands_off_to_the_queue_with_a_summary_for_agents_only() {
    let opened = applied(apply_in(
        &with_bot(),
        &ConversationState::default(),
        &user(),
        &send(None),
        10,
    ));
    let t = applied(apply(&opened.state, &bot(), &handoff(1), 11));
    assert_eq!(t.state.status, Status::Unanswered);
    assert_eq!(t.state.owner, None);
    assert_eq!(t.state.epoch, 2);
    assert_eq!(t.events.len(), 2);
    match &t.events[0].body {
        EventBody::Status {
            cause: Cause::HandedOff,
            previous_owner,
            by,
            ..
        } => {
            assert_eq!(previous_owner.as_ref(), Some(&aid("faq-bot")));
            assert_eq!(by.role, Role::Bot);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(t.events[1].body.is_agents_only());
    assert!(matches!(&t.events[1].body, EventBody::Handoff { fields, .. } if fields.len() == 1));
    // The end user writing again does not give it back to the bot: it waits for humans.
    let more = applied(apply_in(&with_bot(), &t.state, &user(), &send(None), 12));
    assert_eq!(more.state.status, Status::Unanswered);
    // Only a bot hands off; a bot does not run the team's controls.
    for who in [user(), agent("alice"), admin("boss")] {
        assert_eq!(
            apply(&opened.state, &who, &handoff(1), 11),
            Outcome::Refused(Refusal::Forbidden)
        );
    }
    for command in [
        Command::Transfer {
            to: aid("alice"),
            seen_epoch: 1,
        },
        Command::SetDisabled(true),
        Command::Erase,
        Command::Release {
            seen_epoch: 1,
            last_seq: 2,
            reason: ReleaseReason::Admin,
        },
    ] {
        assert_eq!(
            apply(&opened.state, &bot(), &command, 11),
            Outcome::Refused(Refusal::Forbidden),
            "{command:?}"
        );
    }
    // It may finish what it owns (chat.finish).
    let done = applied(apply(
        &opened.state,
        &bot(),
        &Command::Finish { seen_epoch: 1 },
        11,
    ));
    assert_eq!(done.state.status, Status::Finished);
}
