//! The one ingest path, shared by webhooks (`ingress`) and events published through the admin
//! API (`api::publish`): route the event to the endpoints that subscribe to its source and
//! type and whose payload filter it passes, and store it with one delivery each, in one transaction. The store answers only after
//! the commit, and announces the new work to the endpoints' lanes itself
//! (`store::notices`), so a caller has nothing left to do but answer.

use sha2::Digest;

use crate::filter::Routes;
use crate::ingress::extract::{self, LazyJson};
use crate::model::Ordering;
use crate::store::{IngestOutcome, NewEvent, Store, StoreError};
use crate::verify::Field;

/// An event as it arrives, before routing: a [`NewEvent`] without its endpoints.
pub struct Incoming {
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    /// The provider's delivery id (or an idempotency key) and how long to remember it.
    pub dedup: Option<(String, u64)>,
    /// The namespace of `dedup`; `None` is the source id.
    pub dedup_scope: Option<String>,
    /// A hash of the body as a second dedup key, and how long to remember it.
    pub body_dedup: Option<(String, u64)>,
    /// The memory the request holds against the ingress budget, released once written.
    pub budget: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request's query string (`""` for none): payload filters may read it.
    pub query: String,
    /// The body as ingress parsed it, if it did (`Some(None)`: not JSON): routing reuses it.
    pub parsed: Option<Option<serde_json::Value>>,
    pub body: bytes::Bytes,
}

/// Routes `incoming` by `routes` and stores it: accepted (on disk, with its deliveries), a
/// duplicate, or not stored.
pub async fn ingest(
    store: &Store,
    routes: &Routes,
    mut incoming: Incoming,
) -> Result<IngestOutcome, StoreError> {
    // One parse of the body, if any, for the filters and the order keys alike (and none when
    // ingress parsed it already).
    let mut json = LazyJson::from_parsed(&incoming.body, incoming.parsed.take());
    let endpoints = routes.route(
        &crate::filter::Request {
            source: &incoming.source,
            event_type: incoming.event_type.as_deref(),
            headers: &incoming.headers,
            body: &incoming.body,
            query: &incoming.query,
        },
        json.parsed(),
    );
    let order_keys = order_keys_in(routes, &endpoints, &incoming.headers, &mut json);
    store
        .ingest(NewEvent {
            source: incoming.source,
            event_type: incoming.event_type,
            received_ms: incoming.received_ms,
            dedup: incoming.dedup,
            dedup_scope: incoming.dedup_scope,
            body_dedup: incoming.body_dedup,
            budget: incoming.budget,
            headers: incoming.headers,
            query: incoming.query,
            body: incoming.body,
            endpoints,
            order_keys,
        })
        .await
}

/// The order keys of an event routed to `endpoints`: one for each that orders (the body is
/// parsed as JSON at most once, and only if one orders by a body field).
pub fn order_keys(
    routes: &Routes,
    endpoints: &[String],
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Vec<(String, String)> {
    order_keys_in(routes, endpoints, headers, &mut LazyJson::new(body))
}

/// [`order_keys`] reading the body through `json`.
fn order_keys_in(
    routes: &Routes,
    endpoints: &[String],
    headers: &[(String, Vec<u8>)],
    json: &mut LazyJson<'_>,
) -> Vec<(String, String)> {
    routes
        .endpoints
        .iter()
        .filter(|e| endpoints.contains(&e.id))
        .filter_map(|e| {
            let ordering = e.ordering.as_ref()?;
            Some((e.id.clone(), order_key(ordering, headers, json)))
        })
        .collect()
}

/// The order key of an event for an endpoint that orders by `ordering`: `""` for one order
/// over the endpoint, or when the field is absent (those events share one order); a value
/// too long to keep, or holding a NUL, is kept as `sha256:<hex>` of itself, so it still
/// orders with its equals.
pub fn order_key(
    ordering: &Ordering,
    headers: &[(String, Vec<u8>)],
    json: &mut LazyJson<'_>,
) -> String {
    let value = match ordering {
        Ordering::Endpoint => None,
        Ordering::Key(field) => match field.as_field() {
            Field::Header(name) => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string()),
            json_field => extract::field(json_field, &http::HeaderMap::new(), json),
        },
    };
    let value = value.unwrap_or_default();
    if extract::unstorable(&value).is_some() {
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(value.as_bytes()))
        )
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::FieldRef;

    fn key(ordering: &Ordering, headers: &[(&str, &str)], body: &[u8]) -> String {
        let headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        order_key(ordering, &headers, &mut LazyJson::new(body))
    }

    #[test]
    fn order_keys_come_from_the_body_or_a_header() {
        let by_customer = Ordering::Key(FieldRef::Json("/customer_id".into()));
        assert_eq!(
            key(&by_customer, &[], br#"{"customer_id":"cus_1"}"#),
            "cus_1"
        );
        assert_eq!(key(&by_customer, &[], br#"{"customer_id":42}"#), "42");
        assert_eq!(key(&by_customer, &[], br#"{"other":1}"#), "", "absent");
        assert_eq!(key(&by_customer, &[], b"not json"), "");
        let by_header = Ordering::Key(FieldRef::Header("x-order-key".into()));
        assert_eq!(key(&by_header, &[("x-order-key", " a ")], b""), "a");
        assert_eq!(key(&by_header, &[], b""), "");
        assert_eq!(key(&Ordering::Endpoint, &[("x-order-key", "a")], b"{}"), "");
    }

    #[test]
    fn keys_too_long_or_with_a_nul_are_kept_as_their_hash() {
        let by_header = Ordering::Key(FieldRef::Header("k".into()));
        let long = "x".repeat(extract::MAX_FIELD_LEN + 1);
        let hashed = key(&by_header, &[("k", long.as_str())], b"");
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_eq!(
            hashed,
            key(&by_header, &[("k", long.as_str())], b""),
            "stable"
        );
        let by_json = Ordering::Key(FieldRef::Json("/k".into()));
        let nul = key(&by_json, &[], br#"{"k":"a\u0000b"}"#);
        assert!(nul.starts_with("sha256:"), "{nul}");
    }
}
