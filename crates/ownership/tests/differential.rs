//! Differential property test: random command sequences from several agents, admins and
//! the end user go through the pure state machine and through the Redis script; outcomes,
//! states and events (read back from the history stream) must be identical, and so must
//! what the step owes beyond its events, against `chathub_ownership::frames` (the
//! specification the memory twin runs): the tenant's queue entry, the previous owner's
//! `ownership_lost` notice and the end user's "received" engagement record.

#![allow(clippy::unwrap_used)]

use chathub_domain::engagement::EngagementType;
use chathub_domain::{
    Actor, AgentId, AttachmentCard, AttachmentId, AttachmentStatus, Command, Context,
    ConversationId, ConversationState, EndUserId, EngagementCard, MessageContent, Outcome,
    Privileges, Role, TenantId, apply_in,
};
use chathub_ownership::frames;
use chathub_ownership::{ApplyRequest, Decision, Ownership, RedisOwnership, RedisOwnershipConfig};
use chathub_protocol::{Codec, ServerFrame};
use chathub_store::{ConversationStore, HistoryRange, QueueEntry, RedisKeys, RedisStore};
use chathub_testkit::RedisServer;
use futures::StreamExt;
use proptest::prelude::*;
use redis::AsyncCommands;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
enum Step {
    /// The end user writes, with the tenant's bot answering first or not.
    UserSends {
        engagement: bool,
        bot: bool,
    },
    /// A handoff on the epoch `epoch_lag` behind, by an actor, the end user (6) or the
    /// bot (7), with collected fields or not.
    Handoff {
        actor: usize,
        epoch_lag: u64,
        fields: bool,
    },
    AgentSends {
        actor: usize,
        epoch_lag: u64,
        with_epoch: bool,
        engagement: bool,
    },
    /// A finish, with the tenant's survey on or not.
    Finish {
        actor: usize,
        epoch_lag: u64,
        survey: bool,
    },
    /// An answer to the survey, by an actor or the end user (6), with a comment and a
    /// reward or not.
    AnswerSurvey {
        actor: usize,
        rating: u8,
        comment: bool,
        reward: bool,
    },
    SetDisabled {
        actor: usize,
        on: bool,
    },
    /// A release back to the queue on the epoch and seq `epoch_lag` / `seq_lag` behind,
    /// by an actor or the end user (6): only the admin (3) may.
    Release {
        actor: usize,
        epoch_lag: u64,
        seq_lag: u64,
        reason: u8,
    },
    /// The business hours' automatic reply on the seq `seq_lag` behind, by an actor or
    /// the end user (6): only the admin (3) may, only while unanswered; with a time
    /// back or not.
    AutoReply {
        actor: usize,
        seq_lag: u64,
        back: bool,
    },
    /// A transfer to agent `to` (an actor index, or 6: an agent outside the cast), by an
    /// actor or the end user (6).
    Transfer {
        actor: usize,
        to: usize,
        epoch_lag: u64,
    },
    /// The scanner's verdict on an attachment, issued for any actor.
    Verdict {
        actor: usize,
        blocked: bool,
    },
    /// An erasure, by an actor or the end user (6): only the admin (3) may.
    Erase {
        actor: usize,
    },
    /// A private note, by an actor or the end user (6), with an idempotency key or not.
    Note {
        actor: usize,
        keyed: bool,
    },
    /// Retention's erasure on the seq `lag` behind the conversation's, by an actor or
    /// the end user (6).
    Expire {
        actor: usize,
        lag: u64,
    },
    /// An edit (0), unsend (1) or redaction (2) of the event `back` before the latest,
    /// by an actor or the end user (6), within an edit window of `window` ms.
    Amend {
        actor: usize,
        back: u64,
        kind: u8,
        window: u64,
    },
}

