//! What the endpoint page's tests check beyond the console user (`crate::console_user`).

use crate::harness::Received;

/// The event id a test-event redirect carries.
pub fn test_event_of(location: &str) -> hookgate::ids::EventId {
    let id = location
        .split("test=")
        .nth(1)
        .unwrap_or_else(|| panic!("no test event in {location}"));
    id.parse().expect("an event id")
}

/// Verifies a received delivery's Standard Webhooks signature with `secret`.
pub fn verifies(r: &Received, secret: &str) -> bool {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(v) = r.headers.get(name) {
            headers.insert(name, v.clone());
        }
    }
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(&r.body, &headers)
        .is_ok()
}
