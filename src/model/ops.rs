//! hookgate's own operational events, published under the reserved source `hookgate`
//! ([`HOOKGATE_SOURCE`](crate::model::HOOKGATE_SOURCE)) to the endpoints that subscribe to it.
//! Each is a JSON body `{"type", "timestamp", "data"}`; `data` is documented per type in the
//! README. This module only says what each event carries and how its body reads: the store
//! writes them in the transaction of the change they report (`store::redb` and
//! `store::postgres` keep an outbox), and `ops` publishes them.

use serde_json::{Value, json};

/// One operational event, before it is published.
#[derive(Debug, Clone, PartialEq)]
pub enum OpsEvent {
    /// `endpoint.failing`: the breaker opened (closed → open; not a re-open after a probe).
    Failing {
        endpoint: String,
        attempts: u32,
        failures: u32,
        window_ms: u64,
        cool_down_ms: u64,
        last_status_code: Option<u16>,
        last_error: Option<String>,
    },
    /// `endpoint.recovered`: a probe was delivered and the breaker closed.
    Recovered {
        endpoint: String,
        failing_since_ms: Option<u64>,
    },
    /// `endpoint.disabled`: a probe failed after `disable_after` of failing.
    Disabled {
        endpoint: String,
        failing_since_ms: Option<u64>,
        disable_after_ms: u64,
    },
    /// `endpoint.enabled`: an operator enabled it.
    Enabled {
        endpoint: String,
        held: u64,
        discarded: u64,
    },
    /// `delivery.dead`: a delivery died by its retry policy (attempts or age).
    DeliveryDead {
        delivery_id: String,
        event_id: String,
        endpoint: String,
        source: String,
        event_type: Option<String>,
        attempts: u32,
        last_status_code: Option<u16>,
        last_error: Option<String>,
    },
    /// `backlog.high`: pending deliveries reached the configured level.
    BacklogHigh {
        pending: u64,
        level: u64,
        top: Vec<(String, u64)>,
    },
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

impl OpsEvent {
    /// Its type, as subscribers filter on it (`event_types = ["endpoint.*"]`).
    pub fn event_type(&self) -> &'static str {
        match self {
            OpsEvent::Failing { .. } => "endpoint.failing",
            OpsEvent::Recovered { .. } => "endpoint.recovered",
            OpsEvent::Disabled { .. } => "endpoint.disabled",
            OpsEvent::Enabled { .. } => "endpoint.enabled",
            OpsEvent::DeliveryDead { .. } => "delivery.dead",
            OpsEvent::BacklogHigh { .. } => "backlog.high",
        }
    }

    /// The endpoint it is about: **it is never sent to that endpoint**, so an operational
    /// endpoint's own failures do not come back to it.
    pub fn subject(&self) -> Option<&str> {
        match self {
            OpsEvent::Failing { endpoint, .. }
            | OpsEvent::Recovered { endpoint, .. }
            | OpsEvent::Disabled { endpoint, .. }
            | OpsEvent::Enabled { endpoint, .. }
            | OpsEvent::DeliveryDead { endpoint, .. } => Some(endpoint),
            OpsEvent::BacklogHigh { .. } => None,
        }
    }

    fn data(&self) -> Value {
        match self {
            OpsEvent::Failing {
                endpoint,
                attempts,
                failures,
                window_ms,
                cool_down_ms,
                last_status_code,
                last_error,
            } => json!({
                "endpoint_id": endpoint,
                "attempts": attempts,
                "failures": failures,
                "failure_rate": if *attempts == 0 { 0.0 } else { f64::from(*failures) / f64::from(*attempts) },
                "window_s": window_ms / 1000,
                "cool_down_s": cool_down_ms / 1000,
                "last_status_code": last_status_code,
                "last_error": last_error,
            }),
            OpsEvent::Recovered {
                endpoint,
                failing_since_ms,
            } => json!({
                "endpoint_id": endpoint,
                "failing_since": failing_since_ms.map(time),
            }),
            OpsEvent::Disabled {
                endpoint,
                failing_since_ms,
                disable_after_ms,
            } => json!({
                "endpoint_id": endpoint,
                "failing_since": failing_since_ms.map(time),
                "disable_after_s": disable_after_ms / 1000,
            }),
            OpsEvent::Enabled {
                endpoint,
                held,
                discarded,
            } => json!({ "endpoint_id": endpoint, "held": held, "discarded": discarded }),
            OpsEvent::DeliveryDead {
                delivery_id,
                event_id,
                endpoint,
                source,
                event_type,
                attempts,
                last_status_code,
                last_error,
            } => json!({
                "delivery_id": delivery_id,
                "event_id": event_id,
                "endpoint_id": endpoint,
                "source": source,
                "event_type": event_type,
                "attempts": attempts,
                "last_status_code": last_status_code,
                "last_error": last_error,
            }),
            OpsEvent::BacklogHigh {
                pending,
                level,
                top,
            } => json!({
                "pending": pending,
                "level": level,
                "top": top.iter().map(|(e, n)| json!({"endpoint_id": e, "pending": n})).collect::<Vec<_>>(),
            }),
        }
    }

    /// The body subscribers get: `{"type", "timestamp", "data"}`, `timestamp` being when it
    /// happened (`at_ms`).
    pub fn body(&self, at_ms: u64) -> Vec<u8> {
        json!({ "type": self.event_type(), "timestamp": time(at_ms), "data": self.data() })
            .to_string()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_has_its_type_subject_and_documented_body() {
        let failing = OpsEvent::Failing {
            endpoint: "billing".into(),
            attempts: 20,
            failures: 15,
            window_ms: 60_000,
            cool_down_ms: 30_000,
            last_status_code: Some(503),
            last_error: Some("HTTP 503".into()),
        };
        assert_eq!(failing.event_type(), "endpoint.failing");
        assert_eq!(failing.subject(), Some("billing"));
        let body: Value = serde_json::from_slice(&failing.body(1_700_000_000_000)).expect("json");
        assert_eq!(body["type"], "endpoint.failing");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body["data"]["failure_rate"], 0.75);
        assert_eq!(body["data"]["window_s"], 60);
        assert_eq!(body["data"]["last_status_code"], 503);
        let high = OpsEvent::BacklogHigh {
            pending: 900,
            level: 800,
            top: vec![("a".into(), 600)],
        };
        assert_eq!(high.subject(), None);
        let body: Value = serde_json::from_slice(&high.body(0)).expect("json");
        assert_eq!(body["data"]["top"][0]["endpoint_id"], "a");
        let types: Vec<&str> = [
            OpsEvent::Recovered {
                endpoint: "e".into(),
                failing_since_ms: None,
            },
            OpsEvent::Disabled {
                endpoint: "e".into(),
                failing_since_ms: Some(0),
                disable_after_ms: 3_600_000,
            },
            OpsEvent::Enabled {
                endpoint: "e".into(),
                held: 1,
                discarded: 0,
            },
        ]
        .iter()
        .map(OpsEvent::event_type)
        .collect();
        assert_eq!(
            types,
            [
                "endpoint.recovered",
                "endpoint.disabled",
                "endpoint.enabled"
            ]
        );
    }
}
