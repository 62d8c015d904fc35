//! The audit log of admin actions (`chathub_store::audit`): each op that changes the
//! tenant's configuration records what it did once it is done, and admins read the log
//! (`GET /admin/v1/audit`).
//!
//! An action whose record cannot be written answers `unavailable` although the change is
//! made: every audited action is idempotent (a `PUT`, a `DELETE`, a switch), so the
//! caller's retry makes it again and records it — the log never silently misses one.

use super::{Ctx, Failure, forbidden, store_failed};
use crate::Backend;
use crate::auth::now_millis;
use chathub_domain::{Author, Role};
use chathub_store::{AuditAction, AuditEntry, AuditPage, WorkspaceStore};

/// One day, in ms.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The oldest time the log keeps now (the node's `--audit-retention-days`).
fn keep_since<K>(cx: &Ctx<'_, K>, now: u64) -> u64 {
    let days = u64::from(cx.node.config.limits.audit_retention_days);
    now.saturating_sub(days.saturating_mul(DAY_MS))
}

/// Records that the caller did `action` (to `target`, with `detail`).
pub(crate) async fn record<K: Backend>(
    cx: &Ctx<'_, K>,
    action: AuditAction,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), Failure> {
    let now = now_millis();
    let entry = AuditEntry {
        cursor: String::new(),
        at: now,
        actor: Author::of(&cx.identity.actor),
        action,
        target: target.map(str::to_owned),
        detail,
    };
    cx.node
        .backend
        .workspace()
        .record_audit(&cx.identity.tenant, entry, keep_since(cx, now))
        .await
        .map_err(store_failed)?;
    ::metrics::counter!(crate::metrics::AUDIT_RECORDED, "action" => action.as_str()).increment(1);
    Ok(())
}

/// `detail` for a value: its JSON (a value that cannot be written as JSON is recorded
/// without its detail rather than not at all).
pub(crate) fn detail<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A page of the log, newest first (admins).
pub(crate) async fn page<K: Backend>(
    cx: &Ctx<'_, K>,
    before: Option<&str>,
    limit: Option<u32>,
) -> Result<AuditPage, Failure> {
    if cx.identity.role != Role::Admin {
        return Err(forbidden("the audit log is for admins"));
    }
    let limit = cx.page_size(limit)?;
    cx.node
        .backend
        .workspace()
        .audit(
            &cx.identity.tenant,
            before,
            limit,
            keep_since(cx, now_millis()),
        )
        .await
        .map_err(store_failed)
}
