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
use chathub_domain::{ConversationId, ConversationState, Event, EventBody, TenantId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The text search configuration of a tenant that chose none: `simple` (no stemming, no
/// stop words: any language) with `unaccent`.
pub const DEFAULT_SEARCH_CONFIG: &str = "chathub_simple";

/// How long connecting, or waiting for a pooled connection, may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Settings of the archive.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Connections in the pool at most. Default
    /// [`ARCHIVE_POOL_SIZE`](crate::defaults::ARCHIVE_POOL_SIZE).
    pub pool_size: usize,
}

impl ArchiveConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ArchiveConfig {
            url: url.into(),
            pool_size: crate::defaults::ARCHIVE_POOL_SIZE,
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
        Some(_) => StoreError::Internal(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        }),
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
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|_| StoreError::Invalid("archive URL"))?;
        // A stopped or unreachable server must fail a write quickly (events then wait
        // in Redis), not hold the archiver for minutes.
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CALL_TIMEOUT);
        }
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
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Internal(format!("archive pool: {e}")))?;
        Ok(Archive { pool })
    }

    /// Applies the archive's schema migrations up to `version` only: a database as an
    /// earlier release left it (for tests of upgrades).
    pub async fn migrate_to(config: &ArchiveConfig, version: i32) -> Result<(), StoreError> {
        let pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|_| StoreError::Invalid("archive URL"))?;
        let (mut client, connection) = pg.connect(NoTls).await.map_err(from_pg)?;
        let driver = tokio::spawn(connection);
        let migrated = embedded::migrations::runner()
            .set_target(refinery::Target::Version(version))
            .run_async(&mut client)
            .await;
        drop(client);
        let _ = driver.await;
        migrated
            .map(|_| ())
            .map_err(|e| StoreError::Internal(format!("archive migration failed: {e}")))
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
        self.archive_many(&[ArchiveItem {
            tenant,
            conversation,
            state,
            events,
        }])
        .await
    }

    /// Upserts the events and states of many conversations in one transaction of two
    /// statements (whatever the number of events: one round trip each), as
    /// [`Archive::archive`] does for one.
    pub async fn archive_many(&self, items: &[ArchiveItem<'_>]) -> Result<(), StoreError> {
        let rows = items.iter().map(|i| i.events.len()).sum::<usize>();
        let mut columns = EventColumns::with_capacity(rows);
        for item in items {
            for event in item.events {
                columns.push(item.tenant, item.conversation, event)?;
            }
        }
        // One row per conversation, its newest state: an upsert may not touch a row twice.
        let mut states: std::collections::BTreeMap<(&str, &str), &ConversationState> =
            std::collections::BTreeMap::new();
        for item in items {
            if let Some(state) = item.state {
                let key = (item.tenant.as_str(), item.conversation.as_str());
                let newer = states.get(&key).is_none_or(|s| s.seq < state.seq);
                if newer {
                    states.insert(key, state);
                }
            }
        }
        let mut state_columns: (Vec<&str>, Vec<&str>, Vec<serde_json::Value>, Vec<i64>) =
            Default::default();
        for ((tenant, conversation), state) in states {
            let value = serde_json::to_value(state)
                .map_err(|e| StoreError::Internal(format!("encode state: {e}")))?;
            state_columns.0.push(tenant);
            state_columns.1.push(conversation);
            state_columns.2.push(value);
            state_columns.3.push(state.seq as i64);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(from_pg)?;
        if rows > 0 {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO events
                       (tenant, conversation, seq, at, kind, author_role, author_id, text,
                        search_text, body, search_config)
                     SELECT u.*, coalesce(ts.config, 'chathub_simple'::regconfig)
                     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[],
                        $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                        $10::jsonb[])
                        AS u(tenant, conversation, seq, at, kind, author_role, author_id,
                             text, search_text, body)
                     LEFT JOIN tenant_search ts ON ts.tenant = u.tenant
                     WHERE NOT EXISTS (SELECT 1 FROM erasures e
                       WHERE e.tenant = u.tenant AND e.conversation = u.conversation
                         AND u.seq <= e.through_seq)
                       AND NOT EXISTS (SELECT 1 FROM retention r
                         WHERE r.tenant = u.tenant AND u.at < r.before)
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(from_pg)?;
            let c = &columns;
            tx.execute(
                &insert,
                &[
                    &c.tenant,
                    &c.conversation,
                    &c.seq,
                    &c.at,
                    &c.kind,
                    &c.author_role,
                    &c.author_id,
                    &c.text,
                    &c.search_text,
                    &c.body,
                ],
            )
            .await
            .map_err(from_pg)?;
        }
        if !state_columns.0.is_empty() {
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO conversations (tenant, conversation, state, seq)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::int8[])
                       AS u(tenant, conversation, state, seq)
                     WHERE NOT EXISTS (SELECT 1 FROM erasures e
                       WHERE e.tenant = u.tenant AND e.conversation = u.conversation
                         AND u.seq <= e.through_seq)
                     ON CONFLICT (tenant, conversation) DO UPDATE
                       SET state = excluded.state, seq = excluded.seq
                       WHERE conversations.seq < excluded.seq",
                )
                .await
                .map_err(from_pg)?;
            let (t, c, v, q) = &state_columns;
            tx.execute(&upsert, &[t, c, v, q]).await.map_err(from_pg)?;
        }
        if rows > 0 {
            fold_amendments(&tx, items).await?;
        }
        tx.commit().await.map_err(from_pg)
    }

    /// The tenant's retention: deletes every event older than `before` (ms), with its
    /// search entry, and fences them (the archive refuses older events from now on).
    /// Returns the events removed. The fence commits first and the deletion follows in
    /// batches (never one long transaction); a copy that began before the fence and
    /// commits during the deletion can leave an old event behind, which the next sweep
    /// removes.
    pub async fn trim_before(&self, tenant: &TenantId, before: u64) -> Result<u64, StoreError> {
        /// Events deleted per statement.
        const BATCH: i64 = 5000;
        let client = self.client().await?;
        let (t, before) = (tenant.as_str(), before as i64);
        client
            .execute(
                "INSERT INTO retention (tenant, before) VALUES ($1, $2)
                 ON CONFLICT (tenant) DO UPDATE
                   SET before = greatest(retention.before, excluded.before)",
                &[&t, &before],
            )
            .await
            .map_err(from_pg)?;
        let mut removed = 0u64;
        loop {
            let n = client
                .execute(
                    "DELETE FROM events WHERE ctid IN (
                       SELECT ctid FROM events WHERE tenant = $1 AND at < $2 LIMIT $3)",
                    &[&t, &before, &BATCH],
                )
                .await
                .map_err(from_pg)?;
            removed += n;
            if n < BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    /// Erases a conversation's events up to `through` (its erased `seq`), their search
    /// entries and its archived state, and fences them: the archive refuses those events
    /// from now on (a copy in flight cannot bring them back). Returns the events removed
    /// (0 when done before). Idempotent.
    ///
    /// The erasure takes the events table's `SHARE ROW EXCLUSIVE` lock for its
    /// transaction: copies committing meanwhile wait for it (milliseconds: erasures are
    /// rare), and a copy that began before it is committed before it deletes — nothing
    /// slips between the fence and the delete.
    pub async fn erase(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        through: u64,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(from_pg)?;
        let (t, c, through) = (tenant.as_str(), conversation.as_str(), through as i64);
        tx.batch_execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(from_pg)?;
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        tx.execute(
            "INSERT INTO erasures (tenant, conversation, through_seq, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, conversation) DO UPDATE
               SET through_seq = greatest(erasures.through_seq, excluded.through_seq),
                   at = excluded.at",
            &[&t, &c, &through, &at],
        )
        .await
        .map_err(from_pg)?;
        let removed = tx
            .execute(
                "DELETE FROM events WHERE tenant = $1 AND conversation = $2 AND seq <= $3",
                &[&t, &c, &through],
            )
            .await
            .map_err(from_pg)?;
        tx.execute(
            "DELETE FROM conversations WHERE tenant = $1 AND conversation = $2 AND seq <= $3",
            &[&t, &c, &through],
        )
        .await
        .map_err(from_pg)?;
        tx.commit().await.map_err(from_pg)?;
        Ok(removed)
    }

    /// The text search configuration `tenant`'s messages are indexed and searched with
    /// (`chathub_simple` unless set).
    pub async fn search_config(&self, tenant: &TenantId) -> Result<String, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT config::text FROM tenant_search WHERE tenant = $1",
                &[&tenant.as_str()],
            )
            .await
            .map_err(from_pg)?;
        Ok(row.map_or_else(|| DEFAULT_SEARCH_CONFIG.to_owned(), |r| r.get(0)))
    }

    /// Sets `tenant`'s text search configuration (`None`: back to the default), one
    /// PostgreSQL knows (`SELECT cfgname FROM pg_ts_config`: `simple`, `english`,
    /// `french`, …; unknown: [`StoreError::Invalid`]), and re-indexes the tenant's
    /// archived events with it, in one transaction. Returns the configuration now.
    pub async fn set_search_config(
        &self,
        tenant: &TenantId,
        config: Option<&str>,
    ) -> Result<String, StoreError> {
        let config = config.unwrap_or(DEFAULT_SEARCH_CONFIG);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(from_pg)?;
        let known = tx
            .query_opt(
                "SELECT oid::regconfig::text FROM pg_ts_config WHERE cfgname = $1",
                &[&config],
            )
            .await
            .map_err(from_pg)?;
        let Some(name) = known.map(|row| row.get::<_, String>(0)) else {
            return Err(StoreError::Invalid("search configuration"));
        };
        tx.execute(
            "INSERT INTO tenant_search (tenant, config) VALUES ($1, $2::text::regconfig)
             ON CONFLICT (tenant) DO UPDATE SET config = excluded.config",
            &[&tenant.as_str(), &name],
        )
        .await
        .map_err(from_pg)?;
        tx.execute(
            "UPDATE events SET search_config = $2::text::regconfig
             WHERE tenant = $1 AND search_config <> $2::text::regconfig",
            &[&tenant.as_str(), &name],
        )
        .await
        .map_err(from_pg)?;
        tx.commit().await.map_err(from_pg)?;
        Ok(name)
    }

    /// How big the archive's event table is now (for capacity planning).
    pub async fn size(&self) -> Result<ArchiveSize, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM events),
                        pg_relation_size('events'),
                        pg_total_relation_size('events') - pg_relation_size('events')
                            - pg_indexes_size('events'),
                        pg_indexes_size('events')",
                &[],
            )
            .await
            .map_err(from_pg)?;
        let get = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        Ok(ArchiveSize {
            events: get(0),
            table_bytes: get(1),
            toast_bytes: get(2),
            index_bytes: get(3),
        })
    }

    /// Whether PostgreSQL answers (a `SELECT 1` on a pooled connection).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("SELECT 1", &[]).await.map_err(from_pg)?;
        Ok(())
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

