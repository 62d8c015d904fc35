-- Edits, unsends and redactions rewrite a message's row (its text and body): the
-- full-text index follows the text.
CREATE TRIGGER events_fts_update AFTER UPDATE OF text ON events
BEGIN
    INSERT INTO events_fts (events_fts, rowid, text)
        SELECT 'delete', old.rowid, old.text WHERE old.text IS NOT NULL;
    INSERT INTO events_fts (rowid, text)
        SELECT new.rowid, new.text WHERE new.text IS NOT NULL;
END;
