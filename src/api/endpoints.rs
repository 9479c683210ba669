//! `/api/v1/endpoints`: list, create, show, change (PATCH), delete, the signing secret, pause,
//! resume, recover. Secrets never appear in lists or views: an endpoint shows only whether it
//! signs; `GET /api/v1/endpoints/{id}/secret` is the one place that returns it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::Value;

use super::entries::{EndpointBody, EndpointPatch};
use super::grammar::{self, EntryId, Overlap, SigningSecret, Time};
use super::params::{self, ApiError};
use super::views::{
    BreakerView, Deleted, EndpointView, ErrorBody, FieldView, OrderingView, Page, PauseState,
    RateLimitView, Recovered, RetryView, Rotated, SecretView,
};
use super::{AdminState, ApiResult};
use crate::catalog::Origin;
use crate::model::{Endpoint, Ordering};
use crate::respond;
use crate::store::{EntryKind, Requeue};
use crate::verify::FieldRef;

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An endpoint URL as lists show it: user info and query values may be credentials
/// (`https://user:pass@host/hook?token=…`), so they are masked; the secret route shows it whole.
pub fn masked_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username("***");
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if shown.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
    }
    shown.to_string()
}

pub(crate) fn view(st: &AdminState, e: &Endpoint) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        url: e.destination.address().map(masked_url),
        kind: e.destination.kind().into(),
        origin: st
            .catalog
            .origin(EntryKind::Endpoint, &e.id)
            .unwrap_or(Origin::File)
            .as_str()
            .into(),
        sources: e.sources.clone(),
        event_types: e
            .event_types
            .as_ref()
            .map(|g| g.iter().map(|p| p.as_str().to_string()).collect()),
        paused: st.dispatcher.is_paused(&e.id).unwrap_or(false),
        signs: e.signing_key.is_some(),
        max_in_flight: e.max_in_flight,
        rate_limit: e.rate_limit.map(|r| RateLimitView {
            per_second: r.per_second,
            burst: r.burst.unwrap_or(r.per_second),
        }),
        timeout_ms: ms(e.timeout),
        retry: RetryView {
            max_attempts: e.retry.max_attempts,
            base_ms: ms(e.retry.base),
            max_delay_ms: ms(e.retry.max_delay),
            max_age_ms: ms(e.retry.max_age),
        },
        headers: e.headers.iter().map(|(n, _)| n.to_string()).collect(),
        forward_headers: e
            .forward_headers
            .as_ref()
            .map(|h| h.iter().map(|n| n.to_string()).collect()),
        breaker: e.health.breaker.map(|b| BreakerView {
            window_ms: b.window_ms,
            min_attempts: b.min_attempts,
            failure_rate: b.failure_rate,
            cool_down_ms: b.cool_down_ms,
        }),
        disable_after_ms: e.health.disable_after_ms,
        ordering: e.ordering.as_ref().map(|o| match o {
            Ordering::Endpoint => OrderingView::Endpoint,
            Ordering::Key(FieldRef::Header(h)) => OrderingView::Key(FieldView::Header(h.clone())),
            Ordering::Key(FieldRef::Json(p)) => OrderingView::Key(FieldView::Json(p.clone())),
        }),
        filter: e.filter.as_ref().map(|f| f.document().clone()),
        transform: e.transform.as_deref().map(str::to_string),
        expires_at: e.expires_at_ms.map(super::params::rfc3339),
        // Filled from the store by `endpoint_health::fill` where it is shown.
        health: Default::default(),
    }
}

/// The endpoint in force with `id`, or a 404 `unknown_endpoint`.
pub(crate) fn find(st: &AdminState, id: &str) -> Result<Endpoint, ApiError> {
    st.routes
        .current()
        .endpoints
        .iter()
        .find(|e| e.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("unknown_endpoint", format!("no endpoint {id:?}")))
}

/// Endpoints, with their state and origin.
#[utoipa::path(get, path = "/api/v1/endpoints", operation_id = "list_endpoints", tag = "endpoints",
    responses((status = 200, body = Page<EndpointView>)), security(("bearer" = [])))]
pub async fn list(State(st): State<Arc<AdminState>>) -> ApiResult {
    let routes = st.routes.current();
    let mut data: Vec<EndpointView> = routes.endpoints.iter().map(|e| view(&st, e)).collect();
    super::endpoint_health::fill(&st, &mut data).await?;
    let body = Page {
        data,
        next_cursor: None,
    };
    Ok(respond::typed(StatusCode::OK, &body))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}", operation_id = "get_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let mut shown = [view(&st, &find(&st, &id)?)];
    super::endpoint_health::fill(&st, &mut shown).await?;
    Ok(respond::typed(StatusCode::OK, &shown[0]))
}

/// Creates an endpoint from the same keys as the file's `[[endpoints]]`, as JSON.
#[utoipa::path(post, path = "/api/v1/endpoints", operation_id = "create_endpoint", tag = "endpoints",
    request_body = EndpointBody,
    responses((status = 201, body = EndpointView), (status = 400, body = ErrorBody),
        (status = 409, description = "An endpoint with this id exists", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let value: Value = params::json_body(&body)?;
    let id = st
        .catalog
        .create(EntryKind::Endpoint, value, &st.dispatcher)
        .await?;
    Ok(respond::typed(
        StatusCode::CREATED,
        &view(&st, &find(&st, &id)?),
    ))
}

/// Changes an API-made endpoint: the fields given replace the stored ones (`null` removes).
#[utoipa::path(patch, path = "/api/v1/endpoints/{id}", operation_id = "update_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch: Value = params::json_body(&body)?;
    st.catalog
        .update(EntryKind::Endpoint, &id, patch, &st.dispatcher)
        .await?;
    Ok(respond::typed(StatusCode::OK, &view(&st, &find(&st, &id)?)))
}

