//! The admin API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they carry, served at `GET /admin/v1/openapi.json`.
//!
//! Every route can fail with the same JSON error body; rather than repeat the list on
//! each handler, [`ErrorResponses`] adds the statuses the API returns (see
//! [`crate::admin::status_of`]) to every operation, and [`BearerAuth`] declares the token
//! scheme. Privileges are the security requirement's roles (OpenAPI 3.1 allows role
//! names for non-OAuth schemes) and are named in each operation's description too.

use crate::admin::*;
use axum::http::header;
use axum::response::IntoResponse;
use chathub_protocol::ErrorCode;
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::{self, RefOr, Response, ResponseBuilder, content::ContentBuilder};

/// The path the document is served at.
pub(crate) const PATH: &str = "/admin/v1/openapi.json";

/// The document's shape: every admin route and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chathub admin API",
        description = "How a brand's systems (and its admins) manage a chathub tenant over HTTP: \
the engagement catalogue, end users' profiles and engagement history, canned responses, \
settings, search, transcripts and reports, the audit log, and one end user's export and erasure. Every route needs `Authorization: Bearer <token>` \
of the tenant (the tenant comes from the token); routes name the privilege they need as the \
security requirement's role. Errors are JSON `{\"code\", \"message\"}` with the codes of the \
WebSocket protocol (protocol/PROTOCOL.md). Bodies are `application/json` in UTF-8 (anything \
else: 415), at most 256 KiB (413).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        list_items, put_item, delete_item,
        put_profile, get_profile, post_history, get_history,
        list_canned, put_canned, delete_canned,
        get_settings, put_settings,
        get_search, get_search_config, put_search_config, get_cycles, get_transcript,
        get_audit, get_export, delete_user,
    ),
    // Schemas only named by parameters (`value_type`), which utoipa does not collect.
    components(schemas(
        ErrorBody, chathub_domain::EndUserId, MessageKind, TranscriptFormat, ReportTime, ExportFormat,
        crate::ops::erase::ConversationErased, crate::ops::erase::FilesErased,
        crate::ops::erase::WorkspaceErased
    )),
    modifiers(&BearerAuth, &ErrorResponses),
    tags(
        (name = "catalogue", description = "The tenant's engagement catalogue"),
        (name = "users", description = "End users' profiles and engagement history"),
        (name = "canned", description = "Canned responses agents send by shortcut"),
        (name = "settings", description = "The tenant's chat switch and attachment policy"),
        (name = "records", description = "Search, transcripts and reports over the system of record"),
        (name = "audit", description = "The record of every admin action"),
    ),
)]
struct AdminApi;

/// The document as served: built once per process (it depends on nothing at run time
/// but the crate's version).
pub(crate) fn document() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api = AdminApi::openapi();
        api.info.version = env!("CARGO_PKG_VERSION").to_owned();
        // Serialising a value built from literals cannot fail; an empty body would be
        // seen at once by the OpenAPI test.
        serde_json::to_vec_pretty(&api).unwrap_or_default()
    })
}

/// `GET /admin/v1/openapi.json`: public, like any API reference (it holds no data).
pub(crate) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

/// The error body of every route.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, one of a closed list (match on it).
    code: ErrorCode,
    /// For people; may change between versions.
    message: String,
}

/// Declares `bearer`: the tenant's signed token (JWT, HS256), as the WebSocket takes.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut openapi::OpenApi) {
        use openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A token of the tenant signed with its secret: `role` `agent` or `admin` with \
                 `privileges` (an end user's token reads only their own transcript).",
            ))
            .build();
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Adds the API's error statuses to every operation, each with [`ErrorBody`].
struct ErrorResponses;

/// The statuses every route may answer with, and when.
const ERRORS: [(&str, &str); 9] = [
    (
        "400",
        "`bad_request`: a malformed body, query or path value",
    ),
    (
        "401",
        "`unauthorized`: no token, or not exactly one valid bearer token",
    ),
    (
        "403",
        "`forbidden`: the role or privilege does not allow this",
    ),
    ("404", "`not_found`: nothing of that id in the tenant"),
    (
        "409",
        "The rules refuse it in the current state (`conflict`, `invalid_state`, …)",
    ),
    ("413", "`too_large`: the body or a field is over its limit"),
    (
        "415",
        "`bad_request`: the body is not `application/json` in UTF-8",
    ),
    ("429", "`rate_limited`: too many requests"),
    (
        "503",
        "`unavailable`: a store is unreachable or the feature is off; retry later",
    ),
];

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, api: &mut openapi::OpenApi) {
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(openapi::Ref::from_schema_name(
                            "ErrorBody",
                        ))))
                        .build(),
                )
                .into()
        };
        for item in api.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in ERRORS {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// The id of a catalogue item, canned response or history event: what every id of the
/// API accepts.
#[allow(dead_code)] // a schema only
pub(crate) struct ResourceId;

impl utoipa::PartialSchema for ResourceId {
    fn schema() -> RefOr<openapi::schema::Schema> {
        chathub_domain::ids::id_schema()
    }
}

impl utoipa::ToSchema for ResourceId {}

/// A report's `from` or `to`: ms since the Unix epoch, a `YYYY-MM-DD` date (UTC
/// midnight) or an RFC 3339 time.
#[allow(dead_code)] // a schema only: `reports::parse_time` reads the string
pub(crate) struct ReportTime;

impl utoipa::PartialSchema for ReportTime {
    fn schema() -> RefOr<openapi::schema::Schema> {
        use openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(
                "^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))$",
            ))
            .description(Some(
                "ms since the Unix epoch, `YYYY-MM-DD` (UTC) or an RFC 3339 time",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ReportTime {}

#[cfg(test)]
mod tests {
    use super::document;

    /// Every `$ref` names a schema of the document: a type named only by a parameter is
    /// not collected by utoipa and must be listed in `components`.
    #[test]
    fn every_reference_resolves() {
        let api: serde_json::Value = serde_json::from_slice(document()).expect("JSON");
        let schemas = api["components"]["schemas"].as_object().expect("schemas");
        let text = String::from_utf8_lossy(document()).into_owned();
        let prefix = "\"#/components/schemas/";
        let mut named = 0;
        for piece in text.split(prefix).skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "no schema {name}");
            named += 1;
        }
        assert!(named > 20, "only {named} references");
        assert_eq!(api["openapi"], "3.1.0");
        assert!(api["paths"].as_object().is_some_and(|p| p.len() >= 11));
    }
}
