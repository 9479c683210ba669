//! hookgate: a webhook gateway. It verifies inbound webhooks, stores each one durably with its
//! deliveries before it answers, and delivers them to subscribed endpoints with retries.
//!
//! # Layout
//! The modules follow the pipeline:
//! - [`ingress`]: `POST /in/{source}`, reading, verifying, routing, answering from the store.
//! - [`verify`]: one file per signature scheme, pure functions.
//! - [`filter`]: which endpoints an event goes to: subscriptions and payload filters.
//! - [`transform`]: endpoints' jq programs, run in killable worker processes.
//! - [`store`]: the transactional outbox in redb; the only module that touches it.
//! - [`delivery`]: a lane per endpoint, the HTTP client and SSRF guard, the retry policy.
//! - [`api`]: the admin listener: health, readiness and the admin API.
//! - [`console`]: the web console on the admin listener: pages, sessions, CSRF, assets.
//! - [`catalog`]: the sources and endpoints in force, from the file and the API.
//! - [`config`], [`telemetry`], [`cli`], [`clock`], [`ids`], [`respond`]: around the pipeline.
//!
//! [`run`] takes a validated config, already-bound listeners and a shutdown future, so tests
//! start a real server on port 0.

#![forbid(unsafe_code)]

pub mod api;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod delivery;
pub mod filter;
#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub mod fuzzing;
pub mod ids;
pub mod ingest;
pub mod ingress;
pub mod listener;
pub mod model;
pub mod ops;
pub mod respond;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Validated;
use crate::store::{Store, StoreError, StoreOptions};

/// The two listeners, bound by the caller.
pub struct Listeners {
    pub ingress: TcpListener,
    pub admin: TcpListener,
}

/// Client addresses whose verification failures are tracked at once (about 64 bytes each).
const FAILURE_TABLE_CAPACITY: usize = 65_536;

/// Knobs that are not config: what tests and embedders change.
#[derive(Clone)]
pub struct RunOptions {
    pub clock: SharedClock,
    /// Where every stage records its metrics (served at `/metrics`).
    pub metrics: Arc<telemetry::Metrics>,
    /// How long attempts in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Commands that may wait for the store's writer.
    pub writer_queue: usize,
    /// The program transforms run in, and its arguments: `None` is this executable with
    /// `transform-worker`. A test binary is not hookgate's, so tests name the real binary.
    pub transform_worker: Option<(std::path::PathBuf, Vec<String>)>,
    /// Injected store write failures, for tests.
    #[cfg(any(test, feature = "test-support"))]
    pub store_fault: Option<store::redb::fault::FaultSwitch>,
    /// While set, the next lane to look at it panics (and clears it): a test of lane
    /// supervision.
    #[cfg(any(test, feature = "test-support"))]
    pub lane_fault: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RunOptions {
    #[cfg(any(test, feature = "test-support"))]
    fn lane_fault(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.lane_fault.clone()
    }
    #[cfg(not(any(test, feature = "test-support")))]
    fn lane_fault(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            metrics: Arc::new(telemetry::Metrics::new()),
            shutdown_grace: Duration::from_secs(10),
            writer_queue: 8192,
            transform_worker: None,
            #[cfg(any(test, feature = "test-support"))]
            store_fault: None,
            #[cfg(any(test, feature = "test-support"))]
            lane_fault: None,
        }
    }
}

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error("admin API: {0}")]
    Access(#[from] api::access::AccessError),
}

/// Runs the gateway until `shutdown` completes, then stops in order: listeners stop
/// accepting and finish their requests, lanes let attempts finish within the grace period,
/// and the store's writer commits what is queued and closes the file.
pub async fn run(
    config: Validated,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let opts = RunOptions {
        shutdown_grace: config.shutdown_grace.0,
        ..RunOptions::default()
    };
    run_with(config, listeners, shutdown, opts).await
}

/// [`run`] with explicit [`RunOptions`].
pub async fn run_with(
    config: Validated,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    opts: RunOptions,
) -> Result<(), RunError> {
    let store = open_store(&config, &opts).await?;
    serve(config, listeners, shutdown, opts, store).await
}

