//! The workspace store's contract, one body per behaviour, run against the memory store
//! and against a real redis-server.

#![allow(clippy::unwrap_used)]

use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EligibilityRules, EngagementType, HistoryAction, HistoryEvent, Ineligible,
    Profile,
};
use chathub_domain::{Author, Role};
use chathub_domain::{EndUserId, TenantId};
use chathub_store::{
    AuditAction, AuditEntry, Heartbeat, MemoryWorkspace, Presence, RedeemRefusal, RedisKeys,
    RedisWorkspace, WorkspaceStore,
};
use chathub_testkit::RedisServer;
use std::sync::Arc;

fn t() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn u(name: &str) -> EndUserId {
    EndUserId::new(name).unwrap()
}

fn event(id: &str, kind: EngagementType, at: u64) -> HistoryEvent {
    HistoryEvent {
        id: id.into(),
        engagement_type: kind,
        action: HistoryAction::Viewed,
        engagement: None,
        title: id.into(),
        points: None,
        at,
    }
}

fn coupon(id: &str, once: bool, stock: Option<u64>) -> CatalogueItem {
    CatalogueItem {
        id: id.into(),
        engagement_type: EngagementType::Coupon,
        name: "10% off".into(),
        description: "on everything".into(),
        valid_from: None,
        valid_until: None,
        rules: EligibilityRules {
            once_per_user: once,
            stock,
            ..EligibilityRules::default()
        },
    }
}

async fn settings_catalogue_profiles_canned<S: WorkspaceStore>(s: S) {
    assert!(!s.settings(&t()).await.unwrap().chat_disabled);
    assert!(s.set_chat_disabled(&t(), true).await.unwrap());
    assert!(!s.set_chat_disabled(&t(), true).await.unwrap(), "no change");
    assert!(s.settings(&t()).await.unwrap().chat_disabled);

    s.upsert_item(&t(), coupon("c1", true, Some(2)))
        .await
        .unwrap();
    s.upsert_item(&t(), coupon("c2", false, None))
        .await
        .unwrap();
    let items = s.items(&t()).await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["c1", "c2"]
    );
    assert_eq!(items[0].rules.stock, Some(2));
    assert!(s.delete_item(&t(), "c2").await.unwrap());
    assert!(!s.delete_item(&t(), "c2").await.unwrap());
    assert!(
        s.items(&TenantId::new("other").unwrap())
            .await
            .unwrap()
            .is_empty(),
        "tenants are apart"
    );

    assert_eq!(s.profile(&t(), &u("u1")).await.unwrap(), None);
    let p = Profile {
        first_name: "Ana".into(),
        points_balance: 10,
        segments: vec!["gold".into()],
        ..Profile::default()
    };
    s.upsert_profile(&t(), &u("u1"), p.clone()).await.unwrap();
    assert_eq!(s.profile(&t(), &u("u1")).await.unwrap(), Some(p));

    let c = |id: &str, shortcut: &str| CannedResponse {
        id: id.into(),
        shortcut: shortcut.into(),
        text: format!("text {id}"),
    };
    s.upsert_canned(&t(), c("2", "/bye")).await.unwrap();
    s.upsert_canned(&t(), c("1", "/hello")).await.unwrap();
    s.upsert_canned(&t(), c("1", "/hi")).await.unwrap();
    let all = s.canned(&t()).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.shortcut.as_str()).collect::<Vec<_>>(),
        ["/bye", "/hi"]
    );
    assert!(s.delete_canned(&t(), "2").await.unwrap());
    assert_eq!(s.canned(&t()).await.unwrap().len(), 1);
}

