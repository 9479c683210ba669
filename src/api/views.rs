//! The JSON shapes of the admin API, as SPEC names their fields: **the one vocabulary of the
//! API's answers**. Handlers build them from the model (`model::event`) and serialize them; the
//! operator CLI (`cli::operator`), and any other client in this crate, deserializes answers
//! into the same types rather than indexing loose JSON, so a renamed field fails to decode
//! instead of printing blank cells. The OpenAPI document (`api::openapi`) is derived from them
//! too, so it cannot describe a shape the API does not send.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::rfc3339;
use crate::model::event as model;

pub use crate::respond::{ErrorBody, ErrorDetail};

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    /// `pending`, `delivering`, `retrying`, `delivered` or `dead`.
    pub status: String,
    pub attempts: u32,
    /// RFC 3339; null unless pending or retrying, and while blocked.
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// For an endpoint with `ordering`: the delivery's order key (`""` for one order over the
    /// endpoint, or an event without the key's field); absent when unordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    /// Waiting behind an earlier delivery of its order key: it goes once that one is
    /// delivered or dead.
    #[serde(default)]
    pub blocked: bool,
}

impl From<&model::Delivery> for Delivery {
    fn from(d: &model::Delivery) -> Self {
        Delivery {
            delivery_id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            endpoint_id: d.endpoint_id.clone(),
            status: d.status.as_str().into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_ms().map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            order_key: d.order.as_ref().map(|(k, _)| k.clone()),
            blocked: d.blocked,
        }
    }
}

/// An accepted webhook or published event, with each delivery's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub event_id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub deliveries: Vec<Delivery>,
    /// One event's page only (not lists): every endpoint in force, whether the event matched
    /// it at ingest, and if not, why (the stage and filter clause that turned it away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Vec<super::routing::RoutingView>>,
}

