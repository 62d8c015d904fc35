-- Erasures (an end user's data erased): the archive keeps, per conversation, the `seq`
-- up to which everything was erased, and refuses events at or before it, so that a copy
-- in flight when the erasure ran (the copy is at least once) cannot bring them back.
-- It names nothing but the conversation and two numbers.
CREATE TABLE erasures (
    tenant       TEXT   NOT NULL,
    conversation TEXT   NOT NULL,
    through_seq  BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (tenant, conversation)
);
