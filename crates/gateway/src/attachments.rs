//! The HTTP side of attachments: the upload URL (`PUT`, resumable by `Content-Range`;
//! `HEAD`/`GET` say how much is staged) and the download links (`GET`, with `Range`).
//! Every URL carries a signed, short-lived ticket naming one attachment
//! (`chathub_attachments::ticket`); nothing else is accepted, and neither bytes nor
//! tickets are logged.

use crate::admin::status_of;
use crate::ops::Failure;
use crate::ops::attachments::failed;
use crate::{Backend, Node};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chathub_attachments::{AttachmentError, Attachments, Progress, Variant};
use chathub_protocol::ErrorCode;
use std::sync::Arc;

/// The attachment routes, to merge into the HTTP side.
pub(crate) fn routes<K: Backend>() -> Router<Arc<Node<K>>> {
    Router::new()
        .route(
            "/attachments/v1/uploads/{id}",
            get(upload_progress::<K>)
                .head(upload_progress::<K>)
                .put(upload::<K>)
                .options(preflight),
        )
        .route(
            "/attachments/v1/uploads/{id}/complete",
            axum::routing::post(complete::<K>).options(preflight),
        )
        .route("/attachments/v1/files/{id}", get(download_file::<K>))
        .route(
            "/attachments/v1/files/{id}/thumbnail",
            get(download_thumbnail::<K>),
        )
}

/// Removes abandoned staged uploads every few minutes.
pub(crate) async fn sweep_staging<K: Backend>(node: Arc<Node<K>>) {
    let Some(attachments) = node.attachments.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(300)) => {}
        }
        let removed = attachments.sweep_staging().await;
        if removed > 0 {
            tracing::info!(removed, "abandoned uploads removed");
        }
    }
}

/// `?t=<ticket>`.
#[derive(serde::Deserialize)]
pub(crate) struct Ticket {
    t: String,
    /// `download=1`: `Content-Disposition: attachment` even for images.
    #[serde(default)]
    download: Option<String>,
}

/// An error answer: `{"code", "message"}` (and `received` for the resume offset).
struct HttpError {
    code: ErrorCode,
    message: String,
    received: Option<u64>,
}

fn http_error(failure: Failure, received: Option<u64>) -> HttpError {
    let (code, message) = match failure {
        Failure::Reply(e) => (e.code, e.message),
        Failure::Gone => (ErrorCode::Internal, "internal error".to_owned()),
    };
    HttpError {
        code,
        message,
        received,
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError {
            code,
            message,
            received,
        } = self;
        let status = match code {
            ErrorCode::Expired => StatusCode::GONE,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            code => status_of(code),
        };
        let mut body = serde_json::json!({"code": code.as_str(), "message": message});
        if let Some(received) = received {
            body["received"] = received.into();
        }
        let mut response = (status, axum::Json(body)).into_response();
        cors(response.headers_mut());
        if let Some(received) = received {
            response
                .headers_mut()
                .insert("upload-offset", HeaderValue::from(received));
        }
        response
    }
}

impl From<AttachmentError> for HttpError {
    fn from(e: AttachmentError) -> Self {
        let received = match &e {
            AttachmentError::Offset { received } | AttachmentError::Interrupted { received } => {
                Some(*received)
            }
            _ => None,
        };
        http_error(failed(e), received)
    }
}

fn service<K: Backend>(node: &Node<K>) -> Result<&Arc<Attachments>, HttpError> {
    node.attachments.as_ref().ok_or_else(|| {
        http_error(
            Failure::new(ErrorCode::Unavailable, "attachments are not configured"),
            None,
        )
    })
}

/// Links are handed to pages and apps on any origin; the ticket is the authority.
fn cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("upload-offset, upload-length, content-range, content-length"),
    );
}

