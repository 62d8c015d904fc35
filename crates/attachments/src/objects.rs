//! Where attachments live: one [`ObjectStore`] trait over a local directory (the
//! embedded default), memory (`--ephemeral`) or any S3-compatible store, and the paths
//! of an attachment's objects in it.

use crate::AttachmentError;
use chathub_domain::{AttachmentId, ConversationId, TenantId};
use object_store::ObjectStore;
use object_store::path::Path;
use std::sync::Arc;

/// Which object store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum ObjectsSpec {
    /// A directory (created when missing); on the embedded default,
    /// `<data-dir>/attachments`.
    Directory(std::path::PathBuf),
    /// Memory: everything is lost when the process ends (`--ephemeral`).
    Memory,
    /// An S3-compatible store.
    S3(S3Spec),
}

/// An S3 bucket and how to reach it. Credentials left out are read from the usual
/// `AWS_*` environment variables.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Spec {
    /// The bucket.
    pub bucket: String,
    /// Endpoint for S3-compatible stores (`http://127.0.0.1:9000`); `None`: AWS.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for ObjectsSpec {
    // Never print credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectsSpec::Directory(d) => write!(f, "Directory({})", d.display()),
            ObjectsSpec::Memory => f.write_str("Memory"),
            ObjectsSpec::S3(s) => write!(f, "S3(s3://{}, endpoint {:?})", s.bucket, s.endpoint),
        }
    }
}

impl ObjectsSpec {
    /// Parses `--attachments`: `s3://bucket`, `memory`, or a directory path.
    pub fn parse(spec: &str) -> ObjectsSpec {
        if let Some(bucket) = spec.strip_prefix("s3://") {
            ObjectsSpec::S3(S3Spec {
                bucket: bucket.trim_end_matches('/').to_owned(),
                ..S3Spec::default()
            })
        } else if spec == "memory" {
            ObjectsSpec::Memory
        } else {
            ObjectsSpec::Directory(spec.into())
        }
    }

    /// Opens the store.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, AttachmentError> {
        match self {
            ObjectsSpec::Directory(dir) => {
                std::fs::create_dir_all(dir).map_err(AttachmentError::Staging)?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(AttachmentError::Unavailable)?
                    // Parent directories of deleted objects go too (erasure leaves no
                    // empty directory per conversation).
                    .with_automatic_cleanup(true);
                Ok(Arc::new(store))
            }
            ObjectsSpec::Memory => Ok(Arc::new(object_store::memory::InMemory::new())),
            ObjectsSpec::S3(s3) => Ok(Arc::new(s3.open()?)),
        }
    }
}

impl S3Spec {
    /// Opens the bucket.
    pub fn open(&self) -> Result<object_store::aws::AmazonS3, AttachmentError> {
        // object_store's HTTP client is rustls without a bundled provider: use ring, as
        // the WebSocket port's TLS does (a second install is a no-op).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                // S3-compatible servers mostly want path-style URLs.
                .with_virtual_hosted_style_request(false);
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        builder.build().map_err(AttachmentError::Unavailable)
    }
}

/// The objects of one attachment.
pub(crate) struct Paths {
    pub(crate) file: Path,
    pub(crate) thumbnail: Path,
    pub(crate) record: Path,
    /// The mark of a scan still owed (under `scans/`, one prefix to list).
    pub(crate) scan: Path,
    /// A direct upload's object until it is checked (under `uploads/`).
    pub(crate) direct_file: Path,
    /// A direct upload's multipart id.
    pub(crate) direct_state: Path,
}

/// The prefix of every scan mark.
pub(crate) const SCANS: &str = "scans";
/// The prefix of direct uploads not yet checked.
pub(crate) const UPLOADS: &str = "uploads";

impl Paths {
    /// `t-<tenant>/c-<conversation>/<attachment>/…`: one prefix per tenant and per
    /// conversation, so retention and erasure remove a prefix. The prefixes keep an id
    /// like `..` from ever being a path segment of its own.
    pub(crate) fn of(t: &TenantId, c: &ConversationId, a: &AttachmentId) -> Paths {
        let base = [
            format!("t-{}", t.as_str()),
            format!("c-{}", c.as_str()),
            format!("a-{}", a.as_str()),
        ];
        let at = |leaf: &str| Path::from_iter(base.iter().map(String::as_str).chain([leaf]));
        let under = |top: &str, leaf: &str| {
            Path::from_iter(
                std::iter::once(top)
                    .chain(base.iter().map(String::as_str))
                    .chain([leaf]),
            )
        };
        Paths {
            file: at("file"),
            thumbnail: at("thumbnail.jpg"),
            record: at("meta.json"),
            scan: Path::from_iter(std::iter::once(SCANS).chain(base.iter().map(String::as_str))),
            direct_file: under(UPLOADS, "file"),
            direct_state: under(UPLOADS, "state.json"),
        }
    }
}

/// The attachment a scan mark names (`scans/t-…/c-…/a-…`), if it is one.
pub(crate) fn scan_target(path: &Path) -> Option<(TenantId, ConversationId, AttachmentId)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [scans, t, c, a] if scans.as_ref() == SCANS => Some((
            TenantId::new(t.as_ref().strip_prefix("t-")?).ok()?,
            ConversationId::new(c.as_ref().strip_prefix("c-")?).ok()?,
            AttachmentId::new(a.as_ref().strip_prefix("a-")?).ok()?,
        )),
        _ => None,
    }
}
