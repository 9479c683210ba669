//! An endpoint's circuit breaker in the API: the `health` every endpoint view carries (its
//! state, and how many deliveries it holds since when), and `POST
//! /api/v1/endpoints/{id}/enable`, which closes it, sending or discarding what it held.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::grammar::EntryId;
use super::params::{self, ApiError, rfc3339};
use super::views::{EnabledView, EndpointView, ErrorBody, HealthView};
use super::{AdminState, ApiResult};
use crate::respond;
use crate::store::health::{Health, State as BreakerState};

/// The view of one breaker, holding `pending` deliveries.
pub fn health_view(h: &Health, pending: u64) -> HealthView {
    let held = h.state != BreakerState::Closed;
    HealthView {
        state: h.state.as_str().into(),
        since: (h.since_ms > 0).then(|| rfc3339(h.since_ms)),
        until: (h.state == BreakerState::Open).then(|| rfc3339(h.until_ms)),
        trips: h.trips,
        held: if held { pending } else { 0 },
        held_since: h.failing_since_ms.filter(|_| held).map(rfc3339),
    }
}

/// Fills the `health` of `views` from the store: each endpoint's breaker, and for those not
/// closed, their pending deliveries (what they hold). One read of the breakers; the pending
/// counts only when some breaker is not closed.
pub async fn fill(st: &AdminState, views: &mut [EndpointView]) -> Result<(), ApiError> {
    let healths: HashMap<String, Health> = st.store.healths().await?.into_iter().collect();
    let holding: Vec<String> = views
        .iter()
        .filter(|v| v.breaker.is_some())
        .filter(|v| {
            healths
                .get(&v.id)
                .is_some_and(|h| h.state != BreakerState::Closed)
        })
        .map(|v| v.id.clone())
        .collect();
    let pending: HashMap<String, u64> = if holding.is_empty() {
        HashMap::new()
    } else {
        let gauges = st.store.gauges(&holding, st.now_ms()).await?;
        gauges
            .per_endpoint
            .into_iter()
            .map(|(e, n, _)| (e, u64::try_from(n).unwrap_or(0)))
            .collect()
    };
    for v in views {
        // A breaker turned off holds nothing, whatever state it was left in.
        if v.breaker.is_none() {
            continue;
        }
        if let Some(h) = healths.get(&v.id) {
            v.health = health_view(h, pending.get(&v.id).copied().unwrap_or(0));
        }
    }
    Ok(())
}

/// What an enable asks for.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableBody {
    /// Dead-letter what the endpoint held (reason `discarded on enable`) instead of sending it.
    #[serde(default)]
    discard_held: bool,
}

/// Parses an enable body: empty is `{"discard_held": false}`.
pub fn parse_enable(body: &[u8]) -> Result<bool, ApiError> {
    let b: EnableBody = params::json_body_or_default(body)?;
    Ok(b.discard_held)
}

/// Enables an endpoint whose breaker opened or disabled it: closed now, and what it held goes
/// out in due order at its rate limit, or, with `discard_held`, is dead-lettered first. On a
/// closed endpoint it changes nothing.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/enable", operation_id = "enable_endpoint", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body(content = EnableBody, description = "Optional: no body sends what was held"),
    responses((status = 200, body = EnabledView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enable(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let discard = parse_enable(&body)?;
    if st.dispatcher.is_paused(&id).is_none() {
        return Err(ApiError::not_found(
            "unknown_endpoint",
            format!("no endpoint {id:?}"),
        ));
    }
    let done = st.store.enable(&id, discard).await?;
    if done.held > 0 || done.discarded > 0 {
        tracing::info!(endpoint = %id, held = done.held, discarded = done.discarded, "endpoint enabled");
    }
    Ok(respond::typed(
        StatusCode::OK,
        &EnabledView {
            id,
            state: BreakerState::Closed.as_str().into(),
            held: done.held,
            discarded: done.discarded,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_shows_its_state_and_what_it_holds_only_while_not_closed() {
        let open = Health {
            state: BreakerState::Open,
            since_ms: 1_700_000_000_000,
            until_ms: 1_700_000_030_000,
            trips: 2,
            failing_since_ms: Some(1_699_999_000_000),
            held_from_ms: Some(1_699_999_000_000),
            ..Health::closed()
        };
        let v = health_view(&open, 7);
        assert_eq!((v.state.as_str(), v.held, v.trips), ("open", 7, 2));
        assert_eq!(v.until.as_deref(), Some("2023-11-14T22:13:50.000Z"));
        assert!(v.held_since.is_some());
        let closed = health_view(&Health::closed(), 7);
        assert_eq!(closed, HealthView::default(), "closed holds nothing");
    }

    #[test]
    fn an_enable_body_is_optional_and_strict() {
        assert_eq!(parse_enable(b"").ok(), Some(false));
        assert_eq!(parse_enable(br#"{"discard_held": true}"#).ok(), Some(true));
        assert!(parse_enable(br#"{"discard": true}"#).is_err());
        assert!(parse_enable(br#"{"discard_held": "yes"}"#).is_err());
    }
}
