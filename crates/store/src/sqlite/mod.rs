//! The embedded default's data directory: SQLite, written ahead of memory.
//!
//! The embedded node decides in memory (the hot tier: [`MemoryStore`], [`MemoryWorkspace`],
//! [`MemoryJobs`]) and keeps every change in `chathub.db` inside the data directory. A
//! command's changes are handed to the [`Journal`] as [`Write`]s *before* memory changes
//! and before anything is published; the command is acknowledged once its writes are
//! committed. One writer thread commits them: whatever arrived while the previous commit
//! ran goes into the next transaction (group commit), so one fsync covers many commands.
//! At start the directory is read back into memory ([`open`]), so a restart — `kill -9`
//! included — keeps every acknowledged change and the same history id.
//!
//! The `events` table keeps every event ever acknowledged (the record tier); memory keeps
//! a window of each conversation's latest events, and older pages are read from here.
//!
//! # Layout
//! - this file: [`DataDirConfig`], [`open`], the [`Journal`] handle and [`Write`].
//! - `writer`: the writer thread (group commit, one savepoint per command).
//! - `load`: reading the directory back into memory.
//! - `read`: reads served from the file (deep history).
//! - `search`: full-text search (FTS5) of the tenant's messages.

mod load;
mod read;
mod search;
mod writer;

use crate::jobs::WebhookJob;
use crate::rows::{QueueEntry, Receipt};
use crate::{HistoryRange, HistorySlice, MemoryJobs, MemoryStore, MemoryStoreConfig};
use crate::{MemoryWorkspace, StoreError};
use chathub_domain::{ConversationId, ConversationState, Event, TenantId};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "chathub.db";
/// The lock file that keeps a second node off the same directory.
pub const LOCK_FILE: &str = "chathub.lock";

/// How hard a commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit group is fsynced: an acknowledged command survives a crash of the
    /// process and of the machine (power loss).
    #[default]
    Full,
    /// Commits reach the operating system, fsynced at checkpoints: an acknowledged command
    /// survives a crash of the process (`kill -9`); a crash of the machine may lose the
    /// last moments.
    Normal,
}

/// Settings of the data directory.
#[derive(Debug, Clone)]
pub struct DataDirConfig {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// How hard commits are pushed to the disk. Default [`SyncMode::Full`].
    pub sync: SyncMode,
    /// Commands waiting for the writer at most; past it commands wait for room (back
    /// pressure, never an unbounded queue). Default 8 192.
    pub queue: usize,
    /// Commands committed in one transaction at most. Default 1 024.
    pub max_group: usize,
    /// Connections serving reads from the file (deep history). Default 4.
    pub readers: usize,
}

impl DataDirConfig {
    /// Defaults for the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DataDirConfig {
            dir: dir.into(),
            sync: SyncMode::Full,
            queue: 8192,
            max_group: 1024,
            readers: 4,
        }
    }
}

