//! The store's commands and answers: what callers hand the writer (an event to ingest, an
//! attempt's completion, a requeue, a pruning step) and what comes back. Backend-neutral:
//! they carry model types and ids, never records.

use std::sync::Arc;

use bytes::Bytes;

use super::query;
use crate::ids::{DeliveryId, EventId};
use crate::model::event::Attempt;

/// A webhook to store, with the endpoints it must reach.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    /// The provider's delivery id and how long to remember it.
    pub dedup: Option<(String, u64)>,
    /// The namespace of the dedup key; `None` is the source id.
    pub dedup_scope: Option<String>,
    /// A hash of the body and how long to remember it, for sources whose delivery id is an
    /// unsigned header: a captured request sent again under a new id is still a duplicate.
    /// Kept in the namespace `<source>#body`.
    pub body_dedup: Option<(String, u64)>,
    /// The memory this request holds against the ingress budget (`ingress.max_buffered_bytes`):
    /// released once the writer is done with the event, stored or not.
    pub budget: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request's raw query string, without the `?`; `""` for none (kept as none, at no
    /// cost). Ingress takes it from the request URI, so it is printable ASCII and never holds
    /// a NUL, which PostgreSQL's `text` could not keep.
    pub query: String,
    pub body: Bytes,
    pub endpoints: Vec<String>,
    /// (endpoint id, order key) for each endpoint of `endpoints` that delivers in order
    /// (`ordering = …`; `""` for `"endpoint"`, one order over all): its delivery is placed
    /// after every other of that key. The endpoints not named here are unordered.
    pub order_keys: Vec<(String, String)>,
}

impl NewEvent {
    /// The order key of `endpoint`'s delivery, if that endpoint orders.
    pub fn order_key(&self, endpoint: &str) -> Option<&str> {
        self.order_keys
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, k)| k.as_str())
    }
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Accepted {
        event_id: EventId,
        deliveries: Vec<(DeliveryId, String)>,
    },
    /// The same provider delivery id was seen within the window: nothing was written.
    Duplicate { event_id: EventId },
}

/// The end of one attempt, and what happens next.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub delivery_id: DeliveryId,
    /// The token of the lease the attempt was made under (from [`DueDelivery::lease_token`]).
    /// **A finish whose token is not the delivery's current lease changes nothing**: another
    /// lane, perhaps on another node, took the delivery over when this lease ran out. `None`
    /// (tests, tools) finishes whatever lease is current.
    pub lease_token: Option<u64>,
    pub attempt: Attempt,
    pub next: Next,
    /// The endpoint's health policy: with a breaker, the result counts in the endpoint's
    /// failure window and may move its breaker (`store::health::on_result`). `None` (tests,
    /// tools, an endpoint with `breaker = "off"`): not counted.
    pub health: Option<crate::model::HealthPolicy>,
    /// A pull consumer's ack or nack: **it changes something only under the delivery's
    /// current lease** (`lease_token` must be it). A lane's finish is looser: a lease the
    /// embedded store lost to a failed commit left no token, and that attempt's result still
    /// counts. A consumer's lease is committed before it gets its receipt, so it has no such
    /// case, and a receipt from before the lease ran out and was settled must stay stale.
    pub strict: bool,
    /// Something waits on this result's commit: the next delivery of its order key (an
    /// endpoint with `ordering`), which becomes due only then. The embedded store commits it
    /// without waiting for other results to share the commit (`store::redb`'s writer lingers
    /// for a batch of results nothing waits on); PostgreSQL ignores it.
    pub waited_on: bool,
}

/// What recording a result did to the endpoint's health: its breaker after the result (when
/// the completion carried a policy), and the transition it made, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completed {
    pub health: Option<super::health::Health>,
    pub transition: Option<super::health::Transition>,
    /// Nothing was recorded: the delivery was already settled, or (fenced) another lease is
    /// current. A pull consumer's stale receipt answers 409 from this.
    pub stale: bool,
}

/// What an operator's enable did: how many deliveries were waiting for the endpoint (held)
/// and how many of them were dead-lettered on request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub held: u64,
    pub discarded: u64,
}

/// An operational event in the store's outbox, written in the transaction of the change it
/// reports and waiting to be published (`ops`): its place in the outbox, when it happened,
/// its type, the endpoint it is about (never sent to it), and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsRow {
    pub id: u64,
    pub at_ms: u64,
    pub event_type: String,
    pub subject: Option<String>,
    pub body: Vec<u8>,
}

/// The reason a delivery dead-lettered by an enable with `discard_held` carries.
pub const DISCARDED_ON_ENABLE: &str = "discarded on enable";

/// A delivery a lane holds, named with the lease it holds it under: what `Store::release`
/// gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub delivery_id: DeliveryId,
    /// As in [`Completion::lease_token`]: **a release under a lease that was taken over
    /// changes nothing** (the new holder may be sending it). `None` releases whatever lease is
    /// current.
    pub lease_token: Option<u64>,
}

impl From<&DueDelivery> for Held {
    fn from(d: &DueDelivery) -> Self {
        Self {
            delivery_id: d.delivery_id,
            lease_token: d.lease_token,
        }
    }
}

/// What follows an attempt: the delivery is done, due again at a time, or dead with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(u64),
    Dead(String),
}

