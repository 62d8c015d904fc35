//! The embedded backend's data: everything in process memory, one lock per conversation.

use crate::rows::{InboxEntry, QueueEntry, Receipt};
use crate::sqlite::{Journal, Write};
use crate::{
    ConversationStore, HistoryRange, HistorySlice, InboxSlice, QueuePage, StoreError, page,
    parse_cursor, sort_time,
};
use chathub_domain::{ConversationId, ConversationState, Event, Participant, Status, TenantId};
use dashmap::DashMap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use tokio::sync::Mutex;

/// Settings of the memory store.
#[derive(Debug, Clone)]
pub struct MemoryStoreConfig {
    /// Events kept per conversation; older ones are trimmed (clients resuming from before
    /// them are told `history_truncated`). Default 10 000.
    pub history_max_len: usize,
    /// How long a `client_msg_id` is remembered for deduplication, in ms. Default 10 min.
    pub dedup_window_ms: u64,
    /// Queue changes kept per tenant for consoles catching up. Default 10 000.
    pub inbox_max_len: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            history_max_len: crate::defaults::HISTORY_MAX_LEN,
            dedup_window_ms: crate::defaults::DEDUP_WINDOW_SECS * 1000,
            inbox_max_len: crate::defaults::INBOX_MAX_LEN,
        }
    }
}

/// Everything about one conversation, guarded by one lock.
#[derive(Debug, Default)]
pub struct ConversationRecord {
    /// Current state.
    pub state: ConversationState,
    /// Retained events, oldest first.
    pub history: VecDeque<Event>,
    /// Acks of recent sends by `(author id, client_msg_id)`, with their expiry (ms).
    pub dedup: HashMap<(String, String), (Receipt, u64)>,
    /// Read marks.
    pub reads: Vec<(Participant, u64)>,
}

impl ConversationRecord {
    /// Appends events, trimming the oldest past `max_len`.
    /// An amendment (edit, unsend, redact) rewrites its message where memory holds it
    /// (and, for a removal, the texts of its earlier edits): history shows the current
    /// form.
    pub fn append(&mut self, events: &[Event], max_len: usize) {
        use chathub_domain::conversation::amend;
        for event in events {
            if let Some(target) = amend::target_of(&event.body) {
                self.fold(target, event);
            }
        }
        self.history.extend(events.iter().cloned());
        while self.history.len() > max_len {
            self.history.pop_front();
        }
    }

    /// The retained event `seq`, if memory holds it.
    pub fn event(&self, seq: u64) -> Option<&Event> {
        let first = self.history.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.history.get(i).filter(|e| e.seq == seq)
    }

    fn fold(&mut self, target: u64, amendment: &Event) {
        // The message and its edits all come after `target` in the window.
        let skip = self
            .history
            .front()
            .and_then(|e| usize::try_from(target.saturating_sub(e.seq)).ok())
            .unwrap_or(0);
        chathub_domain::conversation::amend::fold_into(
            self.history.iter_mut().skip(skip),
            amendment,
        );
    }

    /// Remembers the ack of a send until `expires`; forgets expired acks first when the
    /// map grows, so memory stays bounded by the send rate times the window.
    pub fn remember(&mut self, key: (String, String), ack: Receipt, now: u64, expires: u64) {
        if self.dedup.len() >= 256 {
            self.dedup.retain(|_, (_, exp)| *exp > now);
        }
        self.dedup.insert(key, (ack, expires));
    }

    /// The remembered ack for `key`, if not expired.
    pub fn recall(&self, key: &(String, String), now: u64) -> Option<&Receipt> {
        self.dedup
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(ack, _)| ack)
    }
}

type Key = (TenantId, ConversationId);

/// The memory store. Cheap to clone (shared inside).
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    config: MemoryStoreConfig,
    conversations: DashMap<Key, Arc<Mutex<ConversationRecord>>>,
    queues: DashMap<TenantId, Arc<RwLock<HashMap<ConversationId, QueueEntry>>>>,
    inboxes: DashMap<TenantId, Arc<RwLock<InboxLog>>>,
    /// The data directory every change is written to before memory changes (`None`:
    /// memory only, `--ephemeral`).
    journal: Option<Journal>,
}

