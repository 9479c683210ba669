//! Reads: a lane's schedule, lookups of one event, delivery or its attempts, the config
//! entries, pauses, and the gauges read at scrape. Each is one statement on a pooled
//! connection outside any transaction (so it pins no snapshot), and a delivery is read from
//! both tables in one statement, so one moving between them is never missed.

use std::collections::HashSet;

use bytes::Bytes;
use tokio_postgres::Row;

use super::error::{Fail, retrying};
use super::rows::{COLUMNS, delivery, id_bytes, id_from};
use super::time::{ms, unms};
use super::{PgStore, Shared};
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, Delivery, Event, Payload};
use crate::store::{DueBatch, DueDelivery, EntryKind, StoreError};

/// A lane's schedule: the deliveries due, with their events, and the first due time after
/// them. `now` is computed once, in SQL, on whichever clock is in use. A delivery blocked
/// behind its order key's head is not in the schedule, whatever its due time says (and
/// `NOT blocked` is the due index's predicate, so the reads walk that index).
const DUE: &str = "\
    WITH now AS MATERIALIZED ( \
      SELECT t, (SELECT f.due_ms FROM deliveries f WHERE f.endpoint_id = $1 AND f.due_ms > t \
                 AND NOT f.blocked ORDER BY f.due_ms, f.id LIMIT 1) AS next_due \
      FROM (SELECT hookgate_at($2, $3) AS t) s) \
    SELECT now.t, now.next_due, x.* FROM now LEFT JOIN LATERAL ( \
      SELECT d.id, d.event_id, d.attempts, d.cycle_base, d.cycle_started_ms, d.due_ms, \
             e.received_ms, e.source, e.event_type, e.header_names, e.header_values, e.body \
      FROM deliveries d JOIN events e ON e.id = d.event_id \
      WHERE d.endpoint_id = $1 AND d.due_ms <= now.t AND NOT d.blocked \
        AND d.id <> ALL($4::bytea[]) \
      ORDER BY d.due_ms, d.id LIMIT $5) x ON true";

/// The due time of the first delivery after (due, id) in an endpoint's schedule.
const AFTER: &str = "SELECT due_ms FROM deliveries WHERE endpoint_id = $1 \
    AND (due_ms, id) > ($2, $3) AND NOT blocked ORDER BY due_ms, id LIMIT 1";

/// A delivery wherever it is, in one snapshot.
pub(super) fn either_table(filter: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM deliveries WHERE {filter} \
         UNION ALL SELECT {COLUMNS} FROM deliveries_done WHERE {filter}"
    )
}

