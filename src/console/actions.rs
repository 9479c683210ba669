//! The console's POSTs that change things: retry a delivery, replay an event, replay the dead
//! letters matching a filter, pause and resume an endpoint.
//!
//! Each takes an [`Action`] (so `Origin` and the session's CSRF token were checked), checks the
//! session's role first (**operator or above for all of these**), acts through the same store
//! commands and API handlers as `/api/v1`, and answers 303 back to the page it came from
//! (post/redirect/get, so a reload does not act twice).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::page;
use super::{Action, Shared};
use crate::api::access::Role;
use crate::api::dead_letters::ReplayBody;
use crate::api::grammar;
use crate::api::views::Replayed;
use crate::store::Requeue;

fn back_to_event(event: Option<&str>, done: &str) -> Response {
    match event.and_then(grammar::event_id) {
        Some(id) => Redirect::to(&format!("/console/events/{id}?done={done}")).into_response(),
        None => Redirect::to("/console/events").into_response(),
    }
}

pub async fn retry_delivery(
    State(st): State<Shared>,
    Path(id): Path<String>,
    action: Action,
) -> Response {
    if let Some(refused) = action.refused_unless(Role::Operator) {
        return refused;
    }
    let Some(id) = grammar::delivery_id(&id) else {
        return page::problem(StatusCode::NOT_FOUND, "There is no such delivery.");
    };
    let r = match st.admin.store.requeue(Requeue::One(id)).await {
        Ok(r) => r,
        Err(e) => return page::api_error(e.into()),
    };
    if !r.removed.is_empty() {
        return page::problem(
            StatusCode::CONFLICT,
            "This delivery's endpoint no longer exists, so it cannot be sent again.",
        );
    }
    if !r.in_flight.is_empty() {
        return back_to_event(action.field("event"), "busy");
    }
    if r.deliveries.is_empty() {
        return page::problem(StatusCode::NOT_FOUND, format!("There is no delivery {id}."));
    }
    st.admin.metrics.replayed.inc();
    tracing::info!(delivery = %id, "console: delivery retried");
    back_to_event(action.field("event"), "retried")
}

pub async fn replay_event(
    State(st): State<Shared>,
    Path(id): Path<String>,
    action: Action,
) -> Response {
    if let Some(refused) = action.refused_unless(Role::Operator) {
        return refused;
    }
    let Some(id) = grammar::event_id(&id) else {
        return page::problem(StatusCode::NOT_FOUND, "There is no such event.");
    };
    let store = &st.admin.store;
    let event = match store.event(id).await {
        Ok(Some((event, _))) => event,
        Ok(None) => {
            return page::problem(StatusCode::NOT_FOUND, format!("There is no event {id}."));
        }
        Err(e) => return page::api_error(e.into()),
    };
    let mut busy = false;
    for (delivery, _) in &event.deliveries {
        match store.requeue(Requeue::One(*delivery)).await {
            Ok(r) => {
                busy |= !r.in_flight.is_empty();
                st.admin.metrics.replayed.inc_by(r.deliveries.len() as u64);
            }
            Err(e) => return page::api_error(e.into()),
        }
    }
    tracing::info!(event = %id, "console: event replayed");
    let text = id.to_string();
    back_to_event(Some(&text), if busy { "busy" } else { "replayed" })
}

/// The filter of a dead-letter replay, from the confirmation form's hidden fields.
fn replay_body(action: &Action) -> ReplayBody {
    let field = |name| {
        action
            .field(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    ReplayBody {
        endpoint: field("endpoint"),
        source: field("source"),
        event_type: field("type"),
        since: field("since"),
        until: field("until"),
        contains: field("contains"),
        ids: None,
    }
}

/// Replays every dead letter matching the filter, not only one page's: through the API's own
/// handler, in its bounded steps.
pub async fn replay_dead(State(st): State<Shared>, action: Action) -> Response {
    if let Some(refused) = action.refused_unless(Role::Operator) {
        return refused;
    }
    let body = match serde_json::to_vec(&replay_body(&action)) {
        Ok(b) => b,
        Err(e) => return page::problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let answer =
        crate::api::dead_letters::replay(State(Arc::clone(&st.admin)), Bytes::from(body)).await;
    let replayed = match answer {
        Ok(response) => {
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await;
            match bytes
                .ok()
                .and_then(|b| serde_json::from_slice::<Replayed>(&b).ok())
            {
                Some(r) => r,
                None => {
                    return page::problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The replay ran, but its answer could not be read.",
                    );
                }
            }
        }
        Err(e) => return page::api_error(e),
    };
    tracing::info!(
        replayed = replayed.replayed,
        "console: dead letters replayed"
    );
    Redirect::to(&format!(
        "/console/dead-letters?replayed={}&removed={}",
        replayed.replayed, replayed.endpoint_removed
    ))
    .into_response()
}

async fn set_paused(st: Shared, id: String, action: Action, paused: bool) -> Response {
    if let Some(refused) = action.refused_unless(Role::Operator) {
        return refused;
    }
    match crate::api::endpoints::set_paused(State(Arc::clone(&st.admin)), Path(id.clone()), paused)
        .await
    {
        Ok(_) => {
            tracing::info!(endpoint = %id, paused, "console: endpoint paused or resumed");
            // From the endpoint's own page, back to it; from the list, to the list.
            if action.field("back") == Some("endpoint") {
                let done = if paused { "paused" } else { "resumed" };
                Redirect::to(&super::endpoint::link(&id, &[("done", done)])).into_response()
            } else {
                Redirect::to("/console/endpoints").into_response()
            }
        }
        Err(e) => page::api_error(e),
    }
}

pub async fn pause(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    set_paused(st, id, action, true).await
}

pub async fn resume(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    set_paused(st, id, action, false).await
}
