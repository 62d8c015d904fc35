//! The writer thread: owns the one write connection and commits commands in groups.

use super::{Batch, SyncMode, Write, from_sqlite};
use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;
use tokio::sync::mpsc;

/// Expired send answers are swept every this many groups.
const SWEEP_SENDS_EVERY: u64 = 1024;

/// Opens the write connection: WAL (readers never block the writer), the sync mode, and
/// a busy timeout for the rare checkpoint contention.
pub(super) fn connect(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(from_sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(from_sqlite)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(from_sqlite)?;
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(from_sqlite)?;
    Ok(conn)
}

/// Starts the writer thread; it ends when every [`Journal`](super::Journal) is gone.
pub(super) fn start(
    conn: Connection,
    from_callers: mpsc::Receiver<Batch>,
    max_group: usize,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("chathub-sqlite-writer".into())
        .spawn(move || run(conn, from_callers, max_group))
        .map(|_| ())
        .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))
}

fn run(mut conn: Connection, mut from_callers: mpsc::Receiver<Batch>, max_group: usize) {
    let mut groups = 0u64;
    let mut group = Vec::with_capacity(max_group);
    while let Some(first) = from_callers.blocking_recv() {
        group.push(first);
        // Whatever queued up while the previous group committed joins this one.
        while group.len() < max_group {
            match from_callers.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        groups += 1;
        let sweep = groups.is_multiple_of(SWEEP_SENDS_EVERY);
        let results = commit_group(&mut conn, &group, sweep);
        for (batch, result) in group.drain(..).zip(results) {
            // A caller that gave up waiting has nobody to tell.
            let _ = batch.done.send(result);
        }
    }
}

/// Commits a group in one transaction, each command under its own savepoint so one
/// failing command does not take the others down. Returns one result per command.
fn commit_group(
    conn: &mut Connection,
    group: &[Batch],
    sweep: bool,
) -> Vec<Result<(), StoreError>> {
    let outcome = (|| {
        let mut tx = conn.transaction().map_err(from_sqlite)?;
        let mut results = Vec::with_capacity(group.len());
        for batch in group {
            let mut sp = tx.savepoint().map_err(from_sqlite)?;
            match batch.writes.iter().try_for_each(|w| apply(&sp, w)) {
                Ok(()) => {
                    sp.commit().map_err(from_sqlite)?;
                    results.push(Ok(()));
                }
                Err(e) => {
                    sp.rollback().map_err(from_sqlite)?;
                    results.push(Err(e));
                }
            }
        }
        if sweep {
            sweep_sends(&tx)?;
        }
        tx.commit().map_err(from_sqlite)?;
        Ok::<_, StoreError>(results)
    })();
    match outcome {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "data directory commit failed");
            group
                .iter()
                .map(|_| {
                    Err(StoreError::Unavailable {
                        source: e.to_string().into(),
                    })
                })
                .collect()
        }
    }
}

fn sweep_sends(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    tx.prepare_cached("DELETE FROM sends WHERE expires_at <= ?1")
        .and_then(|mut s| s.execute(params![now]))
        .map(|_| ())
        .map_err(from_sqlite)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

/// Rewrites the row of the message `amendment` is about (and, for a removal, the rows
/// of its earlier edits): the text is gone from the file, not only hidden.
fn fold_into_target(
    tx: &Connection,
    tenant: &chathub_domain::TenantId,
    conversation: &chathub_domain::ConversationId,
    amendment: &chathub_domain::Event,
) -> Result<(), StoreError> {
    use chathub_domain::conversation::amend;
    let Some(target) = amend::target_of(&amendment.body) else {
        return Ok(());
    };
    let body: Option<String> = tx
        .prepare_cached(
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 AND seq = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![tenant.as_str(), conversation.as_str(), target as i64],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(from_sqlite)?;
    let Some(body) = body else {
        // Gone already (retention): nothing to rewrite.
        return Ok(());
    };
    let mut message: chathub_domain::Event =
        serde_json::from_str(&body).map_err(|e| StoreError::corrupt("event", e))?;
    if amend::fold(&mut message, amendment) {
        rewrite_row(tx, tenant, conversation, &message)?;
    }
    if amend::removes(&amendment.body) {
        let edits: Vec<String> = tx
            .prepare_cached(
                "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2
                   AND seq > ?3 AND kind = 'edited' AND json_extract(body, '$.target') = ?3",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![tenant.as_str(), conversation.as_str(), target as i64],
                    |r| r.get(0),
                )?
                .collect()
            })
            .map_err(from_sqlite)?;
        for body in edits {
            let mut edit: chathub_domain::Event =
                serde_json::from_str(&body).map_err(|e| StoreError::corrupt("event", e))?;
            if amend::scrub_edit(&mut edit) {
                rewrite_row(tx, tenant, conversation, &edit)?;
            }
        }
    }
    Ok(())
}

/// Writes `event`'s row again (its body and indexed text).
fn rewrite_row(
    tx: &Connection,
    tenant: &chathub_domain::TenantId,
    conversation: &chathub_domain::ConversationId,
    event: &chathub_domain::Event,
) -> Result<(), StoreError> {
    let text = crate::indexed::indexed(event).text;
    let body = json(event)?;
    tx.prepare_cached(
        "UPDATE events SET text = ?4, body = ?5
          WHERE tenant = ?1 AND conversation = ?2 AND seq = ?3",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant.as_str(),
            conversation.as_str(),
            event.seq as i64,
            text,
            body
        ])
    })
    .map(|_| ())
    .map_err(from_sqlite)
}