impl From<&model::EventWithDeliveries> for Event {
    fn from(v: &model::EventWithDeliveries) -> Self {
        Event {
            event_id: v.event.id.to_string(),
            source: v.event.source.clone(),
            event_type: v.event.event_type.clone(),
            received_at: rfc3339(v.event.received_ms),
            deliveries: v.deliveries.iter().map(Delivery::from).collect(),
            routing: None,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: usize,
    /// RFC 3339.
    pub at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response_excerpt: String,
}

impl Attempt {
    /// Attempt `number` (1 for the first) of a delivery.
    pub fn new(number: usize, a: &model::Attempt) -> Self {
        Attempt {
            attempt: number,
            at: rfc3339(a.at_ms),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            response_excerpt: String::from_utf8_lossy(&a.response_excerpt).into_owned(),
        }
    }
}

/// A delivery with every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}

impl DeliveryDetail {
    /// A delivery and its attempts, in order.
    pub fn new(d: &model::Delivery, attempts: &[model::Attempt]) -> Self {
        DeliveryDetail {
            delivery: Delivery::from(d),
            attempt_log: attempts
                .iter()
                .enumerate()
                .map(|(i, a)| Attempt::new(i + 1, a))
                .collect(),
        }
    }
}

/// A delivery that will not be attempted again unless replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub dead_at: String,
}

impl From<&model::DeadLetter> for DeadLetterView {
    fn from(d: &model::DeadLetter) -> Self {
        DeadLetterView {
            delivery_id: d.delivery_id.to_string(),
            event_id: d.event_id.to_string(),
            endpoint_id: d.endpoint_id.clone(),
            source: d.source.clone(),
            event_type: d.event_type.clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            dead_at: rfc3339(d.dead_at_ms),
        }
    }
}

/// A page of a list: `next_cursor` is null on the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The answer to an accepted (202) or duplicate (200) event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub replayed: usize,
    /// Dead letters that matched but whose endpoint no longer exists: left dead.
    pub endpoint_removed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recovered {
    pub recovered: usize,
    /// Being sent right now, so left alone.
    pub in_flight: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetryAccepted {
    pub delivery_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PauseState {
    pub id: String,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
    /// For an endpoint: deliveries it still had, now dead letters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    pub id: String,
    /// `whsec_…`, or null when the endpoint does not sign.
    pub secret: Option<String>,
    /// The URL with its user info and query values, which other routes mask; absent for a
    /// pull endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rotated {
    pub id: String,
    pub secret: String,
    /// RFC 3339: until then the old secret signs too.
    pub previous_until: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimitView {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetryView {
    pub max_attempts: u32,
    pub base_ms: u64,
    pub max_delay_ms: u64,
    pub max_age_ms: u64,
}

/// An endpoint's circuit breaker, resolved (issue 17: parsed and validated, not yet enforced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakerView {
    pub window_ms: u64,
    pub min_attempts: u32,
    /// In (0, 1].
    pub failure_rate: f64,
    pub cool_down_ms: u64,
}

/// An endpoint's delivery order, as configured: `"endpoint"`, or `{"key": {"json": pointer}}`
/// or `{"key": {"header": name}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderingView {
    Endpoint,
    Key(FieldView),
}

/// An endpoint; its secret is never shown here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    /// User info and query values masked (`***`): see the secret route for the whole URL.
    /// Absent for a pull endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `push` (POSTed to `url`) or `pull` (taken by consumers: `messages:receive`).
    pub kind: String,
    /// `file` or `api`.
    pub origin: String,
    pub sources: Vec<String>,
    pub event_types: Option<Vec<String>>,
    pub paused: bool,
    pub signs: bool,
    pub max_in_flight: u32,
    pub rate_limit: Option<RateLimitView>,
    pub timeout_ms: u64,
    pub retry: RetryView,
    /// Names only: values may be credentials.
    pub headers: Vec<String>,
    pub forward_headers: Option<Vec<String>>,
    /// null: `breaker = "off"`.
    pub breaker: Option<BreakerView>,
    /// null: `"off"`, or no breaker.
    pub disable_after_ms: Option<u64>,
    /// null: no order.
    pub ordering: Option<OrderingView>,
    /// Its payload filter as written; null: none.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Its transform (a jq program); null: none.
    #[serde(default)]
    pub transform: Option<String>,
    /// When it removes itself (RFC 3339); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Where its circuit breaker stands, and what it holds.
    #[serde(default)]
    pub health: HealthView,
}

/// An endpoint's circuit breaker, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `closed`, `open` (nothing is sent until `until`), `half_open` (one probe out) or
    /// `disabled` (nothing is sent until an operator enables it).
    pub state: String,
    /// RFC 3339: when it entered this state; null when closed since it was made.
    pub since: Option<String>,
    /// RFC 3339, open only: when it sends its next probe.
    pub until: Option<String>,
    /// Times it opened in this spell (the first opening and each failed probe).
    pub trips: u32,
    /// Deliveries waiting while it is not closed (new events for it are still stored).
    pub held: u64,
    /// RFC 3339: since when it has been failing (and holding); null when closed.
    pub held_since: Option<String>,
}

impl Default for HealthView {
    fn default() -> Self {
        HealthView {
            state: "closed".into(),
            since: None,
            until: None,
            trips: 0,
            held: 0,
            held_since: None,
        }
    }
}

/// What `POST /api/v1/endpoints/{id}/enable` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnabledView {
    pub id: String,
    /// `closed`: it sends again.
    pub state: String,
    /// Deliveries that were held (going out now, in due order, unless discarded).
    pub held: u64,
    /// Of those, dead-lettered on request (`discard_held`), with the reason `discarded on enable`.
    pub discarded: u64,
}

/// Where a source finds a value: `{"header": name}` or `{"json": pointer}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldView {
    Header(String),
    Json(String),
}

