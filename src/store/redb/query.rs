//! redb's reads for the admin API: events and dead letters, filtered and cursor-paged, newest
//! first (see `store::query` for the rules both backends keep).

use redb::{ReadableDatabase, ReadableTable};

use super::records::{self, DeliveryRecord, EventRecord, PayloadRef};
use super::{DEAD, DELIVERIES, EVENTS, PAYLOADS, RedbStore, StoreError};
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{DeadLetter, EventWithDeliveries};
use crate::store::query::{Filter, Page, SCAN_LIMIT, parse_dead_cursor};

impl RedbStore {
    /// Events, newest first.
    pub fn list_events(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<EventWithDeliveries>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let payloads = txn.open_table(PAYLOADS)?;
        let (low, high) = filter.event_id_range(cursor)?;
        let mut page = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        if low > high {
            return Ok(page);
        }
        for (scanned, entry) in events.range(low..=high)?.rev().enumerate() {
            let (key, value) = entry?;
            let id = EventId(key.value());
            if page.items.len() == limit || scanned == SCAN_LIMIT {
                // Go on after the last row looked at.
                page.next_cursor = Some(EventId(id.0.saturating_add(1)).to_string());
                break;
            }
            // An unreadable record is skipped (the writer quarantines it when it meets it).
            let Ok(event) = records::decode::<EventRecord>(value.value()) else {
                continue;
            };
            let event = event.into_model(id.0);
            if !filter.event_matches(&event) {
                continue;
            }
            let mut ds = Vec::with_capacity(event.deliveries.len());
            for (did, _) in &event.deliveries {
                if let Some(Ok(d)) = deliveries
                    .get(did.0)?
                    .map(|d| DeliveryRecord::decode(d.value()))
                {
                    ds.push(d.into_model(did.0));
                }
            }
            if !filter.deliveries_match(&ds) {
                continue;
            }
            // Last, being the dearest: the body.
            if !payload_passes(&payloads, filter, id.0)? {
                continue;
            }
            page.items.push(EventWithDeliveries {
                event,
                deliveries: ds,
            });
        }
        Ok(page)
    }

    /// Dead deliveries, most recently dead first; `since`/`until` apply to when they died.
    pub fn list_dead(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let dead = txn.open_table(DEAD)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let events = txn.open_table(EVENTS)?;
        let payloads = txn.open_table(PAYLOADS)?;
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
        if low > high {
            return Ok(page);
        }
        for (scanned, entry) in dead.range(low..=high)?.rev().enumerate() {
            let (key, _) = entry?;
            let (dead_at_ms, id) = key.value();
            if page.items.len() == limit || scanned == SCAN_LIMIT {
                page.next_cursor = Some(format!("{dead_at_ms}.{}", DeliveryId(id)));
                break;
            }
            let Some(d) = deliveries.get(id)? else {
                continue;
            };
            let Ok(d) = DeliveryRecord::decode(d.value()) else {
                continue;
            };
            let Some(ev) = events.get(d.event_id)? else {
                continue;
            };
            let Ok(ev) = records::decode::<EventRecord>(ev.value()) else {
                continue;
            };
            let ev = ev.into_model(d.event_id);
            if !filter.event_matches(&ev)
                || filter
                    .endpoint
                    .as_ref()
                    .is_some_and(|e| *e != d.endpoint_id)
                || !payload_passes(&payloads, filter, d.event_id)?
            {
                continue;
            }
            page.items.push(DeadLetter {
                delivery_id: DeliveryId(id),
                event_id: EventId(d.event_id),
                endpoint_id: d.endpoint_id,
                source: ev.source,
                event_type: ev.event_type,
                attempts: d.attempts,
                last_error: d.last_error,
                dead_at_ms,
            });
        }
        Ok(page)
    }
}

/// Whether the stored body of `event` passes `filter`'s `contains`, read in place: always
/// without one; never when the body is missing or unreadable.
pub(super) fn payload_passes(
    payloads: &impl ReadableTable<u128, &'static [u8]>,
    filter: &Filter,
    event: u128,
) -> Result<bool, StoreError> {
    if filter.contains.is_none() {
        return Ok(true);
    }
    Ok(payloads
        .get(event)?
        .is_some_and(|p| PayloadRef::decode(p.value()).is_ok_and(|p| filter.body_matches(p.body))))
}
