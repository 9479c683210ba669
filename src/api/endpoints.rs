//! `/api/v1/endpoints`: list, create, show, change (PATCH), delete, the signing secret, pause,
//! resume, recover. Secrets never appear in lists or views: an endpoint shows only whether it
//! signs; `GET /api/v1/endpoints/{id}/secret` is the one place that returns it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};

use super::params::{self, ApiError};
use super::{AdminState, ApiResult};
use crate::catalog::Origin;
use crate::config::Endpoint;
use crate::respond;
use crate::store::{EntryKind, Requeue};

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn view(st: &AdminState, e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url.as_str(),
        "origin": st.catalog.origin(EntryKind::Endpoint, &e.id).unwrap_or(Origin::File).as_str(),
        "sources": e.sources,
        "event_types": e.event_types.as_ref().map(|g| g.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        "paused": st.dispatcher.is_paused(&e.id).unwrap_or(false),
        "signs": e.signing_key.is_some(),
        "max_in_flight": e.max_in_flight,
        "rate_limit": e.rate_limit.map(|r| json!({ "per_second": r.per_second, "burst": r.burst.unwrap_or(r.per_second) })),
        "timeout_ms": ms(e.timeout),
        "retry": {
            "max_attempts": e.retry.max_attempts,
            "base_ms": ms(e.retry.base),
            "max_delay_ms": ms(e.retry.max_delay),
            "max_age_ms": ms(e.retry.max_age),
        },
        "headers": e.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        "forward_headers": e.forward_headers.as_ref().map(|h| h.iter().map(|n| n.as_str()).collect::<Vec<_>>()),
    })
}

fn find(st: &AdminState, id: &str) -> Result<Endpoint, ApiError> {
    st.routes
        .current()
        .endpoints
        .iter()
        .find(|e| e.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("unknown_endpoint", format!("no endpoint {id:?}")))
}

pub async fn list(State(st): State<Arc<AdminState>>) -> ApiResult {
    let routes = st.routes.current();
    let data: Vec<Value> = routes.endpoints.iter().map(|e| view(&st, e)).collect();
    Ok(respond::json(
        StatusCode::OK,
        json!({ "data": data, "next_cursor": null }),
    ))
}

pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    Ok(respond::json(StatusCode::OK, view(&st, &find(&st, &id)?)))
}

/// Creates an endpoint from the same keys as the file's `[[endpoints]]`, as JSON.
pub async fn create(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let value: Value = params::json_body(&body)?;
    let id = st
        .catalog
        .create(EntryKind::Endpoint, value, &st.dispatcher)
        .await?;
    Ok(respond::json(
        StatusCode::CREATED,
        view(&st, &find(&st, &id)?),
    ))
}

pub async fn update(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch: Value = params::json_body(&body)?;
    st.catalog
        .update(EntryKind::Endpoint, &id, patch, &st.dispatcher)
        .await?;
    Ok(respond::json(StatusCode::OK, view(&st, &find(&st, &id)?)))
}

pub async fn delete(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let dead = st
        .catalog
        .delete(EntryKind::Endpoint, &id, &st.dispatcher)
        .await?;
    Ok(respond::json(
        StatusCode::OK,
        json!({ "id": id, "deleted": true, "dead_lettered": dead }),
    ))
}

/// The endpoint's signing secret (`whsec_…`), or null when it does not sign.
pub async fn secret(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let e = find(&st, &id)?;
    let secret = e.signing_key.map(|k| {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(k.expose())
        )
    });
    Ok(respond::json(
        StatusCode::OK,
        json!({ "id": id, "secret": secret }),
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
    let time = |field: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref()
            .map(|s| params::parse_time(s, now).map_err(|p| params::bad_request(field, p)))
            .transpose()
    };
    let since_ms = time("since", &b.since)?;
    let until_ms = time("until", &b.until)?;
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

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// The new secret; a random one when absent.
    secret: Option<String>,
    /// How long the old secret keeps signing beside the new one (default 24h).
    overlap: Option<String>,
}

/// Rotates the signing secret of an API-made endpoint; answers the new secret and until when
/// the old one still signs.
pub async fn rotate_secret(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        params::json_body(&body)?
    };
    let overlap = match b.overlap.as_deref() {
        None => std::time::Duration::from_secs(24 * 3600),
        Some(o) => humantime::parse_duration(o).map_err(|_| {
            params::bad_request("overlap", format!("{o:?} is not a duration like 24h"))
        })?,
    };
    let now = st.now_ms();
    let until = now.saturating_add(u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX));
    let secret = st
        .catalog
        .rotate_secret(&id, b.secret, now, until, &st.dispatcher)
        .await?;
    Ok(respond::json(
        StatusCode::OK,
        json!({ "id": id, "secret": secret, "previous_until": params::rfc3339(until) }),
    ))
}
