//! The workspace data in process memory: one lock per tenant (never held across an
//! await), which makes `redeem` atomic.

use crate::StoreError;
use crate::workspace::{
    EngagementHistoryPage, Heartbeat, Presence, PresenceEntry, RedeemRefusal, TenantSettings,
    WorkspaceStore,
};
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EngagementType, HistoryEvent, Ineligible, Profile,
};
use chathub_domain::{EndUserId, TenantId};
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Tenant {
    settings: TenantSettings,
    items: BTreeMap<String, CatalogueItem>,
    profiles: HashMap<EndUserId, Profile>,
    /// Per user, sorted by `(at, id)`.
    history: HashMap<EndUserId, Vec<HistoryEvent>>,
    redeemed: HashMap<EndUserId, HashSet<String>>,
    canned: BTreeMap<String, CannedResponse>,
    /// who → session → (presence, expires at).
    sessions: HashMap<String, HashMap<String, (Presence, u64)>>,
    last_seen: HashMap<String, u64>,
    /// Display names of listed people.
    names: HashMap<String, String>,
    /// Heartbeats since the last sweep of expired sessions.
    beats: u64,
}

/// A full sweep of expired sessions every this many heartbeats (a sweep per heartbeat
/// would make connecting quadratic in the number of sessions).
const SWEEP_EVERY: u64 = 4096;

fn live(
    sessions: Option<&HashMap<String, (Presence, u64)>>,
    now: u64,
) -> impl Iterator<Item = Presence> + '_ {
    sessions
        .into_iter()
        .flatten()
        .filter(move |(_, (_, expires))| *expires > now)
        .map(|(_, (p, _))| *p)
}

/// The memory workspace store. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryWorkspace {
    tenants: Arc<DashMap<TenantId, Arc<Mutex<Tenant>>>>,
}

impl MemoryWorkspace {
    fn with<R>(&self, t: &TenantId, f: impl FnOnce(&mut Tenant) -> R) -> R {
        let tenant = self.tenants.entry(t.clone()).or_default().clone();
        let mut tenant = tenant.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut tenant)
    }
}

/// History cursors are `"<at>:<id>"`: everything strictly older in `(at, id)` order.
pub(crate) fn parse_history_cursor(cursor: &str) -> Result<(u64, String), StoreError> {
    let (at, id) = cursor
        .split_once(':')
        .ok_or(StoreError::Invalid("history cursor"))?;
    Ok((
        at.parse()
            .map_err(|_| StoreError::Invalid("history cursor"))?,
        id.to_owned(),
    ))
}

