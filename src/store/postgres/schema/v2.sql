-- hookgate's PostgreSQL schema, version 2: the history tables by day. Applied after version 1
-- by `store::postgres::migrate`, in the same transaction and under the same advisory lock;
-- never edited once released.
--
-- `events`, `event_progress`, `deliveries_done` and `attempts` become tables PARTITIONED BY
-- RANGE on the ULID that leads their key (16 big-endian bytes, so byte order is time order).
-- Day d (UTC days since 1970-01-01) holds the ids of [d × 86,400,000 ms, (d + 1) × 86,400,000
-- ms); its partitions are `<table>_pYYYYMMDD`. An event's deliveries are made with it, in its
-- millisecond, so an event, its progress, its finished deliveries and their attempts share a
-- day. **There is no DEFAULT partition**: with one, every new or dropped partition would lock
-- and scan it. Partitions are made ahead (today to today + 7) and on demand; a day past
-- retention is dropped whole, the rows that must stay copied into its new partitions.
-- The hot table `deliveries` is not partitioned.

-- The first id of day `day`: its first millisecond as 6 bytes, then 10 zero bytes. Past the
-- last millisecond a ULID can hold, a bound above every 16-byte id.
CREATE FUNCTION hookgate_day_bound(day integer) RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN day::bigint * 86400000 >= 281474976710656
    THEN decode(repeat('ff', 17), 'hex')
    ELSE decode(lpad(to_hex(day::bigint * 86400000), 12, '0') || repeat('00', 10), 'hex') END
$$;

-- The day an id belongs to.
CREATE FUNCTION hookgate_day_of(id bytea) RETURNS integer LANGUAGE sql IMMUTABLE
AS $$ SELECT (('x' || encode(substring(id FROM 1 FOR 6), 'hex'))::bit(48)::bigint / 86400000)::integer $$;

-- Makes day `day`'s four partitions, those missing. The caller holds the partition lock
-- (`store::postgres::partitions`), so two nodes do not race; a partition that exists is left
-- as it is.
CREATE FUNCTION hookgate_make_day(day integer) RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
  suffix text := to_char(date '1970-01-01' + day, 'YYYYMMDD');
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'event_progress', 'deliveries_done', 'attempts'] LOOP
    IF to_regclass(t || '_p' || suffix) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (decode(%L, ''hex'')) '
                     'TO (decode(%L, ''hex''))', t || '_p' || suffix, t,
                     encode(hookgate_day_bound(day), 'hex'),
                     encode(hookgate_day_bound(day + 1), 'hex'));
    END IF;
  END LOOP;
END
$$;

-- Days past retention whose partitions were made again holding only what had to stay
-- (unfinished events, dead letters still kept): the row-level prune takes those as they
-- become prunable, and the day's partitions go once they are empty.
CREATE TABLE retired_days (
    day integer PRIMARY KEY
);

-- The version 1 tables step aside (their indexes too, whose names the new ones take).
ALTER TABLE events RENAME TO events_v1;
ALTER INDEX events_pkey RENAME TO events_v1_pkey;
ALTER TABLE event_progress RENAME TO event_progress_v1;
ALTER INDEX event_progress_pkey RENAME TO event_progress_v1_pkey;
ALTER INDEX event_progress_delivered RENAME TO event_progress_v1_delivered;
ALTER INDEX event_progress_dead RENAME TO event_progress_v1_dead;
ALTER TABLE deliveries_done RENAME TO deliveries_done_v1;
ALTER INDEX deliveries_done_pkey RENAME TO deliveries_done_v1_pkey;
ALTER INDEX deliveries_dead RENAME TO deliveries_done_v1_dead;
ALTER INDEX deliveries_dead_by_endpoint RENAME TO deliveries_done_v1_dead_by_endpoint;
ALTER TABLE attempts RENAME TO attempts_v1;
ALTER INDEX attempts_pkey RENAME TO attempts_v1_pkey;

-- The same columns, keys, checks (named as in version 1) and indexes, by day.
CREATE TABLE events (
    id bytea PRIMARY KEY CONSTRAINT events_id_check CHECK (length(id) = 16),
    source text NOT NULL,
    event_type text,
    received_ms bigint NOT NULL,
    dedup_key text,
    delivery_ids bytea[] NOT NULL,
    endpoints text[] NOT NULL,
    header_names text[] NOT NULL,
    header_values bytea[] NOT NULL,
    body bytea NOT NULL
) PARTITION BY RANGE (id);

CREATE TABLE event_progress (
    event_id bytea PRIMARY KEY,
    open integer NOT NULL CONSTRAINT event_progress_open_check CHECK (open >= 0),
    last_death_ms bigint
) PARTITION BY RANGE (event_id);
CREATE INDEX event_progress_delivered ON event_progress (event_id)
    WHERE open = 0 AND last_death_ms IS NULL;
CREATE INDEX event_progress_dead ON event_progress (last_death_ms, event_id)
    WHERE open = 0 AND last_death_ms IS NOT NULL;
-- New in version 2: the events still waiting, which a day's drop keeps, found without
-- reading the day.
CREATE INDEX event_progress_open ON event_progress (event_id) WHERE open > 0;

CREATE TABLE deliveries_done (
    id bytea PRIMARY KEY CONSTRAINT deliveries_done_id_check CHECK (length(id) = 16),
    event_id bytea NOT NULL,
    endpoint_id text NOT NULL,
    status text NOT NULL CONSTRAINT deliveries_done_status_check
        CHECK (status IN ('delivered', 'dead')),
    attempts integer NOT NULL,
    due_ms bigint NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    last_status_code integer,
    last_error text,
    cycle_base integer NOT NULL,
    cycle_started_ms bigint NOT NULL
) PARTITION BY RANGE (id);
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
) PARTITION BY RANGE (delivery_id);

-- A partition for every day the data has, and for today to today + 7 (by the database's
-- clock; a node makes its own days ahead at open, by the clock it runs on).
DO $$
DECLARE
  d integer;
BEGIN
  FOR d IN
    SELECT hookgate_day_of(id) FROM events_v1
    UNION SELECT hookgate_day_of(event_id) FROM event_progress_v1
    UNION SELECT hookgate_day_of(id) FROM deliveries_done_v1
    UNION SELECT hookgate_day_of(delivery_id) FROM attempts_v1
    UNION SELECT generate_series(0, 7) + (hookgate_db_now_ms() / 86400000)::integer
  LOOP
    PERFORM hookgate_make_day(d);
  END LOOP;
END
$$;

INSERT INTO events SELECT * FROM events_v1;
INSERT INTO event_progress SELECT * FROM event_progress_v1;
INSERT INTO deliveries_done SELECT * FROM deliveries_done_v1;
INSERT INTO attempts SELECT * FROM attempts_v1;

DROP TABLE events_v1, event_progress_v1, deliveries_done_v1, attempts_v1;

-- The leases an endpoint holds, for the in-flight count every claim makes: only delivering
-- rows, so a deep backlog (pending, or retrying later) is never scanned to count them.
CREATE INDEX deliveries_in_flight ON deliveries (endpoint_id, due_ms) WHERE status = 'delivering';
