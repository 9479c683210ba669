//! The tables a batch writes, and the one place a delivery's state is written. Every command
//! reads a delivery, asks an [`outbox`](crate::store::outbox) rule what becomes of it, and
//! hands both states to [`put_delivery`], which keeps the schedule, the dead-letter index, the
//! pending counts and the finished-event indexes in step with the change. **No command writes
//! a delivery record, or moves it in those indexes, any other way** (commands only drop
//! schedule entries they find stale, and keep the `leases` table, which is redb's own).

use redb::{ReadableTable, Table};

use super::{finished, quarantine};
use crate::model::event::{Delivery, DeliveryStatus, Event};
use crate::store::redb::META_ORDER_SEQ;
use crate::store::redb::records::{self, DeliveryRecord, EventRecord};
use crate::store::{StoreError, outbox};

/// The tables a batch writes, opened once per transaction.
pub(super) struct Tables<'t> {
    pub(super) events: Table<'t, u128, &'static [u8]>,
    pub(super) payloads: Table<'t, u128, &'static [u8]>,
    pub(super) deliveries: Table<'t, u128, &'static [u8]>,
    pub(super) due: Table<'t, (&'static str, u64, u128), ()>,
    pub(super) leases: Table<'t, u128, u64>,
    /// A pull consumer's leases and their tokens (`redb::pulled`).
    pub(super) pulled: Table<'t, u128, u64>,
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
    pub(super) order_queue: Table<'t, (&'static str, &'static str, u64), u128>,
    pub(super) endpoint_health: Table<'t, &'static str, &'static [u8]>,
    pub(super) ops_outbox: Table<'t, u64, &'static [u8]>,
    pub(super) meta: Table<'t, &'static str, u64>,
    /// Records met in this batch that could not be decoded, moved to `quarantine` before
    /// the commit.
    pub(super) corrupt: std::cell::RefCell<Vec<quarantine::Corrupt>>,
}

/// A delivery; `None` when absent, or when its record cannot be decoded (then it is noted
/// for quarantine and skipped).
pub(super) fn read_delivery(t: &Tables<'_>, id: u128) -> Result<Option<Delivery>, StoreError> {
    Ok(
        read_record(t, &t.deliveries, "deliveries", id, DeliveryRecord::decode)?
            .map(|r| r.into_model(id)),
    )
}

/// An event, like [`read_delivery`].
pub(super) fn read_event(t: &Tables<'_>, id: u128) -> Result<Option<Event>, StoreError> {
    Ok(
        read_record(t, &t.events, "events", id, records::decode::<EventRecord>)?
            .map(|r| r.into_model(id)),
    )
}

fn read_record<T>(
    t: &Tables<'_>,
    table: &Table<'_, u128, &'static [u8]>,
    name: &'static str,
    id: u128,
    decode: fn(&[u8]) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let Some(v) = table.get(id)? else {
        return Ok(None);
    };
    match decode(v.value()) {
        Ok(r) => Ok(Some(r)),
        Err(_) => {
            t.corrupt.borrow_mut().push((name, id));
            Ok(None)
        }
    }
}

/// Places `d` last in its order key `key` ([`outbox::place`]): the next place of the store's
/// one sequence, blocked when the key has a head already. For a new ordered delivery, and
/// for a final one a requeue brings back.
pub(super) fn place(t: &mut Tables<'_>, d: &Delivery, key: &str) -> Result<Delivery, StoreError> {
    let seq = t.meta.get(META_ORDER_SEQ)?.map_or(0, |v| v.value()) + 1;
    t.meta.insert(META_ORDER_SEQ, seq)?;
    let endpoint = d.endpoint_id.as_str();
    let head_exists = t
        .order_queue
        .range((endpoint, key, 0u64)..=(endpoint, key, u64::MAX))?
        .next()
        .is_some();
    Ok(outbox::place(d, key, seq, head_exists))
}

/// The place an ordered delivery holds in `order_queue` while it is not final.
fn queued(d: &Delivery) -> Option<(&str, u64)> {
    d.order
        .as_ref()
        .filter(|_| !d.status.is_final())
        .map(|(k, s)| (k.as_str(), *s))
}

