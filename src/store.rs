//! The store: events, their deliveries and the schedule, kept as one transactional outbox, behind
//! one contract that every backend keeps.
//!
//! [`Backend`] is the seam: what ingest, delivery, the API, the catalog and retention ask of
//! storage, in model types (`model::event`) and the commands of [`types`]. [`Store`] is the
//! handle everyone holds (cheap to clone), over whichever backend was opened. Two backends:
//! - [`redb`]: the embedded default, one file, one writer thread with group commit;
//! - `postgres`: several nodes on one database.
//!
//! **Nothing of a backend leaks above the trait**: no redb or SQL type appears in it. **What
//! an operation does to a delivery's state is decided by the backend-neutral rules of
//! [`outbox`]** (and what one does to an endpoint's circuit breaker, by those of [`health`]),
//! so backends differ in how they keep state, never in what it becomes. The
//! contract is pinned, without HTTP, by `tests/it/store.rs`, which runs against every backend.
//!
//! **Ingest answers only after its commit**, with the event, its deliveries and its dedup
//! entries in one transaction. **New due work is announced after its commit** ([`notices`]), so
//! no caller pairs a write with a wake-up.

pub mod health;
pub mod notices;
pub mod outbox;
pub mod postgres;
pub mod query;
pub mod redb;
pub mod retention;
mod types;

pub use self::redb::{DB_FILE, StoreOptions, compact};
pub use types::{
    ClaimLimits, Completed, Completion, DISCARDED_ON_ENABLE, DueBatch, DueDelivery, Enabled,
    EntryKind, Held, IngestOutcome, NewEvent, Next, OpsRow, Prune, Pruned, REPLAY_SCAN,
    REPLAY_STEP, Requeue, Requeued,
};

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, DeadLetter, Delivery, Event, EventWithDeliveries, Payload};
use query::{Filter, Page};

/// Why the store could not do what was asked. Ingress answers all of these with 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the writer queue is full")]
    Busy,
    #[error("{pending} deliveries are pending, the limit is {limit}")]
    Backlog { pending: u64, limit: u64 },
    #[error("the store is closed")]
    Closed,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("the cursor is not one this API gave out")]
    BadCursor,
}

