//! The Redis backend of the store: key layout shared with the ownership scripts, and the
//! read side.
//!
//! Everything of one conversation shares the hash tag `{tenant/conversation}` (ids cannot
//! contain `/`), so the conversation's script touches one slot on Redis Cluster. The
//! tenant's inbox lives under `{tenant}`, another slot, updated in a second step.

use crate::rows::{InboxEntry, QueueEntry};
use crate::{
    ConversationStore, HistoryRange, HistorySlice, InboxSlice, QueuePage, StoreError, page,
    parse_cursor,
};
use chathub_domain::{ConversationId, ConversationState, Event, Participant, Status, TenantId};
use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, RedisError, Script, Value};
use std::sync::{Arc, LazyLock};

/// Key and channel names under one prefix (several deployments can share a Redis).
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: Arc<str>,
}

impl RedisKeys {
    /// Names under `prefix` (no braces in it; default `chathub`).
    pub fn new(prefix: &str) -> RedisKeys {
        RedisKeys {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn conv(&self, t: &TenantId, c: &ConversationId, what: &str) -> String {
        KeyName::Conv(&self.prefix, t, c, what).to_string()
    }

    fn tenant(&self, t: &TenantId, what: &str) -> String {
        KeyName::Tenant(&self.prefix, t, what).to_string()
    }

    /// [`RedisKeys::state`] as a [`KeyName`].
    pub fn state_name<'a>(&'a self, t: &'a TenantId, c: &'a ConversationId) -> KeyName<'a> {
        KeyName::Conv(&self.prefix, t, c, "state")
    }

