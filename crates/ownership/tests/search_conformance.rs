//! The record tier's contract — search and reports — one body per behaviour, run on every
//! record tier (`on_every_record!`): the embedded data directory (SQLite, FTS5) and
//! cluster mode's archive (a real PostgreSQL, `tsvector`). Messages are written through
//! the ownership backend, as in production; for the archive, each applied command's
//! events are then copied into it, as the archiver does.

// Test code: unwrap is how a test says "this must hold".
#![allow(clippy::unwrap_used)]

mod common;

use chathub_domain::ConversationId;
use chathub_domain::{AgentId, EndUserId, Role, Status, TenantId};
use chathub_ownership::{ApplyRequest, Ownership};
use chathub_ownership::{Decision, OwnershipError};
use chathub_store::postgres::{Archive, ArchiveConfig};
use chathub_store::report::{CycleRow, Reports};
use chathub_store::search::{self, MessageKind, Search, SearchPage, SearchQuery};
use common::*;

/// An ownership backend whose applied events are then copied into the archive.
struct Archiving<O> {
    inner: O,
    archive: Archive,
}

impl<O: Ownership> Ownership for Archiving<O> {
    async fn apply(&self, request: ApplyRequest) -> Result<Decision, OwnershipError> {
        let (tenant, conversation) = (request.tenant.clone(), request.conversation.clone());
        let decision = self.inner.apply(request).await?;
        if let Decision::Done { state, events, .. } = &decision {
            self.archive
                .archive(&tenant, &conversation, Some(state), events)
                .await
                .unwrap();
        }
        Ok(decision)
    }

    async fn alert(
        &self,
        request: chathub_ownership::AlertRequest,
    ) -> Result<Vec<u32>, OwnershipError> {
        self.inner.alert(request).await
    }

    async fn alert_marks(
        &self,
        tenant: &chathub_domain::TenantId,
    ) -> Result<chathub_ownership::TenantAlertMarks, OwnershipError> {
        self.inner.alert_marks(tenant).await
    }

    async fn forget_alerts(
        &self,
        tenant: &chathub_domain::TenantId,
        stale: &[(
            chathub_domain::ConversationId,
            chathub_ownership::AlertMarks,
        )],
    ) -> Result<(), OwnershipError> {
        self.inner.forget_alerts(tenant, stale).await
    }
}

async fn cycles<S: Reports>(s: &S, from: u64, to: u64) -> Vec<CycleRow> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let t = tenant();
    let read = s.report_cycles(&t, from, to, tx);
    let collect = async {
        let mut rows = Vec::new();
        while let Some(row) = rx.recv().await {
            rows.push(row);
        }
        rows
    };
    let (read, rows) = tokio::join!(read, collect);
    read.unwrap();
    rows
}

fn query(text: &str) -> SearchQuery {
    SearchQuery::unfiltered(search::parse(text).unwrap(), 50)
}

fn found(page: &SearchPage) -> Vec<(String, u64)> {
    page.hits
        .iter()
        .map(|h| (h.conversation.to_string(), h.seq))
        .collect()
}

fn texts(page: &SearchPage) -> Vec<String> {
    page.hits
        .iter()
        .map(|h| {
            h.snippet
                .iter()
                .map(|p| p.text.as_str())
                .collect::<String>()
        })
        .collect()
}

async fn write<O: Ownership>(o: &O, mut request: ApplyRequest, at: u64) {
    request.at = at;
    o.apply(request).await.unwrap();
}

