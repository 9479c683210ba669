//! `GET /api/v1/endpoints` and `POST /api/v1/endpoints/{id}/pause|resume`. Secrets never leave:
//! an endpoint shows only whether it signs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::params::ApiError;
use super::{AdminState, ApiResult};
use crate::config::Endpoint;
use crate::respond;

fn view(e: &Endpoint, paused: bool) -> Value {
    json!({
        "id": e.id,
        "url": e.url.as_str(),
        "sources": e.sources,
        "event_types": e.event_types.as_ref().map(|g| g.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        "paused": paused,
        "signs": e.signing_key.is_some(),
        "max_in_flight": e.max_in_flight,
        "rate_limit": e.rate_limit.map(|r| json!({ "per_second": r.per_second, "burst": r.burst.unwrap_or(r.per_second) })),
        "timeout_ms": u64::try_from(e.timeout.as_millis()).unwrap_or(u64::MAX),
        "retry": {
            "max_attempts": e.retry.max_attempts,
            "base_ms": u64::try_from(e.retry.base.as_millis()).unwrap_or(u64::MAX),
            "max_delay_ms": u64::try_from(e.retry.max_delay.as_millis()).unwrap_or(u64::MAX),
            "max_age_ms": u64::try_from(e.retry.max_age.as_millis()).unwrap_or(u64::MAX),
        },
    })
}

pub async fn list(State(st): State<Arc<AdminState>>) -> ApiResult {
    let data: Vec<Value> = st
        .endpoints
        .iter()
        .map(|e| view(e, st.dispatcher.is_paused(&e.id).unwrap_or(false)))
        .collect();
    Ok(respond::json(
        StatusCode::OK,
        json!({ "data": data, "next_cursor": null }),
    ))
}

pub async fn set_paused(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    paused: bool,
) -> ApiResult {
    if !st.dispatcher.set_paused(&id, paused).await? {
        return Err(ApiError::not_found(
            "unknown_endpoint",
            format!("no endpoint {id:?}"),
        ));
    }
    Ok(respond::json(
        StatusCode::OK,
        json!({ "id": id, "paused": paused }),
    ))
}
