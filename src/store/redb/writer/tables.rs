//! The tables a batch writes, and the one place a delivery's state is written. Every command
//! reads a delivery, asks an [`outbox`](crate::store::outbox) rule what becomes of it, and
//! hands both states to [`put_delivery`], which keeps the schedule, the dead-letter index, the
//! pending counts and the finished-event indexes in step with the change. **No command writes
//! a delivery record, or moves it in those indexes, any other way** (commands only drop
//! schedule entries they find stale, and keep the `leases` table, which is redb's own).

use redb::{ReadableTable, Table};

use super::{finished, quarantine};
use crate::model::event::{Delivery, DeliveryStatus, Event};
use crate::store::StoreError;
use crate::store::redb::records::{self, DeliveryRecord, EventRecord};

/// The tables a batch writes, opened once per transaction.
pub(super) struct Tables<'t> {
    pub(super) events: Table<'t, u128, &'static [u8]>,
    pub(super) payloads: Table<'t, u128, &'static [u8]>,
    pub(super) deliveries: Table<'t, u128, &'static [u8]>,
    pub(super) due: Table<'t, (&'static str, u64, u128), ()>,
    pub(super) leases: Table<'t, u128, u64>,
    pub(super) attempts: Table<'t, (u128, u32), &'static [u8]>,
    pub(super) dead: Table<'t, (u64, u128), ()>,
    pub(super) dedup: Table<'t, (&'static str, &'static str), (u128, u64)>,
    pub(super) endpoint_state: Table<'t, &'static str, u8>,
    pub(super) config_entries: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) dedup_expiry: Table<'t, (u64, &'static str, &'static str), ()>,
    pub(super) pending_by_endpoint: Table<'t, &'static str, u64>,
    pub(super) quarantine: Table<'t, (&'static str, u128), &'static [u8]>,
    pub(super) unfinished: Table<'t, u128, u64>,
    pub(super) finished_delivered: Table<'t, u128, ()>,
    pub(super) finished_dead: Table<'t, (u64, u128), ()>,
    /// Records met in this batch that could not be decoded, moved to `quarantine` before
    /// the commit.
    pub(super) corrupt: std::cell::RefCell<Vec<quarantine::Corrupt>>,
}

/// A delivery; `None` when absent, or when its record cannot be decoded (then it is noted
/// for quarantine and skipped).
pub(super) fn read_delivery(t: &Tables<'_>, id: u128) -> Result<Option<Delivery>, StoreError> {
    Ok(
        read_record::<DeliveryRecord>(t, &t.deliveries, "deliveries", id)?
            .map(|r| r.into_model(id)),
    )
}

/// An event, like [`read_delivery`].
pub(super) fn read_event(t: &Tables<'_>, id: u128) -> Result<Option<Event>, StoreError> {
    Ok(read_record::<EventRecord>(t, &t.events, "events", id)?.map(|r| r.into_model(id)))
}

fn read_record<T: serde::de::DeserializeOwned>(
    t: &Tables<'_>,
    table: &Table<'_, u128, &'static [u8]>,
    name: &'static str,
    id: u128,
) -> Result<Option<T>, StoreError> {
    let Some(v) = table.get(id)? else {
        return Ok(None);
    };
    match records::decode(v.value()) {
        Ok(r) => Ok(Some(r)),
        Err(_) => {
            t.corrupt.borrow_mut().push((name, id));
            Ok(None)
        }
    }
}

/// Writes a delivery's new state (`new`, as an [`outbox`](crate::store::outbox) rule answered) and keeps every index
/// in step with its change from `old` (its state as read in this transaction; `None` for a new
/// one, whose event [`finished::stored`] files): the schedule (`due`, which **holds exactly
/// the deliveries that are not final**, keyed by their due time), the dead-letter index (keyed
/// by the time of death), the pending counts, and the finished-event indexes.
pub(super) fn put_delivery(
    t: &mut Tables<'_>,
    old: Option<&Delivery>,
    new: &Delivery,
    pending: &mut u64,
) -> Result<(), StoreError> {
    let id = new.id.0;
    let was_final = old.is_some_and(|o| o.status.is_final());
    let is_final = new.status.is_final();
    match old {
        None => {
            *pending += 1;
            endpoint_pending(t, &new.endpoint_id, 1)?;
        }
        Some(o) => {
            if !o.status.is_final() {
                t.due.remove((o.endpoint_id.as_str(), o.due_ms, id))?;
            }
            if o.status == DeliveryStatus::Dead {
                t.dead.remove((o.updated_ms, id))?;
            }
            if was_final && !is_final {
                // Before the record changes: the event leaves the finished index its
                // deliveries' present state put it in.
                finished::reopened(t, o.event_id.0)?;
                *pending += 1;
                endpoint_pending(t, &new.endpoint_id, 1)?;
            }
        }
    }
    if !is_final {
        t.due
            .insert((new.endpoint_id.as_str(), new.due_ms, id), ())?;
    }
    if let Some(at) = new.dead_at_ms() {
        t.dead.insert((at, id), ())?;
    }
    let record = DeliveryRecord::from(new.clone());
    t.deliveries
        .insert(id, records::encode(&record).as_slice())?;
    if !was_final && is_final {
        *pending = pending.saturating_sub(1);
        endpoint_pending(t, &new.endpoint_id, -1)?;
        // After the record changed: when it was the event's last, the event is filed by
        // what its deliveries are now.
        finished::settled(t, new.event_id.0)?;
    }
    Ok(())
}

/// Keeps an endpoint's count of deliveries not yet final, for its lag metrics.
pub(super) fn endpoint_pending(
    t: &mut Tables<'_>,
    endpoint: &str,
    delta: i64,
) -> Result<(), StoreError> {
    let current = t
        .pending_by_endpoint
        .get(endpoint)?
        .map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        t.pending_by_endpoint.remove(endpoint)?;
    } else {
        t.pending_by_endpoint.insert(endpoint, next)?;
    }
    Ok(())
}