impl PgStore {
    /// Up to `limit` deliveries of `endpoint` due at `now_ms`, leaving out `skip`, earliest
    /// first, and when the first one not taken is due (a skipped one counts, as in redb). With
    /// `idle_poll_ms`, that time is at most so far away, so a lane looks again even if the
    /// work other nodes commit is never announced here.
    pub async fn due(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: &HashSet<DeliveryId>,
    ) -> Result<DueBatch, StoreError> {
        let s = &self.shared;
        let skip: Vec<Vec<u8>> = skip.iter().map(|i| id_bytes(i.0).to_vec()).collect();
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = retrying(|| async {
            let client = s.conn().await?;
            let stmt = client.prepare_cached(DUE).await?;
            let base = s.clock.sql_base();
            Ok(client
                .query(&stmt, &[&endpoint, &ms(now_ms), &base, &skip, &limit_sql])
                .await?)
        })
        .await?;
        let mut batch = DueBatch::default();
        let Some(first) = rows.first() else {
            return Ok(batch);
        };
        let (now_db, mut next_db): (i64, Option<i64>) = (
            first
                .try_get(0)
                .map_err(Fail::from)
                .map_err(Fail::into_store)?,
            first
                .try_get(1)
                .map_err(Fail::from)
                .map_err(Fail::into_store)?,
        );
        // Times go back to the caller's clock: the lane compares them with its own.
        let shift = |t: u64| unms(ms(t).saturating_sub(now_db).saturating_add(ms(now_ms)));
        let mut last = None;
        for row in &rows {
            if let Some(mut item) = due_item(row).map_err(Fail::into_store)? {
                item.received_ms = shift(item.received_ms);
                item.cycle_started_ms = shift(item.cycle_started_ms);
                last = Some((row_due(row)?, item.delivery_id));
                batch.items.push(item);
            }
        }
        if batch.items.len() >= limit {
            // Full: the next one is whatever follows the last taken, due or not.
            // (With a limit of 0, that is the first of all.)
            let (due, id) = last.unwrap_or((i64::MIN, DeliveryId(0)));
            let key = id_bytes(id.0);
            let found = retrying(|| async {
                let client = s.conn().await?;
                let stmt = client.prepare_cached(AFTER).await?;
                Ok(client
                    .query_opt(&stmt, &[&endpoint, &due, &key.as_slice()])
                    .await?)
            })
            .await?;
            next_db = found
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(|e| Fail::from(e).into_store())?;
        }
        batch.next_due_ms = next_db.map(|t| shift(unms(t)));
        if s.idle_poll_ms > 0 {
            let poll = now_ms.saturating_add(s.idle_poll_ms);
            batch.next_due_ms = Some(batch.next_due_ms.map_or(poll, |n| n.min(poll)));
        }
        Ok(batch)
    }