/// Actors 0..3 agents, 3 an admin, 4 an agent without privileges, 5 an agent who may
/// only finish, 7 the tenant's bot (6 is the end user where a step allows one).
fn actor(i: usize) -> Actor {
    let agent = |name: &str, admin, privileges| Actor::Agent {
        id: AgentId::new(name).unwrap(),
        admin,
        privileges,
        bot: false,
    };
    match i {
        7 => Actor::Agent {
            id: bot_id(),
            admin: false,
            privileges: Role::Bot.default_privileges(),
            bot: true,
        },
        3 => agent("boss", true, Role::Admin.default_privileges()),
        4 => agent("weak", false, Privileges::EMPTY),
        5 => agent(
            "closer",
            false,
            Privileges::of(&[chathub_domain::Privilege::ChatFinish]),
        ),
        n => agent(&format!("a{n}"), false, Role::Agent.default_privileges()),
    }
}

/// The tenant's bot.
fn bot_id() -> AgentId {
    AgentId::new("faq-bot").unwrap()
}

/// An agent, admin or the bot (never the end user).
fn staff() -> impl Strategy<Value = usize> {
    prop_oneof![5 => 0usize..6, 2 => Just(7usize)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (prop::bool::weighted(0.05), prop::bool::weighted(0.4))
            .prop_map(|(engagement, bot)| Step::UserSends { engagement, bot }),
        2 => (prop_oneof![4 => Just(7usize), 1 => 0usize..7], 0u64..2, any::<bool>())
            .prop_map(|(actor, epoch_lag, fields)| Step::Handoff { actor, epoch_lag, fields }),
        5 => (staff(), 0u64..3, prop::bool::weighted(0.95), prop::bool::weighted(0.2))
            .prop_map(|(actor, epoch_lag, with_epoch, engagement)| Step::AgentSends { actor, epoch_lag, with_epoch, engagement }),
        2 => (staff(), 0u64..2, prop::bool::weighted(0.7))
            .prop_map(|(actor, epoch_lag, survey)| Step::Finish { actor, epoch_lag, survey }),
        2 => (prop_oneof![3 => Just(6usize), 1 => 0usize..6], 1u8..6, any::<bool>(), any::<bool>())
            .prop_map(|(actor, rating, comment, reward)| Step::AnswerSurvey { actor, rating, comment, reward }),
        1 => (staff(), any::<bool>()).prop_map(|(actor, on)| Step::SetDisabled { actor, on }),
        2 => (prop_oneof![3 => Just(3usize), 1 => 0usize..8], 0u64..2, prop_oneof![3 => Just(0u64), 1 => 1u64..3], 0u8..3)
            .prop_map(|(actor, epoch_lag, seq_lag, reason)| Step::Release { actor, epoch_lag, seq_lag, reason }),
        2 => (prop_oneof![3 => Just(3usize), 1 => 0usize..8], prop_oneof![3 => Just(0u64), 1 => 1u64..3], any::<bool>())
            .prop_map(|(actor, seq_lag, back)| Step::AutoReply { actor, seq_lag, back }),
        1 => (0usize..8, any::<bool>()).prop_map(|(actor, blocked)| Step::Verdict { actor, blocked }),
        2 => (0usize..8, 0usize..7, 0u64..2)
            .prop_map(|(actor, to, epoch_lag)| Step::Transfer { actor, to, epoch_lag }),
        1 => (0usize..8).prop_map(|actor| Step::Erase { actor }),
        1 => (0usize..8, 0u64..2).prop_map(|(actor, lag)| Step::Expire { actor, lag }),
        2 => (0usize..8, any::<bool>()).prop_map(|(actor, keyed)| Step::Note { actor, keyed }),
        4 => (0usize..8, 0u64..6, 0u8..3, prop::sample::select(vec![0u64, 4, 60_000]))
            .prop_map(|(actor, back, kind, window)| Step::Amend { actor, back, kind, window }),
    ]
}

