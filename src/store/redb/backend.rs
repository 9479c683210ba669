//! redb as a [`Backend`]: writes go to the writer thread as they always did; reads, which are
//! synchronous MVCC transactions, run on the blocking pool so no async task waits on the disk.

use std::collections::HashSet;

use super::RedbStore;
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, DeadLetter, Delivery, Event, EventWithDeliveries, Payload};
use crate::store::health::{self, Admit, Health};
use crate::store::query::{Filter, Page};
use crate::store::{
    Backend, ClaimLimits, Completed, Completion, DueBatch, Enabled, EntryKind, Held, IngestOutcome,
    NewEvent, OpsRow, Prune, Pruned, Requeue, Requeued, StoreError, StoreFuture, notices,
};

/// Runs a read on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| StoreError::Storage(format!("a read failed: {e}")))?
}

/// Leases the one item of `batch` as the breaker's probe, awaited so the grant and the lease
/// commit together; an item not granted (another claim took the probe) is left as it was.
async fn probe(
    s: &RedbStore,
    endpoint: &str,
    mut batch: DueBatch,
    health: Health,
    until_ms: u64,
) -> Result<DueBatch, StoreError> {
    let token = rand::random::<u64>() | 1;
    let Some(item) = batch.items.first_mut() else {
        return Ok(batch);
    };
    match s
        .lease_probe(endpoint, item.delivery_id, until_ms, token)
        .await?
    {
        Some(granted) => {
            item.lease_token = Some(token);
            item.probe = true;
            batch.health = Some(granted);
        }
        None => {
            batch.items.clear();
            batch.health = Some(health);
        }
    }
    Ok(batch)
}

