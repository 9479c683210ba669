//! Entry points for fuzzing, shared by the cargo-fuzz targets in `fuzz/` and by the test that
//! replays their corpora, so CI runs every saved input. Each takes arbitrary bytes and must
//! never panic.
//!
//! Verifier inputs are a header block (`name: value` lines; a `:path:` line sets the request
//! path and query), a blank line, then the body.

use std::sync::{LazyLock, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{Config, Validated};
use crate::model::Source;
use crate::verify::{Inbound, SchemeKind, key_values};

/// The time the verifier fuzzers run at: vector SW-1's timestamp.
pub const FUZZ_NOW: i64 = 1_614_265_330;

/// A request decoded from fuzz input.
pub struct FuzzRequest<'a> {
    pub headers: HeaderMap,
    pub path_and_query: String,
    pub body: &'a [u8],
}

/// Splits fuzz input into headers, path and body; lines that are not a valid header are
/// dropped.
pub fn split_request(data: &[u8]) -> FuzzRequest<'_> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut path_and_query = "/in/fuzz".to_string();
    for line in head.split(|b| *b == b'\n') {
        if let Some(path) = line.strip_prefix(b":path: ") {
            path_and_query = String::from_utf8_lossy(path).into_owned();
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    FuzzRequest {
        headers,
        path_and_query,
        body,
    }
}

/// One source per scheme with a fuzz target, each with the source its registration gives (the
/// secrets of its published vectors); the source's id is the scheme's name.
fn sources_toml() -> String {
    SchemeKind::ALL
        .iter()
        .filter_map(|k| {
            let fuzz = k.scheme().fuzz()?;
            let name = k.name();
            Some(format!(
                "[[sources]]\nid = \"{name}\"\nverify = \"{name}\"\n{}\n",
                fuzz.source
            ))
        })
        .collect()
}

fn source(id: &str) -> Option<&'static Source> {
    fuzz_config()?.sources.get(id)
}

/// Verifies fuzz input with the source of scheme `scheme` (its name), as ingress
/// does: the unsigned handshakes, the signature, the signed handshakes and the scheme's event
/// type; and answers it as a GET handshake too.
pub fn verify(scheme: &str, data: &[u8]) {
    let Some(source) = source(scheme) else { return };
    let req = split_request(data);
    let inbound = Inbound {
        headers: &req.headers,
        path_and_query: &req.path_and_query,
        body: req.body,
        now_secs: FUZZ_NOW,
    };
    let v = &source.verifier;
    let _ = v.answer_before_verify(&inbound);
    if v.verify(&inbound).is_ok() {
        let _ = v.answer_after_verify(&inbound);
    }
    let _ = v.event_type(&inbound);
    let _ = v.answer_get(&Inbound {
        body: &[],
        ..inbound
    });
}

/// The `key=value` list parser of Stripe's and Paddle's headers.
pub fn key_value_header(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = key_values(text, ',');
        let _ = key_values(text, ';');
    }
}

/// The config parser and validator.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text).and_then(Config::validate);
    }
}

/// The admin API's bodies, each through the parser its handler uses: the first byte picks the
/// route, the rest is the body. Endpoint and source bodies are validated as the catalog does
/// (against the fuzz sources), and a PATCH is merged onto a valid stored entry first.
pub fn api_body(data: &[u8]) {
    use crate::api::{dead_letters, endpoints, publish};
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let now = 1_795_564_800_000;
    match route % 8 {
        0 => {
            let _ = dead_letters::parse_replay(body, now);
        }
        1 => {
            let _ = endpoints::parse_recover(body, now);
        }
        2 => {
            let _ = endpoints::parse_rotate(body);
        }
        3 => {
            let key = body
                .split(|b| *b == b'\n')
                .next()
                .and_then(|k| http::HeaderValue::from_bytes(k).ok());
            let _ = publish::parse(body, key.as_ref());
        }
        route => {
            let Ok(value) = crate::api::params::json_body::<serde_json::Value>(body) else {
                return;
            };
            let Some(config) = fuzz_config() else { return };
            match route {
                4 => {
                    let _ = Validated::source_from_json(&value);
                }
                5 => {
                    let _ = config.endpoint_from_json(&value, &config.sources);
                }
                6 => {
                    let stored = serde_json::json!({"id": "a", "url": "https://example.com/hook", "sources": ["stripe"]});
                    if let Ok(merged) = crate::catalog::merge_patch(stored, "a", value) {
                        let _ = config.endpoint_from_json(&merged, &config.sources);
                    }
                }
                _ => {
                    let stored =
                        serde_json::json!({"id": "s", "verify": "token", "secrets": ["t"]});
                    if let Ok(merged) = crate::catalog::merge_patch(stored, "s", value) {
                        let _ = Validated::source_from_json(&merged);
                    }
                }
            }
        }
    }
}