async fn history_pages_newest_first_by_type<S: WorkspaceStore>(s: S) {
    let user = u("u1");
    assert!(
        s.history(&t(), &user, None, None, 10)
            .await
            .unwrap()
            .events
            .is_empty(),
        "no history yet"
    );
    for (i, kind) in [
        EngagementType::Coupon,
        EngagementType::Points,
        EngagementType::Coupon,
        EngagementType::Promo,
        EngagementType::Coupon,
    ]
    .into_iter()
    .enumerate()
    {
        s.add_history(&t(), &user, event(&format!("e{i}"), kind, 1000 + i as u64))
            .await
            .unwrap();
    }
    // Same id again: replaced, not duplicated; two events at the same time both kept.
    s.add_history(&t(), &user, event("e4", EngagementType::Coupon, 1004))
        .await
        .unwrap();
    s.add_history(&t(), &user, event("e5", EngagementType::Points, 1004))
        .await
        .unwrap();
    let ids = |p: &chathub_store::EngagementHistoryPage| {
        p.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };
    let p1 = s.history(&t(), &user, None, None, 3).await.unwrap();
    assert_eq!(ids(&p1), ["e5", "e4", "e3"]);
    let p2 = s
        .history(&t(), &user, None, p1.next_cursor.as_deref(), 3)
        .await
        .unwrap();
    assert_eq!(ids(&p2), ["e2", "e1", "e0"]);
    assert_eq!(p2.next_cursor, None);
    let coupons = s
        .history(&t(), &user, Some(EngagementType::Coupon), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&coupons), ["e4", "e2", "e0"]);
    assert!(s.history(&t(), &user, None, Some("junk"), 3).await.is_err());
}

async fn redeem_is_atomic<S: WorkspaceStore>(s: S) {
    let s = Arc::new(s);
    s.upsert_item(&t(), coupon("once", true, None))
        .await
        .unwrap();
    s.upsert_item(&t(), coupon("few", false, Some(5)))
        .await
        .unwrap();
    let item = |id: &str, once, stock| coupon(id, once, stock);
    let redeem_ev = |id: &str| HistoryEvent {
        action: HistoryAction::Redeemed,
        engagement: Some("once".into()),
        ..event(id, EngagementType::Coupon, 5)
    };
    assert_eq!(
        s.redeem(&t(), &u("u1"), &item("once", true, None), redeem_ev("r1"))
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        s.redeem(&t(), &u("u1"), &item("once", true, None), redeem_ev("r2"))
            .await
            .unwrap(),
        Err(RedeemRefusal::Ineligible(Ineligible::AlreadyRedeemed))
    );
    assert_eq!(s.redeemed(&t(), &u("u1")).await.unwrap(), ["once"]);
    assert_eq!(
        s.redeem(&t(), &u("u1"), &item("gone", false, None), redeem_ev("r3"))
            .await
            .unwrap(),
        Err(RedeemRefusal::UnknownItem)
    );
    // 20 users race for 5 coupons: exactly 5 win, stock ends at 0.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.redeem(
                &t(),
                &u(&format!("racer{i}")),
                &coupon("few", false, Some(5)),
                event(&format!("x{i}"), EngagementType::Coupon, 9),
            )
            .await
            .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(r) => assert_eq!(r, RedeemRefusal::Ineligible(Ineligible::OutOfStock)),
        }
    }
    assert_eq!(won, 5);
    let few = s
        .items(&t())
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == "few")
        .unwrap();
    assert_eq!(few.rules.stock, Some(0));
    let history = s.history(&t(), &u("u1"), None, None, 10).await.unwrap();
    assert_eq!(
        history.events.len(),
        1,
        "the refused redeem recorded nothing"
    );
}