impl WorkspaceStore for MemoryWorkspace {
    async fn settings(&self, t: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self.with(t, |w| w.settings))
    }

    async fn set_chat_disabled(&self, t: &TenantId, disabled: bool) -> Result<bool, StoreError> {
        Ok(self.with(t, |w| {
            let changed = w.settings.chat_disabled != disabled;
            w.settings.chat_disabled = disabled;
            changed
        }))
    }

    async fn upsert_item(&self, t: &TenantId, item: CatalogueItem) -> Result<(), StoreError> {
        self.with(t, |w| w.items.insert(item.id.clone(), item));
        Ok(())
    }

    async fn delete_item(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(t, |w| w.items.remove(id).is_some()))
    }

    async fn items(&self, t: &TenantId) -> Result<Vec<CatalogueItem>, StoreError> {
        Ok(self.with(t, |w| w.items.values().cloned().collect()))
    }

    async fn upsert_profile(
        &self,
        t: &TenantId,
        user: &EndUserId,
        profile: Profile,
    ) -> Result<(), StoreError> {
        self.with(t, |w| w.profiles.insert(user.clone(), profile));
        Ok(())
    }

    async fn profile(&self, t: &TenantId, user: &EndUserId) -> Result<Option<Profile>, StoreError> {
        Ok(self.with(t, |w| w.profiles.get(user).cloned()))
    }

    async fn add_history(
        &self,
        t: &TenantId,
        user: &EndUserId,
        event: HistoryEvent,
    ) -> Result<(), StoreError> {
        self.with(t, |w| insert_history(w, user, event));
        Ok(())
    }

    async fn history(
        &self,
        t: &TenantId,
        user: &EndUserId,
        filter: Option<EngagementType>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<EngagementHistoryPage, StoreError> {
        let before = before.map(parse_history_cursor).transpose()?;
        Ok(self.with(t, |w| {
            let all = w.history.get(user).map(Vec::as_slice).unwrap_or_default();
            let mut events: Vec<HistoryEvent> = all
                .iter()
                .rev()
                .filter(|e| filter.is_none_or(|f| e.engagement_type == f))
                .filter(|e| {
                    before
                        .as_ref()
                        .is_none_or(|(at, id)| (e.at, &e.id) < (*at, id))
                })
                .take(limit + 1)
                .cloned()
                .collect();
            let more = events.len() > limit;
            events.truncate(limit);
            let next_cursor = more
                .then(|| events.last().map(|e| format!("{}:{}", e.at, e.id)))
                .flatten();
            EngagementHistoryPage {
                events,
                next_cursor,
            }
        }))
    }

    async fn redeemed(&self, t: &TenantId, user: &EndUserId) -> Result<Vec<String>, StoreError> {
        Ok(self.with(t, |w| {
            let mut ids: Vec<String> = w
                .redeemed
                .get(user)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            ids.sort();
            ids
        }))
    }

    async fn redeem(
        &self,
        t: &TenantId,
        user: &EndUserId,
        item: &CatalogueItem,
        event: HistoryEvent,
    ) -> Result<Result<(), RedeemRefusal>, StoreError> {
        Ok(self.with(t, |w| {
            let Some(current) = w.items.get_mut(&item.id) else {
                return Err(RedeemRefusal::UnknownItem);
            };
            let already = w.redeemed.get(user).is_some_and(|r| r.contains(&item.id));
            if current.rules.once_per_user && already {
                return Err(RedeemRefusal::Ineligible(Ineligible::AlreadyRedeemed));
            }
            match &mut current.rules.stock {
                Some(0) => return Err(RedeemRefusal::Ineligible(Ineligible::OutOfStock)),
                Some(n) => *n -= 1,
                None => {}
            }
            w.redeemed
                .entry(user.clone())
                .or_default()
                .insert(item.id.clone());
            insert_history(w, user, event);
            Ok(())
        }))
    }

    async fn upsert_canned(&self, t: &TenantId, canned: CannedResponse) -> Result<(), StoreError> {
        self.with(t, |w| w.canned.insert(canned.id.clone(), canned));
        Ok(())
    }

    async fn delete_canned(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(t, |w| w.canned.remove(id).is_some()))
    }

    async fn canned(&self, t: &TenantId) -> Result<Vec<CannedResponse>, StoreError> {
        Ok(self.with(t, |w| {
            let mut all: Vec<CannedResponse> = w.canned.values().cloned().collect();
            all.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
            all
        }))
    }

    async fn heartbeat(&self, t: &TenantId, beat: &Heartbeat<'_>) -> Result<(), StoreError> {
        self.with(t, |w| {
            w.beats += 1;
            if w.beats % SWEEP_EVERY == 0 {
                let now = beat.now;
                w.sessions.retain(|_, sessions| {
                    sessions.retain(|_, (_, expires)| *expires > now);
                    !sessions.is_empty()
                });
            }
            let sessions = w.sessions.entry(beat.who.to_owned()).or_default();
            sessions.retain(|_, (_, expires)| *expires > beat.now);
            sessions.insert(
                beat.session.to_owned(),
                (beat.presence, beat.now + beat.ttl_ms),
            );
            if beat.listed {
                w.last_seen.insert(beat.who.to_owned(), beat.now);
                if let Some(name) = beat.name {
                    w.names.insert(beat.who.to_owned(), name.to_owned());
                }
            }
        });
        Ok(())
    }

    async fn leave(&self, t: &TenantId, who: &str, session: &str) -> Result<(), StoreError> {
        self.with(t, |w| {
            if let Some(sessions) = w.sessions.get_mut(who) {
                sessions.remove(session);
                if sessions.is_empty() {
                    w.sessions.remove(who);
                }
            }
        });
        Ok(())
    }

    async fn presence(&self, t: &TenantId, now: u64) -> Result<Vec<PresenceEntry>, StoreError> {
        Ok(self.with(t, |w| {
            let mut out: Vec<PresenceEntry> = w
                .last_seen
                .iter()
                .map(|(who, seen)| PresenceEntry {
                    who: who.clone(),
                    presence: Presence::aggregate(live(w.sessions.get(who), now)),
                    last_seen: *seen,
                    name: w.names.get(who).cloned(),
                })
                .collect();
            out.sort_by(|a, b| a.who.cmp(&b.who));
            out
        }))
    }

    async fn presence_of(
        &self,
        t: &TenantId,
        who: &str,
        now: u64,
    ) -> Result<Option<PresenceEntry>, StoreError> {
        Ok(self.with(t, |w| {
            let seen = *w.last_seen.get(who)?;
            Some(PresenceEntry {
                who: who.to_owned(),
                presence: Presence::aggregate(live(w.sessions.get(who), now)),
                last_seen: seen,
                name: w.names.get(who).cloned(),
            })
        }))
    }

    async fn online(&self, t: &TenantId, who: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self.online_now(t, who, now))
    }
}

impl MemoryWorkspace {
    fn online_now(&self, t: &TenantId, who: &str, now: u64) -> bool {
        self.with(t, |w| live(w.sessions.get(who), now).next().is_some())
    }
}

fn insert_history(w: &mut Tenant, user: &EndUserId, event: HistoryEvent) {
    let list = w.history.entry(user.clone()).or_default();
    list.retain(|e| e.id != event.id);
    let at = list.partition_point(|e| (e.at, &e.id) < (event.at, &event.id));
    list.insert(at, event);
}
