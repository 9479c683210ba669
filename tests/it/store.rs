//! The store's contract, with no HTTP: what ingest, lease, complete, requeue, release, a
//! restart, pruning, pausing and the announcements do, seen only through the public
//! `hookgate::store::Store` API, on a clock the test moves by hand.
//!
//! Every rule is an `async fn` in [`contract`] generic over a [`Backend`], which opens the
//! store under test; `contract_tests!` makes one `#[tokio::test]` of each for a backend.
//! **Both backends pass the same tests**: redb in a directory of its own, and PostgreSQL in a
//! fresh database of its own (the first `open` of a test creates it and migrates it; a later
//! one, after `close`, is the same database, as after a restart of the only node; it is dropped
//! at the end). The PostgreSQL tests need `HOOKGATE_TEST_DATABASE_URL` (a server where the
//! user may create databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`); without it
//! each prints `SKIPPED <test>: …` and passes. What only PostgreSQL has (several nodes, its
//! clock, its schema) is tested in [`postgres`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hookgate::clock::{Clock, SharedClock};
use hookgate::ids::{DeliveryId, EventId};
use hookgate::model::event::{Attempt, Delivery, DeliveryStatus};
use hookgate::store::postgres::{PgOptions, PgStore, SCHEMA_VERSION, migrate};
use hookgate::store::{Completion, IngestOutcome, NewEvent, Next, Store, StoreError, StoreOptions};

/// A store implementation under test.
trait Backend {
    /// Opens the store on `clock`, refusing ingest beyond `max_backlog` pending deliveries:
    /// empty the first time, and after a `close` the same data again (a restart).
    async fn open(&self, clock: SharedClock, max_backlog: u64) -> Store;

    /// Why this backend cannot be tested here, if it cannot (its tests then pass, saying so).
    fn unavailable(&self) -> Option<&'static str> {
        None
    }
}

/// redb, in a directory of its own.
struct Redb(tempfile::TempDir);

impl Redb {
    fn new() -> Self {
        Redb(tempfile::tempdir().expect("tempdir"))
    }
}

impl Backend for Redb {
    async fn open(&self, clock: SharedClock, max_backlog: u64) -> Store {
        let opts = StoreOptions {
            max_backlog,
            queue_capacity: 1024,
            clock,
            metrics: None,
            fault: None,
            quick_repair: false,
        };
        Store::open(self.0.path(), opts).expect("the store opens")
    }
}

/// Makes one test of each rule in [`contract`] for a backend (an expression, evaluated anew
/// for each test).
macro_rules! contract_tests {
    ($backend:expr) => {
        contract_tests!(@each $backend;
            ingest_writes_the_event_and_one_pending_delivery_per_endpoint,
            an_event_over_the_backlog_is_refused_whole,
            a_duplicate_within_the_window_writes_nothing,
            due_reads_one_endpoints_work_in_due_order,
            a_lease_holds_a_delivery_until_it_runs_out,
            complete_records_the_attempt_and_settles_or_reschedules,
            a_final_delivery_is_never_leased_or_completed_again,
            a_replay_requeues_dead_letters_by_filter_and_ids_in_steps,
            retry_one_requeues_anything_but_a_delivery_being_sent,
            recover_requeues_an_endpoints_unfinished_work_in_a_window,
            release_makes_leased_deliveries_due_now,
            a_restart_makes_every_lease_due_at_once,
            the_store_makes_no_work_for_unknown_endpoints,
            prune_removes_finished_events_after_retention_only,
            a_pause_is_durable_and_goes_with_its_endpoint,
            new_work_is_announced_after_its_commit,
            a_claim_leases_what_it_returns_and_no_other_claim_gets_it,
            a_finish_under_a_lease_taken_over_changes_nothing,
            a_release_under_a_lease_taken_over_changes_nothing,
            listing_pages_newest_first_with_filters_and_cursors,
            a_filter_that_rarely_matches_still_pages_in_order,
            the_dead_count_is_the_dead_letters_kept_up_to_a_cap,
            contains_finds_a_literal_in_the_payload_bytes,
            contains_keeps_the_scan_bound_and_says_where_it_stopped,
            dead_letters_list_and_replay_by_payload_text,
            an_ingest_is_announced_after_its_commit,
            a_recorded_result_is_announced_with_the_deliverys_new_state,
            a_requeue_is_announced_with_its_deliveries,
            only_each_keys_head_is_due_and_its_end_promotes_the_next,
            a_retrying_head_blocks_only_its_key_until_it_dies,
            a_replayed_dead_letter_goes_to_the_back_of_its_key,
            a_blocked_delivery_waits_through_release_retry_and_recover,
            an_ordered_endpoints_removal_kills_its_blocked_deliveries_too,
            the_order_survives_a_restart,
            a_breaker_opens_at_its_rate_and_then_claims_nothing,
            one_probe_per_cool_down_and_its_result_closes_or_reopens,
            time_held_is_not_charged_to_max_age,
            a_failing_endpoint_is_disabled_and_holds_what_comes,
            an_enable_may_discard_what_was_held,
            an_open_breaker_survives_a_restart,
            operational_events_are_written_with_the_change_they_report,
            a_deleted_endpoints_breaker_goes_with_it,
            an_events_query_comes_back_as_stored,
            a_consumers_lease_is_taken_once_and_fenced_by_its_token,
            a_consumers_lease_that_ran_out_is_marked_and_its_receipt_is_stale,
            a_consumers_lease_is_prolonged_only_under_its_token,
            a_consumers_lease_outlives_a_restart,
        );
    };
    (@each $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let backend = $backend;
                if let Some(why) = $crate::store::Backend::unavailable(&backend) {
                    $crate::store::skipped(module_path!(), stringify!($name), why);
                    return;
                }
                $crate::store::contract::$name(&backend).await;
            }
        )*
    };
}