    /// One event and its payload.
    pub async fn event(&self, id: EventId) -> Result<Option<(Event, Payload)>, StoreError> {
        let s = &self.shared;
        let key = id_bytes(id.0);
        let row = retrying(|| async {
            let client = s.conn().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT id, source, event_type, received_ms, dedup_key, delivery_ids, \
                     endpoints, header_names, header_values, body, query FROM events \
                     WHERE id = $1",
                )
                .await?;
            Ok(client.query_opt(&stmt, &[&key.as_slice()]).await?)
        })
        .await?;
        row.map(|r| {
            let event = event_row(&r)?;
            let names: Vec<String> = r.try_get(7)?;
            let values: Vec<Vec<u8>> = r.try_get(8)?;
            let body: Vec<u8> = r.try_get(9)?;
            // NULL: none (and every row written before schema version 4).
            let query: Option<String> = r.try_get(10)?;
            Ok((
                event,
                Payload {
                    headers: names.into_iter().zip(values).collect(),
                    query: query.unwrap_or_default(),
                    body: Bytes::from(body),
                },
            ))
        })
        .transpose()
        .map_err(Fail::into_store)
    }

    /// One delivery, final or not.
    pub async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let s = &self.shared;
        let key = id_bytes(id.0);
        let row = retrying(|| async {
            let client = s.conn().await?;
            let stmt = client.prepare_cached(&either_table("id = $1")).await?;
            Ok(client.query_opt(&stmt, &[&key.as_slice()]).await?)
        })
        .await?;
        row.map(|r| delivery(&r, 0))
            .transpose()
            .map_err(Fail::into_store)
    }

    /// A delivery's attempts, oldest first.
    pub async fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        let s = &self.shared;
        let key = id_bytes(id.0);
        let rows = retrying(|| async {
            let client = s.conn().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT at_ms, status_code, latency_ms, error, response_excerpt \
                     FROM attempts WHERE delivery_id = $1 ORDER BY n",
                )
                .await?;
            Ok(client.query(&stmt, &[&key.as_slice()]).await?)
        })
        .await?;
        rows.iter()
            .map(|r| {
                let code: Option<i32> = r.try_get(1)?;
                Ok(Attempt {
                    at_ms: unms(r.try_get(0)?),
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    latency_ms: unms(r.try_get(2)?),
                    error: r.try_get(3)?,
                    response_excerpt: r.try_get(4)?,
                })
            })
            .collect::<Result<_, Fail>>()
            .map_err(Fail::into_store)
    }

    /// Every event id, oldest first (tests and tools: it reads the whole table).
    pub async fn event_ids(&self) -> Result<Vec<EventId>, StoreError> {
        let rows = simple(&self.shared, "SELECT id FROM events ORDER BY id", &[]).await?;
        rows.iter()
            .map(|r| Ok(EventId(id_from(r.try_get(0)?)?)))
            .collect::<Result<_, Fail>>()
            .map_err(Fail::into_store)
    }

    /// The stored entries of a kind: (id, JSON).
    pub async fn entries(&self, kind: EntryKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = simple(
            &self.shared,
            "SELECT id, json FROM config_entries WHERE kind = $1 ORDER BY id",
            &[&kind.as_str()],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, Fail>>()
            .map_err(Fail::into_store)
    }

    /// Endpoints that are paused.
    pub async fn paused_endpoints(&self) -> Result<HashSet<String>, StoreError> {
        let rows = simple(
            &self.shared,
            "SELECT endpoint_id FROM endpoint_state WHERE paused",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<_, Fail>>()
            .map_err(Fail::into_store)
    }

    /// Moves whenever a config entry or a pause is stored, by any node (a trigger bumps it in
    /// the same transaction).
    pub async fn catalog_version(&self) -> Result<u64, StoreError> {
        let rows = simple(&self.shared, "SELECT version FROM catalog_version", &[]).await?;
        let version: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| Fail::from(e).into_store())?
            .unwrap_or(0);
        Ok(u64::try_from(version).unwrap_or(0))
    }

    /// Dead letters kept, counted up to `cap`: a walk of at most `cap` entries of the
    /// partial index on dead deliveries, never of the table.
    pub async fn dead_count(&self, cap: u64) -> Result<u64, StoreError> {
        let rows = simple(
            &self.shared,
            "SELECT count(*) FROM (SELECT 1 FROM deliveries_done \
             WHERE status = 'dead' LIMIT $1) d",
            &[&i64::try_from(cap).unwrap_or(i64::MAX)],
        )
        .await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| Fail::from(e).into_store())?,
            None => 0,
        };
        Ok(unms(n))
    }

    /// Deliveries not yet final, across every node.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        let rows = simple(
            &self.shared,
            "SELECT coalesce(sum(n), 0)::bigint FROM pending_counts",
            &[],
        )
        .await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| Fail::from(e).into_store())?,
            None => 0,
        };
        Ok(unms(n))
    }

    /// The store's state for the metrics: pending deliveries (in all, and per endpoint with
    /// its lag), queued ingests, the database's size. A failed read shows as -1, as redb's
    /// gauges do.
    pub async fn gauges(&self, endpoints: &[String], now_ms: u64) -> crate::telemetry::StoreGauges {
        let queued = self.inner.ingest.max_capacity() - self.inner.ingest.capacity();
        let read = gauges(&self.shared, endpoints, now_ms).await;
        let (per_endpoint, pending, size) = match read {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the store's gauges");
                (Vec::new(), -1, -1)
            }
        };
        crate::telemetry::StoreGauges {
            per_endpoint,
            pending_deliveries: pending,
            writer_queue: i64::try_from(queued).unwrap_or(i64::MAX),
            file_bytes: size,
            quarantined: 0,
        }
    }
}

type Gauges = (Vec<(String, i64, f64)>, i64, i64);