/// Opens the store a config names, as [`run_with`] does: the embedded file in `data_dir`, or
/// the PostgreSQL database at `store.url` (whose schema must be this build's: see
/// `hookgate migrate`). An error opening PostgreSQL names the key.
pub async fn open_store(config: &Validated, opts: &RunOptions) -> Result<Store, StoreError> {
    match &config.store {
        config::StoreBackend::Redb => Store::open(
            &config.data_dir,
            StoreOptions {
                max_backlog: config.max_backlog,
                queue_capacity: opts.writer_queue,
                clock: Arc::clone(&opts.clock),
                metrics: Some(Arc::clone(&opts.metrics)),
                #[cfg(any(test, feature = "test-support"))]
                fault: opts.store_fault.clone(),
                quick_repair: config.quick_repair,
            },
        ),
        config::StoreBackend::Postgres { url, pool_size } => {
            let mut pg = store::postgres::PgOptions::new(url.expose(), Arc::clone(&opts.clock));
            pg.pool_size = usize::try_from(*pool_size).unwrap_or(usize::MAX);
            pg.max_backlog = config.max_backlog;
            pg.metrics = Some(Arc::clone(&opts.metrics));
            pg.queue_capacity = opts.writer_queue;
            let opened = store::postgres::PgStore::open(pg)
                .await
                .map_err(|e| match e {
                    StoreError::Storage(m) => StoreError::Storage(format!("store.url: {m}")),
                    other => other,
                })?;
            tracing::info!(database = %opened.target(), "store: PostgreSQL");
            Ok(Store::from_backend(opened))
        }
    }
}

/// The worker processes transforms run in: started only when a transform first runs.
fn transform_pool(config: &Validated, opts: &RunOptions) -> transform::Pool {
    let (command, args) = opts.transform_worker.clone().unwrap_or_else(|| {
        // The executable cannot be found only on an exotic system; transforms then fail
        // (each attempt says why) while everything else runs.
        let exe = std::env::current_exe().unwrap_or_else(|_| "hookgate".into());
        (exe, vec!["transform-worker".to_string()])
    });
    transform::Pool::new(transform::PoolConfig {
        command,
        args,
        workers: config.transform.workers,
        timeout: config.transform.timeout,
        max_output: config.transform.max_output_bytes,
    })
}

