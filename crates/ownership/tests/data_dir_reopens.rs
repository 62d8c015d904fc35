//! The embedded default's data directory: everything a command or an admin changed is
//! there after the stores are dropped and the directory is opened again, with the same
//! history id; a second process is kept off an open directory; the schema migrates from
//! empty and from every earlier version.

// Test code: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

mod common;

use chathub_broker::{Hub, MemoryBroker};
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EligibilityRules, EngagementType, HistoryAction, HistoryEvent, Profile,
};
use chathub_domain::{Command, Participant, Status};
use chathub_ownership::{Decision, MemoryOwnership, Ownership};
use chathub_store::sqlite::{self, DataDirConfig, Opened};
use chathub_store::{
    ConversationStore, HistoryRange, MemoryStoreConfig, WebhookJobs, WorkspaceStore,
};
use common::*;
use std::sync::Arc;

fn open(dir: &std::path::Path) -> Opened {
    let config = MemoryStoreConfig {
        history_max_len: 3,
        ..MemoryStoreConfig::default()
    };
    sqlite::open(&DataDirConfig::new(dir), config).unwrap()
}

/// A request stamped now: send answers are read back until they expire by the clock.
fn now(mut request: chathub_ownership::ApplyRequest) -> chathub_ownership::ApplyRequest {
    request.at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    request
}

fn ownership(opened: &Opened) -> MemoryOwnership<MemoryBroker> {
    MemoryOwnership::new(
        opened.store.clone(),
        MemoryBroker::new(Arc::new(Hub::new())),
        opened.workspace.clone(),
    )
    .with_webhook_jobs(opened.jobs.clone(), 60_000)
}

/// Everything observable through the stores, for comparing before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    states: Vec<String>,
    history: Vec<String>,
    reads: Vec<String>,
    queue: Vec<String>,
    inbox: Vec<String>,
    workspace: Vec<String>,
    history_id: String,
}

