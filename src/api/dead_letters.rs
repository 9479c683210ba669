//! `GET /api/v1/dead-letters` and `POST /api/v1/dead-letters/replay`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::params;
use super::params::ApiError;
use super::views::{self, DeadLetterView, ErrorBody, Page, Replayed};
use super::{AdminState, ApiResult, blocking};
use crate::ids::DeliveryId;
use crate::respond;
use crate::store::Requeue;
use crate::store::query::Filter;

const FILTERS: &[&str] = &["endpoint", "source", "type", "since", "until"];

/// Dead letters, most recently dead first.
#[utoipa::path(get, path = "/api/v1/dead-letters", operation_id = "list_dead_letters", tag = "dead letters",
    params(
        ("endpoint" = Option<String>, Query, description = "Only this endpoint"),
        ("source" = Option<String>, Query, description = "Only this source"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("since" = Option<String>, Query, description = "Died at or after: RFC 3339 or a duration before now"),
        ("until" = Option<String>, Query, description = "Died before"),
        ("limit" = Option<usize>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = Page<DeadLetterView>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<Arc<AdminState>>, RawQuery(query): RawQuery) -> ApiResult {
    let q = params::list_query(query.as_deref(), FILTERS, st.now_ms())?;
    let store = st.store.clone();
    let page = blocking(move || store.list_dead(&q.filter, q.limit, q.cursor.as_deref())).await?;
    let body = Page {
        data: page.items.iter().map(views::dead_letter).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(respond::typed(StatusCode::OK, &body))
}

/// The replay body: a filter, ids, or both (then both must hold). An empty body replays every
/// dead letter.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    endpoint: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    ids: Option<Vec<String>>,
}

/// Parses a replay body into its filter and ids; an empty body is the empty filter.
pub fn parse_replay(
    body: &[u8],
    now_ms: u64,
) -> Result<(Filter, Option<Vec<DeliveryId>>), ApiError> {
    let b: ReplayBody = params::json_body_or_default(body)?;
    let since_ms = params::optional_time("since", b.since.as_deref(), now_ms)?;
    let until_ms = params::optional_time("until", b.until.as_deref(), now_ms)?;
    let ids = match &b.ids {
        None => None,
        Some(ids) => Some(
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    id.parse::<DeliveryId>().map_err(|_| {
                        params::bad_request(
                            &format!("ids[{i}]"),
                            format!("{id:?} is not a delivery id"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let filter = Filter {
        source: b.source,
        event_type: b.event_type,
        endpoint: b.endpoint,
        status: None,
        since_ms,
        until_ms,
    };
    Ok((filter, ids))
}

/// Requeues the dead letters that match, in one transaction recorded before the answer.
#[utoipa::path(post, path = "/api/v1/dead-letters/replay", operation_id = "replay_dead_letters", tag = "dead letters",
    request_body = ReplayBody,
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody),
        (status = 409, description = "Every match belongs to an endpoint that no longer exists", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let (filter, ids) = parse_replay(&body, st.now_ms())?;
    let r = st.store.requeue(Requeue::Dead { filter, ids }).await?;
    if r.deliveries.is_empty() && !r.removed.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_removed",
            format!(
                "the {} matching dead letters belong to endpoints that no longer exist",
                r.removed.len()
            ),
        ));
    }
    st.metrics.replayed.inc_by(r.deliveries.len() as u64);
    let endpoints: BTreeSet<&str> = r.deliveries.iter().map(|(_, e)| e.as_str()).collect();
    for e in endpoints {
        st.dispatcher.wake(e);
    }
    Ok(respond::typed(
        StatusCode::OK,
        &Replayed {
            replayed: r.deliveries.len(),
            endpoint_removed: r.removed.len(),
        },
    ))
}