async fn presence_aggregates_devices_and_expires<S: WorkspaceStore>(s: S) {
    s.heartbeat(&t(), &beat("agent:alice", "s1", Presence::Away, 1_000, 500))
        .await
        .unwrap();
    s.heartbeat(
        &t(),
        &beat("agent:alice", "s2", Presence::Available, 1_000, 500),
    )
    .await
    .unwrap();
    s.heartbeat(&t(), &beat("agent:bob", "s3", Presence::Away, 1_000, 500))
        .await
        .unwrap();
    let at = |now| {
        let s = &s;
        async move {
            s.presence(&t(), now)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.who, e.presence))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        at(1_100).await,
        vec![
            ("agent:alice".into(), Presence::Available),
            ("agent:bob".into(), Presence::Away)
        ]
    );
    s.leave(&t(), "agent:alice", "s2").await.unwrap();
    assert_eq!(at(1_100).await[0], ("agent:alice".into(), Presence::Away));
    assert!(s.online(&t(), "agent:bob", 1_100).await.unwrap());
    assert!(!s.online(&t(), "agent:bob", 2_000).await.unwrap());
    assert!(!s.online(&t(), "end_user:nobody", 1_100).await.unwrap());
    // End users are not listed, only asked about one by one.
    s.heartbeat(
        &t(),
        &beat("end_user:u1", "s9", Presence::Available, 1_000, 500),
    )
    .await
    .unwrap();
    assert!(s.online(&t(), "end_user:u1", 1_100).await.unwrap());
    assert_eq!(s.presence(&t(), 1_100).await.unwrap().len(), 2);
    let alice = s
        .presence_of(&t(), "agent:alice", 1_100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((alice.presence, alice.last_seen), (Presence::Away, 1_000));
    assert_eq!(
        s.presence_of(&t(), "agent:nobody", 1_100).await.unwrap(),
        None
    );
    // No heartbeat for longer than the TTL: offline, last seen kept.
    let later = s.presence(&t(), 2_000).await.unwrap();
    assert!(
        later
            .iter()
            .all(|e| e.presence == Presence::Offline && e.last_seen == 1_000)
    );
    // Display names: remembered from the sessions that give one, for listed people.
    assert_eq!(later[0].name, None);
    s.heartbeat(
        &t(),
        &Heartbeat {
            name: Some("Alice Martin"),
            ..beat("agent:alice", "s4", Presence::Available, 3_000, 500)
        },
    )
    .await
    .unwrap();
    let alice = s
        .presence_of(&t(), "agent:alice", 3_100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.name.as_deref(), Some("Alice Martin"));
    let listed = s.presence(&t(), 3_100).await.unwrap();
    assert_eq!(listed[0].name.as_deref(), Some("Alice Martin"));
    assert_eq!(listed[1].name, None);
    assert!(!alice.supervisor);
    // Supervisors are remembered as the latest session says.
    s.heartbeat(
        &t(),
        &Heartbeat {
            supervisor: true,
            ..beat("agent:alice", "s5", Presence::Available, 3_200, 500)
        },
    )
    .await
    .unwrap();
    let listed = s.presence(&t(), 3_300).await.unwrap();
    assert!(listed[0].supervisor && !listed[1].supervisor);
    s.heartbeat(
        &t(),
        &beat("agent:alice", "s5", Presence::Available, 3_400, 500),
    )
    .await
    .unwrap();
    let alice = s
        .presence_of(&t(), "agent:alice", 3_500)
        .await
        .unwrap()
        .unwrap();
    assert!(!alice.supervisor);
}

fn beat<'a>(
    who: &'a str,
    session: &'a str,
    presence: Presence,
    now: u64,
    ttl_ms: u64,
) -> Heartbeat<'a> {
    Heartbeat {
        who,
        session,
        presence,
        now,
        ttl_ms,
        listed: who.starts_with("agent:"),
        supervisor: false,
        name: None,
    }
}

fn entry(at: u64, target: &str) -> AuditEntry {
    AuditEntry {
        cursor: String::new(),
        at,
        actor: Author {
            role: Role::Admin,
            id: "carol".into(),
        },
        action: AuditAction::CannedPut,
        target: Some(target.into()),
        detail: serde_json::json!({"shortcut": "/hi"}),
    }
}

