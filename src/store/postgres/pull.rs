//! Pull consumers' leases on PostgreSQL (issue 19). A consumer's lease is taken by `claim`
//! with no node (`lease_node` NULL), so no node's departure takes it back; here it is
//! prolonged, under its token only.

use super::PgStore;
use super::error::retrying;
use super::rows::{Changes, Lease, Locked, lock_hot_leased};
use crate::ids::DeliveryId;
use crate::model::event::DeliveryStatus;
use crate::store::{Held, StoreError, outbox};

impl PgStore {
    /// Prolongs each of `held` whose lease is current until `until_ms`: whether each was.
    pub async fn extend(&self, held: Vec<Held>, until_ms: u64) -> Result<Vec<bool>, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let held = &held;
        retrying(|| async move {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let now = s.clock.now(&tx).await?;
            let ids: Vec<DeliveryId> = held.iter().map(|h| h.delivery_id).collect();
            let mut changes = Changes::default();
            let mut extended = Vec::new();
            for (d, current) in lock_hot_leased(&tx, &ids).await? {
                let Some(theirs) = held
                    .iter()
                    .find(|h| h.delivery_id == d.id)
                    .and_then(|h| h.lease_token)
                else {
                    continue;
                };
                if current != Some(theirs) || d.status != DeliveryStatus::Delivering {
                    continue;
                }
                if let Ok(new) = outbox::lease(&d, now.at(until_ms), now.ms()) {
                    extended.push(d.id);
                    let lease = Lease {
                        token: theirs as i64,
                        node: None,
                    };
                    changes.put(&Locked { d, done: false }, &new, Some(lease));
                }
            }
            changes.flush(&tx).await?;
            tx.commit().await?;
            s.observe_commit(1, started);
            Ok(held
                .iter()
                .map(|h| extended.contains(&h.delivery_id))
                .collect())
        })
        .await
    }
}
