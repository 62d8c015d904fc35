//! The attachments service on a real directory: ranged uploads resume, the bytes decide
//! the type, photos lose their location, and nothing refused stays behind.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use chathub_attachments::ticket::UploadTicket;
use chathub_attachments::{AttachmentError, Attachments, AttachmentsConfig, ObjectsSpec, Variant};
use chathub_domain::attachment::AttachmentPolicy;
use chathub_domain::{AttachmentId, ConversationId, TenantId};
use chathub_testkit::fixtures::photo_with_location;
use futures::StreamExt;
use img_parts::ImageEXIF;

/// The bytes of `variant` of a stored attachment (or of `range` of them).
async fn read_all(
    a: &Attachments,
    stored: &chathub_attachments::Stored,
    variant: Variant,
    range: Option<std::ops::Range<u64>>,
) -> Bytes {
    a.read(stored, variant, range)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

fn service(dir: &std::path::Path) -> Attachments {
    let config = AttachmentsConfig::new(
        ObjectsSpec::Directory(dir.join("objects")),
        dir.join("staging"),
    );
    Attachments::open(config, "a-test-secret-of-at-least-32-bytes").unwrap()
}

fn ticket(a: &Attachments, name: &str, size: usize, end_user: bool) -> UploadTicket {
    let (t, c) = (
        TenantId::new("acme").unwrap(),
        ConversationId::new("ann").unwrap(),
    );
    UploadTicket {
        attachment: a.key().attachment_id(&t, &c, "end_user:ann", Some(name)),
        tenant: t,
        conversation: c,
        uploader: "end_user:ann".into(),
        end_user,
        name: name.into(),
        size: size as u64,
        content_type: None,
        exp: u64::MAX,
    }
}

fn body(bytes: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<_> = bytes
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

fn temp() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chathub-att-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn a_photo_loses_its_location_but_keeps_its_orientation() {
    let dir = temp();
    let a = service(&dir);
    let photo = photo_with_location();
    assert!(photo.windows(7).any(|w| w == b"48.8584"));
    let t = ticket(&a, "coupon.jpg", photo.len(), true);
    let progress = a
        .write(&t, &AttachmentPolicy::default(), 0, body(&photo))
        .await
        .unwrap();
    let stored = progress.stored.expect("stored");
    assert_eq!(stored.card.content_type, "image/jpeg");
    // Orientation 6 turns 64×48 into 48×64.
    assert_eq!(
        (stored.card.width, stored.card.height),
        (Some(48), Some(64))
    );
    assert!(stored.card.thumbnail);
    let file = read_all(&a, &stored, Variant::File, None).await;
    assert_eq!(file.len() as u64, stored.card.size);
    assert!(
        !file.windows(7).any(|w| w == b"48.8584"),
        "the description is gone"
    );
    let exif = img_parts::jpeg::Jpeg::from_bytes(file.clone())
        .unwrap()
        .exif()
        .unwrap();
    assert_eq!(exif.len(), 26, "only the orientation is left");
    assert!(
        !exif.windows(2).any(|w| w == 0x8825u16.to_le_bytes()),
        "no GPS IFD"
    );
    let thumb = read_all(&a, &stored, Variant::Thumbnail, None).await;
    assert_eq!(&thumb[..2], &[0xFF, 0xD8]);

    // An agent's photo (or a tenant that keeps metadata) is stored as sent.
    let t = ticket(&a, "agent.jpg", photo.len(), false);
    let stored = a
        .write(&t, &AttachmentPolicy::default(), 0, body(&photo))
        .await
        .unwrap()
        .stored
        .unwrap();
    let file = read_all(&a, &stored, Variant::File, None).await;
    assert_eq!(&file[..], &photo[..]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_upload_resumes_from_the_bytes_staged_and_is_stored_once() {
    let dir = temp();
    let a = service(&dir);
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..300_000u32).map(|i| (i % 251) as u8));
    let t = ticket(&a, "receipt.pdf", pdf.len(), true);
    let policy = AttachmentPolicy::default();
    // The connection breaks after 100 kB.
    let broken =
        body(&pdf[..100_000]).chain(futures::stream::iter([Err(std::io::Error::other("reset"))]));
    let err = a.write(&t, &policy, 0, broken).await.unwrap_err();
    assert!(matches!(
        err,
        AttachmentError::Interrupted { received: 100_000 }
    ));
    assert_eq!(a.progress(&t).await.unwrap().received, 100_000);
    // A range past what is staged is refused with the offset to resume from.
    let err = a
        .write(&t, &policy, 150_000, body(&pdf[150_000..]))
        .await
        .unwrap_err();
    assert!(matches!(err, AttachmentError::Offset { received: 100_000 }));
    // Resuming a little before the end of what is staged is fine (a redone range).
    let done = a
        .write(&t, &policy, 90_000, body(&pdf[90_000..]))
        .await
        .unwrap();
    let stored = done.stored.unwrap();
    assert_eq!(stored.card.size, pdf.len() as u64);
    let file = read_all(&a, &stored, Variant::File, None).await;
    assert_eq!(&file[..], &pdf[..]);
    let part = read_all(&a, &stored, Variant::File, Some(10..20)).await;
    assert_eq!(&part[..], &pdf[10..20]);
    // Retried after it was stored: the same record, nothing written again.
    let again = a.write(&t, &policy, 0, body(&pdf)).await.unwrap();
    assert_eq!(again.stored.unwrap(), stored);
    assert_eq!(std::fs::read_dir(dir.join("staging")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn refused_files_leave_nothing_behind() {
    let dir = temp();
    let a = service(&dir);
    let policy = AttachmentPolicy::default();
    // PDF bytes named .jpg.
    let pdf = b"%PDF-1.7\nhello".to_vec();
    let t = ticket(&a, "photo.jpg", pdf.len(), true);
    let err = a.write(&t, &policy, 0, body(&pdf)).await.unwrap_err();
    assert_eq!(err.code(), "unsupported_type", "{err}");
    // An executable named .pdf.
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    let t = ticket(&a, "invoice.pdf", exe.len(), true);
    assert_eq!(
        a.write(&t, &policy, 0, body(&exe))
            .await
            .unwrap_err()
            .code(),
        "unsupported_type"
    );
    // More bytes than declared.
    let t = ticket(&a, "notes.txt", 10, true);
    let err = a
        .write(&t, &policy, 0, body(b"far more than ten bytes"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "too_large");
    // A type the tenant does not accept.
    let only_pdf = AttachmentPolicy {
        allowed_types: vec!["application/pdf".into()],
        ..AttachmentPolicy::default()
    };
    let t = ticket(&a, "notes.txt", 5, true);
    assert_eq!(
        a.write(&t, &only_pdf, 0, body(b"hello"))
            .await
            .unwrap_err()
            .code(),
        "unsupported_type"
    );
    assert_eq!(
        std::fs::read_dir(dir.join("staging")).unwrap().count(),
        0,
        "no staged bytes"
    );
    let objects = dir.join("objects");
    let stored_files = walk(&objects);
    assert!(stored_files.is_empty(), "nothing stored: {stored_files:?}");
    let (t, c) = (
        TenantId::new("acme").unwrap(),
        ConversationId::new("ann").unwrap(),
    );
    assert!(
        a.stored(&t, &c, &AttachmentId::new("nope").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}
