-- Full-text search over message texts (and engagement titles): an FTS5 index kept in
-- step with `events` by triggers. unicode61 folds case and strips diacritics, for
-- tenants writing in any language.
CREATE VIRTUAL TABLE events_fts USING fts5(
    text,
    content = 'events',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.text IS NOT NULL
BEGIN
    INSERT INTO events_fts (rowid, text) VALUES (new.rowid, new.text);
END;

CREATE TRIGGER events_fts_delete AFTER DELETE ON events WHEN old.text IS NOT NULL
BEGIN
    INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;

-- Events written before this version.
INSERT INTO events_fts (events_fts) VALUES ('rebuild');
