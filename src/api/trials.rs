//! Trying an endpoint's filter and transform without sending anything:
//! `POST /api/v1/endpoints/{id}/test-filter` and `POST /api/v1/endpoints/{id}/test-transform`,
//! each on a stored event (`event_id`) or on a payload given in the body, with the endpoint's
//! own filter or program or one given to try before saving it. An event's routing, built from
//! the same answers ([`miss_reason`]), is in `super::routing`.
//!
//! `test_filter_alone` and `test_transform_alone` try a filter or program that is on no
//! endpoint yet (the console's form for a new endpoint has no id to name), read, checked and
//! answered by the same code as the two routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::grammar::EntryId;
use super::params::{self, ApiError, bad_request};
use super::views::ErrorBody;
use super::{AdminState, ApiResult};
use crate::delivery::http::request::{self, Prepared};
use crate::delivery::http::reshape::{self, Reshaped};
use crate::filter::payload::PayloadFilter;
use crate::filter::{Miss, Request};
use crate::model::Endpoint;
use crate::model::event::{Event, Payload};
use crate::respond;

/// What `test-filter` tries: a stored event, or a payload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFilterBody {
    /// A stored event: its body, headers, query string, source and type, as they arrived.
    pub event_id: Option<String>,
    /// A payload's body (any JSON), instead of an event.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// The payload's headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// The payload's query string (`a=1&b=2`).
    pub query: Option<String>,
    /// The payload's source and type: given, the endpoint's subscription is checked too.
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// A filter to try instead of the endpoint's (as an unsaved edit would be).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// Whether an event or payload goes to an endpoint, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilterVerdict {
    pub matched: bool,
    /// What turned it away: `source`, `event_type` or `filter`; null when it matched.
    pub stage: Option<String>,
    /// The filter clause that failed (`body.action.$in`); null unless `stage` is `filter`.
    pub clause: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
}

/// What `test-transform` tries: a stored event, or a payload.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestTransformBody {
    /// A stored event, as a delivery to this endpoint would carry it.
    pub event_id: Option<String>,
    /// A payload's body instead: a string is sent as it is, any other JSON as JSON.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// The payload's headers (besides the endpoint's own).
    pub headers: Option<BTreeMap<String, String>>,
    pub event_type: Option<String>,
    /// A program to try instead of the endpoint's.
    pub transform: Option<String>,
}

/// What a transform made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransformTrial {
    /// `send`, `drop` (the program output null) or `error` (the attempt would fail).
    pub result: String,
    /// The body that would be sent (as text; bytes that are not UTF-8 are replaced).
    pub body: Option<String>,
    /// The headers it would carry before hookgate's own; the endpoint's configured header
    /// values are shown as `***`.
    pub headers: BTreeMap<String, String>,
    pub event_type: Option<String>,
    /// `transform: …` when the run failed.
    pub error: Option<String>,
}

/// A stored event with its payload, or a 404 (a 400 for an id of the wrong shape).
async fn stored_event(st: &AdminState, id: &str) -> Result<(Event, Payload), ApiError> {
    let parsed = super::grammar::event_id(id)
        .ok_or_else(|| bad_request("event_id", format!("{id:?} is not an event id")))?;
    st.store
        .event(parsed)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_event", format!("no event {id}")))
}

/// Headers given in a body, as the store keeps them (lower-case names); a name or value a
/// request could not carry is a 400 naming it.
fn given_headers(
    headers: Option<BTreeMap<String, String>>,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    headers
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let key = format!("headers.{name}");
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad_request(&key, "is not a header name"))?;
            http::HeaderValue::from_str(&value)
                .map_err(|_| bad_request(&key, "is not a valid header value"))?;
            Ok((name.to_ascii_lowercase(), value.into_bytes()))
        })
        .collect()
}

