//! Every bad upload gets a clear code and leaves nothing visible: oversize, wrong or
//! disguised types, truncated uploads, expired URLs, bad ranges, names with paths,
//! tenant policies; and twenty large uploads at once keep the node's memory bounded.

use chathub_client::Client;
use chathub_domain::Role;
use chathub_e2e::{
    HubProcess, ask_upload, dev_token, header_of, http_bytes, http_request, path_of,
    send_attachment,
};
use chathub_protocol::{ErrorCode, Op};
use chathub_testkit::fixtures::{pdf, photo_with_location};
use std::sync::Arc;
use std::time::Duration;

async fn connect(hub: &HubProcess, role: Role, who: &str) -> Client {
    Client::connect(&hub.ws_url, &dev_token("acme", role, who))
        .await
        .unwrap()
}

async fn upload_error(
    client: &Client,
    name: &str,
    size: u64,
    content_type: Option<&str>,
) -> ErrorCode {
    client
        .request(Op::AttachmentUpload {
            conversation: None,
            name: name.into(),
            size,
            content_type: content_type.map(Into::into),
            client_msg_id: None,
        })
        .await
        .unwrap_err()
        .server()
        .unwrap()
        .code
}

fn code_of(answer: &chathub_e2e::HttpAnswer) -> String {
    let body: serde_json::Value = serde_json::from_slice(&answer.2).unwrap_or_default();
    body["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn bad_uploads_get_clear_codes_and_leave_nothing_visible() {
    let hub = HubProcess::spawn(&[]);
    let http = hub.http_addr;
    let ann = connect(&hub, Role::EndUser, "ann").await;
    // Refused before a byte is sent.
    assert_eq!(
        upload_error(&ann, "big.pdf", 25 * 1024 * 1024 + 1, None).await,
        ErrorCode::TooLarge
    );
    assert_eq!(
        upload_error(&ann, "tool.exe", 10, None).await,
        ErrorCode::UnsupportedType
    );
    assert_eq!(
        upload_error(&ann, "page.html", 10, None).await,
        ErrorCode::UnsupportedType
    );
    assert_eq!(
        upload_error(&ann, "photo.jpg", 10, Some("application/pdf")).await,
        ErrorCode::UnsupportedType
    );
    assert_eq!(
        upload_error(&ann, "../../etc/x.pdf", 10, None).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        upload_error(&ann, "empty.pdf", 0, None).await,
        ErrorCode::BadRequest
    );

    // A PDF disguised as a photo: refused when the bytes are in, nothing to send.
    let bytes = pdf(2000);
    let up = ask_upload(&ann, None, "selfie.jpg", bytes.len(), "d1").await;
    let url = path_of(&up.upload_url.unwrap());
    let answer = http_bytes(http, "PUT", &url, &[], &bytes).await;
    assert_eq!(answer.0, 415);
    assert_eq!(code_of(&answer), "unsupported_type");
    let err = send_attachment(&ann, None, &up.attachment, None, "d1")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    assert_eq!(
        ask_upload(&ann, None, "selfie.jpg", bytes.len(), "d1")
            .await
            .received,
        0
    );

    // A truncated upload is not sendable; its offset says where to go on.
    let up = ask_upload(&ann, None, "scan.pdf", bytes.len(), "t1").await;
    let url = path_of(&up.upload_url.unwrap());
    let answer = http_bytes(http, "PUT", &url, &[], &bytes[..500]).await;
    assert_eq!(answer.0, 202, "{}", String::from_utf8_lossy(&answer.2));
    assert_eq!(header_of(&answer, "upload-offset"), Some("500"));
    let err = send_attachment(&ann, None, &up.attachment, None, "t1")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    // A range past what is staged: conflict, with the offset.
    let range = format!("bytes 1000-1999/{}", bytes.len());
    let answer = http_bytes(
        http,
        "PUT",
        &url,
        &[("Content-Range", &range)],
        &bytes[1000..],
    )
    .await;
    assert_eq!(answer.0, 409);
    assert_eq!(header_of(&answer, "upload-offset"), Some("500"));
    // A range of another size, a range outside the file.
    let answer = http_bytes(
        http,
        "PUT",
        &url,
        &[("Content-Range", "bytes 500-999/3000")],
        &bytes[500..1000],
    )
    .await;
    assert_eq!(answer.0, 400);
    // More bytes than declared.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"and more");
    let answer = http_bytes(http, "PUT", &url, &[], &longer).await;
    assert_eq!(answer.0, 413);
    assert_eq!(code_of(&answer), "too_large");
    // A damaged ticket.
    let answer = http_bytes(http, "PUT", &format!("{url}x"), &[], &bytes).await;
    assert_eq!(answer.0, 403);

    // A message naming another conversation's attachment.
    let carl = connect(&hub, Role::EndUser, "carl").await;
    let up = ask_upload(&carl, None, "carl.pdf", bytes.len(), "c1").await;
    let answer = http_bytes(http, "PUT", &path_of(&up.upload_url.unwrap()), &[], &bytes).await;
    assert_eq!(answer.0, 201);
    let err = send_attachment(&ann, None, &up.attachment, None, "x1")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    let bob = connect(&hub, Role::Agent, "bob").await;
    let err = send_attachment(&bob, Some("ann"), &up.attachment, Some(0), "x2")
        .await
        .unwrap_err();
    assert_eq!(err.server().unwrap().code, ErrorCode::NotFound);
    // Nothing of the refused uploads is in any history.
    let history = chathub_e2e::full_history(&ann, "ann").await;
    assert!(history.is_empty(), "{history:?}");
}

#[tokio::test]
async fn the_tenant_policy_decides_size_and_types() {
    let hub = HubProcess::spawn(&[]);
    let admin = dev_token("acme", Role::Admin, "root");
    let put = |body: &'static str| {
        let admin = admin.clone();
        async move { http_request(hub.http_addr, "PUT", "/admin/v1/settings", &admin, body).await }
    };
    let (status, body) = put(r#"{"attachments": {"max_bytes": 0}}"#).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(r#"{"attachments": {"allowed_types": ["application/x-sh"]}}"#).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(r#"{"attachments": {"max_bytes": 524288000}}"#).await;
    assert_eq!(status, 200, "500 MiB is allowed: {body}");
    let (status, body) = put(
        r#"{"attachments": {"max_bytes": 5000, "allowed_types": ["application/pdf"], "strip_location": false}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let settings: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["attachments"]["max_bytes"], 5000);
    assert_eq!(settings["chat_disabled"], false);

    let ann = connect(&hub, Role::EndUser, "ann").await;
    assert_eq!(
        upload_error(&ann, "a.pdf", 5001, None).await,
        ErrorCode::TooLarge
    );
    assert_eq!(
        upload_error(&ann, "a.jpg", 100, None).await,
        ErrorCode::UnsupportedType
    );
    let up = ask_upload(&ann, None, "a.pdf", 4000, "p1").await;
    assert!(up.upload_url.is_some());

    // Without stripping, the end user's photo keeps its metadata.
    let (status, _) = put(r#"{"attachments": {"strip_location": false}}"#).await;
    assert_eq!(status, 200);
    let photo = photo_with_location();
    let card = chathub_e2e::upload_file(&ann, hub.http_addr, None, "p.jpg", &photo, "p2").await;
    assert_eq!(card.size as usize, photo.len());
}

#[tokio::test]
async fn an_expired_upload_url_is_refused() {
    let hub = HubProcess::spawn(&["--upload-url-ttl-secs", "1"]);
    let ann = connect(&hub, Role::EndUser, "ann").await;
    let bytes = pdf(1000);
    let up = ask_upload(&ann, None, "late.pdf", bytes.len(), "e1").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = http_bytes(
        hub.http_addr,
        "PUT",
        &path_of(&up.upload_url.unwrap()),
        &[],
        &bytes,
    )
    .await;
    assert_eq!(answer.0, 410);
    assert_eq!(code_of(&answer), "expired");
    // Asking again gives a fresh URL for the same attachment.
    let again = ask_upload(&ann, None, "late.pdf", bytes.len(), "e1").await;
    assert_eq!(again.attachment, up.attachment);
    let answer = http_bytes(
        hub.http_addr,
        "PUT",
        &path_of(&again.upload_url.unwrap()),
        &[],
        &bytes,
    )
    .await;
    assert_eq!(answer.0, 201);
}

#[tokio::test]
async fn without_a_store_uploads_are_unavailable() {
    let hub = HubProcess::spawn(&["--attachments", "off"]);
    let ann = connect(&hub, Role::EndUser, "ann").await;
    assert_eq!(
        upload_error(&ann, "a.pdf", 10, None).await,
        ErrorCode::Unavailable
    );
}

#[tokio::test]
async fn twenty_large_uploads_at_once_keep_memory_bounded() {
    let hub = Arc::new(HubProcess::spawn(&[]));
    let ann = Arc::new(connect(&hub, Role::EndUser, "ann").await);
    // Warm up every code path once.
    let small = pdf(100_000);
    chathub_e2e::upload_file(&ann, hub.http_addr, None, "warm.pdf", &small, "w").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = hub.rss_kib();
    let big = Arc::new(pdf(25_000_000));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (hub, peak, done) = (hub.clone(), peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(hub.rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let (hub, ann, big) = (hub.clone(), ann.clone(), big.clone());
            tokio::spawn(async move {
                chathub_e2e::upload_file(
                    &ann,
                    hub.http_addr,
                    None,
                    &format!("big-{i}.pdf"),
                    &big,
                    &format!("big-{i}"),
                )
                .await
            })
        })
        .collect();
    for u in uploads {
        let card = u.await.unwrap();
        assert_eq!(card.size, 25_000_000);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    assert!(
        grew < 32 * 1024,
        "RSS grew by {grew} KiB during 20 × 25 MB uploads (from {before} KiB)"
    );
}
