//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 of `t.body` keyed by
//! the whole `whsec_…` string **as-is** (not base64-decoded, unlike Standard Webhooks).
//!
//! Only `v1` is accepted (`v0` is Stripe's fake test-mode scheme); several `v1` entries appear
//! while a secret is being rolled. Unlike Stripe's libraries, which only refuse old
//! timestamps, the tolerance applies to the future too.

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer, TimestampedHeader, VerifyError, mac, verify_timestamped,
};

pub const HEADER: &str = "stripe-signature";

/// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, signing `t.body`.
const LAYOUT: TimestampedHeader = TimestampedHeader {
    name: HEADER,
    separator: ',',
    ts_key: "t",
    sig_key: "v1",
    joiner: b".",
};

/// Stripe endpoint secrets (as bytes of the string) and the tolerance in seconds.
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
    verify_timestamped(
        &LAYOUT,
        &keys.keys,
        keys.tolerance,
        headers,
        body,
        Some(now_secs),
    )
}

/// The header Stripe would send (as `generateTestHeaderString` makes it).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let tag = mac(
        HmacAlgorithm::Sha256,
        secret.as_bytes(),
        &[t.as_bytes(), b".", body],
    );
    format!("t={t},v1={}", hex::encode(tag))
}

impl Check for Keys {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        verify(self, req.headers, req.body, req.now_secs)
    }
}

/// `verify = "stripe"`.
pub struct StripeScheme;

impl Scheme for StripeScheme {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Keys {
            keys: input.keys(),
            tolerance: input.tolerance,
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/id")],
            event_type: &[Field::Json("/type")],
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
            target: "verify_stripe",
            source: r#"secrets = ["whsec_test_secret"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ST-1 (computed with Stripe's algorithm; cross-checked by the SDK interop test).
    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const HEADER_ST1: &str =
        "t=1614265330,v1=3c5817089d739023dd6190f70a3757e04f7a2fd8b5dab12c2e000f51970dccff";
    const NOW: i64 = 1_614_265_330;

    fn keys(secrets: &[&str]) -> Keys {
        Keys {
            keys: secrets
                .iter()
                .map(|s| s.as_bytes().to_vec().into())
                .collect(),
            tolerance: 300,
        }
    }

    fn h(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, value.parse().expect("value"));
        h
    }

    #[test]
    fn signs_and_verifies_st1() {
        assert_eq!(sign(SECRET, NOW, BODY), HEADER_ST1);
        assert_eq!(verify(&keys(&[SECRET]), &h(HEADER_ST1), BODY, NOW), Ok(()));
    }

    #[test]
    fn the_secret_is_used_as_is_not_base64_decoded() {
        let decoded = crate::verify::standard_webhooks::decode_secret(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .expect("b64");
        let k = Keys {
            keys: vec![decoded.into()],
            tolerance: 300,
        };
        let header = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NOW, BODY);
        assert_eq!(
            verify(&k, &h(&header), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn rolled_secrets_and_multiple_v1() {
        let sig_old = sign("whsec_old", NOW, BODY);
        let sig_new = sign(SECRET, NOW, BODY);
        let both = format!(
            "{sig_new},v1={},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
            &sig_old[sig_old.len() - 64..]
        );
        assert_eq!(verify(&keys(&["whsec_old"]), &h(&both), BODY, NOW), Ok(()));
        assert_eq!(
            verify(&keys(&["whsec_other", SECRET]), &h(&sig_new), BODY, NOW),
            Ok(())
        );
    }

    #[test]
    fn refuses_v0_only_tampering_staleness_and_garbage() {
        let k = keys(&[SECRET]);
        let v1 = &HEADER_ST1[HEADER_ST1.len() - 64..];
        assert_eq!(
            verify(&k, &h(&format!("t=1614265330,v0={v1}")), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&k, &h(HEADER_ST1), b"{}", NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&k, &h(HEADER_ST1), BODY, NOW + 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert_eq!(
            verify(&k, &h(HEADER_ST1), BODY, NOW - 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert!(matches!(
            verify(&k, &h(&format!("v1={v1}")), BODY, NOW),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&k, &h(&format!("t=1,t=2,v1={v1}")), BODY, NOW),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&k, &h("garbage"), BODY, NOW),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&k, &HeaderMap::new(), BODY, NOW),
            Err(VerifyError::MissingSignature(_))
        ));
        assert_eq!(
            verify(&k, &h("t=1614265330,v1=zz"), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }
}
