//! Erasure of one end user (`data.erase`, `DELETE /admin/v1/users/{user}`): their
//! conversation in every tier (state, history, idempotency keys, read marks, queue and
//! inbox entries, webhook jobs, the record tier and its search index: one command through
//! the ownership backend, [`Command::Erase`](chathub_domain::Command::Erase)), their files
//! in the object store, and what the workspace holds (profile, engagement history,
//! redeemed items, presence). Their devices get the `erased` frame and are closed (4102);
//! consoles drop the conversation. Recorded in the audit log with the receipt.
//!
//! The conversation goes first: from that step on nothing more is recorded of it, and
//! every command decided on what it was loses. Each step is idempotent, so a call that
//! failed half-way (an `unavailable` answer) is completed by calling again; a second call
//! after a complete one removes nothing and says so.

use super::attachments::failed as attachment_failed;
use super::{Ctx, Failure, audit, store_failed};
use crate::Backend;
use crate::auth::now_millis;
use chathub_attachments::ErasedFiles;
use chathub_domain::{ConversationId, EndUserId, Privilege};
use chathub_ownership::Erased;
use chathub_store::{AuditAction, ErasedUser, WorkspaceStore};
use serde::Serialize;

/// The answer of an erasure: what went, store by store.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErasureReceipt {
    /// The end user.
    user: EndUserId,
    /// When, ms since the Unix epoch.
    erased_at: u64,
    /// Whether anything was removed (`false`: nothing was held, or it was erased before).
    removed_anything: bool,
    /// Their conversation's records.
    #[schema(value_type = ConversationErased)]
    conversation: Erased,
    /// Their files.
    #[schema(value_type = FilesErased)]
    attachments: ErasedFiles,
    /// What the workspace held about them.
    #[schema(value_type = WorkspaceErased)]
    workspace: ErasedUser,
}

/// What went of the conversation (counts of records).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: chathub_ownership::Erased is serialized
pub(crate) struct ConversationErased {
    /// Events of the hot tier (memory, or Redis's history stream).
    history_events: u64,
    /// Events of the record tier (the data directory, or the PostgreSQL archive), each
    /// with its search entry.
    archived_events: u64,
    /// Remembered answers of sends (idempotency keys).
    idempotency_keys: u64,
    /// Read marks.
    read_marks: u64,
    /// Its entry in the tenant's queue.
    queue_entries: u64,
    /// Its changes in the tenant's inbox stream.
    inbox_changes: u64,
    /// Pending offline-webhook deliveries.
    webhook_jobs: u64,
}

/// What went of the files.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: chathub_attachments::ErasedFiles is serialized
pub(crate) struct FilesErased {
    /// Attachments (each with its file, thumbnail and record).
    attachments: u64,
    /// Objects deleted in all (files, thumbnails, records, scan marks, direct uploads).
    objects: u64,
}

/// What went of the workspace.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: chathub_store::ErasedUser is serialized
pub(crate) struct WorkspaceErased {
    /// The profile the brand pushed (0 or 1).
    profile: u64,
    /// Engagement history events.
    engagement_history: u64,
    /// Redeemed catalogue items.
    redeemed: u64,
    /// Presence records (live sessions, last seen, name).
    presence: u64,
}

/// Erases `user` from every store.
pub(crate) async fn erase<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
) -> Result<ErasureReceipt, Failure> {
    cx.require(Privilege::DataErase)?;
    let tenant = &cx.identity.tenant;
    let conversation = ConversationId::of_end_user(user);
    let erased = super::apply::erase(cx, &conversation).await?;
    let attachments = match &cx.node.attachments {
        Some(store) => store
            .erase_conversation(tenant, &conversation)
            .await
            .map_err(attachment_failed)?,
        None => ErasedFiles::default(),
    };
    let workspace = cx
        .node
        .backend
        .workspace()
        .erase_user(tenant, user)
        .await
        .map_err(store_failed)?;
    let receipt = ErasureReceipt {
        user: user.clone(),
        erased_at: now_millis(),
        removed_anything: !erased.is_empty()
            || attachments != ErasedFiles::default()
            || workspace != ErasedUser::default(),
        conversation: erased,
        attachments,
        workspace,
    };
    ::metrics::counter!(crate::metrics::ERASURES).increment(1);
    audit::record(
        cx,
        AuditAction::UserErased,
        Some(user.as_str()),
        audit::detail(&serde_json::json!({
            "conversation": receipt.conversation,
            "attachments": receipt.attachments,
            "workspace": receipt.workspace,
        })),
    )
    .await?;
    Ok(receipt)
}