    /// [`RedisKeys::history`] as a [`KeyName`].
    pub fn history_name<'a>(&'a self, t: &'a TenantId, c: &'a ConversationId) -> KeyName<'a> {
        KeyName::Conv(&self.prefix, t, c, "history")
    }

    /// [`RedisKeys::inbox`] as a [`KeyName`].
    pub fn inbox_name<'a>(&'a self, t: &'a TenantId) -> KeyName<'a> {
        KeyName::Tenant(&self.prefix, t, "inbox")
    }

    /// [`RedisKeys::queue`] as a [`KeyName`].
    pub fn queue_name<'a>(&'a self, t: &'a TenantId, status: Status) -> KeyName<'a> {
        KeyName::Tenant(&self.prefix, t, queue_what(status))
    }

    /// [`RedisKeys::inbox_events`] as a [`KeyName`].
    pub fn inbox_events_name<'a>(&'a self, t: &'a TenantId) -> KeyName<'a> {
        KeyName::Tenant(&self.prefix, t, "inbox-events")
    }

    /// [`RedisKeys::webhook_jobs`] as a [`KeyName`].
    pub fn webhook_jobs_name<'a>(&'a self, t: &'a TenantId) -> KeyName<'a> {
        KeyName::Tenant(&self.prefix, t, "jobs:webhook")
    }

    /// Conversation state hash: `status`, `owner`, `epoch`, `seq`, `disabled`; `since`
    /// (when the status last changed, as the queue entry holds it: the apply script
    /// rewrites a plain message's entry without reading it); the follow-up watermarks.
    pub fn state(&self, t: &TenantId, c: &ConversationId) -> String {
        self.state_name(t, c).to_string()
    }

    /// History stream; entry id `<seq>-0`, fields `e` (the event, MessagePack) and `t`
    /// (its time, ms).
    pub fn history(&self, t: &TenantId, c: &ConversationId) -> String {
        self.history_name(t, c).to_string()
    }

    /// The conversation's amended messages (`lua/apply.lua` of the ownership crate): field
    /// `<seq>` the event as history shows it now (MessagePack), replacing the stream's
    /// entry or standing for one an unsend or redaction deleted; `e:<seq>` its edits.
    pub fn amended(&self, t: &TenantId, c: &ConversationId) -> String {
        self.conv(t, c, "amended")
    }

    /// Idempotency key of one send, holding its receipt (MessagePack), with the dedup
    /// window as TTL: per author (role and id: an agent and an end user of the same id
    /// are two authors) and `client_msg_id`.
    pub fn dedup(
        &self,
        t: &TenantId,
        c: &ConversationId,
        author: &Participant,
        client_msg_id: &str,
    ) -> String {
        let author = author.key();
        let (author, id) = (part(&author), part(client_msg_id));
        self.conv(t, c, &format!("dedup:{author}:{id}"))
    }

    /// Read marks hash: `role:id` → seq.
    pub fn reads(&self, t: &TenantId, c: &ConversationId) -> String {
        self.conv(t, c, "reads")
    }

    /// The tenant's alert marks: conversation → what the alert schedule sent in its
    /// current unanswered cycle (`lua/alert.lua` of the ownership crate).
    pub fn alerts(&self, t: &TenantId) -> String {
        self.tenant(t, "alerts")
    }

    /// Inbox hash: conversation → queue entry (MessagePack).
    pub fn inbox(&self, t: &TenantId) -> String {
        self.inbox_name(t).to_string()
    }

    /// Queue index of one status: sorted set, conversation scored by its sort time.
    pub fn queue(&self, t: &TenantId, status: Status) -> String {
        self.queue_name(t, status).to_string()
    }

    /// An end user's engagement history: hash, event id → event (MessagePack).
    pub fn engagement_history(&self, t: &TenantId, user: &chathub_domain::EndUserId) -> String {
        self.tenant(t, &format!("history:{}", part(user.as_str())))
    }

    /// The catalogue items an end user has redeemed: set of item ids.
    pub fn redeemed(&self, t: &TenantId, user: &chathub_domain::EndUserId) -> String {
        self.tenant(t, &format!("redeemed:{}", part(user.as_str())))
    }

    /// One participant's live sessions: hash, session → `presence|expires`.
    pub fn presence(&self, t: &TenantId, who: &str) -> String {
        self.tenant(t, &format!("presence:{}", part(who)))
    }

    /// A key of the tenant's workspace data that names no id (`settings`, `catalogue`…).
    pub fn workspace(&self, t: &TenantId, what: &'static str) -> String {
        self.tenant(t, what)
    }

    /// An end user's engagement history index: sorted set of event ids by time, of every
    /// type (`None`) or of one.
    pub fn engagement_index(
        &self,
        t: &TenantId,
        user: &chathub_domain::EndUserId,
        engagement_type: Option<chathub_domain::engagement::EngagementType>,
    ) -> String {
        let user = part(user.as_str());
        match engagement_type {
            Some(kind) => self.tenant(t, &format!("history-index:{user}:{}", kind.as_str())),
            None => self.tenant(t, &format!("history-index:{user}")),
        }
    }

    /// The tenant's pending offline-webhook jobs (see [`crate::jobs`]).
    pub fn webhook_jobs(&self, t: &TenantId) -> String {
        self.webhook_jobs_name(t).to_string()
    }

    /// The tenants that may have pending jobs (one set for the whole hub).
    pub fn job_tenants(&self) -> String {
        format!("{}:jobs:tenants", self.prefix)
    }

    /// The tenant's inbox event stream (queue frames, for consoles catching up).
    pub fn inbox_events(&self, t: &TenantId) -> String {
        self.inbox_events_name(t).to_string()
    }

    /// The conversation's shard of pending follow-ups (see [`PendingShard`]).
    pub fn pending_shard(
        &self,
        t: &TenantId,
        c: &ConversationId,
        sharding: PendingSharding,
    ) -> PendingShard {
        match sharding {
            PendingSharding::One => PendingShard(0),
            PendingSharding::PerSlot => PendingShard(slot_of(format!("{t}/{c}").as_bytes())),
        }
    }

    /// The sorted set of one shard's pending follow-ups: members `<kind>:<tenant>/<conversation>`
    /// (kind `q`: the queue entry; `a`: the archive), scored by when the follow-up last
    /// made progress (ms). Its hash tag falls in the shard's slot, so the apply script of
    /// any conversation of that slot can write it.
    pub fn pending(&self, shard: PendingShard) -> String {
        format!("{}:pending:{{{}}}", self.prefix, slot_tag(shard.0))
    }

    /// The tenants with a retention policy (one set for the whole hub).
    pub fn retention_tenants(&self) -> String {
        format!("{}:retention:tenants", self.prefix)
    }

    /// The lease on the retention sweep (value: the holder's node id): one node sweeps.
    pub fn retention_lease(&self) -> String {
        format!("{}:retention:lease", self.prefix)
    }

    /// The tenants with a timer setting: a stall policy (release of stalled ownership)
    /// or an alert schedule (one set for the whole hub; the name predates alerts).
    pub fn release_tenants(&self) -> String {
        format!("{}:release:tenants", self.prefix)
    }

    /// The lease on a round of the stall sweep (value: the holder's node id).
    pub fn release_lease(&self) -> String {
        format!("{}:release:lease", self.prefix)
    }

    /// The gateway nodes alive: sorted set, node id scored by its last heartbeat (ms).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The lease on one range of pending shards (value: the holder's node id).
    pub fn sweep_lease(&self, range: u16) -> String {
        format!("{}:sweep-lease:{range}", self.prefix)
    }

    /// A counter every node watches: bumped when a node is found dead (or follow-ups
    /// failed), so that every node sweeps the shards it holds.
    pub fn sweep_epoch(&self) -> String {
        format!("{}:sweep-epoch", self.prefix)
    }
}

