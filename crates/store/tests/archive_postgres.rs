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
use chathub_store::search::Search;

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
        amended: None,
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

fn text_message(seq: u64, text: &str) -> Event {
    let mut event = message(seq);
    if let EventBody::Message { content, .. } = &mut event.body {
        *content = MessageContent::Text { text: text.into() };
    }
    event
}

fn query(text: &str) -> chathub_store::search::SearchQuery {
    chathub_store::search::SearchQuery::unfiltered(chathub_store::search::parse(text).unwrap(), 50)
}

/// A database left by the first release (V1) is migrated at connect; its events stay
/// searchable. A tenant may then choose a stemming configuration: its events, old and
/// new, are indexed and searched with it; other tenants keep the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_from_v1_and_search_configurations_per_tenant() {
    use chathub_store::search::Search;
    let pg = chathub_testkit::PostgresServer::start();
    let config = ArchiveConfig::new(pg.url());
    Archive::migrate_to(&config, 1).await.unwrap();
    // A row as V1 wrote it.
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let old = text_message(1, "I was running late");
    client
        .execute(
            "INSERT INTO events (tenant, conversation, seq, at, kind, author_role, author_id,
                                 text, search_text, body)
             VALUES ('en', 'ann', 1, 1001, 'message', 'end_user', 'ann',
                     'I was running late', 'i was running late', $1)",
            &[&serde_json::to_value(&old).unwrap()],
        )
        .await
        .unwrap();
    let archive = Archive::connect(&config).await.unwrap();
    let (en, other) = (TenantId::new("en").unwrap(), TenantId::new("xx").unwrap());
    let hits = |page: chathub_store::search::SearchPage| page.hits.len();
    assert_eq!(
        hits(archive.search(&en, query("running")).await.unwrap()),
        1
    );
    assert_eq!(hits(archive.search(&en, query("run")).await.unwrap()), 0);
    assert_eq!(archive.search_config(&en).await.unwrap(), "chathub_simple");

    let unknown = archive.set_search_config(&en, Some("klingon")).await;
    assert!(
        matches!(unknown, Err(chathub_store::StoreError::Invalid(_))),
        "{unknown:?}"
    );
    assert_eq!(
        archive
            .set_search_config(&en, Some("english"))
            .await
            .unwrap(),
        "english"
    );
    let c = ConversationId::new("ann").unwrap();
    archive
        .archive(&en, &c, None, &[text_message(2, "she runs the shop")])
        .await
        .unwrap();
    archive
        .archive(&other, &c, None, &[text_message(1, "running shoes")])
        .await
        .unwrap();
    // Stemmed: "run" finds "running" (re-indexed) and "runs" (new).
    assert_eq!(hits(archive.search(&en, query("run")).await.unwrap()), 2);
    // The other tenant keeps the default: words as written.
    assert_eq!(hits(archive.search(&other, query("run")).await.unwrap()), 0);
    assert_eq!(
        hits(archive.search(&other, query("running")).await.unwrap()),
        1
    );
    // Back to the default.
    assert_eq!(
        archive.set_search_config(&en, None).await.unwrap(),
        "chathub_simple"
    );
    assert_eq!(hits(archive.search(&en, query("run")).await.unwrap()), 0);
}

/// Search tries the newest messages first and falls back to the whole index: a word
/// only the oldest message has is found past that window, and paging a common word
/// through thousands of hits sees each once, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_across_the_recent_window() {
    use chathub_store::search::Search;
    let pg = chathub_testkit::PostgresServer::start();
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let (t, c) = (
        TenantId::new("t").unwrap(),
        ConversationId::new("ann").unwrap(),
    );
    let events: Vec<Event> = (1..=2500)
        .map(|seq| text_message(seq, if seq == 1 { "alpha omega" } else { "alpha" }))
        .collect();
    for chunk in events.chunks(500) {
        archive.archive(&t, &c, None, chunk).await.unwrap();
    }
    let rare = archive.search(&t, query("omega")).await.unwrap();
    assert_eq!(rare.hits.iter().map(|h| h.seq).collect::<Vec<_>>(), [1]);
    let mut seen = Vec::new();
    let mut q = query("alpha");
    q.limit = 200;
    loop {
        let page = archive.search(&t, q.clone()).await.unwrap();
        seen.extend(page.hits.iter().map(|h| h.seq));
        match page.next_cursor {
            Some(cursor) => q.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, (1..=2500).rev().collect::<Vec<_>>());
}

