//! The writes besides ingest, results, requeue and prune: lease, release, config entries,
//! the endpoints in force, and pause. Each is one short transaction that locks the deliveries
//! it changes, asks the [`outbox`] rule, and writes through `rows::Changes`.
//!
//! **The store makes no work for an endpoint that does not exist**: the endpoints in force
//! (`Shared::known`) change only while the command holds the ingest lock, so an ingest batch,
//! which reads them under that lock, never routes to an endpoint whose deletion committed
//! before it; deleting an endpoint dead-letters its unfinished deliveries (`endpoint
//! deleted`), and `set_endpoints` those of endpoints no longer configured (`endpoint removed`).
//! Another node routes to a deleted endpoint until it hears of the deletion;
//! `follow_endpoints` dead-letters what it made meanwhile.

use std::collections::HashSet;
use std::sync::Arc;

use super::error::{Fail, retrying};
use super::ingest::INGEST_LOCK;
use super::nodes;
use super::rows::{
    COLUMNS, Changes, Lease, Locked, delivery, id_bytes, lock_hot, lock_hot_leased, stale,
};
use super::time::ms;
use super::{PgStore, Shared};
use crate::ids::DeliveryId;
use crate::store::{EntryKind, Held, StoreError, outbox};

/// The reason a delivery of a deleted endpoint is dead.
const DELETED: &str = "endpoint deleted";
/// The reason a delivery left for an endpoint no longer in force is dead.
const REMOVED: &str = "endpoint removed";

impl PgStore {
    /// Marks deliveries as being sent until `until_ms`, by this node, with a fresh fencing
    /// token: every one the lease rule accepts (any not final), as redb does. Committed before
    /// it returns, but without waiting for the WAL to reach the disk (`synchronous_commit =
    /// off`): nothing depends on a lease being durable, and a lease lost to a crash of the
    /// database leaves the delivery due, as after any restart.
    pub async fn lease(&self, ids: Vec<DeliveryId>, until_ms: u64) -> Result<(), StoreError> {
        self.take(ids, until_ms, false).await.map(drop)
    }

    /// Like [`PgStore::lease`], but takes only deliveries still due now (by the clock in use)
    /// or already leased by this node, skipping any another transaction has locked, and says
    /// which it took. (Lanes claim through `claim`, which reads and leases in one step.)
    pub async fn claim_ids(
        &self,
        ids: Vec<DeliveryId>,
        until_ms: u64,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        self.take(ids, until_ms, true).await
    }

    async fn take(
        &self,
        ids: Vec<DeliveryId>,
        until_ms: u64,
        only_due: bool,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let ids = &ids;
        retrying(|| async move {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let now = s.clock.now(&tx).await?;
            let lease = Lease {
                token: rand::random::<i64>(),
                node: Some(s.node),
            };
            let found = if only_due {
                claimable(&tx, ids, now.ms(), s.node).await?
            } else {
                lock_hot(&tx, ids).await?
            };
            let mut changes = Changes::default();
            let mut taken = Vec::with_capacity(found.len());
            for d in found {
                if let Ok(new) = outbox::lease(&d, now.at(until_ms), now.ms()) {
                    taken.push(d.id);
                    changes.put(&Locked { d, done: false }, &new, Some(lease));
                }
            }
            changes.flush(&tx).await?;
            tx.commit().await?;
            s.observe_commit(1, started);
            Ok(taken)
        })
        .await
    }

