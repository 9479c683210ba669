//! One attempt: the request a receiver gets, and what its answer means.
//!
//! The request carries the original body and content type, the endpoint's own `headers`, the
//! forwarded inbound headers, the Standard Webhooks headers (`webhook-id` is the event id, the
//! same on every retry and replay, so receivers can dedup) and hookgate's own
//! `hookgate-source`, `hookgate-event-type`, `hookgate-attempt`.

use std::time::Instant;

use http::{HeaderName, HeaderValue};

use super::client;
use super::retry::Outcome;
use crate::config::{Endpoint, Field, SchemeKind, is_reserved_header};
use crate::model::event::Attempt;
use crate::store::DueDelivery;
use crate::verify::{self, standard_webhooks};

/// Bytes of the response body kept with the attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// Sends one attempt and classifies it. Never fails: every failure is an [`Outcome`].
pub async fn send(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    d: &DueDelivery,
    scheme: Option<SchemeKind>,
    now_ms: u64,
    reach: &client::Reach,
) -> (Outcome, Attempt) {
    let started = Instant::now();
    let (outcome, status_code, excerpt) = match client::check_literal(&endpoint.url, reach) {
        Err(blocked) => (
            Outcome::Refused {
                error: blocked.to_string(),
            },
            None,
            Vec::new(),
        ),
        Ok(()) => match request(http, endpoint, d, scheme, now_ms).send().await {
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
    let record = Attempt {
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
    scheme: Option<SchemeKind>,
    now_ms: u64,
) -> reqwest::RequestBuilder {
    let event_id = d.event_id.to_string();
    let ts = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let mut req = http.post(endpoint.url.clone()).timeout(endpoint.timeout);
    for (name, value) in &endpoint.headers {
        req = req.header(name, value);
    }
    for (name, value) in forwarded_headers(endpoint, scheme, &d.headers) {
        req = req.header(name, value);
    }
    // Ours last: configuration cannot name them (see `config::is_reserved_header`).
    req = req
        .header("webhook-id", &event_id)
        .header("webhook-timestamp", ts.to_string())
        .header("hookgate-source", &d.source)
        .header("hookgate-attempt", (d.attempts + 1).to_string());
    // During a secret rotation the old key signs beside the new one, space-separated, as
    // Standard Webhooks prescribes: receivers holding either secret accept.
    let signatures: Vec<String> = endpoint
        .keys_at(now_ms)
        .into_iter()
        .map(|key| standard_webhooks::sign(key.expose(), &event_id, ts, &d.body))
        .collect();
    if !signatures.is_empty() {
        req = req.header("webhook-signature", signatures.join(" "));
    }
    if let Some(t) = d
        .event_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        req = req.header("hookgate-event-type", t);
    }
    req.body(d.body.clone())
}

/// The inbound headers a delivery passes on: the content type always; then the endpoint's
/// `forward_headers`, or by default the provider's own event and delivery-id headers (never its
/// signature headers, which would not verify for the receiver anyway, unless listed).
pub fn forwarded_headers(
    endpoint: &Endpoint,
    scheme: Option<SchemeKind>,
    stored: &[(String, Vec<u8>)],
) -> Vec<(HeaderName, HeaderValue)> {
    let defaults = scheme.map(verify::defaults);
    let wanted = |name: &str| -> bool {
        if name == "content-type" {
            return true;
        }
        if is_reserved_header(name) {
            return false;
        }
        match (&endpoint.forward_headers, defaults) {
            (Some(list), _) => list.iter().any(|h| h.as_str() == name),
            (None, Some(d)) => d
                .dedup
                .iter()
                .chain(d.event_type)
                .any(|f| matches!(f, Field::Header(h) if h.eq_ignore_ascii_case(name))),
            (None, None) => false,
        }
    };
    stored
        .iter()
        .filter(|(name, _)| wanted(name))
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            ))
        })
        .collect()
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

/// The outcome class an attempt is counted under in the metrics: `2xx`, `3xx`, `4xx`, `5xx`,
/// `timeout`, `connect`, `blocked` or `error` (the prefixes `classify_error` writes).
pub fn class(outcome: &Outcome, status: Option<u16>) -> &'static str {
    match (outcome, status) {
        (_, Some(200..=299)) => "2xx",
        (_, Some(300..=399)) => "3xx",
        (_, Some(400..=499)) => "4xx",
        (_, Some(_)) => "5xx",
        (Outcome::Refused { .. }, None) => "blocked",
        (Outcome::Failed { error, .. }, None) if error.starts_with("timeout") => "timeout",
        (Outcome::Failed { error, .. }, None) if error.starts_with("connection failed") => {
            "connect"
        }
        _ => "error",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn endpoint(extra: &str) -> Endpoint {
        let text = format!("[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\n{extra}\n");
        Config::from_toml(&text)
            .and_then(Config::validate)
            .expect("valid")
            .endpoints
            .remove(0)
    }

    fn stored() -> Vec<(String, Vec<u8>)> {
        [
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-1"),
            ("x-hub-signature-256", "sha256=00"),
            ("user-agent", "GitHub-Hookshot/1"),
            ("content-length", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    fn names(h: Vec<(HeaderName, HeaderValue)>) -> Vec<String> {
        h.into_iter().map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn by_default_the_providers_event_and_delivery_headers_pass() {
        let got = names(forwarded_headers(
            &endpoint(""),
            Some(SchemeKind::Github),
            &stored(),
        ));
        assert_eq!(got, ["content-type", "x-github-event", "x-github-delivery"]);
        // An unknown source passes the content type only.
        assert_eq!(
            names(forwarded_headers(&endpoint(""), None, &stored())),
            ["content-type"]
        );
    }

    #[test]
    fn forward_headers_replaces_the_default_and_may_name_signatures() {
        let e = endpoint("forward_headers = [\"X-Hub-Signature-256\", \"user-agent\"]");
        let got = names(forwarded_headers(&e, Some(SchemeKind::Github), &stored()));
        assert_eq!(got, ["content-type", "x-hub-signature-256", "user-agent"]);
    }
}