/// An erasure deletes a conversation's events up to its `seq` and fences them: a copy of
/// those events arriving afterwards (at least once, possibly late) is refused, later
/// events are kept, other conversations are untouched, and erasing again removes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_deletes_and_fences_late_copies() {
    let pg = chathub_testkit::PostgresServer::start();
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let t = TenantId::new("t").unwrap();
    let (ann, ben) = (
        ConversationId::new("ann").unwrap(),
        ConversationId::new("ben").unwrap(),
    );
    let events: Vec<Event> = (1..=20).map(message).collect();
    let state = |seq| ConversationState {
        status: Status::Unanswered,
        seq,
        ..ConversationState::default()
    };
    for c in [&ann, &ben] {
        archive
            .archive(&t, c, Some(&state(20)), &events)
            .await
            .unwrap();
    }
    let all = |c: &ConversationId| {
        let (archive, t, c) = (archive.clone(), t.clone(), c.clone());
        async move {
            archive
                .history(
                    &t,
                    &c,
                    HistoryRange::After {
                        after: 0,
                        limit: 100,
                    },
                )
                .await
                .unwrap()
                .events
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(archive.erase(&t, &ann, 20).await.unwrap(), 20);
    assert!(all(&ann).await.is_empty());
    // A late copy of what was erased is refused; what comes after the erasure is kept.
    let later: Vec<Event> = (21..=22).map(message).collect();
    archive
        .archive(&t, &ann, Some(&state(20)), &events[5..])
        .await
        .unwrap();
    archive
        .archive(&t, &ann, Some(&state(22)), &later)
        .await
        .unwrap();
    assert_eq!(all(&ann).await, vec![21, 22]);
    assert_eq!(
        all(&ben).await,
        (1..=20).collect::<Vec<_>>(),
        "others untouched"
    );
    // Again: nothing more (the fence keeps the highest erased seq).
    assert_eq!(archive.erase(&t, &ann, 20).await.unwrap(), 0);
    assert_eq!(archive.erase(&t, &ann, 15).await.unwrap(), 0);
    assert_eq!(all(&ann).await, vec![21, 22]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_older_events_and_fences_late_copies() {
    let pg = chathub_testkit::PostgresServer::start();
    let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
        .await
        .unwrap();
    let (t, other) = (TenantId::new("t").unwrap(), TenantId::new("o").unwrap());
    let ann = ConversationId::new("ann").unwrap();
    // Events at 1001..=1020.
    let events: Vec<Event> = (1..=20).map(message).collect();
    for tenant in [&t, &other] {
        archive.archive(tenant, &ann, None, &events).await.unwrap();
    }
    let seqs = |tenant: &TenantId| {
        let (archive, tenant, ann) = (archive.clone(), tenant.clone(), ann.clone());
        async move {
            let page = archive
                .history(
                    &tenant,
                    &ann,
                    HistoryRange::After {
                        after: 0,
                        limit: 100,
                    },
                )
                .await
                .unwrap();
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>()
        }
    };
    // Everything before 1011 goes (seqs 1..=10), with its search entries.
    assert_eq!(archive.trim_before(&t, 1011).await.unwrap(), 10);
    assert_eq!(seqs(&t).await, (11..=20).collect::<Vec<_>>());
    assert_eq!(
        seqs(&other).await,
        (1..=20).collect::<Vec<_>>(),
        "other tenants untouched"
    );
    let query = |q: &str| {
        chathub_store::search::SearchQuery::unfiltered(
            chathub_store::search::parse(q).unwrap(),
            100,
        )
    };
    let found = archive.search(&t, query("message")).await.unwrap();
    assert!(found.hits.iter().all(|h| h.seq > 10), "{:?}", found.hits);
    assert_eq!(found.hits.len(), 10);
    // A late copy of older events is refused; newer ones are kept.
    archive
        .archive(&t, &ann, None, &events[..15])
        .await
        .unwrap();
    let later: Vec<Event> = (21..=22).map(message).collect();
    archive.archive(&t, &ann, None, &later).await.unwrap();
    assert_eq!(seqs(&t).await, (11..=22).collect::<Vec<_>>());
    // Again, or with an older cut-off: nothing more.
    assert_eq!(archive.trim_before(&t, 1011).await.unwrap(), 0);
    assert_eq!(archive.trim_before(&t, 900).await.unwrap(), 0);
}
