//! `attachment_upload` and `attachment_link`, and what a `send` with an attachment
//! sends. The bytes never pass through the socket: the upload URL and the download links
//! point at the HTTP side (`crate::attachments`), carrying signed, short-lived tickets.

use super::{Ctx, Failure, not_found};
use crate::Backend;
use chathub_attachments::ticket::{DownloadTicket, UploadTicket};
use chathub_attachments::{AttachmentError, Attachments, Stored, Variant};
use chathub_domain::{AttachmentCard, AttachmentId, AttachmentStatus, ConversationId, Participant};
use chathub_protocol::{ErrorCode, LinkReply, Reply, UploadPart, UploadReply};
use std::sync::Arc;

/// The node's attachments, or `unavailable` when none are configured.
pub(crate) fn service<'a, K: Backend>(cx: &Ctx<'a, K>) -> Result<&'a Arc<Attachments>, Failure> {
    cx.node.attachments.as_ref().ok_or_else(|| {
        Failure::new(
            ErrorCode::Unavailable,
            "attachments are not configured on this server",
        )
    })
}

/// An attachment failure as the client sees it; store outages are logged here.
pub(crate) fn failed(e: AttachmentError) -> Failure {
    if let AttachmentError::Interrupted { received } = e {
        // A phone lost its network: normal, and the client resumes.
        tracing::debug!(received, "upload broke off");
        return Failure::new(ErrorCode::Unavailable, e.to_string());
    }
    let code = match e.code() {
        "too_large" => ErrorCode::TooLarge,
        "unsupported_type" => ErrorCode::UnsupportedType,
        "bad_request" => ErrorCode::BadRequest,
        "conflict" => ErrorCode::Conflict,
        "not_found" => ErrorCode::NotFound,
        "unauthorized" => ErrorCode::Forbidden,
        "expired" => ErrorCode::Expired,
        "unavailable" => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    match code {
        ErrorCode::Unavailable | ErrorCode::Internal => {
            ::metrics::counter!(crate::metrics::BACKEND_ERRORS, "during" => "attachments")
                .increment(1);
            tracing::warn!(error = %e, "attachments failed");
            let message = if code == ErrorCode::Internal {
                "internal error".to_owned()
            } else {
                "attachment store unavailable; retry".to_owned()
            };
            Failure::new(code, message)
        }
        _ => Failure::new(code, e.to_string()),
    }
}

fn now_secs() -> u64 {
    crate::auth::now_millis() / 1000
}

/// `attachment_upload`.
pub(crate) async fn upload<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    name: String,
    size: u64,
    content_type: Option<String>,
    client_msg_id: Option<String>,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    super::send::check_client_msg_id(client_msg_id.as_deref())?;
    let attachments = service(cx)?;
    if size == 0 {
        return Err(Failure::bad_request("`size` must be at least 1"));
    }
    let settings = cx
        .node
        .settings(&cx.identity.tenant)
        .await
        .map_err(super::store_failed)?;
    settings
        .attachments
        .check_upload(&name, size, content_type.as_deref(), cx.is_end_user())
        .map_err(|r| failed(r.into()))?;
    let uploader = Participant::of(&cx.identity.actor).key();
    let id = attachments.key().attachment_id(
        &cx.identity.tenant,
        &conversation,
        &uploader,
        client_msg_id.as_deref(),
    );
    let ttl = attachments.config().upload_ttl.as_secs().max(1);
    let ticket = UploadTicket {
        tenant: cx.identity.tenant.clone(),
        conversation,
        attachment: id.clone(),
        uploader,
        end_user: cx.is_end_user(),
        name,
        size,
        content_type,
        exp: now_secs() + ttl,
    };
    let progress = attachments.progress(&ticket).await.map_err(failed)?;
    if let Some(stored) = progress.stored {
        if stored.uploader != ticket.uploader {
            return Err(not_found("attachment"));
        }
        return Ok(Reply::AttachmentUpload(UploadReply {
            attachment: id,
            upload_url: None,
            expires_at: None,
            received: stored.card.size,
            size: stored.card.size,
            stored: Some(stored.card),
            parts: Vec::new(),
            complete_url: None,
        }));
    }
    let token = attachments.key().sign_upload(&ticket);
    if attachments.uploads_direct() {
        // Straight to the bucket: this node never carries the bytes.
        let direct = attachments.start_direct(&ticket).await.map_err(failed)?;
        return Ok(Reply::AttachmentUpload(UploadReply {
            upload_url: None,
            complete_url: Some(format!(
                "{}/attachments/v1/uploads/{}/complete?t={token}",
                cx.node.http_base,
                id.as_str()
            )),
            attachment: id,
            expires_at: Some(ticket.exp * 1000),
            received: 0,
            size,
            stored: None,
            parts: direct
                .parts
                .into_iter()
                .map(|p| UploadPart {
                    number: p.number,
                    url: p.url,
                    offset: p.offset,
                    size: p.size,
                })
                .collect(),
        }));
    }
    Ok(Reply::AttachmentUpload(UploadReply {
        upload_url: Some(format!(
            "{}/attachments/v1/uploads/{}?t={token}",
            cx.node.http_base,
            id.as_str()
        )),
        attachment: id,
        expires_at: Some(ticket.exp * 1000),
        received: progress.received,
        size,
        stored: None,
        parts: Vec::new(),
        complete_url: None,
    }))
}

