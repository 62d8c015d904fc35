//! The admin HTTP API, on the HTTP port: how a brand's loyalty system (or an admin)
//! pushes the engagement catalogue, end-user profiles and history, canned responses and
//! the tenant-wide chat switch. An adapter over the same [`ops`](crate::ops) functions as
//! the socket: it parses the route and body, builds the caller's context from the bearer
//! token, and renders the op's answer or error.
//!
//! Every route needs `Authorization: Bearer <token>` of the tenant, with a privilege:
//! `engagement.manage` (catalogue, profiles, history), `canned.manage` (canned
//! responses), `chat.disable` (settings); search and transcripts take any agent's or
//! admin's token (an end user's token gets only their own transcript); reports, the
//! search configuration and the audit log take an admin's; one end user's export and
//! erasure take `data.export` and `data.erase`. Errors are JSON
//! `{"code", "message"}` with the codes of the WebSocket protocol. The routes and their
//! types are described by the OpenAPI document ([`crate::openapi`]).

use crate::auth::{Identity, now_millis};
use crate::openapi::{ReportTime, ResourceId};
use crate::ops::{self, Ctx, Failure, canned, engagements, reports, search, tenant, transcript};
use crate::{Backend, Node};
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{CatalogueItem, EngagementType, HistoryEvent, Profile};
use chathub_domain::{ConversationId, EndUserId, Privilege};
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

impl From<QueryRejection> for ApiError {
    /// A query string that does not parse (a missing `q`, a `limit` that is not a
    /// number) is a `bad_request` in the API's JSON shape, like every other error.
    fn from(e: QueryRejection) -> Self {
        bad_request(e.body_text())
    }
}

/// Largest admin request body, in bytes (a catalogue item or a profile is a few KB).
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request body: one JSON object in UTF-8, said so exactly (`Content-Type:
/// application/json`, with at most a `charset=utf-8` parameter; anything else, e.g.
/// `application/json+evil` or no type, is 415 before the body is read), at most
/// [`MAX_BODY_BYTES`] (413), and an object — not an array, which serde would otherwise
/// read into a struct field by field (400).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> ApiResult<Self> {
        if !is_json_utf8(request.headers().get(axum::http::header::CONTENT_TYPE)) {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::BadRequest,
                "the body must be `Content-Type: application/json` (UTF-8)".into(),
            ));
        }
        let bytes = bytes::Bytes::from_request(request, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::TooLarge,
                        format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    bad_request(e.body_text())
                }
            })?;
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let value = object(&mut json)
            .and_then(|value| json.end().map(|()| value))
            .map_err(|e| bad_request(format!("invalid body: {e}")))?;
        Ok(JsonBody(value))
    }
}

/// Reads a `T` from a JSON object only. serde's derived structs also read an array,
/// field by field (`[null, null]` would be a settings change, `[]` a default policy);
/// the API's documents are objects, and an array is a client's mistake to report.
pub(crate) fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// Like [`object`], for a field that may also be `null` or left out.
pub(crate) fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct Wrapped<T>(T);
    impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Wrapped<T> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            object(d).map(Wrapped)
        }
    }
    Ok(Option::<Wrapped<T>>::deserialize(d)?.map(|w| w.0))
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
        .route("/admin/v1/audit", get(get_audit::<K>))
        .route("/admin/v1/users/{user}/export", get(get_export::<K>))
        .route(
            "/admin/v1/users/{user}",
            axum::routing::delete(delete_user::<K>),
        )
        .route(crate::openapi::PATH, get(crate::openapi::serve))
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

#[utoipa::path(get, path = "/admin/v1/catalogue", tag = "catalogue",
    summary = "List the engagement catalogue",
    security(("bearer" = ["engagement.manage"])),
    responses((status = 200, description = "Every item of the tenant's catalogue", body = Vec<CatalogueItem>)))]
async fn list_items<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CatalogueItem>>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    Ok(Json(engagements::catalogue(&cx(&node, &who)).await?))
}

