//! `GET /api/v1/dead-letters` and `POST /api/v1/dead-letters/replay`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::params::{self, ApiError};
use super::{AdminState, ApiResult, blocking, views};
use crate::ids::DeliveryId;
use crate::respond;
use crate::store::Requeue;
use crate::store::query::Filter;

const FILTERS: &[&str] = &["endpoint", "source", "type", "since", "until"];

pub async fn list(State(st): State<Arc<AdminState>>, RawQuery(query): RawQuery) -> ApiResult {
    let q = params::list_query(query.as_deref(), FILTERS, st.now_ms())?;
    let store = st.store.clone();
    let page = blocking(move || store.list_dead(&q.filter, q.limit, q.cursor.as_deref())).await?;
    Ok(respond::json(
        StatusCode::OK,
        json!({ "data": page.items.iter().map(views::dead_letter).collect::<Vec<_>>(), "next_cursor": page.next_cursor }),
    ))
}

/// The replay body: a filter, ids, or both (then both must hold). An empty body replays every
/// dead letter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    endpoint: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    ids: Option<Vec<String>>,
}

/// Requeues the dead letters that match, in one transaction recorded before the answer.
pub async fn replay(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let b: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
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
    let r = st.store.requeue(Requeue::Dead { filter, ids }).await?;
    let endpoints: BTreeSet<&str> = r.deliveries.iter().map(|(_, e)| e.as_str()).collect();
    for e in endpoints {
        st.dispatcher.wake(e);
    }
    Ok(respond::json(
        StatusCode::OK,
        json!({ "replayed": r.deliveries.len() }),
    ))
}
