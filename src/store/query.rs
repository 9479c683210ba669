//! What the admin API lists: events and dead letters, filtered and cursor-paged, newest first.
//!
//! Filters without an index (source, type, endpoint, status) are applied while scanning; **a
//! page examines at most [`SCAN_LIMIT`] rows**, and when it stops early its cursor says where to
//! go on, so no request scans an unbounded table. Both backends keep these rules; a cursor is
//! opaque, and one a backend did not give out is `StoreError::BadCursor`.

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
}

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
