//! `search` (agents, and the admin API's `GET /admin/v1/search`): full-text search of
//! the tenant's messages in the record tier; and the tenant's search configuration
//! (admins, `/admin/v1/search/config`).

use super::{Ctx, Failure, forbidden, store_failed};
use crate::Backend;
use chathub_domain::{AgentId, EndUserId, Status};
use chathub_protocol::{ErrorCode, SearchHit, SearchReply, SnippetPart};
use chathub_store::search::{self, MessageKind, SearchQuery};

/// What a search asks for, as it arrives (socket or query string).
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchRequest {
    pub(crate) query: String,
    pub(crate) end_user: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) status: Option<Status>,
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) kind: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<u32>,
}

/// `search`: validates the request (a query over the limit is `too_large`, one with
/// nothing to find `bad_request`), then asks the backend's record tier.
pub(crate) async fn search<K: Backend>(
    cx: &Ctx<'_, K>,
    request: SearchRequest,
) -> Result<SearchReply, Failure> {
    if cx.is_end_user() {
        return Err(forbidden("`search` is for agents"));
    }
    let max = cx.node.config.limits.max_search_query_bytes;
    if request.query.len() > max {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("`query` is longer than {max} bytes"),
        ));
    }
    let parsed = search::parse(&request.query).map_err(store_failed)?;
    let end_user = request
        .end_user
        .map(EndUserId::new)
        .transpose()
        .map_err(|e| Failure::bad_request(format!("invalid `end_user`: {e}")))?;
    let agent = request
        .agent
        .map(AgentId::new)
        .transpose()
        .map_err(|e| Failure::bad_request(format!("invalid `agent`: {e}")))?;
    let kind = match request.kind.as_deref() {
        None => None,
        Some("text") => Some(MessageKind::Text),
        Some("engagement") => Some(MessageKind::Engagement),
        Some("attachment") => Some(MessageKind::Attachment),
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "invalid `kind` {other:?}: `text`, `engagement` or `attachment`"
            )));
        }
    };
    if let (Some(from), Some(to)) = (request.from, request.to)
        && from > to
    {
        return Err(Failure::bad_request("`from` is after `to`"));
    }
    // Nothing older than the tenant's retention policy is found (until the sweep deletes
    // it, it is only hidden).
    let cutoff = super::follow::retention(cx).await?.map(|r| r.cutoff);
    let from = match (request.from, cutoff) {
        (Some(from), Some(cutoff)) => Some(from.max(cutoff)),
        (from, cutoff) => from.or(cutoff),
    };
    let query = SearchQuery {
        query: parsed,
        end_user,
        agent,
        status: request.status,
        from,
        to: request.to,
        kind,
        cursor: request.cursor,
        limit: cx.page_size(request.limit)?,
    };
    if !cx.node.backend.has_record_tier() {
        return Err(Failure::new(
            ErrorCode::Unavailable,
            "search needs the record tier: the data directory (embedded, not --ephemeral) \
             or an archive (cluster mode)",
        ));
    }
    let page = cx
        .node
        .backend
        .search(&cx.identity.tenant, query)
        .await
        .map_err(store_failed)?;
    let hits = page
        .hits
        .into_iter()
        .map(|h| SearchHit {
            conversation: h.conversation,
            seq: h.seq,
            at: h.at,
            author: h.author,
            kind: h.kind.as_str().to_owned(),
            snippet: h
                .snippet
                .into_iter()
                .map(|p| SnippetPart {
                    text: p.text,
                    hit: p.hit,
                })
                .collect(),
        })
        .collect();
    Ok(SearchReply {
        hits,
        next_cursor: page.next_cursor,
    })
}

/// The tenant's text search configuration (admins).
pub(crate) async fn search_config<K: Backend>(
    cx: &Ctx<'_, K>,
) -> Result<chathub_protocol::SearchConfig, Failure> {
    if cx.identity.role != chathub_domain::Role::Admin {
        return Err(forbidden("the search configuration is for admins"));
    }
    cx.node
        .backend
        .search_config(&cx.identity.tenant)
        .await
        .map_err(store_failed)
}

/// Longest configuration name accepted (PostgreSQL names are at most 63 bytes).
const MAX_CONFIG_NAME: usize = 63;

/// Sets the tenant's text search configuration (admins): `None` for the default; a
/// name PostgreSQL does not know is `bad_request`. Re-indexes the tenant's messages.
pub(crate) async fn set_search_config<K: Backend>(
    cx: &Ctx<'_, K>,
    config: Option<String>,
) -> Result<chathub_protocol::SearchConfig, Failure> {
    if cx.identity.role != chathub_domain::Role::Admin {
        return Err(forbidden("the search configuration is for admins"));
    }
    if let Some(name) = &config
        && (name.is_empty()
            || name.len() > MAX_CONFIG_NAME
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(Failure::bad_request(
            "`config` is a text search configuration name (letters, digits, `_`)",
        ));
    }
    let detail = serde_json::json!({ "config": config });
    let set = cx
        .node
        .backend
        .set_search_config(&cx.identity.tenant, config)
        .await
        .map_err(store_failed)?;
    super::audit::record(
        cx,
        chathub_store::AuditAction::SearchConfigSet,
        None,
        detail,
    )
    .await?;
    Ok(set)
}
