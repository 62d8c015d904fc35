//! Search on the archive: the parsed query rendered as a `tsquery` in the tenant's text
//! search configuration, matched against the events' generated `tsvector` (GIN index),
//! newest first by archive order.

use super::{Archive, decode_event, from_pg};
use crate::StoreError;
use crate::search::{MessageKind, ParsedQuery, Search, SearchPage, SearchQuery, Term};
use chathub_domain::TenantId;

fn phrase(term: &Term) -> String {
    // Words hold only letters and digits: nothing to escape inside the quotes.
    let words: Vec<String> = term.words.iter().map(|w| format!("'{w}'")).collect();
    format!("({})", words.join(" <-> "))
}

/// The `to_tsquery` text of a parsed query.
pub(super) fn tsquery(query: &ParsedQuery) -> String {
    let mut parts: Vec<String> = query
        .all_of
        .iter()
        .map(|group| {
            let alternatives: Vec<String> = group.iter().map(phrase).collect();
            format!("({})", alternatives.join(" | "))
        })
        .collect();
    parts.extend(query.none_of.iter().map(|t| format!("!{}", phrase(t))));
    parts.join(" & ")
}

/// Newest messages tried first by a search (see [`Archive::search`]).
const RECENT_WINDOW: usize = 2000;

/// The search statement over `source` (an `events` row source aliased `e`). Parameters:
/// $1 tsquery text, $2 tenant, $3 end user, $4 from, $5 to, $6 kind, $7 agent,
/// $8 status, $9 cursor (archive id), $10 rows to fetch.
fn search_sql(source: &str) -> String {
    format!(
        "WITH cfg AS (
           SELECT coalesce((SELECT config FROM tenant_search WHERE tenant = $2),
                           'chathub_simple'::regconfig) AS config
         )
         SELECT e.conversation, e.body, e.id,
                ts_headline(cfg.config, coalesce(e.text, ''), q,
                            'StartSel=' || chr(1) || ', StopSel=' || chr(2)
                            || ', MaxWords=24, MinWords=12, HighlightAll=false')
         FROM cfg, {source}, to_tsquery(cfg.config, $1) q
         WHERE e.tenant = $2 AND e.search @@ q
           AND ($3::text IS NULL OR e.conversation = $3)
           AND ($4::bigint IS NULL OR e.at >= $4)
           AND ($5::bigint IS NULL OR e.at < $5)
           AND ($6::text IS NULL OR e.body -> 'content' ->> 'kind' = $6)
           AND ($7::text IS NULL OR EXISTS (
                 SELECT 1 FROM events a
                 WHERE a.tenant = e.tenant AND a.conversation = e.conversation
                   AND a.kind = 'message' AND a.author_role IN ('agent', 'admin')
                   AND a.author_id = $7))
           AND ($8::text IS NULL OR EXISTS (
                 SELECT 1 FROM conversations c
                 WHERE c.tenant = e.tenant AND c.conversation = e.conversation
                   AND c.state ->> 'status' = $8))
           AND ($9::bigint IS NULL OR e.id < $9)
         ORDER BY e.id DESC
         LIMIT $10"
    )
}

fn parse_cursor(cursor: &str) -> Result<i64, StoreError> {
    cursor
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(StoreError::Invalid("search cursor"))
}

impl Search for Archive {
    async fn search(
        &self,
        tenant: &TenantId,
        query: SearchQuery,
    ) -> Result<SearchPage, StoreError> {
        let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let clamp = |t: u64| t.min(i64::MAX as u64) as i64;
        let limit = query.limit.max(1);
        let client = self.client().await?;
        let end_user = query.end_user.as_ref().map(|u| u.as_str().to_owned());
        let agent = query.agent.as_ref().map(|a| a.as_str().to_owned());
        let tsquery = tsquery(&query.query);
        let from = query.from.map(clamp);
        let to = query.to.map(clamp);
        let kind = query.kind.map(MessageKind::as_str);
        let status = query.status.map(|s| s.as_str());
        let fetch = (limit as i64).saturating_add(1);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &tsquery,
            &tenant.as_str(),
            &end_user,
            &from,
            &to,
            &kind,
            &agent,
            &status,
            &cursor,
            &fetch,
        ];
        // Common words match a large share of the tenant's messages: the GIN index
        // finds them all and they must be sorted to take the newest. The newest
        // messages (below the cursor) are tried first: if they hold a full page, it is
        // the page (every newer hit is among them). Rare words fall through to the
        // index, which finds their few matches at once.
        let recent = client
            .prepare_cached(&search_sql(&format!(
                "(SELECT * FROM events WHERE tenant = $2 AND ($9::bigint IS NULL OR id < $9)
                  ORDER BY id DESC LIMIT {RECENT_WINDOW}) e"
            )))
            .await
            .map_err(from_pg)?;
        let mut rows = client.query(&recent, &params).await.map_err(from_pg)?;
        if rows.len() <= limit {
            let all = client
                .prepare_cached(&search_sql("events e"))
                .await
                .map_err(from_pg)?;
            rows = client.query(&all, &params).await.map_err(from_pg)?;
        }
        let more = rows.len() > limit;
        let mut hits = Vec::with_capacity(limit.min(rows.len()));
        let mut last = None;
        for row in rows.into_iter().take(limit) {
            let conversation: String = row.get(0);
            let id: i64 = row.get(2);
            let snippet: String = row.get(3);
            hits.push(crate::search::hit(
                &conversation,
                decode_event(row.get(1))?,
                &snippet,
                '\u{1}',
                '\u{2}',
            )?);
            last = Some(id);
        }
        Ok(SearchPage {
            hits,
            next_cursor: if more {
                last.map(|id| id.to_string())
            } else {
                None
            },
        })
    }
}