/// One change to keep, in the order given. Encoded to rows by the writer thread.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Write {
    /// A conversation's state after a command.
    State {
        /// The tenant.
        tenant: TenantId,
        /// The conversation.
        conversation: ConversationId,
        /// Its new state.
        state: ConversationState,
        /// When, ms.
        at: u64,
    },
    /// Events a command recorded (an event already kept is left as it is).
    Events {
        /// The tenant.
        tenant: TenantId,
        /// The conversation.
        conversation: ConversationId,
        /// The events, consecutive `seq`s.
        events: Vec<Event>,
    },
    /// A send's answer, remembered for its retries until `expires` (ms).
    Send {
        /// The tenant.
        tenant: TenantId,
        /// The conversation.
        conversation: ConversationId,
        /// The author's participant key.
        author: String,
        /// The sender's idempotency key.
        client_msg_id: String,
        /// The answer.
        receipt: Receipt,
        /// Until when, ms.
        expires: u64,
    },
    /// A participant's read mark.
    Read {
        /// The tenant.
        tenant: TenantId,
        /// The conversation.
        conversation: ConversationId,
        /// The participant key.
        participant: String,
        /// The mark.
        seq: u64,
    },
    /// A conversation's queue entry.
    Queue {
        /// The tenant.
        tenant: TenantId,
        /// The entry.
        entry: QueueEntry,
    },
    /// A queue change at `position` of the tenant's inbox; positions `keep` or more
    /// before it are dropped.
    Inbox {
        /// The tenant.
        tenant: TenantId,
        /// Its position.
        position: u64,
        /// The entry after the change.
        entry: QueueEntry,
        /// Changes kept per tenant.
        keep: u64,
    },
    /// A workspace record (`value` as JSON), or its removal (`None`).
    Workspace {
        /// The tenant.
        tenant: TenantId,
        /// Which kind of record (see the workspace's row kinds).
        kind: &'static str,
        /// Its key within the kind.
        key: String,
        /// The record as JSON; `None` deletes it.
        value: Option<String>,
    },
    /// A pending offline-webhook job, due at `due` (ms).
    JobAdded {
        /// The job.
        job: WebhookJob,
        /// When it is due.
        due: u64,
    },
    /// A webhook job done.
    JobDone {
        /// The job.
        job: WebhookJob,
    },
    /// A conversation erased: its state becomes `state` (the counters), and its events
    /// (with their search entries), read marks, remembered sends, queue entry, inbox
    /// changes and webhook jobs are deleted.
    Erase {
        /// The tenant.
        tenant: TenantId,
        /// The conversation.
        conversation: ConversationId,
        /// Its state after the erasure.
        state: ConversationState,
        /// When, ms.
        at: u64,
    },
    /// The tenant's retention: every event (with its search entry) and inbox change
    /// older than `before` (ms) is deleted.
    Trim {
        /// The tenant.
        tenant: TenantId,
        /// The cut-off, ms since the Unix epoch.
        before: u64,
    },
}

/// One command's writes and who waits for their commit.
struct Batch {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The data directory's write and read handle. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<JournalInner>,
}

struct JournalInner {
    to_writer: mpsc::Sender<Batch>,
    readers: read::Readers,
    history_id: String,
    dir: PathBuf,
    /// Held for the process's life: a second node on the same directory is refused.
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Commits `writes` as one unit (all or none), grouped with other commands' writes
    /// in one transaction. Returns once they are on disk as [`SyncMode`] says.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.inner
            .to_writer
            .send(Batch { writes, done })
            .await
            .map_err(|_| writer_gone())?;
        committed.await.map_err(|_| writer_gone())?
    }

    /// Whether the writer thread still takes commits (it stops only on a bug: then every
    /// command answers an error, and the node should leave the balancer).
    pub fn is_writing(&self) -> bool {
        !self.inner.to_writer.is_closed()
    }

    /// The id of this directory's history: made when the directory was created, kept for
    /// its life (clients resuming across a restart keep their place).
    pub fn history_id(&self) -> &str {
        &self.inner.history_id
    }

    /// How many events of a conversation the file keeps (every one, not only memory's
    /// window).
    pub async fn event_count(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<u64, StoreError> {
        let (tenant, conversation) = (tenant.clone(), conversation.clone());
        self.inner
            .readers
            .run(move |conn| read::event_count(conn, &tenant, &conversation))
            .await
    }

    /// How many of the tenant's events older than `before` (ms) the file keeps.
    pub async fn events_before(&self, tenant: &TenantId, before: u64) -> Result<u64, StoreError> {
        let tenant = tenant.clone();
        self.inner
            .readers
            .run(move |conn| read::events_before(conn, &tenant, before))
            .await
    }

    /// A slice of a conversation's history read from the file (every event kept, not
    /// only memory's window).
    pub async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        range: HistoryRange,
    ) -> Result<HistorySlice, StoreError> {
        let (tenant, conversation) = (tenant.clone(), conversation.clone());
        self.inner
            .readers
            .run(move |conn| read::history(conn, &tenant, &conversation, range))
            .await
    }
}

