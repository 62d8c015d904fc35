//! The agent workspace's data: tenant settings, the engagement catalogue, end-user
//! profiles and engagement history, canned responses, and presence.
//!
//! Guarantees: `redeem` is atomic (stock and once-per-user cannot be beaten by concurrent
//! redeems); history upserts are idempotent by event id; presence entries expire by
//! themselves (a node that dies takes its sessions' presence with it within the TTL).

use crate::StoreError;
use crate::audit::{AuditEntry, AuditPage};
use chathub_domain::attachment::AttachmentPolicy;
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EngagementType, HistoryEvent, Ineligible, Profile,
};
use chathub_domain::{EndUserId, TenantId};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// Tenant-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantSettings {
    /// Two-way chat is disabled for the whole tenant.
    pub chat_disabled: bool,
    /// Which files the tenant accepts (defaults when never set).
    #[serde(default)]
    pub attachments: AttachmentPolicy,
    /// Conversations are kept this many days after their last event, and no event older
    /// than that is kept or shown (`None`: kept as long as the node keeps history).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// How long after a message its author may edit or unsend it, seconds (`None`: the
    /// default, [`DEFAULT_EDIT_WINDOW_SECS`]; 0: never).
    #[serde(default)]
    pub edit_window_secs: Option<u32>,
    /// When the server gives a stalled conversation back to the queue (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePolicy>,
    /// The satisfaction survey a finish asks the end user (`None`: no survey).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveySettings>,
    /// Who is alerted, and when, while a conversation waits unanswered (`None`: no
    /// server-run alerts; consoles still show the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSchedule>,
    /// When the team is open (`None`: always): outside hours the alert and stall clocks
    /// pause and a waiting end user gets one automatic reply saying when it is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<chathub_domain::hours::BusinessHours>,
    /// The bot that answers first (`None`: new and reopened conversations go to the
    /// queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotSettings>,
}

/// A tenant's bot as first responder: while it has a live session, every new or
/// reopened conversation is owned by it first, until it hands off or a human takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// The bot's id (the `sub` of its `bot` token).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent: chathub_domain::AgentId,
}

/// A tenant's alert schedule: steps counted from when a conversation entered the
/// unanswered queue, each run by the server until somebody takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertSchedule {
    /// The steps (1–[`MAX_ALERT_STEPS`]), each on its own clock.
    pub steps: Vec<AlertStep>,
}

/// Waits before a take remembered per tenant (see [`WorkspaceStore::record_wait`]).
pub const RECENT_WAITS: usize = 50;

/// Most steps of one alert schedule.
pub const MAX_ALERT_STEPS: usize = 8;

/// One step of an alert schedule: at `after_secs`, then every `repeat_secs` (when
/// given), alert `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertStep {
    /// Seconds after the conversation entered the queue.
    pub after_secs: u32,
    /// Again every this many seconds while it waits (`None`: once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_secs: Option<u32>,
    /// Who is alerted.
    pub notify: AlertTarget,
    /// The step is the tenant's service-level breach: its alerts say `breach`, and the
    /// tenant's webhook gets a `breach` delivery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub breach: bool,
}

/// Who one alert step reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertTarget {
    /// The agents whose presence is `available` now (their devices).
    Available,
    /// Every agent the tenant has seen: devices of those online, the push webhook for
    /// the others.
    Agents,
    /// The agents seen holding `chat.supervise`: devices of those online, the push
    /// webhook for the others.
    Supervisors,
}

impl AlertTarget {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertTarget::Available => "available",
            AlertTarget::Agents => "agents",
            AlertTarget::Supervisors => "supervisors",
        }
    }
}

impl AlertStep {
    /// The latest occurrence of this step due `elapsed_ms` after the conversation
    /// entered the queue (0 the first; `None`: not yet due).
    pub fn due_occurrence(&self, elapsed_ms: u64) -> Option<u32> {
        let after = u64::from(self.after_secs) * 1000;
        let since_first = elapsed_ms.checked_sub(after)?;
        Some(match self.repeat_secs {
            Some(every) if every > 0 => {
                u32::try_from(since_first / (u64::from(every) * 1000)).unwrap_or(u32::MAX)
            }
            _ => 0,
        })
    }

    /// When occurrence `k` is due, ms after the conversation entered the queue.
    pub fn due_at(&self, k: u32) -> u64 {
        u64::from(self.after_secs) * 1000
            + u64::from(k) * u64::from(self.repeat_secs.unwrap_or(0)) * 1000
    }
}

/// What the timer sweep runs for one tenant: its stall policy and its alert schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerPolicies {
    /// The stall policy.
    pub release: Option<ReleasePolicy>,
    /// The alert schedule.
    pub alerts: Option<AlertSchedule>,
    /// The business hours.
    pub hours: Option<chathub_domain::hours::BusinessHours>,
    /// The tenant's bot: never a target of the alert schedule (it does not take).
    pub bot: Option<chathub_domain::AgentId>,
}