/// `attachment_link`: links for the conversation's participants only (scope: the end
/// user's own conversation, any of the tenant's for agents).
pub(crate) async fn link<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: Option<ConversationId>,
    attachment: AttachmentId,
) -> Result<Reply, Failure> {
    let conversation = cx.scope(conversation)?;
    let attachments = service(cx)?;
    let stored = attachments
        .stored(&cx.identity.tenant, &conversation, &attachment)
        .await
        .map_err(failed)?
        .ok_or_else(|| not_found("attachment"))?;
    match stored.card.status {
        AttachmentStatus::Blocked => return Err(blocked()),
        AttachmentStatus::Pending
            if stored.uploader != Participant::of(&cx.identity.actor).key() =>
        {
            return Err(Failure::new(
                ErrorCode::InvalidState,
                "the file is being checked; an `attachment_checked` event follows",
            ));
        }
        _ => {}
    }
    let ttl = attachments.config().link_ttl.as_secs().max(1);
    let exp = now_secs() + ttl;
    let url = |variant| download_url(cx.node, &stored, variant, exp);
    Ok(Reply::AttachmentLink(LinkReply {
        url: url(Variant::File),
        thumbnail_url: stored.card.thumbnail.then(|| url(Variant::Thumbnail)),
        expires_at: exp * 1000,
        attachment: stored.card,
    }))
}

/// A signed download URL of `variant` of a stored file, valid until `exp` (seconds).
pub(crate) fn download_url<K: Backend>(
    node: &crate::Node<K>,
    stored: &Stored,
    variant: Variant,
    exp: u64,
) -> String {
    let Some(attachments) = &node.attachments else {
        return String::new();
    };
    let token = attachments.key().sign_download(&DownloadTicket {
        tenant: stored.tenant.clone(),
        conversation: stored.conversation.clone(),
        attachment: stored.card.id.clone(),
        variant,
        exp,
    });
    let leaf = match variant {
        Variant::File => "",
        Variant::Thumbnail => "/thumbnail",
    };
    format!(
        "{}/attachments/v1/files/{}{leaf}?t={token}",
        node.http_base,
        stored.card.id.as_str()
    )
}

/// The card of a `send` with `attachment`: a stored attachment of this conversation
/// that this sender uploaded (a file is not forwarded under someone else's name).
pub(crate) async fn card<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    attachment: &AttachmentId,
) -> Result<AttachmentCard, Failure> {
    let attachments = service(cx)?;
    let stored: Stored = attachments
        .stored(&cx.identity.tenant, conversation, attachment)
        .await
        .map_err(failed)?
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::NotFound,
                "no such attachment in this conversation (or its upload is not complete)",
            )
        })?;
    if stored.uploader != Participant::of(&cx.identity.actor).key() {
        return Err(not_found("attachment"));
    }
    if stored.card.status == AttachmentStatus::Blocked {
        return Err(blocked());
    }
    Ok(stored.card)
}

/// After a file was sent `pending`: when the scanner's verdict came between the send
/// reading the file's record and its message being recorded, that verdict went to a
/// conversation without the message (or none at all, on a new one); it is told again
/// here, after the message. Telling twice is harmless.
pub(crate) async fn verdict_since_read<K: Backend>(
    cx: &Ctx<'_, K>,
    conversation: &ConversationId,
    attachment: &AttachmentId,
) {
    let Ok(attachments) = service(cx) else {
        return;
    };
    let status = match attachments
        .stored(&cx.identity.tenant, conversation, attachment)
        .await
    {
        Ok(Some(stored)) => stored.card.status,
        // The scanner's own path tells it; nothing more to do here.
        _ => return,
    };
    if status == AttachmentStatus::Pending {
        return;
    }
    let command = chathub_domain::Command::RecordVerdict {
        attachment: attachment.clone(),
        status,
    };
    if let Err(e) = super::apply::apply(cx, conversation.clone(), command).await {
        tracing::warn!(?e, "could not tell a verdict after its send");
    }
}

/// `blocked`: the scanner refused the file.
pub(crate) fn blocked() -> Failure {
    Failure::new(
        ErrorCode::Blocked,
        "the attachment scanner blocked this file",
    )
}
