-- Cluster mode's archive: every event acknowledged in Redis, by (tenant, conversation,
-- seq), upserted idempotently (the copy is at least once).

-- Search folds case and accents in every language: `simple` (no stemming, no stop
-- words) with unaccent in front.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION chathub_simple (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION chathub_simple
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple;

CREATE TABLE events (
    tenant       TEXT   NOT NULL,
    conversation TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    author_role  TEXT   NOT NULL,
    author_id    TEXT   NOT NULL,
    text         TEXT,
    -- The text's words, split as queries are (letters and digits; everything else
    -- separates), so that both backends find the same messages for the same query
    -- (PostgreSQL's own parser would read `CAFÉ-10` as `café` and `-10`).
    search_text  TEXT,
    body         JSONB  NOT NULL,
    -- Archive order: search pages newest first by it.
    id           BIGINT GENERATED ALWAYS AS IDENTITY,
    search       TSVECTOR GENERATED ALWAYS AS
                     (to_tsvector('chathub_simple'::regconfig, coalesce(search_text, ''))) STORED,
    PRIMARY KEY (tenant, conversation, seq)
);
CREATE INDEX events_search ON events USING GIN (search);
CREATE INDEX events_by_id ON events (tenant, id);

-- The conversations' states as last archived (search's status filter).
CREATE TABLE conversations (
    tenant       TEXT   NOT NULL,
    conversation TEXT   NOT NULL,
    state        JSONB  NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (tenant, conversation)
);
