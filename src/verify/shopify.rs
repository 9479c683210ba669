//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` keyed by the app's client
//! secret. The newer Events deliveries send `Shopify-Hmac-Sha256`, read first. No timestamp is
//! signed: dedup by `X-Shopify-Webhook-Id`. During a client-secret rotation Shopify signs with
//! the oldest non-revoked secret, so list both.

use super::KeyBytes;
use super::hmac::Generic;
use super::{HmacAlgorithm, HmacEncoding};

pub fn verifier(keys: Vec<KeyBytes>) -> Generic {
    let mut g = Generic::body_only(
        "shopify-hmac-sha256",
        HmacAlgorithm::Sha256,
        HmacEncoding::Base64,
        "",
        keys,
    );
    g.headers
        .push(http::HeaderName::from_static("x-shopify-hmac-sha256"));
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    #[test]
    fn sh1_under_both_header_names() {
        // SH-1 (computed): secret "hush".
        let body = br#"{"id":123456789,"total_price":"99.00"}"#;
        let g = verifier(vec![b"old".to_vec().into(), b"hush".to_vec().into()]);
        assert_eq!(
            g.sign(b"hush", 0, body),
            "V9RIXFzn4GCoDAfZICebD/DTE//XoA9QtqGbU1Fz2os="
        );
        for name in ["x-shopify-hmac-sha256", "shopify-hmac-sha256"] {
            let mut h = HeaderMap::new();
            h.insert(
                name,
                "V9RIXFzn4GCoDAfZICebD/DTE//XoA9QtqGbU1Fz2os="
                    .parse()
                    .expect("value"),
            );
            assert_eq!(g.verify(&h, body, 0), Ok(()), "{name}");
            assert_eq!(g.verify(&h, b"{}", 0), Err(VerifyError::BadSignature));
        }
    }
}
