//! Meta (Facebook, Instagram, WhatsApp, Messenger): deliveries carry
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` under the app secret (the
//! legacy `X-Hub-Signature: sha1=` is read only without it), GitHub's layout. Meta signs the
//! escaped-unicode text it sends, which is why the raw bytes are what is hashed.
//!
//! Handshake: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` is answered with
//! the challenge only when the mode is `subscribe` and the token equals the source's
//! `verify_token` (compared in constant time); anything else is 403 and echoes nothing.

use std::sync::Arc;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::github::Github;
use super::handshake::{HandshakeError, Reply, query_param};
use super::{
    BuildError, Check, Field, Inbound, KeyBytes, Scheme, SchemeDefaults, SchemeInput, Signer,
    SourceOption, VerifyError, constant_time_eq,
};

#[derive(Clone)]
pub struct Meta {
    pub signature: Github,
    /// The token the subscription check must present; without one, every check is refused.
    pub verify_token: Option<KeyBytes>,
}

impl Meta {
    /// Answers Meta's subscription check.
    pub fn subscribe(&self, path_and_query: &str) -> Result<Reply, HandshakeError> {
        let param = |n| query_param(path_and_query, n);
        let mode = param("hub.mode");
        let token = param("hub.verify_token");
        let challenge = param("hub.challenge");
        let Some(expected) = &self.verify_token else {
            return Err(HandshakeError::Forbidden(
                "this source has no verify_token to check subscriptions against".into(),
            ));
        };
        if mode.as_deref() != Some("subscribe") {
            return Err(HandshakeError::Forbidden(
                "hub.mode must be \"subscribe\"".into(),
            ));
        }
        if !token.is_some_and(|t| constant_time_eq(expected, t.as_bytes())) {
            return Err(HandshakeError::Forbidden(
                "hub.verify_token does not match".into(),
            ));
        }
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or_else(|| HandshakeError::BadRequest("hub.challenge is missing".into()))?;
        Ok(Reply::text("subscribe", challenge))
    }
}

impl Check for Meta {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.signature.verify(req.headers, req.body)
    }

    fn answer_get(&self, req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        self.subscribe(req.path_and_query)
    }
}

/// `verify = "meta"`, with an optional `verify_token` for the subscription check.
pub struct MetaScheme;

impl Scheme for MetaScheme {
    fn name(&self) -> &'static str {
        "meta"
    }

    fn options(&self) -> &'static [SourceOption] {
        &[SourceOption::VerifyToken]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Meta {
            signature: Github::new(input.keys()),
            verify_token: input
                .verify_token
                .map(|t| KeyBytes::new(t.as_bytes().to_vec())),
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[],
            event_type: &[Field::Json("/object")],
            body_dedup: true,
        }
    }

    fn signer(&self) -> Option<Signer> {
        // Meta signs as GitHub does.
        Some(Signer {
            help: None,
            sign: super::github::sign_headers,
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_meta",
            source: "secrets = [\"0123456789abcdef0123456789abcdef\"]\nverify_token = \"meatyhamhock\"",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    fn meta(token: Option<&str>) -> Meta {
        Meta {
            signature: Github::new(vec![b"0123456789abcdef0123456789abcdef".to_vec().into()]),
            verify_token: token.map(|t| t.as_bytes().to_vec().into()),
        }
    }

    #[test]
    fn signs_the_escaped_bytes() {
        // The raw body keeps Meta's \u00e9 escape; the decoded text would hash differently.
        let body = br#"{"text":"caf\u00e9"}"#;
        assert_eq!(body.len(), 20);
        let m = meta(None);
        let sig = "sha256=fd1953297c43c09fb9eea0fd1e756bb1c9d5e27d332c7195bcc91034ad37003a";
        assert_eq!(
            m.signature.sign(b"0123456789abcdef0123456789abcdef", body),
            sig
        );
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", sig.parse().expect("value"));
        assert_eq!(m.signature.verify(&h, body), Ok(()));
        assert_eq!(
            m.signature.verify(&h, "{\"text\":\"café\"}".as_bytes()),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn subscription_check() {
        let m = meta(Some("meatyhamhock"));
        let ok = "/in/fb?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
        assert_eq!(m.subscribe(ok), Ok(Reply::text("subscribe", "1158201444")));
        for bad in [
            "/in/fb?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhoc",
            "/in/fb?hub.mode=subscribe&hub.challenge=1158201444",
            "/in/fb?hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
            "/in/fb",
        ] {
            assert!(
                matches!(m.subscribe(bad), Err(HandshakeError::Forbidden(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            m.subscribe("/in/fb?hub.mode=subscribe&hub.verify_token=meatyhamhock"),
            Err(HandshakeError::BadRequest(_))
        ));
        assert!(matches!(
            meta(None).subscribe(ok),
            Err(HandshakeError::Forbidden(_))
        ));
    }
}
