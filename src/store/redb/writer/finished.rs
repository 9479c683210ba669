//! Which events are finished, indexed so that pruning reads only what it can remove.
//!
//! Pruning used to walk every event older than the retention, and most of those it met (events
//! with a dead letter still within its own retention, or a delivery still waiting) survived,
//! so it read the same survivors again at every interval: with a million dead letters waiting,
//! a million reads a minute. Now:
//! - `unfinished`: event id → how many of its deliveries are not final (absent: none);
//! - `finished_delivered`: event id → (): finished with no dead delivery, pruned by arrival;
//! - `finished_dead`: (last death ms, event id) → (): finished with dead ones, pruned by the
//!   last death.
//!
//! **An event is in exactly one of `unfinished` and the two finished indexes**, kept in the
//! transactions that change a delivery's status: ingest, complete, requeue, and the
//! dead-lettering of a removed endpoint. Pruning then reads only index entries past their
//! retention. A store written before the index existed gets it built once at open.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Tables, read_delivery, read_event};
use crate::model::event::Delivery;
use crate::store::redb::records::{self, DeliveryRecord, EventRecord};
use crate::store::redb::{DELIVERIES, EVENTS, META, StoreError, outbox};

pub(in crate::store) const UNFINISHED: TableDefinition<u128, u64> =
    TableDefinition::new("unfinished");
pub(in crate::store) const FINISHED_DELIVERED: TableDefinition<u128, ()> =
    TableDefinition::new("finished_delivered");
pub(in crate::store) const FINISHED_DEAD: TableDefinition<(u64, u128), ()> =
    TableDefinition::new("finished_dead");
/// Set once the index is built (a store from before it gets it at open).
const META_INDEXED: &str = "finished_index";

/// An event stored with `n` deliveries, none final yet.
pub(super) fn stored(t: &mut Tables<'_>, event: u128, n: u64) -> Result<(), StoreError> {
    if n == 0 {
        t.finished_delivered.insert(event, ())?;
    } else {
        t.unfinished.insert(event, n)?;
    }
    Ok(())
}

/// One delivery of `event` became final (delivered or dead). Call after its record is
/// written: when it was the last, the event is filed by what its deliveries are now.
pub(super) fn settled(t: &mut Tables<'_>, event: u128) -> Result<(), StoreError> {
    let left = t.unfinished.get(event)?.map_or(0, |v| v.value());
    if left > 1 {
        t.unfinished.insert(event, left - 1)?;
        return Ok(());
    }
    t.unfinished.remove(event)?;
    file(t, event)
}

/// One delivery of `event` is no longer final (requeued). Call before its record changes:
/// a finished event leaves its index, found by what its deliveries are now.
pub(super) fn reopened(t: &mut Tables<'_>, event: u128) -> Result<(), StoreError> {
    let left = t.unfinished.get(event)?.map_or(0, |v| v.value());
    if left == 0 {
        t.finished_delivered.remove(event)?;
        // Where a finished event is filed: the delivered index, or the dead one by its last
        // death.
        if let Some(at) = outbox::last_death(&deliveries_of(t, event)?) {
            t.finished_dead.remove((at, event))?;
        }
    }
    t.unfinished.insert(event, left + 1)?;
    Ok(())
}

fn deliveries_of(t: &Tables<'_>, event: u128) -> Result<Vec<Delivery>, StoreError> {
    let Some(ev) = read_event(t, event)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(ev.deliveries.len());
    for (id, _) in &ev.deliveries {
        if let Some(d) = read_delivery(t, id.0)? {
            out.push(d);
        }
    }
    Ok(out)
}

/// Files a finished event in the index its deliveries' present state says.
pub(super) fn file(t: &mut Tables<'_>, event: u128) -> Result<(), StoreError> {
    match outbox::last_death(&deliveries_of(t, event)?) {
        None => t.finished_delivered.insert(event, ())?,
        Some(at) => t.finished_dead.insert((at, event), ())?,
    };
    Ok(())
}

/// Builds the index for a store written before it existed: one pass over every event, once.
pub(in crate::store) fn build_if_missing(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut unfinished = txn.open_table(UNFINISHED)?;
    let mut delivered = txn.open_table(FINISHED_DELIVERED)?;
    let mut dead = txn.open_table(FINISHED_DEAD)?;
    if meta.get(META_INDEXED)?.is_some() {
        return Ok(());
    }
    let events = txn.open_table(EVENTS)?;
    let deliveries = txn.open_table(DELIVERIES)?;
    let mut n = 0u64;
    for entry in events.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        // Unreadable ones are left for the writer to quarantine when it meets them.
        let Ok(ev) = records::decode::<EventRecord>(v.value()) else {
            continue;
        };
        let mut recs = Vec::with_capacity(ev.deliveries.len());
        for (did, _) in &ev.deliveries {
            if let Some(Ok(d)) = deliveries
                .get(*did)?
                .map(|v| DeliveryRecord::decode(v.value()))
            {
                recs.push(d.into_model(*did));
            }
        }
        let open = outbox::unfinished(&recs);
        if open > 0 {
            unfinished.insert(id, open)?;
        } else {
            match outbox::last_death(&recs) {
                None => delivered.insert(id, ())?,
                Some(at) => dead.insert((at, id), ())?,
            };
        }
        n += 1;
    }
    meta.insert(META_INDEXED, 1)?;
    if n > 0 {
        tracing::info!(
            events = n,
            "indexed finished events for pruning (once, after an upgrade)"
        );
    }
    Ok(())
}
