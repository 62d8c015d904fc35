//! Conformance suite of the [`ConversationStore`] read side, written by the ownership
//! backends: history paging in both directions, queue paging by cursor, read marks
//! (forward only, clamped to the last `seq`), and the inbox stream's cursors and
//! truncation. The same bodies run on the memory twin, a redis-server and a Redis Cluster.

// Test helpers: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

mod common;

use chathub_broker::Broker;
use chathub_domain::{AgentId, EndUserId, Participant, Status};
use chathub_ownership::Ownership;
use chathub_store::{ConversationStore, HistoryRange, StoreError};
use common::{Fixture, Limits, conversation, end_user, send, tenant};

fn seqs(events: &[chathub_domain::Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

async fn history_pages_in_both_directions<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    let (t, c) = (tenant(), conversation("pager"));
    // opened + 29 messages = 30 events.
    for n in 0..29 {
        f.ownership
            .apply(send(
                end_user("pager"),
                "pager",
                &format!("m{n}"),
                None,
                None,
            ))
            .await
            .unwrap();
    }
    let page = |range| f.store.history(&t, &c, range);
    let latest = page(HistoryRange::Latest { limit: 10 }).await.unwrap();
    assert_eq!(seqs(&latest.events), (21..=30).collect::<Vec<_>>());
    assert!(latest.has_more);
    let before = page(HistoryRange::Before {
        before: 21,
        limit: 10,
    })
    .await
    .unwrap();
    assert_eq!(seqs(&before.events), (11..=20).collect::<Vec<_>>());
    assert!(before.has_more);
    let first = page(HistoryRange::Before {
        before: 4,
        limit: 10,
    })
    .await
    .unwrap();
    assert_eq!(seqs(&first.events), vec![1, 2, 3]);
    assert!(!first.has_more, "nothing before the first event");
    let after = page(HistoryRange::After {
        after: 25,
        limit: 10,
    })
    .await
    .unwrap();
    assert_eq!(seqs(&after.events), (26..=30).collect::<Vec<_>>());
    assert!(!after.has_more);
    let beyond = page(HistoryRange::After {
        after: 30,
        limit: 10,
    })
    .await
    .unwrap();
    assert!(beyond.events.is_empty() && !beyond.has_more);
    // A conversation without events has an empty history, not an error.
    let none = f
        .store
        .history(
            &t,
            &conversation("nobody"),
            HistoryRange::Latest { limit: 5 },
        )
        .await
        .unwrap();
    assert!(none.events.is_empty() && !none.has_more);
}

/// History pages over amended messages: removed ones (their entries deleted from a Redis
/// stream, their forms kept aside) and edited ones come in their current form, each
/// `seq` once, pages of 2 in both directions adding up to the whole.
async fn amended_history_pages<O: Ownership, S: ConversationStore, B: Broker>(f: Fixture<O, S, B>) {
    use chathub_domain::{Change, Command, MessageContent};
    let (t, c) = (tenant(), conversation("amender"));
    // opened + 12 messages: seqs 1..=13.
    for n in 0..12 {
        f.ownership
            .apply(send(
                end_user("amender"),
                "amender",
                &format!("m{n}"),
                None,
                None,
            ))
            .await
            .unwrap();
    }
    // Unsend 2, 3 (the first messages, side by side), 8 and 13 (the last); edit 5 twice.
    for (target, change) in [
        (
            5,
            Change::Edit {
                text: "m3 fixed".into(),
            },
        ),
        (2, Change::Unsend),
        (3, Change::Unsend),
        (8, Change::Unsend),
        (
            5,
            Change::Edit {
                text: "m3 fixed again".into(),
            },
        ),
        (13, Change::Unsend),
    ] {
        let read = f
            .store
            .history(
                &t,
                &c,
                HistoryRange::After {
                    after: target - 1,
                    limit: 1,
                },
            )
            .await
            .unwrap();
        let mut amend = send(end_user("amender"), "amender", "", None, None);
        amend.at = read.events[0].at + 1;
        amend.command = Command::Amend { target, change };
        amend.context.edit_window_ms = 600_000;
        amend.context.target = read.events.into_iter().next();
        let decision = f.ownership.apply(amend).await.unwrap();
        assert!(
            matches!(decision, chathub_ownership::Decision::Done { ref events, .. } if events.len() == 1),
            "{decision:?}"
        );
    }
    let whole = f
        .store
        .history(
            &t,
            &c,
            HistoryRange::After {
                after: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(&whole.events), (1..=19).collect::<Vec<_>>());
    for seq in [2, 3, 8, 13] {
        let e = &whole.events[seq - 1];
        assert!(
            matches!(
                &e.body,
                chathub_domain::EventBody::Message {
                    content: MessageContent::Removed {},
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let edited = &whole.events[4];
    assert!(
        matches!(&edited.body, chathub_domain::EventBody::Message { content: MessageContent::Text { text }, .. } if text == "m3 fixed again"),
        "{edited:?}"
    );
    // The first edit lost nothing but stays an event; the edits of an unsent message would
    // lose their text (none here).
    let mut backward = Vec::new();
    let mut range = HistoryRange::Latest { limit: 2 };
    loop {
        let page = f.store.history(&t, &c, range).await.unwrap();
        assert!(page.events.len() <= 2);
        let Some(first) = page.events.first().map(|e| e.seq) else {
            break;
        };
        backward.splice(0..0, page.events);
        if !page.has_more {
            break;
        }
        range = HistoryRange::Before {
            before: first,
            limit: 2,
        };
    }
    assert_eq!(backward, whole.events, "backward pages");
    let mut forward: Vec<chathub_domain::Event> = Vec::new();
    let mut after = 0;
    loop {
        let page = f
            .store
            .history(&t, &c, HistoryRange::After { after, limit: 2 })
            .await
            .unwrap();
        assert!(page.events.len() <= 2);
        let Some(last) = page.events.last().map(|e| e.seq) else {
            break;
        };
        forward.extend(page.events);
        after = last;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(forward, whole.events, "forward pages");
}

async fn queue_pages_by_cursor<O: Ownership, S: ConversationStore, B: Broker>(f: Fixture<O, S, B>) {
    let t = tenant();
    let names: Vec<String> = (0..5).map(|n| format!("q{n}")).collect();
    for (n, name) in names.iter().enumerate() {
        let mut request = send(end_user(name), name, "hello", None, None);
        request.at = 1_000 + n as u64;
        f.ownership.apply(request).await.unwrap();
    }
    // Longest waiting first, two at a time, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = f
            .store
            .list(&t, Status::Unanswered, 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|i| i.conversation.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, names);
    let bad = f
        .store
        .list(&t, Status::Unanswered, 2, Some("nonsense"))
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let empty = f.store.list(&t, Status::Finished, 2, None).await.unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none());
}

async fn read_marks_move_forward_and_clamp<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    let (t, c) = (tenant(), conversation("reader"));
    for text in ["a", "b"] {
        f.ownership
            .apply(send(end_user("reader"), "reader", text, None, None))
            .await
            .unwrap();
    }
    // opened + 2 messages: the last seq is 3.
    let me = Participant::end_user(&EndUserId::new("reader").unwrap());
    let alice = Participant::agent(&AgentId::new("alice").unwrap());
    assert_eq!(f.store.set_read(&t, &c, &me, 2).await.unwrap(), Some(2));
    assert_eq!(
        f.store.set_read(&t, &c, &me, 1).await.unwrap(),
        None,
        "backwards"
    );
    assert_eq!(
        f.store.set_read(&t, &c, &me, 2).await.unwrap(),
        None,
        "same"
    );
    assert_eq!(
        f.store.set_read(&t, &c, &me, u64::MAX).await.unwrap(),
        Some(3),
        "clamped to the last seq"
    );
    assert_eq!(f.store.set_read(&t, &c, &alice, 3).await.unwrap(), Some(3));
    let nowhere = conversation("unknown");
    assert_eq!(f.store.set_read(&t, &nowhere, &me, 5).await.unwrap(), None);
    assert!(f.store.reads(&t, &nowhere).await.unwrap().is_empty());
    let mut marks = f.store.reads(&t, &c).await.unwrap();
    marks.sort();
    let mut expected = vec![(me, 3), (alice, 3)];
    expected.sort();
    assert_eq!(marks, expected);
}

async fn inbox_cursors_and_truncation<O: Ownership, S: ConversationStore, B: Broker>(
    f: Fixture<O, S, B>,
) {
    // The fixture keeps 3 queue changes per tenant; every new conversation is one.
    let t = tenant();
    let start = f.store.inbox_after(&t, None, 10).await.unwrap();
    assert!(start.items.is_empty());
    assert_eq!(start.latest, None, "an empty stream has no position");
    f.ownership
        .apply(send(end_user("i0"), "i0", "hello", None, None))
        .await
        .unwrap();
    let first = f.store.inbox_after(&t, None, 10).await.unwrap();
    let first_cursor = first.latest.clone().expect("a position after one change");
    for n in 1..6 {
        let name = format!("i{n}");
        f.ownership
            .apply(send(end_user(&name), &name, "hello", None, None))
            .await
            .unwrap();
    }
    // From a cursor still retained: what follows it, exclusive, oldest first.
    let all = f.store.inbox_after(&t, None, 10).await.unwrap();
    let latest = all.latest.clone().unwrap();
    assert_ne!(latest, first_cursor);
    let old = f
        .store
        .inbox_after(&t, Some(&first_cursor), 10)
        .await
        .unwrap();
    assert!(old.truncated, "the stream was trimmed past that cursor");
    let retained: Vec<String> = old
        .items
        .iter()
        .map(|i| i.entry.conversation.to_string())
        .collect();
    assert_eq!(retained, ["i3", "i4", "i5"], "the last 3 changes");
    let last_two = f
        .store
        .inbox_after(&t, Some(old.items[0].cursor.as_str()), 10)
        .await
        .unwrap();
    assert!(!last_two.truncated);
    let names: Vec<String> = last_two
        .items
        .iter()
        .map(|i| i.entry.conversation.to_string())
        .collect();
    assert_eq!(names, ["i4", "i5"], "exclusive of the cursor");
    let none = f.store.inbox_after(&t, Some(&latest), 10).await.unwrap();
    assert!(none.items.is_empty() && !none.has_more && !none.truncated);
    let bad = f.store.inbox_after(&t, Some("not-a-cursor"), 10).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
}

/// One test per backend for a body; `$limits` sizes the fixture.
macro_rules! on_every_backend {
    ($body:ident, $limits:expr) => {
        mod $body {
            use super::*;
            #[tokio::test]
            async fn memory() {
                $body(common::memory($limits)).await;
            }
            #[tokio::test]
            async fn data_dir() {
                $body(common::data_dir($limits)).await;
            }
            #[tokio::test]
            async fn redis() {
                $body(common::redis($limits).await).await;
            }
            #[tokio::test]
            async fn redis_cluster() {
                $body(common::redis_cluster($limits).await).await;
            }
        }
    };
}

on_every_backend!(history_pages_in_both_directions, Limits::default());
on_every_backend!(amended_history_pages, Limits::default());
on_every_backend!(queue_pages_by_cursor, Limits::default());
on_every_backend!(read_marks_move_forward_and_clamp, Limits::default());
on_every_backend!(inbox_cursors_and_truncation, Limits { inbox_max_len: 3 });