/// What a backend's operations return: a boxed future, so that [`Backend`] can sit behind a
/// `dyn` (the one allocation per call is nothing beside a commit or a round trip).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What every storage backend does. Each method's meaning is the one documented on [`Store`],
/// which calls it.
pub trait Backend: Send + Sync + 'static {
    fn ingest(&self, event: NewEvent) -> StoreFuture<'_, IngestOutcome>;
    fn due<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
    ) -> StoreFuture<'a, DueBatch>;
    fn claim<'a>(
        &'a self,
        endpoint: &'a str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
        until_ms: u64,
        limits: ClaimLimits,
    ) -> StoreFuture<'a, DueBatch>;
    fn lease(&self, ids: Vec<DeliveryId>, until_ms: u64) -> StoreFuture<'_, ()>;
    fn release(&self, held: Vec<Held>) -> StoreFuture<'_, ()>;
    fn extend(&self, held: Vec<Held>, until_ms: u64) -> StoreFuture<'_, Vec<bool>>;
    fn complete(&self, completion: Completion) -> StoreFuture<'_, Completed>;
    /// Every endpoint's breaker the store keeps (see [`Store::healths`]).
    fn healths(&self) -> StoreFuture<'_, Vec<(String, health::Health)>>;
    fn enable<'a>(&'a self, endpoint: &'a str, discard_held: bool) -> StoreFuture<'a, Enabled>;
    /// The oldest operational events waiting in the outbox (see [`Store::ops_pending`]). A
    /// backend that writes none has none.
    fn ops_pending(&self, limit: usize) -> StoreFuture<'_, Vec<OpsRow>> {
        let _ = limit;
        Box::pin(async { Ok(Vec::new()) })
    }
    fn ops_done(&self, ids: Vec<u64>) -> StoreFuture<'_, ()> {
        let _ = ids;
        Box::pin(async { Ok(()) })
    }
    fn requeue(&self, what: Requeue) -> StoreFuture<'_, Requeued>;
    fn put_entry<'a>(&'a self, kind: EntryKind, id: &'a str, json: Vec<u8>) -> StoreFuture<'a, ()>;
    fn delete_entry<'a>(&'a self, kind: EntryKind, id: &'a str) -> StoreFuture<'a, u64>;
    fn entries(&self, kind: EntryKind) -> StoreFuture<'_, Vec<(String, Vec<u8>)>>;
    fn set_endpoints(&self, endpoints: HashSet<String>) -> StoreFuture<'_, u64>;
    fn prune(&self, p: Prune) -> StoreFuture<'_, Pruned>;
    /// Upkeep in bulk, before a pass's pruning steps; see [`Store::maintain`]. A backend
    /// that keeps history row by row has none.
    fn maintain(&self, p: Prune) -> StoreFuture<'_, Pruned> {
        let _ = p;
        Box::pin(async { Ok(Pruned::default()) })
    }
    fn set_paused<'a>(&'a self, endpoint: &'a str, paused: bool) -> StoreFuture<'a, ()>;
    fn paused_endpoints(&self) -> StoreFuture<'_, HashSet<String>>;
    fn event(&self, id: EventId) -> StoreFuture<'_, Option<(Event, Payload)>>;
    fn delivery(&self, id: DeliveryId) -> StoreFuture<'_, Option<Delivery>>;
    fn attempts(&self, id: DeliveryId) -> StoreFuture<'_, Vec<Attempt>>;
    fn event_ids(&self) -> StoreFuture<'_, Vec<EventId>>;
    fn list_events<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<EventWithDeliveries>>;
    fn list_dead<'a>(
        &'a self,
        filter: &'a Filter,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, Page<DeadLetter>>;
    fn pending_count(&self) -> StoreFuture<'_, u64>;
    fn quarantined(&self) -> StoreFuture<'_, u64>;
    fn gauges<'a>(
        &'a self,
        endpoints: &'a [String],
        now_ms: u64,
    ) -> StoreFuture<'a, crate::telemetry::StoreGauges>;
    fn notices(&self) -> &notices::Notices;
    /// Another node changed the endpoints in force: make work for exactly these from now on.
    /// Work for an endpoint left behind is dead-lettered only if the endpoint is gone from the
    /// stored entries (its deleting node missed what this one made meanwhile). A backend only
    /// one process can hold has nothing to follow.
    fn follow_endpoints(&self, endpoints: HashSet<String>) -> StoreFuture<'_, ()> {
        let _ = endpoints;
        Box::pin(async { Ok(()) })
    }
    /// A number that changes whenever a config entry or a pause is stored, by any node. A
    /// backend only one process can hold may leave it at 0: nothing else changes its entries.
    fn catalog_version(&self) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }
    /// Dead letters kept, counted up to `cap` (`min(count, cap)`): an index's size, or a
    /// bounded walk of one, so the console's overview reads it cheaply whatever the store
    /// holds.
    fn dead_count(&self, cap: u64) -> StoreFuture<'_, u64>;
    fn probe(&self) -> StoreFuture<'_, ()>;
    fn close(&self) -> StoreFuture<'_, ()>;
}

