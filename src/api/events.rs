//! `GET /api/v1/events`, `GET /api/v1/events/{id}`, `GET /api/v1/events/{id}/payload`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::grammar::{self, EventIdText, StatusName, Time};
use super::params::{self, ApiError};
use super::views::{ErrorBody, Event, Page};
use super::{AdminState, ApiResult};
use crate::ids::EventId;
use crate::model::event::EventWithDeliveries;
use crate::respond;

/// The filters an events listing takes (the console's list and live tail take the same).
pub const FILTERS: &[&str] = &[
    "source", "type", "since", "until", "status", "endpoint", "contains",
];

/// Events, newest first. Each parameter may be given once; any other is a 400.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "list_events", tag = "events",
    params(
        ("source" = Option<String>, Query, description = "Only this source"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("since" = Option<Time>, Query, description = "Received at or after this time"),
        ("until" = Option<Time>, Query, description = "Received before this time"),
        ("status" = Option<StatusName>, Query, description = "Events with a delivery in this status"),
        ("endpoint" = Option<String>, Query, description = "Events with a delivery to this endpoint"),
        ("contains" = Option<String>, Query, min_length = 1, max_length = 256, description = "Events whose payload contains this text, byte for byte (case-sensitive, no wildcards). Tested only on the rows a page looks at (at most 10,000), so a rare text may give a short or empty page with a `next_cursor`: follow it to search further back"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Events per page, default 50"),
        ("cursor" = Option<EventIdText>, Query, description = "The next_cursor of the previous page"),
    ),
    responses((status = 200, body = Page<Event>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<Arc<AdminState>>, RawQuery(query): RawQuery) -> ApiResult {
    let q = params::list_query(
        query.as_deref(),
        FILTERS,
        |c| grammar::event_id(c).is_some(),
        st.now_ms(),
    )?;
    let page = st
        .store
        .list_events(&q.filter, q.limit, q.cursor.as_deref())
        .await?;
    let body = Page {
        data: page.items.iter().map(Event::from).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(respond::typed(StatusCode::OK, &body))
}

fn parse_event_id(id: &str) -> Result<EventId, ApiError> {
    grammar::event_id(id)
        .ok_or_else(|| ApiError::not_found("unknown_event", format!("{id:?} is not an event id")))
}

/// One event, each delivery's status, and its routing: which endpoints it matched, and why
/// not the others.
#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "get_event", tag = "events",
    params(("id" = EventIdText, Path)),
    responses((status = 200, body = Event), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_event_id(&id)?;
    let (event, payload) = st
        .store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_event", format!("no event {id}")))?;
    let mut deliveries = Vec::new();
    for (did, _) in &event.deliveries {
        if let Some(d) = st.store.delivery(*did).await? {
            deliveries.push(d);
        }
    }
    let routing = super::routing::routing(&st.routes.current().endpoints, &event, &payload);
    let mut view = Event::from(&EventWithDeliveries { event, deliveries });
    view.routing = Some(routing);
    Ok(respond::typed(StatusCode::OK, &view))
}

/// The body exactly as it arrived, with its original content type.
#[utoipa::path(get, path = "/api/v1/events/{id}/payload", operation_id = "get_event_payload", tag = "events",
    params(("id" = EventIdText, Path)),
    responses(
        (status = 200, description = "The raw body, with the content type it arrived with", content_type = "*/*"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn payload(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_event_id(&id)?;
    let (_, payload) = st
        .store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_event", format!("no event {id}")))?;
    let content_type = payload
        .header("content-type")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut r = Response::new(Body::from(payload.body));
    r.headers_mut().insert(header::CONTENT_TYPE, content_type);
    Ok(r)
}