impl Backend for RedbStore {
    fn ingest(&self, event: NewEvent) -> StoreFuture<'_, IngestOutcome> {
        Box::pin(RedbStore::ingest(self, event))
    }

    fn due<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
    ) -> StoreFuture<'a, DueBatch> {
        let (s, endpoint) = (self.clone(), endpoint.to_string());
        Box::pin(blocking(move || s.due(&endpoint, now_ms, limit, &skip)))
    }

    fn claim<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
        until_ms: u64,
        limits: ClaimLimits,
    ) -> StoreFuture<'a, DueBatch> {
        // One process holds the file: its lane enforces the endpoint's rate and concurrency
        // itself; the breaker is the store's, since it must survive a restart.
        let (s, endpoint) = (self.clone(), endpoint.to_string());
        Box::pin(async move {
            if limits.pull {
                return s.claim_pulled(endpoint, now_ms, limit, until_ms).await;
            }
            let (mut batch, health) = blocking({
                let s = s.clone();
                let endpoint = endpoint.clone();
                move || {
                    let health = if limits.breaker {
                        Some(s.health_of(&endpoint)?)
                    } else {
                        None
                    };
                    let limit = match health.map(|h| health::admit(&h, now_ms)) {
                        Some(Admit::None { until_ms }) => {
                            // Open or disabled: nothing is read or leased, no attempt spent.
                            return Ok((
                                DueBatch {
                                    next_due_ms: until_ms,
                                    ..DueBatch::default()
                                },
                                health,
                            ));
                        }
                        Some(Admit::Probe) => 1,
                        Some(Admit::All) | None => limit,
                    };
                    Ok((s.due(&endpoint, now_ms, limit, &skip)?, health))
                }
            })
            .await?;
            batch.health = health;
            if let Some(h) = &health {
                // Time the endpoint was held is not charged to `max_age`.
                let held_now = health::held_at(h, now_ms);
                for item in &mut batch.items {
                    item.cycle_started_ms = health::effective_cycle_start(
                        item.cycle_started_ms,
                        item.cycle_held_ms,
                        held_now,
                    );
                }
            }
            if batch.items.is_empty() {
                return Ok(batch);
            }
            if let Some(h) = health.filter(|h| health::admit(h, now_ms) == Admit::Probe) {
                return probe(&s, &endpoint, batch, h, until_ms).await;
            }
            // One process holds the file, and its lanes never read what they hold (`skip`),
            // so the read and the lease need not be one transaction here. The token fences a
            // finish all the same.
            let token = rand::random::<u64>() | 1;
            let ids = batch.items.iter().map(|d| d.delivery_id).collect();
            s.lease_with(ids, until_ms, Some(token)).await?;
            for item in &mut batch.items {
                item.lease_token = Some(token);
            }
            Ok(batch)
        })
    }

    fn lease(&self, ids: Vec<DeliveryId>, until_ms: u64) -> StoreFuture<'_, ()> {
        Box::pin(RedbStore::lease_with(self, ids, until_ms, None))
    }

    fn extend(&self, held: Vec<Held>, until_ms: u64) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(RedbStore::extend(self, held, until_ms))
    }

    fn release(&self, held: Vec<Held>) -> StoreFuture<'_, ()> {
        Box::pin(RedbStore::release(self, held))
    }

    fn complete(&self, completion: Completion) -> StoreFuture<'_, Completed> {
        Box::pin(RedbStore::complete(self, completion))
    }

    fn healths(&self) -> StoreFuture<'_, Vec<(String, Health)>> {
        let s = self.clone();
        Box::pin(blocking(move || s.healths()))
    }

    fn enable<'a>(&'a self, endpoint: &'a str, discard_held: bool) -> StoreFuture<'a, Enabled> {
        Box::pin(RedbStore::enable(self, endpoint, discard_held))
    }

    fn ops_pending(&self, limit: usize) -> StoreFuture<'_, Vec<OpsRow>> {
        let s = self.clone();
        Box::pin(blocking(move || s.ops_pending(limit)))
    }

    fn ops_done(&self, ids: Vec<u64>) -> StoreFuture<'_, ()> {
        Box::pin(RedbStore::ops_done(self, ids))
    }

    fn requeue(&self, what: Requeue) -> StoreFuture<'_, Requeued> {
        Box::pin(RedbStore::requeue(self, what))
    }

    fn put_entry<'a>(&'a self, kind: EntryKind, id: &'a str, json: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(RedbStore::put_entry(self, kind, id, json))
    }

    fn delete_entry<'a>(&'a self, kind: EntryKind, id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(RedbStore::delete_entry(self, kind, id))
    }

    fn entries(&self, kind: EntryKind) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        let s = self.clone();
        Box::pin(blocking(move || s.entries(kind)))
    }

    fn set_endpoints(&self, endpoints: HashSet<String>) -> StoreFuture<'_, u64> {
        Box::pin(RedbStore::set_endpoints(self, endpoints))
    }

    fn prune(&self, p: Prune) -> StoreFuture<'_, Pruned> {
        Box::pin(RedbStore::prune(self, p))
    }

    fn set_paused<'a>(&'a self, endpoint: &'a str, paused: bool) -> StoreFuture<'a, ()> {
        Box::pin(RedbStore::set_paused(self, endpoint, paused))
    }

    fn paused_endpoints(&self) -> StoreFuture<'_, HashSet<String>> {
        let s = self.clone();
        Box::pin(blocking(move || s.paused_endpoints()))
    }

    fn event(&self, id: EventId) -> StoreFuture<'_, Option<(Event, Payload)>> {
        let s = self.clone();
        Box::pin(blocking(move || s.event(id)))
    }

    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<Delivery>> {
        let s = self.clone();
        Box::pin(blocking(move || s.delivery(id)))
    }

    fn attempts(&self, id: DeliveryId) -> StoreFuture<'_, Vec<Attempt>> {
        let s = self.clone();
        Box::pin(blocking(move || s.attempts(id)))
    }

    fn event_ids(&self) -> StoreFuture<'_, Vec<EventId>> {
        let s = self.clone();
        Box::pin(blocking(move || s.event_ids()))
    }

    fn list_events<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<EventWithDeliveries>> {
        let (s, filter, cursor) = (self.clone(), filter.clone(), cursor.map(str::to_string));
        Box::pin(blocking(move || {
            s.list_events(&filter, limit, cursor.as_deref())
        }))
    }

    fn list_dead<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<DeadLetter>> {
        let (s, filter, cursor) = (self.clone(), filter.clone(), cursor.map(str::to_string));
        Box::pin(blocking(move || {
            s.list_dead(&filter, limit, cursor.as_deref())
        }))
    }

    fn pending_count(&self) -> StoreFuture<'_, u64> {
        let s = self.clone();
        Box::pin(blocking(move || s.pending_count()))
    }

    fn quarantined(&self) -> StoreFuture<'_, u64> {
        let s = self.clone();
        Box::pin(blocking(move || s.quarantined()))
    }

    fn dead_count(&self, cap: u64) -> StoreFuture<'_, u64> {
        let s = self.clone();
        Box::pin(blocking(move || Ok(s.dead_count()?.min(cap))))
    }

    fn gauges<'a>(
        &'a self,
        endpoints: &'a [String],
        now_ms: u64,
    ) -> StoreFuture<'a, crate::telemetry::StoreGauges> {
        let (s, endpoints) = (self.clone(), endpoints.to_vec());
        Box::pin(blocking(move || Ok(s.gauges(&endpoints, now_ms))))
    }

    fn notices(&self) -> &notices::Notices {
        RedbStore::notices(self)
    }

    fn probe(&self) -> StoreFuture<'_, ()> {
        Box::pin(RedbStore::probe(self))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            RedbStore::close(self).await;
            Ok(())
        })
    }
}
