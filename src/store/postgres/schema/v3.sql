-- hookgate's PostgreSQL schema, version 3: ordered delivery. Applied after version 2 by
-- `store::postgres::migrate`, in the same transaction and under the same advisory lock; never
-- edited once released.
--
-- A delivery of an endpoint that delivers in order carries its order key and its place in it
-- (`order_seq`, from one sequence taken under the key's advisory lock, so places grow in each
-- key's commit order across nodes). **Only a key's head (its lowest place not yet final) is
-- due**; the others are `blocked` behind it and out of the due index, until the head becomes
-- final and the next is promoted in the same transaction. Rows of earlier versions read as
-- unordered, not blocked, held 0: they stay due as they were.

ALTER TABLE deliveries
    ADD COLUMN order_key text,
    ADD COLUMN order_seq bigint,
    ADD COLUMN blocked boolean NOT NULL DEFAULT false,
    ADD COLUMN cycle_held_ms bigint NOT NULL DEFAULT 0;

-- The same columns, so a delivery moves between the two tables whole (`rows::COLUMNS`). On
-- the partitioned parent: every partition, and every one made later, gets them.
ALTER TABLE deliveries_done
    ADD COLUMN order_key text,
    ADD COLUMN order_seq bigint,
    ADD COLUMN blocked boolean NOT NULL DEFAULT false,
    ADD COLUMN cycle_held_ms bigint NOT NULL DEFAULT 0;

-- The schedule holds exactly the deliveries that are not final and not blocked: every due
-- read (`reads.rs`, the claim) says `NOT blocked`, so it walks this index and never a key's
-- waiting rows.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (endpoint_id, due_ms, id) WHERE NOT blocked;

-- Each key's rows in place order: whether a key has a head (ingest, a replay), and which row
-- is next when its head ends (the promotion).
CREATE INDEX deliveries_order ON deliveries (endpoint_id, order_key, order_seq)
    WHERE order_key IS NOT NULL;

-- Places, for every key of every endpoint.
CREATE SEQUENCE delivery_order_seq;

-- Each endpoint's circuit breaker (`store::health::Health`), once it has opened: written in
-- the transaction of the result, probe lease or enable that moves it, under this row's lock.
-- Absent: closed and never held. `state` is `State::code` (0 closed, 1 open, 2 half-open,
-- 3 disabled). Each node counts its own results' window in memory.
CREATE TABLE endpoint_health (
    endpoint_id text PRIMARY KEY,
    state smallint NOT NULL CONSTRAINT endpoint_health_state_check CHECK (state BETWEEN 0 AND 3),
    since_ms bigint NOT NULL,
    until_ms bigint NOT NULL,
    trips integer NOT NULL,
    failing_since_ms bigint,
    held_total_ms bigint NOT NULL,
    held_from_ms bigint,
    probe_id bytea,
    probe_token bigint,
    probe_until_ms bigint
);

-- Operational events (`model::ops`) written with the change they report, until `ops`
-- publishes them.
CREATE TABLE ops_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms bigint NOT NULL,
    event_type text NOT NULL,
    subject text,
    body bytea NOT NULL
);