/// A source; its secrets are never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceView {
    pub id: String,
    pub verify: String,
    pub origin: String,
    pub inbound_url: String,
    pub dedup: Option<FieldView>,
    pub event_type: Option<FieldView>,
    pub dedup_window_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeliveryId, EventId};
    use crate::model::event::DeliveryStatus;

    fn delivery(status: DeliveryStatus) -> model::Delivery {
        model::Delivery {
            id: DeliveryId(2),
            event_id: EventId(1),
            endpoint_id: "billing".into(),
            status,
            attempts: 1,
            due_ms: 1_700_000_060_000,
            created_ms: 1_700_000_000_000,
            updated_ms: 1_700_000_001_000,
            last_status_code: Some(503),
            last_error: Some("HTTP 503".into()),
            cycle_base: 0,
            cycle_started_ms: 1_700_000_000_000,
            order: None,
            blocked: false,
            cycle_held_ms: 0,
        }
    }

    /// What the API sends decodes into the same type: the CLI and a console read answers
    /// with the very types the handlers wrote them with.
    #[test]
    fn every_view_reads_back_what_it_wrote() {
        let event = Event::from(&model::EventWithDeliveries {
            event: model::Event {
                id: EventId(1),
                source: "stripe".into(),
                event_type: None,
                received_ms: 1_700_000_000_000,
                dedup_key: None,
                deliveries: vec![(DeliveryId(2), "billing".into())],
            },
            deliveries: vec![delivery(DeliveryStatus::Retrying)],
        });
        assert_eq!(event.deliveries[0].status, "retrying");
        assert_eq!(
            event.deliveries[0].next_attempt_at.as_deref(),
            Some("2023-11-14T22:14:20.000Z")
        );
        let page = Page {
            data: vec![event],
            next_cursor: Some("evt_x".into()),
        };
        let json = serde_json::to_value(&page).expect("serializes");
        assert_eq!(json["data"][0]["type"], serde_json::Value::Null);
        assert_eq!(Page::<Event>::deserialize(&json).expect("decodes"), page);

        let detail = DeliveryDetail::new(
            &delivery(DeliveryStatus::Delivering),
            &[model::Attempt {
                at_ms: 1_700_000_001_000,
                status_code: Some(503),
                latency_ms: 40,
                error: Some("HTTP 503".into()),
                response_excerpt: b"busy".to_vec(),
            }],
        );
        // Flattened: the delivery's fields beside the log, as SPEC shows them.
        let json = serde_json::to_value(&detail).expect("serializes");
        assert_eq!(json["status"], "delivering");
        assert_eq!(json["next_attempt_at"], serde_json::Value::Null);
        assert_eq!(json["attempt_log"][0]["attempt"], 1);
        assert_eq!(DeliveryDetail::deserialize(&json).expect("decodes"), detail);

        let dead = DeadLetterView::from(&model::DeadLetter {
            delivery_id: DeliveryId(2),
            event_id: EventId(1),
            endpoint_id: "billing".into(),
            source: "stripe".into(),
            event_type: Some("charge.failed".into()),
            attempts: 3,
            last_error: None,
            dead_at_ms: 1_700_000_002_000,
        });
        let json = serde_json::to_value(&dead).expect("serializes");
        assert_eq!(json["type"], "charge.failed");
        assert_eq!(DeadLetterView::deserialize(&json).expect("decodes"), dead);
    }

    /// A field renamed on one side fails to decode rather than reading as empty.
    #[test]
    fn an_answer_missing_a_field_does_not_decode() {
        let view = DeadLetterView::from(&model::DeadLetter {
            delivery_id: DeliveryId(2),
            event_id: EventId(1),
            endpoint_id: "billing".into(),
            source: "stripe".into(),
            event_type: None,
            attempts: 3,
            last_error: None,
            dead_at_ms: 0,
        });
        let mut json = serde_json::to_value(&view).expect("serializes");
        let dead_at = json
            .as_object_mut()
            .and_then(|o| o.remove("dead_at"))
            .expect("has dead_at");
        json["died_at"] = dead_at;
        let err = DeadLetterView::deserialize(&json).expect_err("refused");
        assert!(err.to_string().contains("dead_at"), "{err}");
    }
}
