//! Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>…]`, HMAC-SHA256 of
//! `ts:body` keyed by the notification secret string (prefix included). Several `h1` entries
//! appear during secret rotation; any one matching passes. Paddle's SDKs allow only 5 seconds
//! of skew; here the source's `tolerance` applies, both ways.

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer, TimestampedHeader, VerifyError, mac, verify_timestamped,
};

pub const HEADER: &str = "paddle-signature";

/// `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>…]`, signing `ts:body`.
const LAYOUT: TimestampedHeader = TimestampedHeader {
    name: HEADER,
    separator: ';',
    ts_key: "ts",
    sig_key: "h1",
    joiner: b":",
};

#[derive(Clone)]
pub struct Keys {
    pub keys: Vec<KeyBytes>,
    pub tolerance: u64,
}

pub fn verify(
    keys: &Keys,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    verify_at(keys, headers, body, Some(now_secs))
}

/// `now_secs = None` skips the clock (for the published vector, which is years old).
fn verify_at(
    keys: &Keys,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: Option<i64>,
) -> Result<(), VerifyError> {
    verify_timestamped(&LAYOUT, &keys.keys, keys.tolerance, headers, body, now_secs)
}

pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = mac(
        HmacAlgorithm::Sha256,
        secret.as_bytes(),
        &[ts.as_bytes(), b":", body],
    );
    format!("ts={ts};h1={}", hex::encode(tag))
}

impl Check for Keys {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        verify(self, req.headers, req.body, req.now_secs)
    }
}

/// `verify = "paddle"`.
pub struct PaddleScheme;

impl Scheme for PaddleScheme {
    fn name(&self) -> &'static str {
        "paddle"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Keys {
            keys: input.keys(),
            tolerance: input.tolerance,
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/event_id")],
            event_type: &[Field::Json("/event_type")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| Ok(Signed::default().with(HEADER, sign(i.secret, i.timestamp, i.body))),
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_paddle",
            source: r#"secrets = ["VALID_SECRET"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, value.parse().expect("value"));
        h
    }

    fn keys(secrets: &[&str]) -> Keys {
        Keys {
            keys: secrets
                .iter()
                .map(|s| s.as_bytes().to_vec().into())
                .collect(),
            tolerance: 300,
        }
    }

    #[test]
    fn pd1_published_multiple_signatures_times_multiple_secrets() {
        let header = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02";
        let bad1 = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4";
        let bad2 = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo";
        let good = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh";
        assert_eq!(
            verify_at(&keys(&[bad1, bad2, good]), &h(header), b"hello-world", None),
            Ok(())
        );
        assert_eq!(
            verify_at(&keys(&[bad1, bad2]), &h(header), b"hello-world", None),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn pd2_published_and_whitespace_matters() {
        let header =
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9";
        assert_eq!(
            sign("VALID_SECRET", 1_698_796_800, br#"{"data": ["1", "2"]}"#),
            header
        );
        let k = keys(&["VALID_SECRET"]);
        assert_eq!(
            verify(&k, &h(header), br#"{"data": ["1", "2"]}"#, 1_698_796_800),
            Ok(())
        );
        assert_eq!(
            verify(&k, &h(header), br#"{ "data": [ "1", "2" ]}"#, 1_698_796_800),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &k,
                &h(header),
                br#"{"data": ["1", "2"]}"#,
                1_698_796_800 + 301
            ),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert!(matches!(
            verify(&k, &h("h1=00"), b"", 0),
            Err(VerifyError::MalformedSignature(_))
        ));
    }
}
