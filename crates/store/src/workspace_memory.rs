//! The workspace data in process memory: one lock per tenant (never held across an
//! await), which makes `redeem` atomic.

use crate::StoreError;
use crate::audit::{AuditEntry, AuditPage};
use crate::sqlite::{Journal, Write};
use crate::workspace::{
    EngagementHistoryPage, ErasedUser, Heartbeat, Presence, PresenceEntry, RedeemRefusal,
    TenantSettings, WorkspaceStore,
};
use chathub_domain::attachment::AttachmentPolicy;
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
    /// Listed people's last heartbeat saying `available`.
    last_available: HashMap<String, u64>,
    /// Display names of listed people.
    names: HashMap<String, String>,
    /// Listed people whose latest session held `chat.supervise`.
    supervisors: HashSet<String>,
    /// The latest waits before a take (ms), newest first.
    waits: std::collections::VecDeque<u64>,
    /// Heartbeats since the last sweep of expired sessions.
    beats: u64,
    /// The audit log, oldest first, by position.
    audit: std::collections::VecDeque<(u64, AuditEntry)>,
    /// The next audit position.
    next_audit: u64,
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

/// The kinds of workspace rows in the data directory, and their keys.
mod row {
    /// Tenant settings; key empty.
    pub(super) const SETTINGS: &str = "settings";
    /// A catalogue item; key its id.
    pub(super) const ITEM: &str = "item";
    /// An end user's profile; key the user.
    pub(super) const PROFILE: &str = "profile";
    /// An engagement history event; key `user<TAB>event id` (user ids hold no tab).
    pub(super) const HISTORY: &str = "history";
    /// An item a user redeemed; key `user<TAB>item id`.
    pub(super) const REDEEMED: &str = "redeemed";
    /// A canned response; key its id.
    pub(super) const CANNED: &str = "canned";
    /// An audit log entry; key its position, 20 digits (rows load in key order).
    pub(super) const AUDIT: &str = "audit";
}

/// The memory workspace store. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryWorkspace {
    tenants: Arc<DashMap<TenantId, Arc<Mutex<Tenant>>>>,
    /// One writer at a time per tenant, held across the journal's commit so a change is
    /// decided, kept and applied without another change in between (reads never wait).
    writers: Arc<DashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
    /// Where changes are kept before memory changes (`None`: memory only).
    journal: Option<Journal>,
}

impl MemoryWorkspace {
    /// Keeps the tenant's settings (under its writer lock, held by the caller), then
    /// serves them.
    async fn save_settings(
        &self,
        t: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        self.keep(vec![row_write(
            t,
            row::SETTINGS,
            String::new(),
            Some(&settings),
        )?])
        .await?;
        self.with(t, |w| w.settings = settings);
        Ok(())
    }

    /// A workspace whose changes are kept in `journal` (filled from it by
    /// [`crate::sqlite::open`]).
    pub fn journaled(journal: Journal) -> Self {
        MemoryWorkspace {
            journal: Some(journal),
            ..MemoryWorkspace::default()
        }
    }

