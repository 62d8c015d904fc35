//! The tenant-wide chat switch: `disable_tenant` / `enable_tenant` on the socket,
//! `PUT /admin/v1/settings` on the admin API.

use super::signals::publish;
use super::{Ctx, Failure, audit, store_failed};
use crate::Backend;
use chathub_broker::Channel;
use chathub_domain::Privilege;
use chathub_domain::attachment::AttachmentPolicy;
use chathub_protocol::{ServerFrame, TenantFrame};
use chathub_store::{AuditAction, TenantSettings, WorkspaceStore};

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
    cx.node
        .backend
        .workspace()
        .settings(&cx.identity.tenant)
        .await
        .map_err(store_failed)
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
