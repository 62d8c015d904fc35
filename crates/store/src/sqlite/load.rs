//! Reading the data directory back into memory at start.

use super::read::decode_event;
use super::{Opened, from_sqlite};
use crate::memory::ConversationRecord;
use crate::rows::{QueueEntry, Receipt};
use crate::{StoreError, WebhookJob};
use chathub_domain::{ConversationId, ConversationState, Participant, TenantId};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::VecDeque;

/// The directory's history id, made (and kept) on first open.
pub(super) fn history_id(conn: &Connection) -> Result<String, StoreError> {
    let existing: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'history_id'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(from_sqlite)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('history_id', ?1)",
        params![id],
    )
    .map_err(from_sqlite)?;
    Ok(id)
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(what, e))
}

fn ids(tenant: &str, conversation: &str) -> Result<(TenantId, ConversationId), StoreError> {
    Ok((
        TenantId::new(tenant).map_err(|e| StoreError::corrupt("tenant id", e))?,
        ConversationId::new(conversation).map_err(|e| StoreError::corrupt("conversation id", e))?,
    ))
}

/// Fills the memory stores of `opened` from the file: every conversation's state, its
/// latest events (memory's window), read marks and unexpired send answers; the queues,
/// the inboxes' retained changes, the workspace and the pending jobs.
pub(super) fn into_memory(conn: &Connection, opened: &Opened) -> Result<(), StoreError> {
    let sql = |e| from_sqlite(e);
    let window = opened.store.config().history_max_len.max(1) as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);

    let mut conversations = conn
        .prepare("SELECT tenant, conversation, state FROM conversations")
        .map_err(sql)?;
    let mut latest = conn
        .prepare(
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2
             ORDER BY seq DESC LIMIT ?3",
        )
        .map_err(sql)?;
    let mut marks = conn
        .prepare(
            "SELECT participant, seq FROM read_marks WHERE tenant = ?1 AND conversation = ?2
             ORDER BY participant",
        )
        .map_err(sql)?;
    let mut sends = conn
        .prepare(
            "SELECT author, client_msg_id, receipt, expires_at FROM sends
             WHERE tenant = ?1 AND conversation = ?2 AND expires_at > ?3",
        )
        .map_err(sql)?;
    let rows = conversations
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql)?;
    for row in rows {
        let (t, c, state) = row.map_err(sql)?;
        let (tenant, conversation) = ids(&t, &c)?;
        let mut record = ConversationRecord {
            state: decode::<ConversationState>("conversation state", &state)?,
            ..ConversationRecord::default()
        };
        let mut history = VecDeque::new();
        for body in latest
            .query_map(params![t, c, window], |r| r.get::<_, String>(0))
            .map_err(sql)?
        {
            history.push_front(decode_event(&body.map_err(sql)?)?);
        }
        record.history = history;
        for mark in marks
            .query_map(params![t, c], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sql)?
        {
            let (who, seq) = mark.map_err(sql)?;
            let who = Participant::parse(&who)
                .ok_or_else(|| StoreError::corrupt("read mark", format!("participant {who}")))?;
            record.reads.push((who, seq as u64));
        }
        for send in sends
            .query_map(params![t, c, now as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql)?
        {
            let (author, id, receipt, expires) = send.map_err(sql)?;
            let receipt: Receipt = decode("send receipt", &receipt)?;
            record.dedup.insert((author, id), (receipt, expires as u64));
        }
        opened.store.restore(&tenant, &conversation, record);
    }

    let mut queue = conn
        .prepare("SELECT tenant, entry FROM queue")
        .map_err(sql)?;
    for row in queue
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql)?
    {
        let (t, entry) = row.map_err(sql)?;
        let tenant = TenantId::new(t).map_err(|e| StoreError::corrupt("tenant id", e))?;
        let entry: QueueEntry = decode("queue entry", &entry)?;
        opened.store.upsert_queue(&tenant, entry);
    }

    let mut inbox = conn
        .prepare("SELECT tenant, position, entry FROM inbox ORDER BY tenant, position")
        .map_err(sql)?;
    for row in inbox
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql)?
    {
        let (t, position, entry) = row.map_err(sql)?;
        let tenant = TenantId::new(t).map_err(|e| StoreError::corrupt("tenant id", e))?;
        let entry: QueueEntry = decode("inbox entry", &entry)?;
        opened.store.insert_inbox(&tenant, position as u64, entry);
    }

    let mut workspace = conn
        .prepare("SELECT tenant, kind, key, value FROM workspace ORDER BY tenant, kind, key")
        .map_err(sql)?;
    for row in workspace
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(sql)?
    {
        let (t, kind, key, value) = row.map_err(sql)?;
        let tenant = TenantId::new(t).map_err(|e| StoreError::corrupt("tenant id", e))?;
        opened.workspace.restore(&tenant, &kind, &key, &value)?;
    }

    let mut jobs = conn
        .prepare("SELECT tenant, conversation, seq, due_at FROM webhook_jobs")
        .map_err(sql)?;
    for row in jobs
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sql)?
    {
        let (t, c, seq, due) = row.map_err(sql)?;
        let (tenant, conversation) = ids(&t, &c)?;
        let job = WebhookJob {
            tenant,
            conversation,
            seq: seq as u64,
        };
        opened.jobs.add(job, due as u64);
    }
    Ok(())
}