async fn snapshot(opened: &Opened) -> Snapshot {
    let t = tenant();
    let mut s = Snapshot {
        states: vec![],
        history: vec![],
        reads: vec![],
        queue: vec![],
        inbox: vec![],
        workspace: vec![],
        history_id: opened.journal.history_id().to_owned(),
    };
    for name in ["ann", "bob"] {
        let c = conversation(name);
        s.states
            .push(format!("{:?}", opened.store.state(&t, &c).await.unwrap()));
        let all = opened
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
        s.history.push(format!("{:?}", all.events));
        s.reads
            .push(format!("{:?}", opened.store.reads(&t, &c).await.unwrap()));
    }
    for status in [Status::Unanswered, Status::Active, Status::Finished] {
        let page = opened.store.list(&t, status, 50, None).await.unwrap();
        s.queue.push(format!("{:?}", page.items));
    }
    let inbox = opened.store.inbox_after(&t, Some("0"), 100).await.unwrap();
    s.inbox
        .push(format!("{:?} {:?}", inbox.items, inbox.latest));
    let ws = &opened.workspace;
    let user = chathub_domain::EndUserId::new("ann").unwrap();
    s.workspace
        .push(format!("{:?}", ws.settings(&t).await.unwrap()));
    s.workspace
        .push(format!("{:?}", ws.items(&t).await.unwrap()));
    s.workspace
        .push(format!("{:?}", ws.canned(&t).await.unwrap()));
    s.workspace
        .push(format!("{:?}", ws.profile(&t, &user).await.unwrap()));
    s.workspace.push(format!(
        "{:?}",
        ws.history(&t, &user, None, None, 50).await.unwrap()
    ));
    s.workspace
        .push(format!("{:?}", ws.redeemed(&t, &user).await.unwrap()));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen() {
    let dir = chathub_testkit::ScratchDir::new("reopen");
    let t = tenant();
    let before;
    {
        let opened = open(dir.path());
        let o = ownership(&opened);
        for n in 0..5 {
            let id = format!("ann-{n}");
            o.apply(now(send(end_user("ann"), "ann", "hello", None, Some(&id))))
                .await
                .unwrap();
        }
        o.apply(send(end_user("bob"), "bob", "hi", None, None))
            .await
            .unwrap();
        // alice takes ann's conversation by answering, then finishes bob's after taking it.
        let Decision::Done { state, .. } = o
            .apply(send(agent("alice"), "ann", "hi ann", Some(0), Some("a-1")))
            .await
            .unwrap()
        else {
            panic!("alice's reply applies")
        };
        assert_eq!(state.status, Status::Active);
        // Ann edits her last "hello" (seq 6, in memory's window) and unsends her first
        // (seq 2, only in the file: decided on the copy a node reads first).
        for (target, change) in [
            (
                6,
                chathub_domain::Change::Edit {
                    text: "hello, fixed".into(),
                },
            ),
            (2, chathub_domain::Change::Unsend),
        ] {
            let read = opened
                .store
                .history(
                    &t,
                    &conversation("ann"),
                    HistoryRange::After {
                        after: target - 1,
                        limit: 1,
                    },
                )
                .await
                .unwrap();
            let mut amend = now(send(end_user("ann"), "ann", "", None, None));
            amend.command = Command::Amend { target, change };
            amend.context.edit_window_ms = 600_000;
            amend.context.target = read.events.into_iter().next();
            let Decision::Done { events, .. } = o.apply(amend).await.unwrap() else {
                panic!("ann's amendment of {target} applies")
            };
            assert_eq!(events.len(), 1, "{events:?}");
        }
        o.apply(send(agent("alice"), "bob", "hi bob", Some(0), None))
            .await
            .unwrap();
        let bob = opened.store.state(&t, &conversation("bob")).await.unwrap();
        let mut finish = send(agent("alice"), "bob", "", None, None);
        finish.command = Command::Finish {
            seen_epoch: bob.epoch,
        };
        o.apply(finish).await.unwrap();
        let ann = Participant::end_user(&chathub_domain::EndUserId::new("ann").unwrap());
        opened
            .store
            .set_read(&t, &conversation("ann"), &ann, 6)
            .await
            .unwrap();

        let ws = &opened.workspace;
        let user = chathub_domain::EndUserId::new("ann").unwrap();
        ws.set_chat_disabled(&t, true).await.unwrap();
        let coupon = CatalogueItem {
            id: "c10".into(),
            engagement_type: EngagementType::Coupon,
            name: "10% off".into(),
            description: String::new(),
            valid_from: None,
            valid_until: None,
            rules: EligibilityRules {
                once_per_user: true,
                stock: Some(5),
                ..EligibilityRules::default()
            },
        };
        ws.upsert_item(&t, coupon.clone()).await.unwrap();
        let mut gone = coupon.clone();
        gone.id = "gone".into();
        ws.upsert_item(&t, gone).await.unwrap();
        assert!(ws.delete_item(&t, "gone").await.unwrap());
        ws.upsert_canned(
            &t,
            CannedResponse {
                id: "hello".into(),
                shortcut: "/hello".into(),
                text: "Hello {first_name}".into(),
            },
        )
        .await
        .unwrap();
        let profile = Profile {
            first_name: "Ann".into(),
            points_balance: 42,
            ..Profile::default()
        };
        ws.upsert_profile(&t, &user, profile).await.unwrap();
        let redeemed = HistoryEvent {
            id: "r1".into(),
            engagement_type: EngagementType::Coupon,
            action: HistoryAction::Redeemed,
            engagement: Some("c10".into()),
            title: "10% off".into(),
            points: None,
            at: 5,
        };
        ws.redeem(&t, &user, &coupon, redeemed)
            .await
            .unwrap()
            .unwrap();

        // Alice's two messages made two webhook jobs; one is done.
        let due = opened.jobs.claim_due(u64::MAX - 1, 1, 10).await.unwrap();
        assert_eq!(due.len(), 2, "{due:?}");
        opened.jobs.complete(&due[0]).await.unwrap();

        before = snapshot(&opened).await;
        // 10 events, two of them messages amended (their `amended` has a seq too).
        assert!(
            before.history[0].matches("seq:").count() == 12,
            "ann's whole history is read, past memory's window of 3: {:?}",
            before.history[0]
        );
    }
    // Every handle is gone: the directory is free again.
    let opened = open(dir.path());
    let after = snapshot(&opened).await;
    assert_eq!(after, before);
    // The amended messages come back amended, from memory's window and from the file.
    let ann_history = &after.history[0];
    assert!(ann_history.contains("hello, fixed"), "{ann_history}");
    assert!(ann_history.contains("Removed"), "{ann_history}");
    assert_eq!(
        ann_history.matches("text: \"hello\"").count(),
        3,
        "{ann_history}"
    );
    // The pending job is still pending, the completed one is gone.
    let due = opened.jobs.claim_due(u64::MAX - 1, 1, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    // A send retried after the restart is answered as before, and not recorded again.
    let o = ownership(&opened);
    let Decision::Done { ack, events, .. } = o
        .apply(now(send(
            end_user("ann"),
            "ann",
            "hello",
            None,
            Some("ann-4"),
        )))
        .await
        .unwrap()
    else {
        panic!("a retried send applies")
    };
    assert!(events.is_empty(), "deduplicated: {events:?}");
    assert_eq!(ack.map(|a| a.seq), Some(6));
    // The redeemed coupon stays redeemed: once per user.
    let coupon = opened.workspace.items(&t).await.unwrap().remove(0);
    assert_eq!(coupon.rules.stock, Some(4));
    let user = chathub_domain::EndUserId::new("ann").unwrap();
    let again = HistoryEvent {
        id: "r2".into(),
        engagement_type: EngagementType::Coupon,
        action: HistoryAction::Redeemed,
        engagement: Some("c10".into()),
        title: "10% off".into(),
        points: None,
        at: 6,
    };
    assert!(
        opened
            .workspace
            .redeem(&t, &user, &coupon, again)
            .await
            .unwrap()
            .is_err()
    );
}

#[tokio::test]
async fn a_directory_in_use_is_refused() {
    let dir = chathub_testkit::ScratchDir::new("in-use");
    let _first = open(dir.path());
    let second = sqlite::open(
        &DataDirConfig::new(dir.path()),
        MemoryStoreConfig::default(),
    );
    let err = second.err().expect("a second open is refused");
    assert!(err.to_string().contains("another chathub process"), "{err}");
}

#[test]
fn the_schema_migrates_from_empty() {
    let dir = chathub_testkit::ScratchDir::new("migrate");
    let mut conn = rusqlite::Connection::open(dir.path().join("x.db")).unwrap();
    sqlite::migrate(&mut conn).unwrap();
    let applied: i64 = conn
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let known = sqlite::migrations();
    assert_eq!(Some(applied as i32), known.last().map(|(v, _)| *v));
    // Applying again changes nothing.
    sqlite::migrate(&mut conn).unwrap();
    // A file migrated by a newer binary (a version this one does not know) is refused,
    // not written with an older schema.
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
         VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
        [],
    )
    .unwrap();
    assert!(sqlite::migrate(&mut conn).is_err());
}

#[tokio::test]
async fn a_file_of_the_previous_version_migrates_with_its_data() {
    use chathub_store::search::{self, Search, SearchQuery};
    let dir = chathub_testkit::ScratchDir::new("upgrade");
    {
        // The file as version 1 (before search) left it, with one conversation.
        let mut conn = rusqlite::Connection::open(dir.path().join(sqlite::DATABASE_FILE)).unwrap();
        sqlite::migrate_to(&mut conn, 1).unwrap();
        let o = MemoryOwnership::new(
            Default::default(),
            MemoryBroker::new(Arc::new(Hub::new())),
            Default::default(),
        );
        let Decision::Done { state, events, .. } = o
            .apply(send(
                end_user("ann"),
                "ann",
                "my coupon is gone",
                None,
                None,
            ))
            .await
            .unwrap()
        else {
            panic!("applies")
        };
        conn.execute(
            "INSERT INTO conversations (tenant, conversation, state, updated_at)
             VALUES ('t1', 'ann', ?1, 0)",
            [serde_json::to_string(&state).unwrap()],
        )
        .unwrap();
        for e in &events {
            let text = match &e.body {
                chathub_domain::EventBody::Message { .. } => Some("my coupon is gone"),
                _ => None,
            };
            conn.execute(
                "INSERT INTO events (tenant, conversation, seq, at, kind, author_role, author_id, text, body)
                 VALUES ('t1', 'ann', ?1, ?2, ?3, 'end_user', 'ann', ?4, ?5)",
                rusqlite::params![
                    e.seq as i64,
                    e.at as i64,
                    if text.is_some() { "message" } else { "status" },
                    text,
                    serde_json::to_string(e).unwrap()
                ],
            )
            .unwrap();
        }
    }
    let opened = open(dir.path());
    let t = tenant();
    let history = opened
        .store
        .history(
            &t,
            &conversation("ann"),
            HistoryRange::After {
                after: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(history.events.len(), 2);
    // Version 2 indexed what version 1 had written.
    let q = SearchQuery::unfiltered(search::parse("coupon").unwrap(), 10);
    let page = opened.journal.search(&t, q).await.unwrap();
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].seq, 2);
}
