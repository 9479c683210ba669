//! Endpoints: where deliveries go, and how (retry policy, rate limit, signing keys, headers).

use std::time::Duration;

use super::secret::Key;

/// How one endpoint retries, with every value resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// Where an endpoint's deliveries go: the kind of delivery target and its address. Delivery
/// builds a target for it (`delivery::target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POSTed to an http(s) URL.
    Http { url: url::Url },
    /// Kept until a consumer takes it (`kind = "pull"`): receive, ack and nack through the
    /// API (`delivery::pull`).
    Pull,
}

impl Destination {
    /// Where it points, as an operator sees it: none for a pull endpoint.
    pub fn address(&self) -> Option<&url::Url> {
        match self {
            Destination::Http { url } => Some(url),
            Destination::Pull => None,
        }
    }

    /// Its kind as the config and the API name it: `push` or `pull`.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Http { .. } => "push",
            Destination::Pull => "pull",
        }
    }

    pub fn is_pull(&self) -> bool {
        matches!(self, Destination::Pull)
    }
}

/// Requests per second, with a burst (the bucket's size; `None`: one second's worth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: Option<u32>,
}

/// An endpoint ready for delivery.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    /// Where its deliveries go.
    pub destination: Destination,
    /// Empty: every source.
    pub sources: Vec<String>,
    /// `None`: every type.
    pub event_types: Option<Vec<glob::Pattern>>,
    /// Decoded Standard Webhooks signing key; `None` sends no `webhook-signature`.
    pub signing_key: Option<Key>,
    /// Rotated-out keys that still sign until the time given (Unix ms).
    pub previous_keys: Vec<(Key, u64)>,
    pub rate_limit: Option<RateLimit>,
    pub max_in_flight: u32,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `None`: the source scheme's defaults.
    pub forward_headers: Option<Vec<http::HeaderName>>,
    /// Its circuit breaker and auto-disable.
    pub health: crate::model::HealthPolicy,
    /// `None`: deliveries go out in any order, up to `max_in_flight` at once.
    pub ordering: Option<crate::model::Ordering>,
    /// Its payload filter, compiled once: `None` takes every event it subscribes to.
    pub filter: Option<std::sync::Arc<crate::filter::payload::PayloadFilter>>,
    /// Its transform: a jq program (checked to compile) run on each delivery as it is sent.
    pub transform: Option<std::sync::Arc<str>>,
    /// When it removes itself (Unix ms), if it was made through the API (`catalog::expire`).
    pub expires_at_ms: Option<u64>,
}

/// Headers an endpoint may neither add nor forward: hop-by-hop ones, and the ones hookgate
/// sets itself.
/// The headers hookgate or the connection sets on a delivery: hop-by-hop ones, and the
/// Standard Webhooks ones hookgate signs with.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

pub fn is_reserved_header(name: &str) -> bool {
    // Compared without case rather than lower-cased first: this runs for every header of every
    // delivery (and twice more for a transform's), and needs no copy of the name.
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
        || name
            .as_bytes()
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"hookgate-"))
}

impl Endpoint {
    /// The keys that sign a delivery at `now_ms`: the current one, then rotated-out ones still
    /// within their overlap.
    pub fn keys_at(&self, now_ms: u64) -> Vec<&Key> {
        self.signing_key
            .iter()
            .chain(
                self.previous_keys
                    .iter()
                    .filter(|(_, until)| now_ms < *until)
                    .map(|(k, _)| k),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_recognised_in_any_case() {
        for name in ["Host", "WEBHOOK-ID", "te", "hookgate-attempt", "HookGate-X"] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in [
            "x-host",
            "tes",
            "hookgate",
            "hookgate_x",
            "content-type",
            "é",
            "",
        ] {
            assert!(!is_reserved_header(name), "{name}");
        }
    }
}
