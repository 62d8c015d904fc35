//! The end user's engagements: `engagement_history`, `engagement_activity`,
//! `engagements_available`, `profile` (agents), `redeem` (end users); and what the
//! brand's systems push through the admin API: the catalogue, profiles and engagement
//! history.

use super::{Ctx, Failure, forbidden, not_found, store_failed};
use crate::Backend;
use crate::auth::now_millis;
use chathub_domain::engagement::{
    CatalogueItem, EngagementType, HistoryEvent, Ineligible, Profile, entitlement, redeem_action,
};
use chathub_domain::{Actor, ConversationId, EndUserId, Privilege};
use chathub_protocol::{
    ActivityReply, AvailableReply, EngagementHistoryReply, ErrorCode, ErrorFrame, ProfileReply,
    RedeemReply, Reply, TypeActivity,
};
use chathub_store::{EngagementHistoryPage, RedeemRefusal, WorkspaceStore};

/// Default events per type in `engagement_activity`.
const DEFAULT_PER_TYPE: usize = 3;

/// Limits of what the brand's systems store, in bytes (and counts): every path (admin
/// API, socket) goes through these ops, so none stores more. They keep every event that
/// carries them (an engagement card) far below a socket's outbound budget.
pub(crate) mod field_limits {
    /// A catalogue item's or history event's name / title.
    pub(crate) const NAME: usize = 200;
    /// A catalogue item's description.
    pub(crate) const DESCRIPTION: usize = 2000;
    /// A profile's first or last name.
    pub(crate) const PERSON_NAME: usize = 100;
    /// A profile's locale (a BCP 47 tag).
    pub(crate) const LOCALE: usize = 35;
    /// Segments of a profile or an eligibility rule, and the length of each.
    pub(crate) const SEGMENTS: usize = 50;
    /// Length of one segment.
    pub(crate) const SEGMENT: usize = 64;
}

/// Refuses a field over its limit with `too_large`, naming it.
fn at_most(field: &str, value: &str, max: usize) -> Result<(), Failure> {
    if value.len() > max {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("`{field}` is {} bytes; the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

/// Refuses a segment list over its limits.
fn segments_ok(field: &str, segments: &[String]) -> Result<(), Failure> {
    if segments.len() > field_limits::SEGMENTS {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "`{field}` has {} segments; the limit is {}",
                segments.len(),
                field_limits::SEGMENTS
            ),
        ));
    }
    for segment in segments {
        at_most(field, segment, field_limits::SEGMENT)?;
    }
    Ok(())
}

/// The error for an engagement the end user may not get now.
pub(crate) fn ineligible(reason: Ineligible) -> Failure {
    let code = match reason {
        Ineligible::Expired => ErrorCode::Expired,
        Ineligible::AlreadyRedeemed => ErrorCode::AlreadyRedeemed,
        Ineligible::OutOfStock => ErrorCode::OutOfStock,
        _ => ErrorCode::NotEntitled,
    };
    Failure::Reply(ErrorFrame {
        reason: Some(reason.as_str().to_owned()),
        ..ErrorFrame::new(
            None,
            code,
            format!(
                "the end user is not entitled to this engagement: {}",
                reason.as_str()
            ),
        )
    })
}

/// A catalogue item as the thread shows it.
pub(crate) fn card(item: CatalogueItem) -> chathub_domain::EngagementCard {
    chathub_domain::EngagementCard {
        id: item.id,
        engagement_type: item.engagement_type,
        name: item.name,
        description: item.description,
    }
}

/// The end user's catalogue items and whether they are entitled to each now.
pub(crate) async fn entitlements<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
) -> Result<Vec<(CatalogueItem, Result<(), Ineligible>)>, Failure> {
    let ws = cx.node.backend.workspace();
    let t = &cx.identity.tenant;
    let user = conversation.end_user();
    let items = ws.items(t).await.map_err(store_failed)?;
    let profile = ws
        .profile(t, &user)
        .await
        .map_err(store_failed)?
        .unwrap_or_default();
    let redeemed = ws.redeemed(t, &user).await.map_err(store_failed)?;
    let now = now_millis();
    Ok(items
        .into_iter()
        .map(|item| {
            let verdict = entitlement(&item, &profile, redeemed.contains(&item.id), now);
            (item, verdict)
        })
        .collect())
}

/// One page of an end user's engagement history, newest first (socket and admin API).
pub(crate) async fn history_page<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
    engagement_type: Option<EngagementType>,
    before: Option<&str>,
    limit: Option<u32>,
) -> Result<EngagementHistoryPage, Failure> {
    let limit = cx.page_size(limit)?;
    cx.node
        .backend
        .workspace()
        .history(&cx.identity.tenant, user, engagement_type, before, limit)
        .await
        .map_err(store_failed)
}

