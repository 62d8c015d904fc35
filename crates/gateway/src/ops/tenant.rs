//! The tenant-wide chat switch: `disable_tenant` / `enable_tenant` on the socket,
//! `PUT /admin/v1/settings` on the admin API.

use super::signals::publish;
use super::{Ctx, Failure, audit, store_failed};
use crate::Backend;
use chathub_broker::Channel;
use chathub_domain::Privilege;
use chathub_domain::attachment::AttachmentPolicy;
use chathub_protocol::{ServerFrame, TenantFrame};
use chathub_store::{
    AlertSchedule, AuditAction, MAX_ALERT_STEPS, ReleasePolicy, SurveySettings, TenantSettings,
    WorkspaceStore,
};

/// Switches two-way chat off (`disabled`) or on for the whole tenant; when it changed,
/// every agent and end user of the tenant is told with a `tenant` frame.
pub(crate) async fn set_chat<K: Backend>(
    cx: &Ctx<'_, K>,
    disabled: bool,
) -> Result<TenantFrame, Failure> {
    cx.require(Privilege::ChatDisable)?;
    let t = &cx.identity.tenant;
    let changed = cx
        .node
        .backend
        .workspace()
        .set_chat_disabled(t, disabled)
        .await
        .map_err(store_failed)?;
    // This node sees its own change at once; others within the settings TTL.
    cx.node.settings.remove(t);
    let frame = TenantFrame {
        chat_disabled: disabled,
    };
    let detail = serde_json::json!({"chat_disabled": disabled, "changed": changed});
    audit::record(cx, AuditAction::TenantChatSwitched, None, detail).await?;
    if changed {
        let pushed = ServerFrame::Tenant(frame.clone());
        publish(cx, &Channel::agents(t), &pushed).await?;
        publish(cx, &Channel::users(t), &pushed).await?;
    }
    Ok(frame)
}

/// The tenant's settings.
pub(crate) async fn settings<K: Backend>(cx: &Ctx<'_, K>) -> Result<TenantSettings, Failure> {
    cx.require(Privilege::ChatDisable)?;
    let mut settings = cx
        .node
        .backend
        .workspace()
        .settings(&cx.identity.tenant)
        .await
        .map_err(store_failed)?;
    // The window in effect, the default included.
    settings.edit_window_secs = Some(settings.edit_window());
    Ok(settings)
}

/// The admin API's settings change: the attachment policy (validated here).
pub(crate) async fn set_attachment_policy<K: Backend>(
    cx: &Ctx<'_, K>,
    policy: AttachmentPolicy,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    policy.validate().map_err(Failure::bad_request)?;
    let t = &cx.identity.tenant;
    let detail = audit::detail(&policy);
    cx.node
        .backend
        .workspace()
        .set_attachment_policy(t, policy)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    audit::record(cx, AuditAction::AttachmentPolicySet, None, detail).await
}

/// Longest edit window, in seconds (a day).
pub(crate) const MAX_EDIT_WINDOW_SECS: u32 = 86_400;

/// Whether the caller may set the edit window `secs`, and whether it is one.
pub(crate) fn check_edit_window<K: Backend>(cx: &Ctx<'_, K>, secs: u32) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    if secs > MAX_EDIT_WINDOW_SECS {
        return Err(Failure::bad_request(format!(
            "edit_window_secs must be 0 (no edits) to {MAX_EDIT_WINDOW_SECS}"
        )));
    }
    Ok(())
}

/// Sets how long authors may edit or unsend their messages (0: never).
pub(crate) async fn set_edit_window<K: Backend>(cx: &Ctx<'_, K>, secs: u32) -> Result<(), Failure> {
    check_edit_window(cx, secs)?;
    let t = &cx.identity.tenant;
    cx.node
        .backend
        .workspace()
        .set_edit_window(t, secs)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    let detail = serde_json::json!({ "edit_window_secs": secs });
    audit::record(cx, AuditAction::EditWindowSet, None, detail).await
}

/// Longest stall limit, seconds (a week).
pub(crate) const MAX_RELEASE_SECS: u32 = 604_800;

