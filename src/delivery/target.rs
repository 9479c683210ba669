//! Delivery targets: the seam between scheduling and sending. A lane schedules, limits and
//! leases; a [`Target`] sends one delivery and reports what came of it in the retry policy's
//! transport-neutral terms ([`Outcome`]: delivered, failed with an optional requested delay, or
//! refused for good), with the attempt's record for the log and the class it is counted under.
//! **A target never fails**: every failure is an outcome, so every attempt is recorded.
//!
//! HTTP is the one target today ([`super::http`]); the SSRF guard and the signing stay with it.
//! To add another: a file beside `http.rs` with a target whose `send` answers an [`Attempted`],
//! a variant of `model::Destination` that config validates, and a variant (and arm) here.

use std::sync::Arc;

use super::http::{HttpTarget, HttpTransport};
use super::retry::Outcome;
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

/// Work a target starts for a delivery as soon as it is claimed, before its turn to be sent
/// (today: the endpoint's transform, queued in a worker), so that it overlaps with the
/// requests before it rather than holding a sending slot. Dropping it gives the work up.
#[derive(Debug)]
pub enum Ahead {
    Reshaping(super::http::reshape::Reshaping),
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