mod redb {
    contract_tests!(super::Redb::new());

    /// What only the embedded backend has: writes that fail.
    mod only;
}

mod postgres {
    contract_tests!(super::Postgres::new());

    /// What only the PostgreSQL backend has: several nodes, its clock, its schema.
    mod only;
}

/// Says on stderr that a test did not run, and why.
fn skipped(module: &str, test: &str, why: &str) {
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    eprintln!("SKIPPED {module}::{test}: {why}");
}

/// The server the PostgreSQL tests use, from `HOOKGATE_TEST_DATABASE_URL`.
fn test_database_url() -> Option<String> {
    std::env::var("HOOKGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

const NO_DATABASE: &str = "HOOKGATE_TEST_DATABASE_URL is not set";

/// PostgreSQL, in a database of its own: created and migrated at the first `open`, dropped
/// (best-effort) when the backend is dropped at the end of the test.
struct Postgres {
    server: Option<String>,
    name: String,
    created: std::sync::atomic::AtomicBool,
}

impl Postgres {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hookgate_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        Postgres {
            server: test_database_url(),
            name,
            created: Default::default(),
        }
    }

    /// The URL of this test's database.
    fn url(&self) -> String {
        with_database(self.server.as_deref().unwrap_or_default(), &self.name)
    }

    /// Options as a node of this test opens with: its own clock, a small pool.
    fn options(&self, clock: SharedClock, max_backlog: u64) -> PgOptions {
        PgOptions {
            pool_size: 4,
            max_backlog,
            use_database_clock: false,
            queue_capacity: 1024,
            ..PgOptions::new(self.url(), clock)
        }
    }

    /// Creates and migrates the database, once.
    async fn create(&self) {
        if self.create_bare().await {
            assert_eq!(migrate(&self.url()).await.expect("migrate"), SCHEMA_VERSION);
        }
    }

    /// Creates the database, empty, once; whether this call did.
    async fn create_bare(&self) -> bool {
        if self.created.swap(true, Ordering::SeqCst) {
            return false;
        }
        let server = self.server.as_deref().expect("a server");
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .expect("the test server is reachable");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {}", self.name))
            .await
            .expect("create the test database");
        drop(client);
        let _ = driver.await;
        true
    }

    /// A plain connection to this test's database, to look at its tables.
    async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("the test database is reachable");
        tokio::spawn(connection);
        client
    }

    /// A node on this test's database, as a `PgStore` (to reach what only it has).
    async fn node(&self, opts: PgOptions) -> PgStore {
        self.create().await;
        PgStore::open(opts).await.expect("the store opens")
    }
}

impl Backend for Postgres {
    async fn open(&self, clock: SharedClock, max_backlog: u64) -> Store {
        let node = self.node(self.options(clock, max_backlog)).await;
        Store::from_backend(node)
    }

