//! Reads served from the file: a small pool of read connections (WAL lets them read
//! while the writer commits), each query on tokio's blocking pool.

use super::from_sqlite;
use crate::{HistoryRange, HistorySlice, StoreError};
use chathub_domain::{ConversationId, Event, TenantId};
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The read connections.
pub(super) struct Readers {
    idle: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
}

impl Readers {
    /// Opens `count` read-only connections to `path`.
    pub(super) fn open(path: &Path, count: usize) -> Result<Readers, StoreError> {
        let idle = (0..count)
            .map(|_| reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readers {
            idle: Arc::new(Mutex::new(idle)),
            path: path.to_owned(),
        })
    }

    /// Runs `query` on an idle connection (a fresh one when all are busy) on the
    /// blocking pool.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let idle = self.idle.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let taken = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match taken {
                Some(conn) => conn,
                None => reader(&path)?,
            };
            let result = query(&conn);
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < 16 {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

fn reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(from_sqlite)?;
    Ok(conn)
}

pub(super) fn decode_event(body: &str) -> Result<Event, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::corrupt("event", e))
}

/// A slice of history from the `events` table, oldest first.
/// How many events of a conversation the file keeps.
pub(super) fn events_before(
    conn: &Connection,
    tenant: &TenantId,
    before: u64,
) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT count(*) FROM events WHERE tenant = ?1 AND at < ?2")
        .and_then(|mut s| {
            s.query_row(rusqlite::params![tenant.as_str(), before as i64], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n.max(0) as u64)
        .map_err(super::from_sqlite)
}

pub(super) fn event_count(
    conn: &Connection,
    tenant: &TenantId,
    conversation: &ConversationId,
) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT count(*) FROM events WHERE tenant = ?1 AND conversation = ?2")
        .and_then(|mut s| {
            s.query_row(
                rusqlite::params![tenant.as_str(), conversation.as_str()],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n.max(0) as u64)
        .map_err(super::from_sqlite)
}

pub(super) fn history(
    conn: &Connection,
    tenant: &TenantId,
    conversation: &ConversationId,
    range: HistoryRange,
) -> Result<HistorySlice, StoreError> {
    let (t, c) = (tenant.as_str(), conversation.as_str());
    // One more row than asked tells whether more lie beyond.
    let (sql, bound, limit, newest_first) = match range {
        HistoryRange::Latest { limit } => (
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 AND seq < ?3
             ORDER BY seq DESC LIMIT ?4",
            i64::MAX,
            limit,
            true,
        ),
        HistoryRange::Before { before, limit } => (
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 AND seq < ?3
             ORDER BY seq DESC LIMIT ?4",
            before.min(i64::MAX as u64) as i64,
            limit,
            true,
        ),
        HistoryRange::After { after, limit } => (
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 AND seq > ?3
             ORDER BY seq ASC LIMIT ?4",
            after.min(i64::MAX as u64) as i64,
            limit,
            false,
        ),
    };
    let mut stmt = conn.prepare_cached(sql).map_err(from_sqlite)?;
    let rows = stmt
        .query_map(
            params![t, c, bound, (limit as i64).saturating_add(1)],
            |r| r.get::<_, String>(0),
        )
        .map_err(from_sqlite)?;
    let mut events = Vec::with_capacity(limit.min(1024) + 1);
    for body in rows {
        events.push(decode_event(&body.map_err(from_sqlite)?)?);
    }
    let has_more = events.len() > limit;
    events.truncate(limit);
    if newest_first {
        events.reverse();
    }
    Ok(HistorySlice { events, has_more })
}

/// Feeds the tenant's events from `from` on, in `(conversation, seq)` order, through the
/// cycle builder and sends each finished row (blocking while the receiver is behind).
pub(super) fn cycles(
    conn: &Connection,
    tenant: &TenantId,
    from: u64,
    to: u64,
    rows: &tokio::sync::mpsc::Sender<crate::report::CycleRow>,
) -> Result<(), StoreError> {
    let clamp = |t: u64| t.min(i64::MAX as u64) as i64;
    let mut stmt = conn
        .prepare_cached(
            "SELECT conversation, body FROM events
             WHERE tenant = ?1 AND at >= ?2
             ORDER BY conversation, seq",
        )
        .map_err(from_sqlite)?;
    let events = stmt
        .query_map(params![tenant.as_str(), clamp(from)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(from_sqlite)?;
    let mut cycles = crate::report::Cycles::new(from, to);
    for row in events {
        let (conversation, body) = row.map_err(from_sqlite)?;
        if let Some(done) = cycles.push_stored(&conversation, &decode_event(&body)?)?
            && rows.blocking_send(done).is_err()
        {
            return Ok(());
        }
    }
    if let Some(open) = cycles.finish() {
        let _ = rows.blocking_send(open);
    }
    Ok(())
}
