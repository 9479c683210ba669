//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` keyed by the app's client
//! secret. The newer Events deliveries send `Shopify-Hmac-Sha256`, read first. No timestamp is
//! signed: dedup by `X-Shopify-Webhook-Id`. During a client-secret rotation Shopify signs with
//! the oldest non-revoked secret, so list both.

use std::sync::Arc;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::hmac::Generic;
use super::{
    BuildError, Check, Field, HmacAlgorithm, HmacEncoding, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer,
};

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

/// `verify = "shopify"`: a preset of the generic HMAC check, with no handshake.
pub struct ShopifyScheme;

impl Scheme for ShopifyScheme {
    fn name(&self) -> &'static str {
        "shopify"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(verifier(input.keys())))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[
                Field::Header("x-shopify-webhook-id"),
                Field::Header("shopify-webhook-id"),
                Field::Header("shopify-event-id"),
            ],
            event_type: &[
                Field::Header("x-shopify-topic"),
                Field::Header("shopify-topic"),
            ],
            body_dedup: true,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = verifier(vec![]).sign(i.secret.as_bytes(), 0, i.body);
                Ok(Signed::default().with("x-shopify-hmac-sha256", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_shopify",
            source: r#"secrets = ["hush"]"#,
        })
    }
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
