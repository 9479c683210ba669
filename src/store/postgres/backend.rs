//! PostgreSQL as a [`Backend`]: every operation is the `PgStore` method of the same name.

use std::collections::HashSet;

use super::PgStore;
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, DeadLetter, Delivery, Event, EventWithDeliveries, Payload};
use crate::store::health::Health;
use crate::store::query::{Filter, Page};
use crate::store::{
    Backend, ClaimLimits, Completed, Completion, DueBatch, Enabled, EntryKind, Held, IngestOutcome,
    NewEvent, OpsRow, Prune, Pruned, Requeue, Requeued, StoreFuture, notices,
};

impl Backend for PgStore {
    fn ingest(&self, event: NewEvent) -> StoreFuture<'_, IngestOutcome> {
        Box::pin(PgStore::ingest(self, event))
    }

    fn due<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
    ) -> StoreFuture<'a, DueBatch> {
        Box::pin(async move { PgStore::due(self, endpoint, now_ms, limit, &skip).await })
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
        Box::pin(async move {
            PgStore::claim(self, endpoint, now_ms, limit, &skip, until_ms, limits).await
        })
    }

    fn lease(&self, ids: Vec<DeliveryId>, until_ms: u64) -> StoreFuture<'_, ()> {
        Box::pin(PgStore::lease(self, ids, until_ms))
    }

    fn extend(&self, held: Vec<Held>, until_ms: u64) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(PgStore::extend(self, held, until_ms))
    }

    fn release(&self, held: Vec<Held>) -> StoreFuture<'_, ()> {
        Box::pin(PgStore::release(self, held))
    }

    fn complete(&self, completion: Completion) -> StoreFuture<'_, Completed> {
        Box::pin(PgStore::complete(self, completion))
    }

    fn healths(&self) -> StoreFuture<'_, Vec<(String, Health)>> {
        Box::pin(PgStore::healths(self))
    }

    fn enable<'a>(&'a self, endpoint: &'a str, discard_held: bool) -> StoreFuture<'a, Enabled> {
        Box::pin(PgStore::enable(self, endpoint, discard_held))
    }

    fn ops_pending(&self, limit: usize) -> StoreFuture<'_, Vec<OpsRow>> {
        Box::pin(PgStore::ops_pending(self, limit))
    }

    fn ops_done(&self, ids: Vec<u64>) -> StoreFuture<'_, ()> {
        Box::pin(PgStore::ops_done(self, ids))
    }

    fn requeue(&self, what: Requeue) -> StoreFuture<'_, Requeued> {
        Box::pin(PgStore::requeue(self, what))
    }

    fn put_entry<'a>(&'a self, kind: EntryKind, id: &'a str, json: Vec<u8>) -> StoreFuture<'a, ()> {
        Box::pin(PgStore::put_entry(self, kind, id, json))
    }

    fn delete_entry<'a>(&'a self, kind: EntryKind, id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(PgStore::delete_entry(self, kind, id))
    }

    fn entries(&self, kind: EntryKind) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        Box::pin(PgStore::entries(self, kind))
    }

    fn set_endpoints(&self, endpoints: HashSet<String>) -> StoreFuture<'_, u64> {
        Box::pin(PgStore::set_endpoints(self, endpoints))
    }

    fn prune(&self, p: Prune) -> StoreFuture<'_, Pruned> {
        Box::pin(PgStore::prune(self, p))
    }

    fn maintain(&self, p: Prune) -> StoreFuture<'_, Pruned> {
        Box::pin(PgStore::maintain(self, p))
    }

    fn set_paused<'a>(&'a self, endpoint: &'a str, paused: bool) -> StoreFuture<'a, ()> {
        Box::pin(PgStore::set_paused(self, endpoint, paused))
    }

    fn paused_endpoints(&self) -> StoreFuture<'_, HashSet<String>> {
        Box::pin(PgStore::paused_endpoints(self))
    }

    fn event(&self, id: EventId) -> StoreFuture<'_, Option<(Event, Payload)>> {
        Box::pin(PgStore::event(self, id))
    }

    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<Delivery>> {
        Box::pin(PgStore::delivery(self, id))
    }

    fn attempts(&self, id: DeliveryId) -> StoreFuture<'_, Vec<Attempt>> {
        Box::pin(PgStore::attempts(self, id))
    }

    fn event_ids(&self) -> StoreFuture<'_, Vec<EventId>> {
        Box::pin(PgStore::event_ids(self))
    }

    fn list_events<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<EventWithDeliveries>> {
        Box::pin(PgStore::list_events(self, filter, limit, cursor))
    }

    fn list_dead<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<DeadLetter>> {
        Box::pin(PgStore::list_dead(self, filter, limit, cursor))
    }

    fn pending_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(PgStore::pending_count(self))
    }

    fn dead_count(&self, cap: u64) -> StoreFuture<'_, u64> {
        Box::pin(PgStore::dead_count(self, cap))
    }

    /// PostgreSQL keeps typed columns, so no record can fail to decode: always 0.
    fn follow_endpoints(&self, endpoints: HashSet<String>) -> StoreFuture<'_, ()> {
        Box::pin(PgStore::follow_endpoints(self, endpoints))
    }

    fn catalog_version(&self) -> StoreFuture<'_, u64> {
        Box::pin(PgStore::catalog_version(self))
    }

    fn quarantined(&self) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }

    fn gauges<'a>(
        &'a self,
        endpoints: &'a [String],
        now_ms: u64,
    ) -> StoreFuture<'a, crate::telemetry::StoreGauges> {
        Box::pin(async move { Ok(PgStore::gauges(self, endpoints, now_ms).await) })
    }

    fn notices(&self) -> &notices::Notices {
        &self.shared.notices
    }

    fn probe(&self) -> StoreFuture<'_, ()> {
        Box::pin(PgStore::probe(self))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            PgStore::close(self).await;
            Ok(())
        })
    }
}
