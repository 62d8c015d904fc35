//! [`Attachments`]: staging, checking and storing uploads, and reading stored files.

use crate::AttachmentError;
use crate::checks::{self, SNIFF_BYTES, TextCheck};
use crate::objects::{ObjectsSpec, Paths};
use crate::ticket::{TicketKey, UploadTicket};
use bytes::Bytes;
use chathub_domain::attachment::{AttachmentPolicy, FileRefusal};
use chathub_domain::{AttachmentCard, AttachmentId, AttachmentStatus, ConversationId, TenantId};
use futures::{Stream, StreamExt};
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// How attachments are kept and served. Every field states its default.
#[derive(Debug, Clone)]
pub struct AttachmentsConfig {
    /// Where files live. Embedded default: `<data-dir>/attachments`.
    pub objects: ObjectsSpec,
    /// Where uploads are staged until complete (local disk of the node). Embedded
    /// default: `<data-dir>/uploads`.
    pub staging_dir: PathBuf,
    /// How long an upload URL is valid (a client asks again with the same
    /// `client_msg_id` to resume later). Default 15 min.
    pub upload_ttl: Duration,
    /// How long a download link is valid. Default 5 min.
    pub link_ttl: Duration,
    /// How long an unfinished upload's bytes are kept. Default 24 h.
    pub staging_ttl: Duration,
    /// Largest image read whole to strip metadata and make a thumbnail; a larger image
    /// is refused (`too_large`). Default 64 MiB.
    pub max_image_bytes: u64,
    /// Whether a scanner checks every file: stored files start `pending` and a scan
    /// mark is left for them ([`Attachments::pending_scans`]). Default false.
    pub scanned: bool,
    /// On S3: clients upload straight to the bucket (presigned multipart parts), so the
    /// node never carries the bytes (the bucket's CORS must allow `PUT` and expose
    /// `ETag` for browsers). Default true.
    pub direct_uploads: bool,
    /// Bytes per part of a direct upload (at least 5 MiB, S3's minimum). Default 8 MiB.
    pub direct_part_bytes: u64,
}

impl AttachmentsConfig {
    /// The defaults around `objects` and `staging_dir`.
    pub fn new(objects: ObjectsSpec, staging_dir: impl Into<PathBuf>) -> AttachmentsConfig {
        AttachmentsConfig {
            objects,
            staging_dir: staging_dir.into(),
            upload_ttl: Duration::from_secs(15 * 60),
            link_ttl: Duration::from_secs(5 * 60),
            staging_ttl: Duration::from_secs(24 * 3600),
            max_image_bytes: 64 * 1024 * 1024,
            scanned: false,
            direct_uploads: true,
            direct_part_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The record of a stored attachment (`meta.json` beside the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// What the thread shows.
    pub card: AttachmentCard,
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub conversation: ConversationId,
    /// Who uploaded it (a participant key, `end_user:ann`); only they may send it.
    pub uploader: String,
    /// When it was stored, ms since the Unix epoch.
    pub stored_at: u64,
    /// SHA-256 of the stored file, hex.
    pub sha256: String,
}

/// The file itself or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The file.
    File,
    /// The JPEG thumbnail of an image.
    Thumbnail,
}

/// What a stored file's record says of it beyond the request.
#[derive(Debug, Default)]
pub(crate) struct StoredFacts {
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) thumbnail: bool,
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes received so far.
    pub received: u64,
    /// Bytes declared.
    pub size: u64,
    /// The stored attachment, once every byte arrived and passed the checks.
    pub stored: Option<Stored>,
}

/// The attachments service (see the crate docs).
pub struct Attachments {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) config: AttachmentsConfig,
    key: TicketKey,
    /// Uploads a request is writing now: one writer per upload.
    writing: Mutex<HashSet<AttachmentId>>,
    /// Uploads being checked and copied to the object store at once: bounds the memory
    /// of the copy (one part buffer each).
    finishing: Semaphore,
    /// Images held in memory at once.
    images: Semaphore,
    /// Bytes per part of a copy to the object store (S3 wants at least 5 MiB).
    part_bytes: usize,
    /// The bucket, for direct uploads (S3 with direct uploads on).
    pub(crate) s3: Option<Arc<object_store::aws::AmazonS3>>,
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments")
            .field("objects", &self.config.objects)
            .finish_non_exhaustive()
    }
}