impl TimerPolicies {
    /// Whether there is anything for the sweep to run (a bot alone needs no timer).
    pub fn any(&self) -> bool {
        self.release.is_some() || self.alerts.is_some() || self.hours.is_some()
    }
}

/// A tenant's stall policy: an active conversation goes back to the queue (`released`)
/// when its owner has been away that long, or its end user has waited that long for a
/// reply. Each limit left out is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// The owner has had no live socket for this long, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_absent_secs: Option<u32>,
    /// The end user's latest message has had no reply for this long, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_reply_secs: Option<u32>,
}

/// A tenant's satisfaction survey: asked after every finish, answered 1–5 with an
/// optional comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SurveySettings {
    /// The question the end user sees (1–500 bytes).
    pub prompt: String,
    /// A catalogue item granted as a thank-you for the answer, when the end user is
    /// entitled to it (recorded as received in their engagement history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<String>,
}

/// The edit window of a tenant that never set one: 15 minutes.
pub const DEFAULT_EDIT_WINDOW_SECS: u32 = 900;

impl TenantSettings {
    /// The edit window in effect, seconds.
    pub fn edit_window(&self) -> u32 {
        self.edit_window_secs.unwrap_or(DEFAULT_EDIT_WINDOW_SECS)
    }
}

pub use chathub_domain::Presence;

/// One session's sign of life.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat<'a> {
    /// `role:id`, e.g. `agent:alice`.
    pub who: &'a str,
    /// The session (unique across nodes).
    pub session: &'a str,
    /// What this session says.
    pub presence: Presence,
    /// Now, ms since the Unix epoch.
    pub now: u64,
    /// The session counts as alive until `now + ttl_ms`.
    pub ttl_ms: u64,
    /// Whether the person appears in [`WorkspaceStore::presence`] listings (agents do;
    /// end users, who can be millions, are only ever asked about one by one).
    pub listed: bool,
    /// Display name (the token's `name`), remembered for listed people so consoles can
    /// show who owns a conversation.
    pub name: Option<&'a str>,
    /// The session holds `chat.supervise` (remembered for listed people, as the latest
    /// session says: who the alert schedule's escalation reaches).
    pub supervisor: bool,
}

/// One person's aggregated presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// `role:id`, e.g. `agent:alice`.
    pub who: String,
    /// Aggregate over the live sessions.
    pub presence: Presence,
    /// Last heartbeat of any session (ms since the Unix epoch).
    pub last_seen: u64,
    /// Last heartbeat of a session that said `available` (`None`: none since this store
    /// started keeping it): how long someone has been away or offline.
    #[serde(default)]
    pub last_available: Option<u64>,
    /// Display name given by the latest session that had one.
    pub name: Option<String>,
    /// The latest session held `chat.supervise`.
    #[serde(default)]
    pub supervisor: bool,
}

/// A page of engagement history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngagementHistoryPage {
    /// Events, newest first.
    pub events: Vec<HistoryEvent>,
    /// Pass as `before` for the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A redemption that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemRefusal {
    /// No such catalogue item.
    UnknownItem,
    /// The rules say no.
    Ineligible(Ineligible),
}

/// What [`WorkspaceStore::erase_user`] removed (counts of records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasedUser {
    /// The profile the brand pushed (0 or 1).
    pub profile: u64,
    /// Engagement history events.
    pub engagement_history: u64,
    /// Redeemed catalogue items.
    pub redeemed: u64,
    /// Presence records (live sessions, last seen, name).
    pub presence: u64,
}

