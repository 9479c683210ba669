//! Pull consumers' leases in the embedded store (issue 19).
//!
//! A lane's lease is taken back at the next open: its process is gone, so nothing is sending
//! the delivery. A pull consumer's is not: the consumer is another process, still holding its
//! receipt. So each consumer lease is kept in [`PULLED`] with its token, **at open its token
//! is known again** (fencing that consumer's ack, nack or extend as before the restart), and
//! the delivery stays `delivering` until the lease runs out on its own.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};

use super::records::DeliveryRecord;
use super::{DELIVERIES, StoreError};
use crate::model::event::DeliveryStatus;

/// delivery id → the token of the consumer lease it is under. A row outlives its lease only
/// until the next open, which drops rows whose delivery is no longer `delivering`.
pub(super) const PULLED: TableDefinition<u128, u64> = TableDefinition::new("pulled");

/// The token of every consumer lease the file holds (after a failed write, the writer's
/// memory is set back to these).
pub(super) fn held(txn: &redb::ReadTransaction) -> Result<HashMap<u128, u64>, StoreError> {
    let pulled = match txn.open_table(PULLED) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut held = HashMap::new();
    for entry in pulled.iter()? {
        let (id, token) = entry?;
        held.insert(id.value(), token.value());
    }
    Ok(held)
}

/// At open: the token of every consumer lease still held. Rows whose delivery was settled or
/// removed since (an endpoint deleted, a dead-letter) are dropped.
pub(super) fn recover(txn: &redb::WriteTransaction) -> Result<HashMap<u128, u64>, StoreError> {
    let mut pulled = txn.open_table(PULLED)?;
    let deliveries = txn.open_table(DELIVERIES)?;
    let mut held = HashMap::new();
    let mut gone = Vec::new();
    for entry in pulled.iter()? {
        let (id, token) = entry?;
        let (id, token) = (id.value(), token.value());
        let delivering = match deliveries.get(id)? {
            Some(bytes) => DeliveryRecord::decode(bytes.value())
                .map(|r| r.into_model(id).status == DeliveryStatus::Delivering)
                .unwrap_or(false),
            None => false,
        };
        if delivering {
            held.insert(id, token);
        } else {
            gone.push(id);
        }
    }
    for id in gone {
        pulled.remove(id)?;
    }
    Ok(held)
}

impl super::RedbStore {
    /// A pull consumer's claim: `endpoint`'s due deliveries up to `limit`, leased until
    /// `until_ms` under one fresh token, **answered only after the lease is committed**.
    /// Claims for consumers take turns from read to commit, so two never take one delivery
    /// (a lane's claim needs no turn: its lane skips what it holds).
    pub(super) async fn claim_pulled(
        &self,
        endpoint: String,
        now_ms: u64,
        limit: usize,
        until_ms: u64,
    ) -> Result<crate::store::DueBatch, StoreError> {
        let _turn = self.inner.pulls.lock().await;
        let s = self.clone();
        let mut batch = super::backend::blocking(move || {
            s.due(&endpoint, now_ms, limit, &std::collections::HashSet::new())
        })
        .await?;
        if batch.items.is_empty() {
            return Ok(batch);
        }
        let token = rand::random::<u64>() | 1;
        let ids = batch.items.iter().map(|d| d.delivery_id).collect();
        let leased = self
            .submit_waiting(|reply| {
                super::writer::Command::LeasePulled(ids, until_ms, token, reply)
            })
            .await?;
        let leased: std::collections::HashMap<_, _> =
            leased.into_iter().map(|d| (d.id, d)).collect();
        batch.items.retain(|d| leased.contains_key(&d.delivery_id));
        for item in &mut batch.items {
            item.lease_token = Some(token);
            // As it stood when leased, not as the snapshot read it: an ack, nack or extend
            // may have landed between the two.
            if let Some(d) = leased.get(&item.delivery_id) {
                item.lease_expired = d.status == DeliveryStatus::Delivering;
                item.attempts = d.attempts;
                item.cycle_attempts = d.cycle_attempts();
                item.cycle_started_ms = d.cycle_started_ms;
            }
        }
        Ok(batch)
    }

    /// Prolongs a consumer's leases until `until_ms`: whether each was current.
    pub(super) async fn extend(
        &self,
        held: Vec<crate::store::Held>,
        until_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        self.submit_waiting(|reply| super::writer::Command::Extend(held, until_ms, reply))
            .await
    }
}
