//! The PostgreSQL backend: the same transactional outbox as [`super::redb`], kept in one
//! database that several hookgate nodes share.
//!
//! **What an operation does to a delivery's state is decided by the rules of
//! [`outbox`](super::outbox)**: a
//! command locks the rows it changes (`SELECT … FOR UPDATE`, in id order), asks the rule, and
//! hands both states to `rows::Changes`, the one place a delivery is written (as redb's
//! `put_delivery` is). The schema is `schema/v1.sql` to `v4.sql`; in short:
//! - `events` (id: the ULID as 16 big-endian bytes, so byte order is time order; headers,
//!   body, the query string (NULL for none, schema version 4), and the deliveries' ids and
//!   endpoints), `attempts`, `dedup` (with an expiry index),
//!   `endpoint_state` (paused), `config_entries`, `nodes` (heartbeats).
//! - **`deliveries` holds exactly the deliveries that are not final**, indexed by
//!   `(endpoint_id, due_ms, id)`; a delivering one is due at its lease expiry and carries a
//!   `lease_token` and its `lease_node`. **A delivery that becomes final moves to
//!   `deliveries_done` in the statement that finalizes it**, and back on a requeue.
//! - **Ordered delivery** (`order.rs`, schema version 3): a delivery of an ordering endpoint
//!   carries its `order_key` and place (`order_seq`, from one sequence taken under the key's
//!   advisory lock); **only a key's head is in the due index** (`WHERE NOT blocked`), the
//!   rest wait `blocked`, and the transaction that ends a head promotes the next
//!   (`rows::Changes::flush`). **A key never has two heads**, on any number of nodes.
//! - `event_progress`: per event, its deliveries not yet final and, once none is, its last
//!   death: **pruning reads only finished events** through two partial indexes.
//! - `pending_counts`: deliveries not final per endpoint in 16 shards, **kept by triggers in
//!   the statements that insert into or delete from the hot table**, so their sum is always
//!   its row count: the backlog limit and the gauges read it, never count rows.
//! - **The history tables (`events`, `event_progress`, `deliveries_done`, `attempts`) are
//!   partitioned by UTC day** on their leading ULID, with no DEFAULT partition
//!   (`partitions.rs`): days are made ahead, and **an ingest on a day with none makes it**.
//!   **A day wholly past retention is dropped whole**, what must stay copied back
//!   (`retire.rs`); the row-level prune (`prune.rs`) takes the rest as it becomes prunable.
//!
//! **Ingest is group-committed** (`ingest.rs`): one task per process commits whatever queued
//! while its last commit ran (up to 256 events or 32 MiB) in one transaction, then answers each
//! caller; **no caller is answered before the commit**. **Ingest transactions hold one
//! cluster-wide advisory lock**, so dedup (even within a batch, as if sequential) and the
//! backlog limit are exact across nodes. Attempts' results are group-committed the same way
//! (`results.rs`, no lock), so the drain rate is not the disk's fsync rate.
//!
//! **Time** (`time.rs`): on its own clock (tests) every "now" is the injected clock's; on the
//! database's clock (production) **every due and lease comparison uses the database's clock**:
//! a caller's time is taken as an offset from its own now and added to the database's.
//!
//! **No connection or transaction is held while anything outside the database is awaited**:
//! each command takes a pooled connection, runs its short transaction, and gives it back before
//! answering; a transaction that lost a deadlock or a serialization race is run again.
//!
//! Announcements: after each commit that made work due the endpoints are announced locally,
//! and (debounced) with `NOTIFY hookgate_due` for the other nodes, whose `LISTEN` task
//! announces them there (`notify.rs`); a lost listener costs latency only, as lanes also poll.
//! Leases (`nodes.rs`): **at open, and on every heartbeat, the leases of nodes that closed or
//! stopped beating are taken back**; those of live nodes are left alone.

mod backend;
mod breaker;
mod claim;
mod commands;
mod error;
mod health;
mod ingest;
mod nodes;
mod notify;
mod order;
mod partitions;
mod prune;
mod pull;
mod query;
mod reads;
mod requeue;
mod results;
mod retire;
mod rows;
mod schema;
mod time;

pub use ingest::{DEDUP_LOOKUP, INGEST_LOCK};
pub use schema::{SCHEMA_VERSION, migrate};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::NoTls;