fn command(step: &Step, state: &ConversationState, user: &EndUserId, n: usize) -> (Actor, Command) {
    let content = |who: &str, engagement: bool| {
        if engagement {
            MessageContent::Engagement {
                engagement: EngagementCard {
                    id: format!("c{n}"),
                    engagement_type: EngagementType::Coupon,
                    name: format!("{who} coupon"),
                    description: "10% off".into(),
                },
            }
        } else if n.is_multiple_of(5) {
            // Attachments follow the rules of text, for end users and agents alike.
            MessageContent::Attachment {
                attachment: AttachmentCard {
                    id: AttachmentId::new(format!("f{n}")).unwrap_or_else(|_| unreachable!()),
                    name: format!("{who} receipt #{n}.jpg"),
                    content_type: "image/jpeg".into(),
                    size: 1000 + n as u64,
                    width: Some(640),
                    height: Some(480),
                    thumbnail: true,
                    status: if n.is_multiple_of(2) {
                        AttachmentStatus::Pending
                    } else {
                        AttachmentStatus::Clean
                    },
                },
            }
        } else {
            MessageContent::Text {
                text: format!("{who} #{n} ✓"),
            }
        }
    };
    match *step {
        Step::Handoff {
            actor: a,
            epoch_lag,
            fields,
        } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Handoff {
                seen_epoch: state.epoch.saturating_sub(epoch_lag),
                summary: format!("wants a refund #{n} ✓"),
                fields: if fields {
                    vec![
                        chathub_domain::HandoffField {
                            name: "order".into(),
                            value: format!("A-{n}"),
                        },
                        chathub_domain::HandoffField {
                            name: "reason".into(),
                            value: "damaged \"box\"".into(),
                        },
                    ]
                } else {
                    Vec::new()
                },
            },
        ),
        Step::UserSends { engagement, .. } => (
            Actor::EndUser(user.clone()),
            Command::Send {
                content: content("user", engagement),
                client_msg_id: None,
                seen_epoch: None,
            },
        ),
        Step::AgentSends {
            actor: a,
            epoch_lag,
            with_epoch,
            engagement,
        } => (
            actor(a),
            Command::Send {
                content: content("agent", engagement),
                client_msg_id: None,
                seen_epoch: with_epoch.then(|| state.epoch.saturating_sub(epoch_lag)),
            },
        ),
        Step::Finish {
            actor: a,
            epoch_lag,
            ..
        } => (
            actor(a),
            Command::Finish {
                seen_epoch: state.epoch.saturating_sub(epoch_lag),
            },
        ),
        Step::AnswerSurvey {
            actor: a,
            rating,
            comment,
            reward,
        } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::AnswerSurvey {
                rating,
                comment: comment.then(|| format!("comment #{n} ★ \"quoted\"")),
                reward: reward.then(|| EngagementCard {
                    id: format!("thanks{n}"),
                    engagement_type: EngagementType::Points,
                    name: "50 points".into(),
                    description: "for your answer".into(),
                }),
            },
        ),
        Step::SetDisabled { actor: a, on } => (actor(a), Command::SetDisabled(on)),
        Step::Release {
            actor: a,
            epoch_lag,
            seq_lag,
            reason,
        } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Release {
                seen_epoch: state.epoch.saturating_sub(epoch_lag),
                last_seq: state.seq.saturating_sub(seq_lag),
                reason: match reason {
                    0 => chathub_domain::ReleaseReason::OwnerAbsent,
                    1 => chathub_domain::ReleaseReason::NoReply,
                    _ => chathub_domain::ReleaseReason::Admin,
                },
            },
        ),
        Step::AutoReply {
            actor: a,
            seq_lag,
            back,
        } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::AutoReply {
                last_seq: state.seq.saturating_sub(seq_lag),
                text: "We are back at 09:00 (Europe/Lisbon), in about 3 h.".into(),
                back_at: back.then_some(1_764_147_600_000),
            },
        ),
        Step::Transfer {
            actor: a,
            to,
            epoch_lag,
        } => {
            let to = match to {
                6 => AgentId::new("newcomer").unwrap(),
                n => match actor(n) {
                    Actor::Agent { id, .. } => id,
                    Actor::EndUser(_) => unreachable!("actors 0..6 are agents"),
                },
            };
            let by = if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            };
            let seen_epoch = state.epoch.saturating_sub(epoch_lag);
            (by, Command::Transfer { to, seen_epoch })
        }
        Step::Verdict { actor: a, blocked } => (
            // 6: the end user (the uploader of their own files).
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::RecordVerdict {
                attachment: AttachmentId::new(format!("f{n}")).unwrap_or_else(|_| unreachable!()),
                status: if blocked {
                    AttachmentStatus::Blocked
                } else {
                    AttachmentStatus::Clean
                },
            },
        ),
        Step::Erase { actor: a } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Erase,
        ),
        Step::Note { actor: a, keyed } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Note {
                text: format!("note #{n} ✎"),
                client_msg_id: keyed.then(|| format!("note-{n}")),
                // Some mention nobody, some one agent, some two.
                mentions: (0..n % 3)
                    .map(|i| AgentId::new(format!("a{i}")).unwrap())
                    .collect(),
            },
        ),
        Step::Amend {
            actor: a,
            back,
            kind,
            ..
        } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Amend {
                target: state.seq.saturating_sub(back),
                change: match kind {
                    0 => chathub_domain::Change::Edit {
                        text: format!("edited #{n} ✎"),
                    },
                    1 => chathub_domain::Change::Unsend,
                    _ => chathub_domain::Change::Redact {
                        reason: format!("reason #{n}"),
                    },
                },
            },
        ),
        Step::Expire { actor: a, lag } => (
            if a == 6 {
                Actor::EndUser(user.clone())
            } else {
                actor(a)
            },
            Command::Expire {
                last_seq: state.seq.saturating_sub(lag),
            },
        ),
    }
}