/// A tenant's recent queue changes, numbered from 1.
#[derive(Default)]
struct InboxLog {
    /// Position of the newest entry (0: none yet).
    last: u64,
    entries: VecDeque<(u64, QueueEntry)>,
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new(config: MemoryStoreConfig) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// A store whose changes are kept in `journal` (filled from it by
    /// [`crate::sqlite::open`]).
    pub fn journaled(config: MemoryStoreConfig, journal: Journal) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                config,
                journal: Some(journal),
                ..Inner::default()
            }),
        }
    }

    /// The store's settings.
    pub fn config(&self) -> &MemoryStoreConfig {
        &self.inner.config
    }

    /// The data directory's journal, when the store keeps its data.
    pub fn journal(&self) -> Option<&Journal> {
        self.inner.journal.as_ref()
    }

    /// Puts a conversation read back from the data directory in place.
    pub fn restore(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        record: ConversationRecord,
    ) {
        self.inner.conversations.insert(
            (tenant.clone(), conversation.clone()),
            Arc::new(Mutex::new(record)),
        );
    }

    /// The record of a conversation, created empty if it has none yet. Writers hold its
    /// lock across the whole command so that state, history and publish stay in order.
    pub fn record(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Arc<Mutex<ConversationRecord>> {
        let key = (tenant.clone(), conversation.clone());
        if let Some(r) = self.inner.conversations.get(&key) {
            return r.clone();
        }
        self.inner.conversations.entry(key).or_default().clone()
    }

    fn existing(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Option<Arc<Mutex<ConversationRecord>>> {
        self.inner
            .conversations
            .get(&(tenant.clone(), conversation.clone()))
            .map(|r| r.clone())
    }

    /// Puts `item` into the tenant's queue index unless the index already reflects a
    /// later `seq` (idempotent, order-insensitive). Returns whether it changed.
    pub fn upsert_queue(&self, tenant: &TenantId, item: QueueEntry) -> bool {
        let queue = self.inner.queues.entry(tenant.clone()).or_default().clone();
        let mut queue = queue.write().unwrap_or_else(|p| p.into_inner());
        match queue.get(&item.conversation) {
            Some(old) if old.seq >= item.seq => false,
            _ => {
                queue.insert(item.conversation.clone(), item);
                true
            }
        }
    }

    /// The tenant's retention: drops every event older than `before` (ms) from memory
    /// and the data directory (with their search entries), and the inbox changes older
    /// than it. The data directory goes first: memory never shows less than the file.
    pub async fn trim_before(
        &self,
        tenant: &TenantId,
        before: u64,
    ) -> Result<crate::Trimmed, StoreError> {
        let mut trimmed = crate::Trimmed::default();
        if let Some(journal) = &self.inner.journal {
            trimmed.record_events = journal.events_before(tenant, before).await?;
            journal
                .commit(vec![crate::sqlite::Write::Trim {
                    tenant: tenant.clone(),
                    before,
                }])
                .await?;
        }
        let records: Vec<Arc<Mutex<ConversationRecord>>> = self
            .inner
            .conversations
            .iter()
            .filter(|r| r.key().0 == *tenant)
            .map(|r| r.value().clone())
            .collect();
        for record in records {
            let mut record = record.lock().await;
            while record.history.front().is_some_and(|e| e.at < before) {
                record.history.pop_front();
                trimmed.hot_events += 1;
            }
        }
        if let Some(log) = self.inner.inboxes.get(tenant).map(|l| l.clone()) {
            let mut log = log.write().unwrap_or_else(|p| p.into_inner());
            let was = log.entries.len();
            log.entries.retain(|(_, e)| e.updated >= before);
            trimmed.inbox_changes = (was - log.entries.len()) as u64;
        }
        Ok(trimmed)
    }

    /// Takes an erased conversation out of the tenant's queue index and inbox log.
    /// Returns (entries removed: 0 or 1, inbox changes removed).
    pub fn erase_from_queue(&self, tenant: &TenantId, conversation: &ConversationId) -> (u64, u64) {
        let queue = self.inner.queues.get(tenant).map(|q| q.clone());
        let entries = queue.map_or(0, |queue| {
            let mut queue = queue.write().unwrap_or_else(|p| p.into_inner());
            u64::from(queue.remove(conversation).is_some())
        });
        let log = self.inner.inboxes.get(tenant).map(|l| l.clone());
        let changes = log.map_or(0, |log| {
            let mut log = log.write().unwrap_or_else(|p| p.into_inner());
            let before = log.entries.len();
            log.entries.retain(|(_, e)| e.conversation != *conversation);
            (before - log.entries.len()) as u64
        });
        (entries, changes)
    }

    /// Appends a queue change to the tenant's inbox log and returns it with its cursor.
    pub fn append_inbox(&self, tenant: &TenantId, item: QueueEntry) -> InboxEntry {
        let position = self.reserve_inbox_position(tenant);
        self.insert_inbox(tenant, position, item)
    }

    fn inbox(&self, tenant: &TenantId) -> Arc<RwLock<InboxLog>> {
        self.inner
            .inboxes
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// The next position of the tenant's inbox, taken for a change about to be kept (a
    /// change whose commit fails leaves a gap, which readers skip).
    pub fn reserve_inbox_position(&self, tenant: &TenantId) -> u64 {
        let log = self.inbox(tenant);
        let mut log = log.write().unwrap_or_else(|p| p.into_inner());
        log.last += 1;
        log.last
    }

    /// Puts a queue change at `position` of the tenant's inbox log (in position order,
    /// trimmed to the configured length) and returns it with its cursor.
    pub fn insert_inbox(&self, tenant: &TenantId, position: u64, item: QueueEntry) -> InboxEntry {
        let log = self.inbox(tenant);
        let mut log = log.write().unwrap_or_else(|p| p.into_inner());
        log.last = log.last.max(position);
        let at = log.entries.partition_point(|(n, _)| *n < position);
        log.entries.insert(at, (position, item.clone()));
        while log.entries.len() > self.inner.config.inbox_max_len.max(1) {
            log.entries.pop_front();
        }
        InboxEntry {
            entry: item,
            cursor: position.to_string(),
        }
    }

    /// The queue entry of a conversation, if it has one.
    pub fn queue_entry(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Option<QueueEntry> {
        let queue = self.inner.queues.get(tenant)?.clone();
        let queue = queue.read().unwrap_or_else(|p| p.into_inner());
        queue.get(conversation).cloned()
    }
}

/// Whether a history read needs events older than memory's window, which starts at
/// `first_retained` and holds `len` events (a window starting at seq 1 is complete). A
/// read ending exactly at the window's start also goes to the file, which knows whether
/// older events exist (`has_more`).
fn reaches_before(range: HistoryRange, len: usize, first_retained: u64) -> bool {
    if first_retained <= 1 {
        return false;
    }
    match range {
        HistoryRange::Latest { limit } => limit >= len,
        HistoryRange::Before { before, limit } => {
            before > 1 && before.saturating_sub(limit as u64) <= first_retained
        }
        HistoryRange::After { after, .. } => after + 1 < first_retained,
    }
}

impl ConversationStore for MemoryStore {
    async fn state(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<ConversationState, StoreError> {
        Ok(match self.existing(tenant, conversation) {
            Some(r) => r.lock().await.state.clone(),
            None => ConversationState::default(),
        })
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
    ) -> Result<HistorySlice, StoreError> {
        let Some(record) = self.existing(tenant, conversation) else {
            return Ok(HistorySlice::default());
        };
        let record = record.lock().await;
        let h = &record.history;
        let first_retained = h.front().map_or(0, |e| e.seq);
        if let Some(journal) = &self.inner.journal
            && reaches_before(range, h.len(), first_retained)
        {
            // Older than memory's window: the data directory has every event.
            drop(record);
            return journal.history(tenant, conversation, range).await;
        }
        // Retained seqs are consecutive, so positions follow from seqs.
        let index_of = |seq: u64| seq.saturating_sub(first_retained) as usize;
        let (start, end, has_more) = match range {
            HistoryRange::Latest { limit } => {
                let start = h.len().saturating_sub(limit);
                (start, h.len(), start > 0)
            }
            HistoryRange::Before { before, limit } => {
                let end = if before <= first_retained {
                    0
                } else {
                    index_of(before).min(h.len())
                };
                let start = end.saturating_sub(limit);
                (start, end, start > 0)
            }
            HistoryRange::After { after, limit } => {
                let start = if after < first_retained {
                    0
                } else {
                    index_of(after + 1).min(h.len())
                };
                let end = (start + limit).min(h.len());
                (start, end, end < h.len())
            }
        };
        Ok(HistorySlice {
            events: h.range(start..end).cloned().collect(),
            has_more,
        })
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Status,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<QueuePage, StoreError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let Some(queue) = self.inner.queues.get(tenant).map(|q| q.clone()) else {
            return Ok(QueuePage::default());
        };
        let items: Vec<QueueEntry> = {
            let queue = queue.read().unwrap_or_else(|p| p.into_inner());
            queue
                .values()
                .filter(|i| i.status == status)
                .cloned()
                .collect()
        };
        let newest_first = status != Status::Unanswered;
        let key = |i: &QueueEntry| (sort_time(i), i.conversation.to_string());
        let after = after.map(|(t, c)| (t, c.to_string()));
        let (items, next_cursor) = page(items, key, newest_first, after.as_ref(), limit);
        Ok(QueuePage { items, next_cursor })
    }

    async fn idle(
        &self,
        tenant: &TenantId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let Some(queue) = self.inner.queues.get(tenant).map(|q| q.clone()) else {
            return Ok(Vec::new());
        };
        let idle: Vec<QueueEntry> = {
            let queue = queue.read().unwrap_or_else(|p| p.into_inner());
            queue
                .values()
                .filter(|e| e.status != Status::New && e.updated < before)
                .cloned()
                .collect()
        };
        Ok(crate::oldest_changes_first(idle, limit))
    }

    async fn set_read(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        by: &Participant,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        // Never create a record here: a read mark on a conversation without events means
        // nothing, and ids from clients must not grow memory.
        let Some(record) = self.existing(tenant, conversation) else {
            return Ok(None);
        };
        let mut record = record.lock().await;
        let seq = seq.min(record.state.seq);
        if seq == 0 {
            return Ok(None);
        }
        let current = record.reads.iter().find(|(a, _)| a == by).map(|(_, m)| *m);
        if current.is_some_and(|mark| mark >= seq) {
            return Ok(None);
        }
        if let Some(journal) = &self.inner.journal {
            let write = Write::Read {
                tenant: tenant.clone(),
                conversation: conversation.clone(),
                participant: by.key(),
                seq,
            };
            journal.commit(vec![write]).await?;
        }
        match record.reads.iter_mut().find(|(a, _)| a == by) {
            Some((_, mark)) if *mark >= seq => Ok(None),
            Some((_, mark)) => {
                *mark = seq;
                Ok(Some(seq))
            }
            None => {
                record.reads.push((by.clone(), seq));
                Ok(Some(seq))
            }
        }
    }

    async fn inbox_after(
        &self,
        tenant: &TenantId,
        since: Option<&str>,
        limit: usize,
    ) -> Result<InboxSlice, StoreError> {
        let since = since
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| StoreError::Invalid("inbox cursor"))
            })
            .transpose()?;
        let Some(log) = self.inner.inboxes.get(tenant).map(|l| l.clone()) else {
            return Ok(InboxSlice {
                truncated: since.is_some_and(|s| s > 0),
                ..InboxSlice::default()
            });
        };
        let log = log.read().unwrap_or_else(|p| p.into_inner());
        let latest = (log.last > 0).then(|| log.last.to_string());
        let Some(since) = since else {
            return Ok(InboxSlice {
                latest,
                ..InboxSlice::default()
            });
        };
        let first = log.entries.front().map_or(log.last + 1, |(n, _)| *n);
        let mut items: Vec<InboxEntry> = log
            .entries
            .iter()
            .filter(|(n, _)| *n > since)
            .take(limit + 1)
            .map(|(n, item)| InboxEntry {
                entry: item.clone(),
                cursor: n.to_string(),
            })
            .collect();
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(InboxSlice {
            items,
            has_more,
            truncated: since + 1 < first || since > log.last,
            latest,
        })
    }

    async fn reads(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<(Participant, u64)>, StoreError> {
        Ok(match self.existing(tenant, conversation) {
            Some(r) => r.lock().await.reads.clone(),
            None => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathub_domain::{EventBody, MessageContent, Role};

    fn ids() -> (TenantId, ConversationId) {
        (
            TenantId::new("t").unwrap(),
            ConversationId::new("c").unwrap(),
        )
    }

    fn event(seq: u64) -> Event {
        Event {
            seq,
            at: seq,
            body: EventBody::Message {
                author: chathub_domain::Author {
                    role: Role::EndUser,
                    id: "c".into(),
                },
                client_msg_id: None,
                content: MessageContent::Text {
                    text: seq.to_string(),
                },
            },
            amended: None,
        }
    }

    fn seqs(s: &HistorySlice) -> Vec<u64> {
        s.events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn history_slices_and_trimming() {
        let store = MemoryStore::new(MemoryStoreConfig {
            history_max_len: 5,
            ..Default::default()
        });
        let (t, c) = ids();
        let empty = store
            .history(&t, &c, HistoryRange::Latest { limit: 10 })
            .await
            .unwrap();
        assert!(empty.events.is_empty() && !empty.has_more);
        {
            let r = store.record(&t, &c);
            let mut r = r.lock().await;
            let events: Vec<Event> = (1..=8).map(event).collect();
            r.append(&events, 5);
            r.state.seq = 8;
        }
        let latest = store
            .history(&t, &c, HistoryRange::Latest { limit: 2 })
            .await
            .unwrap();
        assert_eq!((seqs(&latest), latest.has_more), (vec![7, 8], true));
        let before = store
            .history(
                &t,
                &c,
                HistoryRange::Before {
                    before: 7,
                    limit: 2,
                },
            )
            .await
            .unwrap();
        assert_eq!((seqs(&before), before.has_more), (vec![5, 6], true));
        let before = store
            .history(
                &t,
                &c,
                HistoryRange::Before {
                    before: 6,
                    limit: 9,
                },
            )
            .await
            .unwrap();
        assert_eq!((seqs(&before), before.has_more), (vec![4, 5], false));
        let before = store
            .history(
                &t,
                &c,
                HistoryRange::Before {
                    before: 2,
                    limit: 9,
                },
            )
            .await
            .unwrap();
        assert!(before.events.is_empty());
        let after = store
            .history(&t, &c, HistoryRange::After { after: 5, limit: 2 })
            .await
            .unwrap();
        assert_eq!((seqs(&after), after.has_more), (vec![6, 7], true));
        let after = store
            .history(&t, &c, HistoryRange::After { after: 1, limit: 9 })
            .await
            .unwrap();
        assert_eq!((seqs(&after), after.has_more), (vec![4, 5, 6, 7, 8], false));
        let after = store
            .history(&t, &c, HistoryRange::After { after: 8, limit: 9 })
            .await
            .unwrap();
        assert!(after.events.is_empty() && !after.has_more);
    }

    fn item(conv: &str, status: Status, since: u64, updated: u64, seq: u64) -> QueueEntry {
        QueueEntry {
            conversation: ConversationId::new(conv).unwrap(),
            status,
            owner: None,
            epoch: 0,
            seq,
            disabled: false,
            since,
            updated,
            preview: None,
        }
    }

    #[tokio::test]
    async fn queue_orders_pages_and_ignores_stale_updates() {
        let store = MemoryStore::default();
        let t = TenantId::new("t").unwrap();
        assert!(store.upsert_queue(&t, item("a", Status::Unanswered, 30, 30, 2)));
        assert!(store.upsert_queue(&t, item("b", Status::Unanswered, 10, 50, 2)));
        assert!(store.upsert_queue(&t, item("c", Status::Unanswered, 20, 20, 2)));
        assert!(store.upsert_queue(&t, item("d", Status::Finished, 5, 70, 9)));
        assert!(store.upsert_queue(&t, item("e", Status::Finished, 5, 90, 9)));
        // An older seq never overwrites a newer one.
        assert!(!store.upsert_queue(&t, item("d", Status::Unanswered, 1, 1, 3)));
        let p1 = store.list(&t, Status::Unanswered, 2, None).await.unwrap();
        let names: Vec<_> = p1
            .items
            .iter()
            .map(|i| i.conversation.to_string())
            .collect();
        assert_eq!(names, ["b", "c"]);
        let p2 = store
            .list(&t, Status::Unanswered, 2, p1.next_cursor.as_deref())
            .await
            .unwrap();
        let names: Vec<_> = p2
            .items
            .iter()
            .map(|i| i.conversation.to_string())
            .collect();
        assert_eq!((names, p2.next_cursor), (vec!["a".to_string()], None));
        let fin = store.list(&t, Status::Finished, 10, None).await.unwrap();
        let names: Vec<_> = fin
            .items
            .iter()
            .map(|i| i.conversation.to_string())
            .collect();
        assert_eq!(names, ["e", "d"]);
        assert!(
            store
                .list(&t, Status::Active, 10, Some("nonsense"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn read_marks_only_move_forward() {
        let store = MemoryStore::default();
        let (t, c) = ids();
        store.record(&t, &c).lock().await.state.seq = 10;
        let me = Participant::agent(&chathub_domain::AgentId::new("a").unwrap());
        let elsewhere = ConversationId::new("nowhere").unwrap();
        assert_eq!(store.set_read(&t, &elsewhere, &me, 4).await.unwrap(), None);
        assert_eq!(store.set_read(&t, &c, &me, 4).await.unwrap(), Some(4));
        assert_eq!(store.set_read(&t, &c, &me, 3).await.unwrap(), None);
        assert_eq!(
            store.set_read(&t, &c, &me, 99).await.unwrap(),
            Some(10),
            "clamped"
        );
        assert_eq!(store.reads(&t, &c).await.unwrap(), vec![(me, 10)]);
    }
}
