//! Export of one end user (a data-subject access request, `data.export`): everything the
//! tenant holds about them — the profile the brand pushed, their engagement history
//! (received, redeemed, earned…), their conversation (every message, the ownership
//! timeline, the engagements sent and redeemed) and their attachments as signed links —
//! as one JSON document, or as a readable text. Recorded in the audit log with its counts.

use super::attachments::{download_url, failed as attachment_failed};
use super::transcript::{self, Format};
use super::{Ctx, Failure, audit, store_failed};
use crate::Backend;
use crate::auth::now_millis;
use chathub_attachments::Variant;
use chathub_domain::engagement::{HistoryEvent, Profile};
use chathub_domain::{AttachmentCard, AttachmentStatus, ConversationId, EndUserId, Privilege};
use chathub_protocol::TranscriptReply;
use chathub_store::{AuditAction, ConversationStore, WorkspaceStore};
use serde::Serialize;

/// Engagement history events read per page.
const PAGE: usize = 200;

/// Everything held about one end user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserExport {
    /// The tenant.
    #[schema(value_type = String)]
    tenant: chathub_domain::TenantId,
    /// The end user.
    user: EndUserId,
    /// When it was made, ms since the Unix epoch.
    generated_at: u64,
    /// The profile the brand pushed (`null`: none).
    profile: Option<Profile>,
    /// Their engagement history, newest first: received, redeemed, earned, viewed…
    engagement_history: Vec<HistoryEvent>,
    /// Their conversation (`null`: they never wrote): messages, ownership timeline,
    /// engagements sent and redeemed.
    conversation: Option<TranscriptReply>,
    /// Their conversation's files, with links valid until `links_expire_at`.
    attachments: Vec<ExportedAttachment>,
    /// When the links stop working, ms since the Unix epoch.
    links_expire_at: u64,
    /// How much of each was exported.
    receipt: ExportReceipt,
}

/// One file of the conversation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ExportedAttachment {
    /// The `seq` of the message that sent it.
    seq: u64,
    /// Who sent it (`end_user:…`, `agent:…`).
    sent_by: String,
    /// The file as the thread shows it.
    card: AttachmentCard,
    /// SHA-256 of the stored bytes, hex (absent for direct uploads and lost records).
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// The file (absent when it was blocked by the scanner or is not stored any more).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Its thumbnail, for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
}

/// Counts of what an export holds.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(crate) struct ExportReceipt {
    /// Whether a profile was held.
    profile: bool,
    /// Engagement history events.
    engagement_history: usize,
    /// Messages of the conversation.
    messages: usize,
    /// Ownership changes of the conversation.
    timeline: usize,
    /// Files.
    attachments: usize,
}

/// Gathers the export of `user`.
pub(crate) async fn export<K: Backend>(
    cx: &Ctx<'_, K>,
    user: &EndUserId,
) -> Result<UserExport, Failure> {
    cx.require(Privilege::DataExport)?;
    let tenant = &cx.identity.tenant;
    let workspace = cx.node.backend.workspace();
    let profile = workspace
        .profile(tenant, user)
        .await
        .map_err(store_failed)?;
    let mut engagement_history = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = workspace
            .history(tenant, user, None, before.as_deref(), PAGE)
            .await
            .map_err(store_failed)?;
        engagement_history.extend(page.events);
        match page.next_cursor {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let id = ConversationId::of_end_user(user);
    let state = cx
        .node
        .backend
        .store()
        .state(tenant, &id)
        .await
        .map_err(store_failed)?;
    // `new`: no event yet, or erased (then only its counters are left).
    let conversation = if state.status == chathub_domain::Status::New {
        None
    } else {
        let max = transcript::ADMIN_MAX_EVENTS;
        // What is handed to the person: never the agents' private notes.
        let audience = super::follow::Audience::EndUser;
        Some(transcript::transcript(cx, Some(id.clone()), Some(Format::Text), max, audience).await?)
    };
    let ttl = cx.node.config.export_link_ttl.as_secs().max(1);
    let exp = crate::auth::now_millis() / 1000 + ttl;
    let mut attachments = Vec::new();
    for message in conversation.iter().flat_map(|c| &c.messages) {
        let Some(card) = &message.attachment else {
            continue;
        };
        let stored = match &cx.node.attachments {
            Some(store) => store
                .stored(tenant, &id, &card.id)
                .await
                .map_err(attachment_failed)?,
            None => None,
        };
        let servable = card.status != AttachmentStatus::Blocked;
        let link = |variant| {
            stored
                .as_ref()
                .filter(|_| servable)
                .map(|s| download_url(cx.node, s, variant, exp))
        };
        attachments.push(ExportedAttachment {
            seq: message.seq,
            sent_by: format!("{}:{}", message.author.role.as_str(), message.author.id),
            card: card.clone(),
            sha256: stored
                .as_ref()
                .map(|s| s.sha256.clone())
                .filter(|h| !h.is_empty()),
            url: link(Variant::File),
            thumbnail_url: if card.thumbnail {
                link(Variant::Thumbnail)
            } else {
                None
            },
        });
    }
    let receipt = ExportReceipt {
        profile: profile.is_some(),
        engagement_history: engagement_history.len(),
        messages: conversation.as_ref().map_or(0, |c| c.messages.len()),
        timeline: conversation.as_ref().map_or(0, |c| c.timeline.len()),
        attachments: attachments.len(),
    };
    audit::record(
        cx,
        AuditAction::UserExported,
        Some(user.as_str()),
        audit::detail(&receipt),
    )
    .await?;
    Ok(UserExport {
        tenant: tenant.clone(),
        user: user.clone(),
        generated_at: now_millis(),
        profile,
        engagement_history,
        conversation,
        attachments,
        links_expire_at: exp * 1000,
        receipt,
    })
}

/// The export as a readable text: the profile, the engagement history, the
/// conversation's transcript and the files' links.
pub(crate) fn text(export: &UserExport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let when = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "Everything {} holds about {} (made {})\n",
        export.tenant,
        export.user,
        when(export.generated_at)
    );
    out.push_str("PROFILE\n");
    match &export.profile {
        None => out.push_str("  none\n"),
        Some(p) => {
            let _ = writeln!(out, "  name: {} {}", p.first_name, p.last_name);
            let _ = writeln!(out, "  locale: {}", p.locale);
            let _ = writeln!(out, "  points balance: {}", p.points_balance);
            let _ = writeln!(out, "  segments: {}", p.segments.join(", "));
        }
    }
    out.push_str("\nENGAGEMENT HISTORY (newest first)\n");
    if export.engagement_history.is_empty() {
        out.push_str("  none\n");
    }
    for e in &export.engagement_history {
        let points = e
            .points
            .map(|p| format!(" ({p} points)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {:?} {} {}{points}",
            when(e.at),
            e.action,
            e.engagement_type.as_str(),
            e.title
        );
    }
    out.push_str("\nCONVERSATION\n");
    match &export.conversation {
        None => out.push_str("  none\n"),
        Some(c) => out.push_str(c.rendered.as_deref().unwrap_or_default()),
    }
    out.push_str("\nFILES\n");
    if export.attachments.is_empty() {
        out.push_str("  none\n");
    }
    for a in &export.attachments {
        let _ = writeln!(
            out,
            "  #{} {} ({} bytes, {}) by {}: {}",
            a.seq,
            a.card.name,
            a.card.size,
            a.card.content_type,
            a.sent_by,
            a.url.as_deref().unwrap_or("not available")
        );
    }
    if !export.attachments.is_empty() {
        let _ = writeln!(out, "  (links work until {})", when(export.links_expire_at));
    }
    out
}