    fn with<R>(&self, t: &TenantId, f: impl FnOnce(&mut Tenant) -> R) -> R {
        let tenant = self.tenants.entry(t.clone()).or_default().clone();
        let mut tenant = tenant.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut tenant)
    }

    async fn writer(&self, t: &TenantId) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = self.writers.entry(t.clone()).or_default().clone();
        gate.lock_owned().await
    }

    /// Keeps `writes` in the journal (nothing without one).
    async fn keep(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        match &self.journal {
            Some(journal) => journal.commit(writes).await,
            None => Ok(()),
        }
    }

    /// The journal write that keeps an engagement history event (for a command that
    /// journals it with its other writes, then calls [`restore_history`]).
    ///
    /// [`restore_history`]: MemoryWorkspace::restore_history
    pub fn history_write(
        t: &TenantId,
        user: &EndUserId,
        event: &HistoryEvent,
    ) -> Result<Write, StoreError> {
        row_write(
            t,
            row::HISTORY,
            format!("{user}\t{}", event.id),
            Some(event),
        )
    }

    /// Puts an engagement history event in memory without journaling it (already kept,
    /// or read back from the data directory).
    pub fn restore_history(&self, t: &TenantId, user: &EndUserId, event: HistoryEvent) {
        self.with(t, |w| insert_history(w, user, event));
    }

    /// Puts one row read back from the data directory in place.
    pub fn restore(
        &self,
        t: &TenantId,
        kind: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        fn decode<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, StoreError> {
            serde_json::from_str(v).map_err(|e| StoreError::corrupt("workspace row", e))
        }
        let split = |key: &str| -> Result<(EndUserId, String), StoreError> {
            let (user, id) = key
                .split_once('\t')
                .ok_or_else(|| StoreError::corrupt("workspace row", format!("key {key}")))?;
            let user = EndUserId::new(user).map_err(|e| StoreError::corrupt("user id", e))?;
            Ok((user, id.to_owned()))
        };
        let user = |key: &str| EndUserId::new(key).map_err(|e| StoreError::corrupt("user id", e));
        match kind {
            row::SETTINGS => {
                let settings = decode(value)?;
                self.with(t, |w| w.settings = settings);
            }
            row::ITEM => {
                let item: CatalogueItem = decode(value)?;
                self.with(t, |w| w.items.insert(item.id.clone(), item));
            }
            row::PROFILE => {
                let (user, profile) = (user(key)?, decode(value)?);
                self.with(t, |w| w.profiles.insert(user, profile));
            }
            row::HISTORY => {
                let (user, _) = split(key)?;
                self.restore_history(t, &user, decode(value)?);
            }
            row::REDEEMED => {
                let (user, id) = split(key)?;
                self.with(t, |w| w.redeemed.entry(user).or_default().insert(id));
            }
            row::CANNED => {
                let canned: CannedResponse = decode(value)?;
                self.with(t, |w| w.canned.insert(canned.id.clone(), canned));
            }
            row::AUDIT => {
                let position: u64 = key
                    .parse()
                    .map_err(|e| StoreError::corrupt("audit position", e))?;
                let mut entry: AuditEntry = decode(value)?;
                entry.cursor = position.to_string();
                self.with(t, |w| {
                    w.next_audit = w.next_audit.max(position + 1);
                    w.audit.push_back((position, entry));
                });
            }
            other => {
                return Err(StoreError::corrupt(
                    "workspace row",
                    format!("kind {other}"),
                ));
            }
        }
        Ok(())
    }
}

