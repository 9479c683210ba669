//! The embedded backend: events, their deliveries and the schedule as one transactional outbox
//! in a redb file.
//!
//! **Only `store::redb` touches redb.** **Every mutation goes through one writer thread**, which
//! takes everything that queued up while its previous commit was syncing and commits it as one
//! transaction with `Durability::Immediate` (group commit), then answers each caller. An
//! ingest's event, payload, deliveries, due-index entries and dedup entry are written in that
//! one transaction, so **an event is never stored without its deliveries** and **no caller is
//! answered before its commit returns**.
//!
//! The store takes and returns the model's types (`model::event`); what each operation does to
//! a delivery's state is decided by the backend-neutral rules of [`outbox`], and this module
//! only keeps the tables and indexes in step with their answers. Its contract is pinned,
//! without HTTP, by `tests/it/store.rs`, which a second backend runs too.
//!
//! Tables (keys → values; values are versioned records, private to this module: see
//! `records.rs`):
//! - `events`: event id → `EventRecord`; `payloads`: event id → `PayloadRecord` (headers
//!   and body; version 2 appends the query string, written only for an event that has one,
//!   so the others keep the bytes earlier builds wrote).
//! - `deliveries`: delivery id → `DeliveryRecord`.
//! - `due`: (endpoint id, due ms, delivery id) → (): each endpoint's schedule, so a lane reads
//!   only its own work. Holds exactly the deliveries that are not final and not blocked;
//!   while one is being sent its key is its lease expiry.
//! - `leases`: delivery id → lease expiry, for the few deliveries lanes have in flight. At
//!   open, every lease left by a previous process is made due at once.
//! - `pulled`: delivery id → lease token, for the deliveries pull consumers hold
//!   (`pulled.rs`): **never taken back at open**; their tokens are read back, so receipts
//!   held across a restart still fence.
//! - `attempts`: (delivery id, attempt number) → `AttemptRecord`.
//! - `dead`: (dead-at ms, delivery id) → (): the dead-letter index.
//! - `order_queue`: (endpoint id, order key, place) → delivery id: the ordered deliveries
//!   that are not final. **A key's first entry is its head, the only one of the key in
//!   `due`**; the others are `blocked`, and when the head becomes final the next is promoted
//!   in the same transaction (`writer/tables.rs`).
//! - `endpoint_health`: endpoint id → `HealthRecord`, its breaker (`store::health`), written
//!   by the writer in the transaction of the result, probe lease or enable that moves it.
//!   Absent: closed and never held. Its failure window is the writer's, in memory: a restart
//!   starts the window afresh, never the state.
//! - `ops_outbox`: number → `OpsRecord`, operational events (`model::ops`) written in the
//!   transaction of the change they report, removed once published (`ops`).
//! - `dedup`: (source id, provider delivery id) → (event id, expires ms); a published event's
//!   `Idempotency-Key` is kept under `publish:<source>`, apart from providers' ids.
//! - `meta`: name → u64 (the pending-delivery count).
//! - `endpoint_state`: endpoint id → flags; present only for a paused endpoint.
//! - `dedup_expiry`: (expires ms, scope, key) → (): the dedup entries in order of expiry, so
//!   pruning reads only the expired ones.
//! - `pending_by_endpoint`: endpoint id → deliveries not yet final, kept in the transactions
//!   that change them, so the lag metrics never count an index.
//! - `config_entries`: (`source` | `endpoint`, id) → version byte + the entry's JSON, for the
//!   sources and endpoints made through the admin API.
//! - `quarantine`: (table, key) → the bytes of a record that could not be decoded. **One
//!   undecodable record stops nothing**: wherever it is met it is skipped, logged with its key,
//!   and moved here by the writer (see `writer/quarantine.rs`).

mod backend;
#[cfg(any(test, feature = "test-support"))]
pub mod fault;
#[cfg(not(any(test, feature = "test-support")))]
#[allow(dead_code)] // Only the test hooks use most of it.
pub(crate) mod fault;
mod health;
#[cfg(any(test, feature = "test-support"))]
pub mod powercut;
#[cfg(not(any(test, feature = "test-support")))]
#[allow(dead_code)] // Only the test hooks use it.
pub(crate) mod powercut;
mod pulled;
mod query;
mod recover;
use recover::{recover, release};
mod reads;
mod records;
use reads::pending_in;
mod writer;