/// The `what` of a queue index's key.
fn queue_what(status: Status) -> &'static str {
    match status {
        Status::New => "queue:new",
        Status::Unanswered => "queue:unanswered",
        Status::Active => "queue:active",
        Status::Finished => "queue:finished",
    }
}

/// A key's name written where it is needed, without a `String` of its own: the command
/// path formats its keys straight into the Redis call (it is an argument: `ToRedisArgs`).
/// [`RedisKeys`]'s `String` methods format the same names.
#[derive(Debug, Clone, Copy)]
pub enum KeyName<'a> {
    /// `<prefix>:conv:{<tenant>/<conversation>}:<what>`.
    Conv(&'a str, &'a TenantId, &'a ConversationId, &'a str),
    /// `<prefix>:tenant:{<tenant>}:<what>`.
    Tenant(&'a str, &'a TenantId, &'a str),
}

impl std::fmt::Display for KeyName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyName::Conv(prefix, t, c, what) => write!(f, "{prefix}:conv:{{{t}/{c}}}:{what}"),
            KeyName::Tenant(prefix, t, what) => write!(f, "{prefix}:tenant:{{{t}}}:{what}"),
        }
    }
}

impl redis::ToRedisArgs for KeyName<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        // Writing into the command's own buffer cannot fail.
        let _ = write!(out.writer_for_next_arg(), "{self}");
    }
}

/// How the pending follow-ups are sharded: a single Redis needs one set; on a Redis
/// Cluster each slot has its own, since a script may only touch keys of its own slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingSharding {
    /// One set (a single Redis).
    One,
    /// One set per cluster slot (16,384).
    PerSlot,
}

impl PendingSharding {
    /// How many shards there are.
    pub fn shards(self) -> u16 {
        match self {
            PendingSharding::One => 1,
            PendingSharding::PerSlot => SLOTS,
        }
    }
}

/// One shard of the pending follow-ups (a cluster slot, or the only one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendingShard(pub u16);

/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The cluster slot of a hash tag's content (CRC16/XMODEM, as Redis computes it).
fn slot_of(tag: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS
}

/// A short hash tag per slot, found once: the smallest decimal number whose slot it is.
fn slot_tag(slot: u16) -> &'static str {
    static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut tags = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n: u64 = 0;
        while missing > 0 {
            let tag = n.to_string();
            let slot = usize::from(slot_of(tag.as_bytes()));
            if tags[slot].is_empty() {
                tags[slot] = tag;
                missing -= 1;
            }
            n += 1;
        }
        tags
    });
    &TAGS[usize::from(slot % SLOTS)]
}

/// One id inside a key, escaped so that keys built from distinct ids never collide: ids
/// may hold `:`, the separator, so `%` becomes `%25` and `:` becomes `%3A` (hash tags need
/// nothing: ids cannot hold `{`, `}` or `/`).
pub fn part(id: &str) -> std::borrow::Cow<'_, str> {
    if id.contains([':', '%']) {
        std::borrow::Cow::Owned(id.replace('%', "%25").replace(':', "%3A"))
    } else {
        std::borrow::Cow::Borrowed(id)
    }
}