/// A catalogue item as put: the id comes from the path.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewItem {
    /// Kind.
    #[serde(rename = "type")]
    engagement_type: EngagementType,
    /// Title shown to agents and end users.
    #[schema(min_length = 1, pattern = r"\S")]
    name: String,
    /// Longer description.
    #[serde(default)]
    description: String,
    /// Valid from, ms since the Unix epoch (absent: always).
    #[serde(default)]
    #[schema(maximum = 253_402_300_799_999_u64)]
    valid_from: Option<u64>,
    /// Valid until, ms since the Unix epoch (absent: forever).
    #[serde(default)]
    #[schema(maximum = 253_402_300_799_999_u64)]
    valid_until: Option<u64>,
    /// Who may get it.
    #[serde(default, deserialize_with = "object")]
    rules: chathub_domain::engagement::EligibilityRules,
}

#[utoipa::path(put, path = "/admin/v1/catalogue/{id}", tag = "catalogue",
    summary = "Create or replace a catalogue item",
    security(("bearer" = ["engagement.manage"])),
    params(("id" = ResourceId, Path, description = "The item's id")),
    request_body = NewItem,
    responses((status = 200, description = "The item as stored", body = CatalogueItem)))]
async fn put_item<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<NewItem>,
) -> ApiResult<Json<CatalogueItem>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    ops::engagements::valid_id(&id, "id")?;
    let JsonBody(new) = body;
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

#[utoipa::path(delete, path = "/admin/v1/catalogue/{id}", tag = "catalogue",
    summary = "Remove a catalogue item",
    security(("bearer" = ["engagement.manage"])),
    params(("id" = ResourceId, Path, description = "The item's id")),
    responses((status = 204, description = "Removed")))]
async fn delete_item<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    engagements::delete_item(&cx(&node, &who), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/admin/v1/users/{user}/profile", tag = "users",
    summary = "Set an end user's profile",
    security(("bearer" = ["engagement.manage"])),
    params(("user" = EndUserId, Path, description = "The end user")),
    request_body = Profile,
    responses((status = 200, description = "The profile as stored", body = Profile)))]
async fn put_profile<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: JsonBody<Profile>,
) -> ApiResult<Json<Profile>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let JsonBody(profile) = body;
    Ok(Json(
        engagements::put_profile(&cx(&node, &who), &user, profile).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/users/{user}/profile", tag = "users",
    summary = "Read an end user's profile",
    security(("bearer" = ["engagement.manage"])),
    params(("user" = EndUserId, Path, description = "The end user")),
    responses((status = 200, description = "The profile (empty fields when never set)", body = Profile)))]
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
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewHistoryEvent {
    /// Unique id of the event (a random one when left out); posting an id again
    /// replaces that event.
    #[serde(default)]
    #[schema(value_type = Option<ResourceId>)]
    id: Option<String>,
    /// Engagement type.
    #[serde(rename = "type")]
    engagement_type: EngagementType,
    /// What happened.
    action: chathub_domain::engagement::HistoryAction,
    /// The catalogue item, if the event concerns one.
    #[serde(default)]
    #[schema(value_type = Option<ResourceId>)]
    engagement: Option<String>,
    /// Title to show.
    #[serde(default)]
    title: String,
    /// Points earned or spent, for points events.
    #[serde(default)]
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    points: Option<i64>,
    /// When, ms since the Unix epoch (default: now).
    #[serde(default)]
    #[schema(maximum = 253_402_300_799_999_u64)]
    at: Option<u64>,
}

/// One page of an end user's engagement history.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryPage {
    /// Events, newest first.
    events: Vec<HistoryEvent>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/users/{user}/history", tag = "users",
    summary = "Record an engagement history event",
    description = "Idempotent by `id`: posting the same id again replaces the event.",
    security(("bearer" = ["engagement.manage"])),
    params(("user" = EndUserId, Path, description = "The end user")),
    request_body = NewHistoryEvent,
    responses((status = 201, description = "The event as stored", body = HistoryEvent)))]
async fn post_history<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: JsonBody<NewHistoryEvent>,
) -> ApiResult<(StatusCode, Json<HistoryEvent>)> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let JsonBody(new) = body;
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

/// `GET …/history`'s query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only events of this engagement type.
    #[serde(rename = "type", default)]
    #[param(rename = "type")]
    engagement_type: Option<EngagementType>,
    /// The previous page's `next_cursor`.
    #[serde(default)]
    before: Option<String>,
    /// Events per page (at least 1; larger values are capped at the node's page size).
    #[serde(default)]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/users/{user}/history", tag = "users",
    summary = "Page through an end user's engagement history, newest first",
    security(("bearer" = ["engagement.manage"])),
    params(("user" = EndUserId, Path, description = "The end user"), HistoryQuery),
    responses((status = 200, description = "One page", body = HistoryPage)))]
