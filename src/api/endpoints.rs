//! `GET /api/v1/endpoints` and `POST /api/v1/endpoints/{id}/pause|resume`. Secrets never leave:
//! an endpoint shows only whether it signs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::params::{self, ApiError};
use super::{AdminState, ApiResult};
use crate::config::Endpoint;
use crate::respond;
use crate::store::Requeue;

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
    let routes = st.routes.current();
    let data: Vec<Value> = routes
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

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    since: Option<String>,
    until: Option<String>,
}

/// Re-queues every not-delivered delivery of the endpoint whose event arrived in the window
/// (default: everything), including those never attempted; answers `{"recovered": N}`.
pub async fn recover(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    if st.dispatcher.is_paused(&id).is_none() {
        return Err(ApiError::not_found(
            "unknown_endpoint",
            format!("no endpoint {id:?}"),
        ));
    }
    let b: RecoverBody = if body.iter().all(u8::is_ascii_whitespace) {
        RecoverBody::default()
    } else {
        params::json_body(&body)?
    };
    let now = st.now_ms();
    let since_ms = b
        .since
        .as_deref()
        .map(|s| params::parse_time(s, now).map_err(|p| params::bad_request("since", p)))
        .transpose()?;
    let until_ms = b
        .until
        .as_deref()
        .map(|s| params::parse_time(s, now).map_err(|p| params::bad_request("until", p)))
        .transpose()?;
    let r = st
        .store
        .requeue(Requeue::Recover {
            endpoint: id.clone(),
            since_ms: since_ms.unwrap_or(0),
            until_ms: until_ms.unwrap_or(u64::MAX),
        })
        .await?;
    st.dispatcher.wake(&id);
    Ok(respond::json(
        StatusCode::OK,
        json!({ "recovered": r.deliveries.len(), "in_flight": r.in_flight.len() }),
    ))
}