static TRIM_HISTORY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/trim_history.lua")));
static SET_READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/set_read.lua")));

/// The Redis store, over any async connection (a `ConnectionManager`, or a cluster
/// connection: every command touches one hash tag).
#[derive(Clone)]
pub struct RedisStore<C> {
    conn: C,
    keys: RedisKeys,
    /// Where history older than the hot window is read (cluster mode's record tier).
    archive: Option<crate::postgres::Archive>,
}

impl<C> RedisStore<C> {
    /// A store using `conn` and `keys`.
    pub fn new(conn: C, keys: RedisKeys) -> Self {
        RedisStore {
            conn,
            keys,
            archive: None,
        }
    }

    /// Reads history past Redis's hot window from `archive`, with the same `seq`s: a
    /// reader sees one history, without a seam.
    pub fn with_archive(mut self, archive: crate::postgres::Archive) -> Self {
        self.archive = Some(archive);
        self
    }
}

/// Completes a page Redis answered with what only the archive holds. Redis keeps every
/// event the archive lacks (it trims only archived events), so the two together hold
/// every event; the archive is read only when the page reaches before Redis's window.
async fn with_archived(
    archive: &crate::postgres::Archive,
    tenant: &TenantId,
    conversation: &ConversationId,
    range: HistoryRange,
    hot: HistorySlice,
) -> Result<HistorySlice, StoreError> {
    match range {
        HistoryRange::After { after, limit } => {
            // Redis always holds the newest events: a page that starts where asked, or
            // an empty one, is complete.
            if hot.events.first().is_none_or(|e| e.seq <= after + 1) {
                return Ok(hot);
            }
            let older = archive.history(tenant, conversation, range).await?;
            let last_older = older.events.last().map_or(after, |e| e.seq);
            let mut events = older.events;
            events.extend(hot.events.into_iter().filter(|e| e.seq > last_older));
            let has_more = older.has_more || hot.has_more || events.len() > limit;
            events.truncate(limit);
            Ok(HistorySlice { events, has_more })
        }
        HistoryRange::Before { .. } | HistoryRange::Latest { .. } => {
            let limit = match range {
                HistoryRange::Before { limit, .. } | HistoryRange::Latest { limit } => limit,
                HistoryRange::After { .. } => unreachable!("matched above"),
            };
            // Where Redis's answer starts: older events exist when it is past seq 1
            // (seqs start at 1 and are consecutive).
            let bound = match (hot.events.first(), range) {
                (Some(oldest), _) => oldest.seq,
                (None, HistoryRange::Before { before, .. }) => before,
                (None, _) => return Ok(hot),
            };
            if bound <= 1 || hot.has_more {
                return Ok(hot);
            }
            let room = limit.saturating_sub(hot.events.len());
            if room == 0 {
                return Ok(HistorySlice {
                    events: hot.events,
                    has_more: true,
                });
            }
            let older = archive
                .history(
                    tenant,
                    conversation,
                    HistoryRange::Before {
                        before: bound,
                        limit: room,
                    },
                )
                .await?;
            let mut events = older.events;
            events.extend(hot.events);
            Ok(HistorySlice {
                events,
                has_more: older.has_more,
            })
        }
    }
}

fn redis_error(e: RedisError) -> StoreError {
    StoreError::from_redis(e)
}

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(what, e)
}

/// Decodes the `e` field of a history stream entry.
fn decode_entry(map: &std::collections::HashMap<String, Value>) -> Result<Event, StoreError> {
    match map.get("e") {
        Some(Value::BulkString(bytes)) => {
            rmp_serde::from_slice(bytes).map_err(|e| corrupt("history entry", e))
        }
        _ => Err(corrupt("history entry", "missing field e")),
    }
}

/// A stream entry id `ms-n` as a comparable pair.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, n) = id.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

