//! The HTTP target: a delivery is a POST to the endpoint's URL, through the one pooled client
//! ([`client`]) and its SSRF guard, signed as Standard Webhooks ([`request`]).
//!
//! What an answer means, in the retry policy's terms:
//! - 2xx: delivered.
//! - any other status (3xx, since redirects are not followed; 4xx including 410; 5xx), a
//!   timeout, a refused or reset connection, a DNS or TLS failure: failed, worth retrying. A
//!   `Retry-After` on 429 or 503 is the receiver's own request for a delay.
//! - an address the reach policy refuses (`blocked: …`): refused; retrying cannot help.

pub mod client;
pub mod request;
pub mod reshape;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retry::Outcome;
use super::target::{Ahead, Attempted, Outbound};
use crate::model::endpoint::{Destination, Endpoint};
use crate::model::event::Attempt;
use crate::model::reach::Reach;
use crate::store::DueDelivery;
use crate::verify::SchemeKind;

/// Bytes of the response body kept with the attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// What every HTTP target shares: the pooled client, the reach policy it enforces, and the
/// worker processes endpoints' transforms run in.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    reach: Arc<Reach>,
    transforms: Arc<crate::transform::Pool>,
}

impl HttpTransport {
    pub fn new(
        reach: Reach,
        transforms: Arc<crate::transform::Pool>,
    ) -> Result<Self, reqwest::Error> {
        Ok(HttpTransport {
            client: client::build(&reach)?,
            reach: Arc::new(reach),
            transforms,
        })
    }
}

/// One endpoint's HTTP target.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    endpoint: Arc<Endpoint>,
    url: url::Url,
    transport: HttpTransport,
}

impl HttpTarget {
    pub fn new(endpoint: Arc<Endpoint>, url: url::Url, transport: HttpTransport) -> Self {
        HttpTarget {
            endpoint,
            url,
            transport,
        }
    }

    /// The endpoint's transform of `delivery`, queued now if the endpoint has one; the
    /// attempt that sends it waits for its answer ([`Self::send`]).
    pub fn ahead(&self, delivery: &DueDelivery, scheme: Option<SchemeKind>) -> Option<Ahead> {
        let program = self.endpoint.transform.as_ref()?;
        Some(Ahead::Reshaping(reshape::start(
            &self.transport.transforms,
            &self.endpoint.id,
            program,
            self.unshaped(delivery, scheme),
        )))
    }

    fn unshaped(&self, d: &DueDelivery, scheme: Option<SchemeKind>) -> request::Prepared {
        request::prepare(
            &self.endpoint,
            scheme,
            &d.headers,
            &d.body,
            d.event_type.as_deref(),
        )
    }

    /// What the attempt sends: the stored delivery, through the endpoint's transform if it
    /// has one (queued ahead, or now). `Err`: the attempt ends here (dropped by the
    /// transform, or the transform failed), recorded as such.
    async fn prepared(&self, out: Outbound<'_>) -> Result<request::Prepared, Attempted> {
        let now_ms = out.now_ms;
        let Some(program) = &self.endpoint.transform else {
            return Ok(self.unshaped(out.delivery, out.scheme));
        };
        let ahead = match out.ahead {
            Some(ahead) => ahead,
            None => Ahead::Reshaping(reshape::start(
                &self.transport.transforms,
                &self.endpoint.id,
                program,
                self.unshaped(out.delivery, out.scheme),
            )),
        };
        let super::target::Ready {
            result: outcome,
            waited_ms: latency_ms,
        } = ahead.ready().await;
        let (outcome, class, excerpt) = match outcome {
            Ok(reshape::Reshaped::Send(p)) => return Ok(p),
            // Final, and not the receiver's doing: not counted by its breaker.
            Ok(reshape::Reshaped::Drop) => (
                Outcome::Dropped,
                "dropped",
                b"dropped by the endpoint's transform (it output null): not sent".to_vec(),
            ),
            // A failed attempt like any other: retried, then dead-lettered.
            Err(failed) => (
                Outcome::Failed {
                    retry_after: None,
                    error: failed.0,
                },
                "transform",
                Vec::new(),
            ),
        };
        let error = match &outcome {
            Outcome::Failed { error, .. } => Some(error.clone()),
            _ => None,
        };
        Err(Attempted {
            outcome,
            record: Attempt {
                at_ms: now_ms,
                status_code: None,
                latency_ms,
                error,
                response_excerpt: excerpt,
            },
            class,
        })
    }

