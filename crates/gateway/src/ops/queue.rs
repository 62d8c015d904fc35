//! The tenant's queue: `list` (one status, paged) and `inbox` (its changes since a
//! cursor, replayed as `queue` frames so a console catches up).

use super::{Connection, Ctx, Failure, store_failed};
use crate::Backend;
use crate::auth::now_millis;
use chathub_domain::{Participant, Presence, Status};
use chathub_ownership::frames::queue_item;
use chathub_protocol::{InboxReply, ListPage, QueueItem, Reply, ServerFrame};
use chathub_store::{ConversationStore, WorkspaceStore};

/// Queue changes read per round trip while catching a console up.
const INBOX_CHUNK: usize = 256;

/// `list`.
pub(crate) async fn list<K: Backend>(
    cx: &Ctx<'_, K>,
    status: Status,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<Reply, Failure> {
    cx.require_agent("list")?;
    let limit = cx.page_size(limit)?;
    let page = cx
        .node
        .backend
        .store()
        .list(&cx.identity.tenant, status, limit, cursor.as_deref())
        .await
        .map_err(store_failed)?;
    let now = now_millis();
    let mut items: Vec<QueueItem> = page
        .items
        .into_iter()
        .map(|entry| queue_item(entry, None))
        .collect();
    for item in items.iter_mut().filter(|i| i.status == Status::Unanswered) {
        item.waiting_ms = Some(now.saturating_sub(item.since));
    }
    if status == Status::Active && !items.is_empty() {
        flag_absent_owners(cx, &mut items, now).await?;
    }
    Ok(Reply::List(ListPage {
        status,
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Marks active conversations whose owner has had no live session for longer than
/// `owner_absent_after`.
async fn flag_absent_owners<K: Backend>(
    cx: &Ctx<'_, K>,
    items: &mut [QueueItem],
    now: u64,
) -> Result<(), Failure> {
    let presence = cx
        .node
        .backend
        .workspace()
        .presence(&cx.identity.tenant, now)
        .await
        .map_err(store_failed)?;
    let limit = cx.node.config.owner_absent_after.as_millis() as u64;
    for item in items.iter_mut() {
        let Some(owner) = &item.owner else { continue };
        let who = Participant::agent(owner).key();
        let absent = match presence.iter().find(|p| p.who == who) {
            Some(p) => p.presence == Presence::Offline && now.saturating_sub(p.last_seen) > limit,
            None => true,
        };
        item.owner_absent = Some(absent);
    }
    Ok(())
}

/// `inbox`: replays the tenant's queue changes after `since` as `queue` frames (live ones
/// keep coming meanwhile; consoles keep the later `seq` per conversation).
pub(crate) async fn inbox<K: Backend>(
    cx: &Ctx<'_, K>,
    conn: &mut impl Connection,
    since: Option<String>,
) -> Result<Reply, Failure> {
    cx.require_agent("inbox")?;
    let mut after = since;
    let mut replayed = 0;
    let mut truncated = None;
    let latest = loop {
        let slice = cx
            .node
            .backend
            .store()
            .inbox_after(&cx.identity.tenant, after.as_deref(), INBOX_CHUNK)
            .await
            .map_err(store_failed)?;
        truncated.get_or_insert(slice.truncated);
        for change in slice.items {
            after = Some(change.cursor.clone());
            replayed += 1;
            let item = queue_item(change.entry, Some(change.cursor));
            conn.feed(&ServerFrame::Queue(item)).await?;
        }
        if !slice.has_more || after.is_none() {
            break slice.latest;
        }
    };
    Ok(Reply::Inbox(InboxReply {
        cursor: latest.or(after),
        replayed,
        history_truncated: truncated.unwrap_or(false),
    }))
}