/// ann and bob write; alice answers ann (taking her conversation); another tenant has
/// the same words.
async fn corpus<O: Ownership>(o: &O) {
    write(
        o,
        send(
            end_user("ann"),
            "ann",
            "My coupon does not work",
            None,
            None,
        ),
        1_000,
    )
    .await;
    write(
        o,
        send(
            end_user("bob"),
            "bob",
            "Where is my parcel? It is late",
            None,
            None,
        ),
        2_000,
    )
    .await;
    write(
        o,
        send(
            agent("alice"),
            "ann",
            "Sorry! Which coupon code did you use?",
            Some(0),
            None,
        ),
        3_000,
    )
    .await;
    write(
        o,
        send(
            end_user("ann"),
            "ann",
            "The code is CAFÉ-10, a refund would be fine",
            None,
            None,
        ),
        4_000,
    )
    .await;
    write(
        o,
        send(
            end_user("bob"),
            "bob",
            "The parcel arrived, thanks",
            None,
            None,
        ),
        5_000,
    )
    .await;
    let mut other = send(end_user("ann"), "ann", "coupon parcel refund", None, None);
    other.tenant = TenantId::new("other-tenant").unwrap();
    write(o, other, 6_000).await;
}

async fn cycles_are_reported_once_each<S: Search + Reports, O: Ownership>(o: &O, s: &S) {
    corpus(o).await;
    let mut finish = send(agent("alice"), "ann", "", None, None);
    finish.command = chathub_domain::Command::Finish { seen_epoch: 1 };
    write(o, finish, 7_000).await;
    write(
        o,
        send(end_user("ann"), "ann", "back again", None, None),
        8_000,
    )
    .await;
    let rows = cycles(s, 0, 100_000).await;
    /// conversation, opened seq, owners, finished at, end user and agent messages.
    type Summary = (String, u64, Vec<String>, Option<u64>, u64, u64);
    let summary: Vec<Summary> = rows
        .iter()
        .map(|r| {
            (
                r.conversation.to_string(),
                r.opened_seq,
                r.owners.clone(),
                r.finished_at,
                r.end_user_messages,
                r.agent_messages,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ann".into(), 1, vec!["alice".to_owned()], Some(7_000), 2, 1),
            ("ann".into(), 7, vec![], None, 1, 0),
            ("bob".into(), 1, vec![], None, 2, 0),
        ]
    );
    assert_eq!(rows[0].waiting_ms(), Some(2_000));
    assert_eq!(rows[0].handling_ms(), Some(4_000));
    // Only cycles opened in the range; another tenant's never.
    let later = cycles(s, 7_500, 100_000).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].conversation, ConversationId::new("ann").unwrap());
}

async fn words_phrases_exclusions_and_either<S: Search, O: Ownership>(o: &O, s: &S) {
    corpus(o).await;
    let t = tenant();
    let page = s.search(&t, query("coupon")).await.unwrap();
    assert_eq!(
        found(&page),
        [("ann".into(), 4), ("ann".into(), 2)],
        "newest first"
    );
    let page = s.search(&t, query("\"does not work\"")).await.unwrap();
    assert_eq!(found(&page), [("ann".into(), 2)]);
    let page = s.search(&t, query("\"not does work\"")).await.unwrap();
    assert!(page.hits.is_empty(), "a phrase keeps its order");
    let page = s.search(&t, query("parcel -late")).await.unwrap();
    assert_eq!(found(&page), [("bob".into(), 3)]);
    let page = s.search(&t, query("refund OR arrived")).await.unwrap();
    assert_eq!(found(&page), [("bob".into(), 3), ("ann".into(), 5)]);
    // Case and accents fold; punctuation splits.
    let page = s.search(&t, query("cafe 10")).await.unwrap();
    assert_eq!(found(&page), [("ann".into(), 5)]);
    let page = s.search(&t, query("COUPON code")).await.unwrap();
    assert_eq!(found(&page), [("ann".into(), 4)]);
    // The snippet is the message around the match, with the matches marked.
    let page = s.search(&t, query("parcel late")).await.unwrap();
    let hit = &page.hits[0];
    assert_eq!(texts(&page), ["Where is my parcel? It is late"]);
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["parcel", "late"]);
    assert_eq!(hit.author.role, Role::EndUser);
    assert_eq!(hit.kind, MessageKind::Text);
}

