//! Which files a tenant accepts: the attachment policy and the table of file types,
//! with the names each type may carry. Pure: the bytes are sniffed elsewhere (the
//! attachments crate); here a sniffed type, a declared type and a file name are judged.

use serde::{Deserialize, Serialize};

/// Largest attachment a tenant may allow, in bytes (500 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 500 * 1024 * 1024;
/// An attachment's size limit unless the tenant sets one, in bytes (25 MiB).
pub const DEFAULT_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;
/// Longest file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A file type chathub knows: its MIME type and the file name extensions it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// The MIME type, as sniffed.
    pub mime: &'static str,
    /// Extensions (lower case, no dot) a file of this type may be named with.
    pub extensions: &'static [&'static str],
    /// Whether it is an image chathub reads (dimensions, thumbnail, metadata stripping).
    pub image: bool,
    /// Whether files of this type may carry a location chathub cannot remove (HEIF
    /// photos, phone videos): refused from end users while the tenant strips locations.
    pub keeps_location: bool,
}

/// Every type an allow-list may name. Types outside it are refused whatever the
/// tenant's list says: chathub only stores what it can recognise from the bytes.
pub const FILE_TYPES: &[FileType] = &[
    FileType {
        mime: "image/jpeg",
        extensions: &["jpg", "jpeg", "jpe", "jfif"],
        image: true,
        keeps_location: false,
    },
    FileType {
        mime: "image/png",
        extensions: &["png"],
        image: true,
        keeps_location: false,
    },
    FileType {
        mime: "image/gif",
        extensions: &["gif"],
        image: true,
        keeps_location: false,
    },
    FileType {
        mime: "image/webp",
        extensions: &["webp"],
        image: true,
        keeps_location: false,
    },
    FileType {
        mime: "image/heif",
        extensions: &["heic", "heif"],
        image: false,
        keeps_location: true,
    },
    FileType {
        mime: "application/pdf",
        extensions: &["pdf"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "text/plain",
        extensions: &["txt", "log", "csv"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "video/mp4",
        extensions: &["mp4", "m4v"],
        image: false,
        keeps_location: true,
    },
    FileType {
        mime: "video/quicktime",
        extensions: &["mov"],
        image: false,
        keeps_location: true,
    },
    FileType {
        mime: "audio/mpeg",
        extensions: &["mp3"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "audio/m4a",
        extensions: &["m4a"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "audio/ogg",
        extensions: &["ogg", "oga", "opus"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        extensions: &["docx"],
        image: false,
        keeps_location: false,
    },
    FileType {
        mime: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        extensions: &["xlsx"],
        image: false,
        keeps_location: false,
    },
];

/// The known type `mime`, if any (`image/heic` is known as `image/heif`).
pub fn file_type(mime: &str) -> Option<&'static FileType> {
    let mime = match mime {
        "image/heic" => "image/heif",
        "image/jpg" => "image/jpeg",
        "audio/mp4" | "audio/x-m4a" => "audio/m4a",
        other => other,
    };
    FILE_TYPES
        .iter()
        .find(|t| t.mime.eq_ignore_ascii_case(mime))
}

/// A tenant's rules for attachments (admin API settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentPolicy {
    /// Largest file, in bytes (default 25 MiB, at most [`MAX_ATTACHMENT_BYTES`]).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 524_288_000_u64))]
    pub max_bytes: u64,
    /// MIME types accepted (default: every type of [`FILE_TYPES`]).
    #[cfg_attr(feature = "openapi", schema(schema_with = allowed_types_schema))]
    pub allowed_types: Vec<String>,
    /// Remove location and camera metadata (EXIF, XMP) from end users' photos before
    /// anyone sees them (default true). The orientation is kept.
    pub strip_location: bool,
}

/// `allowed_types`' schema: a list of [`FILE_TYPES`]' MIME types.
#[cfg(feature = "openapi")]
fn allowed_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let mime = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(FILE_TYPES.iter().map(|t| t.mime)));
    ArrayBuilder::new().items(mime).build()
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        AttachmentPolicy {
            max_bytes: DEFAULT_ATTACHMENT_BYTES,
            allowed_types: FILE_TYPES.iter().map(|t| t.mime.to_owned()).collect(),
            strip_location: true,
        }
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileRefusal {
    /// Larger than the tenant allows.
    #[error("the file is {size} bytes; the limit is {max}")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A type chathub does not know or the tenant does not accept.
    #[error("files of type {0} are not accepted")]
    TypeNotAllowed(String),
    /// The name's extension does not belong to the type found in the bytes.
    #[error("the file is {found} but its name ends in .{extension}")]
    ExtensionMismatch {
        /// The type found.
        found: String,
        /// The name's extension.
        extension: String,
    },
    /// The declared content type differs from the one found in the bytes.
    #[error("the file is {found} but was declared as {declared}")]
    TypeMismatch {
        /// The type found.
        found: String,
        /// The type declared.
        declared: String,
    },
    /// An end user's file of a type whose location metadata chathub cannot remove, while
    /// the tenant strips locations.
    #[error(
        "{0} files may carry a location that cannot be removed: send a JPEG or PNG photo instead"
    )]
    KeepsLocation(String),
    /// The name is empty, too long, or holds a path or control character.
    #[error("invalid file name: {0}")]
    BadName(&'static str),
}

impl AttachmentPolicy {
    /// Checks the policy itself (admin input).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes == 0 || self.max_bytes > MAX_ATTACHMENT_BYTES {
            return Err(format!("`max_bytes` must be 1 to {MAX_ATTACHMENT_BYTES}"));
        }
        // The policy names types exactly as the table does (uploads' declared types may
        // use aliases such as `image/jpg`; a setting is written once and read by people).
        for t in &self.allowed_types {
            if !FILE_TYPES.iter().any(|known| known.mime == t) {
                return Err(match file_type(t) {
                    Some(known) => format!("write {:?} as {:?} in `allowed_types`", t, known.mime),
                    None => format!("unknown type {t:?} in `allowed_types`"),
                });
            }
        }
        Ok(())
    }

    /// Whether the tenant accepts type `mime`.
    pub fn allows(&self, mime: &str) -> Option<&'static FileType> {
        let known = file_type(mime)?;
        self.allowed_types
            .iter()
            .any(|t| file_type(t).is_some_and(|t| t.mime == known.mime))
            .then_some(known)
    }

    /// What an upload request declares, checked before any byte is sent: the name, the
    /// size and, when given, the declared type against the name.
    pub fn check_request(
        &self,
        name: &str,
        size: u64,
        declared: Option<&str>,
    ) -> Result<(), FileRefusal> {
        check_name(name)?;
        if size > self.max_bytes {
            return Err(FileRefusal::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let extension = extension(name);
        let by_name = FILE_TYPES
            .iter()
            .find(|t| t.extensions.contains(&extension.as_str()));
        let Some(by_name) = by_name else {
            return Err(FileRefusal::TypeNotAllowed(format!(".{extension}")));
        };
        if self.allows(by_name.mime).is_none() {
            return Err(FileRefusal::TypeNotAllowed(by_name.mime.to_owned()));
        }
        if let Some(declared) = declared.filter(|d| !is_generic(d)) {
            self.check_found(name, by_name.mime, Some(declared))?;
        }
        Ok(())
    }

    /// [`AttachmentPolicy::check_request`], and the location rule for the type the name
    /// says ([`AttachmentPolicy::check_location`]), for an upload by an end user or not.
    pub fn check_upload(
        &self,
        name: &str,
        size: u64,
        declared: Option<&str>,
        end_user: bool,
    ) -> Result<(), FileRefusal> {
        self.check_request(name, size, declared)?;
        let extension = extension(name);
        match FILE_TYPES
            .iter()
            .find(|t| t.extensions.contains(&extension.as_str()))
        {
            Some(kind) => self.check_location(kind, end_user),
            None => Ok(()),
        }
    }

    /// Whether an end user's file of `kind` must be refused for the location it may
    /// carry (the tenant strips locations, and chathub cannot for this type).
    pub fn check_location(&self, kind: &FileType, end_user: bool) -> Result<(), FileRefusal> {
        if end_user && self.strip_location && kind.keeps_location {
            return Err(FileRefusal::KeepsLocation(kind.mime.to_owned()));
        }
        Ok(())
    }

    /// What the bytes turned out to be (`found`, sniffed), against the tenant's list,
    /// the name and the declared type.
    pub fn check_found(
        &self,
        name: &str,
        found: &str,
        declared: Option<&str>,
    ) -> Result<&'static FileType, FileRefusal> {
        let Some(known) = self.allows(found) else {
            return Err(FileRefusal::TypeNotAllowed(found.to_owned()));
        };
        let extension = extension(name);
        if !known.extensions.contains(&extension.as_str()) {
            return Err(FileRefusal::ExtensionMismatch {
                found: known.mime.to_owned(),
                extension,
            });
        }
        if let Some(declared) = declared.filter(|d| !is_generic(d))
            && file_type(declared).is_none_or(|d| d.mime != known.mime)
        {
            return Err(FileRefusal::TypeMismatch {
                found: known.mime.to_owned(),
                declared: declared.to_owned(),
            });
        }
        Ok(known)
    }
}