/// One pruning step's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Prune {
    pub now_ms: u64,
    /// Finished events that arrived before this are removed.
    pub events_before_ms: u64,
    /// Dead deliveries that died before this may go with their event.
    pub dead_before_ms: u64,
    /// Unused by the index scan (pruned entries leave it); kept for the step protocol.
    pub after: Option<u128>,
    /// Resume the dead-letter side after this (last death ms, event id): the previous step's
    /// `next_dead`.
    pub after_dead: Option<(u64, u128)>,
    /// Most events looked at in this step (0: none, dedup entries only).
    pub max_events: usize,
    /// Most expired dedup entries removed in this step.
    pub max_dedup: usize,
}

/// What a pruning step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub dedup_entries: u64,
    /// Set when the delivered side may have more; `None` when it is done.
    pub next: Option<u128>,
    /// Where the dead-letter side goes on; `None` when it is done.
    pub next_dead: Option<(u64, u128)>,
    /// Finished-index entries looked at: what the step read (survivors are not among them).
    pub examined: u64,
}

/// What kind of config entry the admin API made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Source,
    Endpoint,
}

impl EntryKind {
    /// `source` or `endpoint`: its key in the store, and its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Source => "source",
            EntryKind::Endpoint => "endpoint",
        }
    }
}

/// Which deliveries to send again.
#[derive(Debug, Clone)]
pub enum Requeue {
    /// Dead deliveries matching a filter, restricted to `ids` when given: one bounded step of
    /// a replay, going on after the dead-letter key `after` (the previous step's `next`).
    Dead {
        filter: query::Filter,
        ids: Option<Vec<DeliveryId>>,
        after: Option<(u64, u128)>,
    },
    /// One delivery, whatever its status (unless it is being sent right now).
    One(DeliveryId),
    /// Every delivery of an endpoint that is not delivered (waiting, retrying or dead), whose
    /// event arrived in [since, until).
    Recover {
        endpoint: String,
        since_ms: u64,
        until_ms: u64,
    },
}

/// What a requeue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Due now, each with its endpoint, in a fresh retry cycle.
    pub deliveries: Vec<(DeliveryId, String)>,
    /// Asked for by id but being sent right now: left alone.
    pub in_flight: Vec<DeliveryId>,
    /// Selected, but their endpoint no longer exists: left as they are.
    pub removed: Vec<DeliveryId>,
    /// For a replay step that stopped at its bound: the dead-letter key to go on after.
    pub next: Option<(u64, u128)>,
}

/// Dead letters a replay step requeues at most: a replay of any size is a series of such
/// transactions, so ingest never waits behind one huge one.
pub const REPLAY_STEP: usize = 100;
/// Dead-letter rows a replay step looks at at most (most may not match its filter).
pub const REPLAY_SCAN: usize = 10_000;

/// What an endpoint allows across every node: a claim on a store several nodes share enforces
/// them (a store only one process holds leaves them to that process's lane, which enforces
/// them itself). `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Deliveries held (leased) at once for the endpoint, by every node together.
    pub max_in_flight: Option<u32>,
    /// Sends per second and the burst, by every node together.
    pub rate: Option<(u32, u32)>,
    /// The endpoint has a breaker: the claim takes only what its health admits
    /// (`store::health::admit`), the probe alone when it is open past its cool-down, and
    /// nothing while it is open or disabled. Without one, its health is not consulted.
    pub breaker: bool,
    /// A pull consumer takes these (`kind = "pull"`): **the lease is committed before the
    /// claim answers, and it outlives the process that took it**: neither a restart nor a
    /// node's departure takes it back; it runs out on its own (and is then due again, marked
    /// [`DueDelivery::lease_expired`]).
    pub pull: bool,
}

/// A delivery that is due, with what its lane needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery_id: DeliveryId,
    /// Set by `Store::claim`: the lease this delivery is held under, which its completion
    /// names. `None` from a plain read (`Store::due`).
    pub lease_token: Option<u64>,
    pub event_id: EventId,
    /// Attempts already made; this one is `attempts + 1`.
    pub attempts: u32,
    /// Attempts already made in the current retry cycle.
    pub cycle_attempts: u32,
    /// When the current retry cycle began, moved later by the time the endpoint was held
    /// since (by a claim that reads its health): `max_age` counts from here.
    pub cycle_started_ms: u64,
    /// The endpoint's held-time clock when the cycle began (`Delivery::cycle_held_ms`).
    pub cycle_held_ms: u64,
    /// This delivery is the breaker's probe: the one attempt a half-open endpoint makes.
    pub probe: bool,
    /// It was due because a lease ran out (it was `delivering`): its holder never reported.
    /// A pull consumer's lease that runs out counts as a failed attempt.
    pub lease_expired: bool,
    /// When the event arrived.
    pub received_ms: u64,
    pub source: String,
    pub event_type: Option<String>,
    /// Every inbound header, as stored.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

/// A lane's view of its schedule.
#[derive(Debug, Default)]
pub struct DueBatch {
    pub items: Vec<DueDelivery>,
    /// The due time of the first entry not taken (in the future, or skipped as in flight).
    pub next_due_ms: Option<u64>,
    /// The endpoint's breaker as the claim found it (or left it, granting a probe), when the
    /// claim consulted it (`ClaimLimits::breaker`).
    pub health: Option<super::health::Health>,
}
