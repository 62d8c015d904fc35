//! Attachments: photos, screenshots and documents sent in a conversation.
//!
//! A file goes through three steps, none of which holds it whole in memory (images,
//! bounded in size, excepted: their metadata is rewritten):
//! 1. **Staged**: the client PUTs the bytes to the node's HTTP port, in one request or in
//!    ranges, into a file of the staging directory; a broken upload resumes from the
//!    bytes staged so far ([`Attachments::write`]).
//! 2. **Checked**: once every byte is there the type is sniffed from the bytes, held
//!    against the name, the declared type and the tenant's
//!    [`AttachmentPolicy`](chathub_domain::attachment::AttachmentPolicy); end users'
//!    photos lose their location and camera metadata; images get dimensions and a
//!    thumbnail.
//! 3. **Stored**: file, thumbnail and a small record (`meta.json`, written last: an
//!    attachment exists once its record does) go to the object store, a local directory
//!    or any S3-compatible store behind one trait (`object_store`).
//!
//! The URLs a client uses carry signed, short-lived tickets ([`ticket`]), so any node
//! of a cluster can serve them and no ticket names more than one attachment.
//!
//! # Layout
//! - [`objects`]: where files live ([`ObjectsSpec`]: a directory, memory, S3) and their
//!   paths.
//! - [`checks`]: sniffing the type, stripping metadata, dimensions and thumbnails.
//! - [`ticket`]: the signed upload and download tickets.
//! - `uploads`: [`Attachments`], the service the gateway calls.
//! - `direct`: uploads straight to S3 (presigned multipart parts).

pub mod checks;
mod direct;
pub mod objects;
pub mod ticket;
mod uploads;

pub use direct::{DirectPart, DirectUpload};
pub use objects::ObjectsSpec;
pub use uploads::{Attachments, AttachmentsConfig, ErasedFiles, Progress, Stored, Variant};

use chathub_domain::attachment::FileRefusal;

/// What went wrong with an attachment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The file breaks the tenant's rules (size, type, name). Tell the client; the
    /// staged bytes are gone, the upload starts over.
    #[error("{0}")]
    Refused(FileRefusal),
    /// The body goes past the size the upload declared.
    #[error("the upload declared {size} bytes; more were sent")]
    Overflow {
        /// The declared size.
        size: u64,
    },
    /// A range started past the bytes staged so far: resume from `received`.
    #[error("{received} bytes are staged; a range must start at or before them")]
    Offset {
        /// Bytes staged so far.
        received: u64,
    },
    /// Another request is writing this upload now.
    #[error("another request is uploading this attachment")]
    Busy,
    /// No such attachment (or not in this conversation).
    #[error("no such attachment")]
    NotFound,
    /// A ticket that is not valid: forged, for something else, or damaged.
    #[error("invalid ticket")]
    BadTicket,
    /// A ticket past its expiry: ask for a new one.
    #[error("the ticket has expired")]
    Expired,
    /// The body broke off (the client's connection dropped); what arrived is staged.
    #[error("the upload broke off after {received} bytes")]
    Interrupted {
        /// Bytes staged so far.
        received: u64,
    },
    /// The object store could not be reached or failed; retry.
    #[error("object store unavailable: {0}")]
    Unavailable(#[source] object_store::Error),
    /// The staging directory failed (disk full, permissions).
    #[error("staging failed: {0}")]
    Staging(#[source] std::io::Error),
    /// A stored record could not be read.
    #[error("corrupt attachment record: {0}")]
    Corrupt(String),
    /// A direct upload's parts do not make the declared file (missing, wrong ETags, too
    /// few bytes): send the missing parts and complete again.
    #[error("the upload's parts are not complete: {0}")]
    BadParts(String),
}

impl AttachmentError {
    /// The protocol's error code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            AttachmentError::Refused(FileRefusal::TooLarge { .. })
            | AttachmentError::Overflow { .. } => "too_large",
            AttachmentError::Refused(FileRefusal::BadName(_)) | AttachmentError::BadParts(_) => {
                "bad_request"
            }
            AttachmentError::Refused(_) => "unsupported_type",
            AttachmentError::Offset { .. } | AttachmentError::Busy => "conflict",
            AttachmentError::NotFound => "not_found",
            AttachmentError::BadTicket => "unauthorized",
            AttachmentError::Expired => "expired",
            AttachmentError::Interrupted { .. } | AttachmentError::Unavailable(_) => "unavailable",
            AttachmentError::Staging(_) | AttachmentError::Corrupt(_) => "internal",
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AttachmentError::Busy
                | AttachmentError::Interrupted { .. }
                | AttachmentError::Unavailable(_)
        )
    }
}

impl From<FileRefusal> for AttachmentError {
    fn from(r: FileRefusal) -> Self {
        AttachmentError::Refused(r)
    }
}