/// Whether the caller may set the stall policy `policy`, and whether it is one: each
/// limit given 1–[`MAX_RELEASE_SECS`] seconds, at least one given.
pub(crate) fn check_release<K: Backend>(
    cx: &Ctx<'_, K>,
    policy: Option<&ReleasePolicy>,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    let Some(policy) = policy else {
        return Ok(());
    };
    let limits = [policy.owner_absent_secs, policy.no_reply_secs];
    if limits.iter().all(Option::is_none) {
        return Err(Failure::bad_request(
            "`release` needs `owner_absent_secs` or `no_reply_secs` (null: no policy)",
        ));
    }
    if limits
        .iter()
        .flatten()
        .any(|s| !(1..=MAX_RELEASE_SECS).contains(s))
    {
        return Err(Failure::bad_request(format!(
            "`release` limits must be 1 to {MAX_RELEASE_SECS} seconds"
        )));
    }
    Ok(())
}

/// Sets when the server gives stalled conversations back to the queue (`None`: never).
pub(crate) async fn set_release_policy<K: Backend>(
    cx: &Ctx<'_, K>,
    policy: Option<ReleasePolicy>,
) -> Result<(), Failure> {
    check_release(cx, policy.as_ref())?;
    let t = &cx.identity.tenant;
    let detail = serde_json::json!({ "release": policy });
    cx.node
        .backend
        .workspace()
        .set_release_policy(t, policy)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    audit::record(cx, AuditAction::ReleasePolicySet, None, detail).await
}

/// Latest first occurrence and longest repeat of an alert step, seconds (a week).
pub(crate) const MAX_ALERT_SECS: u32 = 604_800;

/// Whether the caller may set the alert schedule `schedule`, and whether it is one:
/// 1–[`MAX_ALERT_STEPS`] steps, each due 0–[`MAX_ALERT_SECS`] seconds after the wait
/// began, repeating every 1–[`MAX_ALERT_SECS`] seconds when it repeats.
pub(crate) fn check_alerts<K: Backend>(
    cx: &Ctx<'_, K>,
    schedule: Option<&AlertSchedule>,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    let Some(schedule) = schedule else {
        return Ok(());
    };
    if !(1..=MAX_ALERT_STEPS).contains(&schedule.steps.len()) {
        return Err(Failure::bad_request(format!(
            "`alerts.steps` needs 1 to {MAX_ALERT_STEPS} steps (null: no alerts)"
        )));
    }
    for (i, step) in schedule.steps.iter().enumerate() {
        if step.after_secs > MAX_ALERT_SECS {
            return Err(Failure::bad_request(format!(
                "`alerts.steps[{i}].after_secs` must be 0 to {MAX_ALERT_SECS}"
            )));
        }
        if step
            .repeat_secs
            .is_some_and(|r| !(1..=MAX_ALERT_SECS).contains(&r))
        {
            return Err(Failure::bad_request(format!(
                "`alerts.steps[{i}].repeat_secs` must be 1 to {MAX_ALERT_SECS}"
            )));
        }
    }
    Ok(())
}

/// Sets who is alerted, and when, while conversations wait (`None`: no alerts).
pub(crate) async fn set_alert_schedule<K: Backend>(
    cx: &Ctx<'_, K>,
    schedule: Option<AlertSchedule>,
) -> Result<(), Failure> {
    check_alerts(cx, schedule.as_ref())?;
    let t = &cx.identity.tenant;
    let detail = serde_json::json!({ "alerts": schedule });
    cx.node
        .backend
        .workspace()
        .set_alert_schedule(t, schedule)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    audit::record(cx, AuditAction::AlertScheduleSet, None, detail).await
}

/// Whether the caller may set the business hours `hours`, and whether they are valid
/// (a known time zone, `HH:MM-HH:MM` ranges, dates, the reply's length).
pub(crate) fn check_hours<K: Backend>(
    cx: &Ctx<'_, K>,
    hours: Option<&chathub_domain::hours::BusinessHours>,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    match hours.map(|h| h.schedule()) {
        Some(Err(why)) => Err(Failure::bad_request(format!("`hours`: {why}"))),
        _ => Ok(()),
    }
}