/// The archive's event table's size (see [`Archive::size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveSize {
    /// Events archived.
    pub events: u64,
    /// The table's own pages, bytes.
    pub table_bytes: u64,
    /// Its TOAST (long values out of line), bytes.
    pub toast_bytes: u64,
    /// Its indexes (primary key, archive order, the GIN search index), bytes.
    pub index_bytes: u64,
}

/// One conversation's share of [`Archive::archive_many`].
#[derive(Debug, Clone, Copy)]
pub struct ArchiveItem<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The conversation.
    pub conversation: &'a ConversationId,
    /// Its state after the events, when known.
    pub state: Option<&'a ConversationState>,
    /// The events, in any order (each is upserted by its `seq`).
    pub events: &'a [Event],
}

/// The events of one batch, column by column (for `UNNEST`).
struct EventColumns<'a> {
    tenant: Vec<&'a str>,
    conversation: Vec<&'a str>,
    seq: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    author_role: Vec<&'static str>,
    author_id: Vec<&'a str>,
    text: Vec<Option<&'a str>>,
    search_text: Vec<Option<String>>,
    body: Vec<serde_json::Value>,
}

impl<'a> EventColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        EventColumns {
            tenant: Vec::with_capacity(n),
            conversation: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            author_role: Vec::with_capacity(n),
            author_id: Vec::with_capacity(n),
            text: Vec::with_capacity(n),
            search_text: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        tenant: &'a TenantId,
        conversation: &'a ConversationId,
        event: &'a Event,
    ) -> Result<(), StoreError> {
        let crate::indexed::Indexed {
            kind,
            role,
            id,
            text,
        } = crate::indexed::indexed(event);
        let body = serde_json::to_value(event)
            .map_err(|e| StoreError::Internal(format!("encode event: {e}")))?;
        self.tenant.push(tenant.as_str());
        self.conversation.push(conversation.as_str());
        self.seq.push(event.seq as i64);
        self.at.push(event.at as i64);
        self.kind.push(kind);
        self.author_role.push(role);
        self.author_id.push(id);
        self.text.push(text);
        self.search_text.push(text.map(crate::search::index_text));
        self.body.push(body);
        Ok(())
    }
}

