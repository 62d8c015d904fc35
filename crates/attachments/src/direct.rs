//! Direct uploads to S3: the client PUTs the parts of a multipart upload straight to the
//! bucket with presigned URLs, so gateways never carry the bytes; the node only creates
//! the upload, completes it and checks the result (reading the first bytes, and images,
//! which it rewrites, whole).
//!
//! Resumable by parts: asking again for the same attachment gives the same multipart
//! upload (its id is kept in `uploads/…/state.json`), and only the parts not yet sent
//! need sending again.

use crate::checks::{self, SNIFF_BYTES, TextCheck};
use crate::objects::Paths;
use crate::ticket::UploadTicket;
use crate::uploads::{StoredFacts, unavailable};
use crate::{AttachmentError, Attachments, Progress};
use bytes::Bytes;
use chathub_domain::attachment::{AttachmentPolicy, FileRefusal};
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// One part of a direct upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectPart {
    /// Its number, from 1.
    pub number: u32,
    /// Where to `PUT` it (presigned, valid as long as the upload URL would be).
    pub url: String,
    /// The first byte of the file it holds.
    pub offset: u64,
    /// How many bytes it holds.
    pub size: u64,
}

/// A direct upload's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    /// The parts, in order.
    pub parts: Vec<DirectPart>,
}

/// What `state.json` keeps of a multipart upload.
#[derive(Serialize, Deserialize)]
struct State {
    upload_id: String,
}

impl Attachments {
    /// Whether uploads go straight to the object store (S3, with direct uploads on).
    pub fn uploads_direct(&self) -> bool {
        self.s3.is_some()
    }

    /// Creates (or finds again) the multipart upload of `ticket` and presigns its parts.
    pub async fn start_direct(
        &self,
        ticket: &UploadTicket,
    ) -> Result<DirectUpload, AttachmentError> {
        let s3 = self.s3.as_ref().ok_or(AttachmentError::NotFound)?;
        let paths = Paths::of(&ticket.tenant, &ticket.conversation, &ticket.attachment);
        let upload_id = match self.state(&paths).await? {
            Some(state) => state.upload_id,
            None => {
                let upload_id = s3
                    .create_multipart(&paths.direct_file)
                    .await
                    .map_err(unavailable)?;
                let state = serde_json::to_vec(&State {
                    upload_id: upload_id.clone(),
                })
                .map_err(|e| AttachmentError::Corrupt(e.to_string()))?;
                self.objects
                    .put(&paths.direct_state, PutPayload::from(state))
                    .await
                    .map_err(unavailable)?;
                upload_id
            }
        };
        let part = self.config.direct_part_bytes.max(5 * 1024 * 1024);
        let count = ticket.size.div_ceil(part).max(1);
        let mut parts = Vec::with_capacity(count as usize);
        for i in 0..count {
            let number = (i + 1) as u32;
            let options = SignedUrlOptions::new().with_query([
                ("partNumber", number.to_string()),
                ("uploadId", upload_id.clone()),
            ]);
            let url = s3
                .signed_url_opts(
                    Method::PUT,
                    &paths.direct_file,
                    self.config.upload_ttl,
                    &options,
                )
                .await
                .map_err(unavailable)?;
            let offset = i * part;
            parts.push(DirectPart {
                number,
                url: url.to_string(),
                offset,
                size: part.min(ticket.size - offset),
            });
        }
        Ok(DirectUpload { parts })
    }

    async fn state(&self, paths: &Paths) -> Result<Option<State>, AttachmentError> {
        match self.objects.get(&paths.direct_state).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(unavailable)?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| AttachmentError::Corrupt(format!("upload state: {e}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(AttachmentError::Unavailable(e)),
        }
    }

    /// Completes the direct upload of `ticket` with the ETags S3 gave its parts (in part
    /// order), checks the file against `policy` and stores it. Completing a stored
    /// upload again answers its record.
    pub async fn complete_direct(
        &self,
        ticket: &UploadTicket,
        policy: &AttachmentPolicy,
        etags: Vec<String>,
    ) -> Result<Progress, AttachmentError> {
        let s3 = self.s3.as_ref().ok_or(AttachmentError::NotFound)?;
        if let Some(done) = self.already_stored(ticket).await? {
            return Ok(done);
        }
        let paths = Paths::of(&ticket.tenant, &ticket.conversation, &ticket.attachment);
        let state = self.state(&paths).await?.ok_or(AttachmentError::NotFound)?;
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        if let Err(e) = s3
            .complete_multipart(&paths.direct_file, &state.upload_id, parts)
            .await
        {
            // S3 refuses missing or wrong parts; the parts sent stay for another try.
            return Err(AttachmentError::BadParts(e.to_string()));
        }
        let _ = self.objects.delete(&paths.direct_state).await;
        let checked = self.check_direct(ticket, policy, &paths).await;
        let _ = self.objects.delete(&paths.direct_file).await;
        let (mime, facts) = checked?;
        let stored = self.record(ticket, mime, facts, &paths).await?;
        Ok(Progress {
            received: ticket.size,
            size: ticket.size,
            stored: Some(stored),
        })
    }

    /// Checks the completed upload and puts the file in its place.
    async fn check_direct(
        &self,
        ticket: &UploadTicket,
        policy: &AttachmentPolicy,
        paths: &Paths,
    ) -> Result<(&'static str, StoredFacts), AttachmentError> {
        let size = self
            .objects
            .head(&paths.direct_file)
            .await
            .map_err(unavailable)?
            .size;
        if size > ticket.size {
            return Err(AttachmentError::Overflow { size: ticket.size });
        }
        if size < ticket.size {
            return Err(AttachmentError::BadParts(format!(
                "the parts hold {size} bytes of the {} declared",
                ticket.size
            )));
        }
        let head = self
            .objects
            .get_range(&paths.direct_file, 0..size.min(SNIFF_BYTES as u64))
            .await
            .map_err(unavailable)?;
        // Text has no signature: only without one is the whole file read (streamed);
        // with one, `sniff` does not look at `text`.
        let mut text = TextCheck::default();
        if infer::get(&head).is_none() {
            let got = self
                .objects
                .get(&paths.direct_file)
                .await
                .map_err(unavailable)?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                text.feed(&chunk.map_err(unavailable)?);
            }
        }
        let found = checks::sniff(&head, text.is_text())
            .ok_or_else(|| FileRefusal::TypeNotAllowed("content of no recognised type".into()))?;
        let kind = policy.check_found(&ticket.name, found, ticket.content_type.as_deref())?;
        policy.check_location(kind, ticket.end_user)?;
        if kind.image {
            let read = async {
                let got = self
                    .objects
                    .get(&paths.direct_file)
                    .await
                    .map_err(unavailable)?;
                got.bytes().await.map_err(unavailable)
            };
            let bytes: (Bytes, _) = self.image_bytes(ticket, read).await?;
            let facts = self.store_image(ticket, policy, bytes, paths).await?;
            return Ok((kind.mime, facts));
        }
        // Server-side: the bytes stay in the store.
        self.objects
            .copy(&paths.direct_file, &paths.file)
            .await
            .map_err(unavailable)?;
        Ok((
            kind.mime,
            StoredFacts {
                size,
                // Not computed: that would carry every byte through the node.
                sha256: String::new(),
                ..StoredFacts::default()
            },
        ))
    }
}