use super::{
    Completed, Completion, Enabled, EntryKind, Held, IngestOutcome, NewEvent, Prune, Pruned,
    Requeue, Requeued, StoreError, notices, outbox,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::clock::SharedClock;
use crate::ids::DeliveryId;
use records::DeliveryRecord;

const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
const PAYLOADS: TableDefinition<u128, &[u8]> = TableDefinition::new("payloads");
const DELIVERIES: TableDefinition<u128, &[u8]> = TableDefinition::new("deliveries");
const DUE: TableDefinition<(&str, u64, u128), ()> = TableDefinition::new("due");
const LEASES: TableDefinition<u128, u64> = TableDefinition::new("leases");
const ATTEMPTS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("attempts");
const DEAD: TableDefinition<(u64, u128), ()> = TableDefinition::new("dead");
const DEDUP: TableDefinition<(&str, &str), (u128, u64)> = TableDefinition::new("dedup");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ENDPOINT_STATE: TableDefinition<&str, u8> = TableDefinition::new("endpoint_state");
const CONFIG_ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("config_entries");
const DEDUP_EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("dedup_expiry");
const PENDING_BY_ENDPOINT: TableDefinition<&str, u64> = TableDefinition::new("pending_by_endpoint");
/// (endpoint id, order key, place) → delivery id: exactly the ordered deliveries not final.
const ORDER_QUEUE: TableDefinition<(&str, &str, u64), u128> = TableDefinition::new("order_queue");
/// endpoint id → `HealthRecord`: its breaker, present once it has ever opened.
const ENDPOINT_HEALTH: TableDefinition<&str, &[u8]> = TableDefinition::new("endpoint_health");
/// number → `OpsRecord`: operational events written with the change they report, waiting
/// to be published.
const OPS_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("ops_outbox");
/// (table, key) → the raw bytes of a record that could not be decoded, moved out of the way.
const QUARANTINE: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("quarantine");

/// The flag of a paused endpoint in `endpoint_state`.
const ENDPOINT_PAUSED: u8 = 1;

const META_PENDING: &str = "pending_deliveries";
/// The last place given in any order key: places grow in commit order.
const META_ORDER_SEQ: &str = "order_seq";
/// The last number given to an operational event.
const META_OPS_SEQ: &str = "ops_seq";

/// The database file inside the data directory.
pub const DB_FILE: &str = "hookgate.redb";

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Tunables of an open store.
#[derive(Clone)]
pub struct StoreOptions {
    /// Pending deliveries beyond which ingest is refused.
    pub max_backlog: u64,
    /// Commands that may wait for the writer; beyond that, callers get [`StoreError::Busy`].
    pub queue_capacity: usize,
    pub clock: SharedClock,
    /// Where commits are counted, if anywhere.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// Injected write failures, for tests; `None` in production. A switch made with
    /// [`fault::FaultSwitch::on_disk`] also puts the store on that disk in memory instead of
    /// its file (power-loss tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fault: Option<fault::FaultSwitch>,
    /// `store.quick_repair`: every commit saves what a reopen after a crash needs.
    pub quick_repair: bool,
}

struct Inner {
    db: Arc<DbSlot>,
    notices: Arc<notices::Notices>,
    tx: mpsc::Sender<writer::Command>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
    /// Held from a pull claim's read to its lease's commit (`pulled`).
    pulls: tokio::sync::Mutex<()>,
}

/// How the file is opened, kept to open it again.
struct Opener {
    path: PathBuf,
    fault: Option<fault::FaultSwitch>,
}

impl Opener {
    fn open(&self) -> Result<Database, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(64 * 1024 * 1024);
        let opened = match &self.fault {
            None => builder.create(&self.path),
            Some(switch) => fault::FaultyBackend::open(&self.path, switch.clone())
                .and_then(|b| builder.create_with_backend(b)),
        };
        opened.map_err(|e| StoreError::Storage(format!("cannot open {}: {e}", self.path.display())))
    }
}

/// The open database, replaceable in place. After an I/O error (a full disk, say) redb
/// refuses every write until the file is opened again, so the writer reopens it once the
/// disk works; until then readers get [`StoreError::Storage`].
pub(crate) struct DbSlot {
    db: std::sync::RwLock<Option<Arc<Database>>>,
    opener: Opener,
}