/// Appends `event` to `model`, folding an amendment into its message (and, for a
/// removal, scrubbing the message's earlier edits).
fn fold_into(model: &mut Vec<chathub_domain::Event>, event: &chathub_domain::Event) {
    chathub_domain::conversation::amend::fold_into(model.iter_mut(), event);
    model.push(event.clone());
}

static CASE: AtomicU64 = AtomicU64::new(0);

/// Commands applied one call each (`batch: false`, through `Ownership::apply`, the node's
/// group commit) or several per script call (`batch: true`, `apply_many`: each step
/// group of 1–8 commands, built from the state before the group as concurrent agents
/// would, goes in one call and must decide each command as if applied alone in order).
fn script_agrees_with_the_state_machine(batch: bool) {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (conn, notices) = runtime.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        // Every agent channel of the tenant: the notices the script publishes.
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe("diff:agent:{t}/*").await.unwrap();
        (
            client.get_connection_manager().await.unwrap(),
            pubsub.into_on_message(),
        )
    });
    let raw = conn.clone();
    // proptest's body is a `Fn`: the stream is borrowed mutably through a cell.
    let notices = std::cell::RefCell::new(Some(notices));
    let keys = RedisKeys::new("diff");
    // With a webhook: agents' messages record their job, due one lease later.
    const LEASE: u64 = 1000;
    let config = RedisOwnershipConfig {
        webhook_job_lease_ms: LEASE,
        ..RedisOwnershipConfig::default()
    };
    let ownership = RedisOwnership::new(conn.clone(), keys.clone(), config);
    let store = RedisStore::new(conn, keys.clone());
    let tenant = TenantId::new("t").unwrap();

    let config = ProptestConfig {
        cases: if batch { 200 } else { 300 },
        ..ProptestConfig::default()
    };
    let group_size = if batch { 1usize..9 } else { 1usize..2 };
    let steps = proptest::collection::vec(
        proptest::collection::vec((step(), prop::bool::weighted(0.1)), group_size),
        1..30,
    );
    let marker_n = AtomicU64::new(0);
    proptest!(config, |(groups in steps)| {
        // A fresh conversation per case.
        let user = EndUserId::new(format!("u{}", CASE.fetch_add(1, Ordering::Relaxed))).unwrap();
        let conversation = ConversationId::of_end_user(&user);
        let mut state = ConversationState::default();
        let mut entry: Option<QueueEntry> = None;
        // History as the state machine and the fold say it reads now: every event, each
        // message folded with its amendments.
        let mut model: Vec<chathub_domain::Event> = Vec::new();
        let mut n = 0usize;
        for group in &groups {
            let before = state.clone();
            // The commands, as their senders built them (from the state before the group).
            let requests: Vec<ApplyRequest> = group
                .iter()
                .map(|(st, tenant_chat_disabled)| {
                    let (who, cmd) = command(st, &before, &user, n);
                    n += 1;
                    // An amendment carries the node's copy of its target, read before the
                    // group as a node reads it before its call.
                    let (edit_window_ms, target) = match (st, &cmd) {
                        (Step::Amend { window, .. }, Command::Amend { target, .. }) => {
                            (*window, model.iter().find(|e| e.seq == *target).cloned())
                        }
                        _ => (0, None),
                    };
                    let survey = matches!(st, Step::Finish { survey: true, .. })
                        .then(|| format!("How did we do, #{n}?"));
                    ApplyRequest {
                        tenant: tenant.clone(),
                        conversation: conversation.clone(),
                        actor: who,
                        command: cmd,
                        at: 1_700_000_000_000 + n as u64,
                        context: Context {
                            tenant_chat_disabled: *tenant_chat_disabled,
                            edit_window_ms,
                            target,
                            survey,
                            bot: matches!(st, Step::UserSends { bot: true, .. }).then(bot_id),
                        },
                    }
                })
                .collect();
            let got: Vec<Decision> = if batch {
                runtime
                    .block_on(ownership.apply_many(&requests))
                    .into_iter()
                    .map(|d| d.unwrap())
                    .collect()
            } else {
                requests
                    .iter()
                    .map(|r| runtime.block_on(ownership.apply(r.clone())).unwrap())
                    .collect()
            };
            prop_assert_eq!(got.len(), requests.len());
            let mut all_events = Vec::new();
            let mut notices_expected: Vec<(String, ServerFrame)> = Vec::new();
            let mut owed = Vec::new();
            let mut erased_in_group = false;
            for (request, got) in requests.iter().zip(got) {
                let (who, cmd, at) = (&request.actor, &request.command, request.at);
                // Decided on the target as it is now (the script reads its own copy).
                let mut context = request.context.clone();
                if let Command::Amend { target, .. } = cmd {
                    context.target = model.iter().find(|e| e.seq == *target).cloned();
                }
                let expected = apply_in(&context, &state, who, cmd, at);
                match (expected, got) {
                    (Outcome::Applied(t), Decision::Done { state: s, queued_since, events, ack }) => {
                        prop_assert_eq!(&s, &t.state, "state after {:?} by {:?}", cmd, who);
                        // Sends and notes are acknowledged with the seq they got.
                        let acked = matches!(cmd, Command::Send { .. } | Command::Note { .. });
                        prop_assert_eq!(ack.is_some(), acked, "ack of {:?}", cmd);
                        prop_assert_eq!(&events, &t.events, "events of {:?} by {:?}", cmd, who);
                        if !t.events.is_empty() {
                            let next = frames::queue_entry(&conversation, &t.state, &t.events, entry.as_ref());
                            prop_assert_eq!(
                                queued_since,
                                frames::queued_since(entry.as_ref(), &t.state),
                                "queued_since after {:?} by {:?}", cmd, who
                            );
                            entry = Some(next);
                        }
                        notices_expected.extend(
                            frames::ownership_lost(&conversation, &t.events)
                                .map(|(agent, frame)| (format!("diff:agent:{{t}}/{agent}"), ServerFrame::OwnershipLost(frame))),
                        );
                        notices_expected.extend(
                            frames::mentions(&conversation, &t.events)
                                .into_iter()
                                .map(|(agent, frame)| (format!("diff:agent:{{t}}/{agent}"), ServerFrame::Mention(frame))),
                        );
                        owed.push((at, t.events.clone()));
                        for event in &t.events {
                            match &event.body {
                                chathub_domain::EventBody::Edited { .. } => EDITS.fetch_add(1, Ordering::Relaxed),
                                chathub_domain::EventBody::Unsent { .. } | chathub_domain::EventBody::Redacted { .. } => {
                                    REMOVALS.fetch_add(1, Ordering::Relaxed)
                                }
                                chathub_domain::EventBody::SurveyAnswered { .. } => ANSWERS.fetch_add(1, Ordering::Relaxed),
                                chathub_domain::EventBody::Status { cause: chathub_domain::Cause::Released, .. } => {
                                    RELEASES.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => 0,
                            };
                            fold_into(&mut model, event);
                        }
                        all_events.extend(t.events);
                        state = t.state;
                    }
                    (Outcome::Applied(t), Decision::Erased { state: s, .. }) => {
                        // Only the counters stay: what the group recorded before it is
                        // gone, so are the jobs it owed; the queue entry is a tombstone
                        // at the erased seq.
                        prop_assert!(t.events.is_empty());
                        prop_assert_eq!(&s, &t.state, "state after erasure by {:?}", who);
                        all_events.clear();
                        model.clear();
                        owed.clear();
                        entry = Some(QueueEntry {
                            conversation: conversation.clone(),
                            status: chathub_domain::Status::New,
                            owner: None,
                            epoch: t.state.epoch,
                            seq: t.state.seq,
                            disabled: false,
                            since: 0,
                            updated: at,
                            preview: None,
                        });
                        erased_in_group = true;
                        state = t.state;
                    }
                    (Outcome::Conflict { owner, epoch }, Decision::Conflict { owner: o, epoch: e }) => {
                        prop_assert_eq!((owner, epoch), (o, e));
                    }
                    (Outcome::Refused(r), Decision::Refused(q)) => prop_assert_eq!(r, q),
                    (expected, got) => prop_assert!(false, "{:?} by {:?}: expected {:?}, got {:?}", cmd, who, expected, got),
                }
            }
            // What the group recorded: its events, read back from the history stream.
            let recorded = runtime
                .block_on(store.history(&tenant, &conversation, HistoryRange::After { after: before.seq, limit: 100 }))
                .unwrap();
            let folded: Vec<_> = model.iter().filter(|e| e.seq > before.seq).cloned().collect();
            prop_assert_eq!(&recorded.events, &folded, "events of {:?}", group);
            // The whole history, each message in its current form (amendments rewrite
            // earlier entries).
            let whole = runtime
                .block_on(store.history(&tenant, &conversation, HistoryRange::After { after: 0, limit: 1000 }))
                .unwrap();
            prop_assert_eq!(&whole.events, &model, "history after {:?}", group);
            // A removed message's text is gone from the stream, not only hidden: its entry
            // (and its edits') are deleted, their text-less forms kept aside.
            for e in &model {
                let removed = e.amended.as_ref().is_some_and(|a| a.removed());
                if removed {
                    let entry: redis::streams::StreamRangeReply = runtime
                        .block_on(raw.clone().xrange(keys.history(&tenant, &conversation), format!("{}-0", e.seq), format!("{}-0", e.seq)))
                        .unwrap();
                    prop_assert!(entry.ids.is_empty(), "the stream still holds removed {:?}", e);
                }
            }
            if erased_in_group {
                // Nothing of before the erasure is left: history holds only what came after.
                let whole = runtime
                    .block_on(store.history(&tenant, &conversation, HistoryRange::After { after: 0, limit: 100 }))
                    .unwrap();
                prop_assert_eq!(&whole.events, &all_events, "history after the erasure in {:?}", group);
            }
            // The queue entry.
            if let Some(expected) = &entry {
                let blob: Vec<u8> = runtime
                    .block_on(raw.clone().hget(keys.inbox(&tenant), conversation.as_str()))
                    .unwrap();
                let stored: QueueEntry = rmp_serde::from_slice(&blob).unwrap();
                prop_assert_eq!(&stored, expected, "queue entry after {:?}", group);
            }
            // The notices: everything published on agent channels up to a marker
            // published after the group.
            let marker = format!("diff:agent:{{t}}/marker-{}", marker_n.fetch_add(1, Ordering::Relaxed));
            let published: Vec<(String, Vec<u8>)> = runtime.block_on(async {
                let _: () = raw.clone().publish(&marker, "m").await.unwrap();
                let mut got = Vec::new();
                // Taken out of the cell while awaited, put back after.
                let mut stream = notices.take().unwrap();
                while let Some(msg) = stream.next().await {
                    if msg.get_channel_name() == marker {
                        break;
                    }
                    got.push((msg.get_channel_name().to_owned(), msg.get_payload_bytes().to_vec()));
                }
                notices.replace(Some(stream));
                got
            });
            let got: Vec<(String, ServerFrame)> = published
                .into_iter()
                .map(|(channel, bytes)| (channel, Codec::MsgPack.decode_server(&bytes).unwrap()))
                .collect();
            prop_assert_eq!(&got, &notices_expected, "notices of {:?}", group);
            for (at, events) in &owed {
                // The webhook job, if any.
                if let Some(seq) = frames::webhook_job(events) {
                    let due: Option<u64> = runtime
                        .block_on(raw.clone().zscore(keys.webhook_jobs(&tenant), format!("{seq}:{conversation}")))
                        .unwrap();
                    prop_assert_eq!(due, Some(at + LEASE), "webhook job of {:?}", events);
                }
                // The "received" record, if any.
                if let Some(record) = frames::received_record(&conversation, events) {
                    let blob: Vec<u8> = runtime
                        .block_on(raw.clone().hget(keys.engagement_history(&tenant, &user), &record.id))
                        .unwrap();
                    let stored: chathub_domain::engagement::HistoryEvent =
                        rmp_serde::from_slice(&blob).unwrap();
                    prop_assert_eq!(&stored, &record, "received record of {:?}", events);
                    let indexed: Option<u64> = runtime
                        .block_on(raw.clone().zscore(keys.engagement_index(&tenant, &user, Some(record.engagement_type)), &record.id))
                        .unwrap();
                    prop_assert_eq!(indexed, Some(record.at));
                }
            }
            let stored = runtime.block_on(store.state(&tenant, &conversation)).unwrap();
            prop_assert_eq!(&stored, &state);
        }
    });
    // The cases reached what they are about: edits and removals that applied.
    assert!(EDITS.load(Ordering::Relaxed) > 0, "no edit applied");
    assert!(
        REMOVALS.load(Ordering::Relaxed) > 0,
        "no unsend or redaction applied"
    );
    assert!(ANSWERS.load(Ordering::Relaxed) > 0, "no survey answered");
    assert!(RELEASES.load(Ordering::Relaxed) > 0, "no release applied");
}

static RELEASES: AtomicU64 = AtomicU64::new(0);

static EDITS: AtomicU64 = AtomicU64::new(0);
static ANSWERS: AtomicU64 = AtomicU64::new(0);
static REMOVALS: AtomicU64 = AtomicU64::new(0);

#[test]
fn redis_script_agrees_with_the_state_machine() {
    script_agrees_with_the_state_machine(false);
}

#[test]
fn redis_script_agrees_with_the_state_machine_on_batches() {
    script_agrees_with_the_state_machine(true);
}
