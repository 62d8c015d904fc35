//! Canned responses: `canned_list` (agents), `canned_upsert` and `canned_delete`
//! (`canned.manage`), for the socket and the admin API alike.

use super::engagements::valid_id;
use super::{Ctx, Failure, store_failed};
use crate::Backend;
use chathub_domain::Privilege;
use chathub_domain::canned::{self, CannedResponse};
use chathub_protocol::{CannedListReply, Reply};
use chathub_store::AuditAction;
use chathub_store::WorkspaceStore;

/// Longest canned shortcut, in bytes.
pub(crate) const MAX_SHORTCUT: usize = 64;

/// `canned_list`: the tenant's canned responses matching `query` (all without one).
pub(crate) async fn list<K: Backend>(
    cx: &Ctx<'_, K>,
    query: Option<String>,
) -> Result<Reply, Failure> {
    cx.require_agent("canned_list")?;
    let q = query.unwrap_or_default();
    let items = all(cx)
        .await?
        .into_iter()
        .filter(|c| canned::matches(c, &q))
        .collect();
    Ok(Reply::CannedList(CannedListReply { items }))
}

/// Every canned response of the tenant.
pub(crate) async fn all<K: Backend>(cx: &Ctx<'_, K>) -> Result<Vec<CannedResponse>, Failure> {
    cx.node
        .backend
        .workspace()
        .canned(&cx.identity.tenant)
        .await
        .map_err(store_failed)
}

/// `canned_upsert`: creates (a new id when `id` is absent) or replaces one.
pub(crate) async fn upsert<K: Backend>(
    cx: &Ctx<'_, K>,
    id: Option<String>,
    shortcut: String,
    text: String,
) -> Result<CannedResponse, Failure> {
    cx.require(Privilege::CannedManage)?;
    let max = cx.node.config.limits.max_text_bytes;
    if shortcut.trim().is_empty() || shortcut.len() > MAX_SHORTCUT {
        return Err(Failure::bad_request(format!(
            "`shortcut` must be 1 to {MAX_SHORTCUT} bytes"
        )));
    }
    if text.trim().is_empty() || text.len() > max {
        return Err(Failure::bad_request(format!(
            "`text` must be 1 to {max} bytes"
        )));
    }
    if let Some(id) = &id {
        valid_id(id, "id")?;
    }
    let canned = CannedResponse {
        id: id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        shortcut,
        text,
    };
    cx.node
        .backend
        .workspace()
        .upsert_canned(&cx.identity.tenant, canned.clone())
        .await
        .map_err(store_failed)?;
    let detail = super::audit::detail(&canned);
    super::audit::record(cx, AuditAction::CannedPut, Some(&canned.id), detail).await?;
    Ok(canned)
}

/// `canned_delete`; `not_found` when there was none.
pub(crate) async fn delete<K: Backend>(cx: &Ctx<'_, K>, id: &str) -> Result<(), Failure> {
    cx.require(Privilege::CannedManage)?;
    let removed = cx
        .node
        .backend
        .workspace()
        .delete_canned(&cx.identity.tenant, id)
        .await
        .map_err(store_failed)?;
    if removed {
        let detail = serde_json::Value::Null;
        super::audit::record(cx, AuditAction::CannedDeleted, Some(id), detail).await?;
    }
    super::removed(removed, "canned response")
}