impl DbSlot {
    pub(crate) fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::Storage("the store is being reopened after an I/O error".into())
            })
    }

    /// Drops the database and opens the file again (redb repairs what the failed commit left).
    /// The file is still locked while a reader holds the old one, so this can fail with
    /// "already open"; the caller tries again later.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        let slot = || {
            self.db
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // Out of the slot first, and opened without holding the lock: a repair can take a
        // while, and readers should get their error at once rather than wait for it.
        drop(slot().take());
        let db = self.opener.open()?;
        *slot() = Some(Arc::new(db));
        Ok(())
    }
}

/// A handle to the open redb store; cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

impl RedbStore {
    /// Opens (or creates) the store in `data_dir`, takes back every lane's lease a previous
    /// process left (a pull consumer's stays: `pulled`), and starts the writer.
    pub fn open(data_dir: &Path, opts: StoreOptions) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Storage(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        let opener = Opener {
            path: path.clone(),
            #[cfg(any(test, feature = "test-support"))]
            fault: opts.fault.clone(),
            #[cfg(not(any(test, feature = "test-support")))]
            fault: None,
        };
        let db = opener.open()?;
        let recovered = recover(&db, opts.clock.now_ms())?;
        let db = Arc::new(DbSlot {
            db: std::sync::RwLock::new(Some(Arc::new(db))),
            opener,
        });
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let notices = Arc::new(notices::Notices::default());
        let state = writer::Writer::new(
            Arc::clone(&db),
            Arc::clone(&notices),
            recovered,
            opts.max_backlog,
            opts.quick_repair,
            opts.clock,
            opts.metrics,
        );
        let handle = std::thread::Builder::new()
            .name("hookgate-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer: {e}")))?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                db,
                notices,
                tx,
                writer: std::sync::Mutex::new(Some(handle)),
                path,
                pulls: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.try_send(make(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like `submit`, but waits for room in the queue: for delivery bookkeeping, which must not
    /// be dropped because ingest filled the queue.
    async fn submit_waiting<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores an event and its deliveries; returns once they are on disk.
    pub async fn ingest(&self, event: NewEvent) -> Result<IngestOutcome, StoreError> {
        self.submit(|reply| writer::Command::Ingest(Box::new(event), reply))
            .await
    }

    /// Marks deliveries as being sent until `until_ms`. Returns once the lease is queued, not
    /// committed: the writer applies commands in order, so it lands before any result queued
    /// after it, and a sender need not wait an fsync for it. Nothing depends on a lease being
    /// on disk: it shows the delivery as `delivering`, and a restart takes every lease back
    /// anyway. (A lease lost to a failed commit leaves the delivery due, which the lane's
    /// in-flight set covers.)
    pub async fn lease_with(
        &self,
        ids: Vec<DeliveryId>,
        until_ms: u64,
        token: Option<u64>,
    ) -> Result<(), StoreError> {
        let (reply, _unawaited) = oneshot::channel();
        self.inner
            .tx
            .send(writer::Command::Lease(ids, until_ms, token, reply))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Takes back leases of deliveries a lane took but did not start (it was stopped): they
    /// are due again now rather than when the lease would have run out. Returns once committed.
    pub async fn release(&self, held: Vec<Held>) -> Result<(), StoreError> {
        self.submit_waiting(|reply| writer::Command::Release(held, reply))
            .await
    }

    /// Records an attempt and schedules what follows; with a health policy, counts it for the
    /// endpoint's breaker.
    pub async fn complete(&self, completion: Completion) -> Result<Completed, StoreError> {
        self.submit_waiting(|reply| writer::Command::Complete(Box::new(completion), reply))
            .await
    }

    /// Leases `id` as the breaker's probe, if the endpoint's health still admits one; the
    /// health it leaves (half-open with this probe), or `None` when it was not leased.
    /// Awaited, unlike other leases: the probe's grant and its lease commit together.
    pub async fn lease_probe(
        &self,
        endpoint: &str,
        id: DeliveryId,
        until_ms: u64,
        token: u64,
    ) -> Result<Option<super::health::Health>, StoreError> {
        let endpoint = endpoint.to_string();
        self.submit_waiting(|reply| writer::Command::LeaseProbe {
            endpoint,
            id,
            until_ms,
            token,
            reply,
        })
        .await
    }

    /// An operator enables `endpoint`: its breaker closes, and what was held for it goes
    /// out, or, with `discard_held`, is dead-lettered first (`DISCARDED_ON_ENABLE`), in the
    /// same transaction.
    pub async fn enable(&self, endpoint: &str, discard_held: bool) -> Result<Enabled, StoreError> {
        let endpoint = endpoint.to_string();
        self.submit_waiting(|reply| writer::Command::Enable(endpoint, discard_held, reply))
            .await
    }

    /// Removes published operational events.
    pub async fn ops_done(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        self.submit_waiting(|reply| writer::Command::OpsDone(ids, reply))
            .await
    }

    /// Makes deliveries due now in a fresh retry cycle, keeping their ids (and so their
    /// `webhook-id`). The selection and the change are one transaction, recorded before this
    /// returns, so a crash cannot half-apply a replay.
    pub async fn requeue(&self, what: Requeue) -> Result<Requeued, StoreError> {
        self.submit_waiting(|reply| writer::Command::Requeue(Box::new(what), reply))
            .await
    }

    /// Stores a source or endpoint made through the admin API (its JSON, as given).
    pub async fn put_entry(
        &self,
        kind: EntryKind,
        id: &str,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.submit_waiting(|reply| writer::Command::PutEntry(kind, id, json, reply))
            .await
    }

    /// Removes a stored entry. For an endpoint, every delivery not yet delivered is
    /// dead-lettered in the same transaction ("endpoint deleted"); returns how many.
    pub async fn delete_entry(&self, kind: EntryKind, id: &str) -> Result<u64, StoreError> {
        let id = id.to_string();
        self.submit_waiting(|reply| writer::Command::DeleteEntry(kind, id, reply))
            .await
    }

    /// Where the store announces an endpoint's new due work (see [`notices`]).
    pub fn notices(&self) -> &notices::Notices {
        &self.inner.notices
    }

    /// Tells the store which endpoints are in force (at start): from then on it makes no work
    /// for any other, and what is left for others now is dead-lettered (`endpoint removed`)
    /// in the same transaction. Returns how many were.
    pub async fn set_endpoints(&self, endpoints: HashSet<String>) -> Result<u64, StoreError> {
        self.submit_waiting(|reply| writer::Command::SetEndpoints(endpoints, reply))
            .await
    }

    /// The stored entries of a kind: (id, JSON).
    pub fn entries(&self, kind: EntryKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(CONFIG_ENTRIES)?;
        let mut out = Vec::new();
        for entry in table.range((kind.as_str(), "")..)? {
            let (k, v) = entry?;
            let (k_kind, id) = k.value();
            if k_kind != kind.as_str() {
                break;
            }
            match v.value().split_first() {
                Some((&records::RECORD_VERSION, json)) => out.push((id.to_string(), json.to_vec())),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "config entry {id} has an unknown version"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// One bounded pruning step (see [`Prune`]).
    pub async fn prune(&self, p: Prune) -> Result<Pruned, StoreError> {
        self.submit_waiting(|reply| writer::Command::Prune(p, reply))
            .await
    }

    /// Pauses or resumes an endpoint, durably.
    pub async fn set_paused(&self, endpoint: &str, paused: bool) -> Result<(), StoreError> {
        let endpoint = endpoint.to_string();
        self.submit_waiting(|reply| writer::Command::SetPaused(endpoint, paused, reply))
            .await
    }

    /// Endpoints that are paused.
    pub fn paused_endpoints(&self) -> Result<HashSet<String>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(ENDPOINT_STATE)?;
        let mut out = HashSet::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            if v.value() & ENDPOINT_PAUSED != 0 {
                out.insert(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// Commits a tiny write: proof that the writer is alive and the file can be written.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.submit(writer::Command::Probe).await
    }

    /// Stops the writer after what is queued, and waits for it. Later writes get `Closed`.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .tx
            .send(writer::Command::Stop(reply))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// Compacts the store in `data_dir`, which no running gateway may hold open. Returns the
/// file's size before and after.
pub fn compact(data_dir: &Path) -> Result<(u64, u64), StoreError> {
    let path = data_dir.join(DB_FILE);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if !path.exists() {
        return Err(StoreError::Storage(format!(
            "no store at {}",
            path.display()
        )));
    }
    let before = size(&path);
    let mut db = Database::open(&path)
        .map_err(|e| StoreError::Storage(format!("cannot open {}: {e}", path.display())))?;
    // Each call moves what it can; a few are enough to converge.
    for _ in 0..8 {
        if !db
            .compact()
            .map_err(|e| StoreError::Storage(e.to_string()))?
        {
            break;
        }
    }
    drop(db);
    Ok((before, size(&path)))
}