/// The journal write of one workspace row (`None`: its removal).
fn row_write<T: serde::Serialize>(
    t: &TenantId,
    kind: &'static str,
    key: String,
    value: Option<&T>,
) -> Result<Write, StoreError> {
    let value = value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Internal(format!("encode workspace row: {e}")))?;
    Ok(Write::Workspace {
        tenant: t.clone(),
        kind,
        key,
        value,
    })
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
        Ok(self.with(t, |w| w.settings.clone()))
    }

    async fn set_attachment_policy(
        &self,
        t: &TenantId,
        policy: AttachmentPolicy,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.attachments = policy;
        self.save_settings(t, settings).await
    }

    async fn set_retention_days(&self, t: &TenantId, days: Option<u32>) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.retention_days = days;
        self.save_settings(t, settings).await
    }

    async fn set_edit_window(&self, t: &TenantId, secs: u32) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.edit_window_secs = Some(secs);
        self.save_settings(t, settings).await
    }

    async fn set_survey(
        &self,
        t: &TenantId,
        survey: Option<crate::workspace::SurveySettings>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.survey = survey;
        self.save_settings(t, settings).await
    }

    async fn set_release_policy(
        &self,
        t: &TenantId,
        policy: Option<crate::workspace::ReleasePolicy>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.release = policy;
        self.save_settings(t, settings).await
    }

    async fn set_alert_schedule(
        &self,
        t: &TenantId,
        schedule: Option<crate::workspace::AlertSchedule>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.alerts = schedule;
        self.save_settings(t, settings).await
    }

    async fn record_wait(&self, t: &TenantId, waited_ms: u64) -> Result<(), StoreError> {
        self.with(t, |w| {
            w.waits.push_front(waited_ms);
            w.waits.truncate(crate::workspace::RECENT_WAITS);
        });
        Ok(())
    }

    async fn recent_waits(&self, t: &TenantId) -> Result<Vec<u64>, StoreError> {
        Ok(self.with(t, |w| w.waits.iter().copied().collect()))
    }

    async fn set_bot(
        &self,
        t: &TenantId,
        bot: Option<crate::workspace::BotSettings>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.bot = bot;
        self.save_settings(t, settings).await
    }

    async fn set_business_hours(
        &self,
        t: &TenantId,
        hours: Option<chathub_domain::hours::BusinessHours>,
    ) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        settings.hours = hours;
        self.save_settings(t, settings).await
    }

    async fn timer_policies(
        &self,
    ) -> Result<Vec<(TenantId, crate::workspace::TimerPolicies)>, StoreError> {
        let mut policies: Vec<(TenantId, crate::workspace::TimerPolicies)> = self
            .tenants
            .iter()
            .filter_map(|entry| {
                let workspace = entry.value().lock().unwrap_or_else(|p| p.into_inner());
                let policies = crate::workspace::TimerPolicies {
                    release: workspace.settings.release,
                    alerts: workspace.settings.alerts.clone(),
                    hours: workspace.settings.hours.clone(),
                    bot: workspace.settings.bot.as_ref().map(|b| b.agent.clone()),
                };
                policies.any().then(|| (entry.key().clone(), policies))
            })
            .collect();
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(policies)
    }

    async fn retention_policies(&self) -> Result<Vec<(TenantId, u32)>, StoreError> {
        let mut policies: Vec<(TenantId, u32)> = self
            .tenants
            .iter()
            .filter_map(|entry| {
                let days = entry
                    .value()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .settings
                    .retention_days?;
                Some((entry.key().clone(), days))
            })
            .collect();
        policies.sort();
        Ok(policies)
    }

    async fn set_chat_disabled(&self, t: &TenantId, disabled: bool) -> Result<bool, StoreError> {
        let _writer = self.writer(t).await;
        let mut settings = self.with(t, |w| w.settings.clone());
        if settings.chat_disabled == disabled {
            return Ok(false);
        }
        settings.chat_disabled = disabled;
        self.save_settings(t, settings).await?;
        Ok(true)
    }

    async fn upsert_item(&self, t: &TenantId, item: CatalogueItem) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        self.keep(vec![row_write(t, row::ITEM, item.id.clone(), Some(&item))?])
            .await?;
        self.with(t, |w| w.items.insert(item.id.clone(), item));
        Ok(())
    }

    async fn delete_item(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer(t).await;
        if !self.with(t, |w| w.items.contains_key(id)) {
            return Ok(false);
        }
        self.keep(vec![row_write::<()>(t, row::ITEM, id.to_owned(), None)?])
            .await?;
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
        let _writer = self.writer(t).await;
        self.keep(vec![row_write(
            t,
            row::PROFILE,
            user.to_string(),
            Some(&profile),
        )?])
        .await?;
        self.with(t, |w| w.profiles.insert(user.clone(), profile));
        Ok(())
    }

    async fn erase_user(&self, t: &TenantId, user: &EndUserId) -> Result<ErasedUser, StoreError> {
        let _writer = self.writer(t).await;
        let who = chathub_domain::Participant::EndUser(user.clone()).key();
        let (profile, history, redeemed) = self.with(t, |w| {
            (
                w.profiles.contains_key(user),
                w.history
                    .get(user)
                    .map(|h| h.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
                    .unwrap_or_default(),
                w.redeemed
                    .get(user)
                    .map(|r| r.iter().cloned().collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
        });
        let gone = |kind: &'static str, key: String| Write::Workspace {
            tenant: t.clone(),
            kind,
            key,
            value: None,
        };
        let mut writes = Vec::new();
        if profile {
            writes.push(gone(row::PROFILE, user.to_string()));
        }
        writes.extend(
            history
                .iter()
                .map(|id| gone(row::HISTORY, format!("{user}\t{id}"))),
        );
        writes.extend(
            redeemed
                .iter()
                .map(|id| gone(row::REDEEMED, format!("{user}\t{id}"))),
        );
        self.keep(writes).await?;
        let presence = self.with(t, |w| {
            w.profiles.remove(user);
            w.history.remove(user);
            w.redeemed.remove(user);
            u64::from(w.sessions.remove(&who).is_some())
                + u64::from(w.last_seen.remove(&who).is_some())
                + u64::from(w.last_available.remove(&who).is_some())
                + u64::from(w.names.remove(&who).is_some())
                + u64::from(w.supervisors.remove(&who))
        });
        Ok(ErasedUser {
            profile: u64::from(profile),
            engagement_history: history.len() as u64,
            redeemed: redeemed.len() as u64,
            presence,
        })
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
        let _writer = self.writer(t).await;
        self.keep(vec![Self::history_write(t, user, &event)?])
            .await?;
        self.restore_history(t, user, event);
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
        // Decided, kept and applied under the tenant's writer: no other change between.
        let _writer = self.writer(t).await;
        let decided = self.with(t, |w| {
            let Some(current) = w.items.get(&item.id) else {
                return Err(RedeemRefusal::UnknownItem);
            };
            let already = w.redeemed.get(user).is_some_and(|r| r.contains(&item.id));
            if current.rules.once_per_user && already {
                return Err(RedeemRefusal::Ineligible(Ineligible::AlreadyRedeemed));
            }
            let mut after = current.clone();
            match &mut after.rules.stock {
                Some(0) => return Err(RedeemRefusal::Ineligible(Ineligible::OutOfStock)),
                Some(n) => *n -= 1,
                None => {}
            }
            Ok(after)
        });
        let after = match decided {
            Ok(after) => after,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.keep(vec![
            row_write(t, row::ITEM, after.id.clone(), Some(&after))?,
            row_write(
                t,
                row::REDEEMED,
                format!("{user}\t{}", after.id),
                Some(&true),
            )?,
            Self::history_write(t, user, &event)?,
        ])
        .await?;
        self.with(t, |w| {
            w.redeemed
                .entry(user.clone())
                .or_default()
                .insert(after.id.clone());
            w.items.insert(after.id.clone(), after);
            insert_history(w, user, event);
        });
        Ok(Ok(()))
    }

    async fn upsert_canned(&self, t: &TenantId, canned: CannedResponse) -> Result<(), StoreError> {
        let _writer = self.writer(t).await;
        self.keep(vec![row_write(
            t,
            row::CANNED,
            canned.id.clone(),
            Some(&canned),
        )?])
        .await?;
        self.with(t, |w| w.canned.insert(canned.id.clone(), canned));
        Ok(())
    }

    async fn delete_canned(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        let _writer = self.writer(t).await;
        if !self.with(t, |w| w.canned.contains_key(id)) {
            return Ok(false);
        }
        self.keep(vec![row_write::<()>(t, row::CANNED, id.to_owned(), None)?])
            .await?;
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
                if beat.presence == Presence::Available {
                    w.last_available.insert(beat.who.to_owned(), beat.now);
                }
                if beat.supervisor {
                    w.supervisors.insert(beat.who.to_owned());
                } else {
                    w.supervisors.remove(beat.who);
                }
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
                    last_available: w.last_available.get(who).copied(),
                    name: w.names.get(who).cloned(),
                    supervisor: w.supervisors.contains(who.as_str()),
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
                last_available: w.last_available.get(who).copied(),
                name: w.names.get(who).cloned(),
                supervisor: w.supervisors.contains(who),
            })
        }))
    }

    async fn online(&self, t: &TenantId, who: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self.online_now(t, who, now))
    }

    async fn record_audit(
        &self,
        t: &TenantId,
        mut entry: AuditEntry,
        keep_since: u64,
    ) -> Result<AuditEntry, StoreError> {
        let _writer = self.writer(t).await;
        let (position, expired) = self.with(t, |w| {
            let expired: Vec<u64> = w
                .audit
                .iter()
                .take_while(|(_, e)| e.at < keep_since)
                .map(|(p, _)| *p)
                .collect();
            (w.next_audit, expired)
        });
        entry.cursor = position.to_string();
        let mut writes = vec![row_write(t, row::AUDIT, audit_key(position), Some(&entry))?];
        for p in &expired {
            writes.push(row_write::<()>(t, row::AUDIT, audit_key(*p), None)?);
        }
        self.keep(writes).await?;
        self.with(t, |w| {
            w.audit.drain(..expired.len().min(w.audit.len()));
            w.audit.push_back((position, entry.clone()));
            w.next_audit = position + 1;
        });
        Ok(entry)
    }

    async fn audit(
        &self,
        t: &TenantId,
        before: Option<&str>,
        limit: usize,
        keep_since: u64,
    ) -> Result<AuditPage, StoreError> {
        let before = before
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| StoreError::Invalid("audit cursor"))
            })
            .transpose()?;
        Ok(self.with(t, |w| {
            let entries = w
                .audit
                .iter()
                .rev()
                .filter(|(p, _)| before.is_none_or(|b| *p < b))
                .take_while(|(_, e)| e.at >= keep_since)
                .take(limit + 1)
                .map(|(_, e)| e.clone())
                .collect();
            AuditPage::of(entries, limit)
        }))
    }
}

impl MemoryWorkspace {
    fn online_now(&self, t: &TenantId, who: &str, now: u64) -> bool {
        self.with(t, |w| live(w.sessions.get(who), now).next().is_some())
    }
}

/// An audit row's key: its position, zero-padded so rows load in order.
fn audit_key(position: u64) -> String {
    format!("{position:020}")
}

fn insert_history(w: &mut Tenant, user: &EndUserId, event: HistoryEvent) {
    let list = w.history.entry(user.clone()).or_default();
    list.retain(|e| e.id != event.id);
    let at = list.partition_point(|e| (e.at, &e.id) < (event.at, &event.id));
    list.insert(at, event);
}
