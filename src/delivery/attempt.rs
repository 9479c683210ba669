//! One attempt: the request a receiver gets, and what its answer means.
//!
//! The request carries the original body and content type, the Standard Webhooks headers
//! (`webhook-id` is the event id, the same on every retry and replay, so receivers can dedup)
//! and hookgate's own `hookgate-source`, `hookgate-event-type`, `hookgate-attempt`.

use std::time::Instant;

use http::HeaderValue;

use super::client;
use super::retry::Outcome;
use crate::config::Endpoint;
use crate::store::{AttemptRecord, DueDelivery};
use crate::verify::standard_webhooks;

/// Bytes of the response body kept with the attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// Sends one attempt and classifies it. Never fails: every failure is an [`Outcome`].
pub async fn send(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    d: &DueDelivery,
    now_ms: u64,
    allow_private: bool,
) -> (Outcome, AttemptRecord) {
    let started = Instant::now();
    let (outcome, status_code, excerpt) = match client::check_literal(&endpoint.url, allow_private)
    {
        Err(blocked) => (
            Outcome::Refused {
                error: blocked.to_string(),
            },
            None,
            Vec::new(),
        ),
        Ok(()) => match request(http, endpoint, d, now_ms).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let excerpt = read_excerpt(response).await;
                (
                    Outcome::from_status(status, retry_after.as_deref(), now_ms),
                    Some(status),
                    excerpt,
                )
            }
            Err(e) => (classify_error(&e), None, Vec::new()),
        },
    };
    let error = match &outcome {
        Outcome::Delivered { .. } => None,
        Outcome::Failed { error, .. } | Outcome::Refused { error } => Some(error.clone()),
    };
    let record = AttemptRecord {
        at_ms: now_ms,
        status_code,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
        response_excerpt: excerpt,
    };
    (outcome, record)
}

fn request(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    d: &DueDelivery,
    now_ms: u64,
) -> reqwest::RequestBuilder {
    let event_id = d.event_id.to_string();
    let ts = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let mut req = http
        .post(endpoint.url.clone())
        .timeout(endpoint.timeout)
        .header("webhook-id", &event_id)
        .header("webhook-timestamp", ts.to_string())
        .header("hookgate-source", &d.source)
        .header("hookgate-attempt", (d.attempts + 1).to_string());
    if let Some(key) = &endpoint.signing_key {
        req = req.header(
            "webhook-signature",
            standard_webhooks::sign(key, &event_id, ts, &d.body),
        );
    }
    if let Some(t) = d
        .event_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        req = req.header("hookgate-event-type", t);
    }
    if let Some(ct) = d
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_bytes(c).ok())
    {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    req.body(d.body.clone())
}

async fn read_excerpt(mut response: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    // A receiver that sends a huge or endless body must not hold the attempt: stop at the cap.
    while out.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(RESPONSE_EXCERPT_BYTES - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

fn classify_error(e: &reqwest::Error) -> Outcome {
    if let Some(reason) = client::blocked_reason(e) {
        return Outcome::Refused { error: reason };
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() || e.is_body() {
        "request failed"
    } else {
        "error"
    };
    // The innermost cause says the most (refused, reset, DNS, TLS).
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Outcome::Failed {
        status: None,
        retry_after: None,
        error: format!("{kind}: {cause}"),
    }
}
