//! Reads that need no writer: a lane's schedule, lookups of one event, delivery or its
//! attempts, and the gauges read at scrape. Each is one redb read transaction (MVCC), so
//! none waits for a commit. Listing with filters and cursors is in `query.rs`.

use std::collections::HashSet;

use bytes::Bytes;
use redb::{ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use super::records::{self, AttemptRecord, DeliveryRecord, EventRecord, PayloadRecord};
use super::{
    ATTEMPTS, DEAD, DELIVERIES, DUE, EVENTS, META, META_PENDING, PAYLOADS, PENDING_BY_ENDPOINT,
    QUARANTINE, RedbStore, StoreError, writer,
};
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, Delivery, Event, Payload};
use crate::store::{DueBatch, DueDelivery};

impl RedbStore {
    /// Up to `limit` deliveries of `endpoint` due at `now_ms`, skipping those in `skip` (in
    /// flight). Blocking: call from a blocking context.
    pub fn due(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: &HashSet<DeliveryId>,
    ) -> Result<DueBatch, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let due = txn.open_table(DUE)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let events = txn.open_table(EVENTS)?;
        let payloads = txn.open_table(PAYLOADS)?;
        let mut batch = DueBatch::default();
        // Scheduled but unusable: (due ms, id). Skipped here, settled by the writer, so the
        // lane goes on with the rest and never reads them again.
        let mut unreadable = Vec::new();
        for entry in due.range((endpoint, 0u64, 0u128)..=(endpoint, u64::MAX, u128::MAX))? {
            let (key, _) = entry?;
            let (_, due_ms, id) = key.value();
            let id = DeliveryId(id);
            if due_ms > now_ms || batch.items.len() >= limit {
                batch.next_due_ms = Some(due_ms);
                break;
            }
            if skip.contains(&id) {
                continue;
            }
            let read =
                || -> Result<Option<(DeliveryRecord, EventRecord, PayloadRecord)>, StoreError> {
                    let Some(rec) = deliveries.get(id.0)? else {
                        return Ok(None);
                    };
                    let rec = DeliveryRecord::decode(rec.value())?;
                    let Some(ev) = events.get(rec.event_id)? else {
                        return Ok(None);
                    };
                    let ev: EventRecord = records::decode(ev.value())?;
                    let Some(payload) = payloads.get(rec.event_id)? else {
                        return Ok(None);
                    };
                    Ok(Some((rec, ev, PayloadRecord::decode(payload.value())?)))
                };
            let (rec, ev, payload) = match read() {
                Ok(Some((rec, ev, payload))) => (rec.into_model(id.0), ev, payload),
                Ok(None) | Err(StoreError::Corrupt(_)) => {
                    tracing::error!(endpoint, delivery_id = %id, "a scheduled delivery cannot be read; skipped");
                    unreadable.push((due_ms, id.0));
                    continue;
                }
                Err(e) => return Err(e),
            };
            batch.items.push(DueDelivery {
                lease_token: None,
                delivery_id: id,
                event_id: rec.event_id,
                attempts: rec.attempts,
                cycle_attempts: rec.cycle_attempts(),
                cycle_started_ms: rec.cycle_started_ms,
                cycle_held_ms: rec.cycle_held_ms,
                probe: false,
                lease_expired: rec.status == crate::model::event::DeliveryStatus::Delivering,
                received_ms: ev.received_ms,
                source: ev.source,
                event_type: ev.event_type,
                headers: payload
                    .headers
                    .into_iter()
                    .map(|(n, v)| (n, v.into_vec()))
                    .collect(),
                body: Bytes::from(payload.body),
            });
        }
        if !unreadable.is_empty() {
            let (reply, _unawaited) = oneshot::channel();
            // If the queue is full, the next read finds them again.
            let _ = self.inner.tx.try_send(writer::Command::Quarantine(
                endpoint.to_string(),
                unreadable,
                reply,
            ));
        }
        Ok(batch)
    }

    /// Dead letters kept: the size of the dead-letter index, which redb keeps in the
    /// table's header (no walk).
    pub fn dead_count(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        match txn.open_table(DEAD) {
            Ok(t) => Ok(redb::ReadableTableMetadata::len(&t)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Records moved to quarantine because they could not be decoded.
    pub fn quarantined(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        match txn.open_table(QUARANTINE) {
            Ok(t) => Ok(redb::ReadableTableMetadata::len(&t)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// One event and its payload.
    pub fn event(&self, id: EventId) -> Result<Option<(Event, Payload)>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let Some(ev) = txn
            .open_table(EVENTS)?
            .get(id.0)?
            .map(|v| records::decode::<EventRecord>(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let payload = txn
            .open_table(PAYLOADS)?
            .get(id.0)?
            .map(|v| PayloadRecord::decode(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt(format!("event {id} has no payload")))?;
        Ok(Some((ev.into_model(id.0), payload.into())))
    }

    /// One delivery.
    pub fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(DELIVERIES)?;
        let rec = table
            .get(id.0)?
            .map(|v| DeliveryRecord::decode(v.value()))
            .transpose()?;
        Ok(rec.map(|r| r.into_model(id.0)))
    }

    /// Every attempt of one delivery, in order.
    pub fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(ATTEMPTS)?;
        let mut out = Vec::new();
        for entry in table.range((id.0, 0u32)..=(id.0, u32::MAX))? {
            let (_, v) = entry?;
            out.push(records::decode::<AttemptRecord>(v.value())?.into());
        }
        Ok(out)
    }

    /// All event ids, oldest first (for tests and tools; the API pages instead).
    pub fn event_ids(&self) -> Result<Vec<EventId>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(EventId(entry?.0.value()));
        }
        Ok(out)
    }

    /// The store's state for the metrics: pending deliveries (in all, and for each of
    /// `endpoints` with its lag), queued commands, file size. One read transaction for all.
    pub fn gauges(&self, endpoints: &[String], now_ms: u64) -> crate::telemetry::StoreGauges {
        let queued = self.inner.tx.max_capacity() - self.inner.tx.capacity();
        let txn = self
            .inner
            .db
            .get()
            .and_then(|db| db.begin_read().map_err(StoreError::from));
        let (per_endpoint, pending) = match &txn {
            Ok(txn) => (
                endpoints
                    .iter()
                    .filter_map(|e| {
                        let (pending, lag) = lag(txn, e, now_ms).ok()?;
                        Some((
                            e.clone(),
                            i64::try_from(pending).unwrap_or(i64::MAX),
                            lag.map_or(0.0, |ms| ms as f64 / 1000.0),
                        ))
                    })
                    .collect(),
                pending_in(txn).ok(),
            ),
            Err(_) => (Vec::new(), None),
        };
        crate::telemetry::StoreGauges {
            per_endpoint,
            pending_deliveries: pending.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            writer_queue: i64::try_from(queued).unwrap_or(i64::MAX),
            file_bytes: std::fs::metadata(&self.inner.path)
                .map_or(-1, |m| i64::try_from(m.len()).unwrap_or(i64::MAX)),
            quarantined: self
                .quarantined()
                .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }

    /// How many deliveries are not final.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        pending_in(&self.inner.db.get()?.begin_read()?)
    }
}

pub(super) fn pending_in(txn: &redb::ReadTransaction) -> Result<u64, StoreError> {
    let table = txn.open_table(META)?;
    Ok(table.get(META_PENDING)?.map(|v| v.value()).unwrap_or(0))
}

/// An endpoint's deliveries not yet final, and how long ago the one due first was created
/// (its consumer lag; `None` when nothing waits).
fn lag(
    txn: &redb::ReadTransaction,
    endpoint: &str,
    now_ms: u64,
) -> Result<(u64, Option<u64>), StoreError> {
    let pending = txn
        .open_table(PENDING_BY_ENDPOINT)?
        .get(endpoint)?
        .map_or(0, |v| v.value());
    let due = txn.open_table(DUE)?;
    let first = due
        .range((endpoint, 0u64, 0u128)..=(endpoint, u64::MAX, u128::MAX))?
        .next()
        .transpose()?;
    let Some((key, _)) = first else {
        return Ok((pending, None));
    };
    let id = key.value().2;
    let created = txn
        .open_table(DELIVERIES)?
        .get(id)?
        .map(|v| DeliveryRecord::decode(v.value()))
        .transpose()?
        .map(|d| d.created_ms);
    Ok((pending, created.map(|c| now_ms.saturating_sub(c))))
}
