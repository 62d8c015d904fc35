//! The admin HTTP API, on the HTTP port: how a brand's loyalty system (or an admin)
//! pushes the engagement catalogue, end-user profiles and history, canned responses and
//! the tenant-wide chat switch. An adapter over the same [`ops`](crate::ops) functions as
//! the socket: it parses the route and body, builds the caller's context from the bearer
//! token, and renders the op's answer or error.
//!
//! Every route needs `Authorization: Bearer <token>` of the tenant, with a privilege:
//! `engagement.manage` (catalogue, profiles, history), `canned.manage` (canned
//! responses), `chat.disable` (settings); search and transcripts take any agent's or
//! admin's token (an end user's token gets only their own transcript). Errors are JSON `{"code", "message"}` with the
//! codes of the WebSocket protocol.

use crate::auth::{Identity, now_millis};
use crate::ops::{self, Ctx, Failure, canned, engagements, reports, search, tenant, transcript};
use crate::{Backend, Node};
use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{CatalogueItem, EngagementType, HistoryEvent, Profile};
use chathub_domain::{EndUserId, Privilege};
use chathub_protocol::ErrorCode;
use chathub_store::TenantSettings;
use serde::Deserialize;
use std::sync::Arc;

/// An API error: status, code and message, rendered as JSON.
pub(crate) struct ApiError(StatusCode, ErrorCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.1.as_str(), "message": self.2});
        (self.0, Json(body)).into_response()
    }
}

/// The HTTP status of an error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadRequest | ErrorCode::UnknownOp => StatusCode::BAD_REQUEST,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Blocked => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // The rules' refusals (conflict, chat_disabled, invalid_state, the entitlement
        // codes): the request was understood, the state of things refuses it.
        _ => StatusCode::CONFLICT,
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Reply(e) => ApiError(status_of(e.code), e.code, e.message),
            // No connection to lose over HTTP; kept total for the type's sake.
            Failure::Gone => ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error".into(),
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
            );
        }
        bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    /// A query string that does not parse (a missing `q`, a `limit` that is not a
    /// number) is a `bad_request` in the API's JSON shape, like every other error.
    fn from(e: QueryRejection) -> Self {
        bad_request(e.body_text())
    }
}

/// Largest admin request body, in bytes (a catalogue item or a profile is a few KB).
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024;

/// Admin bodies are JSON in UTF-8, said so exactly: `application/json`, with at most a
/// `charset=utf-8` parameter. Anything else (`application/json+evil`, another charset, no
/// type) is refused with 415 before the body is read.
async fn strict_json(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let has_body = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::DELETE | axum::http::Method::HEAD
    );
    if has_body && !is_json_utf8(request.headers().get(axum::http::header::CONTENT_TYPE)) {
        return ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "the body must be `Content-Type: application/json` (UTF-8)".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a Content-Type is `application/json`, optionally with `charset=utf-8`.
fn is_json_utf8(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
    {
        return false;
    }
    parts.all(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("charset")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    })
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        message.into(),
    )
}

type ApiResult<T> = Result<T, ApiError>;

/// The admin routes, to merge into the HTTP side.
pub(crate) fn routes<K: Backend>() -> Router<Arc<Node<K>>> {
    Router::new()
        .route("/admin/v1/catalogue", get(list_items::<K>))
        .route(
            "/admin/v1/catalogue/{id}",
            put(put_item::<K>).delete(delete_item::<K>),
        )
        .route(
            "/admin/v1/users/{user}/profile",
            put(put_profile::<K>).get(get_profile::<K>),
        )
        .route(
            "/admin/v1/users/{user}/history",
            get(get_history::<K>).post(post_history::<K>),
        )
        .route("/admin/v1/search", get(get_search::<K>))
        .route(
            "/admin/v1/search/config",
            get(get_search_config::<K>).put(put_search_config::<K>),
        )
        .route("/admin/v1/reports/cycles.csv", get(get_cycles::<K>))
        .route(
            "/admin/v1/conversations/{id}/transcript",
            get(get_transcript::<K>),
        )
        .route("/admin/v1/canned", get(list_canned::<K>))
        .route(
            "/admin/v1/canned/{id}",
            put(put_canned::<K>).delete(delete_canned::<K>),
        )
        .route(
            "/admin/v1/settings",
            get(get_settings::<K>).put(put_settings::<K>),
        )
        .layer(axum::middleware::from_fn(strict_json))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The caller, who must hold `privilege` (the ops check it again: one rule, and the
/// route's documented privilege is refused before the body is even read).
fn authorize<K: Backend>(
    node: &Node<K>,
    headers: &HeaderMap,
    privilege: Privilege,
) -> ApiResult<Identity> {
    let identity = authenticate(node, headers)?;
    if !identity.actor.has(privilege) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("needs the `{}` privilege", privilege.as_str()),
        ));
    }
    Ok(identity)
}