/// Runs the gateway on a store the caller opened (and may keep reading). The store is closed
/// when this returns.
pub async fn serve(
    config: Validated,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    opts: RunOptions,
    store: Store,
) -> Result<(), RunError> {
    // The admin API's tokens (generated into the data directory when none is configured):
    // before anything starts, so a refused token file stops the gateway at once.
    let access = Arc::new(api::access::Access::load(
        config.admin_tokens.clone(),
        &config.data_dir,
    )?);
    let reach = config.endpoint_defaults.reach.clone();
    let transforms = Arc::new(transform_pool(&config, &opts));
    let transports = delivery::target::Transports::new(reach.clone(), Arc::clone(&transforms))?;
    if reach.allow_private {
        tracing::warn!(
            "delivery.allow_private_networks is on: endpoints may reach internal addresses"
        );
    }
    for e in config.endpoints.iter().filter(|e| e.signing_key.is_none()) {
        tracing::warn!(endpoint = %e.id, "endpoint has no secret: its deliveries are not signed");
    }
    let (catalog, routes) = catalog::Catalog::load(&config, &store).await?;
    // Before any lane or listener: the store makes work only for these from now on, and
    // dead-letters what an earlier run left for any other.
    store
        .set_endpoints(
            routes
                .current()
                .endpoints
                .iter()
                .map(|e| e.id.clone())
                .collect(),
        )
        .await?;
    let catalog = Arc::new(catalog);
    let dispatcher = Arc::new(delivery::Dispatcher::start(
        &routes.current().endpoints,
        delivery::Shared {
            store: store.clone(),
            transports,
            clock: Arc::clone(&opts.clock),
            routes: Arc::clone(&routes),
            metrics: Arc::clone(&opts.metrics),
            global: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(config.max_concurrency).unwrap_or(usize::MAX),
            )),
            global_cap: usize::try_from(config.max_concurrency).unwrap_or(usize::MAX),
            shutting_down: tokio::sync::watch::Sender::new(false),
            lane_fault: opts.lane_fault(),
        },
        &store.paused_endpoints().await?,
        opts.shutdown_grace,
    ));

    let ingress = ingress::router(Arc::new(ingress::IngressState {
        routes: Arc::clone(&routes),
        metrics: Arc::clone(&opts.metrics),
        store: store.clone(),
        clock: Arc::clone(&opts.clock),
        max_body_bytes: config.max_body_bytes,
        body_timeout: config.ingress_limits.body_timeout,
        failures: ingress::throttle::FailureThrottle::new(
            config.failed_requests.per_second,
            config
                .failed_requests
                .burst
                .unwrap_or(config.failed_requests.per_second),
            FAILURE_TABLE_CAPACITY,
        ),
        trusted_proxies: config.trusted_proxies.clone(),
        buffered: Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(config.max_buffered_bytes).unwrap_or(usize::MAX),
        )),
    }));
    // What the console tells people to paste into a provider: the bound address, so port 0
    // shows the port taken.
    let ingress_url = match &config.ingress_public_url {
        Some(u) => u.clone(),
        None => format!("http://{}", listeners.ingress.local_addr()?),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let admin = api::router(Arc::new(api::AdminState {
        store: store.clone(),
        routes: Arc::clone(&routes),
        dispatcher: Arc::clone(&dispatcher),
        access: Arc::clone(&access),
        clock: Arc::clone(&opts.clock),
        catalog: Arc::clone(&catalog),
        metrics: Arc::clone(&opts.metrics),
        ready: tokio::sync::Mutex::new(None),
        ingress_url,
        stopping: stop_rx.clone(),
        transforms: Arc::clone(&transforms),
        streams: Default::default(),
    }));

    let pruner = tokio::spawn(store::retention::run(
        store.clone(),
        Arc::clone(&opts.clock),
        store::retention::Policy {
            retention: config.retention.0,
            dead_letter_retention: config.dead_letter_retention.0,
            interval: config.prune_interval.0,
        },
        stop_rx.clone(),
    ));
    let publisher = tokio::spawn(ops::run(
        store.clone(),
        Arc::clone(&routes),
        Arc::clone(&opts.clock),
        config.backlog_high,
        stop_rx.clone(),
    ));
    let catalog_sync = tokio::spawn(catalog::sync::run(
        Arc::clone(&catalog),
        Arc::clone(&dispatcher),
        stop_rx.clone(),
    ));
    let expiry = tokio::spawn(catalog::expire::run(
        Arc::clone(&catalog),
        Arc::clone(&dispatcher),
        Arc::clone(&opts.clock),
        stop_rx.clone(),
    ));
    tracing::info!(addr = %listeners.ingress.local_addr()?, "ingress listening");
    let admin_addr = listeners.admin.local_addr()?;
    tracing::info!(addr = %admin_addr, "admin listening");
    if !admin_addr.ip().is_loopback() {
        tracing::warn!(
            addr = %admin_addr,
            "THE ADMIN LISTENER IS REACHABLE BEYOND THIS HOST: anyone who can reach it can read events and replay them with the token; keep it behind a firewall"
        );
    }
    let connections = |listener| {
        opts.metrics
            .open_connections
            .get_or_create(&telemetry::ListenerLabel { listener })
            .clone()
    };
    tokio::join!(
        listener::serve(
            listeners.ingress,
            ingress,
            config.ingress_limits,
            stop_rx.clone(),
            config.shutdown_grace.0,
            connections("ingress"),
        ),
        listener::serve(
            listeners.admin,
            admin,
            config::ConnectionLimits::ADMIN,
            stop_rx.clone(),
            config.shutdown_grace.0,
            connections("admin"),
        ),
    );
    tracing::info!("listeners closed; stopping delivery");
    dispatcher.shutdown().await;
    let _ = pruner.await;
    let _ = publisher.await;
    let _ = catalog_sync.await;
    let _ = expiry.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
