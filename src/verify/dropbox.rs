//! Dropbox: deliveries carry `X-Dropbox-Signature: <hex HMAC-SHA256 of the raw body>` under the
//! app secret. Handshake: `GET ?challenge=…` echoed as `text/plain` with
//! `X-Content-Type-Options: nosniff`, as Dropbox asks (against reflected XSS). The challenge is
//! not signed, and echoing it proves only that the URL answers, which is all Dropbox checks.

use std::sync::Arc;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply, query_param};
use super::hmac::Generic;
use super::{
    BuildError, Check, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer, VerifyError,
};

pub fn verifier(keys: Vec<KeyBytes>) -> Generic {
    Generic::body_only(
        "x-dropbox-signature",
        HmacAlgorithm::Sha256,
        HmacEncoding::Hex,
        "",
        keys,
    )
}

/// Answers Dropbox's verification request.
pub fn challenge(path_and_query: &str) -> Result<Reply, HandshakeError> {
    let challenge = query_param(path_and_query, "challenge")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| HandshakeError::BadRequest("challenge is missing".into()))?;
    Ok(Reply::text("challenge", challenge))
}

/// A Dropbox source: the body's signature, and the `GET ?challenge=` echo.
#[derive(Clone)]
pub struct Dropbox(pub Generic);

impl Check for Dropbox {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.0.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_get(&self, req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        challenge(req.path_and_query)
    }
}

/// `verify = "dropbox"`.
pub struct DropboxScheme;

impl Scheme for DropboxScheme {
    fn name(&self) -> &'static str {
        "dropbox"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Dropbox(verifier(input.keys()))))
    }

    fn defaults(&self) -> SchemeDefaults {
        // No body dedup: Dropbox's bodies repeat by design.
        SchemeDefaults {
            dedup: &[],
            event_type: &[],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = verifier(vec![]).sign(i.secret.as_bytes(), 0, i.body);
                Ok(Signed::default().with("x-dropbox-signature", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_dropbox",
            source: r#"secrets = ["the_secret"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    #[test]
    fn published_vector() {
        // npm hapi-dropbox-webhooks 1.1.0, test/index.js.
        let d = verifier(vec![b"the_secret".to_vec().into()]);
        let body = br#"{"delta": {"users": [12345]}}"#;
        let sig = "0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529";
        assert_eq!(d.sign(b"the_secret", 0, body), sig);
        let mut h = HeaderMap::new();
        h.insert("x-dropbox-signature", sig.parse().expect("value"));
        assert_eq!(d.verify(&h, body, 0), Ok(()));
        assert_eq!(
            d.verify(&h, br#"{"delta": {"users": [12346]}}"#, 0),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            d.verify(&HeaderMap::new(), body, 0),
            Err(VerifyError::MissingSignature(_))
        ));
    }

    #[test]
    fn challenge_is_echoed_as_text() {
        assert_eq!(
            challenge("/in/dbx?challenge=abc123"),
            Ok(Reply::text("challenge", "abc123"))
        );
        assert!(matches!(
            challenge("/in/dbx?other=1"),
            Err(HandshakeError::BadRequest(_))
        ));
    }
}