async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    cors(h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, PUT, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, content-range"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

fn progress_json(id: &str, p: &Progress) -> serde_json::Value {
    let mut body = serde_json::json!({"attachment": id, "received": p.received, "size": p.size});
    if let Some(stored) = &p.stored {
        body["stored"] = serde_json::to_value(&stored.card).unwrap_or_default();
    }
    body
}

fn progress_response(id: &str, p: &Progress, status: StatusCode) -> Response {
    let mut response = (status, axum::Json(progress_json(id, p))).into_response();
    let h = response.headers_mut();
    cors(h);
    h.insert("upload-offset", HeaderValue::from(p.received));
    h.insert("upload-length", HeaderValue::from(p.size));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `HEAD`/`GET` on the upload URL: how many bytes are staged (`Upload-Offset`).
async fn upload_progress<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
) -> Result<Response, HttpError> {
    let attachments = service(&node)?;
    let ticket = attachments.key().check_upload(&q.t, &id)?;
    let progress = attachments.progress(&ticket).await?;
    Ok(progress_response(&id, &progress, StatusCode::OK))
}

/// `Content-Range: bytes <start>-<end>/<total>`: the start, checked against the size.
fn range_start(headers: &HeaderMap, size: u64) -> Result<u64, HttpError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(0);
    };
    let bad = |m: &str| http_error(Failure::bad_request(m.to_owned()), None);
    let value = value
        .to_str()
        .map_err(|_| bad("unreadable Content-Range"))?;
    let spec = value
        .strip_prefix("bytes ")
        .ok_or_else(|| bad("Content-Range must be `bytes <start>-<end>/<size>`"))?;
    let (range, total) = spec
        .split_once('/')
        .ok_or_else(|| bad("Content-Range must be `bytes <start>-<end>/<size>`"))?;
    if total.trim() != size.to_string() {
        return Err(bad("Content-Range's size differs from the declared size"));
    }
    let (start, end) = range
        .split_once('-')
        .ok_or_else(|| bad("Content-Range must be `bytes <start>-<end>/<size>`"))?;
    let start: u64 = start.trim().parse().map_err(|_| bad("bad range start"))?;
    let end: u64 = end.trim().parse().map_err(|_| bad("bad range end"))?;
    if start > end || end >= size {
        return Err(bad("the range is outside the file"));
    }
    Ok(start)
}

/// `PUT` on the upload URL: the whole file, or a range of it.
async fn upload<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let attachments = service(&node)?;
    let ticket = attachments.key().check_upload(&q.t, &id)?;
    let start = range_start(&headers, ticket.size)?;
    let settings = node
        .settings(&ticket.tenant)
        .await
        .map_err(|e| http_error(crate::ops::store_failed(e), None))?;
    let progress = attachments
        .write(
            &ticket,
            &settings.attachments,
            start,
            body.into_data_stream(),
        )
        .await?;
    Ok(stored_or_more(&node, &id, &progress))
}

/// A direct upload's completion: `{"parts": [{"number": 1, "etag": "…"}, …]}`, every
/// part from 1 in order.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Completion {
    parts: Vec<CompletedPart>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    number: u32,
    etag: String,
}

/// `POST` on a direct upload's `complete_url`.
async fn complete<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
    body: Result<axum::Json<Completion>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, HttpError> {
    let attachments = service(&node)?;
    let ticket = attachments.key().check_upload(&q.t, &id)?;
    let bad = |m: String| http_error(Failure::bad_request(m), None);
    let axum::Json(completion) = body.map_err(|e| bad(e.body_text()))?;
    let mut etags = Vec::with_capacity(completion.parts.len());
    for (i, part) in completion.parts.into_iter().enumerate() {
        if part.number as usize != i + 1 {
            return Err(bad("`parts` must list every part from 1, in order".into()));
        }
        etags.push(part.etag);
    }
    if etags.is_empty() {
        return Err(bad("`parts` is empty".into()));
    }
    let settings = node
        .settings(&ticket.tenant)
        .await
        .map_err(|e| http_error(crate::ops::store_failed(e), None))?;
    let progress = attachments
        .complete_direct(&ticket, &settings.attachments, etags)
        .await?;
    Ok(stored_or_more(&node, &id, &progress))
}

/// The answer to an upload request: 201 with the record once stored (and its scan
/// queued), 202 while bytes are missing.
fn stored_or_more<K: Backend>(node: &Node<K>, id: &str, progress: &Progress) -> Response {
    let status = if let Some(stored) = &progress.stored {
        ::metrics::counter!(crate::metrics::ATTACHMENTS_STORED).increment(1);
        if stored.card.status == chathub_domain::AttachmentStatus::Pending
            && let Some(scanner) = &node.scanner
        {
            scanner.enqueue((
                stored.tenant.clone(),
                stored.conversation.clone(),
                stored.card.id.clone(),
            ));
        }
        StatusCode::CREATED
    } else {
        // Not all there yet: send the rest from `Upload-Offset`.
        StatusCode::ACCEPTED
    };
    progress_response(id, progress, status)
}

async fn download_file<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    download(node, id, q, headers, Variant::File).await
}