/// The caller, from exactly one bearer token of the tenant (the op checks the role).
fn authenticate<K: Backend>(node: &Node<K>, headers: &HeaderMap) -> ApiResult<Identity> {
    let unauthorized = |message: &str| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            message.into(),
        )
    };
    let mut given = headers.get_all("authorization").iter();
    let (Some(value), None) = (given.next(), given.next()) else {
        return Err(unauthorized(
            "give exactly one `Authorization: Bearer <token>` header",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing bearer token"))?;
    let identity = node.auth.verify(token.trim()).map_err(|e| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            e.to_string(),
        )
    })?;
    Ok(identity)
}

fn cx<'a, K>(node: &'a Arc<Node<K>>, identity: &'a Identity) -> Ctx<'a, K> {
    Ctx { node, identity }
}

fn user_of(user: &str) -> ApiResult<EndUserId> {
    EndUserId::new(user).map_err(|e| bad_request(format!("invalid user id: {e}")))
}

async fn list_items<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CatalogueItem>>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    Ok(Json(engagements::catalogue(&cx(&node, &who)).await?))
}

/// A catalogue item as put: the id comes from the path.
#[derive(Deserialize)]
struct NewItem {
    #[serde(rename = "type")]
    engagement_type: EngagementType,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    valid_from: Option<u64>,
    #[serde(default)]
    valid_until: Option<u64>,
    #[serde(default)]
    rules: chathub_domain::engagement::EligibilityRules,
}

async fn put_item<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewItem>, JsonRejection>,
) -> ApiResult<Json<CatalogueItem>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    ops::engagements::valid_id(&id, "id")?;
    let Json(new) = body?;
    let item = CatalogueItem {
        id,
        engagement_type: new.engagement_type,
        name: new.name,
        description: new.description,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        rules: new.rules,
    };
    Ok(Json(engagements::put_item(&cx(&node, &who), item).await?))
}

async fn delete_item<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    engagements::delete_item(&cx(&node, &who), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_profile<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Result<Json<Profile>, JsonRejection>,
) -> ApiResult<Json<Profile>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let Json(profile) = body?;
    Ok(Json(
        engagements::put_profile(&cx(&node, &who), &user, profile).await?,
    ))
}

async fn get_profile<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> ApiResult<Json<Profile>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    Ok(Json(
        engagements::get_profile(&cx(&node, &who), &user).await?,
    ))
}

/// A history event as posted: `id` and `at` may be left out.
#[derive(Deserialize)]
struct NewHistoryEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    engagement_type: EngagementType,
    action: chathub_domain::engagement::HistoryAction,
    #[serde(default)]
    engagement: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    at: Option<u64>,
}

async fn post_history<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Result<Json<NewHistoryEvent>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<HistoryEvent>)> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let Json(new) = body?;
    let event = HistoryEvent {
        id: new
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        engagement_type: new.engagement_type,
        action: new.action,
        engagement: new.engagement,
        title: new.title,
        points: new.points,
        at: new.at.unwrap_or_else(now_millis),
    };
    let event = engagements::record_history(&cx(&node, &who), &user, event).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(rename = "type", default)]
    engagement_type: Option<EngagementType>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn get_history<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q?;
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let page = engagements::history_page(
        &cx(&node, &who),
        &user,
        q.engagement_type,
        q.before.as_deref(),
        q.limit,
    )
    .await?;
    Ok(Json(
        serde_json::json!({"events": page.events, "next_cursor": page.next_cursor}),
    ))
}

/// `GET /admin/v1/search`'s query string: the `search` request's fields, `q` the query.
#[derive(Deserialize)]
struct SearchParams {
    q: String,
    #[serde(default)]
    end_user: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    status: Option<chathub_domain::Status>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn get_search<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    p: Result<Query<SearchParams>, QueryRejection>,
) -> ApiResult<Json<chathub_protocol::SearchReply>> {
    let Query(p) = p?;
    let who = authenticate(&node, &headers)?;
    let request = search::SearchRequest {
        query: p.q,
        end_user: p.end_user,
        agent: p.agent,
        status: p.status,
        from: p.from,
        to: p.to,
        kind: p.kind,
        cursor: p.cursor,
        limit: p.limit,
    };
    Ok(Json(search::search(&cx(&node, &who), request).await?))
}

/// The tenant's text search configuration (admins).
async fn get_search_config<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<chathub_protocol::SearchConfig>> {
    let who = authenticate(&node, &headers)?;
    Ok(Json(search::search_config(&cx(&node, &who)).await?))
}

/// `PUT /admin/v1/search/config`'s body: a configuration name, or `null` for the default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchConfigBody {
    config: Option<String>,
}

