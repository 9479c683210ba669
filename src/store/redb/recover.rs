//! Opening the embedded store: tables created where missing, breakers reopened as a restart
//! leaves them, and every lane's lease a previous process left taken back (a pull consumer's
//! stays: `pulled.rs`).

use redb::{Database, ReadableTable};

use super::*;

/// Takes back a lease: the delivery, unless it is final, is due again at `now_ms` as pending
/// or retrying (by whether it was ever attempted; see [`outbox::release`]).
pub(super) fn release(
    deliveries: &mut redb::Table<'_, u128, &'static [u8]>,
    due: &mut redb::Table<'_, (&'static str, u64, u128), ()>,
    leases: &mut redb::Table<'_, u128, u64>,
    id: u128,
    now_ms: u64,
) -> Result<(), StoreError> {
    if leases.remove(id)?.is_none() {
        return Ok(());
    }
    let Some(bytes) = deliveries.get(id)?.map(|v| v.value().to_vec()) else {
        return Ok(());
    };
    let old = DeliveryRecord::decode(&bytes)?.into_model(id);
    // A final delivery keeps its state; a lease row always belongs to one being sent.
    let Ok(new) = outbox::release(&old, now_ms) else {
        return Ok(());
    };
    due.remove((old.endpoint_id.as_str(), old.due_ms, id))?;
    due.insert((new.endpoint_id.as_str(), new.due_ms, id), ())?;
    deliveries.insert(id, DeliveryRecord::from(new).encode().as_slice())?;
    Ok(())
}

/// Creates missing tables, and makes every lease left by a previous process due now: that
/// process is gone (redb holds an exclusive lock on the file), so nothing is sending them.
/// Returns the pending-delivery count.
pub(super) fn recover(
    db: &Database,
    now_ms: u64,
) -> Result<(u64, std::collections::HashMap<u128, u64>), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    let pending;
    // A pull consumer's lease is not in `leases`: it outlives this process (`pulled`).
    let pulled = pulled::recover(&txn)?;
    {
        // Opening creates each table if it is missing, so readers never meet a missing table.
        txn.open_table(EVENTS)?;
        txn.open_table(PAYLOADS)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(DEAD)?;
        txn.open_table(DEDUP)?;
        txn.open_table(ENDPOINT_STATE)?;
        txn.open_table(CONFIG_ENTRIES)?;
        txn.open_table(DEDUP_EXPIRY)?;
        txn.open_table(PENDING_BY_ENDPOINT)?;
        txn.open_table(QUARANTINE)?;
        txn.open_table(ORDER_QUEUE)?;
        txn.open_table(OPS_OUTBOX)?;
        writer::finished::build_if_missing(&txn)?;
        // Every lease is taken back below, a probe's too: a half-open breaker probes again.
        let mut health = txn.open_table(ENDPOINT_HEALTH)?;
        let mut reopened = Vec::new();
        for entry in health.iter()? {
            let (endpoint, value) = entry?;
            let Ok(h) = records::decode::<records::HealthRecord>(value.value())
                .and_then(records::HealthRecord::into_model)
            else {
                continue;
            };
            let after = crate::store::health::recovered_at_open(&h, now_ms);
            if after != h {
                reopened.push((endpoint.value().to_string(), after));
            }
        }
        for (endpoint, h) in reopened {
            let record = records::encode(&records::HealthRecord::from(&h));
            health.insert(endpoint.as_str(), record.as_slice())?;
        }
        let mut deliveries = txn.open_table(DELIVERIES)?;
        let mut due = txn.open_table(DUE)?;
        let mut leases = txn.open_table(LEASES)?;
        let meta = txn.open_table(META)?;
        pending = meta.get(META_PENDING)?.map(|v| v.value()).unwrap_or(0);
        let mut held = Vec::new();
        for entry in leases.iter()? {
            held.push(entry?.0.value());
        }
        for id in held {
            release(&mut deliveries, &mut due, &mut leases, id, now_ms)?;
        }
    }
    txn.commit()?;
    Ok((pending, pulled))
}
