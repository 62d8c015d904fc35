//! Signed tickets in upload and download URLs. A ticket names one attachment and one
//! use (upload, or download of one variant), carries everything the node serving it
//! needs (so any node of a cluster can serve it), and expires. Tickets are HS256 JWTs
//! under a key derived from the node secret for this purpose only, so no ticket is ever
//! a valid sign-in token and no sign-in token a ticket.

use crate::AttachmentError;
use crate::uploads::Variant;
use chathub_domain::{AttachmentId, ConversationId, TenantId};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const UPLOAD_AUDIENCE: &str = "chathub:attachment-upload";
const DOWNLOAD_AUDIENCE: &str = "chathub:attachment-download";

/// What an upload ticket allows: writing the bytes of one declared file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTicket {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation the file is for.
    pub conversation: ConversationId,
    /// The attachment.
    pub attachment: AttachmentId,
    /// Who uploads (a participant key, `end_user:ann`).
    pub uploader: String,
    /// Whether the uploader is an end user (their photos lose location metadata).
    pub end_user: bool,
    /// File name.
    pub name: String,
    /// Declared size, in bytes: exactly this many are accepted.
    pub size: u64,
    /// Declared type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// What a download ticket allows: reading one variant of one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadTicket {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub conversation: ConversationId,
    /// The attachment.
    pub attachment: AttachmentId,
    /// The file or its thumbnail.
    pub variant: Variant,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Serialize, Deserialize)]
struct Claims<T> {
    aud: String,
    #[serde(flatten)]
    ticket: T,
}

/// Signs and checks tickets.
#[derive(Clone)]
pub struct TicketKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ids: Vec<u8>,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

fn derive(secret: &str, purpose: &str) -> Vec<u8> {
    // HMAC is a PRF: keys for different purposes are unrelated to each other and to the
    // secret itself.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl TicketKey {
    /// The key for `secret` (the node secret every node of a cluster shares).
    pub fn new(secret: &str) -> TicketKey {
        let key = derive(secret, "chathub attachment tickets v1");
        TicketKey {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            ids: derive(secret, "chathub attachment ids v1"),
        }
    }

    /// The attachment id of an upload. With the sender's `client_msg_id` it is the same
    /// for every retry of one message (one stored object however often a phone
    /// retries) and unguessable without the secret; without one it is random.
    pub fn attachment_id(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        uploader: &str,
        client_msg_id: Option<&str>,
    ) -> AttachmentId {
        let hex = match client_msg_id {
            Some(key) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.ids) else {
                    unreachable!("HMAC takes keys of any length")
                };
                for part in [tenant.as_str(), conversation.as_str(), uploader, key] {
                    // Length-prefixed: no two different tuples hash alike.
                    mac.update(&(part.len() as u64).to_be_bytes());
                    mac.update(part.as_bytes());
                }
                hex::encode(&mac.finalize().into_bytes()[..16])
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        match AttachmentId::new(hex) {
            Ok(id) => id,
            Err(_) => unreachable!("32 hex digits are a valid id"),
        }
    }

    /// Signs an upload ticket.
    pub fn sign_upload(&self, ticket: &UploadTicket) -> String {
        self.sign(UPLOAD_AUDIENCE, ticket)
    }

    /// Signs a download ticket.
    pub fn sign_download(&self, ticket: &DownloadTicket) -> String {
        self.sign(DOWNLOAD_AUDIENCE, ticket)
    }

    /// Checks an upload ticket for `attachment` (the id in the URL).
    pub fn check_upload(
        &self,
        token: &str,
        attachment: &str,
    ) -> Result<UploadTicket, AttachmentError> {
        let t: UploadTicket = self.check(UPLOAD_AUDIENCE, token)?;
        if t.attachment.as_str() != attachment {
            return Err(AttachmentError::BadTicket);
        }
        Ok(t)
    }

    /// Checks a download ticket for `attachment` (the id in the URL).
    pub fn check_download(
        &self,
        token: &str,
        attachment: &str,
    ) -> Result<DownloadTicket, AttachmentError> {
        let t: DownloadTicket = self.check(DOWNLOAD_AUDIENCE, token)?;
        if t.attachment.as_str() != attachment {
            return Err(AttachmentError::BadTicket);
        }
        Ok(t)
    }

    fn sign<T: Serialize>(&self, audience: &str, ticket: &T) -> String {
        let claims = Claims {
            aud: audience.to_owned(),
            ticket,
        };
        match jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding) {
            Ok(token) => token,
            // Serialising plain strings and numbers cannot fail.
            Err(e) => unreachable!("ticket encoding failed: {e}"),
        }
    }

    fn check<T: for<'de> Deserialize<'de>>(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<T, AttachmentError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud"]);
        match jsonwebtoken::decode::<Claims<T>>(token, &self.decoding, &validation) {
            Ok(data) => Ok(data.claims.ticket),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err(AttachmentError::Expired)
            }
            Err(_) => Err(AttachmentError::BadTicket),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn upload(exp: u64) -> UploadTicket {
        UploadTicket {
            tenant: TenantId::new("acme").unwrap(),
            conversation: ConversationId::new("ann").unwrap(),
            attachment: AttachmentId::new("f1").unwrap(),
            uploader: "end_user:ann".into(),
            end_user: true,
            name: "a.jpg".into(),
            size: 10,
            content_type: None,
            exp,
        }
    }

    #[test]
    fn tickets_are_checked_for_key_use_attachment_and_expiry() {
        let key = TicketKey::new("secret-secret-secret-secret-32b!");
        let ticket = upload(now() + 60);
        let token = key.sign_upload(&ticket);
        assert_eq!(key.check_upload(&token, "f1").unwrap(), ticket);
        assert!(matches!(
            key.check_upload(&token, "f2"),
            Err(AttachmentError::BadTicket)
        ));
        // An upload ticket is no download ticket.
        assert!(matches!(
            key.check_download(&token, "f1"),
            Err(AttachmentError::BadTicket)
        ));
        let other = TicketKey::new("another-secret-another-secret-32");
        assert!(matches!(
            other.check_upload(&token, "f1"),
            Err(AttachmentError::BadTicket)
        ));
        let old = key.sign_upload(&upload(now() - 1));
        assert!(matches!(
            key.check_upload(&old, "f1"),
            Err(AttachmentError::Expired)
        ));
        assert!(matches!(
            key.check_upload("garbage", "f1"),
            Err(AttachmentError::BadTicket)
        ));
    }

    #[test]
    fn ids_are_stable_per_message_and_distinct_otherwise() {
        let key = TicketKey::new("secret-secret-secret-secret-32b!");
        let (t, c) = (
            TenantId::new("acme").unwrap(),
            ConversationId::new("ann").unwrap(),
        );
        let a = key.attachment_id(&t, &c, "end_user:ann", Some("m1"));
        assert_eq!(a, key.attachment_id(&t, &c, "end_user:ann", Some("m1")));
        assert_ne!(a, key.attachment_id(&t, &c, "end_user:ann", Some("m2")));
        assert_ne!(a, key.attachment_id(&t, &c, "agent:bob", Some("m1")));
        assert_ne!(
            key.attachment_id(&t, &c, "end_user:ann", None),
            key.attachment_id(&t, &c, "end_user:ann", None)
        );
    }
}
