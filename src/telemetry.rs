//! Observability: logging setup, and the Prometheus metrics every stage records into.
//!
//! Logs go through `tracing` to stderr, filtered by `RUST_LOG` (default `info`): readable lines
//! (colours only on a terminal) or, with `--log-format json`, one JSON object per line. Each
//! webhook is logged inside a `webhook` span (`source`), each attempt inside an `attempt` span
//! (`endpoint`, `delivery_id`, `event_id`), so a line carries what it is about. `info` stays
//! quiet under load: per-request and per-attempt lines are `debug`, refusals and dead letters
//! `info`/`warn`. Secrets never reach a log line: config types mask them in `Debug`.
//!
//! Metrics are `hookgate_*`, with the unit in the name, served as OpenMetrics text at
//! `GET /metrics` on the admin listener. **Labels are bounded**: endpoint and source ids and
//! fixed outcome names only; a request for an unknown source is counted under one value,
//! never under the name the client sent. Gauges that describe the store (pending deliveries,
//! writer queue, file size) are read when scraped.
//!
//! Beside the registry, [`Metrics::recent`] keeps the last hour and day in memory for the
//! console (`recent`), from the same two calls, and `health` judges endpoints from it.

pub mod health;
pub mod recent;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, with the fields of the enclosing spans.
    Json,
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The source label of requests whose source does not exist.
pub const UNKNOWN_SOURCE: &str = "<unknown>";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceOutcome {
    pub source: String,
    /// `accepted`, `duplicate`, or the refusal's code (`bad_signature`, `payload_too_large`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointOutcome {
    pub endpoint: String,
    /// Attempts: `2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `connect`, `blocked`, `error`.
    /// Finished deliveries: `delivered`, `dead`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// What follows a finished attempt, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// With the time from the event's arrival to its delivery.
    Delivered {
        end_to_end_ms: u64,
    },
    Retried,
    Dead,
}

/// The store's state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// (endpoint, deliveries not yet final, seconds since the one due first was created).
    pub per_endpoint: Vec<(String, i64, f64)>,
    pub pending_deliveries: i64,
    pub writer_queue: i64,
    pub file_bytes: i64,
    /// Records moved to quarantine because they could not be decoded.
    pub quarantined: i64,
}

