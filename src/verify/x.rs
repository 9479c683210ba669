//! X (Twitter): deliveries carry `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of
//! the raw body>` under the app's consumer secret. Handshake (the CRC check, on registration
//! and then periodically): `GET ?crc_token=…` answered with
//! `{"response_token": "sha256=<base64 HMAC-SHA256 of the token>"}` under the first secret.

use std::sync::Arc;

use serde_json::json;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply, query_param};
use super::hmac::{Generic, encode};
use super::{
    BuildError, Check, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, Signed, Signer, VerifyError, mac,
};

pub fn verifier(keys: Vec<KeyBytes>) -> Generic {
    Generic::body_only(
        "x-twitter-webhooks-signature",
        HmacAlgorithm::Sha256,
        HmacEncoding::Base64,
        "sha256=",
        keys,
    )
}

/// X's `response_token` for a `crc_token`.
pub fn response_token(key: &[u8], crc_token: &str) -> String {
    let tag = mac(HmacAlgorithm::Sha256, key, &[crc_token.as_bytes()]);
    format!("sha256={}", encode(HmacEncoding::Base64, &tag))
}

/// The longest `crc_token` answered.
const MAX_CRC_TOKEN: usize = 256;

/// Whether a `crc_token` looks like one: X's are short and token-like. **This is what keeps
/// the CRC from being a signing oracle**: its answer is the HMAC of the token under the very
/// key and layout deliveries are signed with, so a token that could be a delivery body would
/// hand anyone a valid signature for it. A token-like string (no `{`) is never a JSON object,
/// and X deliveries must be JSON objects ([`X::verify`]).
fn token_like(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_CRC_TOKEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
}

/// X's delivery check: the signature over the raw body, and a body that is a JSON object.
#[derive(Clone)]
pub struct X {
    pub signature: Generic,
}

impl X {
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), super::VerifyError> {
        self.signature.verify(headers, body, now_secs)?;
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(super::VerifyError::MalformedSignature(
                "an X delivery is a JSON object".into(),
            ));
        }
        Ok(())
    }
}

/// Answers the CRC check. The first secret answers: X has one consumer secret per app, and a
/// rotation lists the new one first.
pub fn crc(x: &Generic, path_and_query: &str) -> Result<Reply, HandshakeError> {
    let token = query_param(path_and_query, "crc_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| HandshakeError::BadRequest("crc_token is missing".into()))?;
    if !token_like(&token) {
        return Err(HandshakeError::BadRequest(format!(
            "crc_token must be up to {MAX_CRC_TOKEN} characters of A-Z a-z 0-9 - _ . ~ + / ="
        )));
    }
    let key = x.keys.first().ok_or(HandshakeError::NotAllowed)?;
    Ok(Reply::json(
        "crc",
        &json!({ "response_token": response_token(key, &token) }),
    ))
}

/// X's Account Activity payloads name their kind by a top-level key (`tweet_create_events`,
/// `favorite_events`, `user_event`, ...) beside `for_user_id`: that key is the event type.
pub fn event_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.as_object()?
        .keys()
        .find(|k| k.ends_with("_events") || *k == "user_event")
        .cloned()
}

impl Check for X {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_get(&self, req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        crc(&self.signature, req.path_and_query)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        event_type(req.body)
    }
}

/// `verify = "x"` (or `"twitter"`).
pub struct XScheme;

impl Scheme for XScheme {
    fn name(&self) -> &'static str {
        "x"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["twitter"]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(X {
            signature: verifier(input.keys()),
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        // The event type is the name of the activity key (`event_type`).
        SchemeDefaults {
            dedup: &[],
            event_type: &[],
            body_dedup: true,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = verifier(vec![]).sign(i.secret.as_bytes(), 0, i.body);
                Ok(Signed::default().with("x-twitter-webhooks-signature", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_x",
            source: r#"secrets = ["z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    const SECRET: &[u8] = b"z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu";

    #[test]
    fn crc_answers_with_xs_sample_vector() {
        // Inputs from X's sample gist (jcipriano/46c4b3f379d214d57a9ddfa70dba49fe).
        let x = verifier(vec![SECRET.to_vec().into()]);
        let r = crc(&x, "/in/x?crc_token=9b4507b3-9040-4669-9ca3-6b94edb50553").expect("crc");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"response_token": "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8="})
        );
        assert!(matches!(
            crc(&x, "/in/x"),
            Err(HandshakeError::BadRequest(_))
        ));
        assert!(matches!(
            crc(&x, "/in/x?crc_token="),
            Err(HandshakeError::BadRequest(_))
        ));
    }

    /// The CRC answer is the HMAC of the token under the delivery key: a token that could be
    /// a body must not be answered, and a body that could be a token is not a delivery.
    #[test]
    fn the_crc_is_not_a_signing_oracle() {
        let x = verifier(vec![SECRET.to_vec().into()]);
        let body = r#"{"for_user_id":"1","tweet_create_events":[]}"#;
        let query = format!(
            "/in/x?crc_token={}",
            url::form_urlencoded::byte_serialize(body.as_bytes()).collect::<String>()
        );
        assert!(matches!(
            crc(&x, &query),
            Err(HandshakeError::BadRequest(_))
        ));
        // A token-like body signed by a CRC answer is refused as a delivery.
        let token = "9b4507b3-9040-4669-9ca3-6b94edb50553";
        let r = crc(&x, &format!("/in/x?crc_token={token}")).expect("answered");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let mut h = HeaderMap::new();
        h.insert(
            "x-twitter-webhooks-signature",
            v["response_token"]
                .as_str()
                .expect("token")
                .parse()
                .expect("value"),
        );
        let checked = X { signature: x };
        assert!(matches!(
            checked.verify(&h, token.as_bytes(), 0),
            Err(VerifyError::MalformedSignature(_))
        ));
    }

    #[test]
    fn deliveries_are_signed_in_base64() {
        let x = verifier(vec![SECRET.to_vec().into()]);
        let body = br#"{"for_user_id":"2244994945","tweet_create_events":[]}"#;
        let sig = x.sign(SECRET, 0, body);
        assert!(sig.starts_with("sha256=") && sig.ends_with('='));
        let mut h = HeaderMap::new();
        h.insert("x-twitter-webhooks-signature", sig.parse().expect("value"));
        assert_eq!(x.verify(&h, body, 0), Ok(()));
        assert_eq!(x.verify(&h, b"{}", 0), Err(VerifyError::BadSignature));
    }

    #[test]
    fn event_type_is_the_activity_key() {
        let body = br#"{"for_user_id":"2244994945","user_has_blocked":false,"favorite_events":[{"id":"a"}]}"#;
        assert_eq!(event_type(body).as_deref(), Some("favorite_events"));
        assert_eq!(event_type(br#"{"for_user_id":"1"}"#), None);
        assert_eq!(event_type(b"[1]"), None);
    }
}
