//! `POST /api/v1/events`: an internal producer publishes an event, which is routed and stored
//! exactly as a verified webhook would be (one transaction, 202 only after the commit).
//!
//! Body: `{"type": "...", "payload": <any JSON>, "source": "...", "headers": {"name": "value"}}`;
//! `source` defaults to `api` and is a routing label (endpoints with `sources = [...]` match
//! it). The `Idempotency-Key` header deduplicates for three days: the same key answers 200 with
//! the first `event_id` and stores nothing. Keys live apart from providers' delivery ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::params::{self, ApiError};
use super::views::{Accepted, ErrorBody};
use super::{AdminState, ApiResult};
use crate::filter;
use crate::ingress::extract::MAX_FIELD_LEN;
use crate::respond;
use crate::store::{IngestOutcome, NewEvent, StoreError};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW_MS: u64 = 3 * 24 * 3600 * 1000;
/// The source label of events published without one.
pub const DEFAULT_SOURCE: &str = "api";

/// An event from an internal producer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    #[serde(rename = "type")]
    event_type: String,
    /// Any JSON; delivered as the body, `application/json`.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// A routing label; default `api`.
    source: Option<String>,
    /// Headers kept with the event (endpoints pass on those in their `forward_headers`).
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A publish request, checked: what is stored.
#[derive(Debug)]
pub struct Parsed {
    pub event_type: String,
    pub source: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    pub idempotency_key: Option<String>,
}

/// Parses and checks a publish body and its `Idempotency-Key`; errors name the field.
pub fn parse(body: &[u8], idempotency_key: Option<&http::HeaderValue>) -> Result<Parsed, ApiError> {
    let p: Publish = params::json_body(body)?;
    if p.event_type.is_empty() || p.event_type.len() > MAX_FIELD_LEN {
        return Err(params::bad_request(
            "type",
            format!("must be 1 to {MAX_FIELD_LEN} bytes"),
        ));
    }
    let source = p.source.unwrap_or_else(|| DEFAULT_SOURCE.to_string());
    let source_ok = !source.is_empty()
        && source.len() <= 64
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !source_ok {
        return Err(params::bad_request(
            "source",
            "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    let mut stored_headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    for (name, value) in &p.headers {
        let field = format!("headers.{name}");
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| params::bad_request(&field, "is not a header name"))?;
        if n == http::header::CONTENT_TYPE || crate::config::is_reserved_header(n.as_str()) {
            return Err(params::bad_request(&field, "is set by hookgate"));
        }
        http::HeaderValue::from_str(value)
            .map_err(|_| params::bad_request(&field, "is not a valid header value"))?;
        stored_headers.push((n.as_str().to_string(), value.as_bytes().to_vec()));
    }
    let idempotency_key = match idempotency_key {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_FIELD_LEN)
                .ok_or_else(|| {
                    params::bad_request(
                        "Idempotency-Key",
                        format!("must be 1 to {MAX_FIELD_LEN} visible characters"),
                    )
                })?;
            Some(key.to_string())
        }
    };
    Ok(Parsed {
        body: Bytes::from(serde_json::to_vec(&p.payload).unwrap_or_default()),
        event_type: p.event_type,
        source,
        headers: stored_headers,
        idempotency_key,
    })
}

/// Publishes an event: stored with its deliveries before the answer.
#[utoipa::path(post, path = "/api/v1/events", operation_id = "publish_event", tag = "events",
    request_body = Publish,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key within 3 days answers 200 with the first event_id")),
    responses(
        (status = 202, description = "Stored", body = Accepted),
        (status = 200, description = "A duplicate of an earlier Idempotency-Key", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn publish(
    State(st): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = parse(&body, headers.get("idempotency-key"))?;
    let endpoints = filter::route(
        &st.routes.current().endpoints,
        &p.source,
        Some(&p.event_type),
    );
    let event = NewEvent {
        body_dedup: None,
        // Idempotency keys are deduplicated in their own namespace, apart from webhooks'.
        dedup: p.idempotency_key.map(|k| (k, IDEMPOTENCY_WINDOW_MS)),
        dedup_scope: Some(format!("publish:{}", p.source)),
        source: p.source,
        event_type: Some(p.event_type),
        received_ms: st.now_ms(),
        headers: p.headers,
        body: p.body,
        endpoints,
    };
    let label = event.source.clone();
    let result = st.store.ingest(event).await;
    st.metrics.received(
        &label,
        match &result {
            Ok(IngestOutcome::Accepted { .. }) => "accepted",
            Ok(IngestOutcome::Duplicate { .. }) => "duplicate",
            Err(_) => "store_unavailable",
        },
    );
    match result {
        Ok(IngestOutcome::Accepted {
            event_id,
            deliveries,
        }) => {
            for (_, endpoint) in &deliveries {
                st.dispatcher.wake(endpoint);
            }
            Ok(respond::typed(
                StatusCode::ACCEPTED,
                &Accepted {
                    event_id: event_id.to_string(),
                    duplicate: None,
                },
            ))
        }
        Ok(IngestOutcome::Duplicate { event_id }) => Ok(respond::typed(
            StatusCode::OK,
            &Accepted {
                event_id: event_id.to_string(),
                duplicate: Some(true),
            },
        )),
        Err(e @ (StoreError::Busy | StoreError::Backlog { .. })) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("not stored: {e}"),
        )),
        Err(e) => Err(e.into()),
    }
}
