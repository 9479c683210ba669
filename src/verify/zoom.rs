//! Zoom: `x-zm-signature: v0=<hex HMAC-SHA256 of "v0:" ts ":" body>` with the Unix timestamp
//! (seconds) in `x-zm-request-timestamp`, keyed by the app's secret token as a string, within
//! `tolerance`. Zoom validates the URL when it is saved and again about every 72 hours with a
//! signed `endpoint.url_validation` event, answered with the `plainToken` and its hex
//! HMAC-SHA256 under the key that signed the request.

use std::sync::Arc;

use serde_json::json;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply, json_str};
use super::hmac::Generic;
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer, VerifyError, mac,
};

pub fn verifier(keys: Vec<KeyBytes>, tolerance: u64) -> Generic {
    Generic::v0("x-zm-signature", "x-zm-request-timestamp", keys, tolerance)
}

/// The answer to `endpoint.url_validation`, for a request that has passed verification.
pub fn url_validation(z: &Generic, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
    if json_str(req.body, "/event")? != "endpoint.url_validation" {
        return None;
    }
    let answer = || {
        let plain = json_str(req.body, "/payload/plainToken").ok_or_else(|| {
            HandshakeError::BadRequest("endpoint.url_validation without a plainToken".into())
        })?;
        let key = z.matching_key(req.headers, req.body, req.now_secs)?;
        Ok(Reply::json(
            "url_validation",
            &json!({ "plainToken": plain, "encryptedToken": encrypted_token(key, &plain) }),
        ))
    };
    Some(answer())
}

/// Zoom's `encryptedToken`: hex HMAC-SHA256 of the plain token under the secret token.
pub fn encrypted_token(key: &[u8], plain: &str) -> String {
    hex::encode(mac(HmacAlgorithm::Sha256, key, &[plain.as_bytes()]))
}

/// A Zoom source: the `v0` signature, and the `endpoint.url_validation` answer.
#[derive(Clone)]
pub struct Zoom(pub Generic);

impl Check for Zoom {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.0.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_after_verify(&self, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        url_validation(&self.0, req)
    }
}

/// `verify = "zoom"`.
pub struct ZoomScheme;

impl Scheme for ZoomScheme {
    fn name(&self) -> &'static str {
        "zoom"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Zoom(verifier(input.keys(), input.tolerance))))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[],
            event_type: &[Field::Json("/event")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = verifier(vec![], 0).sign(i.secret.as_bytes(), i.timestamp, i.body);
                Ok(Signed::default()
                    .with("x-zm-request-timestamp", i.timestamp.to_string())
                    .with("x-zm-signature", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_zoom",
            source: r#"secrets = ["secretValueTest"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    const SECRET: &[u8] = b"secretValueTest";
    const BODY: &[u8] = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    const TS: i64 = 1_654_503_849;
    const SIG: &str = "v0=f7b7dcfa8b11d7f5e1102e1dd720ffbf30762dbf79e9668b3c11b66898d36d9c";

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-zm-signature", sig.parse().expect("value"));
        h.insert(
            "x-zm-request-timestamp",
            "1654503849".parse().expect("value"),
        );
        h
    }

    fn inbound<'a>(h: &'a HeaderMap, body: &'a [u8], now: i64) -> Inbound<'a> {
        Inbound {
            headers: h,
            path_and_query: "/in/zoom",
            body,
            now_secs: now,
        }
    }

    #[test]
    fn published_encrypted_token() {
        // elastic/beats' http_endpoint handler test.
        assert_eq!(
            encrypted_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw"),
            "70c1f2e2e6ca2d39297490d1f9142c7d701415ea8e6151f6562a08fa657a40ff"
        );
    }

    #[test]
    fn signature_and_validation_answer() {
        assert_eq!(BODY.len(), 110);
        let z = verifier(vec![b"old".to_vec().into(), SECRET.to_vec().into()], 300);
        assert_eq!(z.sign(SECRET, TS, BODY), SIG);
        let h = headers(SIG);
        assert_eq!(z.verify(&h, BODY, TS + 300), Ok(()));
        let r = url_validation(&z, &inbound(&h, BODY, TS))
            .expect("a handshake")
            .expect("answered");
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                   "encryptedToken": "70c1f2e2e6ca2d39297490d1f9142c7d701415ea8e6151f6562a08fa657a40ff"})
        );
        // An ordinary event is not a handshake.
        let event = br#"{"event":"meeting.started","payload":{}}"#;
        let sig = z.sign(SECRET, TS, event);
        assert_eq!(
            url_validation(&z, &inbound(&headers(&sig), event, TS)),
            None
        );
    }

    #[test]
    fn negative_cases() {
        let z = verifier(vec![SECRET.to_vec().into()], 300);
        assert_eq!(
            z.verify(&headers(SIG), b"{}", TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            z.verify(&headers(SIG), BODY, TS + 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert!(matches!(
            z.verify(&headers(&SIG[3..]), BODY, TS),
            Err(VerifyError::MalformedSignature(_))
        ));
        let mut no_ts = headers(SIG);
        no_ts.remove("x-zm-request-timestamp");
        assert!(matches!(
            z.verify(&no_ts, BODY, TS),
            Err(VerifyError::MissingSignature(_))
        ));
        // A forged validation is not answered either: no key matches.
        let other = verifier(vec![b"someone else".to_vec().into()], 300);
        assert!(matches!(
            url_validation(&other, &inbound(&headers(SIG), BODY, TS)),
            Some(Err(HandshakeError::Unauthorized(_)))
        ));
        let no_token = br#"{"payload":{},"event":"endpoint.url_validation"}"#;
        let sig = z.sign(SECRET, TS, no_token);
        assert!(matches!(
            url_validation(&z, &inbound(&headers(&sig), no_token, TS)),
            Some(Err(HandshakeError::BadRequest(_)))
        ));
    }
}