    /// Sends one attempt and classifies it. Never fails: every failure is an [`Outcome`].
    pub async fn send(&self, out: Outbound<'_>) -> Attempted {
        let (delivery, now_ms) = (out.delivery, out.now_ms);
        let prepared = match self.prepared(out).await {
            Ok(p) => p,
            Err(ended) => return ended,
        };
        let started = Instant::now();
        let (outcome, status_code, excerpt) =
            match client::check_literal(&self.url, &self.transport.reach) {
                Err(blocked) => (
                    Outcome::Refused {
                        error: blocked.to_string(),
                    },
                    None,
                    Vec::new(),
                ),
                Ok(()) => {
                    let req = request::build(
                        &self.transport.client,
                        &self.endpoint,
                        &self.url,
                        delivery,
                        prepared,
                        now_ms,
                    );
                    match req.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = response
                                .headers()
                                .get(http::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let excerpt = read_excerpt(response).await;
                            (
                                classify_status(status, retry_after.as_deref(), now_ms),
                                Some(status),
                                excerpt,
                            )
                        }
                        Err(e) => (classify_error(&e), None, Vec::new()),
                    }
                }
            };
        let error = match &outcome {
            Outcome::Delivered | Outcome::Dropped => None,
            Outcome::Failed { error, .. } | Outcome::Refused { error } => Some(error.clone()),
        };
        let class = class(&outcome, status_code);
        let record = Attempt {
            at_ms: now_ms,
            status_code,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error,
            response_excerpt: excerpt,
        };
        Attempted {
            outcome,
            record,
            class,
        }
    }
}

/// The URL an endpoint's HTTP target posts to, if it has one.
pub fn url_of(endpoint: &Endpoint) -> Option<&url::Url> {
    match &endpoint.destination {
        Destination::Http { url } => Some(url),
        Destination::Pull => None,
    }
}

/// Classifies an HTTP status (and its `Retry-After`, read on 429 and 503 only).
pub fn classify_status(status: u16, retry_after: Option<&str>, now_ms: u64) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let retry_after = if matches!(status, 429 | 503) {
        retry_after.and_then(|v| parse_retry_after(v, now_ms))
    } else {
        None
    };
    Outcome::Failed {
        retry_after,
        error: format!("HTTP {status}"),
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date. A date in the past means "now".
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    let at_ms = u64::try_from(at_ms).ok()?;
    Some(Duration::from_millis(at_ms.saturating_sub(now_ms)))
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
fn class(outcome: &Outcome, status: Option<u16>) -> &'static str {
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
        retry_after: None,
        error: format!("{kind}: {cause}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify_status(204, None, 0), Outcome::Delivered);
        assert!(matches!(
            classify_status(301, None, 0),
            Outcome::Failed { error, .. } if error == "HTTP 301"
        ));
        assert!(matches!(
            classify_status(410, None, 0),
            Outcome::Failed { .. }
        ));
        // Retry-After is read only on 429 and 503.
        assert!(matches!(
            classify_status(500, Some("9"), 0),
            Outcome::Failed {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify_status(429, Some("2"), 0),
            Outcome::Failed { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
    }

    #[test]
    fn parses_retry_after_both_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s.
        let now = 784_111_777_000 - 30_000;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 60_000),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-1", 0), None);
        assert_eq!(parse_retry_after("", 0), None);
    }

    #[test]
    fn attempts_are_counted_by_class() {
        let failed = |e: &str| Outcome::Failed {
            retry_after: None,
            error: e.into(),
        };
        assert_eq!(class(&Outcome::Delivered, Some(204)), "2xx");
        assert_eq!(class(&failed("HTTP 302"), Some(302)), "3xx");
        assert_eq!(class(&failed("HTTP 410"), Some(410)), "4xx");
        assert_eq!(class(&failed("HTTP 503"), Some(503)), "5xx");
        assert_eq!(class(&failed("timeout: deadline"), None), "timeout");
        assert_eq!(
            class(&failed("connection failed: refused"), None),
            "connect"
        );
        assert_eq!(class(&failed("request failed: reset"), None), "error");
        let refused = Outcome::Refused {
            error: "blocked: private address 10.0.0.1".into(),
        };
        assert_eq!(class(&refused, None), "blocked");
    }
}
