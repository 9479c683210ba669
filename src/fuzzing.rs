//! Entry points for fuzzing, shared by the cargo-fuzz targets in `fuzz/` and by the test that
//! replays their corpora, so CI runs every saved input. Each takes arbitrary bytes and must
//! never panic.
//!
//! Verifier inputs are a header block (`name: value` lines), a blank line, then the body.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{Config, HmacAlgorithm, HmacEncoding};
use crate::verify::{hmac::Generic, standard_webhooks};

/// The time the verifier fuzzers run at: vector SW-1's timestamp.
pub const FUZZ_NOW: i64 = 1_614_265_330;

/// Splits fuzz input into headers and body; lines that are not a valid header are dropped.
pub fn split_request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    (headers, body)
}

/// Standard Webhooks verification with SW-1's key.
pub fn verify_standard_webhooks(data: &[u8]) {
    let Ok(key) = standard_webhooks::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") else {
        return;
    };
    let keys = standard_webhooks::Keys {
        keys: vec![key],
        public_keys: Vec::new(),
        tolerance: 300,
    };
    let (headers, body) = split_request(data);
    let _ = standard_webhooks::verify(&keys, &headers, body, FUZZ_NOW);
}

/// Generic HMAC verification, sha256/hex with a prefix.
pub fn verify_hmac(data: &[u8]) {
    let g = Generic::body_only(
        "x-signature",
        HmacAlgorithm::Sha256,
        HmacEncoding::Hex,
        "sha256=",
        vec![b"secret".to_vec()],
    );
    let (headers, body) = split_request(data);
    let _ = g.verify(&headers, body, FUZZ_NOW);
}

/// The config parser and validator.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text).and_then(Config::validate);
    }
}
