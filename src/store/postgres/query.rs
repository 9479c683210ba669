//! What the admin API lists: events and dead letters, filtered, newest first, with the same
//! cursors as redb (see `store::query` for the rules both backends keep). Rows are read in
//! chunks down the primary key or the dead-letter index and filtered here, so **a page looks
//! at most `SCAN_LIMIT` rows** whatever its filters, and its cursor says where to go on.

use std::collections::HashMap;

use super::PgStore;
use super::error::{Fail, retrying};
use super::reads::{either_table, event_row};
use super::rows::{COLUMNS, NCOLUMNS, delivery, id_bytes};
use super::time::ms;
use crate::ids::EventId;
use crate::model::event::{DeadLetter, Delivery, EventWithDeliveries};
use crate::store::StoreError;
use crate::store::query::{Filter, Page, SCAN_LIMIT, parse_dead_cursor};

/// Rows read per round trip: enough for a page, growing while filters drop rows.
fn chunk(limit: usize, scanned: usize, round: u32) -> i64 {
    let want = limit
        .saturating_add(1)
        .max(100)
        .saturating_mul(1 << round.min(5));
    let left = SCAN_LIMIT + 1 - scanned.min(SCAN_LIMIT);
    i64::try_from(want.min(left).min(2_000)).unwrap_or(2_000)
}

/// A chunk of events down the primary key, and whether each passes `contains` ($4, NULL for
/// none). The body is searched only for rows that pass the source ($5) and type ($6) filters,
/// and in the database: a body is never sent here to be searched.
const LIST_EVENTS: &str = "SELECT id, source, event_type, received_ms, dedup_key, delivery_ids, \
     endpoints, CASE WHEN $4::bytea IS NULL THEN true \
     WHEN ($5::text IS NULL OR source = $5) AND ($6::text IS NULL OR event_type = $6) \
     THEN position($4::bytea IN body) > 0 ELSE false END \
     FROM events WHERE id >= $1 AND id <= $2 ORDER BY id DESC LIMIT $3";

/// Whether a dead letter (`d`) and its event (`e`) pass `contains` ($6, NULL for none):
/// searched in the database, only for rows that pass the endpoint ($7), source ($8) and type
/// ($9) filters, and false when the event is gone.
pub(super) const CONTAINS_SQL: &str = "CASE WHEN $6::bytea IS NULL THEN true \
     WHEN ($7::text IS NULL OR d.endpoint_id = $7) AND ($8::text IS NULL OR e.source = $8) \
     AND ($9::text IS NULL OR e.event_type = $9) \
     THEN coalesce(position($6::bytea IN e.body) > 0, false) ELSE false END";

impl PgStore {
    /// Events, newest first, with their deliveries.
    pub async fn list_events(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<EventWithDeliveries>, StoreError> {
        let (low, mut high) = filter.event_id_range(cursor)?;
        let mut page = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        let (mut scanned, mut round, mut bottom) = (0usize, 0u32, false);
        let s = &self.shared;
        let (contains, source, event_type) = (
            filter.contains.as_deref(),
            filter.source.as_deref(),
            filter.event_type.as_deref(),
        );
        while low <= high && !bottom {
            let n = chunk(limit, scanned, round);
            round += 1;
            let (lo, hi) = (id_bytes(low), id_bytes(high));
            let rows = retrying(|| async {
                let client = s.conn().await?;
                let stmt = client.prepare_cached(LIST_EVENTS).await?;
                Ok(client
                    .query(
                        &stmt,
                        &[
                            &lo.as_slice(),
                            &hi.as_slice(),
                            &n,
                            &contains,
                            &source,
                            &event_type,
                        ],
                    )
                    .await?)
            })
            .await?;
            let events = rows
                .iter()
                .map(|r| Ok((event_row(r)?, r.try_get::<_, bool>(7)?)))
                .collect::<Result<Vec<_>, Fail>>()
                .map_err(Fail::into_store)?;
            let wanted: Vec<Vec<u8>> = events
                .iter()
                .filter(|(e, hit)| *hit && filter.event_matches(e))
                .flat_map(|(e, _)| e.deliveries.iter().map(|(d, _)| id_bytes(d.0).to_vec()))
                .collect();
            let deliveries = self.deliveries_by_id(&wanted).await?;
            for (event, hit) in events {
                if page.items.len() == limit || scanned == SCAN_LIMIT {
                    // Go on after the last row looked at.
                    page.next_cursor = Some(EventId(event.id.0.saturating_add(1)).to_string());
                    return Ok(page);
                }
                scanned += 1;
                bottom = event.id.0 <= low;
                high = event.id.0.saturating_sub(1);
                if !hit || !filter.event_matches(&event) {
                    continue;
                }
                let ds: Vec<Delivery> = event
                    .deliveries
                    .iter()
                    .filter_map(|(d, _)| deliveries.get(&d.0).cloned())
                    .collect();
                if filter.deliveries_match(&ds) {
                    page.items.push(EventWithDeliveries {
                        event,
                        deliveries: ds,
                    });
                }
            }
            if (rows.len() as i64) < n || rows.is_empty() {
                break;
            }
        }
        Ok(page)
    }

    /// Deliveries by id, final or not, in one snapshot.
    async fn deliveries_by_id(
        &self,
        ids: &[Vec<u8>],
    ) -> Result<HashMap<u128, Delivery>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let s = &self.shared;
        let rows = retrying(|| async {
            let client = s.conn().await?;
            let stmt = client.prepare_cached(&either_table("id = ANY($1)")).await?;
            Ok(client.query(&stmt, &[&ids]).await?)
        })
        .await?;
        rows.iter()
            .map(|r| delivery(r, 0).map(|d| (d.id.0, d)))
            .collect::<Result<_, Fail>>()
            .map_err(Fail::into_store)
    }

