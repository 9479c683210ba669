//! Linear: `Linear-Signature: <hex HMAC-SHA256 of the body>`. Its timestamp is the body's
//! `webhookTimestamp` field (milliseconds), which the MAC covers; it is checked against the
//! source's tolerance after the MAC matches. (The `Linear-Timestamp` header is not signed and is
//! ignored.) Dedup by `Linear-Delivery`.

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::hmac::Generic;
use super::{
    BuildError, Check, Field, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, Scheme,
    SchemeDefaults, SchemeInput, Signed, Signer, VerifyError,
};

#[derive(Clone)]
pub struct Linear {
    mac: Generic,
    tolerance_ms: u64,
}

impl Linear {
    pub fn new(keys: Vec<KeyBytes>, tolerance_secs: u64) -> Self {
        Linear {
            mac: Generic::body_only(
                "linear-signature",
                HmacAlgorithm::Sha256,
                HmacEncoding::Hex,
                "",
                keys,
            ),
            tolerance_ms: tolerance_secs.saturating_mul(1000),
        }
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        self.mac.verify(headers, body, now_secs)?;
        #[derive(serde::Deserialize)]
        struct Stamp {
            #[serde(rename = "webhookTimestamp")]
            webhook_timestamp: Option<i64>,
        }
        let ts = serde_json::from_slice::<Stamp>(body)
            .ok()
            .and_then(|s| s.webhook_timestamp)
            .ok_or_else(|| {
                VerifyError::MalformedSignature("the body has no numeric webhookTimestamp".into())
            })?;
        if now_secs.saturating_mul(1000).abs_diff(ts) > self.tolerance_ms {
            return Err(VerifyError::StaleTimestamp(self.tolerance_ms / 1000));
        }
        Ok(())
    }

    pub fn sign(&self, key: &[u8], body: &[u8]) -> String {
        self.mac.sign(key, 0, body)
    }
}

impl Check for Linear {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body, req.now_secs)
    }
}

/// `verify = "linear"`.
pub struct LinearScheme;

impl Scheme for LinearScheme {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Linear::new(input.keys(), input.tolerance)))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Header("linear-delivery")],
            event_type: &[Field::Header("linear-event")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = Linear::new(vec![], 0).sign(i.secret.as_bytes(), i.body);
                Ok(Signed::default().with("linear-signature", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_linear",
            source: r#"secrets = ["lin_wh_test_secret"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // LN-1 (computed).
    const BODY: &[u8] = br#"{"action":"create","type":"Issue","webhookTimestamp":1700000000000}"#;
    const SIG: &str = "bc8166452d75bb104f41b0c8b0f168b4d57cd224618779163f15a1f93cc87b30";

    fn h(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("linear-signature", sig.parse().expect("value"));
        h
    }

    #[test]
    fn ln1_and_its_body_timestamp() {
        let l = Linear::new(vec![b"lin_wh_test_secret".to_vec().into()], 60);
        assert_eq!(l.sign(b"lin_wh_test_secret", BODY), SIG);
        assert_eq!(l.verify(&h(SIG), BODY, 1_700_000_030), Ok(()));
        assert_eq!(
            l.verify(&h(SIG), BODY, 1_700_000_061),
            Err(VerifyError::StaleTimestamp(60))
        );
        assert_eq!(
            l.verify(&h(SIG), BODY, 1_699_999_939),
            Err(VerifyError::StaleTimestamp(60))
        );
        let no_ts = br#"{"action":"create"}"#;
        let sig = l.sign(b"lin_wh_test_secret", no_ts);
        assert!(matches!(
            l.verify(&h(&sig), no_ts, 0),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            l.verify(&h(SIG), b"{}", 1_700_000_000),
            Err(VerifyError::BadSignature)
        );
    }
}