/// Rewrites the rows of the messages amended in `items` (or amended before their own
/// copy arrived: two nodes' copies need not arrive in `seq` order), in the copy's
/// transaction: the archive keeps messages as history shows them, a removed one's text
/// gone (and its edits' texts).
async fn fold_amendments(
    tx: &tokio_postgres::Transaction<'_>,
    items: &[ArchiveItem<'_>],
) -> Result<(), StoreError> {
    use chathub_domain::conversation::amend;
    let mut targets: std::collections::BTreeSet<(&str, &str, u64)> = Default::default();
    let (mut t, mut c, mut first): (Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
    for item in items {
        let (tenant, conversation) = (item.tenant.as_str(), item.conversation.as_str());
        for event in item.events {
            if let Some(target) = amend::target_of(&event.body) {
                targets.insert((tenant, conversation, target));
            }
        }
        if let Some(message) = item
            .events
            .iter()
            .find(|e| matches!(e.body, EventBody::Message { .. }))
        {
            t.push(tenant);
            c.push(conversation);
            first.push(message.seq as i64);
        }
    }
    // Amendments already archived of the messages copied now: the index's range after
    // each conversation's first copied message (usually only this copy's own rows).
    let mut late: Vec<(String, String, i64)> = Vec::new();
    if !t.is_empty() {
        let query = tx
            .prepare(
                "SELECT a.tenant, a.conversation, (a.body->>'target')::int8
                   FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(tenant, conversation, first)
                   JOIN events a ON a.tenant = u.tenant AND a.conversation = u.conversation
                    AND a.seq > u.first
                  WHERE a.kind IN ('edited', 'unsent', 'redacted')
                    AND (a.body->>'target')::int8 >= u.first",
            )
            .await
            .map_err(from_pg)?;
        for row in tx.query(&query, &[&t, &c, &first]).await.map_err(from_pg)? {
            late.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    for (tenant, conversation, target) in &late {
        targets.insert((tenant.as_str(), conversation.as_str(), *target as u64));
    }
    for (tenant, conversation, target) in targets {
        refold(tx, tenant, conversation, target).await?;
    }
    Ok(())
}

/// Folds every archived amendment of message `target` into its row (see
/// [`fold_amendments`]).
async fn refold(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    conversation: &str,
    target: u64,
) -> Result<(), StoreError> {
    use chathub_domain::conversation::amend;
    let seq = target as i64;
    let row = tx
        .query_opt(
            "SELECT body FROM events WHERE tenant = $1 AND conversation = $2 AND seq = $3
               FOR UPDATE",
            &[&tenant, &conversation, &seq],
        )
        .await
        .map_err(from_pg)?;
    let Some(row) = row else {
        // Not copied yet (its copy folds it when it comes), or gone (retention).
        return Ok(());
    };
    let mut message = decode_event(row.get(0))?;
    let amendments = tx
        .query(
            "SELECT body FROM events WHERE tenant = $1 AND conversation = $2 AND seq > $3
               AND kind IN ('edited', 'unsent', 'redacted')
               AND (body->>'target')::int8 = $3 ORDER BY seq",
            &[&tenant, &conversation, &seq],
        )
        .await
        .map_err(from_pg)?
        .into_iter()
        .map(|r| decode_event(r.get(0)))
        .collect::<Result<Vec<Event>, StoreError>>()?;
    let before = message.clone();
    match amendments.iter().find(|a| amend::removes(&a.body)) {
        // Removed whatever came in between: the first removal is the tombstone.
        Some(removal) => {
            if !message.amended.as_ref().is_some_and(|a| a.removed()) {
                message.amended = None;
                amend::fold(&mut message, removal);
            }
            tx.execute(
                "UPDATE events SET body = body - 'text'
                  WHERE tenant = $1 AND conversation = $2 AND seq > $3 AND kind = 'edited'
                    AND (body->>'target')::int8 = $3 AND body ? 'text'",
                &[&tenant, &conversation, &seq],
            )
            .await
            .map_err(from_pg)?;
        }
        None => {
            for amendment in &amendments {
                amend::fold(&mut message, amendment);
            }
        }
    }
    if message != before {
        let text = crate::indexed::indexed(&message).text;
        let body = serde_json::to_value(&message)
            .map_err(|e| StoreError::Internal(format!("encode event: {e}")))?;
        tx.execute(
            "UPDATE events SET text = $4, search_text = $5, body = $6
              WHERE tenant = $1 AND conversation = $2 AND seq = $3",
            &[
                &tenant,
                &conversation,
                &seq,
                &text,
                &text.map(crate::search::index_text),
                &body,
            ],
        )
        .await
        .map_err(from_pg)?;
    }
    Ok(())
}

pub(crate) fn decode_event(body: serde_json::Value) -> Result<Event, StoreError> {
    serde_json::from_value(body).map_err(|e| StoreError::corrupt("archived event", e))
}
