-- The embedded default's data directory: everything a restart must keep.
-- Values are JSON (the domain's serde shapes), readable with sqlite3's json functions.

-- Conversation state (status, owner, epoch, seq, disabled): the hot tier's decision input.
CREATE TABLE conversations (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation)
) WITHOUT ROWID;

-- Every event ever acknowledged, by (tenant, conversation, seq): the record tier.
-- `kind` is `message` or `status`; `text` is a message's text (search), else NULL.
CREATE TABLE events (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    author_role  TEXT    NOT NULL,
    author_id    TEXT    NOT NULL,
    text         TEXT,
    body         TEXT    NOT NULL,
    PRIMARY KEY (tenant, conversation, seq)
);
CREATE INDEX events_by_time ON events (tenant, at);

-- Read marks: participant key (`end_user:<id>`, `agent:<id>`) to seq.
CREATE TABLE read_marks (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    participant  TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation, participant)
) WITHOUT ROWID;

-- Recent sends' answers by client_msg_id, until they expire (idempotent retries).
CREATE TABLE sends (
    tenant        TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    author        TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL,
    receipt       TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation, author, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX sends_by_expiry ON sends (expires_at);

-- The tenant's queue index: one entry per conversation.
CREATE TABLE queue (
    tenant       TEXT NOT NULL,
    conversation TEXT NOT NULL,
    entry        TEXT NOT NULL,
    PRIMARY KEY (tenant, conversation)
) WITHOUT ROWID;

-- The tenant's recent queue changes (what consoles catch up from), trimmed by length.
CREATE TABLE inbox (
    tenant   TEXT    NOT NULL,
    position INTEGER NOT NULL,
    entry    TEXT    NOT NULL,
    PRIMARY KEY (tenant, position)
) WITHOUT ROWID;

-- The agent workspace: settings, catalogue items, profiles, engagement history,
-- redemptions and canned responses, one row per record (`kind`, `key`).
CREATE TABLE workspace (
    tenant TEXT NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;

-- Pending offline-webhook jobs by (tenant, conversation, seq).
CREATE TABLE webhook_jobs (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation, seq)
) WITHOUT ROWID;

-- The data directory's own facts (its history id).
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