/// `engagement_history`.
pub(crate) async fn history<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    engagement_type: Option<EngagementType>,
    before: Option<String>,
    limit: Option<u32>,
) -> Result<Reply, Failure> {
    cx.require_agent("engagement_history")?;
    let page = history_page(
        cx,
        &conversation.end_user(),
        engagement_type,
        before.as_deref(),
        limit,
    )
    .await?;
    let no_history = page.events.is_empty() && before.is_none();
    Ok(Reply::EngagementHistory(EngagementHistoryReply {
        conversation,
        events: page.events,
        next_cursor: page.next_cursor,
        no_history,
    }))
}

/// `engagement_activity`: the newest few events of every type.
pub(crate) async fn activity<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    per_type: Option<u32>,
) -> Result<Reply, Failure> {
    cx.require_agent("engagement_activity")?;
    let per_type = per_type.map_or(DEFAULT_PER_TYPE, |n| (n as usize).clamp(1, 50));
    let user = conversation.end_user();
    let ws = cx.node.backend.workspace();
    let mut activity = Vec::with_capacity(EngagementType::ALL.len());
    for engagement_type in EngagementType::ALL {
        let page = ws
            .history(
                &cx.identity.tenant,
                &user,
                Some(engagement_type),
                None,
                per_type,
            )
            .await
            .map_err(store_failed)?;
        activity.push(TypeActivity {
            engagement_type,
            events: page.events,
        });
    }
    Ok(Reply::EngagementActivity(ActivityReply {
        conversation,
        activity,
    }))
}

/// `engagements_available`: what the end user is entitled to now.
pub(crate) async fn available<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
    engagement_type: Option<EngagementType>,
) -> Result<Reply, Failure> {
    cx.require_agent("engagements_available")?;
    let items = entitlements(cx, &conversation)
        .await?
        .into_iter()
        .filter(|(item, verdict)| {
            verdict.is_ok() && engagement_type.is_none_or(|t| item.engagement_type == t)
        })
        .map(|(item, _)| item)
        .collect();
    Ok(Reply::EngagementsAvailable(AvailableReply {
        conversation,
        items,
    }))
}

/// `profile`.
pub(crate) async fn profile<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: ConversationId,
) -> Result<Reply, Failure> {
    cx.require_agent("profile")?;
    let profile = cx
        .node
        .backend
        .workspace()
        .profile(&cx.identity.tenant, &conversation.end_user())
        .await
        .map_err(store_failed)?;
    Ok(Reply::Profile(ProfileReply {
        conversation,
        profile,
    }))
}

/// `redeem`: the end user redeems an engagement (atomically in the store: twice, expired
/// or sold out is refused).
pub(crate) async fn redeem<K: Backend>(
    cx: &Ctx<'_, K>,
    engagement: String,
) -> Result<Reply, Failure> {
    let Actor::EndUser(user) = &cx.identity.actor else {
        return Err(forbidden("`redeem` is for end users"));
    };
    let conversation = ConversationId::of_end_user(user);
    let (item, verdict) = entitlements(cx, &conversation)
        .await?
        .into_iter()
        .find(|(item, _)| item.id == engagement)
        .ok_or_else(|| not_found("engagement"))?;
    verdict.map_err(ineligible)?;
    let now = now_millis();
    let event = HistoryEvent {
        id: format!("redeem:{}:{now}:{}", item.id, uuid::Uuid::new_v4().simple()),
        engagement_type: item.engagement_type,
        action: redeem_action(item.engagement_type),
        engagement: Some(item.id.clone()),
        title: item.name.clone(),
        points: None,
        at: now,
    };
    let redeemed = cx
        .node
        .backend
        .workspace()
        .redeem(&cx.identity.tenant, user, &item, event.clone())
        .await
        .map_err(store_failed)?;
    match redeemed {
        Ok(()) => Ok(Reply::Redeem(RedeemReply { engagement, event })),
        Err(RedeemRefusal::UnknownItem) => Err(not_found("engagement")),
        Err(RedeemRefusal::Ineligible(reason)) => Err(ineligible(reason)),
    }
}

/// The catalogue, with current stock (admin API).
pub(crate) async fn catalogue<K: Backend>(cx: &Ctx<'_, K>) -> Result<Vec<CatalogueItem>, Failure> {
    cx.require(Privilege::EngagementManage)?;
    cx.node
        .backend
        .workspace()
        .items(&cx.identity.tenant)
        .await
        .map_err(store_failed)
}