/// Sets the tenant's text search configuration and re-indexes its messages (admins).
async fn put_search_config<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    body: Result<Json<SearchConfigBody>, JsonRejection>,
) -> ApiResult<Json<chathub_protocol::SearchConfig>> {
    let who = authenticate(&node, &headers)?;
    let Json(body) = body?;
    Ok(Json(
        search::set_search_config(&cx(&node, &who), body.config).await?,
    ))
}

/// `GET /admin/v1/reports/cycles.csv`'s query string: times as ms, RFC 3339 or
/// `YYYY-MM-DD` (UTC).
#[derive(Deserialize)]
struct ReportParams {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// One row per conversation cycle opened in `[from, to)` (default: today so far), as
/// CSV, streamed as the rows are read (admins).
async fn get_cycles<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    p: Result<Query<ReportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = p?;
    let who = authenticate(&node, &headers)?;
    if who.role != chathub_domain::Role::Admin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "reports are for admins".into(),
        ));
    }
    let from = p
        .from
        .as_deref()
        .map(|t| reports::parse_time(t, "from"))
        .transpose()?;
    let to =
        p.to.as_deref()
            .map(|t| reports::parse_time(t, "to"))
            .transpose()?;
    let (from, to) = reports::range(from, to)?;
    let (rows, reader) = reports::cycles(&cx(&node, &who), from, to)?;
    let header = futures::stream::once(async {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            chathub_store::report::CycleRow::CSV_HEADER.as_bytes(),
        ))
    });
    // Rows as they come; a reader that failed ends the body with an error, so the
    // client sees a broken transfer rather than a short report that looks complete.
    let body = futures::stream::unfold((rows, Some(reader)), |(mut rows, reader)| async move {
        match rows.recv().await {
            Some(row) => Some((Ok(bytes::Bytes::from(row.csv())), (rows, reader))),
            None => match reader?.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (rows, None))),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (rows, None))),
            },
        }
    });
    let body = axum::body::Body::from_stream(futures::StreamExt::chain(header, body));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"cycles.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET …/transcript`'s query string.
#[derive(Deserialize)]
struct TranscriptParams {
    #[serde(default)]
    format: Option<String>,
}

async fn get_transcript<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Result<Query<TranscriptParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = p?;
    let who = authenticate(&node, &headers)?;
    let conversation = chathub_domain::ConversationId::new(id)
        .map_err(|e| bad_request(format!("invalid conversation id: {e}")))?;
    let format = transcript::Format::parse(p.format.as_deref())?;
    let max = transcript::ADMIN_MAX_EVENTS;
    let mut reply =
        transcript::transcript(&cx(&node, &who), Some(conversation), format, max).await?;
    let content_type = match format {
        None => return Ok(Json(reply).into_response()),
        Some(transcript::Format::Text) => "text/plain; charset=utf-8",
        Some(transcript::Format::Html) => "text/html; charset=utf-8",
    };
    let body = reply.rendered.take().unwrap_or_default();
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn list_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CannedResponse>>> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    Ok(Json(canned::all(&cx(&node, &who)).await?))
}

/// A canned response as put: the id comes from the path.
#[derive(Deserialize)]
struct NewCanned {
    shortcut: String,
    text: String,
}

async fn put_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<NewCanned>, JsonRejection>,
) -> ApiResult<Json<CannedResponse>> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    let Json(new) = body?;
    let canned = canned::upsert(&cx(&node, &who), Some(id), new.shortcut, new.text).await?;
    Ok(Json(canned))
}

async fn delete_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    canned::delete(&cx(&node, &who), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    Ok(Json(tenant::settings(&cx(&node, &who)).await?))
}

async fn put_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    body: Result<Json<SettingsChange>, JsonRejection>,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    let Json(change) = body?;
    let cx = cx(&node, &who);
    // The policy first: it is the part that may be refused (validation).
    if let Some(policy) = change.attachments {
        tenant::set_attachment_policy(&cx, policy).await?;
    }
    if let Some(disabled) = change.chat_disabled {
        tenant::set_chat(&cx, disabled).await?;
    }
    Ok(Json(tenant::settings(&cx).await?))
}

/// A change of the tenant's settings: each field left out stays as it is.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    /// The tenant-wide chat switch.
    #[serde(default)]
    chat_disabled: Option<bool>,
    /// The attachment policy, whole.
    #[serde(default)]
    attachments: Option<chathub_domain::attachment::AttachmentPolicy>,
}

#[cfg(test)]
mod tests {
    use super::is_json_utf8;
    use axum::http::HeaderValue;

    #[test]
    fn only_json_in_utf8_is_accepted() {
        let ok = |v: &str| is_json_utf8(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=UTF-8"));
        assert!(ok("application/json;charset=\"utf-8\""));
        assert!(!ok("application/json+evil"));
        assert!(!ok("application/json; charset=utf-16"));
        assert!(!ok("application/json; boundary=x"));
        assert!(!ok("text/plain"));
        assert!(!is_json_utf8(None));
    }
}