use super::{Completion, IngestOutcome, NewEvent, StoreError, notices};
use crate::clock::SharedClock;
use error::Fail;

/// How a PostgreSQL store is reached and run.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user[:password]@host[:port]/db[?…]`, or the key=value form.
    pub url: String,
    /// Connections this process keeps open (besides its one listener), whatever its delivery
    /// concurrency.
    pub pool_size: usize,
    /// Pending deliveries beyond which ingest is refused (across every node).
    pub max_backlog: u64,
    pub clock: SharedClock,
    /// Compare due times and leases on the database's clock (production, several nodes), not
    /// on `clock` (tests that move a clock by hand).
    pub use_database_clock: bool,
    /// Where commits are counted, if anywhere.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// Ingests that may wait for their group commit (beyond that, callers get
    /// [`StoreError::Busy`]), and results that may wait for theirs (beyond that, callers wait).
    pub queue_capacity: usize,
    /// The longest a lane sleeps without looking at its schedule again (0: until its next due
    /// time or a wake-up), so work other nodes commit is found even when a notification is lost.
    pub idle_poll_ms: u64,
}

impl PgOptions {
    /// Options for production: the database's clock, 8 connections, no backlog limit, a poll
    /// every second.
    pub fn new(url: impl Into<String>, clock: SharedClock) -> PgOptions {
        PgOptions {
            url: url.into(),
            pool_size: 8,
            max_backlog: u64::MAX,
            clock,
            use_database_clock: true,
            metrics: None,
            queue_capacity: 4096,
            idle_poll_ms: 1_000,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<not shown>")
            .field("pool_size", &self.pool_size)
            .field("max_backlog", &self.max_backlog)
            .field("use_database_clock", &self.use_database_clock)
            .field("queue_capacity", &self.queue_capacity)
            .field("idle_poll_ms", &self.idle_poll_ms)
            .finish_non_exhaustive()
    }
}

/// What every part of an open store shares.
struct Shared {
    pool: Pool,
    clock: time::Clock,
    notices: Arc<notices::Notices>,
    /// This process's row in `nodes`: the holder of the leases it takes.
    node: i64,
    max_backlog: u64,
    idle_poll_ms: u64,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// The endpoints work may be made for; `None` until the gateway says. Changed only under
    /// the ingest lock (see `commands.rs`), never held across an await.
    known: RwLock<Option<Arc<HashSet<String>>>>,
    /// Endpoints that got due work, for the debounced `NOTIFY`.
    notify: mpsc::Sender<String>,
    /// Where the database is, for messages (host, port, database; never the password).
    target: String,
    /// Each endpoint's breaker window of this node's results (see `health.rs`).
    windows: std::sync::Mutex<std::collections::HashMap<String, super::health::Window>>,
}

impl Shared {
    /// A pooled connection.
    async fn conn(&self) -> Result<deadpool_postgres::Object, Fail> {
        self.pool.get().await.map_err(|e| match Fail::from(e) {
            // Connecting failed: say where to.
            Fail::Pg(e) if e.as_db_error().is_none() => Fail::Pool(format!(
                "cannot reach the database {}: {}",
                self.target,
                Fail::Pg(e).message()
            )),
            other => other,
        })
    }

    fn known(&self) -> Option<Arc<HashSet<String>>> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_known(&self, known: Option<Arc<HashSet<String>>>) {
        *self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = known;
    }

    /// Wakes the lanes of endpoints that got due work: here at once, elsewhere by `NOTIFY`.
    fn announce<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>) {
        let unique: HashSet<&str> = endpoints.into_iter().collect();
        for endpoint in unique {
            self.notices.announce(endpoint);
            // A full queue drops the hint: other nodes' lanes still poll.
            let _ = self.notify.try_send(endpoint.to_string());
        }
    }