async fn gauges(s: &Shared, endpoints: &[String], now_ms: u64) -> Result<Gauges, StoreError> {
    let base = s.clock.sql_base();
    let rows = retrying(|| async {
        let client = s.conn().await?;
        let each = client
            .prepare_cached(
                "SELECT e.id, (SELECT coalesce(sum(n), 0)::bigint FROM pending_counts c \
                               WHERE c.endpoint_id = e.id), \
                        (SELECT d.created_ms FROM deliveries d WHERE d.endpoint_id = e.id \
                         AND NOT d.blocked ORDER BY d.due_ms, d.id LIMIT 1), \
                        hookgate_at($2, $3), \
                        (SELECT coalesce(sum(n), 0)::bigint FROM pending_counts), \
                        pg_database_size(current_database()) \
                 FROM (SELECT NULL::text AS id UNION ALL SELECT unnest($1::text[])) e",
            )
            .await?;
        Ok(client
            .query(&each, &[&endpoints, &ms(now_ms), &base])
            .await?)
    })
    .await?;
    let read = || -> Result<Gauges, Fail> {
        let mut per_endpoint = Vec::new();
        let (mut total, mut size) = (-1, -1);
        for r in &rows {
            let now: i64 = r.try_get(3)?;
            total = r.try_get(4)?;
            size = r.try_get(5)?;
            let Some(endpoint) = r.try_get::<_, Option<String>>(0)? else {
                continue;
            };
            let pending: i64 = r.try_get(1)?;
            let first: Option<i64> = r.try_get(2)?;
            let lag = first.map_or(0.0, |c| now.saturating_sub(c).max(0) as f64 / 1000.0);
            per_endpoint.push((endpoint, pending, lag));
        }
        Ok((per_endpoint, total, size))
    };
    read().map_err(Fail::into_store)
}

/// One statement, retried like any.
async fn simple(
    s: &Shared,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    retrying(|| async {
        let client = s.conn().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query(&stmt, params).await?)
    })
    .await
}

/// An event from `id, source, event_type, received_ms, dedup_key, delivery_ids, endpoints`.
pub(super) fn event_row(r: &Row) -> Result<Event, Fail> {
    let ids: Vec<Vec<u8>> = r.try_get(5)?;
    let endpoints: Vec<String> = r.try_get(6)?;
    let deliveries = ids
        .iter()
        .map(|i| id_from(i).map(DeliveryId))
        .zip(endpoints)
        .map(|(id, e)| id.map(|id| (id, e)))
        .collect::<Result<_, _>>()?;
    Ok(Event {
        id: EventId(id_from(r.try_get(0)?)?),
        source: r.try_get(1)?,
        event_type: r.try_get(2)?,
        received_ms: unms(r.try_get(3)?),
        dedup_key: r.try_get(4)?,
        deliveries,
    })
}

fn row_due(row: &Row) -> Result<i64, StoreError> {
    row.try_get(7).map_err(|e| Fail::from(e).into_store())
}

/// A taken delivery of the `DUE` query (columns from 2), if the row has one.
fn due_item(r: &Row) -> Result<Option<DueDelivery>, Fail> {
    let Some(id) = r.try_get::<_, Option<Vec<u8>>>(2)? else {
        return Ok(None);
    };
    let attempts = u32::try_from(r.try_get::<_, i32>(4)?).unwrap_or(0);
    let cycle_base = u32::try_from(r.try_get::<_, i32>(5)?).unwrap_or(0);
    let names: Vec<String> = r.try_get(11)?;
    let values: Vec<Vec<u8>> = r.try_get(12)?;
    let body: Vec<u8> = r.try_get(13)?;
    Ok(Some(DueDelivery {
        delivery_id: DeliveryId(id_from(&id)?),
        lease_token: None,
        event_id: EventId(id_from(r.try_get(3)?)?),
        attempts,
        cycle_attempts: attempts.saturating_sub(cycle_base),
        cycle_started_ms: unms(r.try_get(6)?),
        // A plain read: the claim sets the held clock from the row it locks (`claim.rs`).
        cycle_held_ms: 0,
        probe: false,
        // A plain read: the claim sets it from the row it locks.
        lease_expired: false,
        received_ms: unms(r.try_get(8)?),
        source: r.try_get(9)?,
        event_type: r.try_get(10)?,
        headers: names.into_iter().zip(values).collect(),
        body: Bytes::from(body),
    }))
}
