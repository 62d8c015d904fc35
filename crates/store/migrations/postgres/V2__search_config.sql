-- A text search configuration per tenant (default `chathub_simple`: no stemming, any
-- language): a tenant writing one language may choose its stemming configuration
-- (`english`, `french`, …). Each event keeps the configuration it was indexed with;
-- changing a tenant's re-indexes its events.
CREATE TABLE tenant_search (
    tenant TEXT     PRIMARY KEY,
    config REGCONFIG NOT NULL
);

ALTER TABLE events ADD COLUMN search_config REGCONFIG NOT NULL
    DEFAULT 'chathub_simple'::regconfig;
DROP INDEX events_search;
ALTER TABLE events DROP COLUMN search;
ALTER TABLE events ADD COLUMN search TSVECTOR GENERATED ALWAYS AS
    (to_tsvector(search_config, coalesce(search_text, ''))) STORED;
CREATE INDEX events_search ON events USING GIN (search);