fn latency_buckets() -> Histogram {
    // 100 µs to about 100 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Every metric hookgate exports.
pub struct Metrics {
    registry: Registry,
    pub events_received: Family<SourceOutcome, Counter>,
    pub ingest_seconds: Histogram,
    pub attempts: Family<EndpointOutcome, Counter>,
    pub attempt_seconds: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    pub finished: Family<EndpointOutcome, Counter>,
    pub end_to_end_seconds: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    pub retried: Family<EndpointLabel, Counter>,
    /// Lanes that died (a panic) and were started again, per endpoint.
    pub lane_restarts: Family<EndpointLabel, Counter>,
    /// Each endpoint's breaker as its lane last heard: `store::health::State::code`.
    pub breaker_state: Family<EndpointLabel, Gauge>,
    pub replayed: Counter,
    pub commit_batch: Histogram,
    pub commit_seconds: Histogram,
    pub open_connections: Family<ListenerLabel, Gauge>,
    pending: Gauge,
    pending_by_endpoint: Family<EndpointLabel, Gauge>,
    oldest_pending: Family<EndpointLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    writer_queue: Gauge,
    quarantined: Gauge,
    store_bytes: Gauge,
    /// The last hour and day, for the console.
    pub recent: Recent,
}

/// [`recent::Window`] behind a lock, with the clock that dates what it records.
pub struct Recent {
    clock: crate::clock::SharedClock,
    window: Mutex<recent::Window>,
}

impl Recent {
    pub fn new(clock: crate::clock::SharedClock) -> Self {
        let window = Mutex::new(recent::Window::new(clock.now_ms()));
        Recent { clock, window }
    }

    fn with<T>(&self, f: impl FnOnce(&mut recent::Window, u64) -> T) -> T {
        let now = self.clock.now_ms();
        // A panic while holding the lock leaves counts, never a broken invariant: go on.
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut window, now)
    }

    /// The last hour: per minute, and per endpoint.
    pub fn activity(&self) -> recent::Activity {
        self.with(|w, now| w.activity(now))
    }

    /// The last day of inbound requests per source and outcome.
    pub fn inbound(&self) -> recent::Inbound {
        self.with(|w, now| w.inbound(now))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(crate::clock::SystemClock))
    }

    /// Metrics whose recent activity is dated by `clock`.
    pub fn with_clock(clock: crate::clock::SharedClock) -> Self {
        let mut registry = Registry::with_prefix("hookgate");
        let m = Metrics {
            events_received: Family::default(),
            ingest_seconds: latency_buckets(),
            attempts: Family::default(),
            attempt_seconds: Family::new_with_constructor(latency_buckets),
            finished: Family::default(),
            end_to_end_seconds: Family::new_with_constructor(latency_buckets),
            retried: Family::default(),
            lane_restarts: Family::default(),
            breaker_state: Family::default(),
            replayed: Counter::default(),
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_seconds: latency_buckets(),
            open_connections: Family::default(),
            pending: Gauge::default(),
            pending_by_endpoint: Family::default(),
            oldest_pending: Family::default(),
            writer_queue: Gauge::default(),
            quarantined: Gauge::default(),
            store_bytes: Gauge::default(),
            recent: Recent::new(clock),
            registry: Registry::default(),
        };
        registry.register(
            "events_received",
            "Inbound webhooks and published events, by source and outcome",
            m.events_received.clone(),
        );
        registry.register_with_unit(
            "ingest",
            "From a request's arrival to its commit",
            Unit::Seconds,
            m.ingest_seconds.clone(),
        );
        registry.register(
            "endpoint_pending_deliveries",
            "Deliveries not yet delivered or dead, per endpoint",
            m.pending_by_endpoint.clone(),
        );
        registry.register_with_unit(
            "endpoint_oldest_pending_age",
            "Consumer lag: how long ago the delivery due first was created, per endpoint",
            Unit::Seconds,
            m.oldest_pending.clone(),
        );
        registry.register(
            "lane_restarts",
            "Delivery lanes that died and were started again, per endpoint",
            m.lane_restarts.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts, by endpoint and outcome class",
            m.attempts.clone(),
        );
        registry.register_with_unit(
            "attempt",
            "Duration of one delivery attempt",
            Unit::Seconds,
            m.attempt_seconds.clone(),
        );
        registry.register(
            "deliveries_finished",
            "Deliveries delivered or dead-lettered",
            m.finished.clone(),
        );
        registry.register_with_unit(
            "end_to_end",
            "From an event's arrival to its delivery",
            Unit::Seconds,
            m.end_to_end_seconds.clone(),
        );
        registry.register(
            "deliveries_retried",
            "Failed attempts scheduled for a retry",
            m.retried.clone(),
        );
        registry.register(
            "endpoint_breaker_state",
            "Each endpoint's circuit breaker: 0 closed, 1 open, 2 half-open, 3 disabled",
            m.breaker_state.clone(),
        );
        registry.register(
            "deliveries_replayed",
            "Deliveries replayed, retried or recovered by an operator",
            m.replayed.clone(),
        );
        registry.register(
            "commit_batch",
            "Commands committed per store transaction",
            m.commit_batch.clone(),
        );
        registry.register_with_unit(
            "commit",
            "Duration of one store commit, fsync included",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now, by listener (ingress, admin)",
            m.open_connections.clone(),
        );
        registry.register(
            "pending_deliveries",
            "Deliveries not yet delivered or dead",
            m.pending.clone(),
        );
        registry.register(
            "writer_queue",
            "Commands waiting for the store's writer",
            m.writer_queue.clone(),
        );
        registry.register(
            "quarantined_records",
            "Records that could not be decoded, moved out of the way (logged with their keys)",
            m.quarantined.clone(),
        );
        registry.register_with_unit(
            "store_file",
            "Size of the store's file",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records a finished attempt: its class and latency, and what follows it.
    pub fn attempt_finished(&self, endpoint: &str, class: &str, latency_ms: u64, settled: Settled) {
        let label = EndpointLabel {
            endpoint: endpoint.to_string(),
        };
        let outcome = |outcome: &str| EndpointOutcome {
            endpoint: endpoint.to_string(),
            outcome: outcome.to_string(),
        };
        self.attempt_seconds
            .get_or_create(&label)
            .observe(latency_ms as f64 / 1000.0);
        self.attempts.get_or_create(&outcome(class)).inc();
        match settled {
            Settled::Delivered { end_to_end_ms } => {
                self.finished.get_or_create(&outcome("delivered")).inc();
                self.end_to_end_seconds
                    .get_or_create(&label)
                    .observe(end_to_end_ms as f64 / 1000.0);
            }
            Settled::Retried => {
                self.retried.get_or_create(&label).inc();
            }
            Settled::Dead => {
                self.finished.get_or_create(&outcome("dead")).inc();
            }
        }
        self.recent
            .with(|w, now| w.attempt(now, endpoint, class, latency_ms, settled));
    }

    /// Counts an inbound request's outcome.
    pub fn received(&self, source: &str, outcome: &str) {
        self.events_received
            .get_or_create(&SourceOutcome {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.recent.with(|w, now| w.received(now, source, outcome));
    }

    /// The OpenMetrics text, with the store's gauges as given.
    pub fn encode(&self, store: StoreGauges) -> String {
        self.pending.set(store.pending_deliveries);
        self.writer_queue.set(store.writer_queue);
        self.quarantined.set(store.quarantined);
        // Only the endpoints in force: a deleted one's series goes away.
        self.pending_by_endpoint.clear();
        self.oldest_pending.clear();
        for (endpoint, pending, lag) in store.per_endpoint {
            let label = EndpointLabel { endpoint };
            self.pending_by_endpoint.get_or_create(&label).set(pending);
            self.oldest_pending.get_or_create(&label).set(lag);
        }
        self.store_bytes.set(store.file_bytes);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