/// Refuses a body that names an event and a payload, or neither.
fn one_sample(event_id: bool, payload: bool) -> Result<(), ApiError> {
    match (event_id, payload) {
        (true, true) => Err(bad_request(
            "event_id",
            "give an event id or a payload (body, headers, …), not both",
        )),
        (false, false) => Err(bad_request("body", "give an event_id, or a payload body")),
        _ => Ok(()),
    }
}

/// The sentence for a miss.
pub fn miss_reason(endpoint: &Endpoint, req: &Request<'_>, miss: &Miss) -> String {
    match miss {
        Miss::Source if endpoint.sources.is_empty() => format!(
            "events of {:?} go only to endpoints that name it in sources",
            req.source
        ),
        Miss::Source => format!(
            "it takes events from {:?}, not from {:?}",
            endpoint.sources, req.source
        ),
        Miss::EventType => match req.event_type {
            None => "the event has no type, and the endpoint lists event types".into(),
            Some(t) => format!(
                "its event types {:?} do not match {t:?}",
                endpoint
                    .event_types
                    .iter()
                    .flatten()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
            ),
        },
        Miss::Filter(r) => r.reason.clone(),
    }
}

fn verdict(endpoint: &Endpoint, req: &Request<'_>, result: Result<(), Miss>) -> FilterVerdict {
    match result {
        Ok(()) => FilterVerdict {
            matched: true,
            stage: None,
            clause: None,
            reason: if endpoint.filter.is_some() {
                "matches".into()
            } else {
                "the endpoint has no filter: it takes every event it subscribes to".into()
            },
        },
        Err(miss) => FilterVerdict {
            matched: false,
            stage: Some(miss.stage().into()),
            clause: match &miss {
                Miss::Filter(r) => Some(r.clause.clone()),
                _ => None,
            },
            reason: miss_reason(endpoint, req, &miss),
        },
    }
}

/// Whether an event, or a payload, goes to the endpoint, and if not, why: the stage and the
/// filter clause. With `filter`, that filter is tried in place of the endpoint's.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/test-filter", operation_id = "test_filter", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body(content = TestFilterBody, description = "An event_id, or a payload (body, headers, query, and optionally source and event_type)"),
    responses((status = 200, body = FilterVerdict), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test_filter(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: TestFilterBody = params::json_body(&body)?;
    let mut endpoint = super::endpoints::find(&st, &id)?;
    if let Some(doc) = &b.filter {
        endpoint.filter = Some(Arc::new(compile_filter(doc)?));
    }
    let sample = FilterSample::read(&st, b).await?;
    let req = sample.request();
    // A stored event, or a payload naming its source, is judged whole; without a source, the
    // subscription is not in question: the filter alone.
    let result = if sample.whole {
        crate::filter::explain(&endpoint, &req)
    } else {
        crate::filter::passes(&endpoint, &req)
    };
    Ok(respond::typed(
        StatusCode::OK,
        &verdict(&endpoint, &req, result),
    ))
}

/// `test-filter` for a filter that is on no endpoint yet (the console's form for a new
/// endpoint, which has no id to name): `b.filter` alone on the stored event or payload, as
/// `test-filter` tries a payload that names no source. Compiled and read as `test-filter`
/// does, with its errors.
pub async fn test_filter_alone(
    st: &AdminState,
    b: TestFilterBody,
) -> Result<FilterVerdict, ApiError> {
    let doc = b
        .filter
        .as_ref()
        .ok_or_else(|| bad_request("filter", "give a filter to try"))?;
    let filter = compile_filter(doc)?;
    let sample = FilterSample::read(st, b).await?;
    Ok(match crate::filter::check(&filter, &sample.request()) {
        Ok(()) => FilterVerdict {
            matched: true,
            stage: None,
            clause: None,
            reason: "matches".into(),
        },
        Err(r) => FilterVerdict {
            matched: false,
            stage: Some("filter".into()),
            clause: Some(r.clause),
            reason: r.reason,
        },
    })
}

/// A filter given to try, compiled as the endpoint's would be (a 400 naming the path in it).
fn compile_filter(doc: &Value) -> Result<PayloadFilter, ApiError> {
    crate::config::compile_filter("filter", doc).map_err(|e| bad_request(&e.key, e.problem))
}

/// What `test-filter` judges: a stored event's parts, or a payload's.
struct FilterSample {
    source: String,
    event_type: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
    query: String,
    /// A stored event, or a payload that names its source: the subscription is in question
    /// too.
    whole: bool,
}

impl FilterSample {
    async fn read(st: &AdminState, b: TestFilterBody) -> Result<FilterSample, ApiError> {
        let payload = b.body.is_some()
            || b.headers.is_some()
            || b.query.is_some()
            || b.source.is_some()
            || b.event_type.is_some();
        one_sample(b.event_id.is_some(), payload)?;
        if let Some(event_id) = &b.event_id {
            let (event, payload) = stored_event(st, event_id).await?;
            return Ok(FilterSample {
                source: event.source,
                event_type: event.event_type,
                headers: payload.headers,
                body: payload.body,
                query: payload.query,
                whole: true,
            });
        }
        Ok(FilterSample {
            whole: b.source.is_some(),
            source: b.source.unwrap_or_default(),
            event_type: b.event_type,
            headers: given_headers(b.headers)?,
            body: match &b.body {
                Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
                None => Bytes::new(),
            },
            query: b.query.unwrap_or_default(),
        })
    }

    fn request(&self) -> Request<'_> {
        Request {
            source: &self.source,
            event_type: self.event_type.as_deref(),
            headers: &self.headers,
            body: &self.body,
            query: &self.query,
        }
    }
}

