//! `GET /api/v1/dead-letters` and `POST /api/v1/dead-letters/replay`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::grammar::{self, DeadLetterCursor, DeliveryIdText, Time};
use super::params;
use super::params::ApiError;
use super::views::{DeadLetterView, ErrorBody, Page, Replayed};
use super::{AdminState, ApiResult};
use crate::ids::DeliveryId;
use crate::respond;
use crate::store::Requeue;
use crate::store::query::Filter;

/// The filters a dead-letter listing takes (the console's list takes the same).
pub const FILTERS: &[&str] = &["endpoint", "source", "type", "since", "until", "contains"];

/// Dead letters, most recently dead first. Each parameter may be given once; any other is a 400.
#[utoipa::path(get, path = "/api/v1/dead-letters", operation_id = "list_dead_letters", tag = "dead letters",
    params(
        ("endpoint" = Option<String>, Query, description = "Only this endpoint"),
        ("source" = Option<String>, Query, description = "Only this source"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("since" = Option<Time>, Query, description = "Died at or after this time"),
        ("until" = Option<Time>, Query, description = "Died before this time"),
        ("contains" = Option<String>, Query, min_length = 1, max_length = 256, description = "Dead letters whose event's payload contains this text, byte for byte (case-sensitive, no wildcards). Tested only on the rows a page looks at (at most 10,000), so a rare text may give a short or empty page with a `next_cursor`: follow it to search further back"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Dead letters per page, default 50"),
        ("cursor" = Option<DeadLetterCursor>, Query, description = "The next_cursor of the previous page"),
    ),
    responses((status = 200, body = Page<DeadLetterView>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<Arc<AdminState>>, RawQuery(query): RawQuery) -> ApiResult {
    let q = params::list_query(
        query.as_deref(),
        FILTERS,
        grammar::dead_letter_cursor_ok,
        st.now_ms(),
    )?;
    let page = st
        .store
        .list_dead(&q.filter, q.limit, q.cursor.as_deref())
        .await?;
    let body = Page {
        data: page.items.iter().map(DeadLetterView::from).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(respond::typed(StatusCode::OK, &body))
}

/// The replay body: a filter, ids, or both (then both must hold). No body, or `{}`, replays
/// every dead letter.
// The operator CLI sends it too (hence `Serialize`, leaving absent keys out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Only dead letters of this endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Only events of this source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Died at or after this time.
    #[schema(value_type = Option<Time>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Died before this time.
    #[schema(value_type = Option<Time>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only dead letters whose event's payload contains this text, byte for byte
    /// (case-sensitive). Every dead letter is searched, in bounded steps.
    #[schema(min_length = 1, max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Only these deliveries.
    #[schema(value_type = Option<Vec<DeliveryIdText>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

/// Parses a replay body into its filter and ids; an empty body is the empty filter.
pub fn parse_replay(
    body: &[u8],
    now_ms: u64,
) -> Result<(Filter, Option<Vec<DeliveryId>>), ApiError> {
    let b: ReplayBody = params::json_body_or_default(body)?;
    let since_ms = params::optional_time("since", b.since.as_deref(), now_ms)?;
    let until_ms = params::optional_time("until", b.until.as_deref(), now_ms)?;
    let contains = b.contains.map(params::parse_contains).transpose()?;
    let ids = match &b.ids {
        None => None,
        Some(ids) => Some(
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    grammar::delivery_id(id).ok_or_else(|| {
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
        contains,
    };
    Ok((filter, ids))
}

/// Requeues the dead letters that match, in one transaction recorded before the answer.
#[utoipa::path(post, path = "/api/v1/dead-letters/replay", operation_id = "replay_dead_letters", tag = "dead letters",
    request_body(content = ReplayBody, description = "Optional: no body replays every dead letter"),
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody),
        (status = 409, description = "Every match belongs to an endpoint that no longer exists", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let now = st.now_ms();
    let (mut filter, ids) = parse_replay(&body, now)?;
    // What is dead now, not what dies while the replay goes on: a replayed delivery that dies
    // again (its key is its new death time) must not be replayed again by a later step.
    filter.until_ms = Some(filter.until_ms.map_or(now + 1, |u| u.min(now + 1)));
    // In bounded steps, each its own transaction, so ingest never waits behind one huge
    // replay; each step is recorded before the next begins (a crash between steps leaves a
    // prefix replayed, and replaying again goes on with the rest).
    let (mut replayed, mut removed) = (0, 0);
    let mut after = None;
    loop {
        let r = st
            .store
            .requeue(Requeue::Dead {
                filter: filter.clone(),
                ids: ids.clone(),
                after,
            })
            .await?;
        // The store wakes the endpoints' lanes itself.
        st.metrics.replayed.inc_by(r.deliveries.len() as u64);
        replayed += r.deliveries.len();
        removed += r.removed.len();
        match r.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if replayed == 0 && removed > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_removed",
            format!("the {removed} matching dead letters belong to endpoints that no longer exist"),
        ));
    }
    Ok(respond::typed(
        StatusCode::OK,
        &Replayed {
            replayed,
            endpoint_removed: removed,
        },
    ))
}
