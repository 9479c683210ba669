//! The endpoint page's actions beyond pause and resume: recover since a time and send a test
//! event (operator), reveal and rotate the secret and delete (admin, each after a confirmation
//! page, a plain GET that changes nothing).
//!
//! **Each checks the same role as its `/api/v1` route** (`api::access::ROUTES`) and acts
//! through the API's own handler, so the console and the API cannot disagree. A secret is
//! shown only in the answer to a confirmed POST, which is never cached (`no-store`), and **its
//! showing is logged with the endpoint and the session's role, never the secret**.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::endpoint::{self, FILE_REASON};
use super::page::{self, Chrome};
use super::{Action, Shared, Signed};
use crate::api::access::Role;
use crate::api::params::ApiError;
use crate::api::views::{Deleted, EnabledView, Recovered, Rotated, SecretView};
use crate::catalog::Origin;
use crate::store::{IngestOutcome, NewEvent};

/// The type of the events "Send a test event" makes.
pub const TEST_EVENT_TYPE: &str = "hookgate.test";
/// Their source label: not a source's id, so no endpoint's `sources` match it by chance.
pub const TEST_EVENT_SOURCE: &str = "console";

/// The JSON an API handler answered, read back.
async fn answer<T: DeserializeOwned>(result: Result<Response, ApiError>) -> Result<T, Response> {
    let response = result.map_err(page::api_error)?;
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .ok();
    bytes
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            page::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "It was done, but the answer could not be read.",
            )
        })
}

fn role(user: &Signed) -> &'static str {
    page::role_name(user.session.role)
}

/// Re-queues what the endpoint did not deliver of the events since a time, through the API's
/// recover handler (which reads the time as the events filter does: `2h` or RFC 3339).
pub async fn recover(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Operator) {
        return r;
    }
    let since = action.field("since").unwrap_or("").trim();
    if since.is_empty() {
        return page::problem(
            StatusCode::BAD_REQUEST,
            "since: say from when, like 2h or 2026-01-31T09:00:00Z.",
        );
    }
    let body = serde_json::json!({ "since": since }).to_string();
    let result = crate::api::endpoints::recover(
        State(Arc::clone(&st.admin)),
        Path(id.clone()),
        Bytes::from(body),
    )
    .await;
    let r: Recovered = match answer(result).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    tracing::info!(endpoint = %id, since, recovered = r.recovered, role = role(&action.user), "console: endpoint recovered");
    let (n, busy) = (r.recovered.to_string(), r.in_flight.to_string());
    Redirect::to(&endpoint::link(
        &id,
        &[("recovered", &n), ("in_flight", &busy)],
    ))
    .into_response()
}

/// Closes the endpoint's breaker through the API's enable handler, dead-lettering what it
/// held when the form's box is ticked.
pub async fn enable(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Operator) {
        return r;
    }
    let discard = action.field("discard_held") == Some("true");
    let body = serde_json::json!({ "discard_held": discard }).to_string();
    let result = crate::api::endpoint_health::enable(
        State(Arc::clone(&st.admin)),
        Path(id.clone()),
        Bytes::from(body),
    )
    .await;
    let e: EnabledView = match answer(result).await {
        Ok(e) => e,
        Err(page) => return page,
    };
    tracing::info!(endpoint = %id, held = e.held, discarded = e.discarded, role = role(&action.user), "console: endpoint enabled");
    let (held, discarded) = (e.held.to_string(), e.discarded.to_string());
    Redirect::to(&endpoint::link(
        &id,
        &[("enabled", &held), ("discarded", &discarded)],
    ))
    .into_response()
}

/// The publish body of a test event to `id`, as the API's publish route would take it.
pub fn test_event_body(id: &str, now_ms: u64) -> String {
    serde_json::json!({
        "type": TEST_EVENT_TYPE,
        "source": TEST_EVENT_SOURCE,
        "payload": {
            "type": TEST_EVENT_TYPE,
            "endpoint": id,
            "sent_at": crate::api::params::rfc3339(now_ms),
            "message": "A test event sent from the hookgate console.",
        },
    })
    .to_string()
}