/// What the endpoint's transform (or `transform`, tried in its place) makes of a delivery of
/// an event, or of a payload: the body and headers it would send, a drop, or the error that
/// would fail the attempt. Runs in the same bounded worker processes as deliveries.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/test-transform", operation_id = "test_transform", tag = "endpoints",
    params(("id" = EntryId, Path)),
    request_body(content = TestTransformBody, description = "An event_id, or a payload (body, headers, event_type)"),
    responses((status = 200, body = TransformTrial), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test_transform(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: TestTransformBody = params::json_body(&body)?;
    let endpoint = super::endpoints::find(&st, &id)?;
    let program: Arc<str> = match b.transform {
        Some(text) => check_program(text)?,
        None => endpoint.transform.clone().ok_or_else(|| {
            bad_request(
                "transform",
                "the endpoint has no transform: give one to try",
            )
        })?,
    };
    let payload = b.body.is_some() || b.headers.is_some() || b.event_type.is_some();
    one_sample(b.event_id.is_some(), payload)?;
    let prepared = if let Some(event_id) = &b.event_id {
        let (event, payload) = stored_event(&st, event_id).await?;
        let scheme = st
            .routes
            .current()
            .sources
            .get(&event.source)
            .map(|s| s.scheme);
        request::prepare(
            &endpoint,
            scheme,
            &payload.headers,
            &payload.body,
            event.event_type.as_deref(),
        )
    } else {
        given_payload(&endpoint.headers, b.body, b.headers, b.event_type)?
    };
    let result = reshape::reshape(&st.transforms, &endpoint.id, &program, prepared).await;
    Ok(respond::typed(
        StatusCode::OK,
        &trial(&endpoint.headers, result),
    ))
}

/// The worker pool's key for programs tried on no endpoint: no endpoint id can be it (ids have
/// no spaces), so such trials queue apart from every endpoint's deliveries.
const ALONE_KEY: &str = "a new endpoint";

/// `test-transform` for a program that is on no endpoint yet (the console's form for a new
/// endpoint): `b.transform` on the payload, or on a stored event as a delivery from an endpoint
/// without headers of its own would carry it (its body, type and `content-type`; which other
/// headers are forwarded depends on the endpoint). Checked and run as `test-transform` does.
pub async fn test_transform_alone(
    st: &AdminState,
    b: TestTransformBody,
) -> Result<TransformTrial, ApiError> {
    let text = b
        .transform
        .ok_or_else(|| bad_request("transform", "give a program to try"))?;
    let program = check_program(text)?;
    let payload = b.body.is_some() || b.headers.is_some() || b.event_type.is_some();
    one_sample(b.event_id.is_some(), payload)?;
    let prepared = if let Some(event_id) = &b.event_id {
        let (event, payload) = stored_event(st, event_id).await?;
        Prepared {
            headers: crate::delivery::http::request::forwarded(None, None, &payload.headers),
            body: payload.body,
            event_type: event.event_type,
        }
    } else {
        given_payload(&[], b.body, b.headers, b.event_type)?
    };
    let result = reshape::reshape(&st.transforms, ALONE_KEY, &program, prepared).await;
    Ok(trial(&[], result))
}

/// A program given to try, checked as an endpoint's would be (a 400 naming its place).
fn check_program(text: String) -> Result<Arc<str>, ApiError> {
    crate::transform::Program::check(&text).map_err(|e| {
        let problem = e.to_string();
        let problem = problem.strip_prefix("transform: ").unwrap_or(&problem);
        bad_request("transform", problem)
    })?;
    Ok(Arc::from(text))
}

/// What a run made, as `test-transform` answers it; `configured` are the endpoint's own
/// headers, whose values are not shown.
fn trial(
    configured: &[(http::HeaderName, http::HeaderValue)],
    result: Result<Reshaped, reshape::Failed>,
) -> TransformTrial {
    match result {
        Ok(Reshaped::Send(p)) => TransformTrial {
            result: "send".into(),
            body: Some(String::from_utf8_lossy(&p.body).into_owned()),
            headers: shown_headers(configured, &p),
            event_type: p.event_type,
            error: None,
        },
        Ok(Reshaped::Drop) => TransformTrial {
            result: "drop".into(),
            body: None,
            headers: BTreeMap::new(),
            event_type: None,
            error: None,
        },
        Err(failed) => TransformTrial {
            result: "error".into(),
            body: None,
            headers: BTreeMap::new(),
            event_type: None,
            error: Some(failed.0),
        },
    }
}

/// A payload given to `test-transform` as a delivery would carry it: the endpoint's headers
/// (`configured`), then the given ones; a JSON body (not a string) is `application/json`
/// unless they say.
fn given_payload(
    configured: &[(http::HeaderName, http::HeaderValue)],
    body: Option<Value>,
    headers: Option<BTreeMap<String, String>>,
    event_type: Option<String>,
) -> Result<Prepared, ApiError> {
    let mut given = given_headers(headers)?;
    let body = match body {
        None => Bytes::new(),
        Some(Value::String(text)) => Bytes::from(text),
        Some(v) => {
            if !given.iter().any(|(n, _)| n == "content-type") {
                given.push(("content-type".into(), b"application/json".to_vec()));
            }
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
    };
    let mut all = configured.to_vec();
    all.extend(given.into_iter().filter_map(|(n, v)| {
        Some((
            http::HeaderName::from_bytes(n.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(&v).ok()?,
        ))
    }));
    Ok(Prepared {
        headers: all,
        body,
        event_type,
    })
}

/// A prepared request's headers as the API shows them: an endpoint's configured header values
/// may be credentials, so those pass through as `***`.
fn shown_headers(
    configured: &[(http::HeaderName, http::HeaderValue)],
    p: &Prepared,
) -> BTreeMap<String, String> {
    p.headers
        .iter()
        .map(|(n, v)| {
            let shown = if configured.iter().any(|(cn, cv)| cn == n && cv == v) {
                "***".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (n.as_str().to_string(), shown)
        })
        .collect()
}
