//! The request a receiver gets.
//!
//! It carries the original body and content type, the endpoint's own `headers` and the
//! forwarded inbound headers ([`prepare`]; an endpoint's transform may reshape all three:
//! `super::reshape`), then the Standard Webhooks headers (`webhook-id` is the event id, the same on
//! every retry and replay, so receivers can dedup) and hookgate's own `hookgate-source`,
//! `hookgate-event-type`, `hookgate-attempt`. **Every delivery is signed with the endpoint's
//! key(s)**, the current one and, during a rotation, the previous ones still in their overlap.

use http::{HeaderName, HeaderValue};

use crate::model::endpoint::{Endpoint, is_reserved_header};
use crate::store::DueDelivery;
use crate::verify::{self, standard_webhooks};
use crate::verify::{Field, SchemeKind};

/// What a delivery sends before hookgate adds its own headers and signs: the body, the
/// endpoint's and the forwarded headers, and the event type. A transform may reshape it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: bytes::Bytes,
    pub event_type: Option<String>,
}

/// An event as stored (its headers, body and type) as a delivery to `endpoint` carries it:
/// with the endpoint's headers and the forwarded ones.
pub fn prepare(
    endpoint: &Endpoint,
    scheme: Option<SchemeKind>,
    stored_headers: &[(String, Vec<u8>)],
    body: &bytes::Bytes,
    event_type: Option<&str>,
) -> Prepared {
    let mut headers = endpoint.headers.clone();
    headers.extend(forwarded_headers(endpoint, scheme, stored_headers));
    Prepared {
        headers,
        body: body.clone(),
        event_type: event_type.map(str::to_string),
    }
}

/// The request for one attempt at `d`, carrying `p`: **the signature covers `p.body`**, the
/// bytes the receiver gets, transformed or not.
pub(super) fn build(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    url: &url::Url,
    d: &DueDelivery,
    p: Prepared,
    now_ms: u64,
) -> reqwest::RequestBuilder {
    let mut req = http.post(url.clone()).timeout(endpoint.timeout);
    let own = own_headers(endpoint, d, &p.body, p.event_type.as_deref(), now_ms);
    for (name, value) in p.headers {
        req = req.header(name, value);
    }
    // Ours last: configuration cannot name them (see `config::is_reserved_header`).
    for (name, value) in own {
        req = req.header(name, value);
    }
    req.body(p.body)
}

/// hookgate's own headers on a delivery of `d` carrying `body`: the Standard Webhooks ones,
/// **signed over `body`** with the endpoint's key(s), and `hookgate-source`,
/// `hookgate-attempt` and `hookgate-event-type`. A pulled message carries the same.
pub fn own_headers(
    endpoint: &Endpoint,
    d: &DueDelivery,
    body: &[u8],
    event_type: Option<&str>,
    now_ms: u64,
) -> Vec<(&'static str, HeaderValue)> {
    let event_id = d.event_id.to_string();
    let ts = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let mut own = Vec::with_capacity(6);
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            own.push((name, v));
        }
    };
    put("webhook-id", &event_id);
    put("webhook-timestamp", &ts.to_string());
    put("hookgate-source", &d.source);
    put("hookgate-attempt", &(d.attempts + 1).to_string());
    // During a secret rotation the old key signs beside the new one, space-separated, as
    // Standard Webhooks prescribes: receivers holding either secret accept.
    let signatures: Vec<String> = endpoint
        .keys_at(now_ms)
        .into_iter()
        .map(|key| standard_webhooks::sign(key.expose(), &event_id, ts, body))
        .collect();
    if !signatures.is_empty() {
        put("webhook-signature", &signatures.join(" "));
    }
    if let Some(t) = event_type {
        put("hookgate-event-type", t);
    }
    own
}

/// The inbound headers a delivery passes on: the content type always; then the endpoint's
/// `forward_headers`, or by default the provider's own event and delivery-id headers (never its
/// signature headers, which would not verify for the receiver anyway, unless listed).
pub fn forwarded_headers(
    endpoint: &Endpoint,
    scheme: Option<SchemeKind>,
    stored: &[(String, Vec<u8>)],
) -> Vec<(HeaderName, HeaderValue)> {
    forwarded(endpoint.forward_headers.as_deref(), scheme, stored)
}

/// [`forwarded_headers`] for an endpoint's `forward_headers` list (`None`: the scheme's
/// defaults); with neither, the content type alone (what `test-transform` without an endpoint
/// gives a program).
pub fn forwarded(
    forward_headers: Option<&[HeaderName]>,
    scheme: Option<SchemeKind>,
    stored: &[(String, Vec<u8>)],
) -> Vec<(HeaderName, HeaderValue)> {
    let defaults = scheme.map(verify::defaults);
    let wanted = |name: &str| -> bool {
        if name == "content-type" {
            return true;
        }
        if is_reserved_header(name) {
            return false;
        }
        match (forward_headers, defaults) {
            (Some(list), _) => list.iter().any(|h| h.as_str() == name),
            (None, Some(d)) => d
                .dedup
                .iter()
                .chain(d.event_type)
                .any(|f| matches!(f, Field::Header(h) if h.eq_ignore_ascii_case(name))),
            (None, None) => false,
        }
    };
    stored
        .iter()
        .filter(|(name, _)| wanted(name))
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn endpoint(extra: &str) -> Endpoint {
        let text = format!("[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\n{extra}\n");
        Config::from_toml(&text)
            .and_then(Config::validate)
            .expect("valid")
            .endpoints
            .remove(0)
    }

    fn stored() -> Vec<(String, Vec<u8>)> {
        [
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-1"),
            ("x-hub-signature-256", "sha256=00"),
            ("user-agent", "GitHub-Hookshot/1"),
            ("content-length", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    fn names(h: Vec<(HeaderName, HeaderValue)>) -> Vec<String> {
        h.into_iter().map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn by_default_the_providers_event_and_delivery_headers_pass() {
        let got = names(forwarded_headers(
            &endpoint(""),
            Some(SchemeKind::Github),
            &stored(),
        ));
        assert_eq!(got, ["content-type", "x-github-event", "x-github-delivery"]);
        // An unknown source passes the content type only.
        assert_eq!(
            names(forwarded_headers(&endpoint(""), None, &stored())),
            ["content-type"]
        );
    }

    #[test]
    fn forward_headers_replaces_the_default_and_may_name_signatures() {
        let e = endpoint("forward_headers = [\"X-Hub-Signature-256\", \"user-agent\"]");
        let got = names(forwarded_headers(&e, Some(SchemeKind::Github), &stored()));
        assert_eq!(got, ["content-type", "x-hub-signature-256", "user-agent"]);
    }

    #[test]
    fn with_no_endpoint_and_no_scheme_only_the_content_type_passes() {
        // What `test-transform` without an endpoint gives a program of a stored event.
        assert_eq!(names(forwarded(None, None, &stored())), ["content-type"]);
    }
}