/// A declared type that says nothing (browsers send these for unknown files).
fn is_generic(declared: &str) -> bool {
    declared.is_empty() || declared.eq_ignore_ascii_case("application/octet-stream")
}

/// The name's extension, lower case, without the dot (`""` when it has none).
pub fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// A file name is shown to people and used in `Content-Disposition`: no paths, no
/// control characters, not empty, at most [`MAX_FILE_NAME_BYTES`].
pub fn check_name(name: &str) -> Result<(), FileRefusal> {
    if name.trim().is_empty() {
        return Err(FileRefusal::BadName("empty"));
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(FileRefusal::BadName("longer than 255 bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\'))
    {
        return Err(FileRefusal::BadName("holds a path or control character"));
    }
    if name == "." || name == ".." {
        return Err(FileRefusal::BadName("not a file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_name_size_and_declared_type() {
        let p = AttachmentPolicy::default();
        assert_eq!(
            p.check_request("receipt.JPG", 10, Some("image/jpeg")),
            Ok(())
        );
        assert_eq!(p.check_request("scan.pdf", 10, None), Ok(()));
        assert!(matches!(
            p.check_request("big.pdf", DEFAULT_ATTACHMENT_BYTES + 1, None),
            Err(FileRefusal::TooLarge { .. })
        ));
        assert!(matches!(
            p.check_request("tool.exe", 10, None),
            Err(FileRefusal::TypeNotAllowed(_))
        ));
        assert!(matches!(
            p.check_request("page.html", 10, None),
            Err(FileRefusal::TypeNotAllowed(_))
        ));
        assert!(matches!(
            p.check_request("photo.jpg", 10, Some("application/pdf")),
            Err(FileRefusal::TypeMismatch { .. })
        ));
        assert!(matches!(
            p.check_request("../etc/passwd.txt", 10, None),
            Err(FileRefusal::BadName(_))
        ));
        assert!(matches!(
            p.check_request("noext", 10, None),
            Err(FileRefusal::TypeNotAllowed(_))
        ));
    }

    #[test]
    fn end_users_files_that_keep_a_location_are_refused_while_stripping() {
        let p = AttachmentPolicy::default();
        let heif = file_type("image/heic").unwrap();
        let jpeg = file_type("image/jpeg").unwrap();
        assert!(matches!(
            p.check_location(heif, true),
            Err(FileRefusal::KeepsLocation(_))
        ));
        assert!(p.check_location(jpeg, true).is_ok());
        assert!(
            p.check_location(heif, false).is_ok(),
            "agents' files are theirs to share"
        );
        let keep = AttachmentPolicy {
            strip_location: false,
            ..AttachmentPolicy::default()
        };
        assert!(keep.check_location(heif, true).is_ok());
    }

    #[test]
    fn the_bytes_decide_and_must_agree_with_the_name() {
        let p = AttachmentPolicy::default();
        assert!(p.check_found("a.jpeg", "image/jpeg", None).is_ok());
        assert!(
            p.check_found("a.heic", "image/heif", Some("image/heic"))
                .is_ok()
        );
        assert!(matches!(
            p.check_found("a.jpg", "application/pdf", None),
            Err(FileRefusal::ExtensionMismatch { .. })
        ));
        assert!(matches!(
            p.check_found("a.exe", "application/x-msdownload", None),
            Err(FileRefusal::TypeNotAllowed(_))
        ));
        let only_pdf = AttachmentPolicy {
            allowed_types: vec!["application/pdf".into()],
            ..AttachmentPolicy::default()
        };
        assert!(matches!(
            only_pdf.check_found("a.png", "image/png", None),
            Err(FileRefusal::TypeNotAllowed(_))
        ));
    }

    #[test]
    fn policies_are_validated() {
        assert!(AttachmentPolicy::default().validate().is_ok());
        let mut p = AttachmentPolicy {
            max_bytes: MAX_ATTACHMENT_BYTES + 1,
            ..AttachmentPolicy::default()
        };
        assert!(p.validate().is_err());
        p.max_bytes = MAX_ATTACHMENT_BYTES;
        assert!(p.validate().is_ok());
        p.allowed_types.push("application/x-sh".into());
        assert!(p.validate().is_err());
    }
}
