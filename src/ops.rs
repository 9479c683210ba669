//! Publishes hookgate's own operational events (`model::ops`) under the reserved source
//! `hookgate`. The store writes each one in the transaction of the change it reports, into
//! an outbox; this task (one per process) takes them out, routes each to the endpoints that
//! subscribe to source `hookgate` and its type, **minus the endpoint it is about**, and
//! ingests it like any event (stored, then signed, retried and dead-lettered like any
//! delivery), and only then removes it from the outbox.
//!
//! - **Nothing is lost or doubled**: the ingest's dedup key is `ops:<outbox number>` (24 h,
//!   scope `hookgate`), so a crash between the ingest and the removal, or two nodes taking the
//!   same row, stores it once.
//! - **No loops**: an event about an endpoint never goes to it, no `delivery.dead` is written
//!   for a delivery of a `hookgate` event (the store checks), and a breaker's events come at
//!   most once per cool-down.
//! - `backlog.high` is not in the outbox: every second this task compares the pending count with
//!   `store.backlog_high`, and at or above it publishes one, at most once per 15 minutes
//!   (its dedup key is the quarter hour).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::filter::RouteTable;
use crate::model::HOOKGATE_SOURCE;
use crate::model::ops::OpsEvent;
use crate::store::{IngestOutcome, NewEvent, OpsRow, Store, StoreError};

/// Outbox rows published per round.
const BATCH: usize = 100;
/// How often the outbox is read when nothing wakes the task (another node's rows, a missed
/// wake-up).
const POLL: Duration = Duration::from_secs(1);
/// How often the backlog is compared with its level (one count read).
const BACKLOG_EVERY_MS: u64 = 1_000;
/// At most one `backlog.high` per this span.
const BACKLOG_QUIET_MS: u64 = 15 * 60_000;
/// How long an operational event's dedup key holds.
const DEDUP_MS: u64 = 24 * 3_600_000;

/// The headers an operational event is stored with.
fn headers() -> Vec<(String, Vec<u8>)> {
    vec![("content-type".to_string(), b"application/json".to_vec())]
}

/// The endpoints an operational event of `event_type` about `subject` goes to: those that
/// subscribe to it and whose filter passes `body`.
pub fn subscribers(
    routes: &crate::filter::Routes,
    event_type: &str,
    subject: Option<&str>,
    body: &[u8],
) -> Vec<String> {
    let request = crate::filter::Request {
        source: HOOKGATE_SOURCE,
        event_type: Some(event_type),
        headers: &headers(),
        body,
        query: "",
    };
    routes
        .route(&request, None)
        .into_iter()
        .filter(|e| Some(e.as_str()) != subject)
        .collect()
}

/// The event to store for an operational event with dedup key `key`, for `endpoints`.
fn new_event(
    routes: &crate::filter::Routes,
    event_type: &str,
    body: Vec<u8>,
    key: String,
    endpoints: Vec<String>,
    now_ms: u64,
) -> NewEvent {
    let headers = headers();
    let order_keys = crate::ingest::order_keys(routes, &endpoints, &headers, &body);
    NewEvent {
        source: HOOKGATE_SOURCE.to_string(),
        event_type: Some(event_type.to_string()),
        received_ms: now_ms,
        dedup: Some((key, DEDUP_MS)),
        dedup_scope: Some(HOOKGATE_SOURCE.to_string()),
        body_dedup: None,
        budget: None,
        headers,
        query: String::new(),
        body: body.into(),
        endpoints,
        order_keys,
    }
}