/// The workspace's data (see the module docs).
pub trait WorkspaceStore: Send + Sync + 'static {
    /// The tenant's settings (defaults when never set).
    fn settings(
        &self,
        t: &TenantId,
    ) -> impl Future<Output = Result<TenantSettings, StoreError>> + Send;
    /// Sets the tenant-wide chat switch; returns whether it changed.
    fn set_chat_disabled(
        &self,
        t: &TenantId,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Sets the tenant's retention policy (`None`: none; validated by the caller).
    fn set_retention_days(
        &self,
        t: &TenantId,
        days: Option<u32>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the tenant's edit window, seconds (validated by the caller).
    fn set_edit_window(
        &self,
        t: &TenantId,
        secs: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the tenant's satisfaction survey (`None`: none; validated by the caller).
    fn set_survey(
        &self,
        t: &TenantId,
        survey: Option<SurveySettings>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the tenant's stall policy (`None`: none; validated by the caller).
    fn set_release_policy(
        &self,
        t: &TenantId,
        policy: Option<ReleasePolicy>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the tenant's alert schedule (`None`: none; validated by the caller).
    fn set_alert_schedule(
        &self,
        t: &TenantId,
        schedule: Option<AlertSchedule>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Remembers how long a conversation waited before an agent took it (ms), keeping
    /// the latest [`RECENT_WAITS`] (the estimated wait shown to end users).
    fn record_wait(
        &self,
        t: &TenantId,
        waited_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The latest waits remembered, newest first.
    fn recent_waits(
        &self,
        t: &TenantId,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
    /// Sets the tenant's bot (`None`: none).
    fn set_bot(
        &self,
        t: &TenantId,
        bot: Option<BotSettings>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the tenant's business hours (`None`: always open; validated by the caller).
    fn set_business_hours(
        &self,
        t: &TenantId,
        hours: Option<chathub_domain::hours::BusinessHours>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every tenant with a stall policy, an alert schedule or business hours, and them
    /// (the timer sweep's work).
    fn timer_policies(
        &self,
    ) -> impl Future<Output = Result<Vec<(TenantId, TimerPolicies)>, StoreError>> + Send;
    /// Every tenant with a retention policy, and its days (the retention sweep's work).
    fn retention_policies(
        &self,
    ) -> impl Future<Output = Result<Vec<(TenantId, u32)>, StoreError>> + Send;
    /// Replaces the tenant's attachment policy (validated by the caller).
    fn set_attachment_policy(
        &self,
        t: &TenantId,
        policy: AttachmentPolicy,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates or replaces a catalogue item.
    fn upsert_item(
        &self,
        t: &TenantId,
        item: CatalogueItem,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a catalogue item; returns whether it existed.
    fn delete_item(
        &self,
        t: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The catalogue, by id, with current stock.
    fn items(
        &self,
        t: &TenantId,
    ) -> impl Future<Output = Result<Vec<CatalogueItem>, StoreError>> + Send;

    /// Creates or replaces an end user's profile.
    fn upsert_profile(
        &self,
        t: &TenantId,
        user: &EndUserId,
        profile: Profile,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An end user's profile (`None`: the brand never sent one).
    fn profile(
        &self,
        t: &TenantId,
        user: &EndUserId,
    ) -> impl Future<Output = Result<Option<Profile>, StoreError>> + Send;

    /// Records a history event (idempotent by `event.id`).
    fn add_history(
        &self,
        t: &TenantId,
        user: &EndUserId,
        event: HistoryEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A page of history, newest first, optionally of one type, older than `before`.
    fn history(
        &self,
        t: &TenantId,
        user: &EndUserId,
        filter: Option<EngagementType>,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<EngagementHistoryPage, StoreError>> + Send;
    /// Catalogue item ids the user has redeemed.
    fn redeemed(
        &self,
        t: &TenantId,
        user: &EndUserId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Atomically: refuse if once-per-user and already redeemed or out of stock, else take
    /// one from stock, mark it redeemed and record `event`. The other rules (validity,
    /// points, segments) are the caller's, checked just before with the domain rules.
    fn redeem(
        &self,
        t: &TenantId,
        user: &EndUserId,
        item: &CatalogueItem,
        event: HistoryEvent,
    ) -> impl Future<Output = Result<Result<(), RedeemRefusal>, StoreError>> + Send;

    /// Creates or replaces a canned response.
    fn upsert_canned(
        &self,
        t: &TenantId,
        canned: CannedResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a canned response; returns whether it existed.
    fn delete_canned(
        &self,
        t: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every canned response of the tenant, by shortcut.
    fn canned(
        &self,
        t: &TenantId,
    ) -> impl Future<Output = Result<Vec<CannedResponse>, StoreError>> + Send;

    /// A session is alive (see [`Heartbeat`]).
    fn heartbeat(
        &self,
        t: &TenantId,
        beat: &Heartbeat<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Session `session` of `who` ended.
    fn leave(
        &self,
        t: &TenantId,
        who: &str,
        session: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Everyone with a live session or a recent heartbeat, aggregated per person.
    fn presence(
        &self,
        t: &TenantId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<PresenceEntry>, StoreError>> + Send;

    /// One person's aggregated presence now (`None` if never listed).
    fn presence_of(
        &self,
        t: &TenantId,
        who: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<PresenceEntry>, StoreError>> + Send;

    /// Whether `who` has a live session now.
    fn online(
        &self,
        t: &TenantId,
        who: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets an end user (their erasure): profile, engagement history (with its
    /// indexes), redeemed items and presence. Returns what went; nothing when erased
    /// before.
    fn erase_user(
        &self,
        t: &TenantId,
        user: &EndUserId,
    ) -> impl Future<Output = Result<ErasedUser, StoreError>> + Send;

    /// Appends `entry` to the tenant's audit log (its `cursor` is given here) and drops
    /// entries recorded before `keep_since` (ms); returns the entry as recorded.
    fn record_audit(
        &self,
        t: &TenantId,
        entry: AuditEntry,
        keep_since: u64,
    ) -> impl Future<Output = Result<AuditEntry, StoreError>> + Send;

    /// A page of the tenant's audit log, newest first: at most `limit` entries older than
    /// cursor `before` (from the start: `None`), none recorded before `keep_since` (ms).
    fn audit(
        &self,
        t: &TenantId,
        before: Option<&str>,
        limit: usize,
        keep_since: u64,
    ) -> impl Future<Output = Result<AuditPage, StoreError>> + Send;
}