/// What [`Attachments::erase_conversation`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErasedFiles {
    /// Attachments (each with its file, thumbnail and record).
    pub attachments: u64,
    /// Objects deleted in all (files, thumbnails, records, scan marks, direct uploads).
    pub objects: u64,
}

/// Removes an upload from [`Attachments::writing`] when its request ends.
struct Writing<'a> {
    set: &'a Mutex<HashSet<AttachmentId>>,
    id: AttachmentId,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn unavailable(e: object_store::Error) -> AttachmentError {
    match e {
        object_store::Error::NotFound { .. } => AttachmentError::NotFound,
        e => AttachmentError::Unavailable(e),
    }
}

impl Attachments {
    /// Opens the object store and the staging directory; tickets are signed under a key
    /// derived from `secret`.
    pub fn open(config: AttachmentsConfig, secret: &str) -> Result<Attachments, AttachmentError> {
        std::fs::create_dir_all(&config.staging_dir).map_err(AttachmentError::Staging)?;
        let (objects, s3): (Arc<dyn ObjectStore>, _) = match &config.objects {
            ObjectsSpec::S3(spec) if config.direct_uploads => {
                let s3 = Arc::new(spec.open()?);
                (s3.clone(), Some(s3))
            }
            spec => (spec.open()?, None),
        };
        let part_bytes = match config.objects {
            ObjectsSpec::S3(_) => 5 * 1024 * 1024,
            _ => 1024 * 1024,
        };
        Ok(Attachments {
            objects,
            key: TicketKey::new(secret),
            config,
            writing: Mutex::default(),
            finishing: Semaphore::new(1),
            images: Semaphore::new(1),
            part_bytes,
            s3,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AttachmentsConfig {
        &self.config
    }

    /// The ticket key.
    pub fn key(&self) -> &TicketKey {
        &self.key
    }

    /// The stored attachment `a` of conversation `c`, if it exists.
    pub async fn stored(
        &self,
        t: &TenantId,
        c: &ConversationId,
        a: &AttachmentId,
    ) -> Result<Option<Stored>, AttachmentError> {
        let paths = Paths::of(t, c, a);
        let bytes = match self.objects.get(&paths.record).await {
            Ok(got) => got.bytes().await.map_err(unavailable)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(AttachmentError::Unavailable(e)),
        };
        let stored: Stored =
            serde_json::from_slice(&bytes).map_err(|e| AttachmentError::Corrupt(e.to_string()))?;
        if stored.tenant != *t || stored.conversation != *c {
            return Err(AttachmentError::Corrupt(
                "record of another conversation".into(),
            ));
        }
        Ok(Some(stored))
    }

    /// The progress of an upload that is stored already, if it is.
    pub(crate) async fn already_stored(
        &self,
        ticket: &UploadTicket,
    ) -> Result<Option<Progress>, AttachmentError> {
        let stored = self
            .stored(&ticket.tenant, &ticket.conversation, &ticket.attachment)
            .await?;
        Ok(stored.map(|stored| Progress {
            received: ticket.size,
            size: ticket.size,
            stored: Some(stored),
        }))
    }

    fn staged_path(&self, a: &AttachmentId) -> PathBuf {
        self.config.staging_dir.join(format!("{}.part", a.as_str()))
    }

    /// Where the upload of `ticket` stands: stored, or how many bytes this node has
    /// staged (0 on a node that never saw it).
    pub async fn progress(&self, ticket: &UploadTicket) -> Result<Progress, AttachmentError> {
        if let Some(done) = self.already_stored(ticket).await? {
            return Ok(done);
        }
        let received = match tokio::fs::metadata(self.staged_path(&ticket.attachment)).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(AttachmentError::Staging(e)),
        };
        Ok(Progress {
            received,
            size: ticket.size,
            stored: None,
        })
    }

    /// Writes `body` into the upload of `ticket` from byte `start` (0 for a whole file;
    /// at most the bytes staged so far, to resume or to redo a range). When the last
    /// byte arrives the file is checked against `policy` and stored. An upload already
    /// stored answers with its record (retries are harmless).
    pub async fn write<S, E>(
        &self,
        ticket: &UploadTicket,
        policy: &AttachmentPolicy,
        start: u64,
        body: S,
    ) -> Result<Progress, AttachmentError>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let _writing = {
            let Ok(mut set) = self.writing.lock() else {
                return Err(AttachmentError::Busy);
            };
            if !set.insert(ticket.attachment.clone()) {
                return Err(AttachmentError::Busy);
            }
            Writing {
                set: &self.writing,
                id: ticket.attachment.clone(),
            }
        };
        let progress = self.progress(ticket).await?;
        if progress.stored.is_some() {
            return Ok(progress);
        }
        if start > progress.received {
            return Err(AttachmentError::Offset {
                received: progress.received,
            });
        }
        // Checked again here: the policy may have changed since the ticket was made.
        policy.check_upload(
            &ticket.name,
            ticket.size,
            ticket.content_type.as_deref(),
            ticket.end_user,
        )?;
        let path = self.staged_path(&ticket.attachment);
        let received = self.stage(&path, ticket.size, start, body).await?;
        if received < ticket.size {
            return Ok(Progress {
                received,
                size: ticket.size,
                stored: None,
            });
        }
        let finished = self.finish(ticket, policy, &path).await;
        if let Err(e) = &finished
            && !e.is_retryable()
        {
            // Refused or broken: nothing half-written stays, the upload starts over.
            let _ = tokio::fs::remove_file(&path).await;
        }
        finished
    }

    /// Appends `body` to the staged file from `start`; returns the bytes staged.
    async fn stage<S, E>(
        &self,
        path: &std::path::Path,
        size: u64,
        start: u64,
        body: S,
    ) -> Result<u64, AttachmentError>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let staging = AttachmentError::Staging;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .await
            .map_err(staging)?;
        file.set_len(start).await.map_err(staging)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(staging)?;
        let mut file = tokio::io::BufWriter::with_capacity(64 * 1024, file);
        let mut at = start;
        let body = std::pin::pin!(body);
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                // The client's connection broke: keep what arrived for the resume.
                file.flush().await.map_err(staging)?;
                return Err(AttachmentError::Interrupted { received: at });
            };
            if at + chunk.len() as u64 > size {
                drop(file);
                let _ = tokio::fs::remove_file(path).await;
                return Err(AttachmentError::Overflow { size });
            }
            file.write_all(&chunk).await.map_err(staging)?;
            at += chunk.len() as u64;
        }
        file.flush().await.map_err(staging)?;
        Ok(at)
    }

    /// Checks the complete staged file and stores it.
    async fn finish(
        &self,
        ticket: &UploadTicket,
        policy: &AttachmentPolicy,
        path: &std::path::Path,
    ) -> Result<Progress, AttachmentError> {
        let _permit = self
            .finishing
            .acquire()
            .await
            .map_err(|_| AttachmentError::Busy)?;
        let staging = AttachmentError::Staging;
        // One pass: the head to sniff, whether it is text, the digest.
        let mut file = tokio::fs::File::open(path).await.map_err(staging)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut text = TextCheck::default();
        let mut digest = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await.map_err(staging)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(n);
                head.extend_from_slice(&chunk[..take]);
            }
            text.feed(chunk);
            digest.update(chunk);
        }
        let found = checks::sniff(&head, text.is_text())
            .ok_or_else(|| FileRefusal::TypeNotAllowed("content of no recognised type".into()))?;
        let kind = policy.check_found(&ticket.name, found, ticket.content_type.as_deref())?;
        policy.check_location(kind, ticket.end_user)?;
        let paths = Paths::of(&ticket.tenant, &ticket.conversation, &ticket.attachment);
        let mut facts = StoredFacts {
            size: ticket.size,
            sha256: hex::encode(digest.finalize()),
            ..StoredFacts::default()
        };
        if kind.image {
            let read = async {
                tokio::fs::read(path)
                    .await
                    .map(Bytes::from)
                    .map_err(staging)
            };
            let bytes = self.image_bytes(ticket, read).await?;
            facts = self.store_image(ticket, policy, bytes, &paths).await?;
        } else {
            self.copy_to_store(path, &paths.file).await?;
        }
        let stored = self.record(ticket, kind.mime, facts, &paths).await?;
        let _ = tokio::fs::remove_file(path).await;
        Ok(Progress {
            received: ticket.size,
            size: ticket.size,
            stored: Some(stored),
        })
    }

    /// An image's bytes, read whole (one image at a time, bounded in size).
    pub(crate) async fn image_bytes<F>(
        &self,
        ticket: &UploadTicket,
        read: F,
    ) -> Result<(Bytes, tokio::sync::SemaphorePermit<'_>), AttachmentError>
    where
        F: std::future::Future<Output = Result<Bytes, AttachmentError>>,
    {
        if ticket.size > self.config.max_image_bytes {
            return Err(FileRefusal::TooLarge {
                size: ticket.size,
                max: self.config.max_image_bytes,
            }
            .into());
        }
        let permit = self
            .images
            .acquire()
            .await
            .map_err(|_| AttachmentError::Busy)?;
        Ok((read.await?, permit))
    }

    /// Strips an image's metadata (end users' photos, by the tenant's policy), stores it
    /// and its thumbnail; returns what the record says of it.
    pub(crate) async fn store_image(
        &self,
        ticket: &UploadTicket,
        policy: &AttachmentPolicy,
        (bytes, _permit): (Bytes, tokio::sync::SemaphorePermit<'_>),
        paths: &Paths,
    ) -> Result<StoredFacts, AttachmentError> {
        let strip = ticket.end_user && policy.strip_location;
        let image = tokio::task::spawn_blocking(move || checks::read_image(bytes, strip))
            .await
            .map_err(|e| AttachmentError::Corrupt(format!("image check failed: {e}")))?;
        let mut facts = StoredFacts {
            size: image.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&image.bytes)),
            width: image.width,
            height: image.height,
            thumbnail: false,
        };
        self.objects
            .put(&paths.file, PutPayload::from_bytes(image.bytes))
            .await
            .map_err(unavailable)?;
        if let Some(small) = image.thumbnail {
            self.objects
                .put(&paths.thumbnail, PutPayload::from(small))
                .await
                .map_err(unavailable)?;
            facts.thumbnail = true;
        }
        Ok(facts)
    }

    /// Writes the record of a stored file (and its scan mark, first, with a scanner):
    /// from then on the attachment exists.
    pub(crate) async fn record(
        &self,
        ticket: &UploadTicket,
        mime: &str,
        facts: StoredFacts,
        paths: &Paths,
    ) -> Result<Stored, AttachmentError> {
        let stored = Stored {
            card: AttachmentCard {
                id: ticket.attachment.clone(),
                name: ticket.name.clone(),
                content_type: mime.to_owned(),
                size: facts.size,
                width: facts.width,
                height: facts.height,
                thumbnail: facts.thumbnail,
                status: if self.config.scanned {
                    AttachmentStatus::Pending
                } else {
                    AttachmentStatus::Clean
                },
            },
            tenant: ticket.tenant.clone(),
            conversation: ticket.conversation.clone(),
            uploader: ticket.uploader.clone(),
            stored_at: now_ms(),
            sha256: facts.sha256,
        };
        let record = serde_json::to_vec(&stored)
            .map_err(|e| AttachmentError::Corrupt(format!("encode record: {e}")))?;
        if self.config.scanned {
            // The scan owed, marked before the record exists: whichever node finds the
            // mark scans the file, even if this one dies right after the record.
            self.objects
                .put(&paths.scan, PutPayload::default())
                .await
                .map_err(unavailable)?;
        }
        // The record goes last: an attachment exists once it does.
        self.objects
            .put(&paths.record, PutPayload::from(record))
            .await
            .map_err(unavailable)?;
        tracing::debug!(attachment = %stored.card.id, size = stored.card.size, "attachment stored");
        Ok(stored)
    }

    /// Copies a staged file to the object store part by part (one part in memory).
    async fn copy_to_store(
        &self,
        from: &std::path::Path,
        to: &object_store::path::Path,
    ) -> Result<(), AttachmentError> {
        let staging = AttachmentError::Staging;
        let mut file = tokio::fs::File::open(from).await.map_err(staging)?;
        let upload = self.objects.put_multipart(to).await.map_err(unavailable)?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(staging(e));
                }
            };
            if n == 0 {
                break;
            }
            // At most one part in flight besides the one being filled.
            if let Err(e) = writer.wait_for_capacity(1).await {
                return Err(unavailable(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(unavailable)?;
        Ok(())
    }

    /// Reads `variant` of a stored attachment, all of it or `range`.
    pub async fn read(
        &self,
        stored: &Stored,
        variant: Variant,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<GetResult, AttachmentError> {
        let paths = Paths::of(&stored.tenant, &stored.conversation, &stored.card.id);
        let path = match variant {
            Variant::File => paths.file,
            Variant::Thumbnail if stored.card.thumbnail => paths.thumbnail,
            Variant::Thumbnail => return Err(AttachmentError::NotFound),
        };
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        self.objects
            .get_opts(&path, options)
            .await
            .map_err(unavailable)
    }

    /// Records the scanner's verdict on a stored attachment's record (its scan mark
    /// stays: [`Attachments::clear_scan_mark`] once the verdict is told); returns the
    /// record as it is now (`None`: no such attachment).
    pub async fn set_status(
        &self,
        t: &TenantId,
        c: &ConversationId,
        a: &AttachmentId,
        status: AttachmentStatus,
    ) -> Result<Option<Stored>, AttachmentError> {
        let paths = Paths::of(t, c, a);
        let Some(mut stored) = self.stored(t, c, a).await? else {
            return Ok(None);
        };
        if stored.card.status != status {
            stored.card.status = status;
            let record = serde_json::to_vec(&stored)
                .map_err(|e| AttachmentError::Corrupt(format!("encode record: {e}")))?;
            self.objects
                .put(&paths.record, PutPayload::from(record))
                .await
                .map_err(unavailable)?;
        }
        Ok(Some(stored))
    }

    /// Removes the scan mark of an attachment: its scan is done and told.
    pub async fn clear_scan_mark(
        &self,
        t: &TenantId,
        c: &ConversationId,
        a: &AttachmentId,
    ) -> Result<(), AttachmentError> {
        match self.objects.delete(&Paths::of(t, c, a).scan).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(AttachmentError::Unavailable(e)),
        }
    }

    /// Attachments whose scan is owed and was marked more than `older_than` ago (the
    /// node that stored them scans them at once; these are the ones it may have left),
    /// at most `limit`.
    pub async fn pending_scans(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(TenantId, ConversationId, AttachmentId)>, AttachmentError> {
        let prefix = object_store::path::Path::from(crate::objects::SCANS);
        let mut listing = self.objects.list(Some(&prefix));
        let now = std::time::SystemTime::now();
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            let modified: std::time::SystemTime = meta.last_modified.into();
            let old = now
                .duration_since(modified)
                .is_ok_and(|age| age >= older_than);
            if let Some(target) = crate::objects::scan_target(&meta.location)
                && old
            {
                found.push(target);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Deletes every object of a conversation (its end user's erasure): its files,
    /// thumbnails and records (`t-…/c-…/`), the marks of scans still owed, and direct
    /// uploads not yet checked. Idempotent: nothing left, nothing counted.
    pub async fn erase_conversation(
        &self,
        t: &TenantId,
        c: &ConversationId,
    ) -> Result<ErasedFiles, AttachmentError> {
        use object_store::path::Path;
        let (tenant, conversation) = (format!("t-{}", t.as_str()), format!("c-{}", c.as_str()));
        let prefixes = [
            Path::from_iter([tenant.as_str(), conversation.as_str()]),
            Path::from_iter([
                crate::objects::SCANS,
                tenant.as_str(),
                conversation.as_str(),
            ]),
            Path::from_iter([
                crate::objects::UPLOADS,
                tenant.as_str(),
                conversation.as_str(),
            ]),
        ];
        let mut erased = ErasedFiles::default();
        for (i, prefix) in prefixes.iter().enumerate() {
            let mut found = Vec::new();
            let mut listing = self.objects.list(Some(prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(AttachmentError::Unavailable)?;
                // One record per attachment: what the receipt counts as a file.
                if i == 0 && meta.location.filename() == Some("meta.json") {
                    erased.attachments += 1;
                }
                found.push(meta.location);
            }
            erased.objects += self.delete_all(found).await?;
        }
        Ok(erased)
    }

    /// Deletes `paths` (one already gone counts as done); returns how many it deleted.
    async fn delete_all(
        &self,
        paths: Vec<object_store::path::Path>,
    ) -> Result<u64, AttachmentError> {
        let mut deleted = 0;
        let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.objects.delete_stream(stream);
        while let Some(done) = results.next().await {
            match done {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(AttachmentError::Unavailable(e)),
            }
        }
        Ok(deleted)
    }

    /// The tenant's retention: deletes every attachment (file, thumbnail, record) all of
    /// whose objects were last written before `before` (ms since the Unix epoch) — an
    /// attachment goes whole, never its file without its record. Idempotent.
    pub async fn erase_older_than(
        &self,
        t: &TenantId,
        before: u64,
    ) -> Result<ErasedFiles, AttachmentError> {
        use object_store::path::Path;
        use std::collections::BTreeMap;
        let tenant = Path::from_iter([format!("t-{}", t.as_str())]);
        // Objects by attachment (`t-…/c-…/<attachment>/`), with the newest write of each.
        let mut attachments: BTreeMap<String, (i64, Vec<Path>)> = BTreeMap::new();
        let mut listing = self.objects.list(Some(&tenant));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(AttachmentError::Unavailable)?;
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(dir) = parts.get(..parts.len().saturating_sub(1)) else {
                continue;
            };
            let key = dir.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join("/");
            let group = attachments.entry(key).or_insert((i64::MIN, Vec::new()));
            group.0 = group.0.max(meta.last_modified.timestamp_millis());
            group.1.push(meta.location);
        }
        let mut erased = ErasedFiles::default();
        for (newest, objects) in attachments.into_values() {
            if newest >= before as i64 {
                continue;
            }
            if objects.iter().any(|o| o.filename() == Some("meta.json")) {
                erased.attachments += 1;
            }
            erased.objects += self.delete_all(objects).await?;
        }
        Ok(erased)
    }

    /// Removes staged uploads untouched for longer than the staging TTL; returns how
    /// many went.
    pub async fn sweep_staging(&self) -> usize {
        let Ok(mut dir) = tokio::fs::read_dir(&self.config.staging_dir).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = dir.next_entry().await {
            let old = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > self.config.staging_ttl);
            let name = entry.file_name();
            let busy = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|id| AttachmentId::new(id).ok())
                .is_some_and(|id| self.writing.lock().is_ok_and(|set| set.contains(&id)));
            if old && !busy && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}