    fn observe_commit(&self, commands: usize, started: std::time::Instant) {
        if let Some(m) = &self.metrics {
            m.commit_batch.observe(commands as f64);
            m.commit_seconds.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// A handle to an open PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
    inner: Arc<Inner>,
}

struct Inner {
    ingest: mpsc::Sender<ingest::Msg>,
    results: mpsc::Sender<results::Msg>,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl PgStore {
    /// Connects, checks the schema is the one this build expects (else asks for `hookgate
    /// migrate`), registers this node, takes back the leases of nodes that closed or stopped
    /// beating, and starts the ingest, heartbeat and listener tasks.
    pub async fn open(opts: PgOptions) -> Result<PgStore, StoreError> {
        let config = error::parse_url(&opts.url)?;
        let target = error::describe_target(&config);
        let pool = Pool::builder(Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(opts.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(10)))
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| StoreError::Storage(format!("cannot make a pool for {target}: {e}")))?;
        let client = pool.get().await.map_err(|e| {
            StoreError::Storage(format!(
                "cannot reach the database {target}: {}",
                Fail::from(e).message()
            ))
        })?;
        schema::check(&client, &target).await?;
        drop(client);

        let clock = time::Clock::new(opts.clock, opts.use_database_clock);
        let node = nodes::register(&pool).await.map_err(Fail::into_store)?;
        let (notify_tx, notify_rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            pool,
            clock,
            notices: Arc::new(notices::Notices::default()),
            node,
            max_backlog: opts.max_backlog,
            idle_poll_ms: opts.idle_poll_ms,
            metrics: opts.metrics,
            known: RwLock::new(None),
            notify: notify_tx,
            target,
            windows: std::sync::Mutex::default(),
        });
        // A restart makes the leases of this node's previous life due at once.
        nodes::take_back_leases(&shared).await?;
        // The days ahead get their partitions now; a node that cannot get the locks in time
        // leaves it to the next pruning pass (and ingest makes a missing day itself).
        match partitions::make_ahead(&shared).await {
            Err(e) if e.lock_lost() => {
                tracing::warn!(error = %e, "cannot make the partitions of the days ahead now; trying again at the next pruning pass");
            }
            other => other.map_err(Fail::into_store)?,
        }

        let (stop, stop_rx) = watch::channel(false);
        let (ingest_tx, ingest_rx) = mpsc::channel(opts.queue_capacity.max(1));
        let (results_tx, results_rx) = mpsc::channel(opts.queue_capacity.max(1));
        let tasks = vec![
            tokio::spawn(ingest::run(Arc::clone(&shared), ingest_rx)),
            tokio::spawn(results::run(Arc::clone(&shared), results_rx)),
            tokio::spawn(nodes::heartbeat(Arc::clone(&shared), stop_rx.clone())),
            tokio::spawn(notify::run(
                config,
                Arc::clone(&shared.notices),
                notify_rx,
                stop_rx,
            )),
        ];
        Ok(PgStore {
            shared,
            inner: Arc::new(Inner {
                ingest: ingest_tx,
                results: results_tx,
                closed: AtomicBool::new(false),
                stop,
                tasks: std::sync::Mutex::new(tasks),
            }),
        })
    }

    /// Where the database is: `host:port/database` (never the password), for logs.
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// This node's id in the `nodes` table (the holder of its leases).
    pub fn node_id(&self) -> i64 {
        self.shared.node
    }

    /// Stores an event and its deliveries; answers once the batch it joined is committed.
    pub async fn ingest(&self, event: NewEvent) -> Result<IngestOutcome, StoreError> {
        self.open_for_writes()?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .ingest
            .try_send(ingest::Msg::Ingest(Box::new(event), reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records an attempt and schedules what follows; answers once the batch of results it
    /// joined is committed. Waits for room in the queue rather than failing: a result must
    /// not be lost because ingest is busy.
    pub async fn complete(&self, completion: Completion) -> Result<super::Completed, StoreError> {
        self.open_for_writes()?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .results
            .send(results::Msg::Complete(Box::new(completion), reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Refuses writes once the store is closed.
    fn open_for_writes(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Commits what is queued, stops the tasks, marks this node closed (so a later open takes
    /// its leases back) and closes the pool. Later writes get `Closed`.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (ack, done) = oneshot::channel();
        if self.inner.ingest.send(ingest::Msg::Stop(ack)).await.is_ok() {
            let _ = done.await;
        }
        let (ack, done) = oneshot::channel();
        if self
            .inner
            .results
            .send(results::Msg::Stop(ack))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let _ = self.inner.stop.send(true);
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            let _ = task.await;
        }
        if let Err(e) = nodes::close(&self.shared).await {
            tracing::warn!(error = %e, "cannot mark this node closed; its leases wait for its heartbeat to lapse");
        }
        self.shared.pool.close();
    }
}