/// Sends a `hookgate.test` event to this endpoint only, whatever its sources and types: the
/// body is checked by the publish route's own parser, then stored with one delivery, to it.
pub async fn send_test(
    State(st): State<Shared>,
    Path(id): Path<String>,
    action: Action,
) -> Response {
    if let Some(r) = action.refused_unless(Role::Operator) {
        return r;
    }
    if endpoint::find(&st, &id).is_none() {
        return endpoint::not_found(&id);
    }
    let now = st.now_ms();
    let parsed = match crate::api::publish::parse(test_event_body(&id, now).as_bytes(), None) {
        Ok(p) => p,
        Err(e) => return page::api_error(e),
    };
    let outcome = st
        .admin
        .store
        .ingest(NewEvent {
            source: parsed.source,
            event_type: Some(parsed.event_type),
            received_ms: now,
            dedup: None,
            dedup_scope: None,
            body_dedup: None,
            budget: None,
            headers: parsed.headers,
            query: String::new(),
            body: parsed.body,
            endpoints: vec![id.clone()],
            order_keys: Vec::new(),
        })
        .await;
    match outcome {
        Ok(IngestOutcome::Accepted { event_id, .. }) => {
            tracing::info!(endpoint = %id, event = %event_id, role = role(&action.user), "console: test event sent");
            let event = event_id.to_string();
            Redirect::to(&endpoint::link(&id, &[("test", &event)])).into_response()
        }
        Ok(IngestOutcome::Duplicate { .. }) => page::problem(
            StatusCode::CONFLICT,
            "The test event was taken for a duplicate and not stored.",
        ),
        Err(e) => page::api_error(e.into()),
    }
}

/// A confirmation page: what will happen, and the one button that does it.
#[derive(Template)]
#[template(path = "console/endpoint_confirm.html")]
struct Confirm {
    chrome: Chrome,
    id: String,
    what: String,
    action: String,
    button: &'static str,
    danger: bool,
    /// Rotation: the overlap field.
    overlap: bool,
}

/// The page showing a secret once.
#[derive(Template)]
#[template(path = "console/endpoint_secret.html")]
struct Shown {
    chrome: Chrome,
    id: String,
    secret: String,
    /// The whole URL (reveal) or when the old secret stops signing (rotation).
    url: String,
    previous_until: String,
}

/// Why the session may not manage the endpoint, if it may not: it takes an admin, and
/// (`editable`) an endpoint made through the API.
fn unmanageable(st: &Shared, user: &Signed, id: &str, editable: bool) -> Option<Response> {
    if !user.may(Role::Admin) {
        return Some(page::problem(
            StatusCode::FORBIDDEN,
            "Your role may not do this.",
        ));
    }
    match endpoint::find(st, id) {
        None => Some(endpoint::not_found(id)),
        Some((_, Origin::File)) if editable => {
            Some(page::problem(StatusCode::CONFLICT, FILE_REASON))
        }
        Some(_) => None,
    }
}

fn confirm(user: &Signed, title: String, c: Confirm) -> Response {
    page::render(
        StatusCode::OK,
        &Confirm {
            chrome: Chrome::new("endpoints", title, user),
            ..c
        },
    )
}

pub async fn reveal_confirm(
    State(st): State<Shared>,
    user: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unmanageable(&st, &user, &id, false) {
        return r;
    }
    confirm(
        &user,
        format!("Reveal the secret of {id}?"),
        Confirm {
            chrome: Chrome::anonymous(""),
            action: format!("{}/secret", endpoint::link(&id, &[])),
            what: "The signing secret and the whole URL will be shown on the next page, once. \
                   That they were shown is logged, with your role."
                .into(),
            button: "Reveal the secret",
            danger: false,
            overlap: false,
            id,
        },
    )
}