/// Deletes an API-made endpoint; what it still had to send is dead-lettered.
#[utoipa::path(delete, path = "/api/v1/endpoints/{id}", operation_id = "delete_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let dead = st
        .catalog
        .delete(EntryKind::Endpoint, &id, &st.dispatcher)
        .await?;
    Ok(respond::typed(
        StatusCode::OK,
        &Deleted {
            id,
            deleted: true,
            dead_lettered: Some(dead),
        },
    ))
}

/// The endpoint's signing secret (`whsec_…`, or null when it does not sign) and its URL
/// unmasked: the one route that shows either.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}/secret", operation_id = "get_endpoint_secret", tag = "endpoints",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn secret(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let e = find(&st, &id)?;
    let secret = e.signing_key.map(|k| {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(k.expose())
        )
    });
    Ok(respond::typed(
        StatusCode::OK,
        &SecretView {
            id,
            secret,
            url: e.destination.address().map(ToString::to_string),
        },
    ))
}

/// Pauses (`true`) or resumes an endpoint.
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
    Ok(respond::typed(StatusCode::OK, &PauseState { id, paused }))
}

/// Pauses an endpoint: nothing is sent and no attempt spent; survives restarts.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/pause", operation_id = "pause_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = PauseState), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(st: State<Arc<AdminState>>, id: Path<String>) -> ApiResult {
    set_paused(st, id, true).await
}

/// Resumes an endpoint, in order of due time.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/resume", operation_id = "resume_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = PauseState), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(st: State<Arc<AdminState>>, id: Path<String>) -> ApiResult {
    set_paused(st, id, false).await
}

/// The recover window, by when the events arrived.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// Events that arrived at or after this time; default: the beginning.
    #[schema(value_type = Option<Time>)]
    since: Option<String>,
    /// Events that arrived before this time; default: now.
    #[schema(value_type = Option<Time>)]
    until: Option<String>,
}

/// Parses a recover body into its window `[since, until)` in Unix ms; empty is everything.
pub fn parse_recover(body: &[u8], now_ms: u64) -> Result<(u64, u64), ApiError> {
    let b: RecoverBody = params::json_body_or_default(body)?;
    let since_ms = params::optional_time("since", b.since.as_deref(), now_ms)?;
    let until_ms = params::optional_time("until", b.until.as_deref(), now_ms)?;
    Ok((since_ms.unwrap_or(0), until_ms.unwrap_or(u64::MAX)))
}

/// Re-queues every not-delivered delivery of the endpoint whose event arrived in the window
/// (default: everything), including those never attempted.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/recover", operation_id = "recover_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body(content = RecoverBody, description = "Optional: no body recovers everything"),
    responses((status = 200, body = Recovered), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
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
    let (since_ms, until_ms) = parse_recover(&body, st.now_ms())?;
    let r = st
        .store
        .requeue(Requeue::Recover {
            endpoint: id.clone(),
            since_ms,
            until_ms,
        })
        .await?;
    st.metrics.replayed.inc_by(r.deliveries.len() as u64);
    Ok(respond::typed(
        StatusCode::OK,
        &Recovered {
            recovered: r.deliveries.len(),
            in_flight: r.in_flight.len(),
        },
    ))
}

/// A secret rotation.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The new secret; a random one when absent.
    #[schema(value_type = Option<SigningSecret>)]
    secret: Option<String>,
    /// How long the old secret keeps signing beside the new one (default 24h).
    #[schema(value_type = Option<Overlap>)]
    overlap: Option<String>,
}

/// Parses a rotation body into the new secret (if given) and the overlap (default 24h).
pub fn parse_rotate(body: &[u8]) -> Result<(Option<String>, std::time::Duration), ApiError> {
    let b: RotateBody = params::json_body_or_default(body)?;
    if let Some(s) = &b.secret
        && !grammar::signing_secret_ok(s)
    {
        return Err(params::bad_request(
            "secret",
            "must be whsec_ followed by the standard base64 of 1 to 64 bytes",
        ));
    }
    let overlap = match b.overlap.as_deref() {
        None => std::time::Duration::from_secs(24 * 3600),
        Some(o) => grammar::overlap(o).ok_or_else(|| {
            params::bad_request(
                "overlap",
                format!(
                    "{o:?} must be a whole number and a unit, like 24h or 7d (at most 3 digits of days, 4 of hours)"
                ),
            )
        })?,
    };
    Ok((b.secret, overlap))
}

/// Rotates the signing secret of an API-made endpoint; the old one keeps signing during the
/// overlap.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/rotate-secret", operation_id = "rotate_endpoint_secret", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body(content = RotateBody, description = "Optional: no body rotates to a random secret with a 24h overlap"),
    responses((status = 200, body = Rotated), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (new_secret, overlap) = parse_rotate(&body)?;
    let now = st.now_ms();
    let until = now.saturating_add(u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX));
    let secret = st
        .catalog
        .rotate_secret(&id, new_secret, now, until, &st.dispatcher)
        .await?;
    Ok(respond::typed(
        StatusCode::OK,
        &Rotated {
            id,
            secret,
            previous_until: params::rfc3339(until),
        },
    ))
}
