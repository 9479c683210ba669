//! Delivery targets: the seam between scheduling and sending. A lane schedules, limits and
//! leases; a [`Target`] sends one delivery and reports what came of it in the retry policy's
//! transport-neutral terms ([`Outcome`]: delivered, failed with an optional requested delay, or
//! refused for good), with the attempt's record for the log and the class it is counted under.
//! **A target never fails**: every failure is an outcome, so every attempt is recorded.
//!
//! HTTP is the one target today ([`super::http`]); the SSRF guard and the signing stay with it.
//! To add another: a file beside `http.rs` with a target whose `send` answers an [`Attempted`],
//! a variant of `model::Destination` that config validates, and a variant (and arm) here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::http::reshape::{Failed, Reshaped, Reshaping};
use super::http::{HttpTarget, HttpTransport};
use super::retry::Outcome;
use crate::filter::Routes;
use crate::model::endpoint::{Destination, Endpoint};
use crate::model::event::Attempt;
use crate::model::reach::Reach;
use crate::store::DueDelivery;
use crate::verify::SchemeKind;

/// One attempt at one delivery, as a target sends it.
pub struct Outbound<'a> {
    pub delivery: &'a DueDelivery,
    /// The scheme of the event's source, if it still exists: which inbound headers a delivery
    /// passes on by default.
    pub scheme: Option<SchemeKind>,
    pub now_ms: u64,
    /// What the target started for this delivery when it was claimed ([`Target::ahead`]).
    pub ahead: Option<Ahead>,
}

/// Work a target starts for a delivery before its turn to be sent (today: the endpoint's
/// transform, queued in a worker), so that it overlaps with the requests before it rather
/// than holding a sending slot. Dropping it gives the work up.
#[derive(Debug)]
pub enum Ahead {
    /// Queued, not yet answered.
    Reshaping(Reshaping),
    /// Answered.
    Done(Ready),
}

/// What a transform made of a delivery, and how long the delivery's turn waited for it (the
/// attempt's latency if the transform failed or dropped the delivery).
#[derive(Debug)]
pub struct Ready {
    pub result: Result<Reshaped, Failed>,
    pub waited_ms: u64,
}

impl Ahead {
    /// The answer, waited for if there is none yet. A lane calls it when the delivery's turn
    /// comes, before it takes a sending slot.
    pub async fn ready(self) -> Ready {
        match self {
            Ahead::Reshaping(r) => {
                let waited = Instant::now();
                let result = r.finish().await;
                let waited_ms = u64::try_from(waited.elapsed().as_millis()).unwrap_or(u64::MAX);
                Ready { result, waited_ms }
            }
            Ahead::Done(ready) => ready,
        }
    }
}

/// What a target starts ahead for a batch a lane claimed: for at most the next `size`
/// deliveries beyond the one being dispatched (the lane gives twice its sending slots), so
/// what waits answered for its turn (a transform's output, up to `max_output_bytes` each)
/// stays bounded by the endpoint's `max_in_flight`, not by its claim.
pub struct AheadWindow<'a> {
    target: &'a Target,
    routes: Arc<Routes>,
    size: usize,
    started: VecDeque<(Option<SchemeKind>, Option<Ahead>)>,
}

impl<'a> AheadWindow<'a> {
    /// Starts the first `size` (at least 1) of `batch`.
    pub fn new(
        target: &'a Target,
        routes: Arc<Routes>,
        size: usize,
        batch: &VecDeque<DueDelivery>,
    ) -> Self {
        let mut window = AheadWindow {
            target,
            routes,
            size: size.max(1),
            started: VecDeque::new(),
        };
        for d in batch.iter().take(window.size) {
            window.start(d);
        }
        window
    }

    fn start(&mut self, d: &DueDelivery) {
        let scheme = self.routes.sources.get(&d.source).map(|s| s.scheme);
        let ahead = self.target.ahead(d, scheme);
        self.started.push_back((scheme, ahead));
    }

    /// The scheme and ahead work of the delivery just taken from the front of the batch
    /// (`rest` is what is left). Once half the window is used up it is filled again at once,
    /// so a worker gets runs in batches (a batch costs both processes a few wake-ups and
    /// system calls whatever its size) rather than one at a time.
    pub fn next(&mut self, rest: &VecDeque<DueDelivery>) -> (Option<SchemeKind>, Option<Ahead>) {
        let taken = self.started.pop_front().unwrap_or_default();
        // `started` holds the first of `rest`, in order.
        for i in refill(self.started.len(), self.size) {
            match rest.get(i) {
                Some(d) => self.start(d),
                None => break,
            }
        }
        taken
    }
}

/// Which of the deliveries left in a batch to start, when the first `started` of them are
/// started and the window holds `size`: none until half of it is used, then up to its end.
fn refill(started: usize, size: usize) -> std::ops::Range<usize> {
    if started <= size / 2 {
        started..size
    } else {
        started..started
    }
}

#[cfg(test)]
mod tests {
    use super::refill;

    #[test]
    fn the_window_is_filled_again_only_once_half_of_it_is_used() {
        assert_eq!(refill(127, 128), 127..127);
        assert_eq!(refill(65, 128), 65..65);
        assert_eq!(refill(64, 128), 64..128, "half used: filled to the end");
        assert_eq!(refill(0, 128), 0..128);
        // A window of one starts the next as each is taken.
        assert_eq!(refill(0, 1), 0..1);
    }
}

/// What an attempt came to.
#[derive(Debug)]
pub struct Attempted {
    pub outcome: Outcome,
    pub record: Attempt,
    /// The class it is counted under in `hookgate_delivery_attempts_total` (for HTTP: `2xx` …
    /// `5xx`, `timeout`, `connect`, `blocked`, `error`).
    pub class: &'static str,
}

/// What targets share across endpoints: connection pools, and the policies they enforce.
#[derive(Debug, Clone)]
pub struct Transports {
    pub http: HttpTransport,
}

impl Transports {
    pub fn new(
        reach: Reach,
        transforms: Arc<crate::transform::Pool>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Transports {
            http: HttpTransport::new(reach, transforms)?,
        })
    }
}

/// Where one endpoint's deliveries are sent.
#[derive(Debug, Clone)]
pub enum Target {
    Http(HttpTarget),
}

impl Target {
    /// The target for an endpoint's destination; none for a pull endpoint, which nothing
    /// sends to (its consumers take its deliveries: `delivery::pull`).
    pub fn new(endpoint: Arc<Endpoint>, transports: &Transports) -> Option<Self> {
        match &endpoint.destination {
            Destination::Http { url } => {
                let url = url.clone();
                Some(Target::Http(HttpTarget::new(
                    endpoint,
                    url,
                    transports.http.clone(),
                )))
            }
            Destination::Pull => None,
        }
    }

    /// Starts what can be done for `delivery` before its attempt (see [`Ahead`]).
    pub fn ahead(&self, delivery: &DueDelivery, scheme: Option<SchemeKind>) -> Option<Ahead> {
        match self {
            Target::Http(t) => t.ahead(delivery, scheme),
        }
    }

    /// Sends one attempt.
    pub async fn send(&self, out: Outbound<'_>) -> Attempted {
        match self {
            Target::Http(t) => t.send(out).await,
        }
    }
}