async fn filters_narrow_the_hits<S: Search, O: Ownership>(o: &O, s: &S) {
    corpus(o).await;
    let t = tenant();
    let mut q = query("the OR my OR coupon");
    q.end_user = Some(EndUserId::new("bob").unwrap());
    assert_eq!(
        found(&s.search(&t, q.clone()).await.unwrap()),
        [("bob".into(), 3), ("bob".into(), 2)]
    );
    q.end_user = None;
    q.agent = Some(AgentId::new("alice").unwrap());
    let page = s.search(&t, q.clone()).await.unwrap();
    assert!(
        page.hits
            .iter()
            .all(|h| h.conversation.to_string() == "ann"),
        "only conversations alice wrote in: {:?}",
        found(&page)
    );
    assert_eq!(page.hits.len(), 3);
    q.agent = None;
    q.status = Some(Status::Unanswered);
    let page = s.search(&t, q.clone()).await.unwrap();
    assert!(
        page.hits
            .iter()
            .all(|h| h.conversation.to_string() == "bob")
    );
    q.status = Some(Status::Active);
    let page = s.search(&t, q.clone()).await.unwrap();
    assert!(
        page.hits
            .iter()
            .all(|h| h.conversation.to_string() == "ann")
    );
    q.status = None;
    q.from = Some(2_000);
    q.to = Some(4_000);
    assert_eq!(
        found(&s.search(&t, q.clone()).await.unwrap()),
        [("ann".into(), 4), ("bob".into(), 2)],
        "from is inclusive, to exclusive"
    );
    q.from = None;
    q.to = None;
    q.kind = Some(MessageKind::Engagement);
    assert!(s.search(&t, q).await.unwrap().hits.is_empty());
}

async fn pages_by_cursor_without_gap_or_duplicate<S: Search, O: Ownership>(o: &O, s: &S) {
    for n in 0..23u64 {
        let text = format!("order number {n}");
        // Several messages share a millisecond: the cursor must still split them.
        write(
            o,
            send(end_user("carol"), "carol", &text, None, None),
            10_000 + n / 3,
        )
        .await;
    }
    let t = tenant();
    let mut q = query("order");
    q.limit = 5;
    let mut seen = Vec::new();
    loop {
        let page = s.search(&t, q.clone()).await.unwrap();
        assert!(page.hits.len() <= 5);
        seen.extend(page.hits.iter().map(|h| h.seq));
        match page.next_cursor {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<u64> = (2..=24).collect();
    expected.reverse();
    assert_eq!(seen, expected);
    q.cursor = Some("not a cursor".into());
    assert!(s.search(&t, q).await.is_err());
}

async fn never_across_tenants<S: Search, O: Ownership>(o: &O, s: &S) {
    corpus(o).await;
    let other = TenantId::new("other-tenant").unwrap();
    let page = s
        .search(&other, query("coupon OR parcel OR refund"))
        .await
        .unwrap();
    assert_eq!(found(&page), [("ann".into(), 2)]);
    let nobody = TenantId::new("nobody").unwrap();
    assert!(
        s.search(&nobody, query("coupon"))
            .await
            .unwrap()
            .hits
            .is_empty()
    );
}

macro_rules! on_every_record {
    ($body:ident) => {
        mod $body {
            use super::*;
            #[tokio::test]
            async fn data_dir() {
                let f = common::data_dir(Limits::default());
                let journal = f.store.journal().unwrap().clone();
                $body(f.ownership.as_ref(), &journal).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let pg = chathub_testkit::PostgresServer::start();
                let archive = Archive::connect(&ArchiveConfig::new(pg.url()))
                    .await
                    .unwrap();
                let f = common::memory(Limits::default());
                let o = Archiving {
                    inner: std::sync::Arc::try_unwrap(f.ownership)
                        .unwrap_or_else(|_| unreachable!("the fixture shares nothing yet")),
                    archive: archive.clone(),
                };
                $body(&o, &archive).await;
            }
        }
    };
}

on_every_record!(words_phrases_exclusions_and_either);
on_every_record!(filters_narrow_the_hits);
on_every_record!(pages_by_cursor_without_gap_or_duplicate);
on_every_record!(never_across_tenants);
on_every_record!(cycles_are_reported_once_each);
