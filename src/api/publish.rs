//! `POST /api/v1/events`: an internal producer publishes an event, which is routed and stored
//! exactly as a verified webhook would be (one transaction, 202 only after the commit).
//!
//! Body: `{"type": "...", "payload": <any JSON>, "source": "...", "headers": {"name": "value"}}`;
//! `source` defaults to `api` and is a routing label (endpoints with `sources = [...]` match
//! it); `hookgate` is refused, being reserved for hookgate's own events. The `Idempotency-Key` header deduplicates for three days: the same key answers 200 with
//! the first `event_id` and stores nothing. Keys live apart from providers' delivery ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::grammar::{self, PublishSource};
use super::params::{self, ApiError};
use super::views::{Accepted, ErrorBody};
use super::{AdminState, ApiResult};
use crate::ingress::extract::MAX_FIELD_LEN;
use crate::respond;
use crate::store::{IngestOutcome, StoreError};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW_MS: u64 = 3 * 24 * 3600 * 1000;
/// The source label of events published without one.
pub const DEFAULT_SOURCE: &str = "api";

/// The longest event type, in characters.
pub const MAX_TYPE_CHARS: usize = MAX_FIELD_LEN;

/// An event from an internal producer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The event type: 1 to 512 characters, none of them NUL.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 512, pattern = "^[^\\u0000]+$")]
    event_type: String,
    /// Any JSON (an object, an array, a string, a number, a boolean or null); delivered as the
    /// body, `application/json`.
    #[schema(schema_with = any_json)]
    payload: serde_json::Value,
    /// A routing label; default `api`. Not `hookgate`, which only hookgate's own events carry.
    #[schema(value_type = Option<PublishSource>)]
    source: Option<String>,
    /// Headers kept with the event (endpoints pass on those in their `forward_headers`): any
    /// HTTP header names but `content-type`, `hookgate-…` and those of the connection or of the
    /// outbound signature, in either case.
    #[serde(default)]
    #[schema(schema_with = publish_headers)]
    headers: BTreeMap<String, String>,
}

/// Any JSON value: a schema with no constraint.
fn any_json() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .description(Some(
            "Any JSON (an object, an array, a string, a number, a boolean or null); delivered as the body, `application/json`.",
        ))
        .build()
}

/// The `headers` of a published event: names as [`grammar::publish_header_name_pattern`],
/// values as [`grammar::HEADER_VALUE_PATTERN`].
fn publish_headers() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Headers kept with the event (endpoints pass on those in their `forward_headers`): any HTTP header names but `content-type`, `hookgate-…` and those of the connection or of the outbound signature, in either case.",
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(grammar::publish_header_name_pattern()))
                .max_length(Some(65_535)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            utoipa::openapi::Ref::from_schema_name("HeaderValue").into(),
        )))
        .build()
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
    // No NUL: PostgreSQL's text cannot hold one (see `ingress::extract::unstorable`).
    if !(1..=MAX_TYPE_CHARS).contains(&p.event_type.chars().count()) || p.event_type.contains('\0')
    {
        return Err(params::bad_request(
            "type",
            format!("must be 1 to {MAX_TYPE_CHARS} characters, none of them NUL"),
        ));
    }
    let source = p.source.unwrap_or_else(|| DEFAULT_SOURCE.to_string());
    if !grammar::entry_id_ok(&source) {
        return Err(params::bad_request(
            "source",
            "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    // Subscribers to `hookgate` trust its events to be hookgate's own reports.
    if !grammar::publish_source_ok(&source) {
        return Err(params::bad_request(
            "source",
            format!("{source:?} is reserved for hookgate's own events"),
        ));
    }
    let mut stored_headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    for (name, value) in &p.headers {
        let field = format!("headers.{name}");
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| params::bad_request(&field, "is not a header name"))?;
        if !grammar::publish_header_name_ok(name) {
            return Err(params::bad_request(&field, "is set by hookgate"));
        }
        if !grammar::header_value_ok(value) {
            return Err(params::bad_request(&field, "is not a valid header value"));
        }
        stored_headers.push((n.as_str().to_string(), value.as_bytes().to_vec()));
    }
    let idempotency_key = match idempotency_key {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| grammar::idempotency_key_ok(k))
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
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~](?:[\t -~]{0,510}[!-~])?$",
        description = "1 to 512 visible ASCII characters (spaces inside). The same key within 3 days answers 200 with the first event_id")),
    responses(
        (status = 202, description = "Stored", body = Accepted),
        (status = 200, description = "A duplicate of an earlier Idempotency-Key", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 503, description = "Not stored: the store is over its backlog or failing", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn publish(
    State(st): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = parse(&body, headers.get("idempotency-key"))?;
    let event = crate::ingest::Incoming {
        body_dedup: None,
        budget: None,
        // Idempotency keys are deduplicated in their own namespace, apart from webhooks'.
        dedup: p.idempotency_key.map(|k| (k, IDEMPOTENCY_WINDOW_MS)),
        dedup_scope: Some(format!("publish:{}", p.source)),
        source: p.source,
        event_type: Some(p.event_type),
        received_ms: st.now_ms(),
        headers: p.headers,
        // A published event has no request of its own: filters see an empty query.
        query: String::new(),
        parsed: None,
        body: p.body,
    };
    let label = event.source.clone();
    let result = crate::ingest::ingest(&st.store, &st.routes.current(), event).await;
    st.metrics.received(
        &label,
        match &result {
            Ok(IngestOutcome::Accepted { .. }) => "accepted",
            Ok(IngestOutcome::Duplicate { .. }) => "duplicate",
            Err(_) => "store_unavailable",
        },
    );
    match result {
        Ok(IngestOutcome::Accepted { event_id, .. }) => Ok(respond::typed(
            StatusCode::ACCEPTED,
            &Accepted {
                event_id: event_id.to_string(),
                duplicate: None,
            },
        )),
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