/// A handle to the open store, whichever backend holds it; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens (or creates) the embedded store in `data_dir`, takes back every lease a previous
    /// process left, and starts its writer.
    pub fn open(data_dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Ok(Store::from_backend(redb::RedbStore::open(data_dir, opts)?))
    }

    /// A store over any backend.
    pub fn from_backend(backend: impl Backend) -> Store {
        Store {
            backend: Arc::new(backend),
        }
    }

    /// Stores an event and its deliveries; returns once they are committed.
    pub async fn ingest(&self, event: NewEvent) -> Result<IngestOutcome, StoreError> {
        self.backend.ingest(event).await
    }

    /// Up to `limit` of an endpoint's deliveries due at `now_ms`, earliest first, leaving out
    /// `skip` (those its lane has in flight), and when the next one not taken is due.
    pub async fn due(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
    ) -> Result<DueBatch, StoreError> {
        self.backend.due(endpoint, now_ms, limit, skip).await
    }

    /// Takes up to `limit` of an endpoint's deliveries due at `now_ms` (leaving out `skip`) and
    /// leases them until `until_ms` under a fresh token, which each item carries: what a lane
    /// sends. **No two claims hold the same delivery at once**, on any node: a delivery is
    /// claimed again only after its lease ran out or was given back. The answer's
    /// `next_due_ms` is when the next delivery not taken is due. A store several nodes share
    /// also keeps the endpoint's `limits` across all of them: **no more than `max_in_flight`
    /// deliveries of an endpoint are leased at once, and no more are taken than its rate
    /// allows**, whichever nodes claim them.
    pub async fn claim(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: HashSet<DeliveryId>,
        until_ms: u64,
        limits: ClaimLimits,
    ) -> Result<DueBatch, StoreError> {
        self.backend
            .claim(endpoint, now_ms, limit, skip, until_ms, limits)
            .await
    }

    /// Marks deliveries as being sent until `until_ms`, with no token (their finish is not
    /// fenced). A backend may return once the lease is
    /// queued rather than committed (redb does: see `RedbStore::lease`).
    pub async fn lease(&self, ids: Vec<DeliveryId>, until_ms: u64) -> Result<(), StoreError> {
        self.backend.lease(ids, until_ms).await
    }

    /// Takes back leases of deliveries a lane took but did not start: due again now, unless
    /// another lease has taken one over. Returns once committed.
    pub async fn release(&self, held: Vec<Held>) -> Result<(), StoreError> {
        self.backend.release(held).await
    }

    /// Prolongs pull consumers' leases until `until_ms`, each only under its current token
    /// (its receipt): whether each was prolonged. Returns once committed.
    pub async fn extend(&self, held: Vec<Held>, until_ms: u64) -> Result<Vec<bool>, StoreError> {
        self.backend.extend(held, until_ms).await
    }

    /// Records an attempt and schedules what follows. With a health policy, the result also
    /// counts for the endpoint's breaker, in the same transaction: the answer says where the
    /// breaker stands after it.
    pub async fn complete(&self, completion: Completion) -> Result<Completed, StoreError> {
        self.backend.complete(completion).await
    }

    /// The breakers the store keeps: every endpoint whose breaker ever opened, with its
    /// state (an endpoint not listed is closed and was never held).
    pub async fn healths(&self) -> Result<Vec<(String, health::Health)>, StoreError> {
        self.backend.healths().await
    }

    /// An operator enables `endpoint`: its breaker closes (whatever its state) and what was
    /// held for it goes out, in order; with `discard_held`, what was held is dead-lettered
    /// first, with the reason [`DISCARDED_ON_ENABLE`], in the same transaction. Answers how
    /// many deliveries were held (its pending deliveries, when the breaker was not closed).
    pub async fn enable(&self, endpoint: &str, discard_held: bool) -> Result<Enabled, StoreError> {
        self.backend.enable(endpoint, discard_held).await
    }

    /// Up to `limit` operational events waiting in the outbox, oldest first: each written in
    /// the transaction of the change it reports (a breaker's transition, an enable, a death),
    /// so none is lost or made up. `ops` publishes them, then calls [`Store::ops_done`].
    pub async fn ops_pending(&self, limit: usize) -> Result<Vec<OpsRow>, StoreError> {
        self.backend.ops_pending(limit).await
    }

    /// Removes published operational events from the outbox.
    pub async fn ops_done(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        self.backend.ops_done(ids).await
    }

    /// Makes deliveries due now in a fresh retry cycle, keeping their ids (and so their
    /// `webhook-id`). The selection and the change are one transaction, committed before this
    /// returns, so a crash cannot half-apply a replay.
    pub async fn requeue(&self, what: Requeue) -> Result<Requeued, StoreError> {
        self.backend.requeue(what).await
    }

    /// Stores a source or endpoint made through the admin API (its JSON, as given).
    pub async fn put_entry(
        &self,
        kind: EntryKind,
        id: &str,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.backend.put_entry(kind, id, json).await
    }

    /// Removes a stored entry. For an endpoint, every delivery not yet delivered is
    /// dead-lettered in the same transaction ("endpoint deleted"); returns how many.
    pub async fn delete_entry(&self, kind: EntryKind, id: &str) -> Result<u64, StoreError> {
        self.backend.delete_entry(kind, id).await
    }

    /// The stored entries of a kind: (id, JSON).
    pub async fn entries(&self, kind: EntryKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.backend.entries(kind).await
    }

    /// Tells the store which endpoints are in force (at start): from then on it makes no work
    /// for any other, and what is left for others now is dead-lettered (`endpoint removed`)
    /// in the same transaction. Returns how many were.
    pub async fn set_endpoints(&self, endpoints: HashSet<String>) -> Result<u64, StoreError> {
        self.backend.set_endpoints(endpoints).await
    }

    /// One bounded pruning step (see [`Prune`]).
    pub async fn prune(&self, p: Prune) -> Result<Pruned, StoreError> {
        self.backend.prune(p).await
    }

    /// What a pruning pass does before its steps, with the pass's cutoffs (`p`'s bounds and
    /// cursors are unused): a backend that keeps history by day (PostgreSQL) makes the days
    /// ahead and drops whole days past retention, keeping the events that must stay (the
    /// steps take those as they become prunable); `events` counts the events removed. **It
    /// removes nothing a step would not**. After an error, some days past retention may
    /// still be there: the pass then takes no step, rather than remove them row by row.
    pub async fn maintain(&self, p: Prune) -> Result<Pruned, StoreError> {
        self.backend.maintain(p).await
    }

    /// Pauses or resumes an endpoint, durably.
    pub async fn set_paused(&self, endpoint: &str, paused: bool) -> Result<(), StoreError> {
        self.backend.set_paused(endpoint, paused).await
    }

    /// Endpoints that are paused.
    pub async fn paused_endpoints(&self) -> Result<HashSet<String>, StoreError> {
        self.backend.paused_endpoints().await
    }

    /// An event and its payload.
    pub async fn event(&self, id: EventId) -> Result<Option<(Event, Payload)>, StoreError> {
        self.backend.event(id).await
    }

    /// One delivery.
    pub async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.backend.delivery(id).await
    }

    /// A delivery's attempts, oldest first.
    pub async fn attempts(&self, id: DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        self.backend.attempts(id).await
    }

    /// Every stored event's id, oldest first (tests and tools; it reads the whole table).
    pub async fn event_ids(&self) -> Result<Vec<EventId>, StoreError> {
        self.backend.event_ids().await
    }

    /// Events, newest first, with their deliveries.
    pub async fn list_events(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<EventWithDeliveries>, StoreError> {
        self.backend.list_events(filter, limit, cursor).await
    }

    /// Dead deliveries, most recently dead first.
    pub async fn list_dead(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeadLetter>, StoreError> {
        self.backend.list_dead(filter, limit, cursor).await
    }

    /// Deliveries not yet final.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        self.backend.pending_count().await
    }

    /// Records set aside because they could not be decoded.
    pub async fn quarantined(&self) -> Result<u64, StoreError> {
        self.backend.quarantined().await
    }

    /// Dead letters kept, counted up to `cap`.
    pub async fn dead_count(&self, cap: u64) -> Result<u64, StoreError> {
        self.backend.dead_count(cap).await
    }

    /// What `/metrics` shows of the store.
    pub async fn gauges(
        &self,
        endpoints: &[String],
        now_ms: u64,
    ) -> Result<crate::telemetry::StoreGauges, StoreError> {
        self.backend.gauges(endpoints, now_ms).await
    }

    /// Another node changed the endpoints in force: this node's ingest makes work for exactly
    /// these from now on (see `catalog::sync`).
    pub async fn follow_endpoints(&self, endpoints: HashSet<String>) -> Result<(), StoreError> {
        self.backend.follow_endpoints(endpoints).await
    }

    /// Changes whenever a config entry or a pause is stored, by any node (see
    /// `catalog::sync`).
    pub async fn catalog_version(&self) -> Result<u64, StoreError> {
        self.backend.catalog_version().await
    }

    /// Where the store announces an endpoint's new due work (see [`notices`]).
    pub fn notices(&self) -> &notices::Notices {
        self.backend.notices()
    }

    /// Commits a tiny write: proof that the store can be written.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.backend.probe().await
    }

    /// Finishes what is queued and closes the store. Later writes get `Closed`.
    pub async fn close(&self) {
        // Closing cannot fail in a way a caller could act on; the backend logs.
        let _ = self.backend.close().await;
    }
}