/// Parses a state hash read with `HMGET status owner epoch seq disabled survey`.
pub fn parse_state(fields: &[Option<String>]) -> Result<ConversationState, StoreError> {
    let get = |i: usize| fields.get(i).cloned().flatten();
    let status = match get(0).as_deref() {
        None | Some("new") => Status::New,
        Some("unanswered") => Status::Unanswered,
        Some("active") => Status::Active,
        Some("finished") => Status::Finished,
        Some(other) => return Err(corrupt("status", other)),
    };
    let owner = match get(1).filter(|o| !o.is_empty()) {
        Some(o) => Some(o.parse().map_err(|e| corrupt("owner", e))?),
        None => None,
    };
    let number = |i: usize| -> Result<u64, StoreError> {
        get(i).map_or(Ok(0), |n| n.parse().map_err(|e| corrupt("number", e)))
    };
    Ok(ConversationState {
        status,
        owner,
        epoch: number(2)?,
        seq: number(3)?,
        disabled: get(4).as_deref() == Some("1"),
        // '' (or absent): no survey open.
        survey: match get(5).filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse().map_err(|e| corrupt("survey", e))?),
            None => None,
        },
    })
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisStore<C> {
    /// Takes the retention sweep's lease for `ttl_ms` if nobody holds it: whether this
    /// node (`node`, the lease's value) sweeps now. Taken once per sweep and never
    /// renewed, so a sweep runs at most once per `ttl_ms` across the nodes, and a node
    /// dying mid-sweep leaves the next one to whichever node takes the lease after it.
    pub async fn retention_lease(&self, node: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        self.lease(self.keys.retention_lease(), node, ttl_ms).await
    }

    /// Takes the stall sweep's lease for `ttl_ms` (one round), as
    /// [`RedisStore::retention_lease`] does the retention sweep's.
    pub async fn release_lease(&self, node: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        self.lease(self.keys.release_lease(), node, ttl_ms).await
    }

    /// Takes the lease `key` for `ttl_ms` if nobody holds it.
    async fn lease(&self, key: String, node: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(node)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(taken.is_some())
    }

    /// The tenant's retention: deletes every event older than `before` (ms) from the
    /// archive (with its search entry; later copies of them are refused) and from the
    /// hot history of each conversation in the tenant's queue index, and the inbox
    /// stream's changes older than it.
    pub async fn trim_before(
        &self,
        tenant: &TenantId,
        before: u64,
    ) -> Result<crate::Trimmed, StoreError> {
        /// Entries deleted per script call (no script runs long).
        const PER_CALL: u64 = 2000;
        let mut trimmed = crate::Trimmed::default();
        if let Some(archive) = &self.archive {
            trimmed.record_events = archive.trim_before(tenant, before).await?;
        }
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        loop {
            let (next, fields): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
                .arg(self.keys.inbox(tenant))
                .arg(cursor)
                .arg("COUNT")
                .arg(200)
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            for (conversation, blob) in fields {
                let entry: QueueEntry =
                    rmp_serde::from_slice(&blob).map_err(|e| corrupt("queue entry", e))?;
                if entry.status == Status::New {
                    continue;
                }
                let conversation: ConversationId = conversation
                    .parse()
                    .map_err(|e| corrupt("queue entry name", e))?;
                loop {
                    let removed: u64 = TRIM_HISTORY
                        .key(self.keys.history_name(tenant, &conversation))
                        .key(self.keys.amended(tenant, &conversation))
                        .arg(before)
                        .arg(PER_CALL)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(redis_error)?;
                    trimmed.hot_events += removed;
                    if removed < PER_CALL {
                        break;
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // Inbox stream ids are the ms they were added at.
        trimmed.inbox_changes = redis::cmd("XTRIM")
            .arg(self.keys.inbox_events(tenant))
            .arg("MINID")
            .arg(before)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(trimmed)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisStore<C> {
    /// Puts the current forms of amended messages into a page read from the stream:
    /// they replace the stream's entries, and stand for the entries an unsend or a
    /// redaction deleted — only inside the span the page covers, and never below the
    /// stream's oldest entry (older events are the archive's).
    async fn with_amended(
        &self,
        conn: &mut C,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
        hot: &mut HistorySlice,
    ) -> Result<(), StoreError> {
        let amended: Vec<(String, Vec<u8>)> = conn
            .hgetall(self.keys.amended(tenant, conversation))
            .await
            .map_err(redis_error)?;
        let mut forms: Vec<Event> = Vec::new();
        for (field, packed) in &amended {
            if field.parse::<u64>().is_ok() {
                forms.push(rmp_serde::from_slice(packed).map_err(|e| corrupt("amended", e))?);
            }
        }
        if forms.is_empty() {
            return Ok(());
        }
        let oldest: StreamRangeReply = conn
            .xrange_count(self.keys.history(tenant, conversation), "-", "+", 1)
            .await
            .map_err(redis_error)?;
        // Without an archive, nothing older than the stream is anywhere else: its
        // deleted first entries are filled too.
        let floor = match &self.archive {
            None => 1,
            Some(_) => oldest
                .ids
                .first()
                .and_then(|e| stream_id(&e.id))
                .map_or(u64::MAX, |(seq, _)| seq),
        };
        let lowest = hot.events.first().map(|e| e.seq);
        let highest = hot.events.last().map(|e| e.seq);
        let backward_from = match lowest {
            Some(seq) if hot.has_more => seq,
            _ => floor,
        };
        let (from, to, limit) = match range {
            HistoryRange::Latest { limit } => (backward_from, u64::MAX, limit),
            HistoryRange::Before { before, limit } => {
                (backward_from, before.saturating_sub(1), limit)
            }
            HistoryRange::After { after, limit } => (
                after + 1,
                if hot.has_more {
                    highest.unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                },
                limit,
            ),
        };
        let from = from.max(floor);
        let mut changed = false;
        for form in forms {
            if form.seq < from || form.seq > to {
                continue;
            }
            match hot.events.binary_search_by_key(&form.seq, |e| e.seq) {
                Ok(i) => hot.events[i] = form,
                Err(i) => hot.events.insert(i, form),
            }
            changed = true;
        }
        if changed && hot.events.len() > limit {
            // Keep the page's own end: the newest for a backward page, the oldest forward.
            let extra = hot.events.len() - limit;
            match range {
                HistoryRange::After { .. } => hot.events.truncate(limit),
                _ => {
                    hot.events.drain(..extra);
                }
            }
            hot.has_more = true;
        }
        Ok(())
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> ConversationStore for RedisStore<C> {
    async fn state(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<ConversationState, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.state(tenant, conversation))
            .arg(&["status", "owner", "epoch", "seq", "disabled", "survey"])
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        parse_state(&fields)
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
    ) -> Result<HistorySlice, StoreError> {
        let key = self.keys.history(tenant, conversation);
        let mut conn = self.conn.clone();
        // One more than asked tells whether there is more.
        let (reply, limit, newest_first): (StreamRangeReply, usize, bool) = match range {
            HistoryRange::Latest { limit } => (
                conn.xrevrange_count(&key, "+", "-", limit + 1)
                    .await
                    .map_err(redis_error)?,
                limit,
                true,
            ),
            HistoryRange::Before { before, limit } => {
                if before <= 1 {
                    return Ok(HistorySlice::default());
                }
                let end = format!("{}-0", before - 1);
                (
                    conn.xrevrange_count(&key, end, "-", limit + 1)
                        .await
                        .map_err(redis_error)?,
                    limit,
                    true,
                )
            }
            HistoryRange::After { after, limit } => {
                let start = format!("{}-0", after + 1);
                (
                    conn.xrange_count(&key, start, "+", limit + 1)
                        .await
                        .map_err(redis_error)?,
                    limit,
                    false,
                )
            }
        };
        let has_more = reply.ids.len() > limit;
        let mut events = reply
            .ids
            .iter()
            .take(limit)
            .map(|entry| decode_entry(&entry.map))
            .collect::<Result<Vec<Event>, StoreError>>()?;
        if newest_first {
            events.reverse();
        }
        let mut hot = HistorySlice { events, has_more };
        self.with_amended(&mut conn, tenant, conversation, range, &mut hot)
            .await?;
        let Some(archive) = &self.archive else {
            return Ok(hot);
        };
        let hot_first = hot.events.first().map(|e| e.seq);
        let mut slice = with_archived(archive, tenant, conversation, range, hot).await?;
        let from_archive = slice
            .events
            .first()
            .is_some_and(|e| hot_first.is_none_or(|h| e.seq < h));
        if from_archive {
            // An erasure whose archive step is still owed (the archive was down when it
            // ran): nothing at or before its seq is served meanwhile.
            let erased: Option<u64> = conn
                .hget(self.keys.state(tenant, conversation), "erased")
                .await
                .map_err(redis_error)?;
            if let Some(floor) = erased {
                let before = slice.events.len();
                slice.events.retain(|e| e.seq > floor);
                // Older pages would be older still: gone too.
                if slice.events.len() < before && !matches!(range, HistoryRange::After { .. }) {
                    slice.has_more = false;
                }
            }
        }
        Ok(slice)
    }

    async fn list(
        &self,
        tenant: &TenantId,
        status: Status,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<QueuePage, StoreError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let oldest_first = status == Status::Unanswered;
        let key = self.keys.queue(tenant, status);
        let mut conn = self.conn.clone();
        // Entries tied with the cursor's time are fetched again and skipped, so fetch a
        // few more than needed.
        let fetch = limit + 1 + 64;
        let scored: Vec<(String, f64)> = match (&after, oldest_first) {
            (None, true) => {
                conn.zrangebyscore_limit_withscores(&key, "-inf", "+inf", 0, fetch as isize)
                    .await
            }
            (None, false) => {
                conn.zrevrangebyscore_limit_withscores(&key, "+inf", "-inf", 0, fetch as isize)
                    .await
            }
            (Some((t, _)), true) => {
                conn.zrangebyscore_limit_withscores(&key, *t, "+inf", 0, fetch as isize)
                    .await
            }
            (Some((t, _)), false) => {
                conn.zrevrangebyscore_limit_withscores(&key, *t, "-inf", 0, fetch as isize)
                    .await
            }
        }
        .map_err(redis_error)?;
        let members: Vec<(u64, String)> = scored.into_iter().map(|(m, s)| (s as u64, m)).collect();
        let cursor = after.map(|(t, c)| (t, c.to_string()));
        let (members, next_cursor) =
            page(members, Clone::clone, !oldest_first, cursor.as_ref(), limit);
        if members.is_empty() {
            return Ok(QueuePage::default());
        }
        let names: Vec<&str> = members.iter().map(|(_, m)| m.as_str()).collect();
        let blobs: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.keys.inbox(tenant))
            .arg(&names)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut items = Vec::with_capacity(blobs.len());
        for blob in blobs.into_iter().flatten() {
            let item: QueueEntry =
                rmp_serde::from_slice(&blob).map_err(|e| corrupt("queue entry", e))?;
            // The index may briefly lag the entry; show only what matches.
            if item.status == status {
                items.push(item);
            }
        }
        Ok(QueuePage { items, next_cursor })
    }

    async fn idle(
        &self,
        tenant: &TenantId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        // Candidates scored before the cut-off: active and finished are scored by their
        // last change, unanswered by when they entered the queue (earlier than or equal
        // to the last change), so each entry's own `updated` decides. Unanswered pages on
        // past candidates still written to, a bounded number of them.
        const MAX_SCANNED: usize = 10_000;
        let mut conn = self.conn.clone();
        let mut idle = Vec::new();
        for status in [Status::Finished, Status::Active, Status::Unanswered] {
            let key = self.keys.queue(tenant, status);
            let mut offset = 0usize;
            while idle.len() < limit && offset < MAX_SCANNED {
                let page = limit.max(100);
                let members: Vec<String> = conn
                    .zrangebyscore_limit(
                        &key,
                        "-inf",
                        format!("({before}"),
                        offset as isize,
                        page as isize,
                    )
                    .await
                    .map_err(redis_error)?;
                if members.is_empty() {
                    break;
                }
                offset += members.len();
                let blobs: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                    .arg(self.keys.inbox(tenant))
                    .arg(&members)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                for blob in blobs.into_iter().flatten() {
                    let entry: QueueEntry =
                        rmp_serde::from_slice(&blob).map_err(|e| corrupt("queue entry", e))?;
                    if entry.status != Status::New && entry.updated < before {
                        idle.push(entry);
                    }
                }
                if members.len() < page {
                    break;
                }
            }
        }
        Ok(crate::oldest_changes_first(idle, limit))
    }

    async fn set_read(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        by: &Participant,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let moved: u64 = SET_READ
            .key(self.keys.reads(tenant, conversation))
            .key(self.keys.state(tenant, conversation))
            .arg(by.key())
            .arg(seq)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok((moved > 0).then_some(moved))
    }

    async fn inbox_after(
        &self,
        tenant: &TenantId,
        since: Option<&str>,
        limit: usize,
    ) -> Result<InboxSlice, StoreError> {
        let since = since
            .map(|s| {
                stream_id(s)
                    .map(|id| (s, id))
                    .ok_or(StoreError::Invalid("inbox cursor"))
            })
            .transpose()?;
        let key = self.keys.inbox_events(tenant);
        let mut conn = self.conn.clone();
        let newest: StreamRangeReply = conn
            .xrevrange_count(&key, "+", "-", 1)
            .await
            .map_err(redis_error)?;
        let latest = newest.ids.first().map(|e| e.id.clone());
        let Some((since_text, since_id)) = since else {
            return Ok(InboxSlice {
                latest,
                ..InboxSlice::default()
            });
        };
        let latest_id = latest.as_deref().and_then(stream_id);
        // The stream is trimmed from its oldest end: if the entry at `since` is gone,
        // changes after it may be gone too (conservative: the console reloads).
        let oldest: StreamRangeReply = conn
            .xrange_count(&key, "-", "+", 1)
            .await
            .map_err(redis_error)?;
        let oldest_id = oldest.ids.first().and_then(|e| stream_id(&e.id));
        let truncated = match (oldest_id, latest_id) {
            (Some(oldest), Some(latest)) => since_id < oldest || since_id > latest,
            // Nothing retained at all although the console saw something: lost.
            _ => since_id > (0, 0),
        };
        let start = format!("({since_text}");
        let reply: StreamRangeReply = conn
            .xrange_count(&key, start, "+", limit + 1)
            .await
            .map_err(redis_error)?;
        let has_more = reply.ids.len() > limit;
        let mut items = Vec::with_capacity(reply.ids.len().min(limit));
        for entry in reply.ids.iter().take(limit) {
            let Some(Value::BulkString(blob)) = entry.map.get("q") else {
                return Err(corrupt("inbox entry", "missing field q"));
            };
            // The stream holds the published frame: the entry's fields and `type`.
            let item: QueueEntry =
                rmp_serde::from_slice(blob).map_err(|e| corrupt("inbox entry", e))?;
            items.push(InboxEntry {
                entry: item,
                cursor: entry.id.clone(),
            });
        }
        Ok(InboxSlice {
            items,
            has_more,
            truncated,
            latest,
        })
    }

    async fn reads(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<(Participant, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let marks: Vec<(String, u64)> = conn
            .hgetall(self.keys.reads(tenant, conversation))
            .await
            .map_err(redis_error)?;
        let mut out: Vec<(Participant, u64)> = marks
            .into_iter()
            .filter_map(|(field, seq)| Participant::parse(&field).map(|p| (p, seq)))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_computed_as_redis_does() {
        // `CLUSTER KEYSLOT foo` and `CLUSTER KEYSLOT bar` on a real Redis.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
    }

    #[test]
    fn every_slot_has_a_tag_of_its_own() {
        for slot in 0..SLOTS {
            assert_eq!(slot_of(slot_tag(slot).as_bytes()), slot);
        }
        let keys = RedisKeys::new("p");
        let (t, c) = (
            TenantId::new("acme").unwrap(),
            ConversationId::new("u-1").unwrap(),
        );
        let shard = keys.pending_shard(&t, &c, PendingSharding::PerSlot);
        assert_eq!(shard.0, slot_of(b"acme/u-1"));
        let state = keys.state(&t, &c);
        let tag_of = |key: &str| {
            let open = key.find('{').unwrap();
            let close = key[open..].find('}').unwrap() + open;
            slot_of(&key.as_bytes()[open + 1..close])
        };
        assert_eq!(tag_of(&keys.pending(shard)), tag_of(&state));
        assert_eq!(
            keys.pending_shard(&t, &c, PendingSharding::One),
            PendingShard(0)
        );
    }
}