/// Recorded in order, read newest first in pages whose cursors neither skip nor repeat,
/// per tenant, and nothing recorded before the retention's start is read back.
async fn audit_is_appended_paged_and_kept_for_its_retention<S: WorkspaceStore>(s: S) {
    let now = 1_800_000_000_000;
    let mut cursors = Vec::new();
    for i in 0..7 {
        let recorded = s
            .record_audit(&t(), entry(now + i, &format!("c{i}")), 0)
            .await
            .unwrap();
        assert!(!recorded.cursor.is_empty());
        assert!(!cursors.contains(&recorded.cursor));
        cursors.push(recorded.cursor);
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.audit(&t(), before.as_deref(), 3, 0).await.unwrap();
        assert!(page.entries.len() <= 3);
        seen.extend(page.entries.iter().map(|e| e.target.clone().unwrap()));
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["c6", "c5", "c4", "c3", "c2", "c1", "c0"]);
    let first = s.audit(&t(), None, 1, 0).await.unwrap();
    assert_eq!(first.entries[0], {
        let mut e = entry(now + 6, "c6");
        e.cursor = cursors[6].clone();
        e
    });
    // Another tenant has its own log.
    let other = TenantId::new("other").unwrap();
    assert!(
        s.audit(&other, None, 10, 0)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    // Past the retention: not read back, and dropped when the next entry is recorded.
    let keep_since = now + 4;
    let kept = s.audit(&t(), None, 10, keep_since).await.unwrap();
    assert_eq!(
        kept.entries
            .iter()
            .map(|e| e.target.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["c6", "c5", "c4"]
    );
    assert_eq!(kept.next_cursor, None);
    s.record_audit(&t(), entry(now + 10, "c10"), keep_since)
        .await
        .unwrap();
    assert_eq!(
        s.audit(&t(), None, 10, keep_since)
            .await
            .unwrap()
            .entries
            .len(),
        4
    );
    // A cursor the store did not give is refused.
    assert!(s.audit(&t(), Some("nonsense"), 10, 0).await.is_err());
}

async fn retention_policies_are_listed_while_set<S: WorkspaceStore>(s: S) {
    let other = TenantId::new("other").unwrap();
    assert_eq!(s.settings(&t()).await.unwrap().retention_days, None);
    assert!(s.retention_policies().await.unwrap().is_empty());
    s.set_retention_days(&t(), Some(30)).await.unwrap();
    s.set_retention_days(&other, Some(7)).await.unwrap();
    assert_eq!(s.settings(&t()).await.unwrap().retention_days, Some(30));
    assert_eq!(
        s.retention_policies().await.unwrap(),
        vec![(t(), 30), (other.clone(), 7)]
    );
    // Other settings are left as they are, and the policy survives their changes.
    s.set_chat_disabled(&t(), true).await.unwrap();
    assert_eq!(s.settings(&t()).await.unwrap().retention_days, Some(30));
    s.set_retention_days(&t(), Some(90)).await.unwrap();
    s.set_retention_days(&other, None).await.unwrap();
    assert_eq!(s.retention_policies().await.unwrap(), vec![(t(), 90)]);
    assert_eq!(s.settings(&other).await.unwrap().retention_days, None);
    assert!(s.settings(&t()).await.unwrap().chat_disabled);
}

fn memory() -> MemoryWorkspace {
    MemoryWorkspace::default()
}

async fn redis(server: &RedisServer) -> RedisWorkspace<redis::aio::ConnectionManager> {
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    RedisWorkspace::new(conn, RedisKeys::new("ws"))
}

macro_rules! both {
    ($body:ident) => {
        mod $body {
            use super::*;
            #[tokio::test]
            async fn memory() {
                $body(super::memory()).await;
            }
            #[tokio::test]
            async fn data_dir() {
                let dir = chathub_testkit::ScratchDir::new("workspace-data");
                let config = chathub_store::sqlite::DataDirConfig::new(dir.path());
                let opened = chathub_store::sqlite::open(&config, Default::default()).unwrap();
                $body(opened.workspace).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let server = RedisServer::start();
                $body(super::redis(&server).await).await;
            }
        }
    };
}

both!(settings_catalogue_profiles_canned);
both!(history_pages_newest_first_by_type);
both!(redeem_is_atomic);
both!(presence_aggregates_devices_and_expires);
both!(audit_is_appended_paged_and_kept_for_its_retention);
both!(retention_policies_are_listed_while_set);

/// The data directory keeps the audit log across a restart, trimmed entries gone.
#[tokio::test]
async fn the_audit_log_survives_a_restart() {
    let dir = chathub_testkit::ScratchDir::new("workspace-audit");
    let config = chathub_store::sqlite::DataDirConfig::new(dir.path());
    let cursors = {
        let opened = chathub_store::sqlite::open(&config, Default::default()).unwrap();
        let ws = opened.workspace;
        let mut cursors = Vec::new();
        for i in 0..3 {
            cursors.push(
                ws.record_audit(&t(), entry(100 + i, &format!("c{i}")), 0)
                    .await
                    .unwrap()
                    .cursor,
            );
        }
        // The oldest falls out of the retention as the fourth is recorded.
        ws.record_audit(&t(), entry(200, "c3"), 101).await.unwrap();
        cursors
    };
    let opened = chathub_store::sqlite::open(&config, Default::default()).unwrap();
    let page = opened.workspace.audit(&t(), None, 10, 0).await.unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|e| e.target.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["c3", "c2", "c1"]
    );
    assert_eq!(page.entries[2].cursor, cursors[1]);
    // Positions go on after the restart.
    let next = opened
        .workspace
        .record_audit(&t(), entry(300, "c4"), 0)
        .await
        .unwrap();
    assert!(next.cursor.parse::<u64>().unwrap() > page.entries[0].cursor.parse::<u64>().unwrap());
}