/// A pull endpoint's message bodies (receive, ack, nack, extend) and its stream's query, each
/// through the parser its handler uses: the first byte picks which.
pub fn messages_body(data: &[u8]) {
    use crate::api::messages;
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    match route % 5 {
        0 => {
            let _ = messages::parse_receive(body);
        }
        1 => {
            let _ = messages::parse_ack(body);
        }
        2 => {
            let _ = messages::parse_nack(body);
        }
        3 => {
            let _ = messages::parse_extend(body);
        }
        _ => {
            if let Ok(query) = std::str::from_utf8(body) {
                let _ = messages::stream::ask(Some(query));
            }
        }
    }
}

/// Duration and time strings: config durations, the API's `since`/`until`, and `Retry-After`
/// (seconds or an HTTP date).
/// A payload filter and a request to match it against (see
/// `filter::payload::fuzz::fuzz_filter`): compiling never panics, nor does matching, and the
/// fast match and the explanation agree.
pub fn payload_filter(data: &[u8]) {
    crate::filter::payload::fuzz::fuzz_filter(data);
}

/// A transform's output (any bytes read as a jaq value) validated as a delivery: whatever is
/// accepted has valid, unreserved headers and a body that is what it claims to be; the same
/// bytes as a body and a frame through the worker protocol's decoders, and as program text
/// through the parser guard (the limits a program must pass before jaq sees it): none panics.
pub fn transform_output(data: &[u8]) {
    crate::transform::fuzz_transform_output(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::transform::program::guard(text);
        let _ = crate::transform::program::depth_estimate(text);
    }
    let bytes = bytes::Bytes::copy_from_slice(data);
    let _ = crate::transform::json::parse(&bytes, 128);
    let _ = crate::transform::frame::decode_request(&bytes);
    let _ = crate::transform::frame::decode_response(&bytes);
}

pub fn durations(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = text.parse::<crate::config::Duration>();
    let _ = crate::api::params::parse_time(text, 1_795_564_800_000);
    for now in [0, 1_795_564_800_000, u64::MAX] {
        let _ = crate::delivery::http::parse_retry_after(text, now);
    }
}

/// Endpoint URLs: parsed and checked as `url` of an endpoint entry, then the literal-address
/// guard under the default reach and under an `allowed_networks` list.
pub fn endpoint_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(config) = fuzz_config() {
        let value = serde_json::json!({"id": "u", "url": text});
        let _ = config.endpoint_from_json(&value, &config.sources);
    }
    if let Ok(url) = reqwest::Url::parse(text) {
        use crate::model::reach::{Reach, check_literal};
        let _ = check_literal(&url, &Reach::default());
        let allowed = Reach {
            allow_private: false,
            allowed: ["10.1.0.0/16", "fd00::/8"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        };
        let _ = check_literal(&url, &allowed);
    }
}

fn fuzz_config() -> Option<&'static Validated> {
    static CONFIG: OnceLock<Option<Validated>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Config::from_toml(&sources_toml())
                .and_then(Config::validate)
                .ok()
        })
        .as_ref()
}

/// Every verifier fuzz target, by target name and scheme name, as the schemes register them.
pub static VERIFY_TARGETS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    SchemeKind::ALL
        .iter()
        .filter_map(|k| Some((k.scheme().fuzz()?.target, k.name())))
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fuzz_source_builds() {
        for (_, scheme) in VERIFY_TARGETS.iter() {
            assert!(source(scheme).is_some(), "{scheme}");
        }
    }
}