fn apply(tx: &Connection, write: &Write) -> Result<(), StoreError> {
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map(|_| ())
            .map_err(from_sqlite)
    };
    match write {
        Write::State {
            tenant,
            conversation,
            state,
            at,
        } => run(
            "INSERT INTO conversations (tenant, conversation, state, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant, conversation)
             DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            params![
                tenant.as_str(),
                conversation.as_str(),
                json(state)?,
                *at as i64
            ],
        ),
        Write::Events {
            tenant,
            conversation,
            events,
        } => {
            for event in events {
                let crate::indexed::Indexed {
                    kind,
                    role,
                    id,
                    text,
                } = crate::indexed::indexed(event);
                run(
                    "INSERT INTO events
                       (tenant, conversation, seq, at, kind, author_role, author_id, text, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT DO NOTHING",
                    params![
                        tenant.as_str(),
                        conversation.as_str(),
                        event.seq as i64,
                        event.at as i64,
                        kind,
                        role,
                        id,
                        text,
                        json(event)?
                    ],
                )?;
                if chathub_domain::conversation::amend::target_of(&event.body).is_some() {
                    fold_into_target(tx, tenant, conversation, event)?;
                }
            }
            Ok(())
        }
        Write::Send {
            tenant,
            conversation,
            author,
            client_msg_id,
            receipt,
            expires,
        } => run(
            "INSERT OR REPLACE INTO sends
               (tenant, conversation, author, client_msg_id, receipt, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tenant.as_str(),
                conversation.as_str(),
                author,
                client_msg_id,
                json(receipt)?,
                *expires as i64
            ],
        ),
        Write::Read {
            tenant,
            conversation,
            participant,
            seq,
        } => run(
            "INSERT INTO read_marks (tenant, conversation, participant, seq)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant, conversation, participant)
             DO UPDATE SET seq = max(seq, excluded.seq)",
            params![
                tenant.as_str(),
                conversation.as_str(),
                participant,
                *seq as i64
            ],
        ),
        Write::Queue { tenant, entry } => run(
            "INSERT OR REPLACE INTO queue (tenant, conversation, entry) VALUES (?1, ?2, ?3)",
            params![tenant.as_str(), entry.conversation.as_str(), json(entry)?],
        ),
        Write::Inbox {
            tenant,
            position,
            entry,
            keep,
        } => {
            run(
                "INSERT OR REPLACE INTO inbox (tenant, position, entry) VALUES (?1, ?2, ?3)",
                params![tenant.as_str(), *position as i64, json(entry)?],
            )?;
            if *position > *keep {
                run(
                    "DELETE FROM inbox WHERE tenant = ?1 AND position <= ?2",
                    params![tenant.as_str(), (*position - *keep) as i64],
                )?;
            }
            Ok(())
        }
        Write::Workspace {
            tenant,
            kind,
            key,
            value: Some(value),
        } => run(
            "INSERT OR REPLACE INTO workspace (tenant, kind, key, value) VALUES (?1, ?2, ?3, ?4)",
            params![tenant.as_str(), kind, key, value],
        ),
        Write::Workspace {
            tenant,
            kind,
            key,
            value: None,
        } => run(
            "DELETE FROM workspace WHERE tenant = ?1 AND kind = ?2 AND key = ?3",
            params![tenant.as_str(), kind, key],
        ),
        Write::JobAdded { job, due } => run(
            "INSERT OR IGNORE INTO webhook_jobs (tenant, conversation, seq, due_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                job.tenant.as_str(),
                job.conversation.as_str(),
                job.seq as i64,
                *due as i64
            ],
        ),
        Write::Erase {
            tenant,
            conversation,
            state,
            at,
        } => {
            let (t, c) = (tenant.as_str(), conversation.as_str());
            run(
                "INSERT INTO conversations (tenant, conversation, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, conversation)
                 DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![t, c, json(state)?, *at as i64],
            )?;
            // Each deletion from `events` takes its search entry with it (a trigger).
            for sql in [
                "DELETE FROM events WHERE tenant = ?1 AND conversation = ?2",
                "DELETE FROM read_marks WHERE tenant = ?1 AND conversation = ?2",
                "DELETE FROM sends WHERE tenant = ?1 AND conversation = ?2",
                "DELETE FROM queue WHERE tenant = ?1 AND conversation = ?2",
                "DELETE FROM inbox WHERE tenant = ?1
                   AND json_extract(entry, '$.conversation') = ?2",
                "DELETE FROM webhook_jobs WHERE tenant = ?1 AND conversation = ?2",
            ] {
                run(sql, params![t, c])?;
            }
            Ok(())
        }
        Write::Trim { tenant, before } => {
            // `events_by_time` finds them; the search entries go by the trigger.
            let (t, before) = (tenant.as_str(), *before as i64);
            run(
                "DELETE FROM events WHERE tenant = ?1 AND at < ?2",
                params![t, before],
            )?;
            run(
                "DELETE FROM inbox WHERE tenant = ?1
                   AND json_extract(entry, '$.updated') < ?2",
                params![t, before],
            )
        }
        Write::JobDone { job } => run(
            "DELETE FROM webhook_jobs WHERE tenant = ?1 AND conversation = ?2 AND seq = ?3",
            params![
                job.tenant.as_str(),
                job.conversation.as_str(),
                job.seq as i64
            ],
        ),
    }
}