    /// Takes back leases of deliveries a lane took but did not start: due again now.
    pub async fn release(&self, held: Vec<Held>) -> Result<(), StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        retrying(|| async {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let now = s.clock.now(&tx).await?;
            let mut changes = Changes::default();
            let ids: Vec<DeliveryId> = held.iter().map(|h| h.delivery_id).collect();
            for (d, current) in lock_hot_leased(&tx, &ids).await? {
                // Fenced: another claim's lease is not this lane's to give back.
                let theirs = held.iter().find(|h| h.delivery_id == d.id);
                if theirs.is_some_and(|h| stale(h.lease_token, current)) {
                    continue;
                }
                if let Ok(new) = outbox::release(&d, now.ms()) {
                    changes.put(&Locked { d, done: false }, &new, None);
                }
            }
            changes.flush(&tx).await?;
            tx.commit().await?;
            s.observe_commit(1, started);
            Ok(())
        })
        .await
    }

    /// Stores a source or endpoint made through the admin API; an endpoint is in force from
    /// then on.
    pub async fn put_entry(
        &self,
        kind: EntryKind,
        id: &str,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        retrying(|| async {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO config_entries (kind, id, json) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, id) DO UPDATE SET json = excluded.json",
                &[&kind.as_str(), &id, &json],
            )
            .await?;
            let known = Provisional::from(&**s);
            if kind == EntryKind::Endpoint {
                take_ingest_lock(&tx).await?;
                known.change(|k| {
                    k.insert(id.to_string());
                });
            }
            tx.commit().await?;
            known.keep();
            Ok(())
        })
        .await
    }

    /// Removes a stored entry. For an endpoint, its pause goes and every delivery not yet final
    /// is dead-lettered in the same transaction (`endpoint deleted`); returns how many.
    pub async fn delete_entry(&self, kind: EntryKind, id: &str) -> Result<u64, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        retrying(|| async {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let known = Provisional::from(&**s);
            if kind == EntryKind::Endpoint {
                take_ingest_lock(&tx).await?;
                known.change(|k| {
                    k.remove(id);
                });
            }
            tx.execute(
                "DELETE FROM config_entries WHERE kind = $1 AND id = $2",
                &[&kind.as_str(), &id],
            )
            .await?;
            let mut dead = 0;
            if kind == EntryKind::Endpoint {
                tx.execute("DELETE FROM endpoint_state WHERE endpoint_id = $1", &[&id])
                    .await?;
                let now = s.clock.now(&tx).await?;
                dead = dead_letter_endpoint(&tx, id, DELETED, now.ms()).await?;
                // Its breaker goes with it: one made again with its id starts closed. After
                // its deliveries' rows, in the lock order results keep.
                tx.execute("DELETE FROM endpoint_health WHERE endpoint_id = $1", &[&id])
                    .await?;
            }
            tx.commit().await?;
            known.keep();
            Ok(dead)
        })
        .await
    }

    /// Sets the endpoints in force; what is left for any other is dead-lettered (`endpoint
    /// removed`) in the same transaction. Returns how many were.
    pub async fn set_endpoints(&self, endpoints: HashSet<String>) -> Result<u64, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let endpoints = Arc::new(endpoints);
        retrying(|| async {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            take_ingest_lock(&tx).await?;
            let known = Provisional::from(&**s);
            known.set(Arc::clone(&endpoints));
            let now = s.clock.now(&tx).await?;
            let mut dead = 0;
            for endpoint in scheduled_endpoints(&tx).await? {
                if endpoints.contains(&endpoint) {
                    continue;
                }
                let n = dead_letter_endpoint(&tx, &endpoint, REMOVED, now.ms()).await?;
                tracing::warn!(
                    endpoint,
                    dead = n,
                    "deliveries left for an endpoint no longer configured were dead-lettered"
                );
                dead += n;
            }
            tx.commit().await?;
            known.keep();
            Ok(dead)
        })
        .await
    }

    /// Pauses or resumes an endpoint, durably.
    pub async fn set_paused(&self, endpoint: &str, paused: bool) -> Result<(), StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        retrying(|| async {
            let client = s.conn().await?;
            if paused {
                client
                    .execute(
                        "INSERT INTO endpoint_state (endpoint_id, paused) VALUES ($1, true) \
                         ON CONFLICT (endpoint_id) DO UPDATE SET paused = true",
                        &[&endpoint],
                    )
                    .await?;
            } else {
                client
                    .execute(
                        "DELETE FROM endpoint_state WHERE endpoint_id = $1",
                        &[&endpoint],
                    )
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// Another node changed the endpoints in force (`catalog::sync` saw it): this node's
    /// ingest makes work for exactly these from now on.
    ///
    /// The node that deleted an endpoint dead-lettered its work in the deleting transaction,
    /// but until this node heard of it (up to a catalog poll later) its ingest still routed to
    /// the endpoint: the deliveries made then belong to no endpoint on any node. So an endpoint
    /// this node stops following that is gone from the stored entries has what is left of its
    /// work dead-lettered (`endpoint deleted`) here, under the ingest lock, after which no
    /// ingest of this node can make more. One still stored (in force elsewhere, say) is left
    /// alone.
    pub async fn follow_endpoints(&self, endpoints: HashSet<String>) -> Result<(), StoreError> {
        let s = &self.shared;
        let endpoints = Arc::new(endpoints);
        retrying(|| async {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            take_ingest_lock(&tx).await?;
            let known = Provisional::from(&**s);
            known.set(Arc::clone(&endpoints));
            let left = known
                .before()
                .into_iter()
                .flat_map(|k| k.iter())
                .filter(|e| !endpoints.contains(*e));
            let mut dead = 0;
            for endpoint in left {
                let stored = tx
                    .query_opt(
                        "SELECT 1 FROM config_entries WHERE kind = $1 AND id = $2",
                        &[&EntryKind::Endpoint.as_str(), endpoint],
                    )
                    .await?
                    .is_some();
                if !stored {
                    let now = s.clock.now(&tx).await?;
                    dead += dead_letter_endpoint(&tx, endpoint, DELETED, now.ms()).await?;
                }
            }
            tx.commit().await?;
            known.keep();
            if dead > 0 {
                tracing::warn!(
                    dead,
                    "deliveries made for an endpoint deleted on another node were dead-lettered"
                );
            }
            Ok(())
        })
        .await
    }

    /// Commits a tiny write (this node's heartbeat): proof that the database can be written.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.open_for_writes()?;
        nodes::beat(&self.shared).await.map_err(Fail::into_store)
    }
}

/// Locks the deliveries among `ids` that are due at `now_ms` or leased by `node`, skipping
/// those another transaction holds (in id order).
async fn claimable(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[DeliveryId],
    now_ms: u64,
    node: i64,
) -> Result<Vec<crate::model::event::Delivery>, Fail> {
    let keys: Vec<Vec<u8>> = ids.iter().map(|i| id_bytes(i.0).to_vec()).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM deliveries WHERE id = ANY($1) \
         AND (due_ms <= $2 OR lease_node = $3) AND NOT blocked ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let rows = tx.query(&stmt, &[&keys, &ms(now_ms), &node]).await?;
    rows.iter().map(|r| delivery(r, 0)).collect()
}

/// Waits for in-flight ingest batches and keeps new ones out until this transaction ends.
async fn take_ingest_lock(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), Fail> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INGEST_LOCK])
        .await?;
    Ok(())
}