async fn download_thumbnail<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    Path(id): Path<String>,
    Query(q): Query<Ticket>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    download(node, id, q, headers, Variant::Thumbnail).await
}

/// What a `Range` header asks of a file of `size` bytes: `None` for all of it (no
/// header, or several ranges, which are answered whole), `Err` when unsatisfiable.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => s..(e + 1).min(size),
        (Ok(s), Err(_)) if end.is_empty() => s..size,
        (Err(_), Ok(n)) if start.is_empty() && n > 0 => size.saturating_sub(n)..size,
        _ => return Err(()),
    };
    if range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

/// `filename*` of `Content-Disposition` (RFC 6266 / 5987) plus an ASCII fallback.
fn disposition(kind: &str, name: &str) -> HeaderValue {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const ATTR: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download<K: Backend>(
    node: Arc<Node<K>>,
    id: String,
    q: Ticket,
    headers: HeaderMap,
    variant: Variant,
) -> Result<Response, HttpError> {
    let attachments = service(&node)?;
    let ticket = attachments.key().check_download(&q.t, &id)?;
    if ticket.variant != variant {
        return Err(AttachmentError::BadTicket.into());
    }
    let stored = attachments
        .stored(&ticket.tenant, &ticket.conversation, &ticket.attachment)
        .await?
        .ok_or(AttachmentError::NotFound)?;
    if stored.card.status == chathub_domain::AttachmentStatus::Blocked {
        // Never served, whatever ticket asks.
        return Err(http_error(crate::ops::attachments::blocked(), None));
    }
    let (range, content_type) = match variant {
        Variant::File => {
            let range = requested_range(&headers, stored.card.size).map_err(|()| {
                http_error(
                    Failure::bad_request("the range is outside the file".to_owned()),
                    None,
                )
            });
            let range = match range {
                Ok(r) => r,
                Err(_) => {
                    let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                    cors(response.headers_mut());
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", stored.card.size)) {
                        response.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    return Ok(response);
                }
            };
            (range, stored.card.content_type.clone())
        }
        Variant::Thumbnail => (None, "image/jpeg".to_owned()),
    };
    let got = attachments.read(&stored, variant, range.clone()).await?;
    let total = got.meta.size;
    let served = got.range.clone();
    let mut response = Response::new(Body::from_stream(got.into_stream()));
    let h = response.headers_mut();
    cors(h);
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(served.end - served.start),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // The type is the sniffed one; browsers must not guess another, and nothing in a
    // file may run as a page of this origin.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    let inline = content_type.starts_with("image/") && q.download.is_none();
    h.insert(
        header::CONTENT_DISPOSITION,
        disposition(
            if inline { "inline" } else { "attachment" },
            &stored.card.name,
        ),
    );
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{total}",
            served.start,
            served.end.saturating_sub(1)
        )) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let r = |v: &str| requested_range(&with(header::RANGE, v), 100);
        assert_eq!(r("bytes=0-9"), Ok(Some(0..10)));
        assert_eq!(r("bytes=90-"), Ok(Some(90..100)));
        assert_eq!(r("bytes=-10"), Ok(Some(90..100)));
        assert_eq!(r("bytes=95-200"), Ok(Some(95..100)));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("bytes=100-"), Err(()));
        assert_eq!(r("bytes=9-3"), Err(()));
        assert_eq!(requested_range(&HeaderMap::new(), 100), Ok(None));
    }

    #[test]
    fn upload_ranges_must_fit_the_declared_size() {
        let s = |v: &str| range_start(&with(header::CONTENT_RANGE, v), 100).map_err(|_| ());
        assert_eq!(s("bytes 0-49/100"), Ok(0));
        assert_eq!(s("bytes 50-99/100"), Ok(50));
        assert!(s("bytes 50-100/100").is_err());
        assert!(s("bytes 0-9/99").is_err());
        assert!(s("0-9/100").is_err());
        assert_eq!(range_start(&HeaderMap::new(), 100).map_err(|_| ()), Ok(0));
    }

    #[test]
    fn file_names_are_safe_in_the_header() {
        let v = disposition("attachment", "reçu \"mars\".pdf");
        let v = v.to_str().unwrap();
        assert!(
            v.starts_with("attachment; filename=\"re_u__mars_.pdf\""),
            "{v}"
        );
        assert!(
            v.contains("filename*=UTF-8''re%C3%A7u%20%22mars%22.pdf"),
            "{v}"
        );
    }
}
