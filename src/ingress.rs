//! Ingress: `POST /in/{source_id}`. Reads the body up to the limit, verifies it, works out the
//! event type, dedup key and matching endpoints, and hands it all to the store. It answers
//! only from the store's result: **202 only after the commit returned** (or the source's
//! configured `response`); 200 for a duplicate; 401/404/408/413 for bad requests and 503 when
//! the store cannot take it, **none of which stores anything**.
//!
//! Providers' endpoint-verification handshakes (`verify::handshake`) are answered here by the
//! gateway itself, on POST before or after verification as the scheme says, and on
//! `GET /in/{source_id}` for the schemes that check with a GET. **A handshake is never stored
//! and never delivered.**

pub mod extract;
pub mod throttle;

use std::sync::Arc;

use tracing::Instrument;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use crate::clock::SharedClock;
use crate::respond;
use crate::store::{IngestOutcome, Store, StoreError};
use crate::{filter, verify};

/// What the ingress handlers share.
pub struct IngressState {
    pub routes: Arc<filter::RouteTable>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    pub store: Store,
    pub clock: SharedClock,
    pub max_body_bytes: u64,
    /// The whole body must arrive within this of the handler starting to read it.
    pub body_timeout: std::time::Duration,
    /// Verification failures per client address.
    pub failures: throttle::FailureThrottle,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// One permit per byte of body held, from reading it until the writer is done with it
    /// (`ingress.max_buffered_bytes`).
    pub buffered: Arc<tokio::sync::Semaphore>,
}

pub fn router(state: Arc<IngressState>) -> Router {
    Router::new()
        .route("/in/{source_id}", post(receive).get(receive))
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .fallback(|| async {
            respond::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "webhooks are sent to /in/{source_id}",
            )
        })
        .with_state(state)
}