/// Sets when the team is open (`None`: always).
pub(crate) async fn set_business_hours<K: Backend>(
    cx: &Ctx<'_, K>,
    hours: Option<chathub_domain::hours::BusinessHours>,
) -> Result<(), Failure> {
    check_hours(cx, hours.as_ref())?;
    let t = &cx.identity.tenant;
    let detail = serde_json::json!({ "hours": hours });
    let now = crate::auth::now_millis();
    // What everyone is told now (the rounds tell every change after it).
    let state = match &hours {
        Some(h) => crate::hours::state_now(h, now),
        None => Some(chathub_protocol::HoursFrame {
            open: true,
            until: None,
        }),
    };
    cx.node
        .backend
        .workspace()
        .set_business_hours(t, hours)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    if let Some(state) = state {
        use chathub_broker::{Broker, Channel, Envelope};
        let frame = chathub_protocol::ServerFrame::Hours(state);
        for channel in [Channel::agents(t), Channel::users(t)] {
            if let Err(e) = cx
                .node
                .backend
                .broker()
                .publish(&channel, Envelope::encode(&channel, None, &frame))
                .await
            {
                tracing::debug!(error = %e, "hours change not published");
            }
        }
        cx.node.hours_seen.insert(t.clone(), state.open);
    }
    audit::record(cx, AuditAction::BusinessHoursSet, None, detail).await
}

/// Longest survey question, in characters.
pub(crate) const MAX_SURVEY_PROMPT_CHARS: usize = 500;

/// Whether the caller may set the survey `survey`, and whether it is one: a question of
/// 1–[`MAX_SURVEY_PROMPT_CHARS`] characters, and a reward of the catalogue.
pub(crate) async fn check_survey<K: Backend>(
    cx: &Ctx<'_, K>,
    survey: Option<&SurveySettings>,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    let Some(survey) = survey else {
        return Ok(());
    };
    if survey.prompt.trim().is_empty() || survey.prompt.chars().count() > MAX_SURVEY_PROMPT_CHARS {
        return Err(Failure::bad_request(format!(
            "`survey.prompt` must be 1 to {MAX_SURVEY_PROMPT_CHARS} characters"
        )));
    }
    if let Some(reward) = &survey.reward {
        let items = cx
            .node
            .backend
            .workspace()
            .items(&cx.identity.tenant)
            .await
            .map_err(store_failed)?;
        if !items.iter().any(|item| item.id == *reward) {
            return Err(Failure::bad_request(format!(
                "`survey.reward` {reward:?} is not in the catalogue"
            )));
        }
    }
    Ok(())
}

/// Sets the satisfaction survey every finish asks from now on (`None`: none).
pub(crate) async fn set_survey<K: Backend>(
    cx: &Ctx<'_, K>,
    survey: Option<SurveySettings>,
) -> Result<(), Failure> {
    check_survey(cx, survey.as_ref()).await?;
    let t = &cx.identity.tenant;
    let detail = serde_json::json!({ "survey": survey });
    cx.node
        .backend
        .workspace()
        .set_survey(t, survey)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    audit::record(cx, AuditAction::SurveySet, None, detail).await
}

/// Longest retention policy, in days (ten years).
pub(crate) const MAX_RETENTION_DAYS: u32 = 3650;

/// Whether the caller may set the retention policy `days`, and whether it is one.
pub(crate) fn check_retention<K: Backend>(
    cx: &Ctx<'_, K>,
    days: Option<u32>,
) -> Result<(), Failure> {
    cx.require(Privilege::ChatDisable)?;
    cx.require(Privilege::DataErase)?;
    match days {
        Some(d) if !(1..=MAX_RETENTION_DAYS).contains(&d) => Err(Failure::bad_request(format!(
            "retention_days must be 1 to {MAX_RETENTION_DAYS} (or null: forever)"
        ))),
        None if !cx.node.backend.has_record_tier() => Err(Failure::bad_request(
            "keeping conversations forever needs a record tier (the data directory, or an \
             archive); this node keeps only its hot window: give retention_days",
        )),
        _ => Ok(()),
    }
}

/// Sets the tenant's retention policy (`None`: keep forever, only where a record tier
/// keeps history). Needs `data.erase`: a shorter policy erases data.
pub(crate) async fn set_retention<K: Backend>(
    cx: &Ctx<'_, K>,
    days: Option<u32>,
) -> Result<(), Failure> {
    check_retention(cx, days)?;
    let t = &cx.identity.tenant;
    cx.node
        .backend
        .workspace()
        .set_retention_days(t, days)
        .await
        .map_err(store_failed)?;
    cx.node.settings.remove(t);
    let detail = serde_json::json!({ "retention_days": days });
    audit::record(cx, AuditAction::RetentionSet, None, detail).await
}
