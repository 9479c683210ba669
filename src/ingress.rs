//! Ingress: `POST /in/{source_id}`. Reads the body up to the limit, verifies it, works out the
//! event type, dedup key and matching endpoints, and hands it all to the store. It answers
//! only from the store's result: **202 only after the commit returned**; 200 for a duplicate;
//! 401/404/408/413 for bad requests and 503 when the store cannot take it, **none of which stores
//! anything**.

pub mod extract;

use std::sync::Arc;

use tracing::Instrument;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use crate::clock::SharedClock;
use crate::delivery::Dispatcher;
use crate::respond;
use crate::store::{IngestOutcome, NewEvent, Store, StoreError};
use crate::{filter, verify};

/// What the ingress handlers share.
pub struct IngressState {
    pub routes: Arc<filter::RouteTable>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    pub store: Store,
    pub dispatcher: Arc<Dispatcher>,
    pub clock: SharedClock,
    pub max_body_bytes: u64,
    /// The whole body must arrive within this of the handler starting to read it.
    pub body_timeout: std::time::Duration,
}

pub fn router(state: Arc<IngressState>) -> Router {
    Router::new()
        .route("/in/{source_id}", post(receive))
        .method_not_allowed_fallback(|| async {
            respond::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "webhooks are sent with POST",
            )
        })
        .fallback(|| async {
            respond::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "webhooks are sent to /in/{source_id}",
            )
        })
        .with_state(state)
}

/// Counts every request by source and outcome, and how long accepted ones took to commit.
async fn receive(
    state: State<Arc<IngressState>>,
    source_id: Path<String>,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let st = Arc::clone(&state.0);
    // One snapshot for the whole request: the label and the handling agree on the source.
    let routes = st.routes.current();
    // Unknown sources share one label: the name comes from the client.
    let label = if routes.sources.contains_key(source_id.0.as_str()) {
        source_id.0.clone()
    } else {
        crate::telemetry::UNKNOWN_SOURCE.to_string()
    };
    let span = tracing::info_span!("webhook", source = %label);
    let response = handle(state, routes, source_id, request)
        .instrument(span)
        .await;
    let outcome = match response.status() {
        StatusCode::ACCEPTED => "accepted",
        StatusCode::OK => "duplicate",
        _ => response
            .extensions()
            .get::<respond::ErrorCode>()
            .map_or("error", |c| c.0.as_str()),
    };
    st.metrics.received(&label, outcome);
    if response.status() == StatusCode::ACCEPTED {
        st.metrics
            .ingest_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

async fn handle(
    State(st): State<Arc<IngressState>>,
    routes: Arc<filter::Routes>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let Some(source) = routes.sources.get(&source_id) else {
        return respond::error(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("no source {source_id:?}"),
        );
    };
    if let Some(Err(wait)) = source.limiter.as_ref().map(|l| l.check()) {
        // Refused before the body is read: a flood costs no more than its headers.
        return respond::too_many(
            "rate_limited",
            format!(
                "source {:?} takes fewer requests per second; try again later",
                source.id
            ),
            wait.as_secs_f64().ceil() as u64,
        );
    }
    let (parts, body) = request.into_parts();
    let reading = read_body(&parts.headers, body, st.max_body_bytes);
    let body = match tokio::time::timeout(st.body_timeout, reading).await {
        Ok(Ok(b)) => b,
        Ok(Err(r)) => return r,
        Err(_) => {
            return respond::error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {}",
                    humantime::format_duration(st.body_timeout)
                ),
            );
        }
    };
    let now_ms = st.clock.now_ms();
    let inbound = verify::Inbound {
        headers: &parts.headers,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        body: &body,
        now_secs: i64::try_from(now_ms / 1000).unwrap_or(i64::MAX),
    };
    if let Err(e) = source.verifier.verify(&inbound) {
        tracing::info!(source = %source.id, code = e.code(), reason = %e, "webhook refused");
        return respond::error(StatusCode::UNAUTHORIZED, e.code(), e);
    }

    let mut json = extract::LazyJson::new(&body);
    let defaults = verify::defaults(source.scheme);
    let pick = |configured: Option<&crate::config::FieldRef>,
                fallback: &[crate::config::Field<'static>],
                json: &mut extract::LazyJson<'_>| match configured {
        Some(f) => extract::field(f.as_field(), &parts.headers, json),
        None => extract::first_field(fallback, &parts.headers, json),
    };
    let event_type = pick(source.event_type.as_ref(), defaults.event_type, &mut json);
    let dedup_key = pick(source.dedup.as_ref(), defaults.dedup, &mut json);
    for (name, value) in [("event type", &event_type), ("dedup key", &dedup_key)] {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > extract::MAX_FIELD_LEN)
        {
            return respond::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the {name} is longer than {} bytes", extract::MAX_FIELD_LEN),
            );
        }
    }

    let endpoints = filter::route(&routes.endpoints, &source.id, event_type.as_deref());
    let event = NewEvent {
        source: source.id.clone(),
        event_type,
        received_ms: now_ms,
        dedup: dedup_key.map(|k| (k, source.dedup_window.as_millis_u64())),
        dedup_scope: None,
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body,
        endpoints,
    };
    match st.store.ingest(event).await {
        Ok(IngestOutcome::Accepted {
            event_id,
            deliveries,
        }) => {
            for (_, endpoint) in &deliveries {
                st.dispatcher.wake(endpoint);
            }
            respond::json(
                StatusCode::ACCEPTED,
                json!({ "event_id": event_id.to_string() }),
            )
        }
        Ok(IngestOutcome::Duplicate { event_id }) => respond::json(
            StatusCode::OK,
            json!({ "event_id": event_id.to_string(), "duplicate": true }),
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// Every store failure is a 503: the client keeps the event and sends it again later.
fn store_unavailable(e: &StoreError) -> Response {
    let code = match e {
        StoreError::Busy => "busy",
        StoreError::Backlog { .. } => "backlog_full",
        StoreError::Closed => "shutting_down",
        StoreError::Storage(_) | StoreError::Corrupt(_) | StoreError::BadCursor => {
            "store_unavailable"
        }
    };
    tracing::warn!(error = %e, "webhook not stored");
    respond::unavailable(code, format!("not stored: {e}"), 1)
}

/// Reads the body, refusing it with 413 as soon as it passes the limit (by its declared
/// length when there is one, else while reading), without buffering past the limit.
async fn read_body(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    limit: u64,
) -> Result<Bytes, Response> {
    let too_large = || {
        respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(respond::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot read the body: {e}"),
        )),
    }
}
