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
