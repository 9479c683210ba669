-- hookgate's PostgreSQL schema, version 4: each event keeps its request's query string.
-- Applied after version 3 by `store::postgres::migrate`, in the same transaction and under the
-- same advisory lock; never edited once released.
--
-- An endpoint's payload filter may match on the query string (`?site=eu`), and the API
-- explains a stored event's routing by evaluating the filter again on what was stored, so the
-- query is kept with the headers and body: the raw string as it arrived, without the `?`.
-- **NULL when the request had none** (published and operational events, most webhooks): ingest
-- writes no bytes for it, and rows of earlier versions read as having none. Nullable with no
-- default, so adding it rewrites nothing; on the partitioned parent, so every day's partition,
-- and every one made later, has it.

ALTER TABLE events ADD COLUMN query text;
