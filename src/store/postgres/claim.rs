//! Claims: what a lane sends, taken so that no two lanes, on any node, hold one delivery at
//! once.
//!
//! A claim reads the endpoint's due deliveries with their payloads (`due`, which takes no
//! locks), then leases them in one short transaction that locks those rows with
//! `FOR UPDATE SKIP LOCKED` and leases only the ones still due under the lock: a row another
//! node is leasing right now is skipped, and one it leased a moment ago is no longer due (a
//! delivering row's due time is its lease's expiry). So **no two claims hold the same delivery
//! at once**, and no connection is held between the read and the lease. Each claim's leases
//! carry a fresh token; a completion under another token changes nothing (`complete`).

use std::collections::HashSet;

use super::PgStore;
use super::error::retrying;
use super::rows::{COLUMNS, Changes, Lease, Locked, delivery, id_bytes};
use super::time::ms;
use crate::ids::DeliveryId;
use crate::store::{DueBatch, StoreError, outbox};

impl PgStore {
    /// See `Store::claim`.
    pub async fn claim(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: &HashSet<DeliveryId>,
        until_ms: u64,
    ) -> Result<DueBatch, StoreError> {
        let mut batch = self.due(endpoint, now_ms, limit, skip).await?;
        if batch.items.is_empty() {
            return Ok(batch);
        }
        self.open_for_writes()?;
        let s = &self.shared;
        let keys: Vec<Vec<u8>> = batch
            .items
            .iter()
            .map(|d| id_bytes(d.delivery_id.0).to_vec())
            .collect();
        let token = rand::random::<i64>();
        let sql = format!(
            "SELECT {COLUMNS} FROM deliveries WHERE id = ANY($1) AND due_ms <= $2 \
             ORDER BY id FOR UPDATE SKIP LOCKED"
        );
        let leased: HashSet<DeliveryId> = retrying(|| async {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            // Nothing depends on a lease being durable: one lost to a crash of the database
            // leaves the delivery due, as after any restart.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let now = s.clock.now(&tx).await?;
            let stmt = tx.prepare_cached(&sql).await?;
            // The caller's now, on the clock times are stored by.
            let rows = tx.query(&stmt, &[&keys, &ms(now.at(now_ms))]).await?;
            let lease = Lease {
                token,
                node: s.node,
            };
            let mut changes = Changes::default();
            let mut got = HashSet::new();
            for row in &rows {
                let d = delivery(row, 0)?;
                if let Ok(new) = outbox::lease(&d, now.at(until_ms), now.ms()) {
                    got.insert(d.id);
                    changes.put(&Locked { d, done: false }, &new, Some(lease));
                }
            }
            changes.flush(&tx).await?;
            tx.commit().await?;
            s.observe_commit(1, started);
            Ok(got)
        })
        .await?;
        batch.items.retain(|d| leased.contains(&d.delivery_id));
        for item in &mut batch.items {
            // The token's bits, as the completion will name them.
            item.lease_token = Some(token as u64);
        }
        Ok(batch)
    }
}
