//! Cluster mode's archive: PostgreSQL, the record tier behind Redis. Events are upserted
//! by `(tenant, conversation, seq)` (the copy is at least once, so the table holds each
//! event exactly once); deep history, search and reports read from it.
//!
//! # Layout
//! - this file: [`Archive`] (pool, migrations, writes, history).
//! - `search`: full-text search (`tsvector`, GIN index, `chathub_simple` configuration:
//!   `simple` with unaccent).
//! - `report`: conversation cycles streamed from the events.

mod report;
mod search;

use crate::{HistoryRange, HistorySlice, StoreError};
use chathub_domain::{
    ConversationId, ConversationState, Event, EventBody, MessageContent, TenantId,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Settings of the archive.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Connections in the pool at most. Default 8.
    pub pool_size: usize,
}

impl ArchiveConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ArchiveConfig {
            url: url.into(),
            pool_size: 8,
        }
    }
}

/// The archive: a pool of connections to PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    pool: Pool,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").finish_non_exhaustive()
    }
}

/// Classifies a PostgreSQL error: connection trouble, shutdowns and lack of resources are
/// outages; anything the server refused for good (a constraint, a bad statement) is a
/// bug.
pub(crate) fn from_pg(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(|c| c.code()) {
        // 08: connection exception; 53: insufficient resources; 57: operator
        // intervention (shutdown, cancel); 40001/40P01: serialization, deadlock.
        Some(code)
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01" =>
        {
            StoreError::Unavailable {
                source: Box::new(e),
            }
        }
        Some(_) => StoreError::Internal(e.to_string()),
        None => StoreError::Unavailable {
            source: Box::new(e),
        },
    }
}

fn from_pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => from_pg(e),
        other => StoreError::Unavailable {
            source: Box::new(other),
        },
    }
}

impl Archive {
    /// Connects, and applies the schema migrations the database lacks (versioned files
    /// in `migrations/postgres`, recorded in `refinery_schema_history`).
    pub async fn connect(config: &ArchiveConfig) -> Result<Archive, StoreError> {
        let pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|_| StoreError::Invalid("archive URL"))?;
        let (mut client, connection) = pg.connect(NoTls).await.map_err(from_pg)?;
        let driver = tokio::spawn(connection);
        let migrated = embedded::migrations::runner().run_async(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated.map_err(|e| StoreError::Internal(format!("archive migration failed: {e}")))?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Internal(format!("archive pool: {e}")))?;
        Ok(Archive { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(from_pool)
    }

    /// Upserts a conversation's events (an event already archived is left as it is) and,
    /// when given, its state (kept only if newer than the archived one), in one
    /// transaction.
    pub async fn archive(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        state: Option<&ConversationState>,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(from_pg)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO events
                   (tenant, conversation, seq, at, kind, author_role, author_id, text,
                    search_text, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(from_pg)?;
        for event in events {
            let (kind, author, text) = match &event.body {
                EventBody::Message {
                    author, content, ..
                } => {
                    let text = match content {
                        MessageContent::Text { text } => text.as_str(),
                        MessageContent::Engagement { engagement } => engagement.name.as_str(),
                    };
                    ("message", author, Some(text))
                }
                EventBody::Status { by, .. } => ("status", by, None),
            };
            let search_text = text.map(crate::search::index_text);
            let body = serde_json::to_value(event)
                .map_err(|e| StoreError::Internal(format!("encode event: {e}")))?;
            tx.execute(
                &insert,
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &(event.seq as i64),
                    &(event.at as i64),
                    &kind,
                    &author.role.as_str(),
                    &author.id,
                    &text,
                    &search_text,
                    &body,
                ],
            )
            .await
            .map_err(from_pg)?;
        }
        if let Some(state) = state {
            let value = serde_json::to_value(state)
                .map_err(|e| StoreError::Internal(format!("encode state: {e}")))?;
            tx.execute(
                "INSERT INTO conversations (tenant, conversation, state, seq)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, conversation) DO UPDATE
                   SET state = excluded.state, seq = excluded.seq
                   WHERE conversations.seq < excluded.seq",
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &value,
                    &(state.seq as i64),
                ],
            )
            .await
            .map_err(from_pg)?;
        }
        tx.commit().await.map_err(from_pg)
    }

    /// A slice of a conversation's archived history, oldest first.
    pub async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
    ) -> Result<HistorySlice, StoreError> {
        let client = self.client().await?;
        let (sql, bound, limit, newest_first) = match range {
            HistoryRange::Latest { limit } => (
                "SELECT body FROM events WHERE tenant = $1 AND conversation = $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
                i64::MAX,
                limit,
                true,
            ),
            HistoryRange::Before { before, limit } => (
                "SELECT body FROM events WHERE tenant = $1 AND conversation = $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
                before.min(i64::MAX as u64) as i64,
                limit,
                true,
            ),
            HistoryRange::After { after, limit } => (
                "SELECT body FROM events WHERE tenant = $1 AND conversation = $2 AND seq > $3
                 ORDER BY seq ASC LIMIT $4",
                after.min(i64::MAX as u64) as i64,
                limit,
                false,
            ),
        };
        let rows = client
            .query(
                sql,
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &bound,
                    &(limit as i64).saturating_add(1),
                ],
            )
            .await
            .map_err(from_pg)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(decode_event(row.get(0))?);
        }
        let has_more = events.len() > limit;
        events.truncate(limit);
        if newest_first {
            events.reverse();
        }
        Ok(HistorySlice { events, has_more })
    }
}

pub(crate) fn decode_event(body: serde_json::Value) -> Result<Event, StoreError> {
    serde_json::from_value(body).map_err(|e| StoreError::corrupt("archived event", e))
}
