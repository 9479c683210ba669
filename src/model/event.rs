//! Events and deliveries as the rest of hookgate sees them, whichever backend keeps them.
//!
//! These are what the store takes and returns: the API builds its views from them, lanes read
//! them, and the outbox rules (`store::outbox`) are functions over [`Delivery`]. How a backend
//! encodes them (redb's versioned postcard records, a PostgreSQL row) stays inside that
//! backend, so **nothing here carries a storage or wire format**: no serde derives.

use bytes::Bytes;

use crate::ids::{DeliveryId, EventId};

/// Where a delivery stands, as SPEC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Due (at `due_ms`) and never attempted in its current cycle, or released unattempted.
    Pending,
    /// Being sent: leased until `due_ms`.
    Delivering,
    /// Attempted, and due again at `due_ms`.
    Retrying,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    /// Every status, in SPEC's order.
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Pending,
        Self::Delivering,
        Self::Retrying,
        Self::Delivered,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Delivered and dead deliveries are finished: nothing schedules them again (only a
    /// requeue, which an operator asks for).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Dead)
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: String,
    pub status: DeliveryStatus,
    /// Attempts made and recorded so far, over every retry cycle.
    pub attempts: u32,
    /// When it is next due; while `Delivering`, when its lease expires; once final, the last
    /// of those (it means nothing then).
    pub due_ms: u64,
    pub created_ms: u64,
    /// When its state last changed; for a dead delivery, when it died.
    pub updated_ms: u64,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// The retry cycle: `attempts` when it began, and when. A replay or a manual retry starts a
    /// new cycle, so the retry policy's `max_attempts` and `max_age` count from there, while
    /// the attempt log (and `attempts`) keeps the whole history.
    pub cycle_base: u32,
    pub cycle_started_ms: u64,
    /// For an endpoint that delivers in order: its order key and its place in that key (a
    /// number that grows in commit order). `None`: unordered.
    pub order: Option<(String, u64)>,
    /// Waiting behind an earlier delivery of its order key: not due, whatever `due_ms` says,
    /// until that one is final ([`store::outbox::promote`](crate::store::outbox::promote)).
    pub blocked: bool,
    /// The endpoint's held-time clock (`store::health::held_at`) when the current retry cycle
    /// began: `max_age` is not charged for the time the endpoint was held since.
    pub cycle_held_ms: u64,
}

impl Delivery {
    /// Attempts made in the current retry cycle.
    pub fn cycle_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.cycle_base)
    }

    /// When the next attempt is due, if one is waiting (pending or retrying; a delivery being
    /// sent has a lease expiry instead, and a blocked one waits for its key's head, not a time).
    pub fn next_attempt_ms(&self) -> Option<u64> {
        (matches!(
            self.status,
            DeliveryStatus::Pending | DeliveryStatus::Retrying
        ) && !self.blocked)
            .then_some(self.due_ms)
    }

    /// When it died, if it is dead.
    pub fn dead_at_ms(&self) -> Option<u64> {
        (self.status == DeliveryStatus::Dead).then_some(self.updated_ms)
    }
}

/// An accepted webhook or published event (its bytes are its [`Payload`], kept apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    /// The provider's delivery id (or the `Idempotency-Key`) it was deduplicated by.
    pub dedup_key: Option<String>,
    /// One delivery per endpoint that matched at ingest: (delivery id, endpoint id).
    pub deliveries: Vec<(DeliveryId, String)>,
}

/// The bytes of an event as they arrived: every request header, the query string, and the
/// body exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Lower-case names, in arrival order; values as raw bytes (they need not be UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request's raw query string as it arrived, without the `?` (`site=eu&x=1`); `""`
    /// when it had none, and for published and operational events. Kept so that a payload
    /// filter's `query` clauses can be evaluated again on a stored event.
    pub query: String,
    pub body: Bytes,
}

impl Payload {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One attempt of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_excerpt: Vec<u8>,
}

/// An event with each of its deliveries: what the API's event pages show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWithDeliveries {
    pub event: Event,
    /// Those of `event.deliveries` that could be read, in the same order.
    pub deliveries: Vec<Delivery>,
}

/// A dead delivery with what an operator filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: String,
    pub source: String,
    pub event_type: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(status: DeliveryStatus) -> Delivery {
        Delivery {
            id: DeliveryId(2),
            event_id: EventId(1),
            endpoint_id: "e".into(),
            status,
            attempts: 5,
            due_ms: 30,
            created_ms: 10,
            updated_ms: 20,
            last_status_code: None,
            last_error: None,
            cycle_base: 3,
            cycle_started_ms: 15,
            order: None,
            blocked: false,
            cycle_held_ms: 0,
        }
    }

    #[test]
    fn only_delivered_and_dead_are_final() {
        let finals: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, [DeliveryStatus::Delivered, DeliveryStatus::Dead]);
        let names: Vec<_> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["pending", "delivering", "retrying", "delivered", "dead"]
        );
    }

    #[test]
    fn a_delivery_knows_its_cycle_its_next_attempt_and_its_death() {
        let waiting = delivery(DeliveryStatus::Retrying);
        assert_eq!(waiting.cycle_attempts(), 2);
        assert_eq!(waiting.next_attempt_ms(), Some(30));
        assert_eq!(waiting.dead_at_ms(), None);
        // A lease expiry is not a next attempt, nor is a blocked one's old due time.
        assert_eq!(delivery(DeliveryStatus::Delivering).next_attempt_ms(), None);
        let blocked = Delivery {
            blocked: true,
            ..delivery(DeliveryStatus::Pending)
        };
        assert_eq!(blocked.next_attempt_ms(), None);
        let dead = delivery(DeliveryStatus::Dead);
        assert_eq!(
            (dead.next_attempt_ms(), dead.dead_at_ms()),
            (None, Some(20))
        );
    }

    #[test]
    fn a_payload_finds_a_header_by_name() {
        let p = Payload {
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("content-type".into(), b"text/plain".to_vec()),
            ],
            query: String::new(),
            body: Bytes::from_static(b"{}"),
        };
        assert_eq!(p.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(p.header("x-missing"), None);
    }
}
