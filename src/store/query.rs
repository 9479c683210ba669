//! What the admin API lists: events and dead letters, filtered and cursor-paged, newest first.
//!
//! Filters without an index (source, type, endpoint, status, payload contains) are applied
//! while scanning; **a page examines at most [`SCAN_LIMIT`] rows**, and when it stops early its
//! cursor says where to go on, so no request scans an unbounded table. Both backends keep these
//! rules; a cursor is opaque, and one a backend did not give out is `StoreError::BadCursor`.
//! `contains` is the dearest filter (it reads the payload), so both backends test it last, on
//! rows that passed the others.

use super::StoreError;
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{DeliveryStatus, Event};

/// The most rows one page looks at.
pub const SCAN_LIMIT: usize = 10_000;

/// What to list. Times are Unix milliseconds, `since` inclusive and `until` exclusive.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// A literal byte string the event's body must contain (case-sensitive). Callers keep
    /// it short (the API allows [`MAX_CONTAINS_CHARS`]): each row it is tested on is a search.
    pub contains: Option<Vec<u8>>,
}

/// The longest `contains` the API and the console accept, in characters (as OpenAPI's
/// `maxLength` counts them): at most 1 KiB of UTF-8.
pub const MAX_CONTAINS_CHARS: usize = 256;

impl Filter {
    pub fn event_matches(&self, ev: &Event) -> bool {
        self.source.as_ref().is_none_or(|s| *s == ev.source)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| Some(t) == ev.event_type.as_ref())
    }
}

/// One page, and the cursor of the next (None: this was the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The lowest (or highest) ULID of a millisecond: bounds of a time range over ids.
pub fn ulid_bound(ms: u64, high: bool) -> u128 {
    // A ULID is 48 bits of milliseconds, then 80 random bits.
    let base = u128::from(ms.min((1 << 48) - 1)) << 80;
    if high {
        base | ((1u128 << 80) - 1)
    } else {
        base
    }
}

impl Filter {
    /// Whether a body passes the `contains` filter (any body does when there is none).
    pub fn body_matches(&self, body: &[u8]) -> bool {
        self.contains
            .as_deref()
            .is_none_or(|needle| memchr::memmem::find(body, needle).is_some())
    }

    /// Whether an event's deliveries pass the endpoint and status filters (one delivery
    /// matching each is enough).
    pub fn deliveries_match(&self, ds: &[crate::model::event::Delivery]) -> bool {
        self.endpoint
            .as_ref()
            .is_none_or(|e| ds.iter().any(|d| d.endpoint_id == *e))
            && self.status.is_none_or(|s| ds.iter().any(|d| d.status == s))
    }

    /// The event ids an events page may return, as (lowest, highest): the time filter's, below
    /// the previous page's last event (`cursor`, an event id) when there is one.
    pub fn event_id_range(&self, cursor: Option<&str>) -> Result<(u128, u128), StoreError> {
        let low = self.since_ms.map_or(0, |ms| ulid_bound(ms, false));
        let mut high = self
            .until_ms
            .map_or(u128::MAX, |ms| ulid_bound(ms, false).saturating_sub(1));
        if let Some(c) = cursor {
            let after: EventId = c.parse().map_err(|_| StoreError::BadCursor)?;
            high = high.min(after.0.saturating_sub(1));
        }
        Ok((low, high))
    }
}

/// A dead-letter cursor is `<dead_at_ms>.<delivery id>`: the first row not yet looked at,
/// where the next page starts (inclusive).
pub fn parse_dead_cursor(c: &str) -> Result<(u64, u128), StoreError> {
    let (ms, id) = c.split_once('.').ok_or(StoreError::BadCursor)?;
    let ms: u64 = ms.parse().map_err(|_| StoreError::BadCursor)?;
    let id: DeliveryId = id.parse().map_err(|_| StoreError::BadCursor)?;
    Ok((ms, id.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_is_a_literal_case_sensitive_byte_search() {
        let f = |n: &[u8]| Filter {
            contains: Some(n.to_vec()),
            ..Filter::default()
        };
        assert!(Filter::default().body_matches(b"anything"));
        assert!(f(b"cus_42").body_matches(b"{\"customer\":\"cus_42\"}"));
        assert!(!f(b"CUS_42").body_matches(b"{\"customer\":\"cus_42\"}"));
        assert!(!f(b"cus_.*").body_matches(b"cus_42"));
        assert!(f(b"\xff\x00").body_matches(b"a\xff\x00b"));
        assert!(!f(b"longer than the body").body_matches(b"short"));
    }
}
