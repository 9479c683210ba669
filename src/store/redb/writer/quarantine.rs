//! Records that cannot be decoded (a bug, a bad upgrade, a flipped bit). **One such record
//! stops nothing**: whoever meets it skips it, and the writer moves its bytes to the
//! `quarantine` table, keyed by table and key, logged with both, so no later read meets it
//! again and an operator can still look at it. What depended on it is settled: a delivery in
//! the schedule whose own record is unreadable leaves the schedule (and the pending counts);
//! one whose event or payload is unreadable is dead, with the reason.

use redb::ReadableTable;

use super::{Tables, endpoint_pending, put_delivery};
use crate::store::redb::records::{self, DeliveryRecord, EventRecord, PayloadRecord};
use crate::store::{StoreError, outbox};

/// The reason a scheduled delivery whose event cannot be read is dead.
const UNREADABLE: &str = "its event cannot be read (quarantined)";

/// A record a command met and could not decode: (table, key).
pub(super) type Corrupt = (&'static str, u128);

/// Moves each noted record's bytes into `quarantine` and out of its table. Returns how many
/// were moved (a record already moved, or gone, is not counted again).
pub(super) fn move_noted(t: &mut Tables<'_>) -> Result<u64, StoreError> {
    let noted: Vec<Corrupt> = t.corrupt.borrow_mut().drain(..).collect();
    let mut moved = 0;
    for (table, key) in noted {
        let bytes = match table {
            "deliveries" => t.deliveries.remove(key)?.map(|v| v.value().to_vec()),
            "events" => t.events.remove(key)?.map(|v| v.value().to_vec()),
            "payloads" => t.payloads.remove(key)?.map(|v| v.value().to_vec()),
            _ => None,
        };
        if let Some(bytes) = bytes {
            tracing::error!(table, key = %key, "a record could not be decoded; moved to quarantine");
            t.quarantine.insert((table, key), bytes.as_slice())?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Settles scheduled deliveries a reader could not use (`Store::due` found them unreadable):
/// each leaves the schedule; an unreadable delivery record is quarantined, and a readable one
/// whose event or payload is not is dead.
pub(super) fn settle_unreadable(
    t: &mut Tables<'_>,
    endpoint: &str,
    entries: &[(u64, u128)],
    now_ms: u64,
    pending: &mut u64,
) -> Result<(), StoreError> {
    for &(due_ms, id) in entries {
        if t.due.remove((endpoint, due_ms, id))?.is_none() {
            continue; // Already settled since the read.
        }
        t.leases.remove(id)?;
        let Some(bytes) = t.deliveries.get(id)?.map(|v| v.value().to_vec()) else {
            // Already moved to quarantine by another command. It was in the schedule, so it
            // was counted as not final: it is not any more.
            *pending = pending.saturating_sub(1);
            endpoint_pending(t, endpoint, -1)?;
            continue;
        };
        let Ok(old) = DeliveryRecord::decode(&bytes) else {
            *pending = pending.saturating_sub(1);
            endpoint_pending(t, endpoint, -1)?;
            t.corrupt.borrow_mut().push(("deliveries", id));
            continue;
        };
        let old = old.into_model(id);
        let event = old.event_id.0;
        for (table, ok) in [
            (
                "events",
                t.events
                    .get(event)?
                    .is_none_or(|v| records::decode::<EventRecord>(v.value()).is_ok()),
            ),
            (
                "payloads",
                t.payloads
                    .get(event)?
                    .is_none_or(|v| PayloadRecord::decode(v.value()).is_ok()),
            ),
        ] {
            if !ok {
                t.corrupt.borrow_mut().push((table, event));
            }
        }
        // Out of the counts as it dies. A final one (refused) was a stale schedule entry,
        // gone now, and not counted as waiting.
        if let Ok(new) = outbox::dead_letter(&old, UNREADABLE, now_ms) {
            put_delivery(t, Some(&old), &new, pending)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::store::query::Filter;
    use crate::store::redb::{DELIVERIES, EVENTS, RedbStore as Store};
    use crate::store::{IngestOutcome, Prune};

    fn garble(store: &Store, table: redb::TableDefinition<u128, &[u8]>, key: u128) {
        let db = store.inner.db.get().expect("db");
        let txn = db.begin_write().expect("txn");
        txn.open_table(table)
            .expect("table")
            .insert(key, &[0xff, 0xff, 0xff][..])
            .expect("insert");
        txn.commit().expect("commit");
    }

    #[tokio::test]
    async fn an_unreadable_record_is_skipped_and_quarantined_and_stops_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::tests::store(dir.path());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let IngestOutcome::Accepted {
                event_id,
                deliveries,
            } = store
                .ingest(super::super::tests::event(b"{}", &["e"]))
                .await
                .expect("ingest")
            else {
                panic!("not accepted");
            };
            ids.push((event_id.0, deliveries[0].0.0));
        }
        // The second delivery's record and the third event's record turn to garbage.
        garble(&store, DELIVERIES, ids[1].1);
        garble(&store, EVENTS, ids[2].0);
        let none = HashSet::new();
        let due = || {
            let store = store.clone();
            let none = none.clone();
            tokio::task::spawn_blocking(move || store.due("e", u64::MAX, 10, &none))
        };
        // The lane reads past both instead of failing on every read.
        let batch = due().await.expect("join").expect("a schedule");
        assert_eq!(batch.items.len(), 1);
        assert_eq!(batch.items[0].delivery_id.0, ids[0].1);
        store.probe().await.expect("the writer settled them");
        assert_eq!(store.quarantined().expect("count"), 2);
        assert_eq!(store.pending_count().expect("pending"), 1);
        let third = store
            .delivery(crate::ids::DeliveryId(ids[2].1))
            .expect("read")
            .expect("kept");
        assert_eq!(third.status, crate::model::event::DeliveryStatus::Dead);
        // Read again: nothing unreadable left in the schedule.
        assert_eq!(due().await.expect("join").expect("read").items.len(), 1);
        // Pruning, listing and ingest all go on.
        garble(&store, EVENTS, ids[0].0);
        let pruned = store
            .prune(Prune {
                now_ms: u64::MAX / 2,
                events_before_ms: u64::MAX / 2,
                dead_before_ms: u64::MAX / 2,
                after: None,
                after_dead: None,
                max_events: 500,
                max_dedup: 500,
            })
            .await;
        assert!(pruned.is_ok(), "{pruned:?}");
        // Pruning reads only finished events: the garbled one, still waiting, is not met.
        assert_eq!(store.quarantined().expect("count"), 2);
        store
            .list_events(&Filter::default(), 10, None)
            .expect("a page");
        store
            .ingest(super::super::tests::event(b"{}", &["e"]))
            .await
            .expect("ingest goes on");
        store.close().await;
    }
}
