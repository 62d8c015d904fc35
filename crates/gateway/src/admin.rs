//! The admin HTTP API, on the HTTP port: how a brand's loyalty system (or an admin)
//! pushes the engagement catalogue, end-user profiles and history, canned responses and
//! the tenant-wide chat switch.
//!
//! Every route needs `Authorization: Bearer <token>` of the tenant, with a privilege:
//! `engagement.manage` (catalogue, profiles, history), `canned.manage` (canned
//! responses), `chat.disable` (settings). Errors are JSON `{"code", "message"}` with the
//! codes of the WebSocket protocol.

use crate::auth::{Identity, now_millis};
use crate::{Backend, Node};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chathub_broker::{Broker, Channel};
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{CatalogueItem, EngagementType, HistoryEvent, Profile};
use chathub_domain::ids::validate;
use chathub_domain::{EndUserId, Privilege};
use chathub_protocol::{ErrorCode, ServerFrame, TenantFrame};
use chathub_store::{StoreError, TenantSettings, WorkspaceStore};
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(what) => bad_request(format!("invalid {what}")),
            e => {
                tracing::warn!(error = %e, "admin api: store failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "store unavailable; retry".into(),
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        bad_request(e.body_text())
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        message.into(),
    )
}

fn not_found(what: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no such {what}"),
    )
}

/// The answer to a DELETE: 204 when something was removed, 404 when there was nothing.
fn deleted(removed: bool, what: &str) -> ApiResult<StatusCode> {
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(what))
    }
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
        .route("/admin/v1/canned", get(list_canned::<K>))
        .route(
            "/admin/v1/canned/{id}",
            put(put_canned::<K>).delete(delete_canned::<K>),
        )
        .route(
            "/admin/v1/settings",
            get(get_settings::<K>).put(put_settings::<K>),
        )
}

/// The caller, who must hold `privilege`.
fn authorize<K: Backend>(
    node: &Node<K>,
    headers: &HeaderMap,
    privilege: Privilege,
) -> ApiResult<Identity> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "missing bearer token".into(),
            )
        })?;
    let identity = node.auth.verify(token.trim()).map_err(|e| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            e.to_string(),
        )
    })?;
    if !identity.actor.has(privilege) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("needs the `{}` privilege", privilege.as_str()),
        ));
    }
    Ok(identity)
}

fn id_ok(id: &str) -> ApiResult<()> {
    validate(id).map_err(|e| bad_request(format!("invalid id: {e}")))
}

fn user_of(user: &str) -> ApiResult<EndUserId> {
    EndUserId::new(user).map_err(|e| bad_request(format!("invalid user id: {e}")))
}

async fn list_items<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CatalogueItem>>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    Ok(Json(node.backend.workspace().items(&who.tenant).await?))
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
    id_ok(&id)?;
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
    if item.name.trim().is_empty() {
        return Err(bad_request("`name` is empty"));
    }
    node.backend
        .workspace()
        .upsert_item(&who.tenant, item.clone())
        .await?;
    Ok(Json(item))
}

async fn delete_item<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let removed = node
        .backend
        .workspace()
        .delete_item(&who.tenant, &id)
        .await?;
    deleted(removed, "engagement")
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
    node.backend
        .workspace()
        .upsert_profile(&who.tenant, &user, profile.clone())
        .await?;
    Ok(Json(profile))
}

async fn get_profile<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> ApiResult<Json<Profile>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    match node.backend.workspace().profile(&who.tenant, &user).await? {
        Some(p) => Ok(Json(p)),
        None => Err(not_found("profile")),
    }
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
    let id = new
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    id_ok(&id)?;
    let event = HistoryEvent {
        id,
        engagement_type: new.engagement_type,
        action: new.action,
        engagement: new.engagement,
        title: new.title,
        points: new.points,
        at: new.at.unwrap_or_else(now_millis),
    };
    node.backend
        .workspace()
        .add_history(&who.tenant, &user, event.clone())
        .await?;
    Ok((StatusCode::CREATED, Json(event)))
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(rename = "type", default)]
    engagement_type: Option<EngagementType>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn get_history<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = authorize(&node, &headers, Privilege::EngagementManage)?;
    let user = user_of(&user)?;
    let limit = q
        .limit
        .unwrap_or(node.config.limits.default_page)
        .clamp(1, node.config.limits.max_page);
    let page = node
        .backend
        .workspace()
        .history(
            &who.tenant,
            &user,
            q.engagement_type,
            q.before.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(
        serde_json::json!({"events": page.events, "next_cursor": page.next_cursor}),
    ))
}

async fn list_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CannedResponse>>> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    Ok(Json(node.backend.workspace().canned(&who.tenant).await?))
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
    id_ok(&id)?;
    let Json(new) = body?;
    if new.shortcut.trim().is_empty() || new.text.trim().is_empty() {
        return Err(bad_request("`shortcut` and `text` must not be empty"));
    }
    let canned = CannedResponse {
        id,
        shortcut: new.shortcut,
        text: new.text,
    };
    node.backend
        .workspace()
        .upsert_canned(&who.tenant, canned.clone())
        .await?;
    Ok(Json(canned))
}

async fn delete_canned<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let who = authorize(&node, &headers, Privilege::CannedManage)?;
    let removed = node
        .backend
        .workspace()
        .delete_canned(&who.tenant, &id)
        .await?;
    deleted(removed, "canned response")
}

async fn get_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    Ok(Json(node.backend.workspace().settings(&who.tenant).await?))
}

async fn put_settings<K: Backend>(
    State(node): State<Arc<Node<K>>>,
    headers: HeaderMap,
    body: Result<Json<TenantSettings>, JsonRejection>,
) -> ApiResult<Json<TenantSettings>> {
    let who = authorize(&node, &headers, Privilege::ChatDisable)?;
    let Json(settings) = body?;
    let changed = node
        .backend
        .workspace()
        .set_chat_disabled(&who.tenant, settings.chat_disabled)
        .await?;
    node.remember_settings(&who.tenant, settings);
    if changed {
        // Everyone in the tenant hears about the switch, as with the socket request.
        let frame = ServerFrame::Tenant(TenantFrame {
            chat_disabled: settings.chat_disabled,
        });
        for channel in [Channel::agents(&who.tenant), Channel::users(&who.tenant)] {
            let envelope = chathub_ownership::frames::envelope(&channel, None, &frame);
            if let Err(e) = node.backend.broker().publish(&channel, envelope).await {
                tracing::warn!(error = %e, "tenant frame publish failed");
            }
        }
    }
    Ok(Json(settings))
}
