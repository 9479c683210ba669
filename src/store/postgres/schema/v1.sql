-- hookgate's PostgreSQL schema, version 1. Applied by `store::postgres::migrate` in one
-- transaction under an advisory lock; never edited once released (a change is a new version).
--
-- Times are Unix milliseconds (bigint). Event and delivery ids are ULIDs stored as 16
-- big-endian bytes, so byte order is time order: every history table's key leads with one,
-- which leaves room to partition them by day later (RANGE on the id) without a key change.

-- The database's clock, in milliseconds. Every due and lease comparison of a node that runs
-- on the database's clock goes through it, so nodes with skewed clocks agree.
CREATE FUNCTION hookgate_db_now_ms() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- A caller's time `t` on the database's clock: `t` as given when `local_now` is NULL (the node
-- runs on its own clock), else the database's now plus `t`'s offset from the caller's now.
-- Saturates instead of overflowing.
CREATE FUNCTION hookgate_at(t bigint, local_now bigint) RETURNS bigint LANGUAGE sql VOLATILE
AS $$
  SELECT CASE WHEN local_now IS NULL THEN t
    ELSE least(greatest(hookgate_db_now_ms()::numeric + t - local_now, 0),
               9223372036854775807)::bigint END
$$;

-- Events as they arrived: insert-only, removed by pruning with their deliveries and attempts.
CREATE TABLE events (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    source text NOT NULL,
    event_type text,
    received_ms bigint NOT NULL,
    dedup_key text,
    -- One delivery per endpoint that matched at ingest, in order (same length).
    delivery_ids bytea[] NOT NULL,
    endpoints text[] NOT NULL,
    -- Every request header in arrival order (same length); values need not be UTF-8.
    header_names text[] NOT NULL,
    header_values bytea[] NOT NULL,
    body bytea NOT NULL
);

-- Per event: how many of its deliveries are not final, and once none is, its last death.
-- An event is finished exactly when `open` = 0; pruning reads only the two partial indexes,
-- never the events that must stay.
CREATE TABLE event_progress (
    event_id bytea PRIMARY KEY,
    open integer NOT NULL CHECK (open >= 0),
    last_death_ms bigint
);
CREATE INDEX event_progress_delivered ON event_progress (event_id)
    WHERE open = 0 AND last_death_ms IS NULL;
CREATE INDEX event_progress_dead ON event_progress (last_death_ms, event_id)
    WHERE open = 0 AND last_death_ms IS NOT NULL;

-- The hot table: exactly the deliveries that are not final. A delivering one's due time is its
-- lease expiry. Small, so it stays in memory and vacuums fast.
CREATE TABLE deliveries (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    event_id bytea NOT NULL,
    endpoint_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'delivering', 'retrying')),
    attempts integer NOT NULL,
    due_ms bigint NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    last_status_code integer,
    last_error text,
    cycle_base integer NOT NULL,
    cycle_started_ms bigint NOT NULL,
    -- Set while delivering: the lease's fencing token and the node holding it.
    lease_token bigint,
    lease_node bigint
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, due_ms, id);
CREATE INDEX deliveries_leased ON deliveries (lease_node) WHERE lease_node IS NOT NULL;

-- Final deliveries (delivered or dead), moved here by the very statement that finalizes them,
-- and back to the hot table by a requeue.
CREATE TABLE deliveries_done (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    event_id bytea NOT NULL,
    endpoint_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('delivered', 'dead')),
    attempts integer NOT NULL,
    due_ms bigint NOT NULL,
    created_ms bigint NOT NULL,
    -- For a dead one, when it died: the dead-letter index's key.
    updated_ms bigint NOT NULL,
    last_status_code integer,
    last_error text,
    cycle_base integer NOT NULL,
    cycle_started_ms bigint NOT NULL
);
CREATE INDEX deliveries_dead ON deliveries_done (updated_ms, id) WHERE status = 'dead';
CREATE INDEX deliveries_dead_by_endpoint ON deliveries_done (endpoint_id, created_ms)
    WHERE status = 'dead';

CREATE TABLE attempts (
    delivery_id bytea NOT NULL,
    n integer NOT NULL,
    at_ms bigint NOT NULL,
    status_code integer,
    latency_ms bigint NOT NULL,
    error text,
    response_excerpt bytea NOT NULL,
    PRIMARY KEY (delivery_id, n)
);

-- (namespace, provider delivery id or body hash) → the event that carried it, until expiry.
CREATE TABLE dedup (
    scope text NOT NULL,
    key text NOT NULL,
    event_id bytea NOT NULL,
    expires_ms bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX dedup_expiry ON dedup (expires_ms);

-- Present only for a paused endpoint.
CREATE TABLE endpoint_state (
    endpoint_id text PRIMARY KEY,
    paused boolean NOT NULL
);

-- Sources and endpoints made through the admin API: their JSON, as given.
CREATE TABLE config_entries (
    kind text NOT NULL CHECK (kind IN ('source', 'endpoint')),
    id text NOT NULL,
    json bytea NOT NULL,
    PRIMARY KEY (kind, id)
);

-- One row per running (or lately running) process, with a heartbeat on the database's clock:
-- the leases of a node that closed or stopped beating are taken back.
CREATE TABLE nodes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_ms bigint NOT NULL,
    heartbeat_ms bigint NOT NULL,
    closed boolean NOT NULL DEFAULT false
);

-- Deliveries not yet final, per endpoint, in 16 shards (by the delivery id's last byte) so
-- concurrent results rarely wait on one row. Kept by the triggers below in the very
-- statements that add rows to or remove rows from the hot table, so the sum over the shards
-- is always exactly the hot table's row count.
CREATE TABLE pending_counts (
    endpoint_id text NOT NULL,
    shard smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (endpoint_id, shard)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE FUNCTION hookgate_count_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO pending_counts (endpoint_id, shard, n)
        SELECT endpoint_id, get_byte(id, 15) % 16, count(*) FROM changed_rows
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (endpoint_id, shard) DO UPDATE SET n = pending_counts.n + excluded.n;
    ELSE
        INSERT INTO pending_counts (endpoint_id, shard, n)
        SELECT endpoint_id, get_byte(id, 15) % 16, -count(*) FROM changed_rows
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (endpoint_id, shard) DO UPDATE SET n = pending_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_counted_in AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hookgate_count_deliveries();
CREATE TRIGGER deliveries_counted_out AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hookgate_count_deliveries();

-- Bumped in the very transactions that change config entries or pauses, so every node can
-- tell, by reading one row, that the catalog changed (`catalog::sync`). A row, not a sequence:
-- a sequence moves before its transaction commits, and a node that read it then would miss the
-- change.
CREATE TABLE catalog_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO catalog_version (version) VALUES (0);

CREATE FUNCTION hookgate_bump_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER config_entries_versioned AFTER INSERT OR UPDATE OR DELETE ON config_entries
    FOR EACH STATEMENT EXECUTE FUNCTION hookgate_bump_catalog();
CREATE TRIGGER endpoint_state_versioned AFTER INSERT OR UPDATE OR DELETE ON endpoint_state
    FOR EACH STATEMENT EXECUTE FUNCTION hookgate_bump_catalog();

-- Per endpoint, shared by every node: the rate limit's state (GCRA's theoretical arrival
-- time, fractional milliseconds), read and advanced by claims under the endpoint's advisory
-- lock, so an endpoint's rate holds across nodes together.
CREATE TABLE lane_state (
    endpoint_id text PRIMARY KEY,
    tat_ms double precision NOT NULL
);
