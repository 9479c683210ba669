//! The JSON shapes of the admin API, as SPEC names their fields.

use serde_json::{Value, json};

use super::params::rfc3339;
use crate::ids::{DeliveryId, EventId};
use crate::store::query::{DeadLetter, EventView};
use crate::store::{AttemptRecord, DeliveryRecord, DeliveryStatus};

pub fn delivery(id: DeliveryId, d: &DeliveryRecord) -> Value {
    let next_attempt_at = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying)
        .then(|| rfc3339(d.due_ms));
    json!({
        "delivery_id": id.to_string(),
        "event_id": EventId(d.event_id).to_string(),
        "endpoint_id": d.endpoint_id,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": next_attempt_at,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
    })
}

pub fn event(v: &EventView) -> Value {
    json!({
        "event_id": v.id.to_string(),
        "source": v.event.source,
        "type": v.event.event_type,
        "received_at": rfc3339(v.event.received_ms),
        "deliveries": v.deliveries.iter().map(|(id, d)| delivery(*id, d)).collect::<Vec<_>>(),
    })
}

pub fn attempt(number: usize, a: &AttemptRecord) -> Value {
    json!({
        "attempt": number,
        "at": rfc3339(a.at_ms),
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response_excerpt": String::from_utf8_lossy(&a.response_excerpt),
    })
}

pub fn dead_letter(d: &DeadLetter) -> Value {
    json!({
        "delivery_id": d.delivery_id.to_string(),
        "event_id": d.event_id.to_string(),
        "endpoint_id": d.endpoint_id,
        "source": d.source,
        "type": d.event_type,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "dead_at": rfc3339(d.dead_at_ms),
    })
}