/// Creates or replaces a catalogue item (admin API).
pub(crate) async fn put_item<K: Backend>(
    cx: &Ctx<'_, K>,
    item: CatalogueItem,
) -> Result<CatalogueItem, Failure> {
    cx.require(Privilege::EngagementManage)?;
    valid_id(&item.id, "id")?;
    if item.name.trim().is_empty() {
        return Err(Failure::bad_request("`name` is empty"));
    }
    // Values out of range (`bad_request`) before lengths over limits (`too_large`).
    time_ok("valid_from", item.valid_from)?;
    time_ok("valid_until", item.valid_until)?;
    if let (Some(from), Some(until)) = (item.valid_from, item.valid_until)
        && from > until
    {
        return Err(Failure::bad_request("`valid_from` is after `valid_until`"));
    }
    number_ok(
        "rules.min_points",
        item.rules.min_points.map(i64::unsigned_abs),
    )?;
    number_ok("rules.stock", item.rules.stock)?;
    at_most("name", &item.name, field_limits::NAME)?;
    at_most("description", &item.description, field_limits::DESCRIPTION)?;
    segments_ok("rules.segments", &item.rules.segments)?;
    cx.node
        .backend
        .workspace()
        .upsert_item(&cx.identity.tenant, item.clone())
        .await
        .map_err(store_failed)?;
    let detail = super::audit::detail(&item);
    let action = chathub_store::AuditAction::CatalogueItemPut;
    super::audit::record(cx, action, Some(&item.id), detail).await?;
    Ok(item)
}

/// Removes a catalogue item (admin API); `not_found` when there was none.
pub(crate) async fn delete_item<K: Backend>(cx: &Ctx<'_, K>, id: &str) -> Result<(), Failure> {
    cx.require(Privilege::EngagementManage)?;
    let removed = cx
        .node
        .backend
        .workspace()
        .delete_item(&cx.identity.tenant, id)
        .await
        .map_err(store_failed)?;
    if removed {
        let action = chathub_store::AuditAction::CatalogueItemDeleted;
        super::audit::record(cx, action, Some(id), serde_json::Value::Null).await?;
    }
    super::removed(removed, "engagement")
}

/// Creates or replaces an end user's profile (admin API).
pub(crate) async fn put_profile<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
    profile: Profile,
) -> Result<Profile, Failure> {
    cx.require(Privilege::EngagementManage)?;
    number_ok(
        "points_balance",
        Some(profile.points_balance.unsigned_abs()),
    )?;
    at_most("first_name", &profile.first_name, field_limits::PERSON_NAME)?;
    at_most("last_name", &profile.last_name, field_limits::PERSON_NAME)?;
    at_most("locale", &profile.locale, field_limits::LOCALE)?;
    segments_ok("segments", &profile.segments)?;
    cx.node
        .backend
        .workspace()
        .upsert_profile(&cx.identity.tenant, user, profile.clone())
        .await
        .map_err(store_failed)?;
    Ok(profile)
}

/// An end user's profile (admin API); `not_found` when there is none.
pub(crate) async fn get_profile<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
) -> Result<Profile, Failure> {
    cx.require(Privilege::EngagementManage)?;
    cx.node
        .backend
        .workspace()
        .profile(&cx.identity.tenant, user)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| not_found("profile"))
}

/// Records an event in an end user's engagement history (admin API); the same `id`
/// records the same event once.
pub(crate) async fn record_history<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
    event: HistoryEvent,
) -> Result<HistoryEvent, Failure> {
    cx.require(Privilege::EngagementManage)?;
    valid_id(&event.id, "id")?;
    time_ok("at", Some(event.at))?;
    number_ok("points", event.points.map(i64::unsigned_abs))?;
    if let Some(engagement) = &event.engagement {
        valid_id(engagement, "engagement")?;
    }
    at_most("title", &event.title, field_limits::NAME)?;
    cx.node
        .backend
        .workspace()
        .add_history(&cx.identity.tenant, user, event.clone())
        .await
        .map_err(store_failed)?;
    Ok(event)
}

/// Refuses a time past [`MAX_TIME_MS`](chathub_domain::engagement::MAX_TIME_MS).
fn time_ok(field: &str, at: Option<u64>) -> Result<(), Failure> {
    match at {
        Some(at) if at > chathub_domain::engagement::MAX_TIME_MS => Err(Failure::bad_request(
            format!("`{field}` is after the year 9999 (ms since the Unix epoch)"),
        )),
        _ => Ok(()),
    }
}

/// Refuses a number (its magnitude) past
/// [`MAX_NUMBER`](chathub_domain::engagement::MAX_NUMBER).
fn number_ok(field: &str, magnitude: Option<u64>) -> Result<(), Failure> {
    match magnitude {
        Some(n) if n > chathub_domain::engagement::MAX_NUMBER => {
            Err(Failure::bad_request(format!(
                "`{field}` is beyond ±{} (2^53 − 1)",
                chathub_domain::engagement::MAX_NUMBER
            )))
        }
        _ => Ok(()),
    }
}

/// Refuses an id outside the id alphabet or length.
pub(crate) fn valid_id(id: &str, field: &str) -> Result<(), Failure> {
    chathub_domain::ids::validate(id)
        .map_err(|e| Failure::bad_request(format!("invalid `{field}`: {e}")))
}