/// Counts every request by source and outcome, and how long accepted ones took to commit.
async fn receive(
    state: State<Arc<IngressState>>,
    source_id: Path<String>,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let st = Arc::clone(&state.0);
    // One snapshot for the whole request: the label and the handling agree on the source.
    let routes = st.routes.current();
    // Unknown sources share one label: the name comes from the client.
    let label = if routes.sources.contains_key(source_id.0.as_str()) {
        source_id.0.clone()
    } else {
        crate::telemetry::UNKNOWN_SOURCE.to_string()
    };
    let span = tracing::info_span!("webhook", source = %label);
    let response = handle(state, routes, source_id, request)
        .instrument(span)
        .await;
    let outcome = match (
        response.extensions().get::<Outcome>(),
        response.extensions().get::<respond::ErrorCode>(),
    ) {
        (Some(o), _) => o.0.as_str(),
        (None, Some(c)) => c.0.as_str(),
        (None, None) => "error",
    };
    st.metrics.received(&label, outcome);
    if outcome == "accepted" {
        st.metrics
            .ingest_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// What a request is counted under when it was not refused: `accepted`, `duplicate`, or
/// `handshake_<kind>`. Refusals are counted by their [`respond::ErrorCode`].
#[derive(Debug, Clone)]
struct Outcome(String);

fn with_outcome(mut r: Response, outcome: impl Into<String>) -> Response {
    r.extensions_mut().insert(Outcome(outcome.into()));
    r
}

/// The gateway's own answer to a handshake; echoed values are never sniffed as HTML.
fn handshake(source: &crate::model::Source, reply: verify::handshake::Reply) -> Response {
    tracing::debug!(source = %source.id, kind = reply.kind, "handshake answered");
    let mut r = Response::new(axum::body::Body::from(reply.body));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    if let Some(ct) = reply.content_type {
        h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    with_outcome(r, format!("handshake_{}", reply.kind))
}

/// `GET /in/{source}`: the handshakes of the source's scheme, or 405.
fn handle_get(
    st: &IngressState,
    source: &crate::model::Source,
    parts: &http::request::Parts,
) -> Response {
    let inbound = verify::Inbound {
        headers: &parts.headers,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        body: &[],
        now_secs: i64::try_from(st.clock.now_ms() / 1000).unwrap_or(i64::MAX),
    };
    match source.verifier.answer_get(&inbound) {
        Ok(reply) => handshake(source, reply),
        Err(e) => handshake_refused(source, e),
    }
}

/// A handshake that is not answered: the status says why, and nothing is echoed.
fn handshake_refused(
    source: &crate::model::Source,
    e: verify::handshake::HandshakeError,
) -> Response {
    use verify::handshake::HandshakeError;
    match e {
        HandshakeError::Unauthorized(e) => {
            tracing::info!(source = %source.id, code = e.code(), reason = %e, "handshake refused");
            respond::error(StatusCode::UNAUTHORIZED, e.code(), e)
        }
        HandshakeError::Forbidden(why) => {
            tracing::info!(source = %source.id, reason = %why, "handshake refused");
            respond::error(StatusCode::FORBIDDEN, "handshake_refused", why)
        }
        HandshakeError::BadRequest(why) => {
            respond::error(StatusCode::BAD_REQUEST, "invalid_request", why)
        }
        HandshakeError::NotAllowed => method_not_allowed(),
    }
}

fn method_not_allowed() -> Response {
    respond::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "webhooks are sent with POST",
    )
}

/// The answer to an accepted or duplicate event: the source's configured one, else JSON.
fn stored(
    source: &crate::model::Source,
    status: StatusCode,
    body: serde_json::Value,
    outcome: &str,
) -> Response {
    let r = match &source.response {
        None => respond::json(status, body),
        Some(cfg) => {
            let mut r = Response::new(axum::body::Body::from(cfg.body.clone()));
            *r.status_mut() = StatusCode::from_u16(cfg.status).unwrap_or(StatusCode::OK);
            if let Some(ct) = cfg
                .content_type
                .as_deref()
                .and_then(|c| http::HeaderValue::from_str(c).ok())
            {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
    };
    with_outcome(r, outcome)
}

async fn handle(
    State(st): State<Arc<IngressState>>,
    routes: Arc<filter::Routes>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let Some(source) = routes.sources.get(&source_id) else {
        return respond::error(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("no source {source_id:?}"),
        );
    };
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<crate::listener::PeerAddr>()
        .map(|p| {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            throttle::client_address(p.0.ip(), forwarded, &st.trusted_proxies)
        });
    if let Some(ip) = client
        && let Err(wait) = st.failures.check(ip, st.clock.now_ms())
    {
        // Refused before the body is read: a flood of junk costs no more than its headers.
        return respond::too_many(
            "too_many_failures",
            "too many requests from this address failed verification; try again later",
            wait,
        );
    }
    let failed = |st: &IngressState| {
        if let Some(ip) = client {
            st.failures.charge(ip, st.clock.now_ms());
        }
    };
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let r = handle_get(&st, source, &parts);
        if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            failed(&st);
        }
        return r;
    }
    // Held from here until the writer is done with the event: memory stays bounded however
    // many clients send large bodies at once, or hang up while theirs wait to be written.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let hold = declared.unwrap_or(st.max_body_bytes).min(st.max_body_bytes);
    let Ok(budget) = Arc::clone(&st.buffered)
        .try_acquire_many_owned(u32::try_from(hold.max(1)).unwrap_or(u32::MAX))
    else {
        return respond::unavailable(
            "busy",
            "too many request bodies are held right now; try again shortly",
            1,
        );
    };
    let reading = read_body(&parts.headers, body, st.max_body_bytes);
    let body = match tokio::time::timeout(st.body_timeout, reading).await {
        Ok(Ok(b)) => b,
        Ok(Err(r)) => return r,
        Err(_) => {
            return respond::error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {}",
                    humantime::format_duration(st.body_timeout)
                ),
            );
        }
    };
    let now_ms = st.clock.now_ms();
    let inbound = verify::Inbound {
        headers: &parts.headers,
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        body: &body,
        now_secs: i64::try_from(now_ms / 1000).unwrap_or(i64::MAX),
    };
    if let Some(reply) = source.verifier.answer_before_verify(&inbound) {
        return handshake(source, reply);
    }
    if let Err(e) = source.verifier.verify(&inbound) {
        tracing::info!(source = %source.id, code = e.code(), reason = %e, "webhook refused");
        failed(&st);
        return respond::error(StatusCode::UNAUTHORIZED, e.code(), e);
    }
    match source.verifier.answer_after_verify(&inbound) {
        None => {}
        Some(Ok(reply)) => return handshake(source, reply),
        Some(Err(e)) => return handshake_refused(source, e),
    }
    // Charged only for verified requests: a stranger's junk cannot use up the quota and get
    // the provider's genuine webhooks refused.
    if let Some(Err(wait)) = source.limiter.as_ref().map(|l| l.check()) {
        return respond::too_many(
            "rate_limited",
            format!(
                "source {:?} takes fewer requests per second; try again later",
                source.id
            ),
            wait.as_secs_f64().ceil() as u64,
        );
    }
    let scheme_type = source.verifier.event_type(&inbound);

    let mut json = extract::LazyJson::new(&body);
    let defaults = verify::defaults(source.scheme);
    let pick = |configured: Option<&verify::FieldRef>,
                fallback: &[verify::Field<'static>],
                json: &mut extract::LazyJson<'_>| match configured {
        Some(f) => extract::field(f.as_field(), &parts.headers, json),
        None => extract::first_field(fallback, &parts.headers, json),
    };
    let event_type =
        scheme_type.or_else(|| pick(source.event_type.as_ref(), defaults.event_type, &mut json));
    let dedup_key = pick(source.dedup.as_ref(), defaults.dedup, &mut json);
    for (name, value) in [("event type", &event_type), ("dedup key", &dedup_key)] {
        if let Some(why) = value.as_deref().and_then(extract::unstorable) {
            return respond::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the {name} {why}"),
            );
        }
    }

    let event = crate::ingest::Incoming {
        source: source.id.clone(),
        event_type,
        received_ms: now_ms,
        dedup: dedup_key.map(|k| (k, source.dedup_window_ms())),
        dedup_scope: None,
        budget: Some(Arc::new(budget)),
        body_dedup: source.dedup_body.then(|| {
            use sha2::Digest;
            (
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body))),
                source.dedup_window_ms(),
            )
        }),
        headers: parts
            .headers
            .iter()
            .filter(|(n, _)| Some(*n) != source.verifier.credential_header())
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        parsed: json.into_parsed(),
        body,
    };
    match crate::ingest::ingest(&st.store, &routes, event).await {
        // The store wakes the lanes of the endpoints that got work.
        Ok(IngestOutcome::Accepted { event_id, .. }) => stored(
            source,
            StatusCode::ACCEPTED,
            json!({ "event_id": event_id.to_string() }),
            "accepted",
        ),
        Ok(IngestOutcome::Duplicate { event_id }) => stored(
            source,
            StatusCode::OK,
            json!({ "event_id": event_id.to_string(), "duplicate": true }),
            "duplicate",
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// Every store failure is a 503: the client keeps the event and sends it again later.
fn store_unavailable(e: &StoreError) -> Response {
    let code = match e {
        StoreError::Busy => "busy",
        StoreError::Backlog { .. } => "backlog_full",
        StoreError::Closed => "shutting_down",
        StoreError::Storage(_) | StoreError::Corrupt(_) | StoreError::BadCursor => {
            "store_unavailable"
        }
    };
    tracing::warn!(error = %e, "webhook not stored");
    respond::unavailable(code, format!("not stored: {e}"), 1)
}

/// Reads the body, refusing it with 413 as soon as it passes the limit (by its declared
/// length when there is one, else while reading), without buffering past the limit.
async fn read_body(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    limit: u64,
) -> Result<Bytes, Response> {
    let too_large = || {
        respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(respond::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot read the body: {e}"),
        )),
    }
}