    /// Dead deliveries, most recently dead first; `since`/`until` apply to when they died.
    pub async fn list_dead(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, StoreError> {
        let low = (filter.since_ms.unwrap_or(0), 0u128);
        let mut high = (
            filter.until_ms.map_or(u64::MAX, |u| u.saturating_sub(1)),
            u128::MAX,
        );
        if let Some(c) = cursor {
            high = high.min(parse_dead_cursor(c)?);
        }
        let mut page = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        let (mut scanned, mut round) = (0usize, 0u32);
        let s = &self.shared;
        let sql = format!(
            "SELECT {cols}, e.source, e.event_type, \
             {CONTAINS_SQL} FROM deliveries_done d \
             LEFT JOIN events e ON e.id = d.event_id \
             WHERE d.status = 'dead' AND (d.updated_ms, d.id) >= ($1, $2) \
             AND (d.updated_ms, d.id) <= ($3, $4) \
             ORDER BY d.updated_ms DESC, d.id DESC LIMIT $5",
            cols = COLUMNS
                .split(", ")
                .map(|c| format!("d.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        while low <= high {
            let n = chunk(limit, scanned, round);
            round += 1;
            let (lo_ms, lo_id) = (ms(low.0), id_bytes(low.1));
            let (hi_ms, hi_id) = (ms(high.0), id_bytes(high.1));
            let rows = retrying(|| async {
                let client = s.conn().await?;
                let stmt = client.prepare_cached(&sql).await?;
                Ok(client
                    .query(
                        &stmt,
                        &[
                            &lo_ms,
                            &lo_id.as_slice(),
                            &hi_ms,
                            &hi_id.as_slice(),
                            &n,
                            &filter.contains.as_deref(),
                            &filter.endpoint.as_deref(),
                            &filter.source.as_deref(),
                            &filter.event_type.as_deref(),
                        ],
                    )
                    .await?)
            })
            .await?;
            for row in &rows {
                let d = delivery(row, 0).map_err(Fail::into_store)?;
                let dead_at_ms = d.updated_ms;
                if page.items.len() == limit || scanned == SCAN_LIMIT {
                    page.next_cursor = Some(format!("{dead_at_ms}.{}", d.id));
                    return Ok(page);
                }
                scanned += 1;
                high = match (dead_at_ms, d.id.0) {
                    (at, 0) if at > 0 => (at - 1, u128::MAX),
                    (at, id) => (at, id.saturating_sub(1)),
                };
                let source: Option<String> = row
                    .try_get(NCOLUMNS)
                    .map_err(|e| Fail::from(e).into_store())?;
                let event_type: Option<String> = row
                    .try_get(NCOLUMNS + 1)
                    .map_err(|e| Fail::from(e).into_store())?;
                // An event pruned under it: nothing to show (as redb skips it).
                let Some(source) = source else { continue };
                if filter.source.as_ref().is_some_and(|s| *s != source)
                    || filter
                        .event_type
                        .as_ref()
                        .is_some_and(|t| Some(t) != event_type.as_ref())
                    || filter
                        .endpoint
                        .as_ref()
                        .is_some_and(|e| *e != d.endpoint_id)
                    || !row
                        .try_get::<_, bool>(NCOLUMNS + 2)
                        .map_err(|e| Fail::from(e).into_store())?
                {
                    continue;
                }
                page.items.push(DeadLetter {
                    delivery_id: d.id,
                    event_id: d.event_id,
                    endpoint_id: d.endpoint_id,
                    source,
                    event_type,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    dead_at_ms,
                });
            }
            if (rows.len() as i64) < n || rows.is_empty() || high == (0, 0) {
                break;
            }
        }
        Ok(page)
    }
}
