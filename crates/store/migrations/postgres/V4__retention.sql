-- Retention per tenant: events older than the tenant's cut-off are deleted by the
-- retention sweep, and the cut-off is kept here so that a copy in flight (the copy is at
-- least once, possibly late) cannot bring older events back. It names nothing but the
-- tenant and a time.
CREATE TABLE retention (
    tenant TEXT   NOT NULL PRIMARY KEY,
    before BIGINT NOT NULL
);
-- The sweep finds a tenant's old events by time.
CREATE INDEX events_by_time ON events (tenant, at);