/// A change of the endpoints in force made by a transaction under the ingest lock: in force at
/// once (the batches that wait on the lock must see it), and put back as it was when dropped
/// without [`Provisional::keep`], i.e. when the transaction did not commit.
struct Provisional<'a> {
    s: &'a Shared,
    before: Option<Arc<HashSet<String>>>,
    kept: bool,
}

impl<'a> From<&'a Shared> for Provisional<'a> {
    fn from(s: &'a Shared) -> Self {
        Provisional {
            s,
            before: s.known(),
            kept: false,
        }
    }
}

impl Provisional<'_> {
    /// What was in force before.
    fn before(&self) -> Option<&HashSet<String>> {
        self.before.as_deref()
    }

    fn set(&self, endpoints: Arc<HashSet<String>>) {
        self.s.set_known(Some(endpoints));
    }

    /// Changes what was in force (a store told none makes work for any: nothing to change).
    fn change(&self, change: impl FnOnce(&mut HashSet<String>)) {
        if let Some(known) = &self.before {
            let mut next = HashSet::clone(known);
            change(&mut next);
            self.s.set_known(Some(Arc::new(next)));
        }
    }

    /// The transaction committed: the change stays.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Provisional<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.s.set_known(self.before.take());
        }
    }
}

/// Every endpoint with a delivery in the hot table: one index probe per endpoint (a skip scan
/// of the due index), not a read of the table. Blocked deliveries are not in that index, but
/// every key with one has a head that is, so no endpoint with work is missed.
async fn scheduled_endpoints(tx: &deadpool_postgres::Transaction<'_>) -> Result<Vec<String>, Fail> {
    let rows = tx
        .query(
            "WITH RECURSIVE e(id) AS ( \
               (SELECT endpoint_id FROM deliveries WHERE NOT blocked \
                ORDER BY endpoint_id LIMIT 1) \
               UNION ALL \
               SELECT (SELECT endpoint_id FROM deliveries d WHERE d.endpoint_id > e.id \
                       AND NOT d.blocked ORDER BY endpoint_id LIMIT 1) \
               FROM e WHERE e.id IS NOT NULL) \
             SELECT id FROM e WHERE id IS NOT NULL",
            &[],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Dead-letters every delivery of `endpoint` that is not final; returns how many. Blocked
/// ones too, in the same flush as their heads, so no head's end promotes one only for it to
/// die: the promotion, after the moves, finds nothing left of the key.
pub(super) async fn dead_letter_endpoint(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoint: &str,
    reason: &str,
    now_ms: u64,
) -> Result<u64, Fail> {
    // Every row of the endpoint: those in the schedule (not blocked, the due index) and
    // those of its order keys (the order index); a blocked row always has a key, so the two
    // cover them all, each through an index of its own rather than a scan of the table.
    let sql = format!(
        "SELECT {COLUMNS} FROM deliveries WHERE endpoint_id = $1 \
         AND (NOT blocked OR order_key IS NOT NULL) ORDER BY id FOR UPDATE"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let mut changes = Changes::default();
    for row in tx.query(&stmt, &[&endpoint]).await? {
        let old = Locked {
            d: delivery(&row, 0)?,
            done: false,
        };
        if let Ok(new) = outbox::dead_letter(&old.d, reason, now_ms) {
            changes.put(&old, &new, None);
        }
    }
    let n = changes.len() as u64;
    changes.flush(tx).await?;
    Ok(n)
}