pub async fn reveal(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let result =
        crate::api::endpoints::secret(State(Arc::clone(&st.admin)), Path(id.clone())).await;
    let s: SecretView = match answer(result).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let Some(secret) = s.secret else {
        return page::problem(
            StatusCode::NOT_FOUND,
            "This endpoint does not sign, so it has no secret.",
        );
    };
    tracing::warn!(endpoint = %id, role = role(&action.user), "console: the secret of an endpoint was revealed to a console session");
    page::render(
        StatusCode::OK,
        &Shown {
            chrome: Chrome::new("endpoints", format!("The secret of {id}"), &action.user),
            id,
            secret,
            url: s.url.unwrap_or_default(),
            previous_until: String::new(),
        },
    )
}

pub async fn rotate_confirm(
    State(st): State<Shared>,
    user: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unmanageable(&st, &user, &id, true) {
        return r;
    }
    confirm(
        &user,
        format!("Rotate the secret of {id}?"),
        Confirm {
            chrome: Chrome::anonymous(""),
            action: format!("{}/rotate", endpoint::link(&id, &[])),
            what: "A new random secret signs every delivery from now on. The old one keeps \
                   signing beside it for the overlap, so the receiver can switch without \
                   refusing any. The new secret is shown once on the next page."
                .into(),
            button: "Rotate the secret",
            danger: true,
            overlap: true,
            id,
        },
    )
}

pub async fn rotate(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let overlap = action.field("overlap").unwrap_or("").trim();
    let body = if overlap.is_empty() {
        String::new()
    } else {
        serde_json::json!({ "overlap": overlap }).to_string()
    };
    let result = crate::api::endpoints::rotate_secret(
        State(Arc::clone(&st.admin)),
        Path(id.clone()),
        Bytes::from(body),
    )
    .await;
    let r: Rotated = match answer(result).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    tracing::warn!(endpoint = %id, role = role(&action.user), previous_until = %r.previous_until, "console: the secret of an endpoint was rotated, and the new one shown to a console session");
    page::render(
        StatusCode::OK,
        &Shown {
            chrome: Chrome::new("endpoints", format!("The new secret of {id}"), &action.user),
            id,
            secret: r.secret,
            url: String::new(),
            previous_until: page::short_time(&r.previous_until),
        },
    )
}

pub async fn delete_confirm(
    State(st): State<Shared>,
    user: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = unmanageable(&st, &user, &id, true) {
        return r;
    }
    confirm(
        &user,
        format!("Delete endpoint {id}?"),
        Confirm {
            chrome: Chrome::anonymous(""),
            action: format!("{}/delete", endpoint::link(&id, &[])),
            what: "The endpoint stops receiving events at once. What it still had to send \
                   becomes dead letters, which stay listed but cannot be replayed to it. This \
                   cannot be undone."
                .into(),
            button: "Delete the endpoint",
            danger: true,
            overlap: false,
            id,
        },
    )
}

pub async fn delete(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let result =
        crate::api::endpoints::delete(State(Arc::clone(&st.admin)), Path(id.clone())).await;
    let d: Deleted = match answer(result).await {
        Ok(d) => d,
        Err(page) => return page,
    };
    tracing::info!(endpoint = %id, dead_lettered = d.dead_lettered.unwrap_or(0), role = role(&action.user), "console: endpoint deleted");
    Redirect::to("/console/endpoints").into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_event_is_a_valid_publish_body_of_its_own_type() {
        let body = super::test_event_body("shop", 1_795_564_800_000);
        let parsed = crate::api::publish::parse(body.as_bytes(), None).expect("valid");
        assert_eq!(parsed.event_type, "hookgate.test");
        assert_eq!(parsed.source, "console");
        let payload: serde_json::Value = serde_json::from_slice(&parsed.body).expect("json");
        assert_eq!(payload["endpoint"], "shop");
        assert_eq!(payload["sent_at"], "2026-11-25T00:00:00.000Z");
    }
}
