//! Requeue: replay of dead letters (bounded steps with a cursor over the dead-letter index,
//! exactly as redb's: [`REPLAY_SCAN`] rows looked at, [`REPLAY_STEP`] requeued), retry of one
//! delivery, and recover of an endpoint's unfinished work in a window. The selection is read
//! first, then the selected deliveries are locked and each is asked [`outbox::requeue`] in its
//! present state, so a change committed in between is never overwritten. A delivery whose
//! endpoint is no longer in force is left as it is and reported as `removed`.

use std::collections::{HashMap, HashSet};

use super::PgStore;
use super::error::{Fail, retrying};
use super::query::CONTAINS_SQL;
use super::rows::{Changes, id_bytes, id_from, lock_any};
use super::time::ms;
use crate::ids::DeliveryId;
use crate::store::outbox::{self, Refusal};
use crate::store::{REPLAY_SCAN, REPLAY_STEP, Requeue, Requeued, StoreError};

impl PgStore {
    /// Makes deliveries due now in a fresh retry cycle; the selection and the change are one
    /// transaction, committed before this returns.
    pub async fn requeue(&self, what: Requeue) -> Result<Requeued, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let what = &what;
        let out = retrying(|| async move {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let now = s.clock.now(&tx).await?;
            let mut out = Requeued::default();
            let ids = select(&tx, what, &mut out).await?;
            let known = s.known();
            let mut changes = Changes::default();
            let mut locked = lock_any(&tx, &ids).await?;
            // In the order selected (the dead-letter index's, for a replay).
            let order: HashMap<DeliveryId, usize> =
                ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            locked.sort_by_key(|l| order.get(&l.d.id).copied());
            for old in locked {
                if known
                    .as_ref()
                    .is_some_and(|k| !k.contains(&old.d.endpoint_id))
                {
                    out.removed.push(old.d.id);
                    continue;
                }
                match outbox::requeue(&old.d, now.ms()) {
                    Ok(new) => {
                        changes.put(&old, &new, None);
                        out.deliveries.push((new.id, new.endpoint_id));
                    }
                    Err(Refusal::InFlight) => out.in_flight.push(old.d.id),
                    // Final ones are not refused; blocked ones wait for their turn.
                    Err(_) => {}
                }
            }
            changes.flush(&tx).await?;
            tx.commit().await?;
            s.observe_commit(1, started);
            Ok(out)
        })
        .await?;
        // Committed: wake the endpoints that got work, and tell live views.
        s.announce(out.deliveries.iter().map(|(_, e)| e.as_str()));
        if s.notices.listened() && !out.deliveries.is_empty() {
            s.notices
                .publish(crate::store::notices::Announcement::Requeued {
                    deliveries: out.deliveries.clone(),
                });
        }
        Ok(out)
    }
}

/// The deliveries a requeue asks for, in order; for a replay step, also where the next goes on.
async fn select(
    tx: &deadpool_postgres::Transaction<'_>,
    what: &Requeue,
    out: &mut Requeued,
) -> Result<Vec<DeliveryId>, Fail> {
    let ids = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<DeliveryId>, Fail> {
        rows.iter()
            .map(|r| Ok(DeliveryId(id_from(r.try_get(0)?)?)))
            .collect()
    };
    match what {
        Requeue::One(id) => Ok(vec![*id]),
        Requeue::Recover {
            endpoint,
            since_ms,
            until_ms,
        } => {
            // Waiting and retrying ones are in the hot table, dead ones in the dead-letter
            // index by endpoint; delivered ones are in neither and stay as they are. Those
            // blocked behind their key's head are left to wait (the rule would refuse them),
            // and not even locked.
            let stmt = tx
                .prepare_cached(
                    "SELECT id FROM deliveries WHERE endpoint_id = $1 \
                     AND created_ms >= $2 AND created_ms < $3 AND NOT blocked \
                     UNION ALL \
                     SELECT id FROM deliveries_done WHERE status = 'dead' AND endpoint_id = $1 \
                     AND created_ms >= $2 AND created_ms < $3",
                )
                .await?;
            ids(tx
                .query(&stmt, &[endpoint, &ms(*since_ms), &ms(*until_ms)])
                .await?)
        }
        Requeue::Dead { filter, ids, after } => {
            let low = (filter.since_ms.unwrap_or(0), 0u128);
            let low = after.map_or(low, |a| low.max((a.0, a.1.saturating_add(1))));
            let high = (filter.until_ms.unwrap_or(u64::MAX), 0u128);
            if low >= high {
                return Ok(Vec::new());
            }
            let wanted: Option<HashSet<DeliveryId>> =
                ids.as_ref().map(|ids| ids.iter().copied().collect());
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT d.id, d.updated_ms, d.endpoint_id, e.source, e.event_type, \
                     e.id IS NOT NULL, {CONTAINS_SQL} FROM deliveries_done d \
                     LEFT JOIN events e ON e.id = d.event_id \
                     WHERE d.status = 'dead' AND (d.updated_ms, d.id) >= ($1, $2) \
                     AND (d.updated_ms, d.id) < ($3, $4) \
                     ORDER BY d.updated_ms, d.id LIMIT $5"
                ))
                .await?;
            let (lo_id, hi_id) = (id_bytes(low.1), id_bytes(high.1));
            let rows = tx
                .query(
                    &stmt,
                    &[
                        &ms(low.0),
                        &lo_id.as_slice(),
                        &ms(high.0),
                        &hi_id.as_slice(),
                        &((REPLAY_SCAN + 1) as i64),
                        &filter.contains.as_deref(),
                        &filter.endpoint.as_deref(),
                        &filter.source.as_deref(),
                        &filter.event_type.as_deref(),
                    ],
                )
                .await?;
            let mut selected = Vec::new();
            for (scanned, row) in rows.iter().enumerate() {
                let id = id_from(row.try_get(0)?)?;
                let dead_at = super::time::unms(row.try_get(1)?);
                if scanned == REPLAY_SCAN || selected.len() == REPLAY_STEP {
                    // Bounded: the next step goes on from here.
                    out.next = Some((dead_at, id.saturating_sub(1)));
                    break;
                }
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.contains(&DeliveryId(id)))
                {
                    continue;
                }
                let endpoint: String = row.try_get(2)?;
                if filter.endpoint.as_ref().is_some_and(|e| *e != endpoint)
                    || !row.try_get::<_, bool>(6)?
                {
                    continue;
                }
                // A dead letter whose event was pruned is not listed (`list_dead`), so a
                // replay of the list's filter does not take it either.
                let has_event: bool = row.try_get(5)?;
                if !has_event {
                    continue;
                }
                if filter.source.is_some() || filter.event_type.is_some() {
                    let source: Option<String> = row.try_get(3)?;
                    let event_type: Option<String> = row.try_get(4)?;
                    if filter
                        .source
                        .as_ref()
                        .is_some_and(|s| Some(s) != source.as_ref())
                        || filter
                            .event_type
                            .as_ref()
                            .is_some_and(|t| Some(t) != event_type.as_ref())
                    {
                        continue;
                    }
                }
                selected.push(DeliveryId(id));
            }
            Ok(selected)
        }
    }
}
