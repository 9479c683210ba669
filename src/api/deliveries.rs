//! `GET /api/v1/deliveries/{id}` (with every attempt) and `POST /api/v1/deliveries/{id}/retry`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::grammar::{self, DeliveryIdText};
use super::params::ApiError;
use super::views::{DeliveryDetail, ErrorBody, RetryAccepted};
use super::{AdminState, ApiResult};
use crate::ids::DeliveryId;
use crate::respond;
use crate::store::Requeue;

fn parse_id(id: &str) -> Result<DeliveryId, ApiError> {
    grammar::delivery_id(id).ok_or_else(|| {
        ApiError::not_found("unknown_delivery", format!("{id:?} is not a delivery id"))
    })
}

/// One delivery and every attempt.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", operation_id = "get_delivery", tag = "deliveries",
    params(("id" = DeliveryIdText, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let found = match st.store.delivery(id).await? {
        Some(d) => Some((d, st.store.attempts(id).await?)),
        None => None,
    };
    let (d, attempts) = found
        .ok_or_else(|| ApiError::not_found("unknown_delivery", format!("no delivery {id}")))?;
    Ok(respond::typed(
        StatusCode::OK,
        &DeliveryDetail::new(&d, &attempts),
    ))
}

/// Sends one delivery again now, in a fresh retry cycle, whatever its status.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", operation_id = "retry_delivery", tag = "deliveries",
    params(("id" = DeliveryIdText, Path)),
    responses((status = 202, body = RetryAccepted), (status = 404, body = ErrorBody),
        (status = 409, description = "Being sent right now, or its endpoint no longer exists", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let r = st.store.requeue(Requeue::One(id)).await?;
    if !r.removed.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_removed",
            format!("the endpoint of {id} no longer exists"),
        ));
    }
    if !r.in_flight.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_flight",
            format!("{id} is being sent right now"),
        ));
    }
    if r.deliveries.is_empty() {
        return Err(ApiError::not_found(
            "unknown_delivery",
            format!("no delivery {id}"),
        ));
    }
    st.metrics.replayed.inc();
    Ok(respond::typed(
        StatusCode::ACCEPTED,
        &RetryAccepted {
            delivery_id: id.to_string(),
            status: "pending".into(),
        },
    ))
}