/// Writes a delivery's new state (`new`, as an [`outbox`](crate::store::outbox) rule answered) and keeps every index
/// in step with its change from `old` (its state as read in this transaction; `None` for a new
/// one, whose event [`finished::stored`] files): the schedule (`due`, which **holds exactly
/// the deliveries that are not final and not blocked**, keyed by their due time), the order
/// queue (and the promotion of a key's next delivery when its head leaves it), the dead-letter
/// index (keyed by the time of death), the pending counts, and the finished-event indexes.
pub(super) fn put_delivery(
    t: &mut Tables<'_>,
    old: Option<&Delivery>,
    new: &Delivery,
    pending: &mut u64,
) -> Result<(), StoreError> {
    // A new retry cycle starts on the endpoint's held-time clock as it stands then, so the
    // time its breaker holds it from now on is not charged to `max_age`.
    let starts_cycle = old.is_none_or(|o| {
        o.cycle_started_ms != new.cycle_started_ms || o.cycle_base != new.cycle_base
    });
    let held = match starts_cycle {
        true => {
            let h = super::breaker::read(t, &new.endpoint_id)?;
            Some(crate::store::health::held_at(&h, new.cycle_started_ms))
        }
        false => None,
    };
    let restarted;
    let new = match held {
        Some(held) if held != new.cycle_held_ms => {
            restarted = Delivery {
                cycle_held_ms: held,
                ..new.clone()
            };
            &restarted
        }
        _ => new,
    };
    let id = new.id.0;
    let was_final = old.is_some_and(|o| o.status.is_final());
    let is_final = new.status.is_final();
    let left = old.and_then(queued);
    let joined = queued(new);
    match old {
        None => {
            *pending += 1;
            endpoint_pending(t, &new.endpoint_id, 1)?;
        }
        Some(o) => {
            if !o.status.is_final() && !o.blocked {
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
    if !is_final && !new.blocked {
        t.due
            .insert((new.endpoint_id.as_str(), new.due_ms, id), ())?;
    }
    if old.is_some_and(|o| o.status == DeliveryStatus::Delivering)
        && new.status != DeliveryStatus::Delivering
    {
        // However its lease ended (acked, nacked, dead-lettered with its endpoint), a
        // delivery no longer being sent holds no consumer's lease.
        t.pulled.remove(id)?;
    }
    if left != joined {
        if let Some((key, seq)) = left {
            t.order_queue.remove((new.endpoint_id.as_str(), key, seq))?;
        }
        if let Some((key, seq)) = joined {
            t.order_queue
                .insert((new.endpoint_id.as_str(), key, seq), id)?;
        }
    }
    if let Some(at) = new.dead_at_ms() {
        t.dead.insert((at, id), ())?;
    }
    let record = DeliveryRecord::from(new.clone());
    t.deliveries.insert(id, record.encode().as_slice())?;
    if !was_final && is_final {
        *pending = pending.saturating_sub(1);
        endpoint_pending(t, &new.endpoint_id, -1)?;
        // After the record changed: when it was the event's last, the event is filed by
        // what its deliveries are now.
        finished::settled(t, new.event_id.0)?;
    }
    if let Some((key, _)) = left.filter(|_| left != joined) {
        promote_next(t, &new.endpoint_id, key, new.updated_ms, pending)?;
    }
    Ok(())
}

/// After a delivery left `key`'s queue: its first entry is the head now, due from `now_ms` if
/// it was blocked. An entry whose delivery cannot be read leaves the queue, so one unreadable
/// record cannot hold a key forever (its record is noted for quarantine).
fn promote_next(
    t: &mut Tables<'_>,
    endpoint: &str,
    key: &str,
    now_ms: u64,
    pending: &mut u64,
) -> Result<(), StoreError> {
    loop {
        let first = t
            .order_queue
            .range((endpoint, key, 0u64)..=(endpoint, key, u64::MAX))?
            .next()
            .transpose()?
            .map(|(k, v)| (k.value().2, v.value()));
        let Some((seq, id)) = first else {
            return Ok(());
        };
        let Some(d) = read_delivery(t, id)? else {
            tracing::error!(
                endpoint,
                delivery_id = id,
                "an ordered delivery cannot be read; it leaves its key's queue"
            );
            t.order_queue.remove((endpoint, key, seq))?;
            continue;
        };
        if let Ok(head) = outbox::promote(&d, now_ms) {
            put_delivery(t, Some(&d), &head, pending)?;
        }
        return Ok(());
    }
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
