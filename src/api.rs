//! The admin listener: liveness (`/healthz`), readiness (`/readyz`: the writer commits a probe
//! write within 2 s) and metrics (`/metrics`) without a token; `/api/v1/*` behind `Authorization: Bearer <token>`.
//!
//! **Tokens are compared in constant time**, and each grants a role (`access`: viewer,
//! operator, admin); **every /api/v1 route states its role, and a token's role is checked
//! before the handler runs** (401, then 403). With no token configured `serve` generates one
//! into the data directory. One file per resource: `events`, `deliveries`, `dead_letters`;
//! `params` parses query strings and bodies (400s that name the field), `grammar` holds the
//! exact grammar of every string they read (and the patterns the document states for it),
//! `entries` the shape of source and endpoint bodies, `views` shapes JSON.

pub mod access;
pub(crate) mod dead_letters;
mod deliveries;
pub(crate) mod endpoint_health;
pub(crate) mod endpoints;
mod entries;
pub(crate) mod events;
pub mod grammar;
pub(crate) mod messages;
pub mod openapi;
pub mod params;
pub(crate) mod places;
pub(crate) mod publish;
pub(crate) mod routing;
mod sources;
pub(crate) mod trials;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use crate::clock::SharedClock;
use crate::delivery::Dispatcher;
use crate::respond;
use crate::store::Store;

/// How long readiness waits for the writer before calling it stuck.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest admin API body; a larger one is a 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub struct AdminState {
    pub store: Store,
    /// What events are routed to.
    pub routes: Arc<crate::filter::RouteTable>,
    pub dispatcher: Arc<Dispatcher>,
    /// The tokens `/api/v1` accepts and the role each grants.
    pub access: Arc<access::Access>,
    pub clock: SharedClock,
    pub catalog: Arc<crate::catalog::Catalog>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// The last readiness probe: (when, by the gateway's clock, and its outcome).
    pub ready: tokio::sync::Mutex<Option<(u64, Result<(), String>)>>,
    /// The base URL webhooks are sent to (`ingress.public_url`, else the bound listener's).
    pub ingress_url: String,
    /// Turns true when the gateway begins to stop: long-lived answers (the console's live
    /// streams) end then, rather than hold the listener's graceful stop to its grace period.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The worker processes transforms run in (`test-transform` tries programs there).
    pub transforms: Arc<crate::transform::Pool>,
    /// Pull endpoints' message streams: their places, and what each holds.
    pub streams: messages::Streams,
}

impl AdminState {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// What every API handler returns.
type ApiResult = Result<Response, params::ApiError>;

pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/events", get(events::list).post(publish::publish))
        .route("/events/{id}", get(events::show))
        .route("/events/{id}/payload", get(events::payload))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/replay", post(dead_letters::replay))
        .route("/endpoints", get(endpoints::list).post(endpoints::create))
        .route(
            "/endpoints/{id}",
            get(endpoints::show)
                .patch(endpoints::update)
                .delete(endpoints::delete),
        )
        .route("/endpoints/{id}/secret", get(endpoints::secret))
        .route(
            "/endpoints/{id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route("/sources", get(sources::list).post(sources::create))
        .route(
            "/sources/{id}",
            get(sources::show)
                .patch(sources::update)
                .delete(sources::delete),
        )
        .route("/endpoints/{id}/recover", post(endpoints::recover))
        .route("/endpoints/{id}/pause", post(endpoints::pause))
        .route("/endpoints/{id}/resume", post(endpoints::resume))
        .route("/endpoints/{id}/enable", post(endpoint_health::enable))
        .route("/endpoints/{id}/test-filter", post(trials::test_filter))
        .route(
            "/endpoints/{id}/test-transform",
            post(trials::test_transform),
        )
        .route("/endpoints/{id}/messages:receive", post(messages::receive))
        .route("/endpoints/{id}/messages:stream", get(messages::stream))
        .route("/endpoints/{id}/messages:ack", post(messages::ack))
        .route("/endpoints/{id}/messages:nack", post(messages::nack))
        .route("/endpoints/{id}/messages:extend", post(messages::extend))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            access::require_token,
        ))
        .layer(middleware::map_response(json_errors));
    Router::new()
        .route(
            "/healthz",
            get(|| async { respond::json(StatusCode::OK, json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .nest("/console", crate::console::router(Arc::clone(&state)))
        .fallback(|| async { respond::error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// Errors that axum answers itself, in the shape of every other error: 405 for a method a route
/// does not take (its `Allow` header kept), 413 for a body over [`MAX_BODY_BYTES`], 400 for one
/// that could not be read.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<respond::ErrorCode>().is_some()
    {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take this method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!("body: is longer than {MAX_BODY_BYTES} bytes"),
        ),
        _ => (
            "invalid_request",
            "the request could not be read".to_string(),
        ),
    };
    let mut answer = respond::error(status, code, message);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// Prometheus (OpenMetrics) text; no token, like health and readiness.
async fn metrics(State(st): State<Arc<AdminState>>) -> Response {
    let store = st.store.clone();
    let endpoints: Vec<String> = st.routes.current().endpoint_ids();
    let now = st.now_ms();
    let gauges = store.gauges(&endpoints, now).await.unwrap_or_default();
    let mut r = Response::new(axum::body::Body::from(st.metrics.encode(gauges)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}

/// How long a readiness probe's outcome is reused. `/readyz` needs no token, and each probe
/// is an fsync'd commit: without this, anyone who can reach the admin listener could make
/// the writer commit as fast as they can ask.
const READY_REUSE_MS: u64 = 1000;

async fn ready(State(st): State<Arc<AdminState>>) -> Response {
    // One probe at a time; those who waited for it get its outcome.
    let mut last = st.ready.lock().await;
    let now = st.now_ms();
    let outcome = match &*last {
        Some((at, outcome)) if now.saturating_sub(*at) < READY_REUSE_MS => outcome.clone(),
        _ => {
            let outcome = match tokio::time::timeout(READY_TIMEOUT, st.store.probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("store: {e}")),
                Err(_) => Err("the store writer did not answer in time".to_string()),
            };
            *last = Some((now, outcome.clone()));
            outcome
        }
    };
    match outcome {
        Ok(()) => respond::json(StatusCode::OK, json!({ "status": "ready" })),
        Err(why) => respond::unavailable("not_ready", why, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn axums_own_errors_take_the_shared_shape() {
        let mut too_large = Response::new(axum::body::Body::from("length limit exceeded"));
        *too_large.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        let answer = json_errors(too_large).await;
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let mut no_method = Response::new(axum::body::Body::empty());
        *no_method.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        no_method
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET,HEAD"));
        let answer = json_errors(no_method).await;
        assert_eq!(answer.headers()[header::ALLOW], "GET,HEAD");
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        let ours = respond::error(StatusCode::NOT_FOUND, "unknown_event", "no event");
        assert_eq!(
            json_errors(ours)
                .await
                .extensions()
                .get::<respond::ErrorCode>()
                .map(|c| c.0.clone()),
            Some("unknown_event".to_string())
        );
    }
}
