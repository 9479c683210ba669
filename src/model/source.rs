//! Sources: where webhooks come from, how each is verified, deduplicated, typed, limited and
//! answered.

use std::fmt;
use std::time::Duration;

use crate::verify::Verifier;
use crate::verify::{FieldRef, SchemeKind};

/// The source of hookgate's own operational events (issue 17). No source may be declared with
/// this id, publishing under it is refused, and its events go only to endpoints that name it in
/// `sources`, never to catch-all ones: an operator opts in to them.
pub const HOOKGATE_SOURCE: &str = "hookgate";

/// A source ready for ingress: its verifier holds decoded keys.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub scheme: SchemeKind,
    pub verifier: Verifier,
    pub dedup: Option<FieldRef>,
    pub dedup_window: Duration,
    /// Whether the body's hash is a second dedup key.
    pub dedup_body: bool,
    pub event_type: Option<FieldRef>,
    /// Shared by every snapshot of the routes, so swapping them keeps the count.
    pub limiter: Option<std::sync::Arc<SourceLimiter>>,
    /// The configured answer to accepted events, if any.
    pub response: Option<SyncResponse>,
}

impl Source {
    /// How long a provider delivery id is remembered, in milliseconds.
    pub fn dedup_window_ms(&self) -> u64 {
        u64::try_from(self.dedup_window.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A source's request rate limit.
pub struct SourceLimiter(governor::DefaultDirectRateLimiter);

impl SourceLimiter {
    pub fn new(quota: governor::Quota) -> Self {
        SourceLimiter(governor::RateLimiter::direct(quota))
    }

    /// `Ok` to go on, or how long until a request would be let in.
    pub fn check(&self) -> Result<(), Duration> {
        use governor::clock::{Clock, DefaultClock};
        self.0
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

impl fmt::Debug for SourceLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceLimiter")
    }
}

/// What a source answers an accepted event with (its configured `response`), in place of
/// `202 {"event_id"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}
