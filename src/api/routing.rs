//! The routing of a stored event, as `GET /api/v1/events/{id}` and the console's event page
//! show it: which endpoints it matched at ingest, and for each other one the stage (source,
//! event type, filter) and the filter clause that turned it away, evaluated now.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::trials::miss_reason;
use crate::filter::{Miss, Request};
use crate::model::Endpoint;
use crate::model::event::{Event, Payload};

/// One endpoint in an event's routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoutingView {
    pub endpoint: String,
    /// It got a delivery of the event at ingest.
    pub matched: bool,
    pub delivery_id: Option<String>,
    /// Null when matched; else `source`, `event_type`, `filter`, or `changed` (it would
    /// match now: the endpoint changed, or was made, after the event arrived).
    pub stage: Option<String>,
    pub clause: Option<String>,
    pub reason: String,
}

/// A stored event's routing over `endpoints` (those in force now): each endpoint with a
/// delivery of it matched at ingest; each other one says why not, evaluated now. One that
/// would match now did not then: it or its filter changed, or it was made, since.
pub fn routing(endpoints: &[Endpoint], event: &Event, payload: &Payload) -> Vec<RoutingView> {
    let req = Request {
        source: &event.source,
        event_type: event.event_type.as_deref(),
        headers: &payload.headers,
        body: &payload.body,
        query: &payload.query,
    };
    let delivered = |id: &str| {
        event
            .deliveries
            .iter()
            .find(|(_, e)| e == id)
            .map(|(d, _)| d.to_string())
    };
    let mut out: Vec<RoutingView> = endpoints
        .iter()
        .map(|e| match delivered(&e.id) {
            Some(d) => RoutingView {
                endpoint: e.id.clone(),
                matched: true,
                delivery_id: Some(d),
                stage: None,
                clause: None,
                reason: "matched when the event arrived".into(),
            },
            None => match crate::filter::explain(e, &req) {
                Ok(()) => RoutingView {
                    endpoint: e.id.clone(),
                    matched: false,
                    delivery_id: None,
                    stage: Some("changed".into()),
                    clause: None,
                    reason: "it matches now but did not when the event arrived: the endpoint \
                             changed, or was made, since"
                        .into(),
                },
                Err(miss) => RoutingView {
                    endpoint: e.id.clone(),
                    matched: false,
                    delivery_id: None,
                    stage: Some(miss.stage().into()),
                    clause: match &miss {
                        Miss::Filter(r) => Some(r.clause.clone()),
                        _ => None,
                    },
                    reason: miss_reason(e, &req, &miss),
                },
            },
        })
        .collect();
    // Endpoints deleted since still show where the event went.
    for (d, id) in &event.deliveries {
        if !endpoints.iter().any(|e| &e.id == id) {
            out.push(RoutingView {
                endpoint: id.clone(),
                matched: true,
                delivery_id: Some(d.to_string()),
                stage: None,
                clause: None,
                reason: "matched when the event arrived; the endpoint is gone since".into(),
            });
        }
    }
    out
}
