//! The PostgreSQL archive on a real server: migrations from empty (and again: nothing to
//! do), idempotent upserts (a copy repeated or out of order leaves each event once),
//! history paging in both directions, and outages classified as such.

// Test code: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

use chathub_domain::{
    Author, ConversationId, ConversationState, Event, EventBody, MessageContent, Role, Status,
    TenantId,
};
use chathub_store::HistoryRange;
use chathub_store::postgres::{Archive, ArchiveConfig};

fn message(seq: u64) -> Event {
    Event {
        seq,
        at: 1_000 + seq,
        body: EventBody::Message {
            author: Author {
                role: Role::EndUser,
                id: "ann".into(),
            },
            client_msg_id: None,
            content: MessageContent::Text {
                text: format!("message {seq}"),
            },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_are_idempotent_and_history_pages() {
    let pg = chathub_testkit::PostgresServer::start();
    let config = ArchiveConfig::new(pg.url());
    let _first = Archive::connect(&config).await.unwrap();
    // A second node connecting finds the schema in place.
    let archive = Archive::connect(&config).await.unwrap();
    let (t, c) = (
        TenantId::new("t").unwrap(),
        ConversationId::new("ann").unwrap(),
    );
    let events: Vec<Event> = (1..=30).map(message).collect();
    let state = |seq| ConversationState {
        status: Status::Unanswered,
        seq,
        ..ConversationState::default()
    };
    // Copied twice, partly overlapping and out of order: at least once.
    archive
        .archive(&t, &c, Some(&state(20)), &events[..20])
        .await
        .unwrap();
    archive
        .archive(&t, &c, Some(&state(30)), &events[10..])
        .await
        .unwrap();
    archive
        .archive(&t, &c, Some(&state(15)), &events[..15])
        .await
        .unwrap();
    let all = archive
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
    assert_eq!(all.events, events, "each event exactly once, in order");
    assert!(!all.has_more);
    let latest = archive
        .history(&t, &c, HistoryRange::Latest { limit: 5 })
        .await
        .unwrap();
    let seqs: Vec<u64> = latest.events.iter().map(|e| e.seq).collect();
    assert_eq!((seqs, latest.has_more), ((26..=30).collect(), true));
    let before = archive
        .history(
            &t,
            &c,
            HistoryRange::Before {
                before: 4,
                limit: 5,
            },
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = before.events.iter().map(|e| e.seq).collect();
    assert_eq!((seqs, before.has_more), (vec![1, 2, 3], false));
    let other = TenantId::new("other").unwrap();
    let none = archive
        .history(&other, &c, HistoryRange::Latest { limit: 5 })
        .await
        .unwrap();
    assert!(none.events.is_empty());
}

#[tokio::test]
async fn an_unreachable_archive_is_an_outage() {
    let port = chathub_testkit::free_port();
    let config = ArchiveConfig::new(format!("postgres://chathub@127.0.0.1:{port}/chathub"));
    let err = Archive::connect(&config).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let bad = Archive::connect(&ArchiveConfig::new("not a url"))
        .await
        .unwrap_err();
    assert!(!bad.is_retryable(), "{bad}");
}
