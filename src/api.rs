//! The admin listener. For now: liveness (`/healthz`) and readiness (`/readyz`: the store is
//! open and its writer answers), neither of which needs a token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use crate::respond;
use crate::store::Store;

/// How long readiness waits for the writer before calling it stuck.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct AdminState {
    pub store: Store,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { respond::json(StatusCode::OK, json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .fallback(|| async { respond::error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

async fn ready(State(st): State<Arc<AdminState>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, st.store.ping()).await {
        Ok(Ok(())) => respond::json(StatusCode::OK, json!({ "status": "ready" })),
        Ok(Err(e)) => respond::unavailable("not_ready", format!("store: {e}"), 1),
        Err(_) => respond::unavailable("not_ready", "the store writer did not answer in time", 1),
    }
}