/// Publishes what the outbox holds, a batch at a time; returns how many rows it took out.
pub async fn publish_pending(
    store: &Store,
    routes: &RouteTable,
    clock: &SharedClock,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let rows: Vec<OpsRow> = store.ops_pending(BATCH).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let current = routes.current();
        let mut done = Vec::with_capacity(rows.len());
        for row in rows {
            let endpoints =
                subscribers(&current, &row.event_type, row.subject.as_deref(), &row.body);
            // An event nobody subscribes to is dropped from the outbox unstored.
            if !endpoints.is_empty() {
                let ev = new_event(
                    &current,
                    &row.event_type,
                    row.body,
                    format!("ops:{}", row.id),
                    endpoints,
                    clock.now_ms(),
                );
                match store.ingest(ev).await? {
                    IngestOutcome::Accepted { .. } | IngestOutcome::Duplicate { .. } => {}
                }
            }
            done.push(row.id);
        }
        total += done.len();
        store.ops_done(done).await?;
    }
}

/// Publishes `backlog.high` if the pending count is at or above `level` (at most once per
/// quarter hour, by its dedup key).
async fn check_backlog(
    store: &Store,
    routes: &RouteTable,
    clock: &SharedClock,
    level: u64,
) -> Result<(), StoreError> {
    let pending = store.pending_count().await?;
    if pending < level {
        return Ok(());
    }
    let current = routes.current();
    let event = OpsEvent::BacklogHigh {
        pending,
        level,
        top: top_endpoints(store, &current, clock.now_ms()).await?,
    };
    let now = clock.now_ms();
    let body = event.body(now);
    let endpoints = subscribers(&current, event.event_type(), None, &body);
    if endpoints.is_empty() {
        return Ok(());
    }
    let key = format!("backlog.high:{}", now / BACKLOG_QUIET_MS);
    let ev = new_event(&current, event.event_type(), body, key, endpoints, now);
    store.ingest(ev).await?;
    Ok(())
}

/// The ten endpoints with the most pending deliveries.
async fn top_endpoints(
    store: &Store,
    routes: &crate::filter::Routes,
    now_ms: u64,
) -> Result<Vec<(String, u64)>, StoreError> {
    let ids: Vec<String> = routes.endpoint_ids();
    let mut counts: Vec<(String, u64)> = store
        .gauges(&ids, now_ms)
        .await?
        .per_endpoint
        .into_iter()
        .map(|(e, n, _)| (e, u64::try_from(n).unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(10);
    Ok(counts)
}

/// The publisher: until `stop`, publishes the outbox whenever the store says it wrote to it
/// (or every second), and checks the backlog every second when `backlog_high` is set.
pub async fn run(
    store: Store,
    routes: Arc<RouteTable>,
    clock: SharedClock,
    backlog_high: Option<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_backlog_check = 0u64;
    while !*stop.borrow() {
        if let Err(e) = publish_pending(&store, &routes, &clock).await {
            tracing::warn!(error = %e, "cannot publish operational events yet");
        }
        let now = clock.now_ms();
        if let Some(level) = backlog_high
            && now.saturating_sub(last_backlog_check) >= BACKLOG_EVERY_MS
        {
            last_backlog_check = now;
            if let Err(e) = check_backlog(&store, &routes, &clock, level).await {
                tracing::warn!(error = %e, "cannot check the backlog");
            }
        }
        tokio::select! {
            () = store.notices().ops.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn an_event_goes_to_its_subscribers_but_never_the_endpoint_it_is_about() {
        let text = r#"
            [[endpoints]]
            id = "pager"
            url = "http://a.example"
            sources = ["hookgate"]
            event_types = ["endpoint.*"]
            [[endpoints]]
            id = "audit"
            url = "http://b.example"
            sources = ["hookgate"]
            [[endpoints]]
            id = "everything"
            url = "http://c.example"
        "#;
        let cfg = Config::from_toml(text)
            .expect("parses")
            .validate()
            .expect("valid");
        let routes = crate::filter::Routes::new(cfg.sources, cfg.endpoints);
        assert_eq!(
            subscribers(&routes, "endpoint.failing", Some("billing"), b"{}"),
            ["pager", "audit"]
        );
        assert_eq!(
            subscribers(&routes, "endpoint.failing", Some("pager"), b"{}"),
            ["audit"],
            "not to itself"
        );
        assert_eq!(
            subscribers(&routes, "delivery.dead", None, b"{}"),
            ["audit"]
        );
    }
}
