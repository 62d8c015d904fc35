//! The workspace data in Redis. Everything of a tenant's workspace lives under the
//! tenant's hash tag `{tenant}` (one slot on a cluster), so the redemption script is
//! atomic on a cluster too. Workspace traffic is small next to chat traffic.

use crate::StoreError;
use crate::audit::{AuditEntry, AuditPage};
use crate::redis::RedisKeys;
use crate::workspace::{
    EngagementHistoryPage, ErasedUser, Heartbeat, Presence, PresenceEntry, RedeemRefusal,
    TenantSettings, WorkspaceStore,
};
use crate::workspace_memory::parse_history_cursor;
use chathub_domain::attachment::AttachmentPolicy;
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EngagementType, HistoryEvent, Ineligible, Profile,
};
use chathub_domain::{EndUserId, TenantId};
use redis::aio::ConnectionLike;
use redis::{AsyncCommands, RedisError, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::LazyLock;

static REDEEM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/redeem.lua")));
static AUDIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/audit.lua")));

/// The Redis workspace store.
#[derive(Clone)]
pub struct RedisWorkspace<C> {
    conn: C,
    keys: RedisKeys,
}

impl<C> RedisWorkspace<C> {
    /// A store using `conn` and `keys`.
    pub fn new(conn: C, keys: RedisKeys) -> Self {
        RedisWorkspace { conn, keys }
    }
}

/// A tenant's listed people, as `presence` reads them: last heartbeat, name, last
/// heartbeat saying `available`, supervisors.
type LastSeen = (
    HashMap<String, u64>,
    HashMap<String, String>,
    HashMap<String, u64>,
    HashMap<String, String>,
);

/// One person's presence, as `presence_of` reads it: sessions, last heartbeat, name,
/// last heartbeat saying `available`, supervisor.
type OnePresence = (
    HashMap<String, String>,
    Option<u64>,
    Option<String>,
    Option<u64>,
    bool,
);

/// The settings hash's fields as `settings` reads them: chat_disabled, attachments
/// (JSON), retention_days, edit_window_secs, survey (JSON), release (JSON), alerts (JSON),
/// hours (JSON), bot (JSON).
type SettingsFields = (
    Option<String>,
    Option<String>,
    Option<u32>,
    Option<u32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn redis_error(e: RedisError) -> StoreError {
    StoreError::from_redis(e)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::corrupt("workspace entry", e))
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisWorkspace<C> {
    /// The tenants an index set names (those with a retention or a stall policy).
    async fn indexed_tenants(&self, index: String) -> Result<Vec<TenantId>, StoreError> {
        let mut conn = self.conn.clone();
        let tenants: Vec<String> = conn.smembers(index).await.map_err(redis_error)?;
        tenants
            .into_iter()
            .map(|t| {
                t.parse()
                    .map_err(|e| StoreError::corrupt("policy index tenant", e))
            })
            .collect()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisWorkspace<C> {
    /// Sets (`Some`, JSON) or clears one timer setting of the tenant (`release`,
    /// `alerts`). As the retention policy: the index of timer tenants gains a tenant
    /// before its setting and loses it after its last one, so a failure between leaves
    /// the sweep a tenant to skip, never a timer unseen.
    async fn set_timer_field(
        &self,
        t: &TenantId,
        field: &'static str,
        json: Option<String>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let settings = self.keys.workspace(t, "settings");
        let index = self.keys.release_tenants();
        match json {
            Some(json) => {
                let _: () = conn.sadd(&index, t.as_str()).await.map_err(redis_error)?;
                let _: () = conn
                    .hset(&settings, field, json)
                    .await
                    .map_err(redis_error)?;
            }
            None => {
                let _: () = conn.hdel(&settings, field).await.map_err(redis_error)?;
                let mut left = false;
                for other in TIMER_FIELDS.iter().filter(|f| **f != field) {
                    left |= conn
                        .hexists::<_, _, bool>(&settings, *other)
                        .await
                        .map_err(redis_error)?;
                }
                if !left {
                    let _: () = conn.srem(&index, t.as_str()).await.map_err(redis_error)?;
                }
            }
        }
        Ok(())
    }
}

/// The settings the timer sweep runs (a tenant with any is in the timer index).
const TIMER_FIELDS: [&str; 3] = ["release", "alerts", "hours"];

impl<C: ConnectionLike + Clone + Send + Sync + 'static> WorkspaceStore for RedisWorkspace<C> {
    async fn settings(&self, t: &TenantId) -> Result<TenantSettings, StoreError> {
        let mut conn = self.conn.clone();
        let (disabled, attachments, retention, edit_window, survey, release, alerts, hours, bot): SettingsFields =
            redis::cmd("HMGET")
                .arg(self.keys.workspace(t, "settings"))
                .arg("chat_disabled")
                .arg("attachments")
                .arg("retention_days")
                .arg("edit_window_secs")
                .arg("survey")
                .arg("release")
                .arg("alerts")
                .arg("hours")
                .arg("bot")
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
        let attachments = match attachments {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::corrupt("attachment policy", e))?,
            None => AttachmentPolicy::default(),
        };
        Ok(TenantSettings {
            chat_disabled: disabled.as_deref() == Some("1"),
            attachments,
            retention_days: retention,
            edit_window_secs: edit_window,
            survey: match survey {
                Some(json) => Some(
                    serde_json::from_str(&json).map_err(|e| StoreError::corrupt("survey", e))?,
                ),
                None => None,
            },
            release: match release {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::corrupt("release policy", e))?,
                ),
                None => None,
            },
            alerts: match alerts {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::corrupt("alert schedule", e))?,
                ),
                None => None,
            },
            hours: match hours {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::corrupt("business hours", e))?,
                ),
                None => None,
            },
            bot: match bot {
                Some(json) => {
                    Some(serde_json::from_str(&json).map_err(|e| StoreError::corrupt("bot", e))?)
                }
                None => None,
            },
        })
    }

    async fn set_retention_days(&self, t: &TenantId, days: Option<u32>) -> Result<(), StoreError> {
        // The index (another slot on a Redis Cluster) names the tenants the sweep looks
        // at; the days are read from the settings. So the index gains a tenant before
        // its policy and loses it after: a failure between leaves the sweep a tenant to
        // skip, never a policy unseen.
        let mut conn = self.conn.clone();
        let settings = self.keys.workspace(t, "settings");
        let index = self.keys.retention_tenants();
        match days {
            Some(days) => {
                let _: () = conn.sadd(&index, t.as_str()).await.map_err(redis_error)?;
                let _: () = conn
                    .hset(&settings, "retention_days", days)
                    .await
                    .map_err(redis_error)?;
            }
            None => {
                let _: () = conn
                    .hdel(&settings, "retention_days")
                    .await
                    .map_err(redis_error)?;
                let _: () = conn.srem(&index, t.as_str()).await.map_err(redis_error)?;
            }
        }
        Ok(())
    }

    async fn set_edit_window(&self, t: &TenantId, secs: u32) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset(self.keys.workspace(t, "settings"), "edit_window_secs", secs)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn set_survey(
        &self,
        t: &TenantId,
        survey: Option<crate::workspace::SurveySettings>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.workspace(t, "settings");
        let _: () = match survey {
            Some(survey) => {
                let json = serde_json::to_string(&survey)
                    .map_err(|e| StoreError::Internal(format!("encode survey: {e}")))?;
                conn.hset(key, "survey", json).await
            }
            None => conn.hdel(key, "survey").await,
        }
        .map_err(redis_error)?;
        Ok(())
    }

    async fn set_bot(
        &self,
        t: &TenantId,
        bot: Option<crate::workspace::BotSettings>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.workspace(t, "settings");
        let _: () = match bot {
            Some(bot) => {
                let json = serde_json::to_string(&bot)
                    .map_err(|e| StoreError::Internal(format!("encode bot: {e}")))?;
                conn.hset(key, "bot", json).await
            }
            None => conn.hdel(key, "bot").await,
        }
        .map_err(redis_error)?;
        Ok(())
    }

    async fn set_release_policy(
        &self,
        t: &TenantId,
        policy: Option<crate::workspace::ReleasePolicy>,
    ) -> Result<(), StoreError> {
        let json = policy
            .map(|p| serde_json::to_string(&p))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("encode release policy: {e}")))?;
        self.set_timer_field(t, "release", json).await
    }

    async fn set_alert_schedule(
        &self,
        t: &TenantId,
        schedule: Option<crate::workspace::AlertSchedule>,
    ) -> Result<(), StoreError> {
        let json = schedule
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("encode alert schedule: {e}")))?;
        self.set_timer_field(t, "alerts", json).await
    }

    async fn record_wait(&self, t: &TenantId, waited_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.workspace(t, "waits");
        redis::pipe()
            .lpush(&key, waited_ms)
            .ignore()
            .ltrim(&key, 0, crate::workspace::RECENT_WAITS as isize - 1)
            .ignore()
            .exec_async(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn recent_waits(&self, t: &TenantId) -> Result<Vec<u64>, StoreError> {
        let mut conn = self.conn.clone();
        conn.lrange(self.keys.workspace(t, "waits"), 0, -1)
            .await
            .map_err(redis_error)
    }

    async fn set_business_hours(
        &self,
        t: &TenantId,
        hours: Option<chathub_domain::hours::BusinessHours>,
    ) -> Result<(), StoreError> {
        let json = hours
            .map(|h| serde_json::to_string(&h))
            .transpose()
            .map_err(|e| StoreError::Internal(format!("encode business hours: {e}")))?;
        self.set_timer_field(t, "hours", json).await
    }

    async fn timer_policies(
        &self,
    ) -> Result<Vec<(TenantId, crate::workspace::TimerPolicies)>, StoreError> {
        let tenants = self.indexed_tenants(self.keys.release_tenants()).await?;
        let mut policies = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let settings = self.settings(&tenant).await?;
            let timers = crate::workspace::TimerPolicies {
                release: settings.release,
                alerts: settings.alerts,
                hours: settings.hours,
                bot: settings.bot.map(|b| b.agent),
            };
            if timers.any() {
                policies.push((tenant, timers));
            }
        }
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(policies)
    }

    async fn retention_policies(&self) -> Result<Vec<(TenantId, u32)>, StoreError> {
        let tenants = self.indexed_tenants(self.keys.retention_tenants()).await?;
        let mut policies = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            if let Some(days) = self.settings(&tenant).await?.retention_days {
                policies.push((tenant, days));
            }
        }
        policies.sort();
        Ok(policies)
    }

    async fn set_attachment_policy(
        &self,
        t: &TenantId,
        policy: AttachmentPolicy,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(&policy)
            .map_err(|e| StoreError::Internal(format!("encode attachment policy: {e}")))?;
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset(self.keys.workspace(t, "settings"), "attachments", json)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn set_chat_disabled(&self, t: &TenantId, disabled: bool) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let old: Option<String> = redis::cmd("HGET")
            .arg(self.keys.workspace(t, "settings"))
            .arg("chat_disabled")
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let value = if disabled { "1" } else { "0" };
        let _: () = conn
            .hset(self.keys.workspace(t, "settings"), "chat_disabled", value)
            .await
            .map_err(redis_error)?;
        Ok(old.as_deref().unwrap_or("0") != value)
    }

    async fn upsert_item(&self, t: &TenantId, item: CatalogueItem) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().hset(
            self.keys.workspace(t, "catalogue"),
            &item.id,
            encode(&item)?,
        );
        match item.rules.stock {
            Some(n) => pipe.hset(self.keys.workspace(t, "stock"), &item.id, n),
            None => pipe.hdel(self.keys.workspace(t, "stock"), &item.id),
        };
        pipe.exec_async(&mut conn).await.map_err(redis_error)
    }

    async fn delete_item(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (removed, _): (u64, u64) = redis::pipe()
            .atomic()
            .hdel(self.keys.workspace(t, "catalogue"), id)
            .hdel(self.keys.workspace(t, "stock"), id)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(removed > 0)
    }

    async fn items(&self, t: &TenantId) -> Result<Vec<CatalogueItem>, StoreError> {
        let mut conn = self.conn.clone();
        let (blobs, stock): (HashMap<String, Vec<u8>>, HashMap<String, i64>) = redis::pipe()
            .hgetall(self.keys.workspace(t, "catalogue"))
            .hgetall(self.keys.workspace(t, "stock"))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut items = blobs
            .values()
            .map(|b| decode::<CatalogueItem>(b))
            .collect::<Result<Vec<_>, _>>()?;
        for item in &mut items {
            if let Some(n) = stock.get(&item.id) {
                item.rules.stock = Some((*n).max(0) as u64);
            }
        }
        items.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(items)
    }

    async fn upsert_profile(
        &self,
        t: &TenantId,
        user: &EndUserId,
        profile: Profile,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset(
                self.keys.workspace(t, "profiles"),
                user.as_str(),
                encode(&profile)?,
            )
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn profile(&self, t: &TenantId, user: &EndUserId) -> Result<Option<Profile>, StoreError> {
        let mut conn = self.conn.clone();
        let blob: Option<Vec<u8>> = conn
            .hget(self.keys.workspace(t, "profiles"), user.as_str())
            .await
            .map_err(redis_error)?;
        blob.map(|b| decode(&b)).transpose()
    }

    async fn add_history(
        &self,
        t: &TenantId,
        user: &EndUserId,
        event: HistoryEvent,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset(
                self.keys.engagement_history(t, user),
                &event.id,
                encode(&event)?,
            )
            .zadd(
                self.keys.engagement_index(t, user, None),
                &event.id,
                event.at,
            )
            .zadd(
                self.keys
                    .engagement_index(t, user, Some(event.engagement_type)),
                &event.id,
                event.at,
            )
            .exec_async(&mut conn)
            .await
            .map_err(redis_error)
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
        let index = self.keys.engagement_index(t, user, filter);
        let mut conn = self.conn.clone();
        // Entries tied with the cursor's time come back and are skipped: fetch a few more.
        let max = before
            .as_ref()
            .map_or("+inf".to_owned(), |(at, _)| at.to_string());
        let scored: Vec<(String, f64)> = conn
            .zrevrangebyscore_limit_withscores(&index, max, "-inf", 0, (limit + 1 + 64) as isize)
            .await
            .map_err(redis_error)?;
        let ids: Vec<(u64, String)> = scored.into_iter().map(|(id, at)| (at as u64, id)).collect();
        let (ids, next_cursor) = crate::page(ids, Clone::clone, true, before.as_ref(), limit);
        if ids.is_empty() {
            return Ok(EngagementHistoryPage::default());
        }
        let names: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
        let blobs: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.keys.engagement_history(t, user))
            .arg(&names)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let events = blobs
            .into_iter()
            .flatten()
            .map(|b| decode::<HistoryEvent>(&b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EngagementHistoryPage {
            events,
            next_cursor,
        })
    }

    async fn redeemed(&self, t: &TenantId, user: &EndUserId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = conn
            .smembers(self.keys.redeemed(t, user))
            .await
            .map_err(redis_error)?;
        ids.sort();
        Ok(ids)
    }

    async fn redeem(
        &self,
        t: &TenantId,
        user: &EndUserId,
        item: &CatalogueItem,
        event: HistoryEvent,
    ) -> Result<Result<(), RedeemRefusal>, StoreError> {
        let mut conn = self.conn.clone();
        let exists: bool = conn
            .hexists(self.keys.workspace(t, "catalogue"), &item.id)
            .await
            .map_err(redis_error)?;
        if !exists {
            return Ok(Err(RedeemRefusal::UnknownItem));
        }
        let outcome: String = REDEEM
            .key(self.keys.workspace(t, "stock"))
            .key(self.keys.redeemed(t, user))
            .key(self.keys.engagement_history(t, user))
            .key(self.keys.engagement_index(t, user, None))
            .key(
                self.keys
                    .engagement_index(t, user, Some(event.engagement_type)),
            )
            .arg(&item.id)
            .arg(if item.rules.once_per_user { "1" } else { "0" })
            .arg(&event.id)
            .arg(event.at)
            .arg(encode(&event)?)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(match outcome.as_str() {
            "ok" => Ok(()),
            "already_redeemed" => Err(RedeemRefusal::Ineligible(Ineligible::AlreadyRedeemed)),
            _ => Err(RedeemRefusal::Ineligible(Ineligible::OutOfStock)),
        })
    }

    async fn upsert_canned(&self, t: &TenantId, canned: CannedResponse) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset(
                self.keys.workspace(t, "canned"),
                &canned.id,
                encode(&canned)?,
            )
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn delete_canned(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: u64 = conn
            .hdel(self.keys.workspace(t, "canned"), id)
            .await
            .map_err(redis_error)?;
        Ok(removed > 0)
    }

    async fn canned(&self, t: &TenantId) -> Result<Vec<CannedResponse>, StoreError> {
        let mut conn = self.conn.clone();
        let blobs: HashMap<String, Vec<u8>> = conn
            .hgetall(self.keys.workspace(t, "canned"))
            .await
            .map_err(redis_error)?;
        let mut all = blobs
            .values()
            .map(|b| decode::<CannedResponse>(b))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
        Ok(all)
    }

    async fn erase_user(&self, t: &TenantId, user: &EndUserId) -> Result<ErasedUser, StoreError> {
        let mut conn = self.conn.clone();
        let who = chathub_domain::Participant::EndUser(user.clone()).key();
        let (history, redeemed, profiles) = (
            self.keys.engagement_history(t, user),
            self.keys.redeemed(t, user),
            self.keys.workspace(t, "profiles"),
        );
        let (last_seen, names) = (
            self.keys.workspace(t, "last-seen"),
            self.keys.workspace(t, "names"),
        );
        let presence = self.keys.presence(t, &who);
        // Every key is under the tenant's hash tag: one transaction, counted as it goes.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hlen(&history)
            .scard(&redeemed)
            .hdel(&profiles, user.as_str())
            .exists(&presence)
            .hdel(&last_seen, &who)
            .hdel(&names, &who)
            .del(&history)
            .ignore()
            .del(&redeemed)
            .ignore()
            .del(&presence)
            .ignore()
            .del(self.keys.engagement_index(t, user, None))
            .ignore();
        for kind in EngagementType::ALL {
            pipe.del(self.keys.engagement_index(t, user, Some(kind)))
                .ignore();
        }
        let (history, redeemed, profile, sessions, seen, name): (u64, u64, u64, u64, u64, u64) =
            pipe.query_async(&mut conn).await.map_err(redis_error)?;
        Ok(ErasedUser {
            profile,
            engagement_history: history,
            redeemed,
            presence: sessions + seen + name,
        })
    }

    async fn heartbeat(&self, t: &TenantId, beat: &Heartbeat<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.presence(t, beat.who);
        let mut pipe = redis::pipe();
        let value = format!("{}|{}", beat.presence.as_str(), beat.now + beat.ttl_ms);
        pipe.hset(&key, beat.session, value)
            // The whole hash goes when its last session stops beating.
            .pexpire(&key, beat.ttl_ms as i64);
        if beat.listed {
            pipe.hset(self.keys.workspace(t, "last-seen"), beat.who, beat.now);
            if beat.presence == Presence::Available {
                pipe.hset(self.keys.workspace(t, "last-available"), beat.who, beat.now);
            }
            if let Some(name) = beat.name {
                pipe.hset(self.keys.workspace(t, "names"), beat.who, name);
            }
            let supervisors = self.keys.workspace(t, "supervisors");
            if beat.supervisor {
                pipe.hset(supervisors, beat.who, 1);
            } else {
                pipe.hdel(supervisors, beat.who);
            }
        }
        pipe.exec_async(&mut conn).await.map_err(redis_error)
    }

    async fn leave(&self, t: &TenantId, who: &str, session: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .hdel(self.keys.presence(t, who), session)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn presence(&self, t: &TenantId, now: u64) -> Result<Vec<PresenceEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let (seen, names, available, supervisors): LastSeen = redis::pipe()
            .hgetall(self.keys.workspace(t, "last-seen"))
            .hgetall(self.keys.workspace(t, "names"))
            .hgetall(self.keys.workspace(t, "last-available"))
            .hgetall(self.keys.workspace(t, "supervisors"))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut whos: Vec<(&String, &u64)> = seen.iter().collect();
        whos.sort();
        let mut pipe = redis::pipe();
        for (who, _) in &whos {
            pipe.hgetall(self.keys.presence(t, who));
        }
        let sessions: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(redis_error)?;
        Ok(whos
            .into_iter()
            .zip(sessions)
            .map(|((who, at), sessions)| PresenceEntry {
                who: who.clone(),
                presence: Presence::aggregate(live(&sessions, now)),
                last_seen: *at,
                last_available: available.get(who.as_str()).copied(),
                name: names.get(who.as_str()).cloned(),
                supervisor: supervisors.contains_key(who.as_str()),
            })
            .collect())
    }

    async fn presence_of(
        &self,
        t: &TenantId,
        who: &str,
        now: u64,
    ) -> Result<Option<PresenceEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let (sessions, seen, name, available, supervisor): OnePresence = redis::pipe()
            .hgetall(self.keys.presence(t, who))
            .hget(self.keys.workspace(t, "last-seen"), who)
            .hget(self.keys.workspace(t, "names"), who)
            .hget(self.keys.workspace(t, "last-available"), who)
            .hexists(self.keys.workspace(t, "supervisors"), who)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(seen.map(|last_seen| PresenceEntry {
            who: who.to_owned(),
            presence: Presence::aggregate(live(&sessions, now)),
            last_seen,
            last_available: available,
            name,
            supervisor,
        }))
    }

    async fn online(&self, t: &TenantId, who: &str, now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let sessions: HashMap<String, String> = conn
            .hgetall(self.keys.presence(t, who))
            .await
            .map_err(redis_error)?;
        Ok(live(&sessions, now).next().is_some())
    }

    async fn record_audit(
        &self,
        t: &TenantId,
        mut entry: AuditEntry,
        keep_since: u64,
    ) -> Result<AuditEntry, StoreError> {
        let json = serde_json::to_string(&entry)
            .map_err(|e| StoreError::Internal(format!("encode audit entry: {e}")))?;
        let mut conn = self.conn.clone();
        // One stream per tenant; the stream id is the position (see audit.lua). Trimming
        // is approximate (whole stream nodes); reads skip what is older.
        let id: String = AUDIT
            .key(self.keys.workspace(t, "audit"))
            .arg(entry.at)
            .arg(keep_since)
            .arg(json)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        entry.cursor = id;
        Ok(entry)
    }

    async fn audit(
        &self,
        t: &TenantId,
        before: Option<&str>,
        limit: usize,
        keep_since: u64,
    ) -> Result<AuditPage, StoreError> {
        let end = match before {
            None => "+".to_owned(),
            Some(cursor) => {
                let valid = cursor.split_once('-').is_some_and(|(ms, n)| {
                    !ms.is_empty()
                        && !n.is_empty()
                        && ms.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
                });
                if !valid {
                    return Err(StoreError::Invalid("audit cursor"));
                }
                format!("({cursor}")
            }
        };
        let mut conn = self.conn.clone();
        let rows: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.workspace(t, "audit"))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut entries = Vec::with_capacity(rows.len());
        for (id, fields) in rows {
            let Some((_, json)) = fields.into_iter().find(|(k, _)| k == "e") else {
                return Err(StoreError::corrupt(
                    "audit entry",
                    format!("{id} has no body"),
                ));
            };
            let mut entry: AuditEntry =
                serde_json::from_str(&json).map_err(|e| StoreError::corrupt("audit entry", e))?;
            if entry.at < keep_since {
                break;
            }
            entry.cursor = id;
            entries.push(entry);
        }
        Ok(AuditPage::of(entries, limit))
    }
}

/// The presences of the sessions (`session → "status|expires"`) still alive at `now`.
fn live(sessions: &HashMap<String, String>, now: u64) -> impl Iterator<Item = Presence> + '_ {
    sessions.values().filter_map(move |v| {
        let (p, expires) = v.split_once('|')?;
        (expires.parse::<u64>().ok()? > now).then(|| Presence::parse(p))
    })
}