    fn unavailable(&self) -> Option<&'static str> {
        self.server.is_none().then_some(NO_DATABASE)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let (Some(server), true) = (self.server.clone(), *self.created.get_mut()) else {
            return;
        };
        let name = self.name.clone();
        // On a runtime of its own: this may run inside (or after) the test's.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// `url` with its database replaced by `db` (URL or key=value form).
fn with_database(url: &str, db: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={db}");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + 3 + i);
    let query = url[authority_end..]
        .find('?')
        .map(|i| &url[authority_end + i..]);
    format!("{}/{db}{}", &url[..authority_end], query.unwrap_or(""))
}

/// A clock that moves only when told.
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

const T0: u64 = 1_700_000_000_000;
const LEASE_MS: u64 = 30_000;

/// A test's store and its clock (at [`T0`]).
struct Fixture {
    store: Store,
    clock: Arc<ManualClock>,
}

impl Fixture {
    async fn open(backend: &impl Backend) -> Self {
        Self::with_backlog(backend, u64::MAX).await
    }

    async fn with_backlog(backend: &impl Backend, max_backlog: u64) -> Self {
        let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
        let store = backend.open(clock.clone(), max_backlog).await;
        Fixture { store, clock }
    }

    /// Closes the store and opens it again, the clock at `now`.
    async fn restart(self, backend: &impl Backend, now: u64) -> Self {
        self.store.close().await;
        drop(self.store);
        self.clock.set(now);
        let store = backend.open(self.clock.clone(), u64::MAX).await;
        Fixture {
            store,
            clock: self.clock,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// An event for `endpoints`, arriving now.
    fn event(&self, endpoints: &[&str]) -> NewEvent {
        NewEvent {
            source: "shop".into(),
            event_type: Some("order.paid".into()),
            received_ms: self.now(),
            dedup: None,
            dedup_scope: None,
            body_dedup: None,
            budget: None,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            query: String::new(),
            body: bytes::Bytes::from_static(br#"{"id":1}"#),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            order_keys: Vec::new(),
        }
    }

    /// Ingests an event that must be accepted; its id and its deliveries' ids, in order.
    async fn accept(&self, ev: NewEvent) -> (EventId, Vec<DeliveryId>) {
        match self.store.ingest(ev).await.expect("ingest") {
            IngestOutcome::Accepted {
                event_id,
                deliveries,
            } => (event_id, deliveries.into_iter().map(|(d, _)| d).collect()),
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// One delivery to `endpoint`, arriving now.
    async fn one(&self, endpoint: &str) -> DeliveryId {
        self.accept(self.event(&[endpoint])).await.1[0]
    }

    async fn get(&self, id: DeliveryId) -> Delivery {
        self.store
            .delivery(id)
            .await
            .expect("read")
            .expect("stored")
    }

    async fn status(&self, id: DeliveryId) -> DeliveryStatus {
        self.get(id).await.status
    }

    /// The ids `due` gives `endpoint` at `now`.
    async fn due(&self, endpoint: &str, now: u64) -> Vec<DeliveryId> {
        let batch = self
            .store
            .due(endpoint, now, usize::MAX, HashSet::new())
            .await
            .expect("schedule");
        batch.items.iter().map(|d| d.delivery_id).collect()
    }

    /// Leases and waits until the lease is committed (a lease is queued, not awaited).
    async fn lease(&self, ids: &[DeliveryId], until: u64) {
        self.store.lease(ids.to_vec(), until).await.expect("lease");
        self.store.probe().await.expect("committed");
    }

    async fn complete(&self, id: DeliveryId, code: u16, next: Next) {
        let attempt = Attempt {
            at_ms: self.now(),
            status_code: Some(code),
            latency_ms: 5,
            error: (code >= 300).then(|| format!("HTTP {code}")),
            response_excerpt: b"answer".to_vec(),
        };
        let c = Completion {
            delivery_id: id,
            lease_token: None,
            attempt,
            next,
            health: None,
            strict: false,
            waited_on: false,
        };
        self.store.complete(c).await.expect("complete");
    }

    async fn kill(&self, id: DeliveryId) {
        self.complete(id, 500, Next::Dead("gave up".into())).await;
    }

    async fn pending(&self) -> u64 {
        self.store.pending_count().await.expect("count")
    }

    async fn dead_letters(&self) -> Vec<DeliveryId> {
        let page = self
            .store
            .list_dead(&Default::default(), 1_000, None)
            .await
            .expect("list");
        page.items.iter().map(|d| d.delivery_id).collect()
    }
}

/// The rules, each for any [`Backend`].
mod contract;