async fn get_history<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<HistoryPage>> {
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
    Ok(Json(HistoryPage {
        events: page.events,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /admin/v1/search`'s query string: the `search` request's fields, `q` the query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// The query: words (all must match), `"a phrase"`, `prefix*`, `-excluded`; at
    /// least one word to find.
    #[param(min_length = 1, pattern = r"[\p{L}\p{N}]")]
    q: String,
    /// Only this end user's conversation.
    #[serde(default)]
    #[param(value_type = Option<EndUserId>)]
    end_user: Option<String>,
    /// Only messages written by this agent.
    #[serde(default)]
    #[param(value_type = Option<chathub_domain::AgentId>)]
    agent: Option<String>,
    /// Only conversations in this status now.
    #[serde(default)]
    status: Option<chathub_domain::Status>,
    /// Written at or after, ms since the Unix epoch.
    #[serde(default)]
    from: Option<u64>,
    /// Written before, ms since the Unix epoch (not before `from`).
    #[serde(default)]
    to: Option<u64>,
    /// Only messages of this kind.
    #[serde(default)]
    #[param(value_type = Option<MessageKind>)]
    kind: Option<String>,
    /// The previous page's `next_cursor`.
    #[serde(default)]
    cursor: Option<String>,
    /// Hits per page (at least 1; larger values are capped at the node's page size).
    #[serde(default)]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// A message's kind, for search filters.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the op parses the string itself
pub(crate) enum MessageKind {
    /// Plain text.
    Text,
    /// An engagement card.
    Engagement,
    /// A file.
    Attachment,
}

#[utoipa::path(get, path = "/admin/v1/search", tag = "records",
    summary = "Search the tenant's messages",
    description = "Agents and admins (any privilege). The `search` request of the WebSocket protocol.",
    security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, description = "Messages found, newest first", body = chathub_protocol::SearchReply)))]
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
#[utoipa::path(get, path = "/admin/v1/search/config", tag = "records",
    summary = "The tenant's text search configuration",
    description = "Admins.",
    security(("bearer" = [])),
    responses((status = 200, description = "The configuration", body = chathub_protocol::SearchConfig)))]
async fn get_search_config<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<chathub_protocol::SearchConfig>> {
    let who = authenticate(&node, &headers)?;
    Ok(Json(search::search_config(&cx(&node, &who)).await?))
}

/// `PUT /admin/v1/search/config`'s body: a configuration name, or `null` for the default.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchConfigBody {
    /// A PostgreSQL text search configuration (`english`, `french`, …), or `null` for
    /// `chathub_simple`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z0-9_]+$")]
    config: Option<String>,
}

/// Sets the tenant's text search configuration and re-indexes its messages (admins).
#[utoipa::path(put, path = "/admin/v1/search/config", tag = "records",
    summary = "Set the tenant's text search configuration",
    description = "Admins; only with the PostgreSQL archive (`bad_request` on the embedded default). Re-indexes the tenant's messages.",
    security(("bearer" = [])),
    request_body = SearchConfigBody,
    responses((status = 200, description = "The configuration now", body = chathub_protocol::SearchConfig)))]
async fn put_search_config<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    body: JsonBody<SearchConfigBody>,
) -> ApiResult<Json<chathub_protocol::SearchConfig>> {
    let who = authenticate(&node, &headers)?;
    let JsonBody(body) = body;
    Ok(Json(
        search::set_search_config(&cx(&node, &who), body.config).await?,
    ))
}

/// `GET /admin/v1/reports/cycles.csv`'s query string: times as ms, RFC 3339 or
/// `YYYY-MM-DD` (UTC).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// Start (inclusive): ms since the Unix epoch, RFC 3339 or `YYYY-MM-DD` (UTC);
    /// default: today's UTC midnight.
    #[serde(default)]
    #[param(value_type = Option<ReportTime>)]
    from: Option<String>,
    /// End (exclusive), in the same forms; default: now.
    #[serde(default)]
    #[param(value_type = Option<ReportTime>)]
    to: Option<String>,
}

/// One row per conversation cycle opened in `[from, to)` (default: today so far), as
/// CSV, streamed as the rows are read (admins).
#[utoipa::path(get, path = "/admin/v1/reports/cycles.csv", tag = "records",
    summary = "One CSV row per conversation cycle opened in a time range",
    description = "Admins. Streamed; a read that fails midway breaks the transfer rather than ending a short report.",
    security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, description = "The rows, with a header line", content_type = "text/csv", body = String)))]
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

/// `GET …/export`'s query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParams {
    /// `json` (the default) or `text` (readable).
    #[serde(default)]
    #[param(value_type = Option<ExportFormat>)]
    format: Option<String>,
}

/// How an export is written.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the handler reads the string
pub(crate) enum ExportFormat {
    /// One JSON document.
    Json,
    /// Readable text.
    Text,
}

#[utoipa::path(get, path = "/admin/v1/users/{user}/export", tag = "users",
    summary = "Everything held about an end user (a data-subject access request)",
    description = "The profile, the engagement history, the conversation (messages, ownership timeline, engagements; its readable transcript in `conversation.rendered`) and the files as signed links (`--export-link-ttl-secs`). Recorded in the audit log (`user_exported`, with the counts). Sent in chunks as it is written.",
    security(("bearer" = ["data.export"])),
    params(("user" = EndUserId, Path, description = "The end user"), ExportParams),
    responses((status = 200, description = "The export", content(
        (crate::ops::export::UserExport = "application/json"),
        (String = "text/plain")))))]
async fn get_export<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    p: Result<Query<ExportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = p?;
    let who = authorize(&node, &headers, Privilege::DataExport)?;
    let user = user_of(&user)?;
    let text = match p.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "invalid `format` {other:?}: `json` or `text`"
            )));
        }
    };
    let export = ops::export::export(&cx(&node, &who), &user).await?;
    let (body, content_type, extension) = if text {
        let body = ops::export::text(&export).into_bytes();
        (body, "text/plain; charset=utf-8", "txt")
    } else {
        let body = serde_json::to_vec(&export).map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("writing the export: {e}"),
            )
        })?;
        (body, "application/json", "json")
    };
    // In chunks: a large export is not one write the client must wait for.
    let body = bytes::Bytes::from(body);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..body.len())
        .step_by(EXPORT_CHUNK)
        .map(|at| Ok(body.slice(at..(at + EXPORT_CHUNK).min(body.len()))))
        .collect();
    let disposition = format!("attachment; filename=\"export-{user}.{extension}\"");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/admin/v1/users/{user}", tag = "users",
    summary = "Erase an end user from every store",
    description = "Their conversation (state, history, idempotency keys, read marks, queue and inbox entries, pending webhook deliveries, the record tier and its search index), their files, their profile, engagement history, redeemed items and presence. Their devices get an `erased` frame and are closed with 4102; consoles drop the conversation. Idempotent: erasing again, or a user never seen, answers 200 with `removed_anything: false`; a call answered `unavailable` is completed by calling again. Recorded in the audit log (`user_erased`, with the receipt).",
    security(("bearer" = ["data.erase"])),
    params(("user" = EndUserId, Path, description = "The end user")),
    responses((status = 200, description = "What went, store by store", body = crate::ops::erase::ErasureReceipt)))]
async fn delete_user<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> ApiResult<Json<crate::ops::erase::ErasureReceipt>> {
    let who = authorize(&node, &headers, Privilege::DataErase)?;
    let user = user_of(&user)?;
    Ok(Json(ops::erase::erase(&cx(&node, &who), &user).await?))
}

/// Bytes per chunk of an export's body.
const EXPORT_CHUNK: usize = 64 * 1024;

/// `GET /admin/v1/audit`'s query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// The previous page's `next_cursor`.
    #[serde(default)]
    before: Option<String>,
    /// Entries per page (at least 1; larger values are capped at the node's page size).
    #[serde(default)]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit",
    summary = "The audit log: every admin action, newest first",
    description = "Admins. Kept for the node's `--audit-retention-days` (default 400).",
    security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, description = "One page", body = chathub_store::AuditPage)))]
async fn get_audit<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    p: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<chathub_store::AuditPage>> {
    let Query(p) = p?;
    let who = authenticate(&node, &headers)?;
    let page = ops::audit::page(&cx(&node, &who), p.before.as_deref(), p.limit).await?;
    Ok(Json(page))
}

/// `GET …/transcript`'s query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TranscriptParams {
    /// `json` (the default), `text` or `html`.
    #[serde(default)]
    #[param(value_type = Option<TranscriptFormat>)]
    format: Option<String>,
}

/// How a transcript is rendered.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: `transcript::Format::parse` reads the string
pub(crate) enum TranscriptFormat {
    /// The JSON document.
    Json,
    /// Plain text.
    Text,
    /// An HTML page.
    Html,
}

#[utoipa::path(get, path = "/admin/v1/conversations/{id}/transcript", tag = "records",
    summary = "A conversation's transcript",
    description = "Agents and admins; an end user's token gets only their own conversation's.",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation"), TranscriptParams),
    responses((status = 200, description = "The transcript, as JSON or rendered (`format`)", content(
        (chathub_protocol::TranscriptReply = "application/json"),
        (String = "text/plain"),
        (String = "text/html")))))]
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
    let cx = cx(&node, &who);
    let audience = ops::follow::Audience::of(&cx);
    let mut reply = transcript::transcript(&cx, Some(conversation), format, max, audience).await?;
    let content_type = match format {
        None => return Ok(Json(reply).into_response()),
        Some(transcript::Format::Text) => "text/plain; charset=utf-8",
        Some(transcript::Format::Html) => "text/html; charset=utf-8",
    };
    let body = reply.rendered.take().unwrap_or_default();
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

#[utoipa::path(get, path = "/admin/v1/canned", tag = "canned",
    summary = "List the canned responses",
    security(("bearer" = ["canned.manage"])),
    responses((status = 200, description = "Every canned response of the tenant", body = Vec<CannedResponse>)))]
async fn list_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CannedResponse>>> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    Ok(Json(canned::all(&cx(&node, &who)).await?))
}

/// A canned response as put: the id comes from the path.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewCanned {
    /// What agents type, e.g. `/hello` (at most 64 bytes of UTF-8).
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    shortcut: String,
    /// The text, with placeholders `{first_name}`, `{last_name}`, `{agent_name}`,
    /// `{points_balance}`, `{locale}` (at most the node's text limit).
    #[schema(min_length = 1, pattern = r"\S")]
    text: String,
}

#[utoipa::path(put, path = "/admin/v1/canned/{id}", tag = "canned",
    summary = "Create or replace a canned response",
    security(("bearer" = ["canned.manage"])),
    params(("id" = ResourceId, Path, description = "The canned response's id")),
    request_body = NewCanned,
    responses((status = 200, description = "The canned response as stored", body = CannedResponse)))]
async fn put_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: JsonBody<NewCanned>,
) -> ApiResult<Json<CannedResponse>> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    let JsonBody(new) = body;
    let canned = canned::upsert(&cx(&node, &who), Some(id), new.shortcut, new.text).await?;
    Ok(Json(canned))
}

#[utoipa::path(delete, path = "/admin/v1/canned/{id}", tag = "canned",
    summary = "Remove a canned response",
    security(("bearer" = ["canned.manage"])),
    params(("id" = ResourceId, Path, description = "The canned response's id")),
    responses((status = 204, description = "Removed")))]
async fn delete_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    canned::delete(&cx(&node, &who), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/settings", tag = "settings",
    summary = "The tenant's settings",
    security(("bearer" = ["chat.disable"])),
    responses((status = 200, description = "The settings", body = TenantSettings)))]
async fn get_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    Ok(Json(tenant::settings(&cx(&node, &who)).await?))
}

#[utoipa::path(put, path = "/admin/v1/settings", tag = "settings",
    summary = "Change the tenant's settings",
    description = "Each field left out stays as it is. Changing `retention_days` needs `data.erase` too; it is enforced by the next sweep (at most `--retention-sweep-secs` later) and on every read path at once. Each change is recorded in the audit log.",
    security(("bearer" = ["chat.disable"])),
    request_body = SettingsChange,
    responses((status = 200, description = "The settings now", body = TenantSettings)))]
async fn put_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    body: JsonBody<SettingsChange>,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    let JsonBody(change) = body;
    let cx = cx(&node, &who);
    // Everything that may be refused is checked before anything changes.
    if let Some(policy) = &change.attachments {
        policy.validate().map_err(Failure::bad_request)?;
    }
    if let Some(days) = change.retention_days {
        tenant::check_retention(&cx, days)?;
    }
    if let Some(secs) = change.edit_window_secs {
        tenant::check_edit_window(&cx, secs)?;
    }
    if let Some(survey) = &change.survey {
        tenant::check_survey(&cx, survey.as_ref()).await?;
    }
    if let Some(release) = &change.release {
        tenant::check_release(&cx, release.as_ref())?;
    }
    if let Some(alerts) = &change.alerts {
        tenant::check_alerts(&cx, alerts.as_ref())?;
    }
    if let Some(hours) = &change.hours {
        tenant::check_hours(&cx, hours.as_ref())?;
    }
    if change.bot.is_some() {
        crate::ops::bot::check_setting(&cx)?;
    }
    if let Some(policy) = change.attachments {
        tenant::set_attachment_policy(&cx, policy).await?;
    }
    if let Some(days) = change.retention_days {
        tenant::set_retention(&cx, days).await?;
    }
    if let Some(secs) = change.edit_window_secs {
        tenant::set_edit_window(&cx, secs).await?;
    }
    if let Some(survey) = change.survey {
        tenant::set_survey(&cx, survey).await?;
    }
    if let Some(release) = change.release {
        tenant::set_release_policy(&cx, release).await?;
    }
    if let Some(alerts) = change.alerts {
        tenant::set_alert_schedule(&cx, alerts).await?;
    }
    if let Some(hours) = change.hours {
        tenant::set_business_hours(&cx, hours).await?;
    }
    if let Some(bot) = change.bot {
        crate::ops::bot::set(&cx, bot).await?;
    }
    if let Some(disabled) = change.chat_disabled {
        tenant::set_chat(&cx, disabled).await?;
    }
    Ok(Json(tenant::settings(&cx).await?))
}

/// A change of the tenant's settings: each field left out stays as it is.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsChange {
    /// The tenant-wide chat switch.
    #[serde(default)]
    chat_disabled: Option<bool>,
    /// The attachment policy, whole.
    #[serde(default, deserialize_with = "optional_object")]
    attachments: Option<chathub_domain::attachment::AttachmentPolicy>,
    /// The retention policy: conversations are kept this many days after their last
    /// event, and nothing older is kept or shown (1–3650; needs `data.erase`). `null`:
    /// kept forever, allowed only with a record tier (the data directory, or an
    /// archive).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    retention_days: Option<Option<u32>>,
    /// How long after a message its author may edit or unsend it, seconds (0: never;
    /// at most 86400; default 900).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    edit_window_secs: Option<u32>,
    /// The satisfaction survey every finish asks from now on: `{"prompt", "reward"}`
    /// (`reward`: a catalogue item granted for an answer, when the end user is entitled
    /// to it). `null`: no survey.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<chathub_store::SurveySettings>)]
    survey: Option<Option<chathub_store::SurveySettings>>,
    /// When the server gives a stalled conversation back to the queue:
    /// `{"owner_absent_secs", "no_reply_secs"}` (each 1–604800, at least one; `null`:
    /// never).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<chathub_store::ReleasePolicy>)]
    release: Option<Option<chathub_store::ReleasePolicy>>,
    /// Who is alerted, and when, while a conversation waits unanswered:
    /// `{"steps": [{"after_secs", "repeat_secs", "notify", "breach"}…]}` (1–8 steps;
    /// `after_secs` 0–604800, `repeat_secs` 1–604800 or left out for once; `notify`
    /// `available`, `agents` or `supervisors`; `breach`: the step is the service-level
    /// breach). `null`: no alerts.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<chathub_store::AlertSchedule>)]
    alerts: Option<Option<chathub_store::AlertSchedule>>,
    /// When the team is open: `{"time_zone": "Europe/Lisbon", "weekly": {"mon":
    /// ["09:00-18:00"], …}, "holidays": ["2026-12-25"], "closed_reply": "…"}` (an IANA
    /// time zone; up to 4 ranges a day, end `24:00` allowed; up to 400 holidays; the reply
    /// 1–500 characters with `{back_at}`, `{time_zone}`, `{in}`). Outside hours the alert
    /// and stall clocks pause and a waiting end user gets one automatic reply per wait.
    /// `null`: always open.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<chathub_domain::hours::BusinessHours>)]
    hours: Option<Option<chathub_domain::hours::BusinessHours>>,
    /// The bot that answers first: `{"agent": "faq-bot"}` (the `sub` of its `bot`
    /// token). While it has a live session, every new or reopened conversation is owned
    /// by it until it hands off or a human takes it. `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<chathub_store::BotSettings>)]
    bot: Option<Option<chathub_store::BotSettings>>,
}

/// A field that may be left out (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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