impl crate::search::Search for Journal {
    /// Searches the tenant's messages (every event kept, newest first).
    async fn search(
        &self,
        tenant: &TenantId,
        query: crate::search::SearchQuery,
    ) -> Result<crate::search::SearchPage, StoreError> {
        let tenant = tenant.clone();
        self.inner
            .readers
            .run(move |conn| search::search(conn, &tenant, &query))
            .await
    }
}

impl crate::report::Reports for Journal {
    /// Streams the tenant's conversation cycles opened in `[from, to)` (ms) into `rows`,
    /// in `(conversation, seq)` order, as they are read: nothing is built in memory but
    /// the cycle at hand. Stops early when the receiver is gone.
    async fn report_cycles(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
        rows: mpsc::Sender<crate::report::CycleRow>,
    ) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        self.inner
            .readers
            .run(move |conn| read::cycles(conn, &tenant, from, to, &rows))
            .await
    }
}

fn writer_gone() -> StoreError {
    StoreError::Internal("the data directory's writer has stopped".into())
}

/// The data directory opened: its journal, and the memory stores filled from it (and
/// writing through it).
pub struct Opened {
    /// The journal.
    pub journal: Journal,
    /// Conversations, history window, read marks, queue and inbox.
    pub store: MemoryStore,
    /// The agent workspace.
    pub workspace: MemoryWorkspace,
    /// Pending webhook jobs.
    pub jobs: MemoryJobs,
}

/// Opens (or creates) the data directory: takes its lock, applies pending schema
/// migrations, reads everything back into memory and starts the writer thread.
///
/// Fails when another process holds the directory, when it cannot be created or read,
/// or when its data does not decode.
pub fn open(config: &DataDirConfig, store: MemoryStoreConfig) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(&config.dir).map_err(io("cannot create the data directory"))?;
    let lock = File::create(config.dir.join(LOCK_FILE))
        .map_err(io("cannot create the data directory's lock file"))?;
    lock.try_lock()
        .map_err(|_| StoreError::Invalid("data directory: another chathub process is using it"))?;
    let path = config.dir.join(DATABASE_FILE);
    let mut conn = writer::connect(&path, config.sync)?;
    migrate(&mut conn)?;
    let history_id = load::history_id(&conn)?;
    let journal_parts = (
        read::Readers::open(&path, config.readers.max(1))?,
        history_id,
    );
    let (to_writer, from_callers) = mpsc::channel(config.queue.max(1));
    let journal = Journal {
        inner: Arc::new(JournalInner {
            to_writer,
            readers: journal_parts.0,
            history_id: journal_parts.1,
            dir: config.dir.clone(),
            _lock: lock,
        }),
    };
    let opened = Opened {
        store: MemoryStore::journaled(store, journal.clone()),
        workspace: MemoryWorkspace::journaled(journal.clone()),
        jobs: MemoryJobs::journaled(journal.clone()),
        journal,
    };
    load::into_memory(&conn, &opened)?;
    writer::start(conn, from_callers, config.max_group.max(1))?;
    Ok(opened)
}

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Applies the schema migrations the file lacks (versioned files in
/// `migrations/sqlite`, recorded in the file's `refinery_schema_history`).
pub fn migrate(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    embedded::migrations::runner()
        .run(conn)
        .map(|_| ())
        .map_err(|e| StoreError::Internal(format!("schema migration failed: {e}")))
}

/// Applies the schema migrations up to `version` only: a file as an earlier release
/// left it (for tests of upgrades).
pub fn migrate_to(conn: &mut rusqlite::Connection, version: i32) -> Result<(), StoreError> {
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run(conn)
        .map(|_| ())
        .map_err(|e| StoreError::Internal(format!("schema migration failed: {e}")))
}

/// The migrations this build knows, as `(version, name)`, oldest first.
pub fn migrations() -> Vec<(i32, String)> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect()
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Unavailable {
        source: format!("{what}: {e}").into(),
    }
}

/// Classifies a SQLite error: a busy or full or failing disk is an outage; anything
/// else (a constraint, a bad statement) is a bug.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen | OutOfMemory
            | ReadOnly,
        ) => StoreError::Unavailable {
            source: Box::new(e),
        },
        _ => StoreError::Internal(e.to_string()),
    }
}
